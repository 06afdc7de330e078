// ResponseChannel: the Sink a request's targets report to. Producers (a remote target on the strand, or the
// engine thread) push events from any thread; the connection's coroutine pops them on its strand. The buffer
// is bounded in bytes: when full, has_room() is false and producers wait (backpressure, DESIGN.md).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/core/target.h"

namespace sluice {

struct FinishEvent {
  std::string reason;
};

using TargetEvent = std::variant<Delta, Usage, FinishEvent, TargetError>;

class ResponseChannel final : public Sink, public std::enable_shared_from_this<ResponseChannel> {
 public:
  ResponseChannel(boost::asio::any_io_executor strand, std::size_t capacity_bytes);

  // Sink: any thread.
  void delta(Delta d) override;
  void usage(Usage u) override;
  void finish(std::string reason) override;
  void error(TargetError e) override;
  bool has_room() const override;
  void notify_when_room(std::function<void()> callback) override;

  // Consumer: on the strand. Waits for the next event.
  boost::asio::awaitable<TargetEvent> next();
  // The request is over: room callbacks still registered run now so producers are never left waiting.
  void close();
  std::size_t buffered_bytes() const;

 private:
  void push(TargetEvent ev, std::size_t bytes);

  const std::size_t capacity_;
  boost::asio::steady_timer wake_;  // strand-only; cancelled to wake the consumer
  mutable std::mutex mu_;
  std::deque<std::pair<TargetEvent, std::size_t>> queue_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
  std::vector<std::function<void()>> room_waiters_;
};

}  // namespace sluice
