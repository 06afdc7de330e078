#include "gateway/upstream/provider_target.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <exception>
#include <limits>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <simdjson.h>

#include "gateway/api/request.h"
#include "gateway/upstream/base_url.h"
#include "gateway/upstream/connection_pool.h"
#include "gateway/upstream/provider_target_impl.h"
#include "gateway/upstream/sse_parser.h"
#include "gateway/upstream/tls_context.h"

namespace sluice {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

namespace {

constexpr ms kMaxRetryAfter{24LL * 3600 * 1000};
constexpr std::size_t kMaxDrainBytes = 64 * 1024;
constexpr std::size_t kMaxClipBytes = 512;  // of a provider's text quoted in an error message

// now + d, bounded by `limit`; d == 0 means no separate limit.
Clock::time_point bounded_after(ms d, Clock::time_point limit) {
  if (d.count() <= 0) return limit;
  const auto now = Clock::now();
  if (limit - now <= d) return limit;
  return now + d;
}

void set_expiry(beast::tcp_stream& t, Clock::time_point at) {
  if (at == Clock::time_point::max())
    t.expires_never();
  else
    t.expires_at(at);
}

bool is_timeout(const beast::error_code& ec) { return ec == beast::error::timeout; }

// The peer went away (closed or reset the connection) rather than sending something malformed.
bool peer_gone(const beast::error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == net::error::not_connected ||
         ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == net::ssl::error::stream_truncated;
}

std::string clip(std::string_view text) {
  if (text.size() <= kMaxClipBytes) return std::string(text);
  return std::string(text.substr(0, kMaxClipBytes)) + "...";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// What the gateway needs from a provider's JSON (a whole response or one stream chunk).
struct JsonFacts {
  bool valid = false;                         // a JSON object
  std::optional<Usage> usage;                 // a non-null "usage" object
  std::optional<std::string> finish_reason;   // the first non-null choices[].finish_reason
  bool empty_choices = false;                 // "choices": []
  bool has_choices = false;
  std::optional<std::string> error;           // a top-level "error" member's message
};

JsonFacts inspect_json(simdjson::dom::parser& parser, std::string_view text) {
  JsonFacts f;
  const simdjson::padded_string padded(text);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return f;
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return f;
  f.valid = true;

  simdjson::dom::object usage;
  if (obj["usage"].get_object().get(usage) == simdjson::SUCCESS) {
    Usage u;
    std::int64_t v = 0;
    if (usage["prompt_tokens"].get_int64().get(v) == simdjson::SUCCESS) u.prompt_tokens = v;
    if (usage["completion_tokens"].get_int64().get(v) == simdjson::SUCCESS) u.completion_tokens = v;
    f.usage = u;
  }
  simdjson::dom::array choices;
  if (obj["choices"].get_array().get(choices) == simdjson::SUCCESS) {
    f.has_choices = true;
    f.empty_choices = choices.size() == 0;
    for (simdjson::dom::element choice : choices) {
      std::string_view reason;
      if (choice["finish_reason"].get_string().get(reason) == simdjson::SUCCESS) {
        f.finish_reason = std::string(reason);
        break;
      }
    }
  }
  simdjson::dom::element error;
  if (obj["error"].get(error) == simdjson::SUCCESS && !error.is_null()) {
    std::string_view message;
    if (error["message"].get_string().get(message) == simdjson::SUCCESS ||
        error.get_string().get(message) == simdjson::SUCCESS)
      f.error = clip(message);
    else
      f.error = "(no message)";
  }
  return f;
}

// A resolve that can be abandoned at its deadline: the resolver's thread may stay blocked in getaddrinfo,
// so the exchange waits on `timer` (cancelled by the completion) instead of on the resolve itself.
struct PendingResolve {
  explicit PendingResolve(const net::any_io_executor& ex) : resolver(ex), timer(ex) {}
  net::ip::tcp::resolver resolver;
  net::steady_timer timer;
  bool done = false;
  beast::error_code ec;
  net::ip::tcp::resolver::results_type results;
};

struct BodyRead {
  beast::error_code ec;
  bool complete = false;   // the parser reached the end of the message
  bool exceeded = false;   // the body went past the limit; `out` holds the first `limit` bytes
};

// One start(): owned by its coroutine (through co_spawn's completion handler) and by the callbacks it
// registers; everything except the constructor runs on the exchange's executor (the client's strand).
class ProviderExchange : public std::enable_shared_from_this<ProviderExchange> {
 public:
  ProviderExchange(std::shared_ptr<ProviderTargetImpl> impl, RequestContext& ctx, Sink& sink)
      : impl_(std::move(impl)),
        ctx_(&ctx),
        sink_(&sink),
        executor_(ctx.executor),
        timeouts_(ctx.timeouts),
        stream_(ctx.request->stream),
        include_usage_(ctx.request->include_usage),
        wake_(ctx.executor) {
    total_deadline_ = ctx.deadline == Clock::time_point{} ? Clock::time_point::max() : ctx.deadline;
    total_deadline_ = bounded_after(timeouts_.total, total_deadline_);
  }

  net::awaitable<void> run();

  // co_spawn's completion: the guarantee of one terminal event, whatever happened.
  void on_exit(std::exception_ptr e) {
    std::string why = "the exchange ended without a result";
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        why = std::string("unexpected failure: ") + ex.what();
      } catch (...) {
        why = "unexpected failure";
      }
    }
    if (!done_) fail(ErrorKind::internal, why);
    release_connection(false);
  }

