// Test doubles for the upstream client: a scripted HTTP/1.1 server on 127.0.0.1 (plain or TLS, blocking
// sockets, one thread per connection) and a Sink that records what a target reports.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include "gateway/api/request.h"
#include "gateway/core/target.h"

namespace sluice::upstream_test {

using namespace std::chrono_literals;

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

class LoopbackServer;

// One accepted connection, used by the handler on its own thread.
class ServerConn {
 public:
  ServerConn(LoopbackServer& server, int fd, SSL* ssl) : server_(server), fd_(fd), ssl_(ssl) {}
  ~ServerConn() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;

  // Reads one request (header + Content-Length body); nullopt when the peer closed or 5 s passed.
  std::optional<ReceivedRequest> read_request();

  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      const int n = ssl_ ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                         : static_cast<int>(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL));
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Ends the connection with a FIN.
  void close() {
    if (fd_ < 0) return;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    fd_ = -1;
  }

  // Ends the connection with a RST.
  void reset() {
    if (fd_ < 0) return;
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

  // True once the peer closed the connection (EOF or error) within `timeout`; data arriving is skipped.
  bool wait_peer_closed(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count());
      if (::poll(&p, 1, std::max(left, 0)) <= 0) continue;
      const long n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) return true;
    }
    return false;
  }

  SSL* ssl() const { return ssl_; }

 private:
  long read_some(char* buf, std::size_t cap) {
    if (ssl_) return SSL_read(ssl_, buf, static_cast<int>(cap));
    return ::recv(fd_, buf, cap, 0);
  }

  LoopbackServer& server_;
  int fd_;
  SSL* ssl_;
  std::string buffered_;
};

class LoopbackServer {
 public:
  using Handler = std::function<void(ServerConn&, int index)>;

  // `tls` (owned by the caller, may be null): serve TLS with it.
  explicit LoopbackServer(Handler handler, SSL_CTX* tls = nullptr) : handler_(std::move(handler)), tls_(tls) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~LoopbackServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    ::close(listen_fd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  int handshakes_failed() const { return handshakes_failed_.load(); }

  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  void record(ReceivedRequest r) {
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(r));
  }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      const int index = accepted_.fetch_add(1);
      timeval tv{5, 0};  // no test may hang on a socket
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard lock(mu_);
      threads_.emplace_back([this, fd, index] {
        SSL* ssl = nullptr;
        if (tls_) {
          ssl = SSL_new(tls_);
          SSL_set_fd(ssl, fd);
          if (SSL_accept(ssl) != 1) {
            handshakes_failed_.fetch_add(1);
            SSL_free(ssl);
            ::close(fd);
            return;
          }
        }
        ServerConn conn(*this, fd, ssl);
        handler_(conn, index);
      });
    }
  }

  Handler handler_;
  SSL_CTX* tls_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> handshakes_failed_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<ReceivedRequest> requests_;
};

