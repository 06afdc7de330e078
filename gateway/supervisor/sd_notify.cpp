#include "gateway/supervisor/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <utility>

namespace sluice {

namespace {

std::optional<long long> parse_positive(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  long long v = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || p != text->data() + text->size() || v <= 0) return std::nullopt;
  return v;
}

}  // namespace

SdNotifier SdNotifier::from_env(const EnvLookup& lookup, long self_pid) {
  SdNotifier n;
  const auto socket = lookup("NOTIFY_SOCKET");
  // Only filesystem paths and abstract names are unix sockets; other schemes (vsock:) are not supported.
  if (!socket || socket->empty() || (socket->front() != '/' && socket->front() != '@')) return n;
  if (socket->size() >= sizeof(sockaddr_un::sun_path)) return n;
  n.socket_path_ = *socket;
  const auto usec = parse_positive(lookup("WATCHDOG_USEC"));
  const auto pid = parse_positive(lookup("WATCHDOG_PID"));
  if (usec && (!pid || *pid == self_pid)) {
    const long long half_ms = *usec / 2000;
    n.watchdog_interval_ = std::chrono::milliseconds(half_ms > 0 ? half_ms : 1);
  }
  return n;
}

SdNotifier::SdNotifier(SdNotifier&& other) noexcept
    : socket_path_(std::move(other.socket_path_)),
      watchdog_interval_(other.watchdog_interval_),
      fd_(std::exchange(other.fd_, -1)) {
  other.socket_path_.clear();
}

SdNotifier& SdNotifier::operator=(SdNotifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    socket_path_ = std::move(other.socket_path_);
    other.socket_path_.clear();
    watchdog_interval_ = other.watchdog_interval_;
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

Status<std::string> SdNotifier::notify(std::string_view state) {
  if (!enabled()) return Ok{};
  if (fd_ < 0) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return fail(std::string("cannot create the notification socket: ") + std::strerror(errno));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  if (socket_path_.front() == '@') addr.sun_path[0] = '\0';
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  ssize_t sent;
  do {
    sent = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0)
    return fail("cannot notify " + socket_path_ + ": " + std::strerror(errno));
  return Ok{};
}

}  // namespace sluice
