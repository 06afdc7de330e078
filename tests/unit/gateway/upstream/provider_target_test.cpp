// ProviderTarget against a scripted loopback HTTP server: what is sent, how every response shape and failure
// maps onto the Sink, timeouts, cancellation, backpressure and connection reuse.
#include "gateway/upstream/provider_target.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <thread>

#include "gateway/api/request.h"
#include "tests/unit/gateway/upstream/loopback_server.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using upstream_test::Call;
using upstream_test::CallOptions;
using upstream_test::eventually;
using upstream_test::expect_single_terminal;
using upstream_test::Gate;
using upstream_test::http_chunk;
using upstream_test::http_response;
using upstream_test::kLastChunk;
using upstream_test::LoopbackServer;
using upstream_test::RecordingSink;
using upstream_test::ServerConn;
using upstream_test::stream_header;
using upstream_test::TargetHarness;

constexpr std::string_view kChatJson =
    R"({"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},)"
    R"("finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}})";

std::string sse(std::string_view payload) { return "data: " + std::string(payload) + "\n\n"; }

std::string content_chunk(std::string_view text, std::string_view finish = "null") {
  return R"({"choices":[{"index":0,"delta":{"content":")" + std::string(text) + R"("},"finish_reason":)" +
         std::string(finish) + "}]}";
}

constexpr std::string_view kUsageChunk =
    R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}})";

// Answers every request on the connection with `response` until the client closes it.
LoopbackServer::Handler answer_all(std::string response) {
  return [response](ServerConn& c, int) {
    while (c.read_request()) c.write(response);
  };
}

std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class ProviderTargetTest : public ::testing::Test {
 protected:
  std::unique_ptr<ProviderTarget> make_target(std::uint16_t port, std::string path = "",
                                              ProviderTargetOptions options = {}, std::string key = "sk-test") {
    ProviderConfig config;
    config.name = "remote";
    config.base_url = "http://127.0.0.1:" + std::to_string(port) + path;
    config.pool_size = 4;
    auto target = ProviderTarget::create(config, std::move(key), options);
    EXPECT_TRUE(target.ok());
    return target.ok() ? std::move(target.value()) : nullptr;
  }
  Call& start(ProviderTarget& target, CallOptions o = {}) { return harness_.start(target, o); }

  TargetHarness harness_;  // outlives the test body's servers and targets
};

TEST_F(ProviderTargetTest, NonStreamRelaysBodyUsageAndFinishReason) {
  LoopbackServer server(answer_all(http_response(200, kChatJson)));
  auto target = make_target(server.port(), "/prefix/");
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
  EXPECT_EQ(c.sink.raws(), std::vector<std::string>{std::string(kChatJson)});
  ASSERT_TRUE(c.sink.usage());
  EXPECT_EQ(c.sink.usage()->prompt_tokens, 3);
  EXPECT_EQ(c.sink.usage()->completion_tokens, 5);
  EXPECT_EQ(c.sink.finished(), "length");
  EXPECT_EQ(c.sink.order(), (std::vector<std::string>{"delta", "usage", "finish"}));
  expect_single_terminal(c);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/prefix/v1/chat/completions");
  EXPECT_EQ(r.headers.at("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(r.headers.at("authorization"), "Bearer sk-test");
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  EXPECT_EQ(r.headers.at("accept"), "application/json");
  EXPECT_EQ(r.headers.at("user-agent"), "sluice");
  EXPECT_NE(r.body.find("\"up-model\""), std::string::npos);
  EXPECT_EQ(r.body.find("client-model"), std::string::npos);
  EXPECT_EQ(target->requests(), 1u);
  EXPECT_EQ(target->connects(), 1u);
}

TEST_F(ProviderTargetTest, CompletionsEndpointAndNoKeyMeansNoAuthorization) {
  LoopbackServer server(answer_all(http_response(200, R"({"choices":[{"text":"x","finish_reason":null}]})")));
  auto target = make_target(server.port(), "", {}, "");
  Call& c = start(*target, {.endpoint = Endpoint::completions});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.finished(), "stop");  // null finish_reason
  ASSERT_TRUE(c.sink.usage());           // no usage in the body: {0, 0}
  EXPECT_EQ(c.sink.usage()->prompt_tokens, 0);
  EXPECT_EQ(c.sink.usage()->completion_tokens, 0);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/v1/completions");

  auto versioned = make_target(server.port(), "/api/v1");
  Call& v = start(*versioned, {.endpoint = Endpoint::completions});
  ASSERT_TRUE(v.sink.wait_terminal());
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[1].target, "/api/v1/completions");
  EXPECT_EQ(requests[0].headers.count("authorization"), 0u);
}

