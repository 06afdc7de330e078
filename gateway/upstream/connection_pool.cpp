#include "gateway/upstream/connection_pool.h"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

namespace sluice {

namespace {

std::variant<UpstreamConnection::TcpStream, UpstreamConnection::TlsStream> make_stream(
    const boost::asio::any_io_executor& executor, boost::asio::ssl::context* tls) {
  if (tls) {
    return std::variant<UpstreamConnection::TcpStream, UpstreamConnection::TlsStream>(
        std::in_place_type<UpstreamConnection::TlsStream>, executor, *tls);
  }
  return std::variant<UpstreamConnection::TcpStream, UpstreamConnection::TlsStream>(
      std::in_place_type<UpstreamConnection::TcpStream>, executor);
}

}  // namespace

UpstreamConnection::UpstreamConnection(const boost::asio::any_io_executor& executor,
                                       std::shared_ptr<boost::asio::ssl::context> tls)
    : tls_(std::move(tls)), stream_(make_stream(executor, tls_.get())) {}

UpstreamConnection::~UpstreamConnection() {
  close();
  if (counters_) counters_->open.fetch_sub(1);
}

UpstreamConnection::TcpStream& UpstreamConnection::transport() {
  if (auto* tls = std::get_if<TlsStream>(&stream_)) return tls->next_layer();
  return std::get<TcpStream>(stream_);
}

void UpstreamConnection::close() {
  boost::system::error_code ec;
  auto& t = transport();
  t.socket().close(ec);
  t.expires_never();
}

bool UpstreamConnection::is_open() { return transport().socket().is_open(); }

void UpstreamConnection::count_as_open(std::shared_ptr<PoolCounters> counters) {
  if (counters_ || !counters) return;
  counters_ = std::move(counters);
  counters_->open.fetch_add(1);
  counters_->opened.fetch_add(1);
}

bool UpstreamConnection::looks_reusable() {
  if (!is_open() || buffer_.size() != 0) return false;
  char byte = 0;
  const ssize_t n = ::recv(transport().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // the peer closed it
  if (n > 0) return false;   // unsolicited bytes (an alert, an unasked-for response): not a clean state
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

ConnectionPool::ConnectionPool(PoolOptions options)
    : options_(options), counters_(std::make_shared<PoolCounters>()) {}

ConnectionPool::~ConnectionPool() = default;

std::unique_ptr<UpstreamConnection> ConnectionPool::take() {
  const auto now = std::chrono::steady_clock::now();
  for (;;) {
    std::unique_ptr<UpstreamConnection> c;
    {
      std::lock_guard lock(mu_);
      if (idle_.empty()) return nullptr;
      c = std::move(idle_.back());
      idle_.pop_back();
    }
    if (now - c->idle_since <= options_.idle_timeout && c->looks_reusable()) {
      counters_->reused.fetch_add(1);
      return c;
    }
    counters_->dropped_stale.fetch_add(1);
    // `c` is destroyed here, outside the lock: it has no pending operations.
  }
}

void ConnectionPool::put(std::unique_ptr<UpstreamConnection> connection) {
  if (!connection || !connection->is_open() || connection->buffer().size() != 0 || options_.max_idle == 0)
    return;
  connection->idle_since = std::chrono::steady_clock::now();
  std::unique_ptr<UpstreamConnection> evicted;
  {
    std::lock_guard lock(mu_);
    if (idle_.size() >= options_.max_idle) {
      evicted = std::move(idle_.front());
      idle_.erase(idle_.begin());
    }
    idle_.push_back(std::move(connection));
  }
}

std::size_t ConnectionPool::idle_connections() const {
  std::lock_guard lock(mu_);
  return idle_.size();
}

}  // namespace sluice
