// mock_upstream: the fastest OpenAI-compatible upstream this project can serve, for latency benchmarks.
// POST .../chat/completions answers at once: a fixed chat.completion JSON (with usage), or with "stream": true
// a short SSE stream (role chunk, two content chunks, a finish chunk, a usage chunk, [DONE]), each event
// written as its own HTTP chunk so a relay sees the same framing as from a real provider.
// It runs on the project's own HttpServer, plain HTTP, so its cost is the HTTP server's cost and nothing more.
//
//   mock_upstream [--host 127.0.0.1] [--port 0] [--threads 1]
//
// Prints "listening on http://HOST:PORT" once it accepts connections; SIGINT/SIGTERM stop it.
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "gateway/config/server_config.h"
#include "gateway/http/exchange.h"
#include "gateway/http/server.h"
#include "gateway/metrics/registry.h"

namespace {

namespace asio = boost::asio;

constexpr std::string_view kCompletion =
    R"({"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"m",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!"},)"
    R"("logprobs":null,"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}})";

// One SSE event per element; the last one is the terminator.
const std::vector<std::string>& stream_events() {
  static const std::vector<std::string> events = [] {
    const std::string head = R"({"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"m",)";
    auto event = [](const std::string& json) { return "data: " + json + "\n\n"; };
    return std::vector<std::string>{
        event(head + R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"),
        event(head + R"("choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]})"),
        event(head + R"("choices":[{"index":0,"delta":{"content":" there!"},"finish_reason":null}]})"),
        event(head + R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"),
        event(head + R"("choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}})"),
        std::string("data: [DONE]\n\n"),
    };
  }();
  return events;
}

constexpr std::string_view kNotFound =
    R"({"error":{"message":"mock_upstream serves POST /v1/chat/completions only","type":"invalid_request_error",)"
    R"("param":null,"code":"not_found"}})";
constexpr std::string_view kBadJson =
    R"({"error":{"message":"request body is not a JSON object","type":"invalid_request_error","param":null,)"
    R"("code":"invalid_json"}})";

// Whether the body asks for a stream; nullopt when it is not a JSON object. One parser per thread: the
// handler runs on any of the io threads.
std::optional<bool> wants_stream(const std::string& body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(body).get_object().get(obj) != simdjson::SUCCESS) return std::nullopt;
  bool stream = false;
  if (obj["stream"].get_bool().get(stream) != simdjson::SUCCESS) return false;
  return stream;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

asio::awaitable<void> handle(sluice::Exchange& ex) {
  const auto& req = ex.request();
  if (req.method != "POST" || !ends_with(req.path, "/chat/completions")) {
    co_await ex.respond(404, std::string(kNotFound), "application/json");
    co_return;
  }
  const auto stream = wants_stream(req.body);
  if (!stream) {
    co_await ex.respond(400, std::string(kBadJson), "application/json");
    co_return;
  }
  if (!*stream) {
    co_await ex.respond(200, std::string(kCompletion), "application/json");
    co_return;
  }
  if (!co_await ex.begin_stream()) co_return;
  for (const auto& ev : stream_events())
    if (!co_await ex.write_chunk(ev)) co_return;
  co_await ex.end_stream();
}

struct Flags {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int threads = 1;
};

bool parse_int(std::string_view s, long lo, long hi, long& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= lo && out <= hi;
}

constexpr const char* kUsage = "usage: mock_upstream [--host ADDR] [--port N (0 = pick)] [--threads N]\n";

std::optional<Flags> parse_flags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") return std::nullopt;
    if (i + 1 >= argc) {
      std::fprintf(stderr, "mock_upstream: %s needs a value\n", argv[i]);
      return std::nullopt;
    }
    const std::string_view v = argv[++i];
    long n = 0;
    if (a == "--host") {
      f.host = std::string(v);
    } else if (a == "--port" && parse_int(v, 0, 65535, n)) {
      f.port = static_cast<std::uint16_t>(n);
    } else if (a == "--threads" && parse_int(v, 1, 256, n)) {
      f.threads = static_cast<int>(n);
    } else {
      std::fprintf(stderr, "mock_upstream: bad option %s %s\n", argv[i - 1], argv[i]);
      return std::nullopt;
    }
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const auto flags = parse_flags(argc, argv);
  if (!flags) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);

  asio::io_context io(flags->threads);
  sluice::MetricsRegistry metrics;
  sluice::HttpServer server(io, sluice::HttpLimits{}, handle, metrics);
  if (auto r = server.listen(flags->host, flags->port); !r) {
    std::fprintf(stderr, "mock_upstream: %s\n", r.error().c_str());
    return 1;
  }
  server.start();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });

  std::printf("listening on http://%s:%u\n", flags->host.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  std::vector<std::thread> extra;
  for (int i = 1; i < flags->threads; ++i) extra.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : extra) t.join();
  return 0;
}