TEST_F(ProviderTargetTest, StreamForwardsEachChunkAsItArrives) {
  Gate second_part;
  LoopbackServer server([&](ServerConn& c, int) {
    if (!c.read_request()) return;
    c.write(stream_header());
    c.write(http_chunk(": keep-alive\r\n\r\n"));
    c.write(http_chunk("data: " + content_chunk("Hel") + "\r\n\r\n"));
    if (!second_part.wait()) return;
    // One event split across chunks and writes, with \n line ends.
    const std::string second = sse(content_chunk("lo", "\"length\""));
    c.write(http_chunk(second.substr(0, 20)));
    std::this_thread::sleep_for(30ms);
    c.write(http_chunk(second.substr(20)));
    c.write(http_chunk(sse(kUsageChunk)));
    c.write(http_chunk("data: [DONE]\n\n"));
    c.write(kLastChunk);
    c.read_request();  // hold the connection until the client closes it
  });
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  // The first chunk reaches the sink while the server still holds back the rest.
  EXPECT_TRUE(c.sink.wait_deltas(1));
  EXPECT_EQ(c.sink.terminal_count(), 0);
  second_part.open();
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
  EXPECT_EQ(c.sink.raws(), (std::vector<std::string>{content_chunk("Hel"), content_chunk("lo", "\"length\"")}));
  ASSERT_TRUE(c.sink.usage());
  EXPECT_EQ(c.sink.usage()->prompt_tokens, 4);
  EXPECT_EQ(c.sink.usage()->completion_tokens, 2);
  EXPECT_EQ(c.sink.usage_calls(), 1);
  EXPECT_EQ(c.sink.finished(), "length");
  EXPECT_EQ(c.sink.order(), (std::vector<std::string>{"delta", "delta", "usage", "finish"}));
  expect_single_terminal(c);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.at("accept"), "text/event-stream");
  // The body went through rewrite_for_upstream(): the provider is asked for usage on every stream.
  EXPECT_NE(requests[0].body.find(R"("include_usage":true)"), std::string::npos) << requests[0].body;
}

TEST_F(ProviderTargetTest, StreamForwardsUsageChunkWhenTheClientAskedForIt) {
  LoopbackServer server(answer_all(stream_header() + http_chunk(sse(content_chunk("a", "\"stop\""))) +
                                   http_chunk(sse(kUsageChunk)) + http_chunk("data: [DONE]\n\n") +
                                   std::string(kLastChunk)));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true, .include_usage = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.raws(), (std::vector<std::string>{content_chunk("a", "\"stop\""), std::string(kUsageChunk)}));
  EXPECT_EQ(c.sink.usage()->completion_tokens, 2);
  EXPECT_EQ(c.sink.finished(), "stop");
}

TEST_F(ProviderTargetTest, StreamWithoutUsageReportsZeroUsageOnce) {
  LoopbackServer server(answer_all(stream_header() + http_chunk(sse(content_chunk("a"))) +
                                   http_chunk("data: [DONE]\n\n") + std::string(kLastChunk)));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.finished(), "stop");
  EXPECT_EQ(c.sink.usage_calls(), 1);
  EXPECT_EQ(c.sink.usage()->prompt_tokens, 0);
  EXPECT_EQ(c.sink.usage()->completion_tokens, 0);
}

TEST_F(ProviderTargetTest, ServerErrorIsUpstream5xxWithStatusAndBody) {
  const std::string body = R"({"error":{"message":"boom"}})";
  LoopbackServer server(answer_all(http_response(500, body)));
  auto target = make_target(server.port());
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::upstream_5xx);
  EXPECT_EQ(c.sink.error()->upstream_status, 500);
  EXPECT_EQ(c.sink.error()->upstream_body, body);
  EXPECT_EQ(c.sink.delta_count(), 0u);
  expect_single_terminal(c);
}

TEST_F(ProviderTargetTest, RateLimitCarriesRetryAfter) {
  LoopbackServer server(answer_all(http_response(429, R"({"error":{"message":"slow down"}})", "Retry-After: 7\r\n")));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::rate_limited);
  EXPECT_EQ(c.sink.error()->upstream_status, 429);
  EXPECT_EQ(c.sink.error()->retry_after, 7000ms);
}

