#pragma once
// Parsing a large JSON text (a list page: 500 BackupStorages are ~600 KB, ~10 ms of parsing) on the
// reactor without stalling it: the text goes to Boost.JSON's incremental parser a chunk at a time,
// and once a slice's worth of time has been spent the coroutine lets the reactor turn before it goes
// on. A text that parses within one slice takes no extra turn.
//
// Guarantees: the value is the one boost::json::parse gives (the same maximum depth); an invalid or
// truncated text is an error naming the byte at which the parser stopped, never an exception.
// Assumes: `text` outlives the awaited call (the caller's buffer is not copied).
#include <boost/asio/awaitable.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace stowage::kube {

struct JsonSliceOptions {
  // The most parsing one reactor turn does (give or take one chunk).
  std::chrono::microseconds slice{1000};
  // Bytes fed to the parser between two looks at the clock (~0.2 ms of parsing at 16 KiB).
  std::size_t chunk = 16 * 1024;
  std::size_t max_depth = 512;
  // Where the value's tree is allocated (default: the default resource). A shared monotonic
  // resource makes a 500-object page one allocation a few blocks large instead of tens of thousands.
  boost::json::storage_ptr storage;
};

struct JsonSliceError {
  std::size_t offset = 0;  // the byte at which parsing stopped
  std::string message;     // Boost.JSON's, e.g. "syntax error"
  std::string to_string() const;
};

boost::asio::awaitable<Result<boost::json::value, JsonSliceError>> parse_json_in_slices(std::string_view text,
                                                                                          JsonSliceOptions options = {});

}  // namespace stowage::kube
