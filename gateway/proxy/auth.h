// Client and admin API keys (Bearer tokens) read from environment variables named in the config.
// Keys are compared in constant time (SHA-256 digests compared with CRYPTO_memcmp), so neither the content
// nor the length of a key leaks through timing. Keys never appear in logs or errors.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

class KeySet {
 public:
  KeySet() = default;
  explicit KeySet(const std::vector<std::string>& keys);
  // From an env var holding comma-separated keys; empty name or unset/empty variable = no keys.
  static KeySet from_env(const std::string& env_name);

  bool empty() const { return digests_.empty(); }
  std::size_t size() const { return digests_.size(); }
  // True when `key` is one of the keys. Every stored key is compared, whatever matches first.
  bool contains(std::string_view key) const;
  // Index of the matching key (a stable, non-secret label for per-key limits), or nullopt.
  std::optional<std::size_t> find(std::string_view key) const;

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

// The token of an `Authorization: Bearer <token>` header; nullopt when absent or malformed.
std::optional<std::string_view> bearer_token(std::string_view authorization);

}  // namespace sluice
