#include "gateway/core/target.h"

#include <gtest/gtest.h>

#include "gateway/cli.h"

namespace sluice {
namespace {

TEST(ErrorKind, NamesRoundTrip) {
  for (auto k : {ErrorKind::connect_error, ErrorKind::timeout, ErrorKind::upstream_5xx, ErrorKind::rate_limited,
                 ErrorKind::overloaded, ErrorKind::context_too_long, ErrorKind::unsupported, ErrorKind::unavailable,
                 ErrorKind::upstream_4xx, ErrorKind::cancelled, ErrorKind::internal})
    EXPECT_EQ(error_kind_from_string(to_string(k)), k);
  EXPECT_EQ(error_kind_from_string("5xx"), std::nullopt);
}

TEST(CancelSlot, RunsTheHandlerOnceAndLateHandlersAtOnce) {
  CancelSlot slot;
  int a = 0, b = 0;
  slot.on_cancel([&] { ++a; });
  slot.cancel();
  slot.cancel();
  EXPECT_EQ(a, 1);
  EXPECT_TRUE(slot.cancelled());
  slot.on_cancel([&] { ++b; });
  EXPECT_EQ(b, 1);
}

TEST(CancelSlot, ClearedHandlerDoesNotRun) {
  CancelSlot slot;
  int a = 0;
  slot.on_cancel([&] { ++a; });
  slot.clear();
  slot.cancel();
  EXPECT_EQ(a, 0);
}

TEST(Cli, ParsesServeAndCheckConfig) {
  auto o = parse_cli({"serve", "--config", "c.yaml", "--port", "0", "--host", "0.0.0.0"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->command, CliOptions::Command::serve);
  EXPECT_EQ(o->config_path, "c.yaml");
  EXPECT_EQ(o->port, 0);
  EXPECT_EQ(o->host, "0.0.0.0");
  auto c = parse_cli({"check-config", "--config", "x.yaml"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->command, CliOptions::Command::check_config);
}

TEST(Cli, RejectsBadArguments) {
  EXPECT_FALSE(parse_cli({"serve"}));                                    // no --config
  EXPECT_FALSE(parse_cli({"serve", "--config", "c", "--port", "70000"}));
  EXPECT_FALSE(parse_cli({"serve", "--config", "c", "--port", "12a"}));
  EXPECT_FALSE(parse_cli({"serve", "--config"}));
  EXPECT_FALSE(parse_cli({"frobnicate"}));
  EXPECT_FALSE(parse_cli({"check-config", "--config", "c", "--port", "1"}));
  auto h = parse_cli({});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->command, CliOptions::Command::help);
}

}  // namespace
}  // namespace sluice