inline std::optional<ReceivedRequest> ServerConn::read_request() {
  char buf[4096];
  std::size_t header_end;
  while ((header_end = buffered_.find("\r\n\r\n")) == std::string::npos) {
    const long n = read_some(buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
  ReceivedRequest r;
  const std::string head = buffered_.substr(0, header_end);
  buffered_.erase(0, header_end + 4);
  std::size_t line_end = head.find("\r\n");
  const std::string request_line = head.substr(0, line_end);
  const auto sp1 = request_line.find(' ');
  const auto sp2 = request_line.find(' ', sp1 + 1);
  r.method = request_line.substr(0, sp1);
  r.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  while (line_end != std::string::npos && line_end < head.size()) {
    const std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  std::size_t length = 0;
  if (auto it = r.headers.find("content-length"); it != r.headers.end()) length = std::stoul(it->second);
  while (buffered_.size() < length) {
    const long n = read_some(buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
  r.body = buffered_.substr(0, length);
  buffered_.erase(0, length);
  server_.record(r);
  return r;
}

// "HTTP/1.1 <status> X" with Content-Length and the given extra header lines (each ending in \r\n).
inline std::string http_response(int status, std::string_view body, std::string_view extra_headers = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

inline std::string stream_header() {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
}

// One HTTP/1.1 chunk carrying `data`.
inline std::string http_chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// A one-shot flag one thread waits on and another sets.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Records every Sink call; thread-safe. Events after the terminal one are counted as violations.
class RecordingSink : public Sink {
 public:
  void delta(Delta d) override {
    std::lock_guard lock(mu_);
    note("delta");
    deltas_.push_back(std::move(d));
    cv_.notify_all();
  }
  void usage(Usage u) override {
    std::lock_guard lock(mu_);
    note("usage");
    usage_ = u;
    ++usage_calls_;
  }
  void finish(std::string reason) override {
    std::lock_guard lock(mu_);
    note("finish");
    finish_ = std::move(reason);
    ++terminal_;
    cv_.notify_all();
  }
  void error(TargetError e) override {
    std::lock_guard lock(mu_);
    note("error");
    error_ = std::move(e);
    ++terminal_;
    cv_.notify_all();
  }
  bool has_room() const override { return room_.load(); }
  void notify_when_room(std::function<void()> callback) override {
    std::unique_lock lock(mu_);
    if (room_.load()) {
      lock.unlock();
      callback();
      return;
    }
    room_callback_ = std::move(callback);
  }

  // Backpressure control for tests.
  void set_room(bool room) {
    std::function<void()> cb;
    {
      std::lock_guard lock(mu_);
      room_ = room;
      if (room) cb = std::move(room_callback_);
      room_callback_ = nullptr;
    }
    if (cb) cb();
  }
  bool waiting_for_room() const {
    std::lock_guard lock(mu_);
    return static_cast<bool>(room_callback_);
  }

  bool wait_terminal(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return terminal_ > 0; });
  }
  bool wait_deltas(std::size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return deltas_.size() >= n || terminal_ > 0; }) &&
           deltas_.size() >= n;
  }

  std::vector<std::string> raws() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& d : deltas_) out.push_back(d.raw);
    return out;
  }
  std::size_t delta_count() const {
    std::lock_guard lock(mu_);
    return deltas_.size();
  }
  std::optional<Usage> usage() const {
    std::lock_guard lock(mu_);
    return usage_;
  }
  int usage_calls() const {
    std::lock_guard lock(mu_);
    return usage_calls_;
  }
  std::optional<std::string> finished() const {
    std::lock_guard lock(mu_);
    return finish_;
  }
  std::optional<TargetError> error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  int terminal_count() const {
    std::lock_guard lock(mu_);
    return terminal_;
  }
  int after_terminal() const {
    std::lock_guard lock(mu_);
    return after_terminal_;
  }
  std::vector<std::string> order() const {
    std::lock_guard lock(mu_);
    return order_;
  }

 private:
  void note(const char* what) {
    if (terminal_ > 0) ++after_terminal_;
    order_.emplace_back(what);
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Delta> deltas_;
  std::optional<Usage> usage_;
  int usage_calls_ = 0;
  std::optional<std::string> finish_;
  std::optional<TargetError> error_;
  int terminal_ = 0;
  int after_terminal_ = 0;
  std::vector<std::string> order_;
  std::atomic<bool> room_{true};
  std::function<void()> room_callback_;
};

// One start() of a target: the request, its context and the sink, kept at stable addresses.
struct Call {
  ApiRequest request;
  std::string body;
  RequestContext ctx;
  RecordingSink sink;
};

struct CallOptions {
  bool stream = false;
  bool include_usage = false;
  Endpoint endpoint = Endpoint::chat_completions;
  TargetTimeouts timeouts{};
  std::chrono::steady_clock::duration deadline_in = 10s;
  bool room = true;                   // the sink's has_room() at the start
  bool cancelled_before_start = false;
};

// An io_context on its own threads plus the calls started on it. The calls outlive the threads (joined first in
// the destructor), so a target still running when a test fails early never touches freed memory; they go
// before the io_context, whose strands their contexts hold.
class TargetHarness {
 public:
  explicit TargetHarness(int threads = 1) : guard_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~TargetHarness() {
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    calls_.clear();
  }

  boost::asio::io_context& io() { return io_; }

  // A chat (or completions) request for "client-model", asked of the target as "up-model".
  Call& start(Target& target, CallOptions o = {}) {
    calls_.push_back(std::make_unique<Call>());
    Call& c = *calls_.back();
    c.body = std::string(R"({"model":"client-model","messages":[{"role":"user","content":"hi"}])") +
             (o.stream ? R"(,"stream":true})" : "}");
    c.request.endpoint = o.endpoint;
    c.request.model = "client-model";
    c.request.stream = o.stream;
    c.request.include_usage = o.include_usage;
    const std::string_view quoted_model = "\"client-model\"";
    const auto at = c.body.find(quoted_model);
    c.request.model_value = Span{at, at + quoted_model.size()};
    c.ctx.request_id = "req-" + std::to_string(calls_.size());
    c.ctx.request = &c.request;
    c.ctx.raw_body = c.body;
    c.ctx.target_model = "up-model";
    c.ctx.deadline = std::chrono::steady_clock::now() + o.deadline_in;
    c.ctx.timeouts = o.timeouts;
    c.ctx.executor = boost::asio::make_strand(io_);
    c.sink.set_room(o.room);
    if (o.cancelled_before_start) c.ctx.cancel.cancel();
    target.start(c.ctx, c.sink);
    return c;
  }

 private:
  std::vector<std::unique_ptr<Call>> calls_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::vector<std::thread> threads_;
};

// Polls `condition` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 3s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

// Every start() ends with exactly one terminal event and nothing after it.
inline void expect_single_terminal(const Call& c) {
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(c.sink.terminal_count(), 1);
  EXPECT_EQ(c.sink.after_terminal(), 0);
}

}  // namespace sluice::upstream_test
