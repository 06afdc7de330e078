// ProviderTarget over TLS against a loopback server whose self-signed certificates are generated at test time
// with the openssl command-line tool (the tests skip when it is missing): trust via ca_file, host-name and
// IP verification, SNI, verification failures, verification off, and keep-alive reuse without a new handshake.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "gateway/upstream/provider_target.h"
#include "tests/unit/gateway/upstream/loopback_server.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using upstream_test::Call;
using upstream_test::CallOptions;
using upstream_test::http_chunk;
using upstream_test::http_response;
using upstream_test::kLastChunk;
using upstream_test::LoopbackServer;
using upstream_test::ServerConn;
using upstream_test::stream_header;
using upstream_test::TargetHarness;

constexpr std::string_view kBody =
    R"({"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":1,"completion_tokens":1}})";

// A self-signed certificate and key for the given subjectAltName, written into `dir`.
bool make_certificate(const std::string& dir, const std::string& name, const std::string& san) {
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                          "-subj /CN=" + name + " -addext subjectAltName=" + san + " -keyout " + dir + "/" + name +
                          ".key -out " + dir + "/" + name + ".pem >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct Certificates {
  std::string dir;
  bool ok = false;
  ~Certificates() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

const Certificates& certificates() {
  static const Certificates certs = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "sluice-tls-XXXXXX").string();
    if (!mkdtemp(templ.data())) return Certificates{};
    return Certificates{templ, make_certificate(templ, "localhost", "DNS:localhost,IP:127.0.0.1") &&
                                   make_certificate(templ, "other", "DNS:other.example")};
  }();
  return certs;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtx = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

SslCtx server_context(const std::string& name) {
  SslCtx ctx(SSL_CTX_new(TLS_server_method()));
  const std::string base = certificates().dir + "/" + name;
  if (SSL_CTX_use_certificate_file(ctx.get(), (base + ".pem").c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), (base + ".key").c_str(), SSL_FILETYPE_PEM) != 1)
    return nullptr;
  return ctx;
}

class ProviderTargetTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!certificates().ok) GTEST_SKIP() << "the openssl command-line tool is not available";
  }

  std::unique_ptr<ProviderTarget> make_target(const std::string& host, std::uint16_t port, std::string ca_file,
                                              bool verify = true) {
    ProviderConfig config;
    config.name = "tls-remote";
    config.base_url = "https://" + host + ":" + std::to_string(port);
    config.ca_file = std::move(ca_file);
    config.tls_verify = verify;
    auto target = ProviderTarget::create(config, "sk-tls");
    EXPECT_TRUE(target.ok()) << (target.ok() ? "" : target.error().message);
    return target.ok() ? std::move(target.value()) : nullptr;
  }

  // Answers every request with kBody and records the SNI the client sent.
  LoopbackServer::Handler answering_handler() {
    return [this](ServerConn& c, int) {
      const char* sni = SSL_get_servername(c.ssl(), TLSEXT_NAMETYPE_host_name);
      {
        std::lock_guard lock(mu_);
        sni_ = sni ? sni : "";
      }
      while (c.read_request()) c.write(http_response(200, kBody));
    };
  }

  std::string sni() {
    std::lock_guard lock(mu_);
    return sni_;
  }

  std::string ca(const std::string& name) { return certificates().dir + "/" + name + ".pem"; }

  TargetHarness harness_;
  std::mutex mu_;
  std::string sni_ = "(none)";
};

TEST_F(ProviderTargetTlsTest, TrustedByCaFileOverAnIpAddressAndReused) {
  SslCtx tls = server_context("localhost");
  ASSERT_TRUE(tls);
  LoopbackServer server(answering_handler(), tls.get());
  auto target = make_target("127.0.0.1", server.port(), ca("localhost"));
  for (int i = 0; i < 2; ++i) {
    Call& c = harness_.start(*target);
    ASSERT_TRUE(c.sink.wait_terminal());
    ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
    EXPECT_EQ(c.sink.raws(), std::vector<std::string>{std::string(kBody)});
  }
  EXPECT_EQ(server.accepted(), 1);  // one handshake, then keep-alive
  EXPECT_EQ(target->connects(), 1u);
  EXPECT_EQ(target->reuses(), 1u);
  EXPECT_EQ(sni(), "");  // no SNI for an IP literal
}

TEST_F(ProviderTargetTlsTest, HostNameIsVerifiedAndSentAsSni) {
  SslCtx tls = server_context("localhost");
  ASSERT_TRUE(tls);
  LoopbackServer server(answering_handler(), tls.get());
  auto target = make_target("localhost", server.port(), ca("localhost"));
  Call& c = harness_.start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
  EXPECT_EQ(sni(), "localhost");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.at("host"), "localhost:" + std::to_string(server.port()));
}

TEST_F(ProviderTargetTlsTest, UntrustedCertificateIsConnectError) {
  SslCtx tls = server_context("localhost");
  ASSERT_TRUE(tls);
  LoopbackServer server(answering_handler(), tls.get());
  auto target = make_target("127.0.0.1", server.port(), "");  // the system store does not know it
  Call& c = harness_.start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::connect_error);
  EXPECT_NE(c.sink.error()->message.find("certificate"), std::string::npos) << c.sink.error()->message;
  EXPECT_EQ(target->connects(), 0u);
  EXPECT_EQ(target->open_connections(), 0);
}

TEST_F(ProviderTargetTlsTest, CertificateForAnotherNameIsConnectError) {
  SslCtx tls = server_context("other");
  ASSERT_TRUE(tls);
  LoopbackServer server(answering_handler(), tls.get());
  auto target = make_target("127.0.0.1", server.port(), ca("other"));  // trusted, but not for 127.0.0.1
  Call& c = harness_.start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::connect_error);
  EXPECT_NE(c.sink.error()->message.find("certificate"), std::string::npos) << c.sink.error()->message;
}

TEST_F(ProviderTargetTlsTest, VerificationOffAcceptsAnyCertificate) {
  SslCtx tls = server_context("other");
  ASSERT_TRUE(tls);
  LoopbackServer server(answering_handler(), tls.get());
  auto target = make_target("127.0.0.1", server.port(), "", /*verify=*/false);
  Call& c = harness_.start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
  EXPECT_EQ(c.sink.finished(), "stop");
}

TEST_F(ProviderTargetTlsTest, StreamOverTls) {
  SslCtx tls = server_context("localhost");
  ASSERT_TRUE(tls);
  LoopbackServer server(
      [](ServerConn& c, int) {
        while (c.read_request()) {
          c.write(stream_header() + http_chunk("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"));
          c.write(http_chunk("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n") +
                  std::string(kLastChunk));
        }
      },
      tls.get());
  auto target = make_target("127.0.0.1", server.port(), ca("localhost"));
  Call& c = harness_.start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
  EXPECT_EQ(c.sink.delta_count(), 2u);
  EXPECT_EQ(c.sink.finished(), "stop");
  EXPECT_TRUE(upstream_test::eventually([&] { return target->idle_connections() == 1; }));
}

}  // namespace
}  // namespace sluice
