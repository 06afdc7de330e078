// loadgen: an open-loop HTTP/1.1 load generator for latency benchmarks.
//
// Request i is due at start + i/R whatever happened to the requests before it, and its latency is measured
// from that intended time to the last byte of the response. A closed-loop tool (send, wait, send) measures
// from the actual send instead and so hides every queueing delay behind the one slow request that caused it
// (coordinated omission); here a stall shows up in the latency of every request that was due during it.
//
// Connections: a pool of keep-alive connections opened before the clock starts. A due request goes out on
// an idle connection; with none idle a new one is opened (its connect time counts), up to --max-connections;
// past that cap the request waits in a FIFO backlog for the next connection to free up (still timed from its
// intended send). The report says how many connections were opened mid-run and how deep the backlog got, so
// a run where the generator itself could not keep up is visible as such.
//
// Single-threaded (one io_context), so pin it with taskset. Requests due during --warmup are sent but not
// measured. After the last due request it waits up to --drain seconds for answers; what is still unanswered
// then counts as an error ("unfinished").
//
//   loadgen --url http://127.0.0.1:8080/v1/chat/completions --rate 5000 --duration 10 [--warmup 2]
//           [--connections 32] [--max-connections 1024] [--stream] [--body JSON] [--drain 5] [--json]
//           [--samples FILE]   (one "intended_us latency_us" line per measured ok request)
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

constexpr std::string_view kDefaultBody = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
constexpr std::string_view kDefaultStreamBody =
    R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true})";

struct Options {
  std::string host;
  std::uint16_t port = 0;
  std::string path;
  double rate = 1000;
  double duration = 10;
  double warmup = 2;
  double drain = 5;
  long connections = 32;
  long max_connections = 1024;
  bool stream = false;
  std::optional<std::string> body;
  bool json = false;
  std::string samples_path;  // "" = none; else one line per measured ok request
};

struct Job {
  std::uint64_t index = 0;
  TimePoint intended;
  bool measured = false;
  bool backlogged = false;
};

