// ProviderTarget: the Target for a remote OpenAI-compatible provider, reached over HTTP/1.1 (TLS for https
// base URLs) through a keep-alive connection pool. One instance per configured provider, shared by all
// requests; start() may be called concurrently from any connection.
//
// What one start() does (on ctx.executor, the client connection's strand):
//  1. takes an idle pooled connection, or resolves, connects and (https) handshakes a new one. Connect
//     failures are connect_error; a pooled connection found dead on write or before any response byte is
//     retried once on a fresh connection.
//  2. POSTs <base path>/v1/chat/completions or /v1/completions (without the /v1 when the base URL's path
//     already ends in a version segment, see BaseUrl::api_target) with the client's body rewritten by
//     rewrite_for_upstream() (model replaced, stream usage forced on, vLLM-only parameters kept only for the
//     vllm flavor), and `Authorization: Bearer <key>` when a key is set. The key never appears in errors.
//  3. maps the response status: 429 -> rate_limited (Retry-After in seconds or as an HTTP date), 5xx ->
//     upstream_5xx, any other non-2xx -> upstream_4xx, all with upstream_status and the (bounded) body.
//  4. non-stream: delta{raw = whole JSON body}, usage, finish(choices[].finish_reason or "stop").
//  5. stream: every SSE data payload is one delta{raw = payload}, forwarded as soon as it is parsed; the
//     usage-only chunk (empty `choices`) is forwarded only when the client asked for include_usage. Usage is
//     reported once, after the last delta and before finish: the last `usage` a chunk carried, or {0, 0}
//     when the provider sent none. `data: [DONE]` gives finish(last finish_reason seen, or "stop"); a stream
//     that ends or breaks before [DONE] is an error, never a finish.
//  6. backpressure: while the sink has no room the upstream socket is not read.
//  7. cancellation (ctx.cancel): the upstream connection is closed at once (never pooled) and the result is
//     error(cancelled).
// Timeouts: connect (per connection attempt), first byte (request sent until the response header), total
// (the whole exchange); each is also bounded by ctx.deadline. A zero timeout means "no separate limit"; a
// default-constructed ctx.deadline means "no deadline".
// Exactly one terminal event (finish or error) is reported per start(); after it neither ctx nor sink is
// touched (a stream's connection may still be drained for reuse on its own afterwards).
// Lifetime: pooled sockets belong to the io_context whose executors ran the requests, so a ProviderTarget
// must be destroyed before that io_context (in-flight exchanges keep its internals alive until they end).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/util/result.h"
#include "gateway/config/server_config.h"
#include "gateway/core/target.h"

namespace sluice {

// Limits of the client itself (the provider's config supplies pool size, TLS settings and timeouts).
struct ProviderTargetOptions {
  std::size_t max_response_bytes = 64 * 1024 * 1024;  // a non-stream body beyond this is upstream_5xx
  std::size_t max_error_body_bytes = 64 * 1024;       // an error body is kept up to this, truncated beyond
  std::size_t max_header_bytes = 64 * 1024;           // a response header beyond this is upstream_5xx
  std::size_t max_sse_event_bytes = 1024 * 1024;      // one stream event beyond this is upstream_5xx
  std::chrono::milliseconds pool_idle_timeout{30'000};  // idle pooled connections older than this are dropped
  std::chrono::milliseconds drain_timeout{2'000};     // reading the rest of a stream after [DONE] for reuse
};

struct ProviderSetupError {
  std::string message;  // names the provider; never contains the key
};

struct ProviderTargetImpl;  // defined in provider_target.cpp

class ProviderTarget final : public Target {
 public:
  // `config.base_url` must be resolved already; `api_key` "" sends no Authorization header.
  static Result<std::unique_ptr<ProviderTarget>, ProviderSetupError> create(ProviderConfig config,
                                                                             std::string api_key,
                                                                             ProviderTargetOptions options = {});
  ~ProviderTarget() override;
  ProviderTarget(const ProviderTarget&) = delete;
  ProviderTarget& operator=(const ProviderTarget&) = delete;

  const std::string& name() const override;
  void start(RequestContext& ctx, Sink& sink) override;

  // Counters, readable from any thread.
  std::uint64_t requests() const;          // start() calls
  std::uint64_t connects() const;          // connections opened (connected and, for https, handshaken)
  std::uint64_t reuses() const;            // exchanges that ran on a pooled connection
  std::uint64_t stale_retries() const;     // pooled connections found dead and replaced by a fresh one
  std::uint64_t cancel_closes() const;     // connections closed because the request was cancelled
  std::int64_t open_connections() const;   // connected sockets now, idle or in use
  std::size_t idle_connections() const;    // sockets waiting in the pool now

  // One active health probe (provider_probe.cpp): GET the API path `config.path` on a fresh connection of its
  // own (never pooled, so a probe sees what a new request would: DNS, connect, TLS), with the provider's key.
  // A 2xx answer within `config.timeout` is a success. `done(ok, error)` is called once, on `executor`.
  void probe(const boost::asio::any_io_executor& executor, const ProbeConfig& config,
             std::function<void(bool ok, std::string error)> done);

 private:
  explicit ProviderTarget(std::shared_ptr<ProviderTargetImpl> impl);
  std::shared_ptr<ProviderTargetImpl> impl_;  // shared with in-flight exchanges, which may outlive this object
};

// The delay a Retry-After value asks for: delay-seconds or an IMF-fixdate HTTP date (relative to `now`).
// Unparseable values and dates in the past give 0; values are capped at 24 hours.
std::chrono::milliseconds parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

}  // namespace sluice
