// Keep-alive connections to one provider. An exchange takes a connection (or opens a new one), uses it, and
// gives it back only after it read a response completely and the server allowed keep-alive; a cancelled,
// timed-out or broken exchange closes its connection instead. Idle connections are taken newest first (the
// ones most likely still open) and dropped when they sat idle too long or the peer closed them meanwhile.
//
// Thread-safety: the pool is shared by all connections of the gateway and locks internally. A connection is
// used by one exchange at a time, on that exchange's executor; idle ones have no pending operations.
// Sockets refer to the io_context they were opened on: the pool must be destroyed before it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace sluice {

// Shared by a pool and its connections, so a connection outliving its pool still counts correctly.
struct PoolCounters {
  std::atomic<std::int64_t> open{0};      // connected sockets, idle or in use
  std::atomic<std::uint64_t> opened{0};   // connections ever counted as open
  std::atomic<std::uint64_t> reused{0};   // takes answered from the idle list
  std::atomic<std::uint64_t> dropped_stale{0};  // idle connections found closed or expired
};

class UpstreamConnection {
 public:
  using TcpStream = boost::beast::tcp_stream;
  using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  // A plain connection when `tls` is null, else a TLS one using that context (kept alive by the connection).
  UpstreamConnection(const boost::asio::any_io_executor& executor,
                     std::shared_ptr<boost::asio::ssl::context> tls);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  std::variant<TcpStream, TlsStream>& stream() { return stream_; }
  TcpStream& transport();                        // the TCP layer (timeouts, connect, close)
  boost::beast::flat_buffer& buffer() { return buffer_; }  // bytes read but not yet parsed
  bool is_tls() const { return std::holds_alternative<TlsStream>(stream_); }

  // Closes the socket now; pending operations complete with operation_aborted. Idempotent.
  void close();
  bool is_open();

  // Counts this connection in `counters` until it is destroyed (called once it is connected).
  void count_as_open(std::shared_ptr<PoolCounters> counters);

  // For an idle connection: still open, the peer has not closed it, and nothing unsolicited arrived.
  bool looks_reusable();

  std::chrono::steady_clock::time_point idle_since{};
  std::uint64_t exchanges = 0;                   // responses completed on this connection

 private:
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::variant<TcpStream, TlsStream> stream_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<PoolCounters> counters_;
};

struct PoolOptions {
  std::size_t max_idle = 16;                     // idle connections kept; 0 disables reuse
  std::chrono::milliseconds idle_timeout{30'000};  // an idle connection older than this is dropped
};

class ConnectionPool {
 public:
  explicit ConnectionPool(PoolOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // The newest idle connection that still looks usable, or null. Stale ones met on the way are closed.
  std::unique_ptr<UpstreamConnection> take();

  // Returns a connection whose last response was read completely with keep-alive allowed and whose read
  // buffer is empty; anything else is closed. When the idle list is full the oldest idle one is closed.
  void put(std::unique_ptr<UpstreamConnection> connection);

  const std::shared_ptr<PoolCounters>& counters() const { return counters_; }
  std::int64_t open_connections() const { return counters_->open.load(); }
  std::uint64_t reuses() const { return counters_->reused.load(); }
  std::size_t idle_connections() const;

 private:
  PoolOptions options_;
  std::shared_ptr<PoolCounters> counters_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // oldest first
};

}  // namespace sluice
