#include "gateway/proxy/auth.h"

#include <cstdlib>

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace sluice {

namespace {
std::array<unsigned char, 32> digest(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}
}  // namespace

KeySet::KeySet(const std::vector<std::string>& keys) {
  for (const auto& k : keys)
    if (!k.empty()) digests_.push_back(digest(k));
}

KeySet KeySet::from_env(const std::string& env_name) {
  if (env_name.empty()) return {};
  const char* v = std::getenv(env_name.c_str());
  if (!v) return {};
  std::vector<std::string> keys;
  std::string_view rest = v;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto piece = trim(rest.substr(0, comma));
    if (!piece.empty()) keys.emplace_back(piece);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return KeySet(keys);
}

std::optional<std::size_t> KeySet::find(std::string_view key) const {
  const auto d = digest(key);
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < digests_.size(); ++i)
    if (CRYPTO_memcmp(d.data(), digests_[i].data(), d.size()) == 0 && !found) found = i;
  return found;
}

bool KeySet::contains(std::string_view key) const { return find(key).has_value(); }

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  auto a = trim(authorization);
  constexpr std::string_view kPrefix = "bearer ";
  if (a.size() <= kPrefix.size()) return std::nullopt;
  for (std::size_t i = 0; i < kPrefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != kPrefix[i]) return std::nullopt;
  auto token = trim(a.substr(kPrefix.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

}  // namespace sluice