struct Conn {
  explicit Conn(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  beast::flat_buffer buf;
};

std::int64_t micros(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

struct Percentiles {
  std::int64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  double mean = 0;
};

// Nearest-rank percentiles of the sorted samples.
Percentiles percentiles(std::vector<std::int64_t> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = v.back();
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  p.mean = sum / static_cast<double>(v.size());
  return p;
}

class LoadGen {
 public:
  LoadGen(asio::io_context& io, Options opt) : io_(io), opt_(std::move(opt)) {
    endpoint_ = tcp::endpoint(asio::ip::make_address(opt_.host), opt_.port);
    http::request<http::string_body> req{http::verb::post, opt_.path, 11};
    req.set(http::field::host, opt_.host + ":" + std::to_string(opt_.port));
    req.set(http::field::user_agent, "sluice-loadgen");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, opt_.stream ? "text/event-stream" : "application/json");
    req.keep_alive(true);
    req.body() = opt_.body ? *opt_.body : std::string(opt_.stream ? kDefaultStreamBody : kDefaultBody);
    req.prepare_payload();
    std::ostringstream os;
    os << req;
    wire_ = os.str();
    warmup_n_ = static_cast<std::uint64_t>(std::llround(opt_.warmup * opt_.rate));
    total_n_ = warmup_n_ + static_cast<std::uint64_t>(std::llround(opt_.duration * opt_.rate));
  }

  asio::awaitable<void> run() {
    for (long i = 0; i < opt_.connections; ++i) {
      auto c = std::make_shared<Conn>(io_);
      auto [ec] = co_await c->sock.async_connect(endpoint_, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        setup_error_ = "cannot connect to " + opt_.host + ":" + std::to_string(opt_.port) + ": " + ec.message();
        co_return;
      }
      c->sock.set_option(tcp::no_delay(true));
      all_.push_back(c);
      idle_.push_back(c);
      ++open_;
    }
    max_open_ = open_;
    start_ = Clock::now() + std::chrono::milliseconds(20);

    asio::steady_timer timer(io_);
    std::uint64_t i = 0;
    while (i < total_n_) {
      const TimePoint due = intended(i);
      if (Clock::now() < due) {
        timer.expires_at(due);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      const TimePoint now = Clock::now();
      for (; i < total_n_ && intended(i) <= now; ++i) dispatch(Job{i, intended(i), i >= warmup_n_, false});
    }

    const TimePoint give_up = intended(total_n_ - 1) + std::chrono::microseconds(std::llround(opt_.drain * 1e6));
    while (outstanding_ > 0 && Clock::now() < give_up) {
      timer.expires_after(std::chrono::milliseconds(2));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // Anything still unanswered is abandoned: its completion (an aborted read) must not be counted again.
    finished_ = true;
    unfinished_ = measured_outstanding_;
    for (auto& c : all_) {
      beast::error_code ignored;
      c->sock.close(ignored);
    }
  }

  void report(std::FILE* out, double cpu_s) const {
    const auto lat = percentiles(latency_us_);
    const auto ttfb = percentiles(ttfb_us_);
    const auto lag = percentiles(send_lag_us_);
    const std::uint64_t errors = status_errors_ + io_errors_ + unfinished_;
    const double window_s = ok_ == 0 ? 0 : std::chrono::duration<double>(last_done_ - intended(warmup_n_)).count();
    const double achieved = window_s > 0 ? static_cast<double>(ok_) / window_s : 0;
    const std::string url = "http://" + opt_.host + ":" + std::to_string(opt_.port) + opt_.path;
    if (opt_.json) {
      auto pct = [](const Percentiles& p) {
        char b[256];
        std::snprintf(b, sizeof b, R"({"p50":%lld,"p90":%lld,"p99":%lld,"p999":%lld,"max":%lld,"mean":%.1f})",
                      static_cast<long long>(p.p50), static_cast<long long>(p.p90), static_cast<long long>(p.p99),
                      static_cast<long long>(p.p999), static_cast<long long>(p.max), p.mean);
        return std::string(b);
      };
      std::fprintf(out,
                   R"({"url":"%s","rate":%.3f,"duration_s":%.3f,"warmup_s":%.3f,"stream":%s,)"
                   R"("sent":%llu,"ok":%llu,"errors":%llu,"status_errors":%llu,"io_errors":%llu,"unfinished":%llu,)"
                   R"("achieved_rps":%.1f,"latency_us":%s,"ttfb_us":%s,"send_lag_us":%s,)"
                   R"("initial_connections":%ld,"connections_opened_midrun":%llu,"max_open_connections":%ld,)"
                   R"("max_backlog":%zu,"backlogged":%llu,"total_requests":%llu,"total_ok":%llu,)"
                   R"("loadgen_cpu_s":%.3f})"
                   "\n",
                   url.c_str(), opt_.rate, opt_.duration, opt_.warmup, opt_.stream ? "true" : "false",
                   ull(total_n_ - warmup_n_), ull(ok_), ull(errors), ull(status_errors_), ull(io_errors_),
                   ull(unfinished_), achieved, pct(lat).c_str(), pct(ttfb).c_str(), pct(lag).c_str(),
                   opt_.connections, ull(midrun_connects_), max_open_, max_backlog_, ull(backlogged_),
                   ull(total_n_), ull(total_ok_), cpu_s);
      return;
    }
    std::fprintf(out, "target        %s (%s)\n", url.c_str(), opt_.stream ? "stream" : "non-stream");
    std::fprintf(out, "schedule      %.0f req/s for %.1f s after %.1f s warm-up (open loop)\n", opt_.rate,
                 opt_.duration, opt_.warmup);
    std::fprintf(out, "requests      %llu sent, %llu ok, %llu errors (%llu bad status, %llu I/O, %llu unfinished)\n",
                 ull(total_n_ - warmup_n_), ull(ok_), ull(errors), ull(status_errors_), ull(io_errors_),
                 ull(unfinished_));
    std::fprintf(out, "achieved      %.1f req/s\n", achieved);
    std::fprintf(out, "latency us    p50 %lld  p90 %lld  p99 %lld  p99.9 %lld  max %lld  mean %.1f\n",
                 static_cast<long long>(lat.p50), static_cast<long long>(lat.p90), static_cast<long long>(lat.p99),
                 static_cast<long long>(lat.p999), static_cast<long long>(lat.max), lat.mean);
    if (opt_.stream)
      std::fprintf(out, "headers us    p50 %lld  p99 %lld  max %lld (time to the response head)\n",
                   static_cast<long long>(ttfb.p50), static_cast<long long>(ttfb.p99),
                   static_cast<long long>(ttfb.max));
    std::fprintf(out, "send lag us   p50 %lld  p99 %lld  max %lld (actual send - intended send)\n",
                 static_cast<long long>(lag.p50), static_cast<long long>(lag.p99), static_cast<long long>(lag.max));
    std::fprintf(out, "connections   %ld initial, %llu opened mid-run, %ld open at most; backlog max %zu, %llu waited\n",
                 opt_.connections, ull(midrun_connects_), max_open_, max_backlog_, ull(backlogged_));
    std::fprintf(out, "loadgen cpu   %.3f s\n", cpu_s);
  }

  // One line per measured ok request, in completion order: intended send (µs after the start) and latency (µs).
  bool write_samples() const {
    std::FILE* f = std::fopen(opt_.samples_path.c_str(), "w");
    if (f == nullptr) return false;
    std::fputs("# intended_us latency_us\n", f);
    for (const auto& [at, lat] : samples_) std::fprintf(f, "%lld %lld\n", static_cast<long long>(at), static_cast<long long>(lat));
    return std::fclose(f) == 0;
  }

  const std::string& setup_error() const { return setup_error_; }
  bool all_ok() const { return setup_error_.empty() && status_errors_ + io_errors_ + unfinished_ == 0; }

 private:
  static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

  TimePoint intended(std::uint64_t i) const {
    return start_ + std::chrono::nanoseconds(std::llround(static_cast<double>(i) * 1e9 / opt_.rate));
  }

  void dispatch(Job job) {
    ++outstanding_;
    if (job.measured) ++measured_outstanding_;
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      asio::co_spawn(io_, serve(std::move(c), job), asio::detached);
    } else if (open_ < opt_.max_connections) {
      asio::co_spawn(io_, connect_and_serve(job), asio::detached);
    } else {
      job.backlogged = true;
      if (job.measured) ++backlogged_;
      backlog_.push_back(job);
      max_backlog_ = std::max(max_backlog_, backlog_.size());
    }
  }

  asio::awaitable<void> connect_and_serve(Job job) {
    ++open_;
    ++midrun_connects_;
    max_open_ = std::max(max_open_, open_);
    auto c = std::make_shared<Conn>(io_);
    all_.push_back(c);
    auto [ec] = co_await c->sock.async_connect(endpoint_, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      --open_;
      complete(job, Outcome::io_error, {}, {});
      co_return;
    }
    beast::error_code ignored;
    c->sock.set_option(tcp::no_delay(true), ignored);
    co_await serve(std::move(c), job);
  }

  enum class Outcome { ok, bad_status, io_error };

  // Runs `job` on `c`, then keeps the connection busy with the backlog; returns it to the idle pool when the
  // backlog is empty, or drops it when the server closed it or an error broke it.
  asio::awaitable<void> serve(std::shared_ptr<Conn> c, Job job) {
    for (;;) {
      const TimePoint sent = Clock::now();
      if (job.measured) send_lag_us_.push_back(micros(sent - job.intended));
      auto [wec, wn] = co_await asio::async_write(c->sock, asio::buffer(wire_), asio::as_tuple(asio::use_awaitable));
      bool reusable = false;
      if (wec) {
        complete(job, Outcome::io_error, {}, {});
      } else {
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        auto [hec, hn] = co_await http::async_read_header(c->sock, c->buf, parser, asio::as_tuple(asio::use_awaitable));
        const TimePoint head = Clock::now();
        beast::error_code ec = hec;
        if (!ec && !parser.is_done()) {
          auto [bec, bn] = co_await http::async_read(c->sock, c->buf, parser, asio::as_tuple(asio::use_awaitable));
          ec = bec;
        }
        const TimePoint done = Clock::now();
        if (ec) {
          complete(job, Outcome::io_error, {}, {});
        } else {
          const auto& res = parser.get();
          const bool good = res.result_int() == 200 &&
                            (opt_.stream ? res.body().find("data: [DONE]") != std::string::npos : !res.body().empty());
          complete(job, good ? Outcome::ok : Outcome::bad_status, head, done);
          reusable = res.keep_alive();
        }
      }
      if (finished_) co_return;
      if (!reusable) {
        beast::error_code ignored;
        c->sock.close(ignored);
        --open_;
        // The backlog must not be stranded behind a connection that is gone.
        if (!backlog_.empty() && open_ < opt_.max_connections) {
          Job next = backlog_.front();
          backlog_.pop_front();
          co_await connect_and_serve(next);
        }
        co_return;
      }
      if (backlog_.empty()) {
        idle_.push_back(std::move(c));
        co_return;
      }
      job = backlog_.front();
      backlog_.pop_front();
    }
  }

  void complete(const Job& job, Outcome outcome, TimePoint head, TimePoint done) {
    if (finished_) return;
    --outstanding_;
    if (outcome == Outcome::ok) ++total_ok_;
    if (!job.measured) return;
    --measured_outstanding_;
    switch (outcome) {
      case Outcome::ok:
        ++ok_;
        latency_us_.push_back(micros(done - job.intended));
        if (!opt_.samples_path.empty()) samples_.emplace_back(micros(job.intended - start_), latency_us_.back());
        if (opt_.stream) ttfb_us_.push_back(micros(head - job.intended));
        last_done_ = std::max(last_done_, done);
        break;
      case Outcome::bad_status:
        ++status_errors_;
        break;
      case Outcome::io_error:
        ++io_errors_;
        break;
    }
  }

  asio::io_context& io_;
  Options opt_;
  tcp::endpoint endpoint_;
  std::string wire_;  // the serialized request, identical for every send
  std::uint64_t warmup_n_ = 0;
  std::uint64_t total_n_ = 0;
  TimePoint start_;
  std::string setup_error_;

  std::vector<std::shared_ptr<Conn>> all_;   // every connection ever opened, to close them at the end
  std::vector<std::shared_ptr<Conn>> idle_;
  std::deque<Job> backlog_;
  long open_ = 0;                            // connected or connecting
  long max_open_ = 0;
  std::size_t max_backlog_ = 0;
  std::uint64_t outstanding_ = 0;            // dispatched, not completed (warm-up included)
  std::uint64_t measured_outstanding_ = 0;
  bool finished_ = false;

  std::vector<std::int64_t> latency_us_;     // measured, ok: intended send -> last byte
  std::vector<std::int64_t> ttfb_us_;        // measured, ok, stream: intended send -> response head
  std::vector<std::int64_t> send_lag_us_;    // measured: intended send -> actual send
  std::vector<std::pair<std::int64_t, std::int64_t>> samples_;  // with --samples
  std::uint64_t ok_ = 0, status_errors_ = 0, io_errors_ = 0, unfinished_ = 0;
  std::uint64_t total_ok_ = 0;
  std::uint64_t midrun_connects_ = 0, backlogged_ = 0;
  TimePoint last_done_{};
};

constexpr const char* kUsage =
    "usage: loadgen --url http://HOST:PORT[/path] --rate R --duration S [--warmup S] [--connections K]\n"
    "               [--max-connections N] [--stream] [--body JSON] [--drain S] [--json] [--samples FILE]\n"
    "  path defaults to /v1/chat/completions; HOST must be an IP address (or localhost).\n";

bool parse_num(std::string_view s, double lo, double hi, double& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= lo && out <= hi;
}

bool parse_url(std::string_view url, Options& o) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) return false;
  url.remove_prefix(scheme.size());
  const auto slash = url.find('/');
  const std::string_view authority = url.substr(0, slash);
  o.path = slash == std::string_view::npos ? "/v1/chat/completions" : std::string(url.substr(slash));
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) return false;
  o.host = std::string(authority.substr(0, colon));
  if (o.host == "localhost") o.host = "127.0.0.1";
  double port = 0;
  if (!parse_num(authority.substr(colon + 1), 1, 65535, port)) return false;
  o.port = static_cast<std::uint16_t>(port);
  boost::system::error_code ec;
  asio::ip::make_address(o.host, ec);
  return !ec;
}

