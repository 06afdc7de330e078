#include "gateway/admin/dashboard_data.h"

#include <charconv>
#include <map>
#include <optional>
#include <string_view>

#include "gateway/api/json_writer.h"
#include "gateway/health/target_health.h"
#include "gateway/metrics/registry.h"

namespace sluice {

namespace {

using Labels = MetricsRegistry::Labels;

std::string_view label_of(const Labels& labels, std::string_view name) {
  for (const auto& [k, v] : labels)
    if (k == name) return v;
  return {};
}

// The status label as a number; 0 when it is not one.
int status_of(const Labels& labels) {
  const std::string_view s = label_of(labels, "status");
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && ptr == s.data() + s.size() ? v : 0;
}

std::string status_class(int status) {
  if (status < 100 || status > 599) return "other";
  return std::to_string(status / 100) + "xx";
}

// Errors on the dashboard are answers the gateway or its targets failed to give: 5xx. A 4xx is the
// client's mistake or a limit, which the page shows by class and as limiter rejections.
bool is_error(int status) { return status >= 500; }

// Totals of a counter family grouped by one label's value.
std::map<std::string, std::uint64_t> by_label(const MetricsRegistry& m, std::string_view family,
                                              std::string_view label) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& [labels, v] : m.counters(family)) out[std::string(label_of(labels, label))] += v;
  return out;
}

void write_counts(JsonWriter& w, const std::map<std::string, std::uint64_t>& counts) {
  w.begin_object();
  for (const auto& [k, v] : counts) {
    w.key(k);
    w.number(v);
  }
  w.end_object();
}

std::uint64_t sum_of(const std::map<std::string, std::uint64_t>& counts) {
  std::uint64_t total = 0;
  for (const auto& [_, v] : counts) total += v;
  return total;
}

// One histogram family merged over the series whose `label` equals `value` (all series when `label` is
// empty), written with its buckets so the page can take windowed quantiles from successive snapshots.
void write_histogram(JsonWriter& w, const MetricsRegistry& m, std::string_view family, std::string_view label = {},
                     std::string_view value = {}) {
  std::optional<Histogram> merged;
  for (const auto& [labels, h] : m.histograms(family)) {
    if (!label.empty() && label_of(labels, label) != value) continue;
    if (!merged) merged.emplace(h->bounds());
    merged->merge(*h);  // series of one family share the bounds they were registered with
  }
  w.begin_object();
  w.key("count");
  w.number(merged ? merged->count() : std::uint64_t{0});
  w.key("sum");
  w.number(merged ? merged->sum() : 0.0);
  for (auto [key, q] : {std::pair{"p50", 0.5}, std::pair{"p90", 0.9}, std::pair{"p99", 0.99}}) {
    w.key(key);
    w.number(merged ? merged->quantile(q) : 0.0);
  }
  w.key("bounds");
  w.begin_array();
  if (merged)
    for (double b : merged->bounds()) w.number(b);
  w.end_array();
  w.key("buckets");  // not cumulative; one more than bounds (the last is +Inf)
  w.begin_array();
  if (merged)
    for (std::size_t i = 0; i <= merged->bounds().size(); ++i) w.number(merged->bucket(i));
  w.end_array();
  w.end_object();
}

std::optional<double> gauge_of(const MetricsRegistry& m, std::string_view name) {
  auto series = m.gauges(name);
  if (series.empty()) return std::nullopt;
  return series.front().second;
}

void write_engine(JsonWriter& w, const MetricsRegistry& m) {
  const auto running = gauge_of(m, "sluice_engine_running_sequences");
  w.key("engine");
  if (!running) {  // no embedded engine, or its gauges were never published
    w.null();
    return;
  }
  w.begin_object();
  w.key("running");
  w.number(*running);
  for (auto [key, name] : {std::pair{"waiting", "sluice_engine_waiting_sequences"},
                           std::pair{"kv_cache_usage", "sluice_engine_kv_cache_usage"},
                           std::pair{"step_seconds", "sluice_engine_step_seconds"}}) {
    w.key(key);
    w.number(gauge_of(m, name).value_or(0.0));
  }
  w.key("preemptions");
  w.number(static_cast<double>(m.counter_total("sluice_engine_preemptions_total")));
  w.key("healthy");
  w.boolean(gauge_of(m, "sluice_engine_healthy").value_or(1.0) != 0);
  w.end_object();
}

