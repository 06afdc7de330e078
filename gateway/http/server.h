// The HTTP/1.1 server: an acceptor and one coroutine per connection on its own strand, over an io_context run
// by N threads. Limits and timeouts come from the config (HttpLimits). Requests are handed to a Handler.
// Graceful stop: stop accepting, close idle keep-alive connections, let in-flight requests finish until the
// grace deadline, then close what is left.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "engine/util/result.h"
#include "gateway/config/server_config.h"
#include "gateway/http/exchange.h"

namespace sluice {

class MetricsRegistry;
class Counter;

// Handles one request; writes the whole response through the exchange.
using Handler = std::function<boost::asio::awaitable<void>(Exchange&)>;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpLimits limits, Handler handler, MetricsRegistry& metrics);
  ~HttpServer();

  // Binds and listens. Port 0 picks a free port (see port()). A listening socket handed over by a parent
  // process can be adopted instead with adopt().
  Result<Ok, std::string> listen(const std::string& host, std::uint16_t port);
  Result<Ok, std::string> adopt(int native_fd);
  std::uint16_t port() const { return port_; }

  void start();                                   // starts accepting
  // Stops accepting and closes idle connections; `done` runs (on the io_context) once no connection is left
  // or the grace period has passed (then remaining connections are closed).
  void drain(std::chrono::milliseconds grace, std::function<void()> done);
  bool draining() const { return draining_.load(); }
  std::size_t open_connections() const;

 private:
  struct Connection;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> conn);
  void check_drained();

  boost::asio::io_context& io_;
  HttpLimits limits_;
  Handler handler_;
  MetricsRegistry& metrics_;
  std::array<Counter*, 5> responses_{};  // sluice_http_responses_total by status class
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> connections_;
  std::function<void()> drained_;
};

}  // namespace sluice