 private:
  enum class Next { done, retry_fresh };
  enum class EventStep { next, finished, failed };
  using Parser = http::response_parser<http::buffer_body>;

  const std::string& name() const { return impl_->config.name; }

  void build_request();
  net::awaitable<bool> open_connection();
  template <class Stream>
  net::awaitable<Next> converse(Stream& s, bool reused);
  template <class Stream>
  net::awaitable<BodyRead> read_body(Stream& s, Parser& p, std::size_t limit, std::string& out);
  template <class Stream>
  net::awaitable<void> relay_failure(Stream& s, Parser& p, int status);
  template <class Stream>
  net::awaitable<void> relay_whole(Stream& s, Parser& p);
  template <class Stream>
  net::awaitable<void> relay_stream(Stream& s, Parser& p);
  template <class Stream>
  net::awaitable<void> drain(Stream& s, Parser& p);
  net::awaitable<EventStep> on_event(SseEvent& ev);
  net::awaitable<bool> wait_for_room();

  void on_cancel();
  void release_connection(bool reusable);
  void fail(ErrorKind kind, std::string message) { fail(TargetError{kind, std::move(message), 0, {}, ms{0}}); }
  void fail(TargetError e);
  void fail_cancelled() { fail(ErrorKind::cancelled, "the request was cancelled (provider " + name() + ")"); }
  void complete();

  std::shared_ptr<ProviderTargetImpl> impl_;
  RequestContext* ctx_;  // null once the terminal event was reported
  Sink* sink_;           // likewise
  net::any_io_executor executor_;
  TargetTimeouts timeouts_;
  Clock::time_point total_deadline_;
  bool stream_;
  bool include_usage_;
  http::request<http::string_body> request_;
  std::unique_ptr<UpstreamConnection> conn_;
  std::shared_ptr<PendingResolve> resolving_;
  net::steady_timer wake_;  // backpressure wait; cancelled to wake the coroutine
  bool room_ready_ = false;
  bool cancelled_ = false;
  bool done_ = false;       // the terminal event was reported
  std::optional<Usage> usage_;
  std::string finish_reason_;
  simdjson::dom::parser json_;
  std::array<char, 16 * 1024> io_buf_;  // left uninitialised: the parser writes before anything reads
};

void ProviderExchange::build_request() {
  const ApiRequest& req = *ctx_->request;
  request_.method(http::verb::post);
  request_.version(11);
  request_.target(impl_->url.api_target(req.endpoint == Endpoint::chat_completions ? "/chat/completions"
                                                                                   : "/completions"));
  request_.set(http::field::host, impl_->url.host_header());
  request_.set(http::field::user_agent, "sluice");
  request_.set(http::field::content_type, "application/json");
  request_.set(http::field::accept, stream_ ? "text/event-stream" : "application/json");
  if (!impl_->api_key.empty()) request_.set(http::field::authorization, "Bearer " + impl_->api_key);
  request_.keep_alive(true);
  request_.body() = rewrite_for_upstream(ctx_->raw_body, req, ctx_->target_model,
                                         impl_->config.flavor == ProviderFlavor::vllm);
  request_.prepare_payload();
}

net::awaitable<void> ProviderExchange::run() {
  auto self = shared_from_this();
  ctx_->cancel.on_cancel([self] { net::post(self->executor_, [self] { self->on_cancel(); }); });
  if (Clock::now() >= total_deadline_) {
    fail(ErrorKind::timeout, "the request deadline passed before provider " + name() + " was tried");
    co_return;
  }
  build_request();
  bool fresh_only = false;
  for (;;) {
    bool reused = false;
    if (!fresh_only) {
      conn_ = impl_->pool.take();
      reused = conn_ != nullptr;
    }
    if (reused) {
      impl_->reuses.fetch_add(1);
    } else if (!co_await open_connection()) {
      co_return;
    }
    const Next next =
        co_await std::visit([this, reused](auto& s) { return converse(s, reused); }, conn_->stream());
    if (next == Next::done) co_return;
    // A pooled connection the server had already closed: one more try on a new connection.
    impl_->stale_retries.fetch_add(1);
    release_connection(false);
    fresh_only = true;
  }
}

net::awaitable<bool> ProviderExchange::open_connection() {
  const BaseUrl& url = impl_->url;
  const auto connect_deadline = bounded_after(timeouts_.connect, total_deadline_);
  conn_ = std::make_unique<UpstreamConnection>(executor_, impl_->tls);

  auto pending = std::make_shared<PendingResolve>(executor_);
  resolving_ = pending;
  pending->timer.expires_at(connect_deadline);
  pending->resolver.async_resolve(
      url.host, std::to_string(url.port), net::ip::resolver_base::numeric_service,
      net::bind_executor(executor_, [pending](const beast::error_code& ec,
                                              net::ip::tcp::resolver::results_type results) {
        pending->done = true;
        pending->ec = ec;
        pending->results = std::move(results);
        pending->timer.cancel();
      }));
  co_await pending->timer.async_wait(net::as_tuple(net::use_awaitable));
  resolving_.reset();
  if (cancelled_) {
    pending->resolver.cancel();
    fail_cancelled();
    co_return false;
  }
  if (!pending->done) {
    pending->resolver.cancel();
    fail(ErrorKind::timeout, "resolving " + url.host + " for provider " + name() + " timed out");
    co_return false;
  }
  if (pending->ec) {
    fail(ErrorKind::connect_error,
         "cannot resolve " + url.host + " for provider " + name() + ": " + pending->ec.message());
    co_return false;
  }

  auto& transport = conn_->transport();
  set_expiry(transport, connect_deadline);
  auto [cec, endpoint] = co_await transport.async_connect(pending->results, net::as_tuple(net::use_awaitable));
  if (cancelled_) {
    fail_cancelled();
    co_return false;
  }
  if (cec) {
    fail(is_timeout(cec) ? ErrorKind::timeout : ErrorKind::connect_error,
         (is_timeout(cec) ? "connecting to provider " + name() + " (" + url.to_string() + ") timed out"
                          : "cannot connect to provider " + name() + " (" + url.to_string() + "): " +
                                cec.message()));
    co_return false;
  }
  if (auto* tls = std::get_if<UpstreamConnection::TlsStream>(&conn_->stream())) {
    if (auto prepared = prepare_tls_session(tls->native_handle(), url.host, url.host_is_ip,
                                            impl_->config.tls_verify);
        !prepared) {
      fail(ErrorKind::connect_error, "provider " + name() + ": " + prepared.error().message);
      co_return false;
    }
    auto [hec] = co_await tls->async_handshake(net::ssl::stream_base::client, net::as_tuple(net::use_awaitable));
    if (cancelled_) {
      fail_cancelled();
      co_return false;
    }
    if (hec) {
      if (is_timeout(hec)) {
        fail(ErrorKind::timeout, "the TLS handshake with provider " + name() + " timed out");
      } else {
        std::string why = tls_verify_failure(tls->native_handle());
        fail(ErrorKind::connect_error, "the TLS handshake with provider " + name() + " (" + url.to_string() +
                                           ") failed: " + (why.empty() ? hec.message() : why));
      }
      co_return false;
    }
  }
  transport.expires_never();
  impl_->connects.fetch_add(1);
  conn_->count_as_open(impl_->pool.counters());
  co_return true;
}

template <class Stream>
net::awaitable<ProviderExchange::Next> ProviderExchange::converse(Stream& s, bool reused) {
  auto& transport = conn_->transport();
  set_expiry(transport, bounded_after(timeouts_.first_byte, total_deadline_));
  auto [wec, written] = co_await http::async_write(s, request_, net::as_tuple(net::use_awaitable));
  if (cancelled_) {
    fail_cancelled();
    co_return Next::done;
  }
  if (wec) {
    if (is_timeout(wec)) {
      fail(ErrorKind::timeout, "provider " + name() + " did not accept the request in time");
    } else if (reused) {
      co_return Next::retry_fresh;
    } else {
      fail(ErrorKind::connect_error, "cannot send the request to provider " + name() + ": " + wec.message());
    }
    co_return Next::done;
  }

  std::optional<http::response_parser<http::empty_body>> header;
  bool got_interim = false;
  for (;;) {
    header.emplace();
    header->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(impl_->options.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    header->body_limit(std::numeric_limits<std::uint64_t>::max());  // bodies are bounded while read
    auto [rec, n] = co_await http::async_read_header(s, conn_->buffer(), *header, net::as_tuple(net::use_awaitable));
    if (cancelled_) {
      fail_cancelled();
      co_return Next::done;
    }
    if (rec) {
      if (is_timeout(rec)) {
        fail(ErrorKind::timeout, "provider " + name() + " sent no response header in time");
      } else if (peer_gone(rec)) {
        if (reused && !got_interim && !header->got_some() && conn_->buffer().size() == 0)
          co_return Next::retry_fresh;
        fail(ErrorKind::connect_error, "provider " + name() +
                                           " closed the connection before sending a complete response header (" +
                                           rec.message() + ")");
      } else {
        fail(ErrorKind::upstream_5xx, "provider " + name() + " sent a malformed response header: " + rec.message());
      }
      co_return Next::done;
    }
    const int status = header->get().result_int();
    if (status < 100 || status >= 200 || status == 101) break;
    got_interim = true;  // 100 Continue, 103 Early Hints: the final response follows on the same connection
  }

  const int status = header->get().result_int();
  // Not eager: an eager parser that has copied a chunk's data goes on to the next chunk header and, finding
  // it incomplete, waits for more bytes before returning -- which would hold back a delta already received.
  Parser p{std::move(*header)};
  if (status < 200 || status >= 300)
    co_await relay_failure(s, p, status);
  else if (stream_)
    co_await relay_stream(s, p);
  else
    co_await relay_whole(s, p);
  co_return Next::done;
}

template <class Stream>
net::awaitable<BodyRead> ProviderExchange::read_body(Stream& s, Parser& p, std::size_t limit, std::string& out) {
  BodyRead r;
  while (!p.is_done()) {
    p.get().body().data = io_buf_.data();
    p.get().body().size = io_buf_.size();
    auto [ec, n] = co_await http::async_read_some(s, conn_->buffer(), p, net::as_tuple(net::use_awaitable));
    if (ec == http::error::need_buffer) ec = {};
    if (cancelled_) co_return r;
    const std::size_t got = io_buf_.size() - p.get().body().size;
    if (got > limit - out.size()) {
      out.append(io_buf_.data(), limit - out.size());
      r.exceeded = true;
      co_return r;
    }
    out.append(io_buf_.data(), got);
    if (ec) {
      r.ec = ec;
      co_return r;
    }
  }
  r.complete = true;
  co_return r;
}

template <class Stream>
net::awaitable<void> ProviderExchange::relay_failure(Stream& s, Parser& p, int status) {
  TargetError e;
  e.upstream_status = status;
  if (auto ra = p.get()[http::field::retry_after]; !ra.empty())
    e.retry_after = parse_retry_after(std::string_view(ra.data(), ra.size()), std::chrono::system_clock::now());
  // The status is known already: an error body that dribbles in gets the first-byte budget, not the total.
  set_expiry(conn_->transport(), bounded_after(timeouts_.first_byte, total_deadline_));
  const BodyRead r = co_await read_body(s, p, impl_->options.max_error_body_bytes, e.upstream_body);
  if (cancelled_) {
    fail_cancelled();
    co_return;
  }
  release_connection(r.complete && p.keep_alive());
  if (status == 429) {
    e.kind = ErrorKind::rate_limited;
    e.message = "provider " + name() + " is rate limiting (HTTP 429)";
  } else if (status >= 500) {
    e.kind = ErrorKind::upstream_5xx;
    e.message = "provider " + name() + " failed with HTTP " + std::to_string(status);
  } else {
    e.kind = ErrorKind::upstream_4xx;
    e.message = "provider " + name() + " rejected the request with HTTP " + std::to_string(status);
  }
  fail(std::move(e));
}

template <class Stream>
net::awaitable<void> ProviderExchange::relay_whole(Stream& s, Parser& p) {
  set_expiry(conn_->transport(), total_deadline_);
  std::string body;
  const BodyRead r = co_await read_body(s, p, impl_->options.max_response_bytes, body);
  if (cancelled_) {
    fail_cancelled();
    co_return;
  }
  if (r.exceeded) {
    fail(ErrorKind::upstream_5xx, "provider " + name() + " sent a response larger than " +
                                      std::to_string(impl_->options.max_response_bytes) + " bytes");
    co_return;
  }
  if (!r.complete) {
    if (is_timeout(r.ec))
      fail(ErrorKind::timeout, "provider " + name() + " did not complete its response in time");
    else
      fail(ErrorKind::connect_error, "provider " + name() +
                                         " closed the connection before the response was complete (" +
                                         r.ec.message() + ")");
    co_return;
  }
  release_connection(p.keep_alive());
  const JsonFacts facts = inspect_json(json_, body);
  if (!facts.valid) {
    fail(ErrorKind::upstream_5xx, "provider " + name() + " answered with a body that is not a JSON object");
    co_return;
  }
  usage_ = facts.usage;
  finish_reason_ = facts.finish_reason.value_or("");
  Delta d;
  d.raw = std::move(body);
  if (facts.usage && facts.usage->completion_tokens <= std::numeric_limits<std::int32_t>::max())
    d.tokens = static_cast<std::int32_t>(facts.usage->completion_tokens);
  sink_->delta(std::move(d));
  complete();
}

template <class Stream>
net::awaitable<void> ProviderExchange::relay_stream(Stream& s, Parser& p) {
  set_expiry(conn_->transport(), total_deadline_);
  SseParser sse(impl_->options.max_sse_event_bytes);
  std::vector<SseEvent> events;
  for (;;) {
    beast::error_code ec;
    const bool body_done = p.is_done();
    Status<SseParseError> fed = Ok{};
    events.clear();
    if (body_done) {
      // Lenient at the very end: a last event missing its blank line still counts.
      if (sse.has_partial_event()) fed = sse.feed("\n\n", events);
    } else {
      p.get().body().data = io_buf_.data();
      p.get().body().size = io_buf_.size();
      auto [rec, n] = co_await http::async_read_some(s, conn_->buffer(), p, net::as_tuple(net::use_awaitable));
      if (cancelled_) {
        fail_cancelled();
        co_return;
      }
      ec = rec == http::error::need_buffer ? beast::error_code{} : rec;
      const std::size_t got = io_buf_.size() - p.get().body().size;
      fed = sse.feed(std::string_view(io_buf_.data(), got), events);
    }
    for (SseEvent& ev : events) {
      const EventStep step = co_await on_event(ev);
      if (step == EventStep::failed) co_return;
      if (step == EventStep::finished) {
        complete();
        co_await drain(s, p);
        co_return;
      }
    }
    if (!fed) {
      fail(ErrorKind::upstream_5xx, "provider " + name() + ": " + fed.error().message);
      co_return;
    }
    if (ec) {
      if (is_timeout(ec))
        fail(ErrorKind::timeout, "provider " + name() + " did not finish its stream in time");
      else
        fail(ErrorKind::connect_error, "upstream closed the stream before it finished (provider " + name() +
                                           ": " + ec.message() + ")");
      co_return;
    }
    if (body_done) {
      fail(ErrorKind::upstream_5xx, "upstream closed the stream before it finished (provider " + name() +
                                        " ended its response without data: [DONE])");
      co_return;
    }
  }
}

net::awaitable<ProviderExchange::EventStep> ProviderExchange::on_event(SseEvent& ev) {
  if (ev.event == "error") {
    fail(ErrorKind::upstream_5xx, "provider " + name() + " sent an error event: " + clip(ev.data));
    co_return EventStep::failed;
  }
  if (trim(ev.data) == "[DONE]") co_return EventStep::finished;
  const JsonFacts facts = inspect_json(json_, ev.data);
  if (!facts.valid) {
    fail(ErrorKind::upstream_5xx, "provider " + name() + " sent a stream chunk that is not a JSON object");
    co_return EventStep::failed;
  }
  if (facts.error && !facts.has_choices) {
    fail(ErrorKind::upstream_5xx, "provider " + name() + " reported an error in the stream: " + *facts.error);
    co_return EventStep::failed;
  }
  if (facts.usage) usage_ = facts.usage;
  if (facts.finish_reason) finish_reason_ = *facts.finish_reason;
  // The usage-only chunk exists because the rewrite forced include_usage on; the client did not ask for it.
  if (facts.empty_choices && facts.usage && !include_usage_) co_return EventStep::next;
  Delta d;
  d.raw = std::move(ev.data);
  sink_->delta(std::move(d));
  if (!sink_->has_room() && !co_await wait_for_room()) co_return EventStep::failed;
  co_return EventStep::next;
}

net::awaitable<bool> ProviderExchange::wait_for_room() {
  room_ready_ = false;
  auto self = shared_from_this();
  sink_->notify_when_room([self] {
    net::post(self->executor_, [self] {
      self->room_ready_ = true;
      self->wake_.cancel();
    });
  });
  wake_.expires_at(total_deadline_);
  while (!room_ready_ && !cancelled_) {
    auto [ec] = co_await wake_.async_wait(net::as_tuple(net::use_awaitable));
    if (!ec) break;  // expired
  }
  if (cancelled_) {
    fail_cancelled();
    co_return false;
  }
  if (!room_ready_) {
    fail(ErrorKind::timeout, "the client did not take the output of provider " + name() + " in time");
    co_return false;
  }
  co_return true;
}

// After [DONE] the terminal event is out; reading the rest of the body (normally just the last chunk's
// terminator) lets the connection go back to the pool. Touches neither ctx nor sink.
template <class Stream>
net::awaitable<void> ProviderExchange::drain(Stream& s, Parser& p) {
  if (!conn_) co_return;
  set_expiry(conn_->transport(), std::min(total_deadline_, Clock::now() + impl_->options.drain_timeout));
  std::size_t budget = kMaxDrainBytes;
  while (!p.is_done()) {
    p.get().body().data = io_buf_.data();
    p.get().body().size = io_buf_.size();
    auto [ec, n] = co_await http::async_read_some(s, conn_->buffer(), p, net::as_tuple(net::use_awaitable));
    const std::size_t got = io_buf_.size() - p.get().body().size;
    if ((ec && ec != http::error::need_buffer) || got > budget) {
      release_connection(false);
      co_return;
    }
    budget -= got;
  }
  release_connection(p.keep_alive());
}

void ProviderExchange::on_cancel() {
  if (done_ || cancelled_) return;
  cancelled_ = true;
  if (conn_ && conn_->is_open()) {
    conn_->close();
    impl_->cancel_closes.fetch_add(1);
  }
  wake_.cancel();
  if (resolving_) resolving_->timer.cancel();
}

void ProviderExchange::release_connection(bool reusable) {
  if (!conn_) return;
  if (reusable && !cancelled_) {
    conn_->transport().expires_never();
    ++conn_->exchanges;
    impl_->pool.put(std::move(conn_));
  }
  conn_.reset();
}

void ProviderExchange::fail(TargetError e) {
  if (done_) return;
  done_ = true;
  ctx_->cancel.clear();
  release_connection(false);
  Sink* sink = sink_;
  ctx_ = nullptr;
  sink_ = nullptr;
  sink->error(std::move(e));
}

void ProviderExchange::complete() {
  if (done_) return;
  done_ = true;
  ctx_->cancel.clear();
  Sink* sink = sink_;
  ctx_ = nullptr;
  sink_ = nullptr;
  // Providers that send no usage (some do not honour include_usage) are reported as {0, 0}.
  sink->usage(usage_.value_or(Usage{}));
  sink->finish(finish_reason_.empty() ? std::string("stop") : std::move(finish_reason_));
}

}  // namespace
Result<std::unique_ptr<ProviderTarget>, ProviderSetupError> ProviderTarget::create(ProviderConfig config,
                                                                                   std::string api_key,
                                                                                   ProviderTargetOptions options) {
  auto url = parse_base_url(config.base_url);
  if (!url) return fail(ProviderSetupError{"provider " + config.name + ": " + url.error().message});
  for (char c : api_key) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fail(ProviderSetupError{"provider " + config.name + ": the API key contains control characters"});
  }
  std::shared_ptr<net::ssl::context> tls;
  if (url->tls) {
    auto ctx = make_client_tls_context(TlsClientOptions{config.tls_verify, config.ca_file});
    if (!ctx) return fail(ProviderSetupError{"provider " + config.name + ": " + ctx.error().message});
    tls = std::move(ctx.value());
  }
  auto impl = std::make_shared<ProviderTargetImpl>(std::move(config), std::move(api_key), options,
                                                   std::move(url.value()), std::move(tls));
  return std::unique_ptr<ProviderTarget>(new ProviderTarget(std::move(impl)));
}

