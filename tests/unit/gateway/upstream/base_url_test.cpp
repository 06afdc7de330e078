#include "gateway/upstream/base_url.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

struct Good {
  const char* url;
  bool tls;
  const char* host;
  int port;
  const char* prefix;
  const char* host_header;
  bool is_ip;
};

TEST(BaseUrl, AcceptedForms) {
  const Good cases[] = {
      {"https://api.openai.com", true, "api.openai.com", 443, "", "api.openai.com", false},
      {"https://api.openai.com/", true, "api.openai.com", 443, "", "api.openai.com", false},
      {"HTTPS://API.Example.COM:8443/v2//", true, "api.example.com", 8443, "/v2", "api.example.com:8443", false},
      {"http://localhost", false, "localhost", 80, "", "localhost", false},
      {"http://127.0.0.1:8000/openai/proxy", false, "127.0.0.1", 8000, "/openai/proxy", "127.0.0.1:8000", true},
      {"http://10.0.0.2:80", false, "10.0.0.2", 80, "", "10.0.0.2", true},
      {"https://[::1]:9443/x", true, "::1", 9443, "/x", "[::1]:9443", true},
      {"https://[2001:DB8::1]", true, "2001:db8::1", 443, "", "[2001:db8::1]", true},
      {"https://my_host.internal:443/a%20b", true, "my_host.internal", 443, "/a%20b", "my_host.internal", false},
  };
  for (const auto& c : cases) {
    auto r = parse_base_url(c.url);
    ASSERT_TRUE(r.ok()) << c.url << ": " << r.error().message;
    EXPECT_EQ(r->tls, c.tls) << c.url;
    EXPECT_EQ(r->host, c.host) << c.url;
    EXPECT_EQ(r->port, c.port) << c.url;
    EXPECT_EQ(r->path_prefix, c.prefix) << c.url;
    EXPECT_EQ(r->host_header(), c.host_header) << c.url;
    EXPECT_EQ(r->host_is_ip, c.is_ip) << c.url;
  }
}

TEST(BaseUrl, TargetJoinsPrefixAndPath) {
  auto r = parse_base_url("https://h/api/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->target("/v1/chat/completions"), "/api/v1/chat/completions");
  EXPECT_EQ(r->to_string(), "https://h:443/api");
}

TEST(BaseUrl, ApiTargetAddsTheVersionOnlyWhenTheBaseHasNone) {
  const std::pair<const char*, const char*> cases[] = {
      {"https://api.openai.com", "/v1/chat/completions"},
      {"https://api.openai.com/v1", "/v1/chat/completions"},
      {"https://api.openai.com/v1/", "/v1/chat/completions"},
      {"http://localhost:8000/proxy", "/proxy/v1/chat/completions"},
      {"https://open.example.cn/api/paas/v4", "/api/paas/v4/chat/completions"},
      {"https://g.example.com/v1beta", "/v1beta/chat/completions"},
      {"https://h.example.com/video", "/video/v1/chat/completions"},
      {"https://h.example.com/v", "/v/v1/chat/completions"},
      {"https://h.example.com/V1", "/V1/v1/chat/completions"},
  };
  for (const auto& [url, expected] : cases) {
    auto r = parse_base_url(url);
    ASSERT_TRUE(r.ok()) << url;
    EXPECT_EQ(r->api_target("/chat/completions"), expected) << url;
  }
}

TEST(BaseUrl, RejectedForms) {
  const char* bad[] = {
      "",
      "api.openai.com",                   // no scheme
      "ftp://host",                       // scheme
      "https://",                         // no host
      "https:///path",                    // no host
      "https://user:pw@host",             // userinfo
      "https://host/path?x=1",            // query
      "https://host/#frag",               // fragment
      "https://host:",                    // empty port
      "https://host:0",                   // port range
      "https://host:65536",
      "https://host:12ab",
      "https://host:123456",
      "https://[::1",                     // unterminated
      "https://[::1]x",
      "https://[not-ipv6]",
      "https://[fe80::1%25eth0]",         // zone id
      "https://999.1.1.1",                // bad IPv4
      "https://1.2.3",
      "https://ho st",
      "https://host..com",
      "https://.host",
      "https://host./",
      "https://host/pa th",
      "https://host/bad%zz",
      "https://host/a\"b",
  };
  for (const char* url : bad) {
    auto r = parse_base_url(url);
    EXPECT_FALSE(r.ok()) << url;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("base_url"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace sluice
