#pragma once
// Liveness — which of the process's long-running loops (informers, leader election, the manifest
// source, the state store's writer) have ended outside stop(): what /healthz answers and what makes
// the process exit 1 (the engine's run command decides how).
//
// Guarantees:
// - report() keeps the first end of each loop (a second report of the same loop is ignored), logs it
//   once at error level ("<loop> stopped: <why>; ..."), and after the first report of any loop calls
//   the handler given to on_first_end() once, posted to that handler's executor. Any thread may report
//   (the store's writer reports from its own); healthy() and describe() may be read from any thread.
// - loop_completion() is the one place a loop's co_spawn completion catches what ended it: an
//   exception (a handler's included) or a return, each reported unless the loop's `stopped` says it
//   was asked to end. So every loop dies loudly and in one way, never by std::terminate.
//
// Assumes: a loop's name is stable and says which loop it is ("backupstorages informer"); a reason
// holds no secret value (it is logged and served on /healthz).
#include <boost/asio/any_io_executor.hpp>

#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace stowage::common {

struct LoopEnd {
  std::string loop;    // "backupstorages informer"
  std::string reason;  // "an exception: ..." or the loop's own sentence
};

class Liveness {
 public:
  using Handler = std::function<void(const LoopEnd& first)>;

  // The process's registry: /healthz reads it, and loops report to it unless given another.
  static Liveness& process();

  void report(std::string loop, std::string reason);
  // `handler` runs once on `executor` after the first report (at once, posted, if one came already).
  void on_first_end(boost::asio::any_io_executor executor, Handler handler);

  bool healthy() const;
  std::vector<LoopEnd> ended() const;
  // "state store writer stopped: ...; backupstorages informer stopped: ..." ("" while healthy).
  std::string describe() const;

 private:
  void notify_locked();

  mutable std::mutex m_;
  std::vector<LoopEnd> ended_;
  std::optional<boost::asio::any_io_executor> executor_;
  Handler handler_;
  bool handler_called_ = false;
};

// The sentence for what an exception_ptr holds: "an exception: <what()>".
std::string describe_exception(const std::exception_ptr& ep);

// A co_spawn completion handler for the loop `loop`: when the coroutine ends with an exception, or
// returns while `stopped()` is false, the end is reported to `liveness` (null: Liveness::process())
// with the exception's text, or with `why()` (the loop's own sentence; "" or no `why`: "it returned
// without being stopped"). An end after stop() is quiet.
std::function<void(std::exception_ptr)> loop_completion(std::string loop, std::function<bool()> stopped,
                                                        Liveness* liveness = nullptr,
                                                        std::function<std::string()> why = {});

}  // namespace stowage::common
