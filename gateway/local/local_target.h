// The `local` target: the embedded engine behind the Target contract. start() turns the typed request into
// a prompt (the model's own chat template) and sampling parameters, submits it to the engine, and relays
// the engine's text to the Sink. The engine's stream callbacks run on the engine thread; the Sink is
// thread-safe. Cancelling the request context cancels the engine request, which frees its KV blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gateway/core/target.h"

namespace sluice {

class Engine;

class LocalTarget final : public Target {
 public:
  explicit LocalTarget(std::shared_ptr<Engine> engine);
  const std::string& name() const override { return name_; }
  void start(RequestContext& ctx, Sink& sink) override;

  // Ends every request that has produced no output yet with `unavailable` (so the dispatcher falls back) and
  // cancels it in the engine. For a hung engine (the watchdog): requests queued behind a stuck step move on
  // instead of waiting for it. Returns how many were ended. Any thread.
  std::size_t abandon_unstarted(const std::string& reason);

 private:
  class SinkStream;
  std::string name_ = "local";
  std::shared_ptr<Engine> engine_;
  std::mutex mu_;
  std::vector<std::pair<std::uint64_t, std::weak_ptr<SinkStream>>> live_;  // submitted requests
};

}  // namespace sluice
