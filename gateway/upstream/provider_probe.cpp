// Active health probes of a provider: one GET on a fresh connection, bounded by one deadline for the whole
// exchange (resolve, connect, TLS handshake, request, response).
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "gateway/upstream/provider_target_impl.h"
#include "gateway/upstream/tls_context.h"

namespace sluice {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxProbeBody = 256 * 1024;  // a models list; anything larger is read and dropped

// What the deadline timer and the exchange share: the timer closes the socket and cancels the resolver, so
// whichever step is waiting ends with operation_aborted and the exchange reports a timeout.
struct ProbeState {
  explicit ProbeState(const net::any_io_executor& ex, std::shared_ptr<net::ssl::context> tls)
      : resolver(ex), timer(ex), conn(ex, std::move(tls)) {}
  net::ip::tcp::resolver resolver;
  net::steady_timer timer;
  UpstreamConnection conn;
  bool timed_out = false;
};

struct ProbeResult {
  bool ok = false;
  std::string error;
};

net::awaitable<ProbeResult> probe_exchange(std::shared_ptr<ProviderTargetImpl> impl, ProbeConfig config,
                                           std::shared_ptr<ProbeState> st) {
  const BaseUrl& url = impl->url;
  auto failed = [&](std::string what) {
    return ProbeResult{false, st->timed_out ? "no answer within " + std::to_string(config.timeout.count()) + " ms"
                                            : std::move(what)};
  };
  auto [rec, results] = co_await st->resolver.async_resolve(url.host, std::to_string(url.port),
                                                            net::ip::resolver_base::numeric_service,
                                                            net::as_tuple(net::use_awaitable));
  if (rec || st->timed_out) co_return failed("cannot resolve " + url.host + ": " + rec.message());
  auto& transport = st->conn.transport();
  auto [cec, endpoint] = co_await transport.async_connect(results, net::as_tuple(net::use_awaitable));
  if (cec || st->timed_out) co_return failed("cannot connect to " + url.to_string() + ": " + cec.message());
  if (auto* tls = std::get_if<UpstreamConnection::TlsStream>(&st->conn.stream())) {
    if (auto prepared = prepare_tls_session(tls->native_handle(), url.host, url.host_is_ip,
                                            impl->config.tls_verify);
        !prepared)
      co_return failed(prepared.error().message);
    auto [hec] = co_await tls->async_handshake(net::ssl::stream_base::client, net::as_tuple(net::use_awaitable));
    if (hec || st->timed_out) {
      std::string why = tls_verify_failure(tls->native_handle());
      co_return failed("TLS handshake failed: " + (why.empty() ? hec.message() : why));
    }
  }
  http::request<http::empty_body> req{http::verb::get, url.api_target(config.path), 11};
  req.set(http::field::host, url.host_header());
  req.set(http::field::user_agent, "sluice-probe");
  req.set(http::field::accept, "application/json");
  if (!impl->api_key.empty()) req.set(http::field::authorization, "Bearer " + impl->api_key);
  req.keep_alive(false);
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxProbeBody);
  auto exchange = [&](auto& stream) -> net::awaitable<beast::error_code> {
    auto [wec, written] = co_await http::async_write(stream, req, net::as_tuple(net::use_awaitable));
    if (wec) co_return wec;
    auto [hec, read] = co_await http::async_read_header(stream, st->conn.buffer(), parser,
                                                        net::as_tuple(net::use_awaitable));
    co_return hec;
  };
  const beast::error_code ec = co_await std::visit(exchange, st->conn.stream());
  if (ec || st->timed_out) co_return failed("no answer: " + ec.message());
  const unsigned status = parser.get().result_int();
  if (status < 200 || status >= 300) co_return failed("answered HTTP " + std::to_string(status));
  co_return ProbeResult{true, {}};
}

}  // namespace

void ProviderTarget::probe(const boost::asio::any_io_executor& executor, const ProbeConfig& config,
                           std::function<void(bool ok, std::string error)> done) {
  auto st = std::make_shared<ProbeState>(executor, impl_->tls);
  st->timer.expires_after(config.timeout);
  st->timer.async_wait([st](const beast::error_code& ec) {
    if (ec) return;
    st->timed_out = true;
    st->resolver.cancel();
    st->conn.close();
  });
  net::co_spawn(executor, probe_exchange(impl_, config, st),
                [st, done = std::move(done)](std::exception_ptr e, ProbeResult r) {
                  st->timer.cancel();
                  st->conn.close();
                  if (e) r = ProbeResult{false, "the probe failed internally"};
                  done(r.ok, std::move(r.error));
                });
}

}  // namespace sluice