TEST_F(ProviderTargetTest, ClientErrorIsUpstream4xxAndTheConnectionIsKept) {
  const std::string body = R"({"error":{"message":"bad model","type":"invalid_request_error"}})";
  LoopbackServer server(answer_all(http_response(404, body)));
  auto target = make_target(server.port());
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::upstream_4xx);
  EXPECT_EQ(c.sink.error()->upstream_status, 404);
  EXPECT_EQ(c.sink.error()->upstream_body, body);
  EXPECT_EQ(target->idle_connections(), 1u);  // the error body was read whole: reusable
}

TEST_F(ProviderTargetTest, OversizedErrorBodyIsTruncatedAndTheConnectionClosed) {
  LoopbackServer server(answer_all(http_response(400, std::string(5000, 'x'))));
  ProviderTargetOptions options;
  options.max_error_body_bytes = 100;
  auto target = make_target(server.port(), "", options);
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->upstream_body, std::string(100, 'x'));
  EXPECT_EQ(target->idle_connections(), 0u);
  EXPECT_EQ(target->open_connections(), 0);
}

TEST_F(ProviderTargetTest, ResetBeforeTheFirstByteIsConnectError) {
  LoopbackServer server([](ServerConn& c, int) {
    if (c.read_request()) c.reset();
  });
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::connect_error);
  EXPECT_NE(c.sink.error()->message.find("before sending a complete response header"), std::string::npos)
      << c.sink.error()->message;
  EXPECT_EQ(c.sink.delta_count(), 0u);
  EXPECT_EQ(target->stale_retries(), 0u);  // a fresh connection is not retried
  EXPECT_EQ(server.accepted(), 1);
  expect_single_terminal(c);
}

TEST_F(ProviderTargetTest, RefusedConnectionIsConnectError) {
  auto target = make_target(closed_port());
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::connect_error);
  EXPECT_EQ(target->connects(), 0u);
  EXPECT_EQ(target->open_connections(), 0);
}

TEST_F(ProviderTargetTest, StreamCutAfterTheFirstChunkIsAnError) {
  LoopbackServer server([](ServerConn& c, int) {
    if (!c.read_request()) return;
    c.write(stream_header() + http_chunk(sse(content_chunk("a"))));
    std::this_thread::sleep_for(50ms);
    c.close();
  });
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.delta_count(), 1u);
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::connect_error);
  EXPECT_NE(c.sink.error()->message.find("before it finished"), std::string::npos) << c.sink.error()->message;
  EXPECT_FALSE(c.sink.finished());
  expect_single_terminal(c);
}

TEST_F(ProviderTargetTest, StreamEndingWithoutDoneIsAnError) {
  LoopbackServer server(
      answer_all(stream_header() + http_chunk(sse(content_chunk("a", "\"stop\""))) + std::string(kLastChunk)));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.delta_count(), 1u);
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::upstream_5xx);
  EXPECT_NE(c.sink.error()->message.find("before it finished"), std::string::npos);
}

TEST_F(ProviderTargetTest, ErrorReportedInsideTheStreamIsUpstream5xx) {
  LoopbackServer server(answer_all(stream_header() + http_chunk(sse(R"({"error":{"message":"engine died"}})")) +
                                   std::string(kLastChunk)));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::upstream_5xx);
  EXPECT_NE(c.sink.error()->message.find("engine died"), std::string::npos);
  EXPECT_EQ(c.sink.delta_count(), 0u);
}

TEST_F(ProviderTargetTest, OversizedStreamEventIsUpstream5xx) {
  LoopbackServer server(answer_all(stream_header() + http_chunk("data: " + std::string(2000, 'a') + "\n\n") +
                                   std::string(kLastChunk)));
  ProviderTargetOptions options;
  options.max_sse_event_bytes = 256;
  auto target = make_target(server.port(), "", options);
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::upstream_5xx);
  EXPECT_EQ(c.sink.delta_count(), 0u);
}

