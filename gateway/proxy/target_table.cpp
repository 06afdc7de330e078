#include "gateway/proxy/target_table.h"

namespace sluice {

void TargetTable::add(std::shared_ptr<Target> target, TargetTimeouts defaults) {
  std::lock_guard lock(mu_);
  auto name = target->name();
  targets_[name] = Entry{std::move(target), defaults};
}

Target* TargetTable::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = targets_.find(name);
  return it == targets_.end() ? nullptr : it->second.target.get();
}

TargetTimeouts TargetTable::timeouts_for(const PolicyTarget& pt) const {
  TargetTimeouts t;
  {
    std::lock_guard lock(mu_);
    if (auto it = targets_.find(pt.provider); it != targets_.end()) t = it->second.defaults;
  }
  if (pt.connect_timeout) t.connect = *pt.connect_timeout;
  if (pt.first_byte_timeout) t.first_byte = *pt.first_byte_timeout;
  if (pt.total_timeout) t.total = *pt.total_timeout;
  return t;
}

TargetTable::Slot& TargetTable::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    if (counter_) counter_->fetch_sub(1);
    counter_ = std::exchange(o.counter_, nullptr);
  }
  return *this;
}

TargetTable::Slot::~Slot() {
  if (counter_) counter_->fetch_sub(1);
}

TargetTable::Slot TargetTable::try_enter(const PolicyTarget& pt) {
  std::atomic<int>* c;
  {
    std::lock_guard lock(mu_);
    auto& slot = in_flight_[pt.key];
    if (!slot) slot = std::make_unique<std::atomic<int>>(0);
    c = slot.get();
  }
  int cur = c->load();
  do {
    if (pt.max_concurrency > 0 && cur >= pt.max_concurrency) return Slot{};
  } while (!c->compare_exchange_weak(cur, cur + 1));
  return Slot{c};
}

int TargetTable::in_flight(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = in_flight_.find(key);
  return it == in_flight_.end() ? 0 : it->second->load();
}

void TargetTable::skip_until(const std::string& provider, Clock::time_point until) {
  std::lock_guard lock(mu_);
  auto& t = skip_until_[provider];
  if (until > t) t = until;
}

bool TargetTable::skipped(const std::string& provider, Clock::time_point now) const {
  std::lock_guard lock(mu_);
  auto it = skip_until_.find(provider);
  return it != skip_until_.end() && now < it->second;
}

}  // namespace sluice
