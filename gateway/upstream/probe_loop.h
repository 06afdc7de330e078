// The active probing of one provider: a ProbeSchedule decides when, ProviderTarget::probe does the I/O, and
// each result goes to the provider's TargetHealth (record_probe) and to sluice_probes_total{target,result}.
// Runs on its own strand of the server's io_context until stop() or the io_context stops.
#pragma once

#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "gateway/health/probe_schedule.h"
#include "gateway/health/target_health.h"
#include "gateway/upstream/provider_target.h"

namespace sluice {

class MetricsRegistry;

class ProbeLoop : public std::enable_shared_from_this<ProbeLoop> {
 public:
  // `health` and `metrics` must outlive the loop's work (the App owns all three).
  ProbeLoop(boost::asio::io_context& io, std::shared_ptr<ProviderTarget> target, TargetHealth& health,
            MetricsRegistry& metrics);
  void start();  // the first probe comes after a jittered fraction of the interval
  void stop();   // no probe starts after this; one in flight finishes and is still recorded

 private:
  void arm();
  void fire();

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<ProviderTarget> target_;
  TargetHealth& health_;
  MetricsRegistry& metrics_;
  ProbeConfig config_;
  ProbeSchedule schedule_;
  bool stopped_ = false;
};

}  // namespace sluice