TEST_F(ProviderTargetTest, OversizedOrInvalidBodyIsUpstream5xx) {
  LoopbackServer big(answer_all(http_response(200, R"({"x":")" + std::string(4000, 'a') + R"("})")));
  ProviderTargetOptions options;
  options.max_response_bytes = 1024;
  auto t1 = make_target(big.port(), "", options);
  Call& c1 = start(*t1);
  ASSERT_TRUE(c1.sink.wait_terminal());
  ASSERT_TRUE(c1.sink.error());
  EXPECT_EQ(c1.sink.error()->kind, ErrorKind::upstream_5xx);
  EXPECT_NE(c1.sink.error()->message.find("larger than 1024"), std::string::npos);

  LoopbackServer junk(answer_all(http_response(200, "<html>oops</html>")));
  auto t2 = make_target(junk.port());
  Call& c2 = start(*t2);
  ASSERT_TRUE(c2.sink.wait_terminal());
  ASSERT_TRUE(c2.sink.error());
  EXPECT_EQ(c2.sink.error()->kind, ErrorKind::upstream_5xx);
  EXPECT_EQ(c2.sink.delta_count(), 0u);
}

TEST_F(ProviderTargetTest, CancelMidStreamClosesTheConnection) {
  std::atomic<bool> peer_closed{false};
  Gate observed;
  LoopbackServer server([&](ServerConn& c, int) {
    if (!c.read_request()) return;
    c.write(stream_header() + http_chunk(sse(content_chunk("a"))));
    peer_closed = c.wait_peer_closed(5s);
    observed.open();
  });
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true});
  ASSERT_TRUE(c.sink.wait_deltas(1));
  c.ctx.cancel.cancel();
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::cancelled);
  ASSERT_TRUE(observed.wait());
  EXPECT_TRUE(peer_closed.load());
  EXPECT_EQ(target->cancel_closes(), 1u);
  EXPECT_EQ(target->idle_connections(), 0u);
  EXPECT_EQ(target->open_connections(), 0);
  expect_single_terminal(c);
}

TEST_F(ProviderTargetTest, CancelBeforeStartEndsCancelledWithoutPooling) {
  LoopbackServer server(answer_all(http_response(200, kChatJson)));
  auto target = make_target(server.port());
  Call& warm = start(*target);
  ASSERT_TRUE(warm.sink.wait_terminal());
  ASSERT_EQ(target->idle_connections(), 1u);

  Call& c = start(*target, {.cancelled_before_start = true});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::cancelled);
  EXPECT_EQ(target->idle_connections(), 0u);  // the pooled connection it took was closed, not returned
  EXPECT_EQ(target->open_connections(), 0);
  expect_single_terminal(c);
}

TEST_F(ProviderTargetTest, BackpressureStopsReadingUntilThereIsRoom) {
  LoopbackServer server(answer_all(stream_header() + http_chunk(sse(content_chunk("a"))) +
                                   http_chunk(sse(content_chunk("b"))) +
                                   http_chunk(sse(content_chunk("c", "\"stop\""))) +
                                   http_chunk("data: [DONE]\n\n") + std::string(kLastChunk)));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true, .room = false});
  ASSERT_TRUE(c.sink.wait_deltas(1));
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(c.sink.delta_count(), 1u);  // everything has arrived, but nothing more was forwarded
  EXPECT_TRUE(c.sink.waiting_for_room());
  EXPECT_EQ(c.sink.terminal_count(), 0);
  c.sink.set_room(true);
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.delta_count(), 3u);
  EXPECT_EQ(c.sink.finished(), "stop");
}

TEST_F(ProviderTargetTest, CancelWhileWaitingForRoom) {
  LoopbackServer server(answer_all(stream_header() + http_chunk(sse(content_chunk("a"))) +
                                   http_chunk(sse(content_chunk("b")))));
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true, .room = false});
  ASSERT_TRUE(c.sink.wait_deltas(1));
  ASSERT_TRUE(eventually([&] { return c.sink.waiting_for_room(); }));
  c.ctx.cancel.cancel();
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::cancelled);
  EXPECT_EQ(target->cancel_closes(), 1u);
  EXPECT_EQ(target->open_connections(), 0);
}

TEST_F(ProviderTargetTest, FirstByteTimeout) {
  LoopbackServer server([](ServerConn& c, int) {
    if (c.read_request()) c.wait_peer_closed(5s);
  });
  auto target = make_target(server.port());
  const auto t0 = std::chrono::steady_clock::now();
  Call& c = start(*target, {.timeouts = {.connect = 1000ms, .first_byte = 150ms, .total = 0ms}});
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(target->open_connections(), 0);
}

