// The worker's side of supervision: one byte per heartbeat interval written to the descriptor the parent
// passed (--heartbeat-fd), from a timer on the I/O io_context. A worker whose I/O loop is stuck stops
// beating; a busy engine thread does not stop it. The first byte, kReady, says the worker is listening.
#pragma once

#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice {

inline constexpr char kHeartbeatReady = 'R';
inline constexpr char kHeartbeatBeat = 'H';

class Heartbeat {
 public:
  // `fd` is a stream socket (the supervisor passes one end of a socketpair). Not owned: the process keeps it
  // for its whole life. The io_context must outlive this object.
  Heartbeat(boost::asio::io_context& io, int fd, std::chrono::milliseconds interval);

  // Sends kHeartbeatReady now, then kHeartbeatBeat every interval until stop().
  void start();
  void stop();

 private:
  void send(char byte);
  void arm();

  boost::asio::steady_timer timer_;
  int fd_;
  std::chrono::milliseconds interval_;
};

}  // namespace sluice
