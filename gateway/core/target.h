// The contract every target keeps: the embedded engine (`local`) and every remote provider implement Target,
// so admission, fallback, usage accounting, metrics and limits are written once against it.
//
// Target::start(ctx, sink) reports to the Sink, in order: zero or more delta(), then one usage(), then
// finish(reason) -- or, at any point, error(kind, message). Exactly one terminal event (finish or error) is
// reported for every start(), also after cancellation. The caller keeps ctx and sink alive until then.
// Sink methods may be called from any thread; the Sink implementation serialises them.
//
// The first delta is "the first byte": until then the caller may fall back to another target on error; after
// it, an error ends the client's stream with an error frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

namespace sluice {

struct ApiRequest;

// Why a target failed. The policy's fallback triggers are named after these (to_string below).
enum class ErrorKind : std::uint8_t {
  connect_error,     // could not connect / TLS handshake failed / connection reset before the first byte
  timeout,           // connect, first-byte or total timeout, or the request deadline
  upstream_5xx,      // the provider answered 5xx, or a broken response
  rate_limited,      // the provider answered 429
  overloaded,        // the target's concurrency limit is full, or the engine's queue is
  context_too_long,  // the prompt does not fit the target's context
  unsupported,       // the target cannot serve this request (e.g. tools on the local engine)
  unavailable,       // the target is not serving at all (engine not loaded, provider not configured)
  upstream_4xx,      // the provider rejected the request itself (400, 401, 404, ...): relayed, not retried
  cancelled,         // the client went away
  internal,          // a bug or an unexpected state
};

std::string_view to_string(ErrorKind kind);
std::optional<ErrorKind> error_kind_from_string(std::string_view name);

struct TargetError {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  int upstream_status = 0;                        // HTTP status a provider answered, 0 if none
  std::string upstream_body;                      // a provider's JSON error body, relayed for upstream_4xx
  std::chrono::milliseconds retry_after{0};       // from a provider's Retry-After, 0 if none
};

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

struct Delta {
  std::string text;        // local engine: a piece of generated text (always whole UTF-8 sequences)
  std::string raw;         // remote: one upstream SSE `data:` payload (stream) or the whole JSON body
  std::int32_t tokens = 0; // tokens in this piece, when known
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void delta(Delta d) = 0;
  virtual void usage(Usage u) = 0;
  virtual void finish(std::string reason) = 0;
  virtual void error(TargetError e) = 0;

  // Backpressure. has_room() is false while the request's output buffer is full; a producer that sees it
  // stops producing (a remote target stops reading its socket, the engine coalesces tokens) and registers a
  // callback that runs, once, on any thread, when there is room again or the request ends.
  virtual bool has_room() const = 0;
  virtual void notify_when_room(std::function<void()> callback) = 0;
};

// A thread-safe one-shot cancellation: the session fires it when the client goes away or the deadline
// passes; targets register what to do (close the upstream socket, engine cancel(id)).
class CancelSlot {
 public:
  // Runs `fn` on cancel (on the cancelling thread), or at once if already cancelled. One handler at a time:
  // a new one replaces the previous (each attempt of a request installs its own).
  void on_cancel(std::function<void()> fn);
  void clear();
  void cancel();
  bool cancelled() const;

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::function<void()> fn_;
};

struct TargetTimeouts {
  std::chrono::milliseconds connect{0};      // 0: no separate limit (the deadline still applies)
  std::chrono::milliseconds first_byte{0};
  std::chrono::milliseconds total{0};
};

struct RequestContext {
  std::string request_id;
  const ApiRequest* request = nullptr;          // the parsed, validated request
  std::string_view raw_body;                    // the client's JSON body, as sent
  std::string target_model;                     // the model name to ask this target for
  std::chrono::steady_clock::time_point deadline;  // one deadline for the whole request
  TargetTimeouts timeouts;                      // for this attempt (policy target overrides provider)
  CancelSlot cancel;
  boost::asio::any_io_executor executor;        // the connection's strand; remote targets run on it
};

class Target {
 public:
  virtual ~Target() = default;
  virtual const std::string& name() const = 0;
  virtual void start(RequestContext& ctx, Sink& sink) = 0;
};

}  // namespace sluice
