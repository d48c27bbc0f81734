// The liveness registry and the one completion handler every long-running loop's co_spawn uses.
#include "common/liveness.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace stowage::common {

Liveness& Liveness::process() {
  static Liveness registry;
  return registry;
}

void Liveness::report(std::string loop, std::string reason) {
  std::lock_guard lock(m_);
  for (const auto& e : ended_)
    if (e.loop == loop) return;
  spdlog::error("{} stopped: {}; the process is unhealthy (/healthz fails) and exits with code 1 once the "
                "reconciles in flight have finished or shutdown.grace-period has passed",
                loop, reason);
  ended_.push_back(LoopEnd{std::move(loop), std::move(reason)});
  notify_locked();
}

void Liveness::on_first_end(boost::asio::any_io_executor executor, Handler handler) {
  std::lock_guard lock(m_);
  executor_ = std::move(executor);
  handler_ = std::move(handler);
  handler_called_ = false;
  notify_locked();
}

void Liveness::notify_locked() {
  if (handler_called_ || ended_.empty() || !executor_ || !handler_) return;
  handler_called_ = true;
  boost::asio::post(*executor_, [handler = handler_, first = ended_.front()] { handler(first); });
}

bool Liveness::healthy() const {
  std::lock_guard lock(m_);
  return ended_.empty();
}

std::vector<LoopEnd> Liveness::ended() const {
  std::lock_guard lock(m_);
  return ended_;
}

std::string Liveness::describe() const {
  std::lock_guard lock(m_);
  std::string out;
  for (const auto& e : ended_) out += (out.empty() ? "" : "; ") + e.loop + " stopped: " + e.reason;
  return out;
}

std::string describe_exception(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return std::string("an exception: ") + e.what();
  } catch (...) {
    return "an exception of an unknown type";
  }
}

std::function<void(std::exception_ptr)> loop_completion(std::string loop, std::function<bool()> stopped,
                                                        Liveness* liveness, std::function<std::string()> why) {
  return [loop = std::move(loop), stopped = std::move(stopped), liveness, why = std::move(why)](std::exception_ptr ep) {
    if (stopped && stopped()) {
      if (ep) spdlog::debug("{} ended after stop(): {}", loop, describe_exception(ep));
      return;
    }
    std::string reason = ep ? describe_exception(ep) : why ? why() : std::string();
    if (reason.empty()) reason = "it returned without being stopped";
    (liveness ? *liveness : Liveness::process()).report(loop, std::move(reason));
  };
}

}  // namespace stowage::common
