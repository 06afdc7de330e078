// The state one ProviderTarget shares with its in-flight exchanges and probes (internal to gateway/upstream).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "gateway/config/server_config.h"
#include "gateway/upstream/base_url.h"
#include "gateway/upstream/connection_pool.h"
#include "gateway/upstream/provider_target.h"

namespace sluice {

struct ProviderTargetImpl {
  ProviderTargetImpl(ProviderConfig c, std::string key, ProviderTargetOptions o, BaseUrl u,
                     std::shared_ptr<boost::asio::ssl::context> t)
      : config(std::move(c)),
        api_key(std::move(key)),
        options(o),
        url(std::move(u)),
        tls(std::move(t)),
        pool(PoolOptions{config.pool_size, o.pool_idle_timeout}) {}

  ProviderConfig config;
  std::string api_key;
  ProviderTargetOptions options;
  BaseUrl url;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null for http:// base URLs
  ConnectionPool pool;
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> reuses{0};
  std::atomic<std::uint64_t> stale_retries{0};
  std::atomic<std::uint64_t> cancel_closes{0};
};

}  // namespace sluice
