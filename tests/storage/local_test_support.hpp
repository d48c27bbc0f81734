#pragma once
// What the local backend's suites share: a reactor with an I/O pool, a backend confined to a root,
// and the body of a valid metadata.yaml.
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "storage/local_backend.hpp"
#include "storage/metadata.hpp"

namespace stowage::storage::testing {

inline const std::string kMetadataBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

struct LocalHarness {
  boost::asio::io_context io;
  boost::asio::thread_pool pool{2};
  ~LocalHarness() { pool.join(); }

  LocalBackend backend(const std::filesystem::path& root, const std::filesystem::path& dir,
                       bool create_directory = false, std::vector<std::filesystem::path> protected_paths = {}) {
    LocalBackendOptions options;
    options.root = root;
    options.directory = dir;
    options.create_directory = create_directory;
    options.protected_paths = std::move(protected_paths);
    return LocalBackend(pool, std::move(options));
  }
};

}  // namespace stowage::storage::testing
