// A target that is named in the config but cannot serve: the embedded engine while `engine.enabled` is
// false, or a provider whose base URL variable is unset. Every request gets `unavailable` with the reason,
// which policies usually turn into a fallback; a clear 503 when nothing else serves it.
#pragma once

#include <string>

#include "gateway/core/target.h"

namespace sluice {

class DisabledTarget final : public Target {
 public:
  DisabledTarget(std::string name, std::string reason) : name_(std::move(name)), reason_(std::move(reason)) {}
  const std::string& name() const override { return name_; }
  void start(RequestContext&, Sink& sink) override {
    sink.error(TargetError{ErrorKind::unavailable, reason_});
  }

 private:
  std::string name_;
  std::string reason_;
};

}  // namespace sluice
