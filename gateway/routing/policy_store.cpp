#include "gateway/routing/policy_store.h"

#include <system_error>

namespace sluice {

PolicyStore::PolicyStore(std::vector<std::string> files, std::vector<std::string> known_providers)
    : files_(std::move(files)), providers_(std::move(known_providers)) {}

std::vector<PolicyStore::Stamp> PolicyStore::stamps() const {
  std::vector<Stamp> out;
  out.reserve(files_.size());
  for (const auto& f : files_) {
    std::error_code ec;
    Stamp s;
    s.mtime = std::filesystem::last_write_time(f, ec);
    if (!ec) {
      s.size = std::filesystem::file_size(f, ec);
      s.exists = !ec;
    }
    out.push_back(s);
  }
  return out;
}

Result<Ok, ConfigErrors> PolicyStore::reload() {
  auto seen = stamps();
  auto loaded = load_policy(files_, providers_);
  {
    std::lock_guard lock(mu_);
    seen_ = std::move(seen);  // a bad file is not retried until it changes again
    if (!loaded) return fail(loaded.error());
    current_ = loaded.value();
    ++generation_;
  }
  if (listener_) listener_(*loaded.value());
  return Ok{};
}

std::shared_ptr<const Policy> PolicyStore::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::uint64_t PolicyStore::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

bool PolicyStore::files_changed() const {
  auto now = stamps();
  std::lock_guard lock(mu_);
  return now != seen_;
}

}  // namespace sluice
