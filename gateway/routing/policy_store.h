// PolicyStore: the policy snapshot in force. reload() builds a new snapshot from the files and swaps it in
// whole; a file with problems keeps the old snapshot and returns every problem (file:line: message).
// Requests hold the shared_ptr they started with, so a swap never changes a request in flight.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gateway/routing/policy.h"

namespace sluice {

class PolicyStore {
 public:
  PolicyStore(std::vector<std::string> files, std::vector<std::string> known_providers);

  // Loads the files; on success swaps the snapshot in and calls the swap listener.
  Result<Ok, ConfigErrors> reload();
  std::shared_ptr<const Policy> current() const;
  std::uint64_t generation() const;

  // True when a file's modification time or size changed since the last reload() looked at it.
  bool files_changed() const;

  // Called (under no lock) after every successful swap, e.g. to carry limiter state across.
  void on_swap(std::function<void(const Policy&)> listener) { listener_ = std::move(listener); }

 private:
  struct Stamp {
    std::filesystem::file_time_type mtime{};
    std::uintmax_t size = 0;
    bool exists = false;
    bool operator==(const Stamp&) const = default;
  };
  std::vector<Stamp> stamps() const;

  std::vector<std::string> files_;
  std::vector<std::string> providers_;
  mutable std::mutex mu_;
  std::shared_ptr<const Policy> current_;
  std::vector<Stamp> seen_;
  std::uint64_t generation_ = 0;
  std::function<void(const Policy&)> listener_;
};

}  // namespace sluice
