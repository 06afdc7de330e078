// The supervisor's pure parts (the worker's command line, the listening socket, the heartbeat bytes and the
// config section); the process behaviour is covered by tests/integration/test_supervisor.py.
#include "gateway/supervisor/supervisor.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "gateway/supervisor/heartbeat.h"
#include "gateway/supervisor/listen_socket.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;

TEST(WorkerArguments, DropSuperviseAndAddTheDescriptors) {
  const std::vector<std::string> args = {"serve", "--config", "c.yaml", "--supervise", "--port", "0"};
  EXPECT_EQ(worker_arguments(args, 3, 7),
            (std::vector<std::string>{"serve", "--config", "c.yaml", "--port", "0", "--listen-fd", "3",
                                      "--heartbeat-fd", "7"}));
}

TEST(ListenSocket, BindsAFreePortThatAcceptsConnections) {
  auto fd = open_listen_socket("127.0.0.1", 0);
  ASSERT_TRUE(fd) << fd.error();
  const std::uint16_t port = listen_socket_port(*fd);
  ASSERT_NE(port, 0);
  // Nobody accepts yet: the connection waits in the backlog instead of being refused.
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const int accepted = ::accept(*fd, nullptr, nullptr);
  EXPECT_GE(accepted, 0);
  ::close(accepted);
  ::close(client);
  ::close(*fd);
}

TEST(ListenSocket, RejectsNamesAndBusyPorts) {
  auto bad = open_listen_socket("example.com", 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("invalid listen address"), std::string::npos);
  auto first = open_listen_socket("localhost", 0);
  ASSERT_TRUE(first) << first.error();
  auto second = open_listen_socket("127.0.0.1", listen_socket_port(*first));
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find("cannot listen on"), std::string::npos);
  ::close(*first);
}

TEST(Heartbeat, SendsReadyThenBeatsFromTheIoLoop) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  boost::asio::io_context io;
  Heartbeat hb(io, pair[1], milliseconds(10));
  hb.start();
  io.run_for(milliseconds(75));
  hb.stop();
  char buf[64];
  const ssize_t n = ::recv(pair[0], buf, sizeof(buf), MSG_DONTWAIT);
  ASSERT_GE(n, 3);
  EXPECT_EQ(buf[0], kHeartbeatReady);
  for (ssize_t i = 1; i < n; ++i) EXPECT_EQ(buf[i], kHeartbeatBeat);
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST(Heartbeat, AGoneParentNeitherBlocksNorKills) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  ::close(pair[0]);  // the reader is gone: send() fails with EPIPE, which must not raise SIGPIPE
  boost::asio::io_context io;
  Heartbeat hb(io, pair[1], milliseconds(5));
  hb.start();
  io.run_for(milliseconds(30));
  hb.stop();
  ::close(pair[1]);
  SUCCEED();
}

TEST(SupervisorConfig, DefaultsAndOverrides) {
  auto def = parse_server_config("policies: [p.yaml]\n", "/etc/sluice/c.yaml");
  ASSERT_TRUE(def);
  EXPECT_EQ(def->supervisor.heartbeat_interval, milliseconds(500));
  EXPECT_EQ(def->supervisor.heartbeat_timeout, milliseconds(5000));
  EXPECT_EQ(def->supervisor.restart_backoff, milliseconds(100));
  EXPECT_EQ(def->supervisor.restart_backoff_max, milliseconds(5000));
  EXPECT_EQ(def->supervisor.crash_loop_restarts, 5);
  EXPECT_EQ(def->supervisor.crash_loop_window, milliseconds(60000));

  auto set = parse_server_config(
      "supervisor:\n  heartbeat_interval_ms: 100\n  heartbeat_timeout_ms: 1000\n  startup_timeout_ms: 9000\n"
      "  restart_backoff_ms: 10\n  restart_backoff_max_ms: 20\n  crash_loop_restarts: 2\n"
      "  crash_loop_window_ms: 3000\n",
      "c.yaml");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->supervisor.heartbeat_interval, milliseconds(100));
  EXPECT_EQ(set->supervisor.heartbeat_timeout, milliseconds(1000));
  EXPECT_EQ(set->supervisor.startup_timeout, milliseconds(9000));
  EXPECT_EQ(set->supervisor.restart_backoff, milliseconds(10));
  EXPECT_EQ(set->supervisor.restart_backoff_max, milliseconds(20));
  EXPECT_EQ(set->supervisor.crash_loop_restarts, 2);
  EXPECT_EQ(set->supervisor.crash_loop_window, milliseconds(3000));
}

std::string errors_of(const std::string& yaml) {
  auto r = parse_server_config(yaml, "c.yaml");
  if (r) return "";
  std::string out;
  for (const auto& e : r.error()) out += e.to_string() + "\n";
  return out;
}

TEST(SupervisorConfig, RejectsUnknownKeysAndInconsistentTimes) {
  EXPECT_NE(errors_of("supervisor:\n  heartbeat_ms: 5\n").find("c.yaml:2"), std::string::npos);
  EXPECT_NE(errors_of("supervisor:\n  heartbeat_interval_ms: 500\n  heartbeat_timeout_ms: 600\n")
                .find("at least twice"),
            std::string::npos);
  EXPECT_NE(errors_of("supervisor:\n  restart_backoff_ms: 500\n  restart_backoff_max_ms: 100\n")
                .find("restart_backoff_max_ms"),
            std::string::npos);
  EXPECT_NE(errors_of("supervisor:\n  crash_loop_restarts: -1\n").find("crash_loop_restarts"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice
