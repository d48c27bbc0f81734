// parse_duration and format_duration: Go's syntax, milliseconds, the round trip.
#include <catch2/catch.hpp>

#include "config/config.hpp"

using stowage::config::ConfigError;
using stowage::config::format_duration;
using stowage::config::Millis;
using stowage::config::parse_duration;

TEST_CASE("parse_duration reads Go's duration syntax into milliseconds") {
  struct Row {
    const char* text;
    long long millis;
  };
  const Row rows[] = {
      {"0", 0},
      {"0s", 0},
      {"+5s", 5000},
      {"300ms", 300},
      {"1.5s", 1500},
      {"1h30m", 5'400'000},
      {"1.5h", 5'400'000},
      {"2h45m", 9'900'000},
      {"1m30s", 90'000},
      {".5s", 500},
      {"5.s", 5000},
      {"100ms", 100},
      {"2s", 2000},
      {"5m", 300'000},
      {"10m", 600'000},
      {"1s500ms", 1500},
      {"1500us", 2},
      {"1400us", 1},
      {"1400\xC2\xB5s", 1},
      {"1400\xCE\xBCs", 1},
      {"999999ns", 1},
      {"499999ns", 0},
      {"1.0005s", 1001},
      {"0.001s", 1},
      {"2562047h", 2562047LL * 3'600'000},
  };
  for (const auto& row : rows) {
    INFO(row.text);
    CHECK(parse_duration(row.text) == Millis{row.millis});
  }
}

TEST_CASE("parse_duration rejects anything else with a message showing the accepted form") {
  const std::string hint = "\": use a number with a unit ns, us, ms, s, m or h, e.g. 500ms or 1m30s";
  for (const char* text : {"5 parsecs", "", "5", "s", "1.s5", ".s", "5S", " 5s", "5s ", "1d", "1h30", "ms", "."}) {
    INFO(text);
    CHECK_THROWS_MATCHES(parse_duration(text), ConfigError,
                         Catch::Matchers::Message("bad duration \"" + std::string(text) + hint));
  }
}

TEST_CASE("parse_duration rejects negative and overlong durations") {
  CHECK_THROWS_MATCHES(parse_duration("-1s"), ConfigError,
                       Catch::Matchers::Message("bad duration \"-1s\": must not be negative"));
  CHECK_THROWS_MATCHES(parse_duration("2562048h"), ConfigError,
                       Catch::Matchers::Message("bad duration \"2562048h\": too large (at most 2562047h)"));
  CHECK_THROWS_AS(parse_duration("99999999999999999999s"), ConfigError);
  CHECK_THROWS_AS(parse_duration("2562047h2562047h"), ConfigError);
}

TEST_CASE("format_duration writes the shortest natural form") {
  CHECK(format_duration(Millis{0}) == "0s");
  CHECK(format_duration(Millis{5}) == "5ms");
  CHECK(format_duration(Millis{100}) == "100ms");
  CHECK(format_duration(Millis{1500}) == "1.5s");
  CHECK(format_duration(Millis{1001}) == "1.001s");
  CHECK(format_duration(Millis{1020}) == "1.02s");
  CHECK(format_duration(Millis{2000}) == "2s");
  CHECK(format_duration(Millis{90'000}) == "1m30s");
  CHECK(format_duration(Millis{300'000}) == "5m");
  CHECK(format_duration(Millis{5'400'000}) == "1h30m");
  CHECK(format_duration(Millis{3'600'000}) == "1h");
  CHECK(format_duration(Millis{3'630'000}) == "1h30s");
  CHECK(format_duration(Millis{60'500}) == "1m500ms");
  CHECK(format_duration(Millis{172'800'000}) == "48h");
}

TEST_CASE("parse_duration reads back everything format_duration writes") {
  for (long long ms : {0LL, 1LL, 999LL, 1000LL, 1001LL, 59'999LL, 60'000LL, 60'001LL, 3'599'999LL, 3'600'000LL,
                       3'600'001LL, 86'400'000LL, 123'456'789LL, 2562047LL * 3'600'000}) {
    INFO(ms);
    CHECK(parse_duration(format_duration(Millis{ms})) == Millis{ms});
  }
  for (long long ms = 0; ms < 200'000; ms += 37) {
    REQUIRE(parse_duration(format_duration(Millis{ms})) == Millis{ms});
  }
}

TEST_CASE("the longest duration rounds down to a millisecond that reads back (fuzz: duration)") {
  // Found by fuzz/duration_fuzz.cpp (fuzz/corpus/duration/d-9223372036854775807ns_): rounding up made
  // 9223372036855ms, which format_duration writes as a duration parse_duration refuses as too large.
  const Millis longest = parse_duration("9223372036854775807ns");
  CHECK(longest == Millis{9'223'372'036'854});
  CHECK(format_duration(longest) == "2562047h47m16.854s");
  CHECK(parse_duration(format_duration(longest)) == longest);
}
