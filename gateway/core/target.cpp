#include "gateway/core/target.h"

#include <array>
#include <utility>

namespace sluice {

namespace {
constexpr std::array<std::pair<ErrorKind, std::string_view>, 11> kNames{{
    {ErrorKind::connect_error, "connect_error"},
    {ErrorKind::timeout, "timeout"},
    {ErrorKind::upstream_5xx, "upstream_5xx"},
    {ErrorKind::rate_limited, "rate_limited"},
    {ErrorKind::overloaded, "overloaded"},
    {ErrorKind::context_too_long, "context_too_long"},
    {ErrorKind::unsupported, "unsupported"},
    {ErrorKind::unavailable, "unavailable"},
    {ErrorKind::upstream_4xx, "upstream_4xx"},
    {ErrorKind::cancelled, "cancelled"},
    {ErrorKind::internal, "internal"},
}};
}  // namespace

std::string_view to_string(ErrorKind kind) {
  for (const auto& [k, n] : kNames)
    if (k == kind) return n;
  return "internal";
}

std::optional<ErrorKind> error_kind_from_string(std::string_view name) {
  for (const auto& [k, n] : kNames)
    if (n == name) return k;
  return std::nullopt;
}

void CancelSlot::on_cancel(std::function<void()> fn) {
  std::unique_lock lock(mu_);
  if (cancelled_) {
    lock.unlock();
    if (fn) fn();
    return;
  }
  fn_ = std::move(fn);
}

void CancelSlot::clear() {
  std::lock_guard lock(mu_);
  fn_ = nullptr;
}

void CancelSlot::cancel() {
  std::function<void()> fn;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    fn = std::move(fn_);
    fn_ = nullptr;
  }
  if (fn) fn();
}

bool CancelSlot::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

}  // namespace sluice
