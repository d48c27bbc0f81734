#pragma once
// ManifestSource — the offline source: a folder of manifests, watched while running.
// Reading, parsing and diffing run on the I/O pool; the reactor only applies the resulting changes
// (Secrets first, then BackupStorages, removals last), in slices so that a folder of 10,000 objects
// does not stall it. Changes are noticed with inotify (every sub-folder watched) and debounced;
// where inotify is unavailable the folder is polled.
//
// Removal is where data can be lost (WipeOut), so it is guarded three ways:
//  - a missing folder, or a file with any problem (see manifests.hpp: truncated, cut mid-object, a
//    field of the wrong type), removes nothing: the objects the file held at its last good read
//    stay (those of it that parse are still updated), and the problem is logged once;
//  - a scan counts absences only when it is a stable read: no file it read changed while it was
//    being read (size, mtime, inode compared before and after; otherwise it rescans), and no file
//    is over a budget (manifests.hpp: a file stopped by one may hold anything);
//  - an object is reported removed only after it has been absent from every scan for
//    `delete_grace`; coming back meanwhile cancels that. The source arms its own timer for the
//    moment a removal falls due, so it happens without further file events.
// A file rewritten in place (truncate, pause, write) therefore never removes anything. Storages
// recorded from this folder by an earlier run (`known_storages`) but absent from the first scan go
// through the same grace, counted from start().
//
// The sink hears synced() after the first scan's objects and before any removal.
//
// An exception from a scan or from the sink ends the watching: it is reported to options.liveness
// ("manifest source DIR stopped: an exception: ..."), never rethrown into the reactor.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "common/liveness.hpp"
#include "engine/manifests.hpp"
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
  // How long an object must stay absent from the folder before it is reported removed; 0 reports
  // it at the first stable scan that misses it.
  std::chrono::milliseconds delete_grace{30000};
  // The BackupStorages an earlier run recorded from this folder (the state store's records).
  std::vector<ObjectKey> known_storages{};
  // What reading the folder may cost. A file stopped by a budget fails like any other failing file,
  // and while any file is over a budget no absence counts: nothing is removed.
  ManifestBudgets budgets{};
  // Where an exception that ends the watching is reported (the process's registry when null).
  common::Liveness* liveness = nullptr;
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
