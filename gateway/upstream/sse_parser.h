// Server-sent events (the WHATWG "text/event-stream" format): an incremental parser for what remote providers
// stream to us, and the framing the server side uses to stream to clients.
//
// The parser accepts bytes in any chunking (one byte at a time included), recognises \n, \r\n and \r line
// ends (also a \r\n split across two feeds), comment lines (`:`), and the `data`, `event`, `id` and `retry`
// fields. An event is dispatched on a blank line when it carried at least one `data` line; its data lines are
// joined with \n. An incomplete event at the end of the stream is not dispatched (the format's rule).
//
// Memory is bounded: the bytes of the event being assembled (its fields plus the current unfinished line)
// may not exceed max_event_bytes; beyond that feed() fails and the parser stays failed.
// Not thread-safe: one parser belongs to one stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/util/result.h"

namespace sluice {

struct SseEvent {
  std::string event;                  // the `event:` field, "" when absent (the format's "message")
  std::string data;                   // the `data:` lines joined with \n
  std::string id;                     // the last event id seen on the stream, "" if none
  std::optional<std::int64_t> retry;  // a `retry:` field of this event, in milliseconds
};

struct SseParseError {
  std::string message;
};

class SseParser {
 public:
  static constexpr std::size_t kDefaultMaxEventBytes = 1024 * 1024;

  explicit SseParser(std::size_t max_event_bytes = kDefaultMaxEventBytes);

  // Parses `bytes`, appending every event completed by them to `out` (in stream order). On error, events
  // completed before the offending one are still appended.
  Status<SseParseError> feed(std::string_view bytes, std::vector<SseEvent>& out);

  // True when bytes of an unfinished line or an undispatched event are buffered.
  bool has_partial_event() const;
  bool failed() const { return failed_; }
  std::size_t max_event_bytes() const { return max_event_bytes_; }

 private:
  void process_line(std::string_view line, std::vector<SseEvent>& out);
  std::size_t pending_bytes() const;

  std::size_t max_event_bytes_;
  std::string line_;             // the unfinished line
  std::string data_;             // data lines of the event being assembled, each followed by \n
  std::string event_;
  std::string last_id_;          // persists across events, as the format says
  std::optional<std::int64_t> retry_;
  bool has_data_ = false;
  bool after_cr_ = false;        // the previous byte ended a line with \r: a following \n belongs to it
  bool at_start_ = true;         // a UTF-8 byte order mark is skipped at the very start of the stream
  bool failed_ = false;
};

// One SSE frame carrying `payload`: "data: <payload>\n\n". Payloads are single-line JSON; should one contain
// line breaks anyway, each line becomes its own `data:` line, which a client joins back into the same text.
std::string sse_frame(std::string_view payload);

}  // namespace sluice
