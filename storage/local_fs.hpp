#pragma once
// The blocking filesystem steps behind LocalBackend. They block on the disk, so only LocalBackend
// calls them, from its I/O thread pool; they are declared here so tests can drive each step
// (including the link(2) fallback, which a filesystem with renameat2 never takes) directly.
//
// Guarantees: no function throws for a filesystem failure (errors are BackendError values, with
// the path and the errno text, never file contents); a temp file is never left behind by a failed
// call; metadata.yaml is never replaced once it exists.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "storage/backend.hpp"
#include "storage/local_backend.hpp"

namespace stowage::storage::local_fs {

inline constexpr std::string_view kTempPrefix = ".metadata.yaml.tmp-";

BackendResult<MetadataState> read_metadata(const LocalBackendOptions& options);
BackendResult<CreateOutcome> create_metadata(const LocalBackendOptions& options, std::string_view body);
BackendResult<std::size_t> delete_all(const LocalBackendOptions& options);
BackendResult<Ok> check_access(const LocalBackendOptions& options);

// Moves the complete file `tmp` to `target` unless `target` exists: renameat2(RENAME_NOREPLACE),
// or link(2) where the filesystem does not support it. The caller removes `tmp` afterwards.
BackendResult<CreateOutcome> publish_no_replace(const std::filesystem::path& tmp, const std::filesystem::path& target);
BackendResult<CreateOutcome> publish_by_link(const std::filesystem::path& tmp, const std::filesystem::path& target);

// errno -> BackendError: EACCES/EPERM PermissionDenied, EROFS ReadOnlyFilesystem, ENOTDIR
// NotADirectory (all permanent); ENOSPC/EDQUOT NoSpace, anything else IOError (transient).
BackendError errno_error(int err, std::string_view action, const std::filesystem::path& path);

}  // namespace stowage::storage::local_fs
