// policies/*.yaml as an immutable snapshot: routes, their targets in priority tiers, retries, fallback
// triggers and limits. A snapshot is built whole and swapped in atomically (policy_store.h); requests keep
// the snapshot they started with. Every key is documented in policies/README.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/util/result.h"
#include "gateway/config/config_error.h"
#include "gateway/core/target.h"

namespace sluice {

struct BucketLimits {
  double requests_per_second = 0;   // 0 = no request bucket
  double burst = 0;                 // bucket size in requests; defaults to requests_per_second
  double tokens_per_minute = 0;     // 0 = no token bucket
};

struct RouteLimits {
  BucketLimits bucket;
  int max_concurrency = 0;          // 0 = unlimited
  int max_queue = 0;                // requests waiting for a slot; beyond it 503
  std::chrono::milliseconds queue_timeout{5'000};  // waiting longer gives 503
};

struct RetryPolicy {
  int max_attempts = 1;             // attempts per target (1 = no retry)
  std::chrono::milliseconds backoff_base{50};
  std::chrono::milliseconds backoff_max{2'000};
  std::set<ErrorKind> retry_on{ErrorKind::connect_error, ErrorKind::upstream_5xx};
};

struct PolicyTarget {
  std::string provider;             // a provider name from the server config, or "local"
  std::string model;                // model name to ask this target for; "" = the requested name
  int tier = 0;                     // lower tiers are tried first
  double weight = 1;                // weighted pick among healthy targets of one tier
  int max_concurrency = 0;          // 0 = unlimited; full counts as `overloaded`
  std::optional<std::chrono::milliseconds> connect_timeout;     // override the provider's defaults
  std::optional<std::chrono::milliseconds> first_byte_timeout;
  std::optional<std::chrono::milliseconds> total_timeout;
  std::string key;                  // "route/provider/model/index": stable identity across reloads
};

struct Route {
  std::string name;
  std::string model;                // exact model name, or a glob with * and ?
  bool is_glob = false;
  std::vector<PolicyTarget> targets;  // sorted by tier, file order within a tier
  RetryPolicy retry;
  std::set<ErrorKind> fallback_on;  // errors that move on to the next target
  RouteLimits limits;
  std::int64_t default_max_tokens = 256;  // token estimate when a request names no max_tokens
  std::string file;                 // where it came from
  int line = 0;
};

struct Policy {
  std::vector<Route> routes;        // exact routes and globs, in file-name then file order
  BucketLimits client_limits;       // per client key, across routes
  std::vector<std::string> files;

  // The route for a requested model: an exact name beats a glob; among globs the first in file-name then
  // file order wins. nullptr when none matches.
  const Route* match(std::string_view model) const;
};

// Reads every policy file (sorted by file name), checks provider names against `known_providers` (plus
// "local"), and returns a snapshot or every problem found with file and line.
Result<std::shared_ptr<const Policy>, ConfigErrors> load_policy(
    const std::vector<std::string>& files, const std::vector<std::string>& known_providers);

Result<std::shared_ptr<const Policy>, ConfigErrors> parse_policy_texts(
    const std::vector<std::pair<std::string, std::string>>& file_and_text,
    const std::vector<std::string>& known_providers);

bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace sluice
