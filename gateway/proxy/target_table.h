// The targets a route can name: `local` and every configured provider, with what the router needs to know
// about each one at pick time: the provider's default timeouts, how many requests each policy target is
// serving (its own concurrency limit), and until when a provider is skipped after a Retry-After.
// Thread: any (atomics and a mutex).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "gateway/core/target.h"
#include "gateway/routing/policy.h"

namespace sluice {

class TargetTable {
 public:
  using Clock = std::chrono::steady_clock;

  void add(std::shared_ptr<Target> target, TargetTimeouts defaults);
  Target* find(const std::string& name) const;
  TargetTimeouts timeouts_for(const PolicyTarget& pt) const;  // the policy's overrides over the defaults

  // Per policy target in-flight slots. try_enter fails when max_concurrency is reached.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : counter_(std::exchange(o.counter_, nullptr)) {}
    Slot& operator=(Slot&& o) noexcept;
    ~Slot();
    explicit operator bool() const { return counter_ != nullptr; }

   private:
    friend class TargetTable;
    explicit Slot(std::atomic<int>* c) : counter_(c) {}
    std::atomic<int>* counter_ = nullptr;
  };
  Slot try_enter(const PolicyTarget& pt);
  int in_flight(const std::string& key) const;

  void skip_until(const std::string& provider, Clock::time_point until);
  bool skipped(const std::string& provider, Clock::time_point now = Clock::now()) const;

 private:
  struct Entry {
    std::shared_ptr<Target> target;
    TargetTimeouts defaults;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> targets_;
  std::map<std::string, std::unique_ptr<std::atomic<int>>> in_flight_;
  std::map<std::string, Clock::time_point> skip_until_;
};

}  // namespace sluice
