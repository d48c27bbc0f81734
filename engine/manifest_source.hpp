#pragma once
// ManifestSource — the offline source: a folder of manifests, watched while running.
// Reading, parsing and diffing run on the I/O pool; the reactor only applies the resulting changes
// (Secrets first, then BackupStorages), in slices so that a folder of 10,000 objects does not stall
// it. Changes are noticed with inotify (every sub-folder watched) and debounced; where inotify is
// unavailable the folder is polled. A missing folder or an unreadable file never deletes anything.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "engine/target.hpp"

namespace boost::asio {
class thread_pool;
}

namespace stowage::engine {

struct ManifestSourceOptions {
  std::filesystem::path dir;
  std::chrono::milliseconds debounce{100};
  std::chrono::milliseconds poll_interval{2000};
  bool force_poll = false;  // tests: exercise the fallback
};

class ManifestSource {
 public:
  ManifestSource(boost::asio::any_io_executor executor, boost::asio::thread_pool& pool, ManifestSourceOptions options,
                 SourceSink& sink);
  ~ManifestSource();

  // Scans once, delivers everything, calls sink.synced() and then `on_synced`, then keeps watching.
  void start(std::function<void()> on_synced);
  void stop();
  std::uint64_t scans() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace stowage::engine
