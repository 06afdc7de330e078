#include "gateway/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace sluice {

void Gauge::add(double d) {
  double cur = v_.load(std::memory_order_relaxed);
  while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  if (!(v >= 0)) v = 0;  // negative or NaN durations are clamped: a histogram of durations never goes back
  std::size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micro_.fetch_add(static_cast<std::uint64_t>(std::llround(v * 1e6)), std::memory_order_relaxed);
}

double Histogram::sum() const { return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6; }

double Histogram::quantile(double q) const {
  const std::uint64_t total = count();
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    const std::uint64_t b = bucket(i);
    if (b > 0 && static_cast<double>(seen + b) >= rank) {
      const double lo = i == 0 ? 0.0 : bounds_[i - 1];
      if (i == bounds_.size()) return lo;  // in +Inf: the best estimate is the last finite bound
      const double hi = bounds_[i];
      const double frac = (rank - static_cast<double>(seen)) / static_cast<double>(b);
      return lo + (hi - lo) * std::clamp(frac, 0.0, 1.0);
    }
    seen += b;
  }
  return bounds_.empty() ? 0 : bounds_.back();
}

bool Histogram::merge(const Histogram& other) {
  if (other.bounds_ != bounds_) return false;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].fetch_add(other.bucket(i), std::memory_order_relaxed);
  count_.fetch_add(other.count(), std::memory_order_relaxed);
  sum_micro_.fetch_add(other.sum_micro_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  return true;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

namespace {

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string fmt_double(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

// Inserts an extra label (le="...") into a rendered label set.
std::string with_label(const std::string& rendered, std::string_view extra) {
  if (rendered.empty()) return fmt::format("{{{}}}", extra);
  return fmt::format("{},{}}}", rendered.substr(0, rendered.size() - 1), extra);
}

}  // namespace

std::string render_labels(const MetricsRegistry::Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first;
    out += "=\"";
    out += escape_label(labels[i].second);
    out += '"';
  }
  out += '}';
  return out;
}

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help, Kind kind) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{kind, std::string(help), {}, {}, {}, {}}).first;
  } else if (it->second.kind != kind) {
    // Registering one name as two kinds is a programming error caught by the first test that does it.
    throw std::logic_error("metric registered with two kinds: " + std::string(name));
  }
  return it->second;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& fam = family(name, help, Kind::counter);
  std::string key = render_labels(labels);
  auto& slot = fam.counters[key];
  if (!slot) {
    slot = std::make_unique<Counter>();
    fam.labels.emplace(std::move(key), labels);
  }
  return *slot;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& fam = family(name, help, Kind::gauge);
  std::string key = render_labels(labels);
  auto& slot = fam.gauges[key];
  if (!slot) {
    slot = std::make_unique<Gauge>();
    fam.labels.emplace(std::move(key), labels);
  }
  return *slot;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                                      std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  auto& fam = family(name, help, Kind::histogram);
  std::string key = render_labels(labels);
  auto& slot = fam.histograms[key];
  if (!slot) {
    slot = std::make_unique<Histogram>(std::move(bounds));
    fam.labels.emplace(std::move(key), labels);
  }
  return *slot;
}

std::uint64_t MetricsRegistry::counter_value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto c = it->second.counters.find(render_labels(labels));
  return c == it->second.counters.end() ? 0 : c->second->value();
}

std::uint64_t MetricsRegistry::counter_total(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  std::uint64_t total = 0;
  for (const auto& [_, c] : it->second.counters) total += c->value();
  return total;
}

std::vector<std::pair<MetricsRegistry::Labels, std::uint64_t>> MetricsRegistry::counters(std::string_view name) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<Labels, std::uint64_t>> out;
  auto it = families_.find(name);
  if (it == families_.end()) return out;
  for (const auto& [key, c] : it->second.counters) out.emplace_back(it->second.labels.at(key), c->value());
  return out;
}

std::vector<std::pair<MetricsRegistry::Labels, double>> MetricsRegistry::gauges(std::string_view name) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<Labels, double>> out;
  auto it = families_.find(name);
  if (it == families_.end()) return out;
  for (const auto& [key, g] : it->second.gauges) out.emplace_back(it->second.labels.at(key), g->value());
  return out;
}

std::vector<std::pair<MetricsRegistry::Labels, const Histogram*>> MetricsRegistry::histograms(
    std::string_view name) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<Labels, const Histogram*>> out;
  auto it = families_.find(name);
  if (it == families_.end()) return out;
  for (const auto& [key, h] : it->second.histograms) out.emplace_back(it->second.labels.at(key), h.get());
  return out;
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    const char* type = fam.kind == Kind::counter ? "counter" : fam.kind == Kind::gauge ? "gauge" : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, fam.help, name, type);
    for (const auto& [labels, c] : fam.counters) out += fmt::format("{}{} {}\n", name, labels, c->value());
    for (const auto& [labels, g] : fam.gauges) out += fmt::format("{}{} {}\n", name, labels, fmt_double(g->value()));
    for (const auto& [labels, h] : fam.histograms) {
      std::uint64_t cum = 0;
      for (std::size_t i = 0; i < h->bounds().size(); ++i) {
        cum += h->bucket(i);
        out += fmt::format("{}_bucket{} {}\n", name,
                           with_label(labels, fmt::format("le=\"{}\"", fmt_double(h->bounds()[i]))), cum);
      }
      cum += h->bucket(h->bounds().size());
      out += fmt::format("{}_bucket{} {}\n", name, with_label(labels, "le=\"+Inf\""), cum);
      out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, labels, fmt_double(h->sum()), name, labels,
                         h->count());
    }
  }
  return out;
}

}  // namespace sluice