TEST_F(ProviderTargetTest, TotalTimeoutMidStream) {
  LoopbackServer server([](ServerConn& c, int) {
    if (!c.read_request()) return;
    c.write(stream_header() + http_chunk(sse(content_chunk("a"))));
    c.wait_peer_closed(5s);
  });
  auto target = make_target(server.port());
  Call& c = start(*target, {.stream = true, .timeouts = {.connect = 0ms, .first_byte = 0ms, .total = 300ms}});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.delta_count(), 1u);
  ASSERT_TRUE(c.sink.error());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::timeout);
}

TEST_F(ProviderTargetTest, PassedDeadlineFailsWithoutConnecting) {
  LoopbackServer server(answer_all(http_response(200, kChatJson)));
  auto target = make_target(server.port());
  Call& c = start(*target, {.deadline_in = -1ms});
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(c.sink.error()->kind, ErrorKind::timeout);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(server.accepted(), 0);
}

TEST_F(ProviderTargetTest, KeepAliveConnectionIsReused) {
  LoopbackServer server(answer_all(http_response(200, kChatJson)));
  auto target = make_target(server.port());
  for (int i = 0; i < 3; ++i) {
    Call& c = start(*target);
    ASSERT_TRUE(c.sink.wait_terminal());
    ASSERT_FALSE(c.sink.error());
  }
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(target->connects(), 1u);
  EXPECT_EQ(target->reuses(), 2u);
  EXPECT_EQ(target->idle_connections(), 1u);
  EXPECT_EQ(target->open_connections(), 1);
}

TEST_F(ProviderTargetTest, ConnectionCloseResponseIsNotPooled) {
  LoopbackServer server(answer_all(http_response(200, kChatJson, "Connection: close\r\n")));
  auto target = make_target(server.port());
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  EXPECT_EQ(target->idle_connections(), 0u);
  EXPECT_EQ(target->open_connections(), 0);
}

TEST_F(ProviderTargetTest, StreamConnectionReturnsToThePoolAfterDone) {
  LoopbackServer server([](ServerConn& c, int) {
    while (auto r = c.read_request()) {
      if (r->body.find("\"stream\":true") != std::string::npos)
        c.write(stream_header() + http_chunk(sse(content_chunk("a", "\"stop\""))) +
                http_chunk("data: [DONE]\n\n") + std::string(kLastChunk));
      else
        c.write(http_response(200, kChatJson));
    }
  });
  auto target = make_target(server.port());
  Call& first = start(*target, {.stream = true});
  ASSERT_TRUE(first.sink.wait_terminal());
  ASSERT_FALSE(first.sink.error());
  ASSERT_TRUE(eventually([&] { return target->idle_connections() == 1; }));
  Call& second = start(*target);
  ASSERT_TRUE(second.sink.wait_terminal());
  ASSERT_FALSE(second.sink.error());
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(target->reuses(), 1u);
}

TEST_F(ProviderTargetTest, DeadPooledConnectionIsRetriedOnceOnAFreshOne) {
  LoopbackServer server([](ServerConn& c, int index) {
    if (index == 0) {
      if (c.read_request()) c.write(http_response(200, kChatJson));
      if (c.read_request()) c.close();  // the server dropped the kept-alive connection just as it was reused
      return;
    }
    while (c.read_request()) c.write(http_response(200, kChatJson));
  });
  auto target = make_target(server.port());
  Call& first = start(*target);
  ASSERT_TRUE(first.sink.wait_terminal());
  ASSERT_EQ(target->idle_connections(), 1u);
  Call& second = start(*target);
  ASSERT_TRUE(second.sink.wait_terminal());
  ASSERT_FALSE(second.sink.error()) << second.sink.error()->message;
  EXPECT_EQ(second.sink.raws(), std::vector<std::string>{std::string(kChatJson)});
  EXPECT_EQ(target->stale_retries(), 1u);
  EXPECT_EQ(target->connects(), 2u);
  EXPECT_EQ(server.accepted(), 2);
  expect_single_terminal(second);
}

