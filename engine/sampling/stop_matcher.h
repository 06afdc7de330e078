// StopMatcher: finds stop strings in a stream of detokenized text pieces and decides what may be emitted.
//
// push() returns the text that is safe to send now. It holds back the longest tail of the text that is the
// beginning of some stop string (it may yet become one), so a stop string split over any number of pieces is
// never leaked. The stream stops at the first byte where some stop string is complete; the output is cut
// right before the earliest-starting stop string complete there, or right after it with
// include_stop_str_in_output. The result does not depend on how the text was split into pieces.
//
// Input is valid UTF-8 (the incremental decoder never emits a broken sequence) and stop strings are valid
// UTF-8, so every cut falls on a character boundary. Empty stop strings are ignored.
//
// One matcher per stream; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

class StopMatcher {
 public:
  StopMatcher(std::vector<std::string> stops, bool include_stop_str_in_output);

  struct Output {
    std::string text;        // safe to emit now
    bool stopped = false;    // a stop string matched: `text` is the last of the stream
    int stop_index = -1;     // which of the stop strings, when stopped
  };

  // Feeds one piece. After a stop, further pieces are ignored and return an empty, stopped Output.
  Output push(std::string_view piece);
  // End of stream without a stop: returns what was held back (empty after a stop).
  std::string flush();

  bool stopped() const { return stopped_; }
  // Bytes currently held back.
  std::size_t pending_bytes() const { return held_.size(); }

 private:
  std::size_t hold_length() const;

  std::vector<std::string> stops_;
  bool include_stop_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace sluice
