#include "gateway/supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>

#include "gateway/supervisor/heartbeat.h"
#include "gateway/supervisor/restart_policy.h"
#include "gateway/supervisor/sd_notify.h"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long long ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "ended with status " + std::to_string(status);
}

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options)
      : options_(std::move(options)),
        restarts_(options_.config),
        notifier_(SdNotifier::from_env(process_env, static_cast<long>(::getpid()))) {}

  ~Supervisor() {
    if (heartbeat_fd_ >= 0) ::close(heartbeat_fd_);
    if (signal_fd_ >= 0) ::close(signal_fd_);
    if (options_.listen_fd >= 0) ::close(options_.listen_fd);
  }

  int run() {
    sigset_t handled;
    sigemptyset(&handled);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
    if (::sigprocmask(SIG_BLOCK, &handled, &original_mask_) != 0) return fatal("cannot block signals");
    signal_fd_ = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd_ < 0) return fatal("cannot create a signalfd");
    if (notifier_.enabled())
      spdlog::info("supervisor: notifying systemd at {}{}", notifier_.socket_path(),
                   notifier_.watchdog_interval()
                       ? " (watchdog every " + std::to_string(notifier_.watchdog_interval()->count()) + " ms)"
                       : std::string());
    spawn();
    for (;;) {
      poll_once();
      if (exit_code_) return *exit_code_;
    }
  }

 private:
  int fatal(const char* what) {
    spdlog::error("supervisor: {}: {}", what, std::strerror(errno));
    return 1;
  }

  void notify(std::string_view state) {
    if (auto r = notifier_.notify(state); !r) spdlog::warn("supervisor: {}", r.error());
  }

  std::optional<Clock::time_point> next_deadline() const {
    std::optional<Clock::time_point> at;
    auto consider = [&](Clock::time_point t) { at = at ? std::min(*at, t) : t; };
    if (worker_ > 0 && !kill_sent_) consider(heartbeat_deadline());
    if (worker_ > 0 && stopping_) consider(stop_deadline_);
    if (worker_ > 0 && ready_ && !stable_) consider(ready_at_ + options_.config.restart_backoff_max);
    if (restart_at_) consider(*restart_at_);
    return at;
  }

  Clock::time_point heartbeat_deadline() const {
    return ready_ ? last_beat_ + options_.config.heartbeat_timeout : spawned_at_ + options_.config.startup_timeout;
  }

  void poll_once() {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {heartbeat_fd_, POLLIN, 0}};
    const nfds_t count = heartbeat_fd_ >= 0 ? 2 : 1;
    int timeout_ms = -1;
    if (auto at = next_deadline()) {
      const long long left = ms_between(Clock::now(), *at) + 1;
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
    const int n = ::poll(fds, count, timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("supervisor: poll failed: {}", std::strerror(errno));
      exit_code_ = 1;
      return;
    }
    if (n > 0 && count == 2 && fds[1].revents != 0) read_heartbeats();
    if (n > 0 && fds[0].revents != 0) read_signals();
    check_deadlines();
  }

  void read_signals() {
    signalfd_siginfo info;
    while (::read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
      } else if (sig == SIGHUP) {
        if (worker_ > 0) {
          spdlog::info("supervisor: SIGHUP: forwarding to worker {}", worker_);
          ::kill(worker_, SIGHUP);
        }
      } else if (!stopping_) {
        begin_stop(sig);
      } else if (worker_ > 0) {
        // A second SIGTERM/SIGINT: the worker stops at once, as it does when run alone.
        ::kill(worker_, SIGTERM);
      }
      if (exit_code_) return;
    }
  }

  void begin_stop(int sig) {
    stopping_ = true;
    restart_at_.reset();
    notify("STOPPING=1");
    // Closing our copy means the socket closes as soon as the draining worker closes its own: new
    // connections are refused from then on instead of waiting in a backlog nobody will accept from.
    if (options_.listen_fd >= 0) {
      ::close(options_.listen_fd);
      options_.listen_fd = -1;
    }
    if (worker_ <= 0) {
      spdlog::info("supervisor: signal {} with no worker running; exiting", sig);
      exit_code_ = 0;
      return;
    }
    spdlog::info("supervisor: signal {}: draining worker {}", sig, worker_);
    stop_deadline_ = Clock::now() + options_.shutdown_grace + options_.config.heartbeat_timeout;
    ::kill(worker_, SIGTERM);
  }

  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      if (pid == worker_) on_worker_exit(status);
      if (exit_code_) return;
    }
  }

  void on_worker_exit(int status) {
    const pid_t pid = worker_;
    worker_ = -1;
    if (heartbeat_fd_ >= 0) {
      ::close(heartbeat_fd_);
      heartbeat_fd_ = -1;
    }
    const std::string what = describe_status(status);
    if (stopping_) {
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (clean)
        spdlog::info("supervisor: worker {} drained and exited", pid);
      else
        spdlog::error("supervisor: worker {} {} while stopping", pid, what);
      exit_code_ = clean ? 0 : 1;
      return;
    }
    const auto now = Clock::now();
    const auto delay = restarts_.next_restart(now);
    if (!delay) {
      const std::string msg = "the worker failed " + std::to_string(restarts_.restarts_in_window() + 1) +
                              " times within " + std::to_string(options_.config.crash_loop_window.count()) +
                              " ms (supervisor.crash_loop_restarts is " +
                              std::to_string(options_.config.crash_loop_restarts) +
                              "): crash loop, giving up; the last worker " + what;
      spdlog::error("supervisor: {}", msg);
      std::fprintf(stderr, "sluice: %s\n", msg.c_str());
      notify("STATUS=crash loop: giving up");
      exit_code_ = 1;
      return;
    }
    spdlog::error("supervisor: worker {} {}; restarting in {} ms", pid, what, delay->count());
    notify("STATUS=worker " + std::to_string(pid) + " " + what + "; restarting");
    restart_at_ = now + *delay;
  }

  void read_heartbeats() {
    char buf[256];
    for (;;) {
      const ssize_t n = ::read(heartbeat_fd_, buf, sizeof(buf));
      if (n > 0) {
        on_heartbeat(std::string_view(buf, static_cast<std::size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        // The worker closed its end (it is exiting); its exit arrives as SIGCHLD.
        ::close(heartbeat_fd_);
        heartbeat_fd_ = -1;
      }
      return;
    }
  }

  void on_heartbeat(std::string_view bytes) {
    if (kill_sent_) return;
    const auto now = Clock::now();
    last_beat_ = now;
    if (!ready_ && bytes.find(kHeartbeatReady) != std::string_view::npos) {
      ready_ = true;
      ready_at_ = now;
      spdlog::info("supervisor: worker {} is ready", worker_);
      if (!sent_ready_) {
        sent_ready_ = true;
        notify("READY=1\nSTATUS=serving (worker " + std::to_string(worker_) + ")");
      } else {
        notify("STATUS=serving (worker " + std::to_string(worker_) + ")");
      }
    }
    if (auto interval = notifier_.watchdog_interval();
        interval && ready_ && (!last_ping_ || now - *last_ping_ >= *interval)) {
      last_ping_ = now;
      notify("WATCHDOG=1");
    }
  }

  void check_deadlines() {
    if (exit_code_) return;
    const auto now = Clock::now();
    if (worker_ > 0 && !kill_sent_ && now >= heartbeat_deadline()) {
      if (ready_)
        spdlog::error("supervisor: worker {} sent no heartbeat for {} ms (timeout {} ms): hung; killing it",
                      worker_, ms_between(last_beat_, now), options_.config.heartbeat_timeout.count());
      else
        spdlog::error("supervisor: worker {} did not become ready within {} ms; killing it", worker_,
                      options_.config.startup_timeout.count());
      kill_worker();
    }
    if (worker_ > 0 && stopping_ && !kill_sent_ && now >= stop_deadline_) {
      spdlog::error("supervisor: worker {} did not finish draining in time; killing it", worker_);
      kill_worker();
    }
    if (worker_ > 0 && ready_ && !stable_ && now >= ready_at_ + options_.config.restart_backoff_max) {
      stable_ = true;
      restarts_.worker_stable();
    }
    if (restart_at_ && now >= *restart_at_) {
      restart_at_.reset();
      spawn();
    }
  }

  void kill_worker() {
    kill_sent_ = true;
    ::kill(worker_, SIGKILL);
  }

  void spawn() {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      spdlog::error("supervisor: cannot create the heartbeat channel: {}", std::strerror(errno));
      on_spawn_failure();
      return;
    }
    ::fcntl(pair[0], F_SETFL, ::fcntl(pair[0], F_GETFL) | O_NONBLOCK);
    // Everything the child needs is built before fork(): the child only makes system calls.
    std::vector<std::string> args = worker_arguments(options_.args, options_.listen_fd, pair[1]);
    args.insert(args.begin(), "sluice");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) {
      spdlog::error("supervisor: fork failed: {}", std::strerror(errno));
      ::close(pair[0]);
      ::close(pair[1]);
      on_spawn_failure();
      return;
    }
    if (pid == 0) {
      ::sigprocmask(SIG_SETMASK, &original_mask_, nullptr);
      // Its own process group: a terminal's Ctrl-C reaches the parent only, which forwards one SIGTERM.
      ::setpgid(0, 0);
      // A parent that dies without stopping the worker (SIGKILL) still gets it drained.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::fcntl(options_.listen_fd, F_SETFD, 0);
      ::fcntl(pair[1], F_SETFD, 0);
      ::execv(options_.executable.c_str(), argv.data());
      const char msg[] = "sluice: supervisor: cannot exec the worker\n";
      [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
      ::_exit(127);
    }
    ::close(pair[1]);
    worker_ = pid;
    heartbeat_fd_ = pair[0];
    spawned_at_ = Clock::now();
    last_beat_ = spawned_at_;
    ready_ = false;
    stable_ = false;
    kill_sent_ = false;
    spdlog::info("supervisor: started worker {}", pid);
  }

  void on_spawn_failure() {
    const auto delay = restarts_.next_restart(Clock::now());
    if (!delay) {
      spdlog::error("supervisor: cannot start a worker; giving up");
      std::fprintf(stderr, "sluice: supervisor: cannot start a worker; giving up\n");
      exit_code_ = 1;
      return;
    }
    restart_at_ = Clock::now() + *delay;
  }

  SupervisorOptions options_;
  RestartPolicy restarts_;
  SdNotifier notifier_;
  sigset_t original_mask_{};
  int signal_fd_ = -1;
  int heartbeat_fd_ = -1;   // our end of the current worker's heartbeat channel
  pid_t worker_ = -1;
  Clock::time_point spawned_at_{};
  Clock::time_point last_beat_{};
  Clock::time_point ready_at_{};
  bool ready_ = false;
  bool stable_ = false;     // this worker has been reported stable to the restart policy
  bool kill_sent_ = false;  // SIGKILL sent; waiting for its exit
  bool sent_ready_ = false; // READY=1 goes to systemd once, for the first worker
  std::optional<Clock::time_point> last_ping_;
  std::optional<Clock::time_point> restart_at_;
  bool stopping_ = false;
  Clock::time_point stop_deadline_{};
  std::optional<int> exit_code_;
};

}  // namespace

std::vector<std::string> worker_arguments(const std::vector<std::string>& args, int listen_fd, int heartbeat_fd) {
  std::vector<std::string> out;
  for (const auto& a : args)
    if (a != "--supervise") out.push_back(a);
  out.push_back("--listen-fd");
  out.push_back(std::to_string(listen_fd));
  out.push_back("--heartbeat-fd");
  out.push_back(std::to_string(heartbeat_fd));
  return out;
}

int run_supervisor(SupervisorOptions options) {
  Supervisor s(std::move(options));
  return s.run();
}

}  // namespace sluice
