#include <catch2/catch.hpp>

#include "common/backoff.hpp"
#include "common/crypto.hpp"
#include "common/time_format.hpp"

using namespace stowage;

TEST_CASE("base64 round-trips and rejects malformed input") {
  CHECK(crypto::base64_encode("hello") == "aGVsbG8=");
  CHECK(crypto::base64_decode("aGVsbG8=").value() == "hello");
  CHECK(crypto::base64_decode("aGVsbG8h").value() == "hello!");
  CHECK(crypto::base64_decode("").value().empty());
  CHECK_FALSE(crypto::base64_decode("aGVsbG8").has_value());    // length not a multiple of 4
  CHECK_FALSE(crypto::base64_decode("aGV$bG8=").has_value());   // bad character
  CHECK_FALSE(crypto::base64_decode("a===").has_value());       // too much padding
  CHECK_FALSE(crypto::base64_decode("aG=sbG8=").has_value());   // padding in the middle
}

TEST_CASE("sha256 and hmac match published vectors") {
  CHECK(crypto::hex(crypto::sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // RFC 4231 test case 2.
  CHECK(crypto::hex(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("uuid v4 has the right shape") {
  auto u = crypto::uuid_v4();
  REQUIRE(u.size() == 36);
  CHECK(u[14] == '4');
  CHECK(u != crypto::uuid_v4());
}

TEST_CASE("rfc3339 formats and parses") {
  auto t = parse_rfc3339("2025-04-21T12:29:15Z");
  REQUIRE(t.has_value());
  CHECK(rfc3339(*t) == "2025-04-21T12:29:15Z");
  CHECK(rfc3339(*parse_rfc3339("2025-04-21T14:29:15.123+02:00")) == "2025-04-21T12:29:15Z");
  CHECK_FALSE(parse_rfc3339("yesterday").has_value());
  // Found by fuzz/backend_meta_fuzz.cpp (fuzz/corpus/backend_meta/year-6196): a time the clock cannot
  // hold (nanoseconds since 1970 in an int64: 1678 to 2261) used to overflow; it is no time at all.
  CHECK_FALSE(parse_rfc3339("6196-04-21T12:29:15Z").has_value());
  CHECK_FALSE(parse_rfc3339("9999-12-31T23:59:59Z").has_value());
  CHECK_FALSE(parse_rfc3339("1000-01-01T00:00:00Z").has_value());
  CHECK(rfc3339(*parse_rfc3339("2261-12-31T23:59:59Z")) == "2261-12-31T23:59:59Z");
}

TEST_CASE("human_duration follows kubectl") {
  using std::chrono::seconds;
  CHECK(human_duration(seconds(5)) == "5s");
  CHECK(human_duration(seconds(119)) == "119s");
  CHECK(human_duration(seconds(200)) == "3m20s");
  CHECK(human_duration(seconds(3600 * 2)) == "120m");
  CHECK(human_duration(seconds(3600 * 5 + 60)) == "5h1m");
  CHECK(human_duration(seconds(3600 * 30)) == "30h");
  CHECK(human_duration(seconds(86400 * 3)) == "3d");
  CHECK(human_duration(seconds(86400 * 3 + 3600)) == "3d1h");
  CHECK(human_duration(seconds(86400 * 100)) == "100d");
}

TEST_CASE("full-jitter backoff stays within its ceiling") {
  FullJitterBackoff b(Millis(1000), Millis(300000), Millis(10), 42);
  CHECK(b.ceiling(0) == Millis(1000));
  CHECK(b.ceiling(3) == Millis(8000));
  CHECK(b.ceiling(40) == Millis(300000));
  for (int attempt = 0; attempt < 30; ++attempt) {
    for (int i = 0; i < 50; ++i) {
      auto d = b.next(attempt);
      CHECK(d >= Millis(10));
      CHECK(d <= b.ceiling(attempt));
    }
  }
}
