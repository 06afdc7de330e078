#include "engine/sampling/stop_matcher.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice {
namespace {

struct Fed {
  std::string emitted;
  bool stopped = false;
  int stop_index = -1;
  std::vector<std::string> pushes;  // what each push returned
};

// Feeds `pieces` in order and flushes at the end when no stop matched.
Fed feed(StopMatcher& m, const std::vector<std::string>& pieces) {
  Fed r;
  for (const std::string& p : pieces) {
    auto out = m.push(p);
    r.pushes.push_back(out.text);
    r.emitted += out.text;
    if (out.stopped) {
      r.stopped = true;
      r.stop_index = out.stop_index;
      break;
    }
  }
  if (!r.stopped) r.emitted += m.flush();
  return r;
}

TEST(StopMatcher, NoStopStringsPassesEverythingThrough) {
  StopMatcher m({}, false);
  auto out = m.push("hello");
  EXPECT_EQ(out.text, "hello");
  EXPECT_FALSE(out.stopped);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, StopSplitOverManyPieces) {
  StopMatcher m({"<|end|>"}, false);
  Fed r = feed(m, {"Hello", " wor", "ld<", "|", "en", "d|", ">tail"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_EQ(r.emitted, "Hello world");
  // Nothing of the stop string leaked in any intermediate piece.
  EXPECT_EQ(r.pushes[2], "ld");
  EXPECT_EQ(r.pushes[3], "");
  EXPECT_EQ(r.pushes[4], "");
  EXPECT_EQ(r.pushes[5], "");
}

TEST(StopMatcher, FalseStartIsReleasedOnceItCannotMatch) {
  StopMatcher m({"STOP"}, false);
  EXPECT_EQ(m.push("a ST").text, "a ");
  EXPECT_EQ(m.pending_bytes(), 2u);
  EXPECT_EQ(m.push("ART").text, "START");
  EXPECT_EQ(m.pending_bytes(), 0u);
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, OverlappingPrefixesStopAtTheFirstCompleteOne) {
  // "ab" completes first; the stream stops there even though "abc" could follow.
  StopMatcher m({"abc", "ab"}, false);
  Fed r = feed(m, {"xa", "b", "c"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 1);
  EXPECT_EQ(r.emitted, "x");
}

TEST(StopMatcher, ResultDoesNotDependOnPieceBoundaries) {
  const std::vector<std::string> stops = {"bc", "abc", "zz"};
  const std::string text = "xxabcyy";
  std::string whole;
  {
    StopMatcher m(stops, false);
    whole = feed(m, {text}).emitted;
  }
  EXPECT_EQ(whole, "xx");  // "bc" and "abc" complete at the same byte; the earlier start cuts
  for (std::size_t split = 1; split < text.size(); ++split) {
    StopMatcher m(stops, false);
    Fed r = feed(m, {text.substr(0, split), text.substr(split)});
    EXPECT_EQ(r.emitted, whole) << "split at " << split;
  }
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  StopMatcher m(stops, false);
  EXPECT_EQ(feed(m, bytes).emitted, whole);
}

TEST(StopMatcher, MultipleStopStringsEarliestWins) {
  StopMatcher m({"world", "lo w"}, false);
  Fed r = feed(m, {"hello world"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 1);
  EXPECT_EQ(r.emitted, "hel");
}

TEST(StopMatcher, IncludeStopStringInOutput) {
  StopMatcher m({"END"}, true);
  Fed r = feed(m, {"one E", "N", "Dtwo"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "one END");
}

TEST(StopMatcher, NoMatchEmitsEverythingAfterFlush) {
  StopMatcher m({"###"}, false);
  Fed r = feed(m, {"a#", "b##"});
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.pushes[0], "a");
  EXPECT_EQ(r.pushes[1], "#b");  // "##" may still begin "###"
  EXPECT_EQ(r.emitted, "a#b##");
}

TEST(StopMatcher, PiecesAfterStopAreIgnored) {
  StopMatcher m({"."}, false);
  auto first = m.push("end. more");
  EXPECT_TRUE(first.stopped);
  EXPECT_EQ(first.text, "end");
  auto later = m.push("ignored");
  EXPECT_TRUE(later.stopped);
  EXPECT_EQ(later.text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, MultiByteStopStringSplitInsideACharacter) {
  // "→" is E2 86 92; the decoder would not split it, but the stop logic must not depend on that.
  StopMatcher m({"\xe2\x86\x92 done"}, false);
  Fed r = feed(m, {"a \xe2\x86", "\x92", " do", "ne!"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "a ");
}

TEST(StopMatcher, EmptyStopStringIsIgnored) {
  StopMatcher m({""}, false);
  Fed r = feed(m, {"abc"});
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.emitted, "abc");
}

}  // namespace
}  // namespace sluice