void write_targets(JsonWriter& w, const MetricsRegistry& m, const std::vector<HealthSnapshot>& health) {
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>, std::less<>> requests;  // total, errors
  for (const auto& [labels, v] : m.counters("sluice_requests_total")) {
    auto& r = requests[std::string(label_of(labels, "target"))];
    r.first += v;
    if (is_error(status_of(labels))) r.second += v;
  }
  const auto tokens_in = by_label(m, "sluice_tokens_in_total", "target");
  const auto tokens_out = by_label(m, "sluice_tokens_out_total", "target");
  auto find_or_zero = [](const auto& map, const std::string& k) {
    auto it = map.find(k);
    return it == map.end() ? std::uint64_t{0} : it->second;
  };

  w.key("targets");
  w.begin_array();
  for (const HealthSnapshot& s : health) {
    w.begin_object();
    w.key("target");
    w.string(s.target);
    w.key("state");
    w.string(to_string(s.state));
    w.key("routable");
    w.boolean(s.routable);
    w.key("probe");
    w.string(s.probe_enabled ? to_string(s.probe_status) : "off");
    w.key("engine_healthy");
    w.boolean(s.engine_healthy);
    w.key("consecutive_failures");
    w.number(s.consecutive_failures);
    w.key("last_error_kind");
    if (s.last_error_kind) w.string(to_string(*s.last_error_kind));
    else w.null();
    w.key("successes");
    w.number(s.successes);
    w.key("failures");
    w.number(s.failures);
    auto r = requests.find(s.target);
    w.key("requests");
    w.number(r == requests.end() ? std::uint64_t{0} : r->second.first);
    w.key("errors");
    w.number(r == requests.end() ? std::uint64_t{0} : r->second.second);
    w.key("tokens_in");
    w.number(find_or_zero(tokens_in, s.target));
    w.key("tokens_out");
    w.number(find_or_zero(tokens_out, s.target));
    w.key("ttft");
    write_histogram(w, m, "sluice_time_to_first_token_seconds", "target", s.target);
    w.end_object();
  }
  w.end_array();
}

void write_events(JsonWriter& w, const EventLog& log) {
  w.key("events");
  w.begin_object();
  w.key("total");
  w.number(log.total());
  w.key("recent");
  w.begin_array();
  for (const Event& e : log.recent()) {
    w.begin_object();
    w.key("seq");
    w.number(e.seq);
    w.key("time_ms");
    w.number(e.unix_ms);
    w.key("kind");
    w.string(e.kind);
    w.key("route");
    w.string(e.route);
    w.key("target");
    w.string(e.target);
    w.key("reason");
    w.string(e.reason);
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

}  // namespace

std::string dashboard_json(const MetricsRegistry& m, const std::vector<HealthSnapshot>& health,
                           std::int64_t now_unix_ms) {
  JsonWriter w;
  w.begin_object();
  w.key("now_ms");
  w.number(now_unix_ms);

  write_targets(w, m, health);

  std::map<std::string, std::uint64_t> classes;
  std::uint64_t errors = 0;
  for (const auto& [labels, v] : m.counters("sluice_requests_total")) {
    const int status = status_of(labels);
    classes[status_class(status)] += v;
    if (is_error(status)) errors += v;
  }
  w.key("requests");
  w.begin_object();
  w.key("total");
  w.number(sum_of(classes));
  w.key("errors");
  w.number(errors);
  w.key("by_class");
  write_counts(w, classes);
  w.end_object();

  const auto fallbacks = by_label(m, "sluice_fallbacks_total", "reason");
  w.key("fallbacks");
  w.begin_object();
  w.key("total");
  w.number(sum_of(fallbacks));
  w.key("by_reason");
  write_counts(w, fallbacks);
  w.end_object();

  const auto rejections = by_label(m, "sluice_limiter_rejections_total", "limit");
  w.key("limiter_rejections");
  w.begin_object();
  w.key("total");
  w.number(sum_of(rejections));
  w.key("by_limit");
  write_counts(w, rejections);
  w.end_object();

  w.key("retries");
  w.number(m.counter_total("sluice_retries_total"));
  w.key("stream_errors");
  w.number(m.counter_total("sluice_stream_errors_total"));
  w.key("tokens");
  w.begin_object();
  w.key("in");
  w.number(m.counter_total("sluice_tokens_in_total"));
  w.key("out");
  w.number(m.counter_total("sluice_tokens_out_total"));
  w.end_object();

  w.key("latency");
  write_histogram(w, m, "sluice_request_duration_seconds");
  w.key("ttft");
  write_histogram(w, m, "sluice_time_to_first_token_seconds");

  write_engine(w, m);
  write_events(w, m.events());
  w.end_object();
  return w.take();
}

}  // namespace sluice
