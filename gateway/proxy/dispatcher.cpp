#include "gateway/proxy/dispatcher.h"

#include <algorithm>
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/api/errors.h"
#include "gateway/api/response_format.h"
#include "gateway/health/health_registry.h"
#include "gateway/health/target_health.h"
#include "gateway/http/response_channel.h"
#include "gateway/metrics/registry.h"
#include "gateway/routing/target_picker.h"
#include "gateway/upstream/sse_parser.h"

namespace sluice {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kJson = "application/json";

HeaderList error_headers(const ApiError& e) {
  HeaderList h;
  if (e.retry_after.count() > 0) h.emplace_back("Retry-After", std::to_string(e.retry_after.count()));
  return h;
}

asio::awaitable<void> respond_error(Exchange& ex, const ApiError& e) {
  co_await ex.respond(e.status, error_body(e), kJson, error_headers(e));
}

std::chrono::seconds ceil_seconds(milliseconds ms) {
  auto s = std::chrono::ceil<std::chrono::seconds>(ms);
  return s.count() < 1 ? std::chrono::seconds(1) : s;
}

// Which target served the response (a configured name). Built outside co_await expressions: GCC 12
// mis-compiles braced initializer lists inside them.
HeaderList target_header(const std::string& provider) {
  HeaderList h;
  h.emplace_back("x-sluice-target", provider);
  return h;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

// What one attempt on one target came to.
struct Dispatcher::Attempt {
  enum class State { success, failed_before_first_byte, failed_after_first_byte, client_gone };
  State state = State::failed_before_first_byte;
  TargetError error;
  Usage usage;
  bool have_usage = false;
};

Dispatcher::Dispatcher(DispatcherOptions opts, PolicyStore& policies, Admission& admission,
                       TargetTable& targets, HealthRegistry& health, const KeySet& client_keys,
                       MetricsRegistry& metrics)
    : opts_(opts), policies_(policies), admission_(admission), targets_(targets), health_(health),
      client_keys_(client_keys), metrics_(metrics) {}

int Dispatcher::pick(const Route& route, const std::vector<bool>& tried) {
  double u;
  {
    std::lock_guard lock(rng_mu_);
    u = std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  const auto now = Clock::now();
  return pick_target(
      route, tried,
      [this, now](const PolicyTarget& t) { return targets_.skipped(t.provider, now) || !health_.routable(t.provider, now); },
      u);
}

asio::awaitable<void> Dispatcher::handle(Exchange& ex, Endpoint endpoint) {
  const auto& http_req = ex.request();

  if (!http_req.content_type.empty() &&
      http_req.content_type.substr(0, http_req.content_type.find(';')) != "application/json") {
    co_await respond_error(ex, ApiError::unsupported_media_type("Content-Type must be application/json"));
    co_return;
  }

  std::string client;
  if (!client_keys_.empty()) {
    auto token = bearer_token(http_req.authorization);
    auto idx = token ? client_keys_.find(*token) : std::nullopt;
    if (!idx) {
      metrics_.counter("sluice_auth_failures_total", "requests without a valid client key").inc();
      co_await respond_error(ex, ApiError::unauthorized(
                                     token ? "Incorrect API key provided."
                                           : "Missing API key: send it as 'Authorization: Bearer <key>'."));
      co_return;
    }
    client = fmt::format("key{}", *idx);
  }

  auto parsed = parse_request(endpoint, http_req.body);
  if (!parsed) {
    metrics_.counter("sluice_invalid_requests_total", "requests rejected by validation").inc();
    co_await respond_error(ex, parsed.error());
    co_return;
  }
  const ApiRequest& req = parsed.value();

  auto policy = policies_.current();
  const Route* route = policy ? policy->match(req.model) : nullptr;
  if (!route) {
    co_await respond_error(ex, ApiError::not_found(
                                   fmt::format("The model '{}' does not exist or you do not have access to it.",
                                               req.model.substr(0, 256)),
                                   "model_not_found"));
    co_return;
  }

  const double estimate = estimate_tokens(req.prompt_bytes, req.max_tokens, route->default_max_tokens, req.n);
  if (auto rej = admission_.take(*route, client, estimate)) {
    co_await respond_error(
        ex, ApiError::rate_limited(fmt::format("Rate limit reached ({}); retry later.", rej->limit),
                                   ceil_seconds(rej->retry_after), "rate_limit_exceeded"));
    co_return;
  }

  auto limiter = admission_.limiter(route->name);
  const auto queue_begin = Clock::now();
  Clock::duration queued{0};
  if (limiter) {
    auto timer = std::make_shared<asio::steady_timer>(ex.executor(), route->limits.queue_timeout);
    auto granted = std::make_shared<std::atomic<bool>>(false);
    std::uint64_t ticket = 0;
    auto exec = ex.executor();
    auto admit = limiter->acquire(
        [timer, granted, exec] {
          granted->store(true);
          asio::post(exec, [timer] { timer->cancel(); });
        },
        &ticket);
    if (admit == ConcurrencyLimiter::Admit::rejected) {
      metrics_.counter("sluice_limiter_rejections_total", "requests rejected by a limit",
                       {{"route", route->name}, {"limit", "route_queue_full"}}).inc();
      admission_.reconcile(*route, client, -estimate);
      co_await respond_error(ex, ApiError::overloaded("The route is at its concurrency limit and its queue is full.",
                                                      "queue_full"));
      co_return;
    }
    if (admit == ConcurrencyLimiter::Admit::queued) {
      co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
      queued = Clock::now() - queue_begin;
      if (!granted->load() && limiter->cancel(ticket)) {
        metrics_.counter("sluice_limiter_rejections_total", "requests rejected by a limit",
                         {{"route", route->name}, {"limit", "route_queue_timeout"}}).inc();
        admission_.reconcile(*route, client, -estimate);
        co_await respond_error(ex, ApiError::overloaded("Timed out waiting for a free slot on the route.",
                                                        "queue_timeout"));
        co_return;
      }
    }
  }
  struct Release {
    std::shared_ptr<ConcurrencyLimiter> l;
    ~Release() {
      if (l) l->release();
    }
  } release{limiter};

  co_await run(ex, req, *route, queued, client, estimate);
}

asio::awaitable<void> Dispatcher::run(Exchange& ex, const ApiRequest& req, const Route& route,
                                      std::chrono::steady_clock::duration queued,
                                      const std::string& client, double estimate) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + opts_.request_timeout;
  const std::uint64_t seq = next_id_.fetch_add(1);
  CompletionMeta meta;
  meta.id = fmt::format("{}-{:x}{:08x}", req.endpoint == Endpoint::chat_completions ? "chatcmpl" : "cmpl", seq,
                        static_cast<std::uint32_t>(t0.time_since_epoch().count()));
  meta.created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
  meta.model = req.model;
  meta.endpoint = req.endpoint;

  std::vector<bool> tried(route.targets.size(), false);
  std::optional<TargetError> last_error;
  std::string last_target = "none";
  bool stream_started = false;
  bool first_chunk = true;
  bool overhead_recorded = false;
  bool done = false;
  int status = 0;

  while (!done) {
    const int idx = pick(route, tried);
    if (idx < 0) break;
    tried[idx] = true;
    const PolicyTarget& pt = route.targets[idx];
    last_target = pt.provider;
    Target* target = targets_.find(pt.provider);
    const bool is_local = pt.provider == "local";

    TargetError skip_error;
    bool skip = false;
    TargetTable::Slot slot;
    TargetHealth* health = health_.find(pt.provider);
    HealthPermit permit;
    if (health) permit = health->try_acquire(Clock::now());
    if (health && !permit) {
      skip_error = {ErrorKind::unavailable, fmt::format("target '{}' is unhealthy or its circuit is open", pt.provider)};
      skip = true;
    } else if (!target) {
      skip_error = {ErrorKind::unavailable, fmt::format("target '{}' is not configured", pt.provider)};
      skip = true;
    } else if (targets_.skipped(pt.provider)) {
      skip_error = {ErrorKind::rate_limited, fmt::format("target '{}' asked to wait (Retry-After)", pt.provider)};
      skip = true;
    } else if (!(slot = targets_.try_enter(pt))) {
      skip_error = {ErrorKind::overloaded, fmt::format("target '{}' is at its concurrency limit", pt.provider)};
      skip = true;
    }

    std::optional<TargetError> error;
    if (skip) {
      error = skip_error;
    } else {
      for (int attempt = 1;; ++attempt) {
        if (Clock::now() >= deadline) {
          error = TargetError{ErrorKind::timeout, "the request deadline passed"};
          break;
        }
        if (health && !permit) {
          error = TargetError{ErrorKind::unavailable, fmt::format("target '{}' circuit opened", pt.provider)};
          break;
        }
        auto ctx = std::make_unique<RequestContext>();
        ctx->request_id = meta.id;
        ctx->request = &req;
        ctx->raw_body = ex.request().body;
        ctx->target_model = pt.model.empty() ? req.model : pt.model;
        ctx->deadline = deadline;
        ctx->timeouts = targets_.timeouts_for(pt);
        ctx->executor = ex.executor();
        auto chan = std::make_shared<ResponseChannel>(ex.executor(), opts_.output_buffer_bytes);

        RequestContext* ctxp = ctx.get();
        ex.client_gone().on_cancel([ctxp] { ctxp->cancel.cancel(); });
        // The deadline fires on the strand; `watch` outlives this attempt, and ctx is unhooked from it before
        // ctx goes away, so a timer handler already queued when we cancel it touches nothing.
        struct DeadlineWatch {
          RequestContext* ctx = nullptr;
          bool hit = false;
        };
        auto watch = std::make_shared<DeadlineWatch>(DeadlineWatch{ctxp, false});
        asio::steady_timer deadline_timer(ex.executor(), deadline);
        deadline_timer.async_wait([watch](const boost::system::error_code& ec) {
          if (!ec && watch->ctx) {
            watch->hit = true;
            watch->ctx->cancel.cancel();
          }
        });

        Attempt out;
        std::string body_raw;
        std::string text;
        bool client_gone = false;
        if (!overhead_recorded && ex.request().received_at != Clock::time_point{}) {
          overhead_recorded = true;
          metrics_.histogram("sluice_gateway_overhead_seconds", "request read to hand-off to the first target",
                             {{"route", route.name}})
              .observe(std::chrono::duration<double>(Clock::now() - ex.request().received_at - queued).count());
        }
        std::optional<Clock::time_point> last_delta_at;
        Histogram* inter_token = nullptr;  // looked up at the first gap, not once per chunk
        target->start(*ctx, *chan);
        for (;;) {
          TargetEvent ev = co_await chan->next();
          if (auto* d = std::get_if<Delta>(&ev)) {
            if (client_gone) continue;
            if (!req.stream) {
              if (!d->raw.empty()) body_raw += d->raw;
              else text += d->text;
              continue;
            }
            const auto delta_at = Clock::now();
            if (last_delta_at) {
              if (inter_token == nullptr)
                inter_token = &metrics_.histogram("sluice_inter_token_latency_seconds", "time between streamed chunks",
                                                  {{"route", route.name}, {"target", pt.provider}});
              inter_token->observe(std::chrono::duration<double>(delta_at - *last_delta_at).count());
            }
            last_delta_at = delta_at;
            if (!stream_started) {
              stream_started = true;
              metrics_.histogram("sluice_time_to_first_token_seconds", "time to the first streamed byte",
                                 {{"route", route.name}, {"target", pt.provider}}).observe(seconds_since(t0));
              if (!co_await ex.begin_stream(target_header(pt.provider))) {
                client_gone = true;
                ctxp->cancel.cancel();
                continue;
              }
            }
            std::string frame = d->raw.empty() ? sse_frame(format_stream_chunk(meta, d->text, {}, first_chunk))
                                               : sse_frame(d->raw);
            first_chunk = false;
            if (!co_await ex.write_chunk(std::move(frame))) {
              client_gone = true;
              ctxp->cancel.cancel();
            }
          } else if (auto* u = std::get_if<Usage>(&ev)) {
            out.usage = *u;
            out.have_usage = true;
          } else if (auto* f = std::get_if<FinishEvent>(&ev)) {
            if (client_gone) {
              out.state = Attempt::State::client_gone;
              break;
            }
            out.state = Attempt::State::success;
            if (req.stream) {
              if (!stream_started) {
                stream_started = true;
                co_await ex.begin_stream(target_header(pt.provider));
              }
              if (is_local) {
                co_await ex.write_chunk(sse_frame(format_stream_chunk(meta, "", f->reason, first_chunk)));
                first_chunk = false;
                if (req.include_usage) co_await ex.write_chunk(sse_frame(format_usage_chunk(meta, out.usage)));
              }
              co_await ex.write_chunk(sse_frame("[DONE]"));
              co_await ex.end_stream();
            } else {
              std::string body = !body_raw.empty() ? std::move(body_raw)
                                                   : format_completion(meta, text, f->reason, out.usage);
              co_await ex.respond(200, std::move(body), kJson, target_header(pt.provider));
            }
            break;
          } else if (auto* e = std::get_if<TargetError>(&ev)) {
            out.error = std::move(*e);
            if (watch->hit && out.error.kind == ErrorKind::cancelled)
              out.error = TargetError{ErrorKind::timeout, "the request deadline passed"};
            if (client_gone || (out.error.kind == ErrorKind::cancelled && ex.client_gone().cancelled())) {
              out.state = Attempt::State::client_gone;
            } else if (stream_started) {
              out.state = Attempt::State::failed_after_first_byte;
              const ApiError api = api_error_from_target(out.error);
              co_await ex.write_chunk(sse_frame(error_frame_payload(api)));
              ex.abort_stream();
            } else {
              out.state = Attempt::State::failed_before_first_byte;
            }
            break;
          }
        }
        deadline_timer.cancel();
        watch->ctx = nullptr;
        ex.client_gone().clear();
        chan->close();

        if (out.have_usage) {
          metrics_.counter("sluice_tokens_in_total", "prompt tokens by target", {{"target", pt.provider}})
              .inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, out.usage.prompt_tokens)));
          metrics_.counter("sluice_tokens_out_total", "completion tokens by target", {{"target", pt.provider}})
              .inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, out.usage.completion_tokens)));
        }
        if (health && permit) {
          // A client that went away says nothing about the target: the permit is released unrecorded.
          if (out.state == Attempt::State::success) health->record(permit, Outcome::success(), Clock::now());
          else if (out.state != Attempt::State::client_gone)
            health->record(permit, Outcome::from_error(out.error), Clock::now());
          if (out.state != Attempt::State::success && out.state != Attempt::State::client_gone &&
              attempt < route.retry.max_attempts)
            permit = health->try_acquire(Clock::now());  // the next retry needs a permit of its own
        }
        if (out.state == Attempt::State::success || out.state == Attempt::State::failed_after_first_byte ||
            out.state == Attempt::State::client_gone) {
          if (out.have_usage)
            admission_.reconcile(route, client,
                                 static_cast<double>(out.usage.prompt_tokens + out.usage.completion_tokens) - estimate);
          status = out.state == Attempt::State::success ? 200
                   : out.state == Attempt::State::client_gone ? 499
                                                              : api_error_from_target(out.error).status;
          if (out.state == Attempt::State::failed_after_first_byte)
            metrics_.counter("sluice_stream_errors_total", "streams cut after the first byte",
                             {{"route", route.name}, {"target", pt.provider},
                              {"reason", std::string(to_string(out.error.kind))}}).inc();
          done = true;
          break;
        }

        // Failed before the first byte: retry this target, or move on.
        error = out.error;
        if (error->kind == ErrorKind::rate_limited && error->retry_after.count() > 0)
          targets_.skip_until(pt.provider, Clock::now() + error->retry_after);
        const bool retryable = route.retry.retry_on.count(error->kind) > 0 && error->kind != ErrorKind::rate_limited;
        if (attempt >= route.retry.max_attempts || !retryable) break;
        metrics_.counter("sluice_retries_total", "retries of a target",
                         {{"route", route.name}, {"target", pt.provider}}).inc();
        auto backoff = route.retry.backoff_base * (1LL << std::min(attempt - 1, 20));
        if (backoff > route.retry.backoff_max) backoff = route.retry.backoff_max;
        double jitter;
        {
          std::lock_guard lock(rng_mu_);
          jitter = std::uniform_real_distribution<double>(0.5, 1.0)(rng_);
        }
        auto wait = duration_cast<milliseconds>(backoff * jitter);
        if (Clock::now() + wait >= deadline) break;
        asio::steady_timer sleep(ex.executor(), wait);
        co_await sleep.async_wait(asio::as_tuple(asio::use_awaitable));
      }
    }
    if (done) break;

    last_error = error;
    if (!error || route.fallback_on.count(error->kind) == 0) break;
    if (std::find(tried.begin(), tried.end(), false) != tried.end()) {
      metrics_.counter("sluice_fallbacks_total", "moves to the next target, by reason",
                       {{"route", route.name}, {"reason", std::string(to_string(error->kind))}}).inc();
      metrics_.events().record("fallback", route.name, pt.provider, std::string(to_string(error->kind)));
    }
    spdlog::debug("request {}: target '{}' failed before the first byte ({}: {}); trying the next",
                  meta.id, pt.provider, to_string(error->kind), error->message);
  }

  if (!done) {
    ApiError api = last_error ? api_error_from_target(*last_error)
                              : ApiError::overloaded("No target of the route is available.", "no_target");
    if (last_error && last_error->kind == ErrorKind::cancelled) {
      status = 499;  // the client is gone; there is nobody to answer
    } else {
      status = api.status;
      co_await respond_error(ex, api);
    }
    admission_.reconcile(route, client, -estimate);
  }

  metrics_.counter("sluice_requests_total", "completed requests by route, target and status",
                   {{"route", route.name}, {"target", last_target}, {"status", std::to_string(status)}}).inc();
  metrics_.histogram("sluice_request_duration_seconds", "whole request latency", {{"route", route.name}})
      .observe(seconds_since(t0));
}

}  // namespace sluice
