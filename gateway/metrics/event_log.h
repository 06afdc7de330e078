// A bounded ring of recent routing events (fallbacks from one target to the next) for the live dashboard.
//
// Every string recorded must be a configured name or an enum's name (route, target, error kind), never one
// a client sent: the dashboard that shows them is open. Thread: any; record() takes a short lock and is
// meant for decisions that are already off the hot path (a request that failed over), not every request.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct Event {
  std::uint64_t seq = 0;     // 1, 2, 3, ... in record order; tells a reader which events it has seen
  std::int64_t unix_ms = 0;  // wall-clock time of the record
  std::string kind;          // e.g. "fallback"
  std::string route;
  std::string target;        // the target that was left
  std::string reason;        // e.g. the error kind that caused the move
};

class EventLog {
 public:
  static constexpr std::size_t kDefaultCapacity = 100;

  explicit EventLog(std::size_t capacity = kDefaultCapacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  void record(std::string_view kind, std::string_view route, std::string_view target, std::string_view reason);
  void record(std::string_view kind, std::string_view route, std::string_view target, std::string_view reason,
              std::chrono::system_clock::time_point at);

  // The kept events, oldest first: at most capacity() of them.
  std::vector<Event> recent() const;
  // Events recorded since start, including those the ring has dropped.
  std::uint64_t total() const;
  std::size_t capacity() const { return capacity_; }

 private:
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Event> ring_;
  std::uint64_t next_seq_ = 1;
};

}  // namespace sluice
