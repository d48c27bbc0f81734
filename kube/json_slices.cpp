#include "kube/json_slices.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/stream_parser.hpp>

#include <algorithm>

namespace stowage::kube {

namespace json = boost::json;
namespace asio = boost::asio;

std::string JsonSliceError::to_string() const { return "byte " + std::to_string(offset) + ": " + message; }

asio::awaitable<Result<json::value, JsonSliceError>> parse_json_in_slices(std::string_view text,
                                                                          JsonSliceOptions options) {
  using Clock = std::chrono::steady_clock;
  json::parse_options parse_options;
  parse_options.max_depth = options.max_depth;
  json::stream_parser parser({}, parse_options);
  parser.reset(options.storage);
  const std::size_t chunk = std::max<std::size_t>(options.chunk, 1);
  auto slice_start = Clock::now();
  json::error_code ec;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t n = std::min(chunk, text.size() - at);
    at += parser.write(text.data() + at, n, ec);
    if (ec) co_return Err(JsonSliceError{at, ec.message()});
    if (at < text.size() && Clock::now() - slice_start >= options.slice) {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
      slice_start = Clock::now();
    }
  }
  parser.finish(ec);
  if (ec) co_return Err(JsonSliceError{at, ec.message()});
  co_return parser.release();
}

}  // namespace stowage::kube
