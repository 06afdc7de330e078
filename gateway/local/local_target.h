// The `local` target: the embedded engine behind the Target contract. start() turns the typed request into
// a prompt (the model's own chat template) and sampling parameters, submits it to the engine, and relays
// the engine's text to the Sink. The engine's stream callbacks run on the engine thread; the Sink is
// thread-safe. Cancelling the request context cancels the engine request, which frees its KV blocks.
#pragma once

#include <memory>
#include <string>

#include "gateway/core/target.h"

namespace sluice {

class Engine;

class LocalTarget final : public Target {
 public:
  explicit LocalTarget(std::shared_ptr<Engine> engine);
  const std::string& name() const override { return name_; }
  void start(RequestContext& ctx, Sink& sink) override;

 private:
  std::string name_ = "local";
  std::shared_ptr<Engine> engine_;
};

}  // namespace sluice
