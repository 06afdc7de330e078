#include "gateway/http/response_channel.h"

#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>

namespace sluice {
namespace {

namespace asio = boost::asio;

TEST(ResponseChannel, DeliversEventsFromAnotherThreadInOrder) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  auto chan = std::make_shared<ResponseChannel>(strand, 1 << 20);
  std::vector<std::string> got;
  std::string finish;
  asio::co_spawn(
      strand,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto ev = co_await chan->next();
          if (auto* d = std::get_if<Delta>(&ev)) got.push_back(d->text);
          if (auto* f = std::get_if<FinishEvent>(&ev)) {
            finish = f->reason;
            co_return;
          }
        }
      },
      asio::detached);
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) chan->delta(Delta{std::to_string(i), {}, 1});
    chan->finish("stop");
  });
  io.run();
  producer.join();
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], std::to_string(i));
  EXPECT_EQ(finish, "stop");
}

TEST(ResponseChannel, FullBufferReportsNoRoomUntilTheConsumerCatchesUp) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  auto chan = std::make_shared<ResponseChannel>(strand, 10);
  EXPECT_TRUE(chan->has_room());
  chan->delta(Delta{"0123456789ab", {}, 1});
  EXPECT_FALSE(chan->has_room());
  bool woke = false;
  chan->notify_when_room([&] { woke = true; });
  EXPECT_FALSE(woke);
  asio::co_spawn(strand, [&]() -> asio::awaitable<void> { co_await chan->next(); }, asio::detached);
  io.run();
  EXPECT_TRUE(woke);
  EXPECT_TRUE(chan->has_room());
  EXPECT_EQ(chan->buffered_bytes(), 0u);
}

TEST(ResponseChannel, CloseReleasesWaitingProducers) {
  asio::io_context io;
  auto chan = std::make_shared<ResponseChannel>(asio::make_strand(io), 4);
  chan->delta(Delta{"abcdef", {}, 1});
  int woke = 0;
  chan->notify_when_room([&] { ++woke; });
  chan->close();
  EXPECT_EQ(woke, 1);
  chan->notify_when_room([&] { ++woke; });  // after close: runs at once
  EXPECT_EQ(woke, 2);
}

}  // namespace
}  // namespace sluice