ProviderTarget::ProviderTarget(std::shared_ptr<ProviderTargetImpl> impl) : impl_(std::move(impl)) {}
ProviderTarget::~ProviderTarget() = default;

const std::string& ProviderTarget::name() const { return impl_->config.name; }

void ProviderTarget::start(RequestContext& ctx, Sink& sink) {
  impl_->requests.fetch_add(1);
  if (ctx.request == nullptr || ctx.executor == nullptr) {
    sink.error(TargetError{ErrorKind::internal, "provider " + impl_->config.name + ": request context incomplete",
                           0, {}, ms{0}});
    return;
  }
  auto exchange = std::make_shared<ProviderExchange>(impl_, ctx, sink);
  net::co_spawn(ctx.executor, exchange->run(), [exchange](std::exception_ptr e) { exchange->on_exit(e); });
}

std::uint64_t ProviderTarget::requests() const { return impl_->requests.load(); }
std::uint64_t ProviderTarget::connects() const { return impl_->connects.load(); }
std::uint64_t ProviderTarget::reuses() const { return impl_->reuses.load(); }
std::uint64_t ProviderTarget::stale_retries() const { return impl_->stale_retries.load(); }
std::uint64_t ProviderTarget::cancel_closes() const { return impl_->cancel_closes.load(); }
std::int64_t ProviderTarget::open_connections() const { return impl_->pool.open_connections(); }
std::size_t ProviderTarget::idle_connections() const { return impl_->pool.idle_connections(); }

std::chrono::milliseconds parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return ms{0};
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    if (value.size() > 9) return kMaxRetryAfter;
    std::int64_t seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    return std::min(ms{seconds * 1000}, kMaxRetryAfter);
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (value.size() != 29 || value.substr(3, 2) != ", " || value.substr(25) != " GMT") return ms{0};
  auto number = [&](std::size_t at, std::size_t len, int& out) {
    out = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (value[i] < '0' || value[i] > '9') return false;
      out = out * 10 + (value[i] - '0');
    }
    return true;
  };
  static constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!number(5, 2, day) || value[7] != ' ' || value[11] != ' ' || !number(12, 4, year) || value[16] != ' ' ||
      !number(17, 2, hour) || value[19] != ':' || !number(20, 2, minute) || value[22] != ':' ||
      !number(23, 2, second))
    return ms{0};
  const auto month_it = std::find(kMonths.begin(), kMonths.end(), value.substr(8, 3));
  if (month_it == kMonths.end() || hour > 23 || minute > 59 || second > 60) return ms{0};
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month_it - kMonths.begin() + 1)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return ms{0};
  const auto at = std::chrono::sys_days{date} + std::chrono::hours{hour} + std::chrono::minutes{minute} +
                  std::chrono::seconds{second};
  const auto delta = std::chrono::duration_cast<ms>(at - now);
  if (delta.count() <= 0) return ms{0};
  return std::min(delta, kMaxRetryAfter);
}

}  // namespace sluice
