#include "gateway/supervisor/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <string>

#include <gtest/gtest.h>

namespace sluice {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A datagram socket bound in the abstract namespace under a name unique to this process.
class Receiver {
 public:
  explicit Receiver(const std::string& tag) {
    name_ = "@sluice-sd-notify-test-" + std::to_string(::getpid()) + "-" + tag;
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Receiver() { ::close(fd_); }
  bool bound() const { return bound_; }
  const std::string& name() const { return name_; }
  std::string receive() {
    char buf[512];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n < 0 ? std::string("<nothing>") : std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST(SdNotifier, DisabledWithoutNotifySocket) {
  SdNotifier n = SdNotifier::from_env(env_of({{"WATCHDOG_USEC", "1000000"}}), 42);
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.watchdog_interval());
  EXPECT_TRUE(n.notify("READY=1"));
}

TEST(SdNotifier, UnsupportedSocketSchemesAreIgnored) {
  EXPECT_FALSE(SdNotifier::from_env(env_of({{"NOTIFY_SOCKET", "vsock:2:1234"}}), 42).enabled());
  EXPECT_FALSE(SdNotifier::from_env(env_of({{"NOTIFY_SOCKET", ""}}), 42).enabled());
  EXPECT_FALSE(SdNotifier::from_env(env_of({{"NOTIFY_SOCKET", "/" + std::string(200, 'x')}}), 42).enabled());
}

TEST(SdNotifier, WatchdogIntervalIsHalfOfWatchdogUsecForThisProcess) {
  auto with = [](std::map<std::string, std::string> extra) {
    extra["NOTIFY_SOCKET"] = "/run/systemd/notify";
    return SdNotifier::from_env(env_of(extra), 42).watchdog_interval();
  };
  EXPECT_EQ(with({{"WATCHDOG_USEC", "10000000"}}), std::chrono::milliseconds(5000));
  EXPECT_EQ(with({{"WATCHDOG_USEC", "10000000"}, {"WATCHDOG_PID", "42"}}), std::chrono::milliseconds(5000));
  EXPECT_FALSE(with({{"WATCHDOG_USEC", "10000000"}, {"WATCHDOG_PID", "43"}}));
  EXPECT_FALSE(with({{"WATCHDOG_USEC", "ten"}}));
  EXPECT_FALSE(with({{"WATCHDOG_USEC", "0"}}));
  EXPECT_FALSE(with({}));
}

TEST(SdNotifier, SendsDatagramsToAnAbstractSocket) {
  Receiver r("abstract");
  ASSERT_TRUE(r.bound());
  SdNotifier n = SdNotifier::from_env(env_of({{"NOTIFY_SOCKET", r.name()}}), 42);
  ASSERT_TRUE(n.enabled());
  ASSERT_TRUE(n.notify("READY=1"));
  ASSERT_TRUE(n.notify("WATCHDOG=1"));
  EXPECT_EQ(r.receive(), "READY=1");
  EXPECT_EQ(r.receive(), "WATCHDOG=1");
}

TEST(SdNotifier, SendsDatagramsToAFilesystemSocket) {
  const std::string path = "/tmp/sluice-sd-notify-test-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  SdNotifier n = SdNotifier::from_env(env_of({{"NOTIFY_SOCKET", path}}), 42);
  ASSERT_TRUE(n.notify("STOPPING=1"));
  char buf[64];
  const ssize_t got = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  ::close(fd);
  ::unlink(path.c_str());
  ASSERT_GT(got, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(got)), "STOPPING=1");
}

TEST(SdNotifier, AMissingSocketIsAnErrorValue) {
  SdNotifier n = SdNotifier::from_env(env_of({{"NOTIFY_SOCKET", "@sluice-nobody-listens-here-" +
                                                                     std::to_string(::getpid())}}), 42);
  auto r = n.notify("READY=1");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot notify"), std::string::npos);
}

}  // namespace
}  // namespace sluice
