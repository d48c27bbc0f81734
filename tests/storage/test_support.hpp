#pragma once
// Helpers for the storage tests: a temporary directory, a way to run a coroutine to completion on
// an io_context driven by the test thread, and a way to run checks in a forked child (to drop
// privileges or mount a filesystem without touching the test process).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <optional>
#include <string>

namespace stowage::storage::testing {

// A fresh directory under /tmp, mode 0755 (so a child with another uid can traverse it), removed
// with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "stowage-storage-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
    ::chmod(path_.c_str(), 0755);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Spawns `op` on `io` and returns a future of its result. co_spawn needs a default-constructible
// value type (Result has none), so the value travels in an optional.
template <class T>
std::future<std::optional<T>> spawn(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  auto wrapper = [](boost::asio::awaitable<T> inner) -> boost::asio::awaitable<std::optional<T>> {
    co_return co_await std::move(inner);
  };
  return boost::asio::co_spawn(io, wrapper(std::move(op)), boost::asio::use_future);
}

// Runs `op` on `io` from the calling thread until it completes and returns its result.
template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  auto result = spawn(io, std::move(op));
  io.restart();
  io.run();
  return std::move(*result.get());
}

inline void run(boost::asio::io_context& io, boost::asio::awaitable<void> op) {
  auto result = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
  io.restart();
  io.run();
  result.get();
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::filesystem::path& path, const std::string& body) {
  std::ofstream(path, std::ios::binary) << body;
}

// Runs `body` in a forked child and returns its exit code (or 128 + signal). The child never
// returns into Catch: it reports through the exit code only. Call with no other threads running.
inline int exit_code_of_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 98;
    try {
      code = body();
    } catch (...) {
      code = 99;
    }
    ::_exit(code);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace stowage::storage::testing
