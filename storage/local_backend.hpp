#pragma once
// The local backend: a directory the process can reach (a hostPath, or a volume mounted into the
// process at mountPath, as in a pod). All filesystem work runs on a separate I/O thread pool so
// the reactor never waits on the disk.
//
// Writes are atomic and create-only: a temp file in the same directory is written and fsync'd,
// then renamed into place with renameat2(RENAME_NOREPLACE) (link(2) where the filesystem lacks
// it, e.g. NFS), then the directory is fsync'd. A crash at any point leaves either no
// metadata.yaml or a complete one, plus at worst a stray ".metadata.yaml.tmp-*" file that the next
// write removes.
#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "storage/backend.hpp"

namespace boost::asio {
class thread_pool;
}

namespace stowage::storage {

struct LocalBackendOptions {
  std::filesystem::path directory;  // where metadata.yaml goes (already resolved, see README)
  bool create_directory = false;    // true for hostPath (the kubelet creates it); false for mounted volumes,
                                    // where a missing directory means the volume is not mounted
};

class LocalBackend final : public Backend {
 public:
  LocalBackend(boost::asio::thread_pool& io_pool, LocalBackendOptions options);

  std::string identity() const override;
  std::string metadata_location() const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_metadata() override;
  boost::asio::awaitable<BackendResult<CreateOutcome>> create_metadata(std::string body) override;
  boost::asio::awaitable<BackendResult<std::size_t>> delete_all() override;
  boost::asio::awaitable<BackendResult<Ok>> check_access() override;

 private:
  boost::asio::thread_pool& pool_;
  LocalBackendOptions options_;
};

}  // namespace stowage::storage
