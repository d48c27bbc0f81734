#pragma once
// Runs one coroutine to completion on a test's io_context: what a unit test of a reactor component
// does to call one of its awaitable operations. Whatever the coroutine throws is rethrown here.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <utility>

namespace test_support {

// Runs `io` until it has no work left or `limit` passes; fails the test if `work` has not finished.
template <class T>
T run_awaitable(boost::asio::io_context& io, boost::asio::awaitable<T> work,
                std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  std::optional<T> result;
  boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result.emplace(std::move(value));
  });
  io.restart();
  io.run_for(limit);
  REQUIRE(result);
  return std::move(*result);
}

// The same for a component that always has work pending (an informer's open watch, which keeps
// `io` from running out of work): runs `io` one handler at a time until `work` has finished, and
// leaves the rest pending. Fails the test if `work` has not finished within `limit`.
template <class T>
T run_awaitable_until_done(boost::asio::io_context& io, boost::asio::awaitable<T> work,
                           std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  std::optional<T> result;
  boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result.emplace(std::move(value));
  });
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!result && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_one_for(std::chrono::milliseconds(10));
  }
  REQUIRE(result);
  return std::move(*result);
}

}  // namespace test_support
