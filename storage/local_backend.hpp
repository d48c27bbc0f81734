#pragma once
// The local backend: a directory the process can reach (a hostPath, or a volume mounted into the
// process at mountPath, as in a pod). All filesystem work runs on a separate I/O thread pool so
// the reactor never waits on the disk.
//
// Confinement: the directory is reached beneath `root`, one directory fd at a time, never through a
// symlink and never out of it (storage/local_fs.hpp says how); a directory outside the root is an
// error, and so is a symlink on the way.
//
// Writes are atomic and create-only: a temp file in the same directory is written and fsync'd,
// then renamed into place with renameat2(RENAME_NOREPLACE) (link(2) where the filesystem lacks
// it, e.g. NFS), then the directory is fsync'd. A crash at any point leaves either no
// metadata.yaml or a complete one, plus at worst a stray ".metadata.yaml.tmp-*" file that the next
// write removes.
//
// wipe() refuses the never-wipe set (/, the root, system directories, the protected paths), and
// anything without a valid metadata.yaml of its own; it never follows a symlink or crosses into
// another filesystem, leaves nested storages and plan.keep alone, and removes metadata.yaml last.
// It runs in steps on the pool, awaiting the progress hook between them; `stop` or a cancellation of
// the awaiting coroutine ends it between entries (a transient "Stopped" error: nothing is half-done,
// and a later wipe goes on where this one stopped).
#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "storage/backend.hpp"

namespace boost::asio {
class thread_pool;
}

namespace stowage::storage {

struct LocalBackendOptions {
  std::filesystem::path directory;  // where metadata.yaml goes (already resolved, see README): absolute, under root
  bool create_directory = false;    // true for hostPath (the kubelet creates it); false for mounted volumes,
                                    // where a missing directory means the volume is not mounted
  // Confinement: `directory` is reached beneath `root`, never through a symlink or out of it.
  std::filesystem::path root = "/";
  // Never wiped, nor anything that holds them or lies inside them (the state directory, the manifest folder).
  std::vector<std::filesystem::path> protected_paths;
  // How long one step of a wipe runs on the I/O pool before the progress hook is awaited.
  std::chrono::milliseconds wipe_step{500};
  // Set when the process is shutting down: a wipe checks it between entries and ends at once with a
  // transient "Stopped" error (the storage's next reconcile, at the next start, finishes it). Null: never.
  std::shared_ptr<const std::atomic<bool>> stop;
};

class LocalBackend final : public Backend {
 public:
  LocalBackend(boost::asio::thread_pool& io_pool, LocalBackendOptions options);

  std::string identity() const override;
  std::string metadata_location() const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_metadata() override;
  boost::asio::awaitable<BackendResult<CreateOutcome>> create_metadata(std::string body) override;
  boost::asio::awaitable<WipeReport> wipe(WipePlan plan) override;
  boost::asio::awaitable<BackendResult<Ok>> check_access() override;

 private:
  boost::asio::thread_pool& pool_;
  LocalBackendOptions options_;
};

}  // namespace stowage::storage