TEST_F(ProviderTargetTest, IdleConnectionClosedByTheServerIsNotTaken) {
  LoopbackServer server([](ServerConn& c, int) {
    if (c.read_request()) c.write(http_response(200, kChatJson));
    c.close();
  });
  auto target = make_target(server.port());
  Call& first = start(*target);
  ASSERT_TRUE(first.sink.wait_terminal());
  std::this_thread::sleep_for(100ms);  // the FIN arrives while the connection is idle
  Call& second = start(*target);
  ASSERT_TRUE(second.sink.wait_terminal());
  ASSERT_FALSE(second.sink.error()) << second.sink.error()->message;
  EXPECT_EQ(target->reuses(), 0u);
  EXPECT_EQ(target->stale_retries(), 0u);
  EXPECT_EQ(server.accepted(), 2);
}

TEST_F(ProviderTargetTest, InterimResponseIsSkipped) {
  LoopbackServer server(answer_all("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + http_response(200, kChatJson)));
  auto target = make_target(server.port());
  Call& c = start(*target);
  ASSERT_TRUE(c.sink.wait_terminal());
  ASSERT_FALSE(c.sink.error()) << c.sink.error()->message;
  EXPECT_EQ(c.sink.finished(), "length");
}

// Connections move between requests on different strands and threads; the pool keeps at most pool_size.
TEST(ProviderTargetConcurrency, ConcurrentRequestsShareThePool) {
  LoopbackServer server(answer_all(http_response(200, kChatJson)));
  TargetHarness harness(3);  // before the target: pooled sockets must go before their io_context
  ProviderConfig config;
  config.name = "remote";
  config.base_url = "http://127.0.0.1:" + std::to_string(server.port());
  config.pool_size = 4;
  auto created = ProviderTarget::create(config, "k");
  ASSERT_TRUE(created.ok());
  auto target = std::move(created.value());
  for (int round = 0; round < 4; ++round) {
    std::vector<Call*> calls;
    for (int i = 0; i < 12; ++i) calls.push_back(&harness.start(*target, {.stream = i % 2 == 0}));
    for (Call* c : calls) {
      ASSERT_TRUE(c->sink.wait_terminal());
      EXPECT_EQ(c->sink.terminal_count(), 1);
      if (c->request.stream) {
        ASSERT_TRUE(c->sink.error());  // a JSON body is not an event stream
        EXPECT_EQ(c->sink.error()->kind, ErrorKind::upstream_5xx);
      } else {
        ASSERT_FALSE(c->sink.error()) << c->sink.error()->message;
      }
    }
  }
  EXPECT_EQ(target->connects() + target->reuses(), 48u);
  EXPECT_GT(target->reuses(), 0u);
  EXPECT_LE(target->idle_connections(), 4u);
  EXPECT_TRUE(eventually(
      [&] { return target->open_connections() == static_cast<std::int64_t>(target->idle_connections()); }));
}

TEST(ProviderTargetCreate, RejectsBadBaseUrlAndKeysWithControlCharacters) {
  ProviderConfig config;
  config.name = "p";
  config.base_url = "ftp://example.com";
  auto bad_url = ProviderTarget::create(config, "k");
  ASSERT_FALSE(bad_url.ok());
  EXPECT_NE(bad_url.error().message.find("provider p"), std::string::npos);

  config.base_url = "https://api.example.com";
  auto bad_key = ProviderTarget::create(config, "sk-secret\r\nX-Injected: 1");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_EQ(bad_key.error().message.find("sk-secret"), std::string::npos);

  config.ca_file = "/nonexistent/ca.pem";
  auto bad_ca = ProviderTarget::create(config, "k");
  ASSERT_FALSE(bad_ca.ok());
  EXPECT_NE(bad_ca.error().message.find("ca_file"), std::string::npos);

  config.ca_file.clear();
  auto good = ProviderTarget::create(config, "k");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value()->name(), "p");
}

TEST(RetryAfter, SecondsAndHttpDates) {
  using std::chrono::system_clock;
  const auto now = system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parse_retry_after("7", now), 7000ms);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), 30000ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), 0ms);  // in the past
  EXPECT_EQ(parse_retry_after("Sun, 31 Feb 1994 08:49:00 GMT", now), 0ms);  // no such date
  EXPECT_EQ(parse_retry_after("soon", now), 0ms);
  EXPECT_EQ(parse_retry_after("-5", now), 0ms);
  EXPECT_EQ(parse_retry_after("", now), 0ms);
  EXPECT_EQ(parse_retry_after("999999999999", now), std::chrono::milliseconds(24LL * 3600 * 1000));
}

}  // namespace
}  // namespace sluice
