#pragma once
// BackendFactory — turns a BackupStorage (and its Secret) into a storage::Backend, or into a
// clear, permanent reason why it cannot: provider missing or unknown, its section missing, the
// Secret without the keys KubeStash requires, a local volume without a usable path.
#include <filesystem>
#include <memory>
#include <string>

#include "common/result.hpp"
#include "kube/model.hpp"
#include "storage/backend.hpp"

namespace boost::asio {
class thread_pool;
}

namespace stowage::engine {

class BackendFactory {
 public:
  BackendFactory(boost::asio::thread_pool& io_pool, std::filesystem::path local_root);

  // The secret is null when the storage names none or it does not exist (the caller reports that).
  Result<std::unique_ptr<storage::Backend>, std::string> make(const kube::BackupStorage& storage,
                                                               const kube::Secret* secret) const;

  // The keys KubeStash requires in the provider's Secret (empty for local).
  static std::vector<std::string> required_keys(const std::string& provider);

  // Where a local storage's directory is, as seen by this process (see README "Local volumes").
  Result<std::filesystem::path, std::string> local_directory(const kube::LocalSpec& local) const;

 private:
  boost::asio::thread_pool& pool_;
  std::filesystem::path local_root_;
};

}  // namespace stowage::engine
