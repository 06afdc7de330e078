#include "gateway/supervisor/heartbeat.h"

#include <sys/socket.h>

#include <cerrno>

namespace sluice {

Heartbeat::Heartbeat(boost::asio::io_context& io, int fd, std::chrono::milliseconds interval)
    : timer_(io), fd_(fd), interval_(interval) {}

void Heartbeat::start() {
  send(kHeartbeatReady);
  arm();
}

void Heartbeat::stop() { timer_.cancel(); }

void Heartbeat::send(char byte) {
  // Never blocks and never raises SIGPIPE: a full channel (the parent is slow to read) or a parent that is
  // gone costs one beat, which the parent tolerates up to its heartbeat timeout.
  ssize_t n;
  do {
    n = ::send(fd_, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
}

void Heartbeat::arm() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    send(kHeartbeatBeat);
    arm();
  });
}

}  // namespace sluice
