// parse_json_in_slices: a large JSON text parsed on the reactor with turns of the reactor between
// slices, giving what boost::json::parse gives.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "kube/json_slices.hpp"
#include "support/run_awaitable.hpp"

using namespace stowage;
namespace json = boost::json;

namespace {

// A list page of `n` small objects.
std::string page(int n) {
  json::array items;
  for (int i = 0; i < n; ++i)
    items.push_back(json::value{{"metadata", {{"name", "cm-" + std::to_string(i)}, {"namespace", "ns1"}}},
                                {"data", {{"k", std::string(40, 'x')}}}});
  return json::serialize(json::value{{"kind", "ConfigMapList"}, {"items", std::move(items)}});
}

// Parses `text` while another piece of work re-posts itself: returns the result and how many
// turns that other work got before the parse ended.
std::pair<Result<json::value, kube::JsonSliceError>, int> parse_counting_turns(const std::string& text,
                                                                               kube::JsonSliceOptions options) {
  boost::asio::io_context io;
  int turns = 0;
  bool parsing = true;
  std::function<void()> tick = [&] {
    if (!parsing) return;
    ++turns;
    boost::asio::post(io, tick);
  };
  boost::asio::post(io, tick);
  auto work = [&]() -> boost::asio::awaitable<Result<json::value, kube::JsonSliceError>> {
    auto r = co_await kube::parse_json_in_slices(text, options);
    parsing = false;
    co_return r;
  };
  auto result = test_support::run_awaitable(io, work());
  return {std::move(result), turns};
}

}  // namespace

TEST_CASE("a large text is parsed across many turns of the reactor, into what json::parse gives") {
  const std::string text = page(2000);  // ~150 KB
  kube::JsonSliceOptions options;
  options.slice = std::chrono::microseconds(0);  // yield after every chunk
  options.chunk = 4096;
  auto [result, turns] = parse_counting_turns(text, options);
  REQUIRE(result.ok());
  CHECK(result.value() == json::parse(text));
  // One turn of other work per chunk fed (less the last): the parse never held the reactor long.
  CHECK(turns >= static_cast<int>(text.size() / options.chunk) - 1);
}

TEST_CASE("a text that parses within one slice takes no extra turn") {
  const std::string text = page(3);
  auto [result, turns] = parse_counting_turns(text, {});
  REQUIRE(result.ok());
  CHECK(result.value() == json::parse(text));
  CHECK(turns <= 1);  // the other work's first turn may come before the parse starts
}

TEST_CASE("invalid, truncated or trailing text is an error naming the byte, across slices too") {
  kube::JsonSliceOptions tiny;
  tiny.slice = std::chrono::microseconds(0);
  tiny.chunk = 7;
  std::string text = page(20);
  SECTION("garbage in the middle") {
    std::string bad = text;
    const std::size_t at = bad.find("\"data\"", 100);  // a key's opening quote, in the third chunk or later
    bad[at] = '!';
    auto [result, turns] = parse_counting_turns(bad, tiny);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().offset <= at + 1);
    CHECK(result.error().offset + tiny.chunk >= at);
    CHECK_THAT(result.error().to_string(), Catch::StartsWith("byte "));
  }
  SECTION("truncated") {
    auto [result, turns] = parse_counting_turns(text.substr(0, text.size() - 3), tiny);
    REQUIRE_FALSE(result.ok());
  }
  SECTION("a second value after the first") {
    auto [result, turns] = parse_counting_turns(text + " {}", tiny);
    REQUIRE_FALSE(result.ok());
  }
  SECTION("deeper than the limit") {
    kube::JsonSliceOptions shallow = tiny;
    shallow.max_depth = 4;
    auto [result, turns] = parse_counting_turns("[[[[[[1]]]]]]", shallow);
    REQUIRE_FALSE(result.ok());
  }
}
