#include "gateway/http/response_channel.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {

namespace asio = boost::asio;

ResponseChannel::ResponseChannel(asio::any_io_executor strand, std::size_t capacity_bytes)
    : capacity_(capacity_bytes == 0 ? 1 : capacity_bytes), wake_(std::move(strand)) {}

void ResponseChannel::push(TargetEvent ev, std::size_t bytes) {
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(std::move(ev), bytes);
    bytes_ += bytes;
  }
  // Wake the consumer on its strand. Cancelling a timer with no pending wait is harmless, and the consumer
  // re-checks the queue before every wait, so no wake-up is lost.
  asio::post(wake_.get_executor(), [self = shared_from_this()] { self->wake_.cancel(); });
}

void ResponseChannel::delta(Delta d) {
  const std::size_t bytes = d.text.size() + d.raw.size();
  push(std::move(d), bytes);
}
void ResponseChannel::usage(Usage u) { push(u, 0); }
void ResponseChannel::finish(std::string reason) { push(FinishEvent{std::move(reason)}, 0); }
void ResponseChannel::error(TargetError e) { push(std::move(e), 0); }

bool ResponseChannel::has_room() const {
  std::lock_guard lock(mu_);
  return closed_ || bytes_ < capacity_;
}

void ResponseChannel::notify_when_room(std::function<void()> callback) {
  {
    std::lock_guard lock(mu_);
    if (!closed_ && bytes_ >= capacity_) {
      room_waiters_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

std::size_t ResponseChannel::buffered_bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

asio::awaitable<TargetEvent> ResponseChannel::next() {
  for (;;) {
    std::vector<std::function<void()>> ready;
    {
      std::unique_lock lock(mu_);
      if (!queue_.empty()) {
        auto [ev, bytes] = std::move(queue_.front());
        queue_.pop_front();
        bytes_ -= bytes;
        if (bytes_ < capacity_) ready.swap(room_waiters_);
        lock.unlock();
        for (auto& cb : ready) cb();
        co_return std::move(ev);
      }
    }
    wake_.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void ResponseChannel::close() {
  std::vector<std::function<void()>> waiters;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    waiters.swap(room_waiters_);
  }
  for (auto& cb : waiters) cb();
}

}  // namespace sluice