std::optional<Options> parse_flags(int argc, char** argv) {
  Options o;
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--stream") {
      o.stream = true;
      continue;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a == "--help" || a == "-h" || i + 1 >= argc) return std::nullopt;
    const std::string_view v = argv[++i];
    double n = 0;
    bool good = true;
    if (a == "--url") good = have_url = parse_url(v, o);
    else if (a == "--rate") good = parse_num(v, 0.001, 10'000'000, o.rate);
    else if (a == "--duration") good = parse_num(v, 0.001, 86'400, o.duration);
    else if (a == "--warmup") good = parse_num(v, 0, 86'400, o.warmup);
    else if (a == "--drain") good = parse_num(v, 0, 86'400, o.drain);
    else if (a == "--connections" && (good = parse_num(v, 1, 100'000, n))) o.connections = std::lround(n);
    else if (a == "--max-connections" && (good = parse_num(v, 1, 100'000, n))) o.max_connections = std::lround(n);
    else if (a == "--body") o.body = std::string(v);
    else if (a == "--samples") o.samples_path = std::string(v);
    else good = false;
    if (!good) {
      std::fprintf(stderr, "loadgen: bad option %s %s\n", argv[i - 1], argv[i]);
      return std::nullopt;
    }
  }
  if (!have_url) return std::nullopt;
  if (o.rate * o.duration < 1) {
    std::fprintf(stderr, "loadgen: --rate x --duration must be at least one request\n");
    return std::nullopt;
  }
  o.max_connections = std::max(o.max_connections, o.connections);
  return o;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = parse_flags(argc, argv);
  if (!opt) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  asio::io_context io(1);
  LoadGen gen(io, *opt);
  asio::co_spawn(io, gen.run(), asio::detached);
  io.run();
  if (!gen.setup_error().empty()) {
    std::fprintf(stderr, "loadgen: %s\n", gen.setup_error().c_str());
    return 1;
  }
  gen.report(stdout, cpu_seconds());
  if (!opt->samples_path.empty() && !gen.write_samples()) {
    std::fprintf(stderr, "loadgen: cannot write %s\n", opt->samples_path.c_str());
    return 1;
  }
  return gen.all_ok() ? 0 : 3;
}
