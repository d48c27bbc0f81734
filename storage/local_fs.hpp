#pragma once
// The blocking filesystem steps behind LocalBackend. They block on the disk, so only LocalBackend
// calls them, from its I/O thread pool (and the volume Jobs, in a process of their own); they are
// declared here so tests can drive each step (including the fallbacks a current kernel never takes)
// directly.
//
// Confinement: every step reaches `options.directory` from a directory fd of `options.root` (opened
// normally: the root is the admin's choice and may be a symlink), resolving the rest beneath it with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or, where the kernel lacks
// openat2, one component at a time with openat(O_NOFOLLOW | O_DIRECTORY). A directory that is not
// under the root, a symlink anywhere below the root, and a way out of it are permanent errors that
// name the path; nothing is ever created through a symlink (missing hostPath directories are made
// one level at a time with mkdirat and opened with O_NOFOLLOW). metadata.yaml is read, created and
// fsync'd through the directory fd, with O_NOFOLLOW everywhere.
//
// Guarantees: no function throws for a filesystem failure (errors are BackendError values, with
// the path and the errno text, never file contents); a temp file is never left behind by a failed
// call; metadata.yaml is never replaced once it exists.
//
// Wipe: see the Wipe class below. It deletes nothing unless the directory is outside the never-wipe
// set and holds a valid BackendMeta metadata.yaml, never follows a symlink (symlinks are unlinked),
// never crosses into another filesystem, leaves other storages' locations alone, removes
// metadata.yaml last, and holds at most kWipeOpenDirectories directory fds whatever the depth.
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "storage/backend.hpp"
#include "storage/local_backend.hpp"

namespace stowage::storage::local_fs {

inline constexpr std::string_view kTempPrefix = ".metadata.yaml.tmp-";
inline constexpr std::size_t kWipeOpenDirectories = 32;

BackendResult<MetadataState> read_metadata(const LocalBackendOptions& options);
BackendResult<CreateOutcome> create_metadata(const LocalBackendOptions& options, std::string_view body);
BackendResult<Ok> check_access(const LocalBackendOptions& options);

// Removes the temp files (kTempPrefix*) older than a minute from `options.directory`, through the
// confined directory fd: a kill -9 between a temp file's creation and its rename leaves one, and
// create_metadata (which removes them before it writes) never runs again once metadata.yaml exists.
// Only regular files go; a symlink named like a temp is neither followed nor removed. Best effort:
// a file that cannot be removed stays. Returns how many went.
BackendResult<std::size_t> remove_stale_temps(const LocalBackendOptions& options);

// WipeOut of `options.directory`, in steps so that a caller can report progress between them. In order:
//  1. The never-wipe set: `/`, the local root itself, a directory that is or holds a system
//     directory (/proc /sys /dev /run /etc /boot /usr /bin /sbin /lib* /var/lib/kubelet, judged as
//     the real path and as the path under the root), one inside /proc, /sys or /dev, and one that
//     holds or lies inside a protected path (compared by canonical path and by (st_dev, st_ino), so
//     a bind mount cannot hide it) are refused with ProtectedLocation. So is a directory outside the
//     root, and a plan entry that is absolute or holds "..".
//  2. Ownership: a regular-file metadata.yaml that parses as a BackendMeta, else refused (NotOwned,
//     InvalidMetadata). A missing directory is refused NotOwned.
//  3. The walk: iterative, depth-first; symlinks and other non-directories are unlinked, never
//     followed. Left in place and listed in `left`: a mount point (another st_dev, or a mount root
//     where statx says so), a sub-directory holding a valid BackendMeta metadata.yaml, each plan
//     entry, and the directories on the way to them. The directory itself stays (it may be the mount
//     point). Its metadata.yaml goes last, and only when everything else went without an error.
//  `removed` counts regular files. The first error stops the wipe; nothing is retried here. So does
//  `options.stop` once set (checked before every entry): a transient "Stopped" error.
class Wipe {
 public:
  Wipe(const LocalBackendOptions& options, WipePlan plan);
  Wipe(Wipe&&) noexcept;
  Wipe& operator=(Wipe&&) noexcept;
  ~Wipe();

  // Works for about `budget` (at least one entry). Returns true once report() is final.
  bool step(std::chrono::milliseconds budget);
  const WipeReport& report() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The whole wipe in one call (the volume Job's process).
WipeReport wipe(const LocalBackendOptions& options, WipePlan plan);

// Moves the complete file `tmp` to `target` (both names in the directory `dirfd`, spelled `dir` in
// messages) unless `target` exists: renameat2(RENAME_NOREPLACE), or linkat(2) where the filesystem
// does not support it. The caller removes `tmp` afterwards.
BackendResult<CreateOutcome> publish_no_replace(int dirfd, const std::filesystem::path& dir, const std::string& tmp,
                                                const std::string& target);
BackendResult<CreateOutcome> publish_by_link(int dirfd, const std::filesystem::path& dir, const std::string& tmp,
                                             const std::string& target);

// errno -> BackendError. Permanent: EACCES/EPERM PermissionDenied, EROFS ReadOnlyFilesystem, ENOTDIR
// NotADirectory, ELOOP SymlinkRefused, EXDEV OutsideRoot, EMFILE/ENFILE TooManyOpenFiles, EBUSY Busy.
// Transient: ENOSPC/EDQUOT NoSpace, anything else IOError.
BackendError errno_error(int err, std::string_view action, const std::filesystem::path& path);

// Test hooks: whether openat2 is used when the kernel has it (true by default; false forces the
// component-by-component walk), and whether this kernel has it.
void use_openat2(bool enabled);
bool openat2_available();

}  // namespace stowage::storage::local_fs
