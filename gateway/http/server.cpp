#include "gateway/http/server.h"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "gateway/api/errors.h"
#include "gateway/metrics/registry.h"

namespace sluice {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

struct HttpServer::Connection {
  explicit Connection(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  std::atomic<bool> idle{true};
  std::uint64_t id = 0;

  void close_from_anywhere() {
    asio::post(stream.get_executor(), [self = this, keep = stream.get_executor()] {
      beast::error_code ec;
      self->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream.socket().close(ec);
    });
  }
};

namespace {

constexpr std::string_view kServerName = "sluice";


class ExchangeImpl final : public Exchange {
 public:
  ExchangeImpl(beast::tcp_stream& stream, IncomingRequest req, bool keep_alive, unsigned version,
               const HttpLimits& limits, const std::array<Counter*, 5>& responses)
      : stream_(stream), req_(std::move(req)), keep_alive_(keep_alive), version_(version), limits_(limits),
        responses_(&responses) {}

  const IncomingRequest& request() const override { return req_; }
  asio::any_io_executor executor() const override { return stream_.get_executor(); }
  CancelSlot& client_gone() override { return gone_; }
  bool broken() const { return broken_; }
  bool keep_alive() const { return keep_alive_ && !broken_; }
  int status() const { return status_; }

  asio::awaitable<bool> respond(int status, std::string body, std::string_view content_type,
                                HeaderList extra) override {
    status_ = status;
    http::response<http::string_body> res{static_cast<http::status>(status), version_};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, content_type);
    for (auto& [k, v] : extra) res.set(k, v);
    res.keep_alive(keep_alive_);
    res.body() = std::move(body);
    res.prepare_payload();
    count(status);
    stream_.expires_after(limits_.write_timeout);
    auto [ec, n] = co_await http::async_write(stream_, res, asio::as_tuple(asio::use_awaitable));
    stream_.expires_never();
    if (ec) broken_ = true;
    co_return !ec;
  }

  asio::awaitable<bool> begin_stream(HeaderList extra) override {
    status_ = 200;
    http::response<http::empty_body> res{http::status::ok, version_};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Accel-Buffering", "no");
    for (auto& [k, v] : extra) res.set(k, v);
    res.keep_alive(keep_alive_);
    res.chunked(true);
    count(200);
    http::response_serializer<http::empty_body> sr{res};
    stream_.expires_after(limits_.write_timeout);
    auto [ec, n] = co_await http::async_write_header(stream_, sr, asio::as_tuple(asio::use_awaitable));
    stream_.expires_never();
    if (ec) broken_ = true;
    co_return !ec;
  }

  asio::awaitable<bool> write_chunk(std::string data) override {
    if (broken_) co_return false;
    stream_.expires_after(limits_.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)),
                                              asio::as_tuple(asio::use_awaitable));
    stream_.expires_never();
    if (ec) broken_ = true;
    co_return !ec;
  }

  asio::awaitable<void> end_stream() override {
    if (broken_) co_return;
    stream_.expires_after(limits_.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream_, http::make_chunk_last(), asio::as_tuple(asio::use_awaitable));
    stream_.expires_never();
    if (ec) broken_ = true;
  }

  void abort_stream() override {
    broken_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

 private:
  void count(int status) {
    const int cls = status / 100;
    (*responses_)[cls >= 1 && cls <= 5 ? cls - 1 : 4]->inc();
  }

  beast::tcp_stream& stream_;
  IncomingRequest req_;
  bool keep_alive_;
  unsigned version_;
  const HttpLimits& limits_;
  const std::array<Counter*, 5>* responses_;  // by status class 1xx..5xx, looked up once by the server
  CancelSlot gone_;
  bool broken_ = false;
  int status_ = 0;
};

// Reads the client's socket while a response is produced, so a client that goes away is noticed at once.
// Bytes that arrive meanwhile (a pipelined request) are kept in `buf` for the next read. Returns only when
// cancelled (the response is done); on disconnect it fires client_gone and keeps waiting.
asio::awaitable<void> watch_client(beast::tcp_stream& stream, beast::flat_buffer& buf, std::size_t cap,
                                   Exchange& ex) {
  for (;;) {
    if (buf.size() >= cap) break;  // a peer pipelining more than a request's worth: stop reading it
    auto [ec, n] = co_await stream.socket().async_read_some(buf.prepare(4096), asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      ex.client_gone().cancel();
      break;
    }
    buf.commit(n);
  }
  asio::steady_timer forever(stream.get_executor(), asio::steady_timer::time_point::max());
  co_await forever.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string path_of(std::string_view target) {
  auto q = target.find('?');
  return std::string(q == std::string_view::npos ? target : target.substr(0, q));
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, HttpLimits limits, Handler handler, MetricsRegistry& metrics)
    : io_(io), limits_(limits), handler_(std::move(handler)), metrics_(metrics), acceptor_(io) {
  // Looked up once: a registry lookup takes a lock and formats labels, too much for every response.
  static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 0; i < 5; ++i)
    responses_[i] = &metrics_.counter("sluice_http_responses_total", "HTTP responses by status class",
                                      {{"class", std::string(kClasses[i])}});
}

HttpServer::~HttpServer() = default;

Result<Ok, std::string> HttpServer::listen(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return fail(std::string("invalid listen address '" + host + "': " + ec.message()));
  tcp::endpoint ep{addr, port};
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  port_ = acceptor_.local_endpoint().port();
  return Ok{};
}

Result<Ok, std::string> HttpServer::adopt(int native_fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(native_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return fail(std::string("inherited listening socket is not valid"));
  boost::system::error_code ec;
  acceptor_.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), native_fd, ec);
  if (ec) return fail("cannot adopt listening socket: " + ec.message());
  port_ = acceptor_.local_endpoint().port();
  return Ok{};
}

void HttpServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

std::size_t HttpServer::open_connections() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

asio::awaitable<void> HttpServer::accept_loop() {
  auto& opened = metrics_.counter("sluice_http_connections_total", "client connections accepted");
  for (;;) {
    auto strand = asio::make_strand(io_);
    auto [ec, sock] = co_await acceptor_.async_accept(strand, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open() || draining_) co_return;
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
        // Out of file descriptors: back off briefly instead of spinning.
        spdlog::warn("accept failed: {}", ec.message());
        asio::steady_timer t(io_, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      continue;
    }
    opened.inc();
    sock.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Connection>(std::move(sock));
    {
      std::lock_guard lock(mu_);
      conn->id = next_id_++;
      connections_.emplace(conn->id, conn);
    }
    asio::co_spawn(strand, serve(conn), [this, conn](std::exception_ptr ep) {
      if (ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          spdlog::error("connection handler failed: {}", e.what());
        }
      }
      {
        std::lock_guard lock(mu_);
        connections_.erase(conn->id);
      }
      check_drained();
    });
  }
}

asio::awaitable<void> HttpServer::serve(std::shared_ptr<Connection> conn) {
  auto& stream = conn->stream;
  beast::flat_buffer buf;
  const std::size_t pipeline_cap = limits_.max_header_bytes + limits_.max_body_bytes;
  bool first = true;
  for (;;) {
    conn->idle = true;
    if (draining_) break;
    if (buf.size() == 0) {
      // Waiting for a request: the idle timeout applies (the read timeout for the very first one).
      stream.expires_after(first ? limits_.read_timeout : limits_.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buf.prepare(4096), asio::as_tuple(asio::use_awaitable));
      if (ec) break;
      buf.commit(n);
    }
    first = false;
    conn->idle = false;

    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser.body_limit(limits_.max_body_bytes);
    stream.expires_after(limits_.read_timeout);
    auto [hec, hn] = co_await http::async_read_header(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
    beast::error_code ec = hec;
    if (!ec && parser.get()[http::field::expect] == "100-continue" && !parser.is_done()) {
      http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
      auto [wec, wn] = co_await http::async_write(stream, cont, asio::as_tuple(asio::use_awaitable));
      ec = wec;
    }
    if (!ec && !parser.is_done()) {
      auto [bec, bn] = co_await http::async_read(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
      ec = bec;
    }
    stream.expires_never();

    if (ec) {
      std::optional<ApiError> err;
      if (ec == http::error::header_limit) err = ApiError::header_too_large("request headers exceed server.limits.max_header_bytes");
      else if (ec == http::error::body_limit) err = ApiError::payload_too_large("request body exceeds server.limits.max_body_bytes");
      else if (ec == beast::error::timeout) err = ApiError::request_timeout("request not received within server.limits.read_timeout_ms");
      else if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::connection_reset &&
               ec != asio::error::operation_aborted && ec != http::error::partial_message)
        err = ApiError::bad_request("malformed HTTP request: " + ec.message());
      if (err) {
        IncomingRequest none;
        ExchangeImpl ex(stream, std::move(none), false, 11, limits_, responses_);
        HeaderList extra;
        co_await ex.respond(err->status, error_body(*err), "application/json", extra);
      }
      break;
    }

    auto& msg = parser.get();
    IncomingRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.path = path_of(req.target);
    req.authorization = std::string(msg[http::field::authorization]);
    req.content_type = std::string(msg[http::field::content_type]);
    req.received_at = std::chrono::steady_clock::now();
    req.body = std::move(msg.body());
    const bool keep_alive = msg.keep_alive() && !draining_;
    ExchangeImpl ex(stream, std::move(req), keep_alive, msg.version(), limits_, responses_);

    co_await (handler_(ex) || watch_client(stream, buf, pipeline_cap, ex));
    if (!ex.keep_alive()) break;
  }
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.socket().close(ec);
}

void HttpServer::drain(std::chrono::milliseconds grace, std::function<void()> done) {
  draining_ = true;
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
  {
    std::lock_guard lock(mu_);
    drained_ = std::move(done);
    for (auto& [id, weak] : connections_)
      if (auto c = weak.lock(); c && c->idle) c->close_from_anywhere();
  }
  // Past the grace period, whatever is still open is closed.
  auto timer = std::make_shared<asio::steady_timer>(io_, grace);
  timer->async_wait([this, timer](const boost::system::error_code&) {
    std::lock_guard lock(mu_);
    for (auto& [id, weak] : connections_)
      if (auto c = weak.lock()) c->close_from_anywhere();
  });
  check_drained();
}

void HttpServer::check_drained() {
  std::function<void()> done;
  {
    std::lock_guard lock(mu_);
    if (!draining_ || !connections_.empty() || !drained_) return;
    done = std::move(drained_);
    drained_ = nullptr;
  }
  asio::post(io_, std::move(done));
}

}  // namespace sluice
