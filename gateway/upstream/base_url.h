// A provider's base_url (`https://host[:port][/prefix]`), parsed and checked once when the provider is set up.
// Only what an upstream client needs is accepted: http or https, a host name or an IP literal (IPv6 in
// brackets), an optional port, and a path prefix. Userinfo, query and fragment are rejected, because a
// request path is appended to the prefix and credentials belong in the API-key variable, not in the URL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/util/result.h"

namespace sluice {

struct BaseUrl {
  bool tls = true;              // https
  std::string host;             // lower-case name or IP literal, IPv6 without brackets
  bool host_is_ip = false;      // an IPv4 or IPv6 literal (no SNI; certificates are checked by IP)
  bool host_is_ipv6 = false;
  std::uint16_t port = 443;     // default 443 for https, 80 for http
  std::string path_prefix;      // "" or "/prefix" without a trailing slash

  // The Host header value: the host (IPv6 in brackets) plus ":port" when not the scheme's default.
  std::string host_header() const;
  // path_prefix + path; `path` starts with '/'.
  std::string target(std::string_view path) const;
  // The request target of an OpenAI API path given without its version (`/chat/completions`). A base URL
  // whose path already ends in a version segment (`/v1`, `/v4`, `/v1beta`: the OpenAI SDKs' convention,
  // `https://api.openai.com/v1`) gets `path` appended as is; any other (`https://host`, `https://host/proxy`)
  // gets `/v1` + `path`. Both spellings of a provider therefore reach the same endpoint.
  std::string api_target(std::string_view path) const;
  // scheme://host[:port]prefix, for messages.
  std::string to_string() const;
};

struct BaseUrlError {
  std::string message;
};

Result<BaseUrl, BaseUrlError> parse_base_url(std::string_view url);

}  // namespace sluice
