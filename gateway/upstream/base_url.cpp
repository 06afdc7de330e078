#include "gateway/upstream/base_url.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace sluice {

namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// RFC 3986 path characters: unreserved, pct-encoded, sub-delims, ':' '@' and '/'.
bool valid_path(std::string_view p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (c == '%') {
      if (i + 2 >= p.size() || !is_hex(p[i + 1]) || !is_hex(p[i + 2])) return false;
      i += 2;
      continue;
    }
    if (std::string_view("-._~!$&'()*+,;=:@/").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool valid_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    const char c = h[i];
    if (c == '.') {
      if (label == 0) return false;  // empty label: leading dot or ".."
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return label != 0;  // no trailing dot
}

Result<BaseUrl, BaseUrlError> bad(std::string_view url, std::string why) {
  return fail(BaseUrlError{"base_url '" + std::string(url) + "': " + std::move(why)});
}

}  // namespace

Result<BaseUrl, BaseUrlError> parse_base_url(std::string_view url) {
  BaseUrl out;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return bad(url, "expected http:// or https://");
  const std::string_view scheme = url.substr(0, sep);
  if (iequals(scheme, "https")) {
    out.tls = true;
    out.port = 443;
  } else if (iequals(scheme, "http")) {
    out.tls = false;
    out.port = 80;
  } else {
    return bad(url, "scheme must be http or https");
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find('?') != std::string_view::npos) return bad(url, "a query string is not allowed");
  if (rest.find('#') != std::string_view::npos) return bad(url, "a fragment is not allowed");

  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos)
    return bad(url, "credentials in the URL are not allowed; name the key's environment variable instead");
  if (authority.empty()) return bad(url, "missing host");

  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad(url, "unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad(url, "unexpected text after the IPv6 literal");
      port_text = after.substr(1);
      has_port = true;
    }
    in6_addr addr{};
    if (host.find('%') != std::string_view::npos) return bad(url, "IPv6 zone identifiers are not supported");
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) return bad(url, "invalid IPv6 literal");
    out.host_is_ip = true;
    out.host_is_ipv6 = true;
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (host.empty()) return bad(url, "missing host");
    if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
      in_addr addr{};
      if (inet_pton(AF_INET, std::string(host).c_str(), &addr) != 1) return bad(url, "invalid IPv4 address");
      out.host_is_ip = true;
    } else if (!valid_host_name(host)) {
      return bad(url, "invalid host name");
    }
  }
  for (char c : host) out.host.push_back(lower(c));

  if (has_port) {
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string_view::npos)
      return bad(url, "invalid port");
    unsigned long p = 0;
    for (char c : port_text) p = p * 10 + static_cast<unsigned long>(c - '0');
    if (p == 0 || p > 65535) return bad(url, "port must be between 1 and 65535");
    out.port = static_cast<std::uint16_t>(p);
  }

  if (!valid_path(path)) return bad(url, "invalid characters in the path");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.path_prefix = std::string(path);
  return out;
}

std::string BaseUrl::host_header() const {
  std::string h = host_is_ipv6 ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

std::string BaseUrl::target(std::string_view path) const { return path_prefix + std::string(path); }

std::string BaseUrl::api_target(std::string_view path) const {
  // The last path segment ("" when there is no prefix): `v`, a digit, then lower-case letters or digits.
  const std::string_view last = std::string_view(path_prefix).substr(path_prefix.rfind('/') + 1);
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  const bool versioned = last.size() >= 2 && last[0] == 'v' && last[1] >= '0' && last[1] <= '9' &&
                         std::all_of(last.begin(), last.end(), lower_or_digit);
  return path_prefix + (versioned ? "" : "/v1") + std::string(path);
}

std::string BaseUrl::to_string() const {
  std::string h = host_is_ipv6 ? "[" + host + "]" : host;
  return (tls ? "https://" : "http://") + h + ":" + std::to_string(port) + path_prefix;
}

}  // namespace sluice
