// `stowage run`: the long-running controller on a manifest folder.
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>

#include "engine/commands.hpp"
#include "engine/manifest_source.hpp"
#include "engine/runtime.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;

int run_command(const config::Config& config) {
  if (config.manifests.empty()) {
    spdlog::error("nothing to watch: give --manifests DIR (or manifests.dir in the config file); "
                  "see `stowage run --help`");
    return 2;
  }
  // Hold SIGINT/SIGTERM until the handlers below exist: a stop request during start-up is then
  // handled gracefully like any other (the threads started meanwhile inherit the mask and never take it).
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore_on_error{previous};

  fs::path dir = fs::absolute(config.manifests).lexically_normal();
  if (std::error_code ec; !fs::is_directory(dir, ec)) {
    spdlog::error("manifest folder {} does not exist or is not a directory: create it or fix --manifests",
                  dir.string());
    return 2;
  }
  Runtime rt(config, dir.string(), /*deletions=*/true);
  rt.queue.restore(rt.store->load_queue());
  if (rt.queue.size() > 0) spdlog::info("replaying {} work items left from the previous run", rt.queue.size());

  ManifestSource source(rt.io.get_executor(), rt.pool,
                        ManifestSourceOptions{dir, config.manifests_debounce, config.manifests_poll_interval, false},
                        rt.world);
  spdlog::info("stowage {} watching {} (state in {})", config.operator_version, dir.string(),
               rt.store->path().string());
  source.start([&] {
    spdlog::info("manifests loaded: {} BackupStorages; reconciling", rt.world.cache().storages().size());
    rt.controller.start();
  });
  rt.lag.start();

  boost::asio::signal_set signals(rt.io, SIGINT, SIGTERM);
  boost::asio::steady_timer grace(rt.io);
  bool stopping = false;
  auto finish = [&] {
    rt.lag.stop();
    rt.store->when_durable([&] { rt.io.stop(); });
  };
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (stopping) {
      spdlog::warn("second signal: stopping now; unfinished work is replayed at the next start");
      rt.io.stop();
      return;
    }
    stopping = true;
    spdlog::info("signal {}: finishing {} reconciles in flight (up to {} ms), then stopping", sig,
                 rt.controller.in_flight(), config.shutdown_grace.count());
    source.stop();
    rt.controller.stop();
    signals.async_wait(on_signal);
    if (rt.controller.idle()) return finish();
    rt.controller.on_idle(finish);
    grace.expires_after(config.shutdown_grace);
    grace.async_wait([&](boost::system::error_code e) {
      if (e) return;
      spdlog::warn("grace period over with {} reconciles in flight; they are replayed at the next start",
                   rt.controller.in_flight());
      finish();
    });
  };
  signals.async_wait(on_signal);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);  // a signal that came during start-up is delivered now
  rt.io.run();
  rt.store->flush_blocking();
  spdlog::info("stopped; longest reactor stall {} ms", rt.lag.longest().count() / 1000.0);
  return 0;
}

}  // namespace stowage::engine
