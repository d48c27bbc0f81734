#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <type_traits>

#include "common/result.hpp"

using namespace stowage;
using PathOrMessage = Result<std::filesystem::path, std::string>;

// A string converts to a path, so with implicit constructors from both sides a string was whichever
// the overloads picked. Now the error side is only reachable through Err, and a bare string (or a
// literal) is refused instead of quietly becoming a path.
static_assert(!std::is_constructible_v<PathOrMessage, std::string>);
static_assert(!std::is_constructible_v<PathOrMessage, const std::string&>);
static_assert(!std::is_constructible_v<PathOrMessage, const char (&)[6]>);
static_assert(std::is_constructible_v<PathOrMessage, std::filesystem::path>);
static_assert(std::is_constructible_v<PathOrMessage, Err<std::string>>);
static_assert(std::is_constructible_v<PathOrMessage, Err<const char*>>);
// Err only takes what converts to the error type: an aggregate error can be built from its first member
// with parentheses, but a bool is not an error.
struct Problem {
  bool transient;
  std::string message;
};
static_assert(!std::is_constructible_v<Result<bool, Problem>, Err<bool>>);
static_assert(std::is_constructible_v<Result<bool, Problem>, Err<Problem>>);
static_assert(!std::is_constructible_v<Result<int, std::string>, Err<int>>);

TEST_CASE("a Result made from a value holds that value") {
  const std::filesystem::path dir = "/data/backups";
  PathOrMessage r = dir;
  REQUIRE(r.ok());
  CHECK(static_cast<bool>(r));
  CHECK(r.value() == dir);
}

TEST_CASE("a Result made from Err holds that error") {
  PathOrMessage r = Err(std::string("spec.storage.local is missing"));
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(static_cast<bool>(r));
  CHECK(r.error() == "spec.storage.local is missing");
}

TEST_CASE("Err takes a string literal for a std::string error") {
  auto make = []() -> PathOrMessage { return Err("no volume source"); };
  const PathOrMessage r = make();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "no volume source");
}

TEST_CASE("a Result whose value and error are both strings keeps them apart") {
  using Text = Result<std::string, std::string>;
  const Text value = std::string("payload");
  const Text error = Err(std::string("payload"));
  REQUIRE(value.ok());
  CHECK(value.value() == "payload");
  REQUIRE_FALSE(error.ok());
  CHECK(error.error() == "payload");
}

TEST_CASE("a default Result is an empty error, as co_spawn needs") {
  const PathOrMessage r;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().empty());
}
