#include "gateway/upstream/probe_loop.h"

#include <functional>
#include <random>
#include <string>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "gateway/metrics/registry.h"

namespace sluice {

ProbeLoop::ProbeLoop(boost::asio::io_context& io, std::shared_ptr<ProviderTarget> target, TargetHealth& health,
                     MetricsRegistry& metrics)
    : strand_(boost::asio::make_strand(io)),
      timer_(strand_),
      target_(std::move(target)),
      health_(health),
      metrics_(metrics),
      config_(health.config().probe),
      schedule_(config_, ProbeSchedule::Clock::now(), std::random_device{}()) {}

void ProbeLoop::start() {
  boost::asio::post(strand_, [self = shared_from_this()] { self->arm(); });
}

void ProbeLoop::stop() {
  boost::asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->timer_.cancel();
  });
}

void ProbeLoop::arm() {
  if (stopped_) return;
  timer_.expires_at(schedule_.next_at());
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->fire();
  });
}

void ProbeLoop::fire() {
  if (stopped_) return;
  schedule_.start(ProbeSchedule::Clock::now());
  target_->probe(strand_, config_, [self = shared_from_this()](bool ok, std::string error) {
    const auto before = self->health_.snapshot(ProbeSchedule::Clock::now()).probe_status;
    self->health_.record_probe(ok, ProbeSchedule::Clock::now(), error);
    const auto after = self->health_.snapshot(ProbeSchedule::Clock::now()).probe_status;
    self->metrics_
        .counter("sluice_probes_total", "active health probes by target and result",
                 {{"target", self->target_->name()}, {"result", ok ? "ok" : "failed"}})
        .inc();
    if (before != after) {
      if (after == ProbeStatus::unhealthy)
        spdlog::warn("provider '{}': probes failing ({}); taken out of routing", self->target_->name(), error);
      else if (after == ProbeStatus::healthy)
        spdlog::info("provider '{}': probes succeed; back in routing", self->target_->name());
    }
    self->arm();
  });
}

}  // namespace sluice
