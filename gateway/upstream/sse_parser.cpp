#include "gateway/upstream/sse_parser.h"

#include <limits>
#include <utility>

namespace sluice {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

std::optional<std::int64_t> parse_retry(std::string_view value) {
  if (value.empty()) return std::nullopt;
  std::int64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v > (std::numeric_limits<std::int64_t>::max() - (c - '0')) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

SseParser::SseParser(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

std::size_t SseParser::pending_bytes() const { return line_.size() + data_.size() + event_.size(); }

bool SseParser::has_partial_event() const { return !line_.empty() || has_data_ || !event_.empty(); }

Status<SseParseError> SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  auto too_large = [this]() -> Status<SseParseError> {
    failed_ = true;
    line_.clear();
    data_.clear();
    event_.clear();
    has_data_ = false;
    return fail(SseParseError{"event stream: an event exceeds " + std::to_string(max_event_bytes_) + " bytes"});
  };
  if (failed_) return fail(SseParseError{"event stream: parser already failed"});

  std::size_t i = 0;
  while (i < bytes.size()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes[i] == '\n') {  // the second half of a \r\n
        ++i;
        continue;
      }
    }
    const std::size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(i));
      if (pending_bytes() > max_event_bytes_) return too_large();
      break;
    }
    line_.append(bytes.substr(i, end - i));
    if (pending_bytes() > max_event_bytes_) return too_large();
    after_cr_ = bytes[end] == '\r';
    process_line(line_, out);
    line_.clear();
    if (pending_bytes() > max_event_bytes_) return too_large();
    i = end + 1;
  }
  return Ok{};
}

void SseParser::process_line(std::string_view line, std::vector<SseEvent>& out) {
  if (at_start_) {
    at_start_ = false;
    if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
  }
  if (line.empty()) {
    if (has_data_) {
      data_.pop_back();  // every data line appended a \n; the last one is not part of the payload
      out.push_back(SseEvent{std::move(event_), std::move(data_), last_id_, retry_});
    }
    data_.clear();
    event_.clear();
    retry_.reset();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // a comment (keep-alive pings use these)

  std::string_view field = line;
  std::string_view value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    if (auto r = parse_retry(value)) retry_ = r;
  }
  // Any other field is ignored, as the format requires.
}

std::string sse_frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  std::size_t i = 0;
  for (;;) {
    const std::size_t end = payload.find_first_of("\r\n", i);
    out.append("data: ");
    out.append(payload.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
    out.push_back('\n');
    if (end == std::string_view::npos) break;
    i = end + 1;
    if (payload[end] == '\r' && i < payload.size() && payload[i] == '\n') ++i;
  }
  out.push_back('\n');
  return out;
}

}  // namespace sluice
