// Blocking POSIX steps of the local backend (see local_fs.hpp and local_backend.hpp).
//
// Create-only write: temp file in the same directory (O_EXCL, written fully, fsync'd), then
// renameat2(RENAME_NOREPLACE) or link(2), then fsync of the directory. The temp file is removed on
// every path out of create_metadata(); stale ones (older than a minute, left by a crash) are
// removed before each write. delete_all() never follows symlinks and never removes the directory
// itself, which may be a mount point.
#include "storage/local_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "storage/metadata.hpp"

namespace stowage::storage::local_fs {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t kMaxMetadataBytes = 1 << 20;  // a BackendMeta is ~150 bytes
constexpr auto kStaleTempAge = std::chrono::minutes(1);

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Unlinks its path when it goes out of scope. After a successful rename the name is already gone
// and the unlink is a harmless ENOENT; after link(2) it removes the second name, as intended.
class TempFile {
 public:
  explicit TempFile(fs::path path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { ::unlink(path_.c_str()); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

BackendError not_mounted(const fs::path& dir) {
  return {false, "NotMounted",
          "directory " + dir.string() +
              " does not exist: the volume is not mounted at mountPath; mount it or fix spec.storage.local.mountPath",
          std::nullopt};
}

std::string permission_hint() {
  return "the process (uid " + std::to_string(::geteuid()) + ", gid " + std::to_string(::getegid()) +
         ") has no write access there: give it write access; in a cluster set runtimeSettings.pod.securityContext "
         "(e.g. runAsUser: 0 for hostPath, fsGroup for a PVC or NFS volume)";
}

enum class DirState { Present, Missing };

BackendResult<DirState> probe_directory(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return DirState::Missing;
    return errno_error(errno, "cannot inspect", dir);
  }
  if (!S_ISDIR(st.st_mode)) return errno_error(ENOTDIR, "cannot use", dir);
  return DirState::Present;
}

// mkdir -p with mode 0755 (before the umask); existing directories are fine.
BackendResult<Ok> make_directories(const fs::path& dir) {
  fs::path partial;
  for (const auto& part : dir) {
    partial /= part;
    if (part.empty() || partial == partial.root_path()) continue;
    if (::mkdir(partial.c_str(), 0755) == 0) continue;
    if (errno != EEXIST) return errno_error(errno, "cannot create directory", partial);
    auto state = probe_directory(partial);  // it exists: it must be a directory (or a link to one)
    if (!state) return state.error();
  }
  return Ok{};
}

BackendResult<Ok> ensure_directory(const LocalBackendOptions& options) {
  if (options.create_directory) return make_directories(options.directory);
  auto state = probe_directory(options.directory);
  if (!state) return state.error();
  if (state.value() == DirState::Missing) return not_mounted(options.directory);
  return Ok{};
}

// Best effort: a crash between creating and renaming a temp file leaves it behind.
void remove_stale_temps(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> stale;
  const auto cutoff = fs::file_time_type::clock::now() - kStaleTempAge;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->path().filename().string().starts_with(kTempPrefix)) continue;
    std::error_code time_ec;
    auto mtime = fs::last_write_time(it->path(), time_ec);
    if (!time_ec && mtime < cutoff) stale.push_back(it->path());
  }
  for (const auto& path : stale) ::unlink(path.c_str());
}

BackendResult<Ok> write_all(int fd, std::string_view body, const fs::path& path) {
  while (!body.empty()) {
    ssize_t n = ::write(fd, body.data(), body.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "cannot write", path);
    body.remove_prefix(static_cast<std::size_t>(n));
  }
  return Ok{};
}

BackendResult<Ok> write_synced(const fs::path& path, std::string_view body) {
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
  if (!fd) return errno_error(errno, "cannot create a file in", path.parent_path());
  if (auto written = write_all(fd.get(), body, path); !written) return written.error();
  if (::fsync(fd.get()) != 0) return errno_error(errno, "cannot fsync", path);
  if (::close(fd.release()) != 0) return errno_error(errno, "cannot close", path);
  return Ok{};
}

BackendResult<Ok> fsync_directory(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error(errno, "cannot open directory", dir);
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return errno_error(errno, "cannot fsync directory", dir);
  return Ok{};
}

bool exists_no_follow(const fs::path& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

fs::path temp_path(const fs::path& dir) {
  return dir / (std::string(kTempPrefix) + crypto::hex(crypto::random_bytes(8)));
}

// --- read ---

BackendResult<MetadataState> metadata_missing(const LocalBackendOptions& options) {
  auto state = probe_directory(options.directory);
  if (!state) return state.error();
  if (state.value() == DirState::Missing && !options.create_directory) return not_mounted(options.directory);
  return MetadataState{};
}

BackendResult<std::string> read_capped(int fd, const fs::path& path) {
  std::string data;
  char buf[16384];
  while (data.size() <= kMaxMetadataBytes) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "cannot read", path);
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

MetadataState invalid(std::string reason) { return MetadataState{true, std::nullopt, std::move(reason)}; }

BackendResult<MetadataState> read_open_file(int fd, const fs::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error(errno, "cannot inspect", path);
  if (!S_ISREG(st.st_mode)) return invalid(path.string() + " is not a regular file");
  auto data = read_capped(fd, path);
  if (!data) return data.error();
  if (data.value().size() > kMaxMetadataBytes) return invalid(path.string() + " is larger than 1 MiB");
  std::string reason;
  auto meta = parse_metadata(data.value(), reason);
  if (!meta) return invalid(std::move(reason));
  return MetadataState{true, std::move(meta), ""};
}

// --- delete ---

BackendResult<std::vector<std::string>> list_names(int dirfd, const fs::path& path) {
  int fd = ::dup(dirfd);
  if (fd < 0) return errno_error(errno, "cannot list", path);
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
  if (!dir) {
    int err = errno;
    ::close(fd);
    return errno_error(err, "cannot list", path);
  }
  std::vector<std::string> names;
  for (errno = 0; const dirent* entry = ::readdir(dir.get()); errno = 0) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) return errno_error(errno, "cannot list", path);
  return names;
}

BackendResult<Ok> remove_contents(int dirfd, const fs::path& path, std::size_t& removed);

BackendResult<Ok> remove_subdirectory(int parentfd, const fs::path& path, const std::string& name,
                                      std::size_t& removed) {
  {
    UniqueFd sub(::openat(parentfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return errno == ENOENT ? BackendResult<Ok>(Ok{}) : errno_error(errno, "cannot open directory", path);
    if (auto emptied = remove_contents(sub.get(), path, removed); !emptied) return emptied;
  }
  if (::unlinkat(parentfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return errno_error(errno, "cannot remove directory", path);
  return Ok{};
}

BackendResult<Ok> remove_entry(int dirfd, const fs::path& parent, const std::string& name, std::size_t& removed) {
  const fs::path path = parent / name;
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? BackendResult<Ok>(Ok{}) : errno_error(errno, "cannot inspect", path);
  if (S_ISDIR(st.st_mode)) return remove_subdirectory(dirfd, path, name, removed);
  if (::unlinkat(dirfd, name.c_str(), 0) != 0)
    return errno == ENOENT ? BackendResult<Ok>(Ok{}) : errno_error(errno, "cannot remove", path);
  if (S_ISREG(st.st_mode)) ++removed;
  return Ok{};
}

BackendResult<Ok> remove_contents(int dirfd, const fs::path& path, std::size_t& removed) {
  auto names = list_names(dirfd, path);
  if (!names) return names.error();
  for (const auto& name : names.value()) {
    if (auto done = remove_entry(dirfd, path, name, removed); !done) return done;
  }
  return Ok{};
}

// --- access ---

// The directory itself, or (when it may be created) its nearest existing ancestor.
BackendResult<fs::path> existing_directory(const LocalBackendOptions& options) {
  for (fs::path dir = options.directory;; dir = dir.parent_path()) {
    auto state = probe_directory(dir);
    if (!state) return state.error();
    if (state.value() == DirState::Present) return dir;
    if (!options.create_directory) return not_mounted(dir);
    if (!dir.has_relative_path() || dir.parent_path() == dir) return errno_error(ENOENT, "cannot find", dir);
  }
}

}  // namespace

BackendError errno_error(int err, std::string_view action, const fs::path& path) {
  std::string what = std::string(action) + " " + path.string() + ": " + std::generic_category().message(err);
  switch (err) {
    case EACCES:
    case EPERM:
      return {false, "PermissionDenied", what + "; " + permission_hint(), std::nullopt};
    case EROFS:
      return {false, "ReadOnlyFilesystem", what + "; the volume is mounted read-only: mount it read-write",
              std::nullopt};
    case ENOTDIR:
      return {false, "NotADirectory", what + "; a part of the path is not a directory: fix the path", std::nullopt};
    case ENOSPC:
    case EDQUOT:
      return {true, "NoSpace", what + "; free space or raise the quota on the volume", std::nullopt};
    default:
      return {true, "IOError", what, std::nullopt};
  }
}

BackendResult<CreateOutcome> publish_by_link(const fs::path& tmp, const fs::path& target) {
  if (::link(tmp.c_str(), target.c_str()) == 0) return CreateOutcome::Created;
  if (errno == EEXIST) return CreateOutcome::AlreadyExists;
  return errno_error(errno, "cannot create", target);
}

BackendResult<CreateOutcome> publish_no_replace(const fs::path& tmp, const fs::path& target) {
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0)
    return CreateOutcome::Created;
  if (errno == EEXIST) return CreateOutcome::AlreadyExists;
  if (errno == EINVAL || errno == ENOSYS) return publish_by_link(tmp, target);
  return errno_error(errno, "cannot create", target);
}

BackendResult<CreateOutcome> create_metadata(const LocalBackendOptions& options, std::string_view body) {
  if (auto ready = ensure_directory(options); !ready) return ready.error();
  const fs::path target = options.directory / kMetadataFile;
  if (exists_no_follow(target)) return CreateOutcome::AlreadyExists;  // saves a write; the publish decides
  remove_stale_temps(options.directory);
  TempFile tmp(temp_path(options.directory));
  if (auto written = write_synced(tmp.path(), body); !written) return written.error();
  auto outcome = publish_no_replace(tmp.path(), target);
  if (!outcome || outcome.value() == CreateOutcome::AlreadyExists) return outcome;
  if (auto synced = fsync_directory(options.directory); !synced) return synced.error();
  return outcome;
}

BackendResult<MetadataState> read_metadata(const LocalBackendOptions& options) {
  const fs::path target = options.directory / kMetadataFile;
  UniqueFd fd(::open(target.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));  // O_NONBLOCK: never hang on a FIFO
  if (!fd && errno == ENOENT) return metadata_missing(options);
  if (!fd) return errno_error(errno, "cannot open", target);
  return read_open_file(fd.get(), target);
}

BackendResult<std::size_t> delete_all(const LocalBackendOptions& options) {
  UniqueFd dir(::open(options.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir && errno == ENOENT) return std::size_t{0};
  if (!dir) return errno_error(errno, "cannot open directory", options.directory);
  std::size_t removed = 0;
  if (auto done = remove_contents(dir.get(), options.directory, removed); !done) return done.error();
  return removed;
}

BackendResult<Ok> check_access(const LocalBackendOptions& options) {
  auto dir = existing_directory(options);
  if (!dir) return dir.error();
  if (::faccessat(AT_FDCWD, dir.value().c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    return errno_error(errno, "cannot write to", dir.value());
  return Ok{};
}

}  // namespace stowage::storage::local_fs
