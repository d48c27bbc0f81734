#pragma once
// Shared by the libFuzzer targets in fuzz/: the input as text, a check that aborts (so libFuzzer
// records the input as a crash), and JSON parsing with the limits the production readers use.
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace stowage::fuzz {

inline std::string_view text_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A property every input must keep; a violation is reported like a crash.
inline void require(bool holds, const char* what) {
  if (!holds) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

// The input as JSON (Boost.JSON's default depth limit of 32, as the API client and backends parse
// bodies), or nothing when it is not JSON.
inline std::optional<boost::json::value> json_of(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
  if (ec) return std::nullopt;
  return v;
}

}  // namespace stowage::fuzz
