#include "gateway/upstream/sse_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice {
namespace {

using namespace std::string_view_literals;

std::vector<SseEvent> parse_in_pieces(std::string_view stream, std::size_t piece, bool* ok = nullptr) {
  SseParser parser;
  std::vector<SseEvent> events;
  bool good = true;
  for (std::size_t i = 0; i < stream.size(); i += piece)
    good = parser.feed(stream.substr(i, piece), events).ok() && good;
  if (ok) *ok = good;
  return events;
}

std::vector<std::string> datas(const std::vector<SseEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

TEST(SseParser, SameEventsWhateverTheChunking) {
  const std::string stream =
      ": comment\n"
      "data: {\"a\":1}\n\n"
      "event: update\r\nid: 7\r\ndata: first\r\ndata: second\r\n\r\n"
      "data:no-space\rretry: 1500\r\r"
      "data: [DONE]\n\n";
  const std::vector<std::string> expected{"{\"a\":1}", "first\nsecond", "no-space", "[DONE]"};
  for (std::size_t piece : {1u, 2u, 3u, 5u, 7u, 64u, 4096u}) {
    bool ok = false;
    const auto events = parse_in_pieces(stream, piece, &ok);
    ASSERT_TRUE(ok);
    EXPECT_EQ(datas(events), expected) << "piece size " << piece;
    ASSERT_EQ(events.size(), 4u);
    EXPECT_EQ(events[0].event, "");
    EXPECT_EQ(events[1].event, "update");
    EXPECT_EQ(events[1].id, "7");
    EXPECT_EQ(events[2].id, "7");  // the last event id persists
    EXPECT_EQ(events[2].retry, 1500);
    EXPECT_FALSE(events[3].retry);
  }
}

TEST(SseParser, CrLfSplitAcrossFeedsIsOneLineEnd) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.feed("data: x\r", events).ok());
  ASSERT_TRUE(parser.feed("\n", events).ok());  // not a second, empty line
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(parser.feed("\r\n", events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
}

TEST(SseParser, FieldRules) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser
                  .feed("data\n\n"                // a field without colon: empty value
                        "data:  two spaces\n\n"   // only one leading space is removed
                        "data: a\ndata:\ndata: b\n\n"
                        "unknown: x\ndata: k\n\n"
                        "event: lonely\n\n"       // no data: nothing dispatched, event type reset
                        "data: after\n\n"
                        "retry: 12x\ndata: r\n\n"
                        "id: a\0b\ndata: i\n\n"sv,
                        events)
                  .ok());
  EXPECT_EQ(datas(events), (std::vector<std::string>{"", " two spaces", "a\n\nb", "k", "after", "r", "i"}));
  EXPECT_EQ(events[4].event, "");
  EXPECT_FALSE(events[5].retry);
  EXPECT_EQ(events[6].id, "");  // an id containing NUL is ignored
}

TEST(SseParser, ByteOrderMarkAtStartIsSkipped) {
  const std::string stream = "\xEF\xBB\xBF" "data: x\n\n";
  EXPECT_EQ(datas(parse_in_pieces(stream, 1)), std::vector<std::string>{"x"});
}

TEST(SseParser, IncompleteEventIsNotDispatched) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.feed("data: a\n\ndata: partial\n", events).ok());
  EXPECT_EQ(datas(events), std::vector<std::string>{"a"});
  EXPECT_TRUE(parser.has_partial_event());
}

TEST(SseParser, OversizedEventFailsAndStaysFailed) {
  SseParser parser(64);
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.feed("data: small\n\n", events).ok());
  // Many short lines that together exceed the cap.
  Status<SseParseError> r = Ok{};
  for (int i = 0; i < 20 && r.ok(); ++i) r = parser.feed("data: 0123456789\n", events);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("64"), std::string::npos);
  EXPECT_TRUE(parser.failed());
  EXPECT_FALSE(parser.feed("\n", events).ok());
  EXPECT_EQ(datas(events), std::vector<std::string>{"small"});
}

TEST(SseParser, OversizedSingleLineWithoutNewlineFails) {
  SseParser parser(100);
  std::vector<SseEvent> events;
  EXPECT_TRUE(parser.feed(std::string(60, 'a'), events).ok());
  EXPECT_FALSE(parser.feed(std::string(60, 'a'), events).ok());
}

TEST(SseParser, CommentsDoNotCountAfterTheyEnd) {
  SseParser parser(32);
  std::vector<SseEvent> events;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(parser.feed(": ping ping ping ping\n", events).ok());
  ASSERT_TRUE(parser.feed("data: x\n\n", events).ok());
  EXPECT_EQ(datas(events), std::vector<std::string>{"x"});
}

TEST(SseFrame, FramesAndRoundTrips) {
  EXPECT_EQ(sse_frame(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_frame(""), "data: \n\n");
  EXPECT_EQ(sse_frame("a\nb"), "data: a\ndata: b\n\n");
  for (std::string payload : {std::string("x"), std::string("a\r\nb\rc\n"), std::string("[DONE]")}) {
    SseParser parser;
    std::vector<SseEvent> events;
    ASSERT_TRUE(parser.feed(sse_frame(payload), events).ok());
    ASSERT_EQ(events.size(), 1u);
    std::string normalized;
    for (std::size_t i = 0; i < payload.size(); ++i) {
      if (payload[i] == '\r') {
        normalized.push_back('\n');
        if (i + 1 < payload.size() && payload[i + 1] == '\n') ++i;
      } else {
        normalized.push_back(payload[i]);
      }
    }
    EXPECT_EQ(events[0].data, normalized);
  }
}

}  // namespace
}  // namespace sluice
