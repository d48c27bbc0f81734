// Blocking POSIX steps of the local backend (see local_fs.hpp for what they guarantee).
//
// In this file, in order: file descriptors and listings; confinement (reaching the directory
// beneath the root); metadata.yaml (read, create-only write, access); the never-wipe set; the wipe
// walk. Every path below the root is reached relative to a directory fd, never as a string.
//
// Create-only write: a temp file in the directory (O_EXCL, written fully, fsync'd), then
// renameat2(RENAME_NOREPLACE) or linkat(2), then fsync of the directory. The temp file is removed on
// every path out of create_metadata(); stale ones (older than a minute, left by a crash) are
// removed before each write, and by remove_stale_temps() (LocalBackend: after each read that finds
// metadata.yaml, since an initialized storage is never written again).
#include "storage/local_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <memory>
#include <optional>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "storage/metadata.hpp"

namespace stowage::storage::local_fs {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t kMaxMetadataBytes = 1 << 20;  // a BackendMeta is ~150 bytes
constexpr std::time_t kStaleTempSeconds = 60;
const std::string kMetadataName(kMetadataFile);

// A directory to read or write in, and one only passed through on the way (it may lack read permission).
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
constexpr int kPassFlags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

std::atomic<bool> g_use_openat2{true};
std::atomic<bool> g_openat2_missing{false};

// --- file descriptors and listings ---

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// Unlinks its name in `dirfd` when it goes out of scope (the fd must outlive it). After a successful
// rename the name is already gone and the unlink is a harmless ENOENT; after linkat(2) it removes the
// second name, as intended.
class TempFile {
 public:
  TempFile(int dirfd, std::string name) : dirfd_(dirfd), name_(std::move(name)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { ::unlinkat(dirfd_, name_.c_str(), 0); }
  const std::string& name() const { return name_; }

 private:
  int dirfd_;
  std::string name_;
};

struct Identity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const Identity&) const = default;
};

std::optional<Identity> identity_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  return Identity{st.st_dev, st.st_ino};
}

std::optional<Identity> identity_of(const fs::path& path) {  // follows symlinks: the thing the path names
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return Identity{st.st_dev, st.st_ino};
}

// The names in a directory (without "." and ".."), read through a descriptor of its own so the
// caller's offset and flags do not matter.
BackendResult<std::vector<std::string>> list_names(int dirfd, const fs::path& path) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Err(errno_error(errno, "cannot list", path));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
  if (!dir) {
    int err = errno;
    ::close(fd);
    return Err(errno_error(err, "cannot list", path));
  }
  std::vector<std::string> names;
  for (errno = 0; const dirent* entry = ::readdir(dir.get()); errno = 0) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) return Err(errno_error(errno, "cannot list", path));
  return names;
}

// --- messages ---

BackendError not_mounted(const fs::path& dir) {
  return {false, "NotMounted",
          "directory " + dir.string() +
              " does not exist: the volume is not mounted at mountPath; mount it or fix spec.storage.local.mountPath",
          std::nullopt};
}

BackendError outside_root(const fs::path& dir, const fs::path& root) {
  return {false, "OutsideRoot",
          "directory " + dir.string() + " is not under local.root " + root.string() +
              ": stowage only uses directories beneath it; fix the storage's path",
          std::nullopt};
}

BackendError symlink_refused(const fs::path& path, const fs::path& root) {
  return {false, "SymlinkRefused",
          path.string() + " is a symbolic link: stowage never follows symlinks below local.root (" + root.string() +
              "); point the storage at the real directory",
          std::nullopt};
}

std::string permission_hint() {
  return "the process (uid " + std::to_string(::geteuid()) + ", gid " + std::to_string(::getegid()) +
         ") has no write access there: give it write access; in a cluster set runtimeSettings.pod.securityContext "
         "(e.g. runAsUser: 0 for hostPath, fsGroup for a PVC or NFS volume)";
}

// --- confinement ---

// Absolute, lexically normal, without a trailing slash: "/data/x/./" -> "/data/x".
fs::path normalized(const fs::path& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (ec) abs = path;
  abs = abs.lexically_normal();
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();
  return abs;
}

// Where options point: the root, and the directory as the names below it.
struct Place {
  fs::path root;
  fs::path directory;
  std::vector<std::string> components;  // empty when the directory is the root itself

  fs::path path_at(std::size_t depth) const {
    fs::path p = root;
    for (std::size_t i = 0; i < depth; ++i) p /= components[i];
    return p;
  }
  fs::path relative() const {
    fs::path rel;
    for (const auto& c : components) rel /= c;
    return rel;
  }
};

BackendResult<Place> place_of(const LocalBackendOptions& options) {
  Place place{normalized(options.root), normalized(options.directory), {}};
  const fs::path rel = place.directory.lexically_relative(place.root);
  if (rel.empty()) return Err(outside_root(place.directory, place.root));
  for (const auto& part : rel) {
    const std::string name = part.string();
    if (name == "..") return Err(outside_root(place.directory, place.root));
    if (name.empty() || name == ".") continue;
    place.components.push_back(name);
  }
  return place;
}

// The root is opened as the admin spelled it (it may be a symlink); nothing below it is followed.
BackendResult<UniqueFd> open_root(const fs::path& root) {
  UniqueFd fd(::open(root.c_str(), kPassFlags & ~O_NOFOLLOW));
  if (fd) return fd;
  if (errno == ENOENT)
    return Err(BackendError{
        false, "NotFound",
        "local.root " + root.string() + " does not exist: create it or fix local.root (--local-root)", std::nullopt});
  return Err(errno_error(errno, "cannot open local.root", root));
}

// The directory (O_RDONLY), or when some part of it is missing the deepest existing one (O_PATH).
struct Reached {
  UniqueFd fd;
  std::size_t depth = 0;  // components reached
};

enum class Missing { Stop, Create };

// Why `name` in `dirfd` could not be opened as a directory: a symlink, not a directory, or errno.
BackendError not_openable(int dirfd, const std::string& name, const fs::path& path, int err, const fs::path& root) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) return symlink_refused(path, root);
    if (!S_ISDIR(st.st_mode)) return errno_error(ENOTDIR, "cannot use", path);
  }
  return errno_error(err, "cannot open directory", path);
}

// One component at a time, never following a symlink; with Missing::Create, missing directories
// are made one level at a time (mode 0755 before the umask) and opened like any other.
BackendResult<Reached> walk(UniqueFd root, const Place& place, Missing missing) {
  UniqueFd current = std::move(root);
  const std::size_t depth = place.components.size();
  for (std::size_t i = 0; i < depth; ++i) {
    const std::string& name = place.components[i];
    const int flags = i + 1 == depth ? kDirFlags : kPassFlags;
    UniqueFd next(::openat(current.get(), name.c_str(), flags));
    if (!next && errno == ENOENT && missing == Missing::Create) {
      if (::mkdirat(current.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        const int err = errno;
        return Err(errno_error(err, "cannot create directory", place.path_at(i + 1)));
      }
      next = UniqueFd(::openat(current.get(), name.c_str(), flags));
    }
    const int err = errno;
    if (!next && err == ENOENT) return Reached{std::move(current), i};
    if (!next) return Err(not_openable(current.get(), name, place.path_at(i + 1), err, place.root));
    current = std::move(next);
  }
  return Reached{std::move(current), depth};
}

int openat2_beneath(int dirfd, const fs::path& rel) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(kDirFlags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && attempt < 8)) continue;  // EAGAIN: a racing rename
    return -1;
  }
}

// Reaches the directory from the root: openat2 in one call where the kernel has it; the walk where
// it does not, and whenever openat2 fails, to name the component at fault (ELOOP and EXDEV say only
// that some part is a symlink or leads out) and to create what is missing.
BackendResult<Reached> reach(const Place& place, Missing missing) {
  auto root = open_root(place.root);
  if (!root) return Err(root.error());
  if (place.components.empty()) {
    UniqueFd fd(::openat(root.value().get(), ".", kDirFlags));
    if (!fd) return Err(errno_error(errno, "cannot open directory", place.root));
    return Reached{std::move(fd), 0};
  }
  if (g_use_openat2.load() && !g_openat2_missing.load()) {
    int fd = openat2_beneath(root.value().get(), place.relative());
    if (fd >= 0) return Reached{UniqueFd(fd), place.components.size()};
    if (errno == ENOSYS || errno == EINVAL || errno == E2BIG) g_openat2_missing = true;
  }
  return walk(std::move(root.value()), place, missing);
}

// --- metadata.yaml ---

MetadataState invalid(std::string reason) { return MetadataState{true, std::nullopt, std::move(reason)}; }

BackendResult<std::string> read_capped(int fd, const fs::path& path) {
  std::string data;
  char buf[16384];
  while (data.size() <= kMaxMetadataBytes) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Err(errno_error(errno, "cannot read", path));
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

BackendResult<MetadataState> read_open_file(int fd, const fs::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Err(errno_error(errno, "cannot inspect", path));
  if (!S_ISREG(st.st_mode)) return invalid(path.string() + " is not a regular file");
  auto data = read_capped(fd, path);
  if (!data) return Err(data.error());
  if (data.value().size() > kMaxMetadataBytes) return invalid(path.string() + " is larger than 1 MiB");
  std::string reason;
  auto meta = parse_metadata(data.value(), reason);
  if (!meta) return invalid(std::move(reason));
  return MetadataState{true, std::move(meta), ""};
}

// metadata.yaml in the directory `dirfd` (spelled `dir`). Only a regular file is opened, with
// O_NOFOLLOW and O_NONBLOCK: a symlink, a FIFO or a device named metadata.yaml is invalid, unread.
BackendResult<MetadataState> read_in(int dirfd, const fs::path& dir) {
  const fs::path path = dir / kMetadataName;
  const std::string symlink_reason = path.string() + " is a symbolic link, and stowage never follows one";
  struct stat st {};
  if (::fstatat(dirfd, kMetadataName.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return MetadataState{};
    return Err(errno_error(errno, "cannot inspect", path));
  }
  if (S_ISLNK(st.st_mode)) return invalid(symlink_reason);
  if (!S_ISREG(st.st_mode)) return invalid(path.string() + " is not a regular file");
  UniqueFd fd(::openat(dirfd, kMetadataName.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  if (!fd && errno == ENOENT) return MetadataState{};
  if (!fd && errno == ELOOP) return invalid(symlink_reason);
  if (!fd) return Err(errno_error(errno, "cannot open", path));
  return read_open_file(fd.get(), path);
}

// Best effort: a crash between creating and renaming a temp file leaves it behind. Only regular
// files older than a minute go (ours are regular files, and a writer needs milliseconds); unlinkat
// never follows a symlink, and one named like a temp is not ours, so it stays. Returns the count.
std::size_t remove_stale_temps(int dirfd) {
  auto names = list_names(dirfd, "");
  if (!names) return 0;
  const std::time_t cutoff = std::time(nullptr) - kStaleTempSeconds;
  std::size_t removed = 0;
  for (const auto& name : names.value()) {
    if (!name.starts_with(kTempPrefix)) continue;
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_mtime < cutoff &&
        ::unlinkat(dirfd, name.c_str(), 0) == 0)
      ++removed;
  }
  return removed;
}

BackendResult<Ok> write_all(int fd, std::string_view body, const fs::path& path) {
  while (!body.empty()) {
    ssize_t n = ::write(fd, body.data(), body.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Err(errno_error(errno, "cannot write", path));
    body.remove_prefix(static_cast<std::size_t>(n));
  }
  return Ok{};
}

BackendResult<Ok> write_synced(int dirfd, const fs::path& dir, const std::string& name, std::string_view body) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) return Err(errno_error(errno, "cannot create a file in", dir));
  if (auto written = write_all(fd.get(), body, dir / name); !written) return Err(written.error());
  const fs::path path = dir / name;
  if (::fsync(fd.get()) != 0) return Err(errno_error(errno, "cannot fsync", path));
  if (::close(fd.release()) != 0) return Err(errno_error(errno, "cannot close", path));
  return Ok{};
}

std::string temp_name() { return std::string(kTempPrefix) + crypto::hex(crypto::random_bytes(8)); }

// The directory itself, opened beneath the root; a missing one is NotMounted unless it may be created.
BackendResult<Reached> reach_directory(const LocalBackendOptions& options, Place& place, Missing missing) {
  auto found = place_of(options);
  if (!found) return Err(found.error());
  place = std::move(found.value());
  auto reached = reach(place, missing);
  if (!reached) return Err(reached.error());
  if (reached.value().depth < place.components.size() && !options.create_directory)
    return Err(not_mounted(place.directory));
  return reached;
}

// --- the never-wipe set ---

constexpr std::array<std::string_view, 14> kSystemDirectories = {
    "/proc", "/sys", "/dev", "/run", "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/var/lib/kubelet"};
constexpr std::array<std::string_view, 3> kKernelFilesystems = {"/proc", "/sys", "/dev"};

// `inner` is `outer` or lies below it, by whole components (both absolute and normal).
bool within(const fs::path& inner, const fs::path& outer) {
  auto in = inner.begin();
  for (auto out = outer.begin(); out != outer.end(); ++out) {
    if (out->empty()) continue;
    if (in == inner.end() || *in != *out) return false;
    ++in;
  }
  return true;
}

BackendError protected_location(const fs::path& dir, const std::string& why) {
  return {false, "ProtectedLocation", "refusing to wipe " + dir.string() + ": " + why + "; nothing was deleted",
          std::nullopt};
}

const std::string kUseSubdirectory = "point the storage at a sub-directory of its own";

// One spelling of the directory against the system directories and kernel filesystems.
std::optional<std::string> system_rule(const fs::path& spelled, const std::string& as) {
  if (spelled == "/") return as + "/, the whole filesystem; " + kUseSubdirectory;
  for (auto sys : kSystemDirectories)
    if (within(fs::path(sys), spelled))
      return as + "the system directory " + std::string(sys) + " or holds it; " + kUseSubdirectory;
  for (auto kernel : kKernelFilesystems)
    if (within(spelled, fs::path(kernel)))
      return as + "inside " + std::string(kernel) + ", a kernel filesystem; " + kUseSubdirectory;
  return std::nullopt;
}

std::optional<std::string> protected_rule(const fs::path& spelled, const std::vector<fs::path>& protected_paths) {
  for (const auto& p : protected_paths) {
    if (within(p, spelled))
      return "it is or holds " + p.string() +
             " (stowage's state directory or manifest folder); use a sub-directory that holds neither";
    if (within(spelled, p))
      return "it lies inside " + p.string() + " (stowage's state directory or manifest folder); use a directory outside it";
  }
  return std::nullopt;
}

// The rules on paths: the directory as given, as the path under the root, and as its real path.
std::optional<BackendError> refused_by_path(const Place& place, const std::vector<fs::path>& protected_paths) {
  if (place.directory == "/") return protected_location(place.directory, *system_rule(place.directory, "it is "));
  if (place.directory == place.root)
    return protected_location(place.directory,
                              "it is the local root (local.root) itself, which holds every local storage; " +
                                  kUseSubdirectory);
  const fs::path under_root = fs::path("/") / place.relative();
  std::error_code ec;
  const fs::path real_root = fs::canonical(place.root, ec);
  std::vector<std::pair<fs::path, std::string>> spellings = {
      {place.directory, "it is "}, {under_root, "as a path under local.root (" + place.root.string() + ") it is "}};
  if (!ec) spellings.emplace_back(real_root / place.relative(), "its real path is ");
  for (const auto& [spelled, as] : spellings)
    if (auto why = system_rule(spelled, as)) return protected_location(place.directory, *why);
  for (const auto& spelled : {place.directory, ec ? place.directory : real_root / place.relative()})
    if (auto why = protected_rule(spelled, protected_paths)) return protected_location(place.directory, *why);
  return std::nullopt;
}

// `path` and each directory above it, by (st_dev, st_ino).
std::vector<Identity> chain_of(const fs::path& path) {
  std::vector<Identity> chain;
  for (fs::path p = path;; p = p.parent_path()) {
    if (auto id = identity_of(p)) chain.push_back(*id);
    if (p == p.parent_path() || p.empty()) break;
  }
  return chain;
}

// The directory `fd` and each directory above it, reached through "..": whatever the spelling (a
// bind mount, another root) this is where it really sits.
std::vector<Identity> ancestors_of(int fd) {
  std::vector<Identity> chain;
  UniqueFd current(::openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto id = current ? identity_of(current.get()) : std::nullopt;
  if (!id) return chain;
  chain.push_back(*id);
  for (int level = 0; level < 4096; ++level) {
    UniqueFd up(::openat(current.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    auto up_id = up ? identity_of(up.get()) : std::nullopt;
    if (!up_id || *up_id == chain.back()) break;
    chain.push_back(*up_id);
    current = std::move(up);
  }
  return chain;
}

bool contains(const std::vector<Identity>& chain, const std::optional<Identity>& id) {
  return id && std::find(chain.begin(), chain.end(), *id) != chain.end();
}

// The same rules by identity, so a bind mount or a hard-to-spell path cannot slip through.
std::optional<BackendError> refused_by_identity(int dirfd, const Place& place,
                                                const std::vector<fs::path>& protected_paths) {
  const auto target = identity_of(dirfd);
  if (!target) return protected_location(place.directory, "it cannot be inspected");
  if (identity_of(place.root) == target)
    return protected_location(place.directory, "it is the local root (local.root) itself; " + kUseSubdirectory);
  if (identity_of(fs::path("/")) == target)
    return protected_location(place.directory, "it is /, the whole filesystem; " + kUseSubdirectory);
  for (auto sys : kSystemDirectories)
    if (contains(chain_of(fs::path(sys)), target))
      return protected_location(place.directory, "it is the same directory as the system directory " +
                                                     std::string(sys) + " or one holding it; " + kUseSubdirectory);
  for (const auto& p : protected_paths)
    if (contains(chain_of(p), target))
      return protected_location(place.directory, "it is the same directory as " + p.string() +
                                                     " (stowage's state directory or manifest folder) or one "
                                                     "holding it; use a sub-directory that holds neither");
  const auto above = ancestors_of(dirfd);
  for (auto kernel : kKernelFilesystems)
    if (contains(above, identity_of(fs::path(kernel))))
      return protected_location(place.directory, "it lies inside " + std::string(kernel) +
                                                     ", a kernel filesystem; " + kUseSubdirectory);
  for (const auto& p : protected_paths)
    if (contains(above, identity_of(p)))
      return protected_location(place.directory, "it lies inside " + p.string() +
                                                     " (stowage's state directory or manifest folder); use a "
                                                     "directory outside it");
  return std::nullopt;
}

// plan.keep entries, relative to the directory, normal; an absolute one or one with ".." refuses the wipe.
BackendResult<std::set<fs::path>> kept_locations(const WipePlan& plan, const fs::path& dir) {
  std::set<fs::path> kept;
  for (const auto& entry : plan.keep) {
    fs::path rel = fs::path(entry).lexically_normal();
    if (!rel.has_filename() && rel.has_relative_path()) rel = rel.parent_path();
    bool dotdot = false;
    for (const auto& part : rel) dotdot = dotdot || part == "..";
    if (entry.empty() || rel.is_absolute() || dotdot || rel.empty() || rel == ".")
      return Err(protected_location(
          dir, "the location to keep \"" + entry + "\" is not a path inside it (it must be relative, without '..')"));
    kept.insert(rel);
  }
  return kept;
}

// --- the wipe walk ---

dev_t device_of(const struct statx& stx) { return makedev(stx.stx_dev_major, stx.stx_dev_minor); }

bool mount_root(const struct statx& stx) {
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

BackendError swapped(const fs::path& path) {
  return {false, "ChangedDuringWipe",
          path.string() +
              " was replaced while it was being wiped (something else is changing the volume): stopped; "
              "retry once it is quiet",
          std::nullopt};
}

// One directory on the way down. Its entries are read once, when it is first opened; its fd may be
// closed to stay within kWipeOpenDirectories and re-opened by name, checked against `id`.
struct Frame {
  std::string name;  // in its parent
  fs::path path;     // for messages
  fs::path rel;      // below the wiped directory, for plan.keep
  Identity id;
  UniqueFd fd;
  std::vector<std::string> names;
  std::size_t next = 0;
  bool keeps = false;  // something inside is left in place, so the directory stays too

  bool listed() const { return next == names.size(); }
};

}  // namespace

struct Wipe::State {
  LocalBackendOptions options;
  WipePlan plan;
  WipeReport report;
  bool started = false;
  bool finished = false;
  std::set<fs::path> kept;
  dev_t device = 0;           // the wiped directory's filesystem; nothing on another one is touched
  std::vector<Frame> frames;  // frames[0] is the wiped directory and stays open
  std::size_t first_open = 1;  // frames[i], i >= 1, is open exactly when i >= first_open

  bool begin();
  BackendResult<Ok> advance();
  BackendResult<Ok> enter(int dirfd, const std::string& name, const struct statx& seen);
  BackendResult<Ok> leave();
  BackendResult<int> top_fd();
  BackendResult<int> reopen(std::size_t k);
  void limit_open_frames();
  BackendResult<Ok> leave_in_place(const fs::path& path, const std::string& why);
  void remove_own_metadata();
  bool walked() const { return frames.size() == 1 && frames[0].listed(); }
};

// Everything before the first deletion: the never-wipe set, reaching the directory, ownership.
// False when the report is already final (refused or error).
bool Wipe::State::begin() {
  auto refuse = [this](BackendError why) {
    report.refused = std::move(why);
    return false;
  };
  auto fail = [this](BackendError error) {
    report.error = std::move(error);
    return false;
  };
  auto place = place_of(options);
  if (!place) return refuse(protected_location(normalized(options.directory), place.error().message));
  const Place& where = place.value();
  auto keep = kept_locations(plan, where.directory);
  if (!keep) return refuse(keep.error());
  kept = std::move(keep.value());
  if (auto why = refused_by_path(where, options.protected_paths)) return refuse(*why);

  auto reached = reach(where, Missing::Stop);
  if (!reached) return fail(reached.error());
  if (reached.value().depth < where.components.size())
    return refuse({false, "NotOwned",
                   "directory " + where.directory.string() +
                       " does not exist: there is nothing to wipe there, and no metadata.yaml shows that this "
                       "storage owns it; nothing was deleted",
                   std::nullopt});
  const int dirfd = reached.value().fd.get();
  if (auto why = refused_by_identity(dirfd, where, options.protected_paths)) return refuse(*why);

  auto state = read_in(dirfd, where.directory);
  if (!state) return fail(state.error());
  if (!state.value().meta) return refuse(ownership_refusal(state.value(), (where.directory / kMetadataName).string()));

  struct statx stx {};
  if (::statx(dirfd, "", AT_EMPTY_PATH, STATX_INO, &stx) != 0)
    return fail(errno_error(errno, "cannot inspect", where.directory));
  device = device_of(stx);
  auto names = list_names(dirfd, where.directory);
  if (!names) return fail(names.error());
  frames.push_back(Frame{"", where.directory, "", Identity{device, stx.stx_ino}, std::move(reached.value().fd),
                         std::move(names.value())});
  return true;
}

BackendResult<Ok> Wipe::State::leave_in_place(const fs::path& path, const std::string& why) {
  report.left.push_back(path.string() + ": " + why);
  frames.back().keeps = true;
  return Ok{};
}

// One entry of the deepest directory, or that directory once all its entries are done.
BackendResult<Ok> Wipe::State::advance() {
  Frame& top = frames.back();
  if (top.listed()) return leave();
  const std::string name = top.names[top.next++];
  if (frames.size() == 1 && name == kMetadataName) return Ok{};  // last, see remove_own_metadata()
  const fs::path path = top.path / name;
  if (kept.contains(top.rel / name)) return leave_in_place(path, "another storage's location");

  auto dirfd = top_fd();
  if (!dirfd) return Err(dirfd.error());
  struct statx stx {};
  if (::statx(dirfd.value(), name.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE | STATX_INO, &stx) != 0) {
    if (errno == ENOENT) return Ok{};
    return Err(errno_error(errno, "cannot inspect", path));
  }
  const bool symlink = S_ISLNK(stx.stx_mode);
  if (!symlink && (device_of(stx) != device || mount_root(stx)))
    return leave_in_place(path, "a mount point; left in place");
  if (S_ISDIR(stx.stx_mode)) return enter(dirfd.value(), name, stx);
  if (::unlinkat(dirfd.value(), name.c_str(), 0) != 0) {
    if (errno == ENOENT) return Ok{};
    return Err(errno_error(errno, "cannot remove", path));
  }
  if (S_ISREG(stx.stx_mode)) ++report.removed;
  return Ok{};
}

// Opens a sub-directory (checking it is the one just inspected) and goes down into it, unless it
// holds another storage's metadata.yaml.
BackendResult<Ok> Wipe::State::enter(int dirfd, const std::string& name, const struct statx& seen) {
  const Frame& parent = frames.back();
  const fs::path path = parent.path / name;
  UniqueFd fd(::openat(dirfd, name.c_str(), kDirFlags));
  if (!fd && errno == ENOENT) return Ok{};
  if (!fd) return Err(errno_error(errno, "cannot open directory", path));
  const auto id = identity_of(fd.get());
  if (!id || *id != Identity{device_of(seen), seen.stx_ino}) return Err(swapped(path));
  auto nested = read_in(fd.get(), path);
  if (!nested) return Err(nested.error());
  if (nested.value().meta) return leave_in_place(path, "another storage's metadata.yaml");
  auto names = list_names(fd.get(), path);
  if (!names) return Err(names.error());
  fs::path rel = parent.rel / name;
  frames.push_back(Frame{name, path, std::move(rel), *id, std::move(fd), std::move(names.value())});
  limit_open_frames();
  return Ok{};
}

// The deepest directory is done: remove it, unless something inside was left.
BackendResult<Ok> Wipe::State::leave() {
  Frame done = std::move(frames.back());
  frames.pop_back();
  done.fd.reset();
  if (done.keeps) {
    frames.back().keeps = true;
    return Ok{};
  }
  auto parent = top_fd();
  if (!parent) return Err(parent.error());
  if (::unlinkat(parent.value(), done.name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return Err(errno_error(errno, "cannot remove directory", done.path));
  return Ok{};
}

// Closes the shallowest open frames (never frames[0]) until at most kWipeOpenDirectories are open.
void Wipe::State::limit_open_frames() {
  while (frames.size() > first_open && frames.size() - first_open > kWipeOpenDirectories) {
    frames[first_open].fd.reset();
    ++first_open;
  }
}

BackendResult<int> Wipe::State::top_fd() {
  const std::size_t k = frames.size() - 1;
  if (k == 0 || k >= first_open) return frames[k].fd.get();
  return reopen(k);
}

// frames[1..k] are closed: walk down to them again from frames[0] by name (O_NOFOLLOW), checking each
// is the directory first seen there, and keep the deepest kWipeOpenDirectories open.
BackendResult<int> Wipe::State::reopen(std::size_t k) {
  const std::size_t start = k + 1 > kWipeOpenDirectories ? k + 1 - kWipeOpenDirectories : 1;
  UniqueFd passing;
  int parent = frames[0].fd.get();
  for (std::size_t i = 1; i <= k; ++i) {
    Frame& frame = frames[i];
    UniqueFd fd(::openat(parent, frame.name.c_str(), kPassFlags));
    if (!fd && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) return Err(swapped(frame.path));
    if (!fd) return Err(errno_error(errno, "cannot open directory", frame.path));
    if (identity_of(fd.get()) != frame.id) return Err(swapped(frame.path));
    if (i >= start) {
      frame.fd = std::move(fd);
      parent = frame.fd.get();
    } else {
      passing = std::move(fd);
      parent = passing.get();
    }
  }
  first_open = start;
  return frames[k].fd.get();
}

// Everything else is gone without an error: now metadata.yaml, so that until this moment a retried
// wipe can still prove ownership.
void Wipe::State::remove_own_metadata() {
  const Frame& dir = frames[0];
  struct stat st {};
  if (::fstatat(dir.fd.get(), kMetadataName.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) return;
  if (::unlinkat(dir.fd.get(), kMetadataName.c_str(), 0) != 0) {
    const int err = errno;
    if (err != ENOENT) report.error = errno_error(err, "cannot remove", dir.path / kMetadataName);
    return;
  }
  if (S_ISREG(st.st_mode)) ++report.removed;
}

Wipe::Wipe(const LocalBackendOptions& options, WipePlan plan) : state_(std::make_unique<State>()) {
  state_->options = options;
  state_->plan = std::move(plan);
}
Wipe::Wipe(Wipe&&) noexcept = default;
Wipe& Wipe::operator=(Wipe&&) noexcept = default;
Wipe::~Wipe() = default;

const WipeReport& Wipe::report() const { return state_->report; }

bool Wipe::step(std::chrono::milliseconds budget) {
  State& s = *state_;
  if (s.finished) return true;
  if (!s.started) {
    s.started = true;
    if (!s.begin()) return s.finished = true;
  }
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (std::size_t n = 1; !s.walked(); ++n) {
    if (s.options.stop && s.options.stop->load(std::memory_order_relaxed)) {
      s.report.error = BackendError{true, "Stopped",
                                    "wipe of " + s.options.directory.string() + " stopped after " +
                                        std::to_string(s.report.removed) +
                                        " files: the process is shutting down; it goes on at the next start",
                                    std::nullopt};
      s.frames.clear();
      return s.finished = true;
    }
    if (auto advanced = s.advance(); !advanced) {
      s.report.error = std::move(advanced.error());
      s.frames.clear();
      return s.finished = true;
    }
    if (n % 64 == 0 && std::chrono::steady_clock::now() >= deadline) return false;
  }
  s.remove_own_metadata();
  s.frames.clear();
  return s.finished = true;
}

WipeReport wipe(const LocalBackendOptions& options, WipePlan plan) {
  Wipe w(options, std::move(plan));
  while (!w.step(std::chrono::hours(1))) {
  }
  return w.report();
}

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
    case ELOOP:
      return {false, "SymlinkRefused", what + "; stowage never follows symlinks below local.root", std::nullopt};
    case EXDEV:
      return {false, "OutsideRoot", what + "; the path leads out of local.root", std::nullopt};
    case EMFILE:
    case ENFILE:
      return {false, "TooManyOpenFiles", what + "; raise the open-file limit of the process (ulimit -n)",
              std::nullopt};
    case EBUSY:
      return {false, "Busy", what + "; something is mounted there or holds it: unmount it or remove it by hand",
              std::nullopt};
    case ENOSPC:
    case EDQUOT:
      return {true, "NoSpace", what + "; free space or raise the quota on the volume", std::nullopt};
    default:
      return {true, "IOError", what, std::nullopt};
  }
}

BackendResult<CreateOutcome> publish_by_link(int dirfd, const fs::path& dir, const std::string& tmp,
                                             const std::string& target) {
  if (::linkat(dirfd, tmp.c_str(), dirfd, target.c_str(), 0) == 0) return CreateOutcome::Created;
  const int err = errno;
  if (err == EEXIST) return CreateOutcome::AlreadyExists;
  return Err(errno_error(err, "cannot create", dir / target));
}

BackendResult<CreateOutcome> publish_no_replace(int dirfd, const fs::path& dir, const std::string& tmp,
                                                const std::string& target) {
  if (::renameat2(dirfd, tmp.c_str(), dirfd, target.c_str(), RENAME_NOREPLACE) == 0) return CreateOutcome::Created;
  const int err = errno;
  if (err == EEXIST) return CreateOutcome::AlreadyExists;
  if (err == EINVAL || err == ENOSYS) return publish_by_link(dirfd, dir, tmp, target);
  return Err(errno_error(err, "cannot create", dir / target));
}

BackendResult<CreateOutcome> create_metadata(const LocalBackendOptions& options, std::string_view body) {
  Place place;
  auto reached = reach_directory(options, place, options.create_directory ? Missing::Create : Missing::Stop);
  if (!reached) return Err(reached.error());
  const int dirfd = reached.value().fd.get();
  struct stat st {};
  if (::fstatat(dirfd, kMetadataName.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
    return CreateOutcome::AlreadyExists;  // saves a write; the publish decides
  remove_stale_temps(dirfd);
  TempFile tmp(dirfd, temp_name());
  if (auto written = write_synced(dirfd, place.directory, tmp.name(), body); !written) return Err(written.error());
  auto outcome = publish_no_replace(dirfd, place.directory, tmp.name(), kMetadataName);
  if (!outcome || outcome.value() == CreateOutcome::AlreadyExists) return outcome;
  if (::fsync(dirfd) != 0 && errno != EINVAL) return Err(errno_error(errno, "cannot fsync directory", place.directory));
  return outcome;
}

BackendResult<MetadataState> read_metadata(const LocalBackendOptions& options) {
  Place place;
  auto reached = reach_directory(options, place, Missing::Stop);
  if (!reached) return Err(reached.error());
  if (reached.value().depth < place.components.size()) return MetadataState{};  // a hostPath not created yet
  return read_in(reached.value().fd.get(), place.directory);
}

BackendResult<std::size_t> remove_stale_temps(const LocalBackendOptions& options) {
  Place place;
  auto reached = reach_directory(options, place, Missing::Stop);
  if (!reached) return Err(reached.error());
  if (reached.value().depth < place.components.size()) return std::size_t{0};  // a hostPath not created yet
  return remove_stale_temps(reached.value().fd.get());
}

// The directory itself, or (when it may be created) its nearest existing ancestor, must be writable.
BackendResult<Ok> check_access(const LocalBackendOptions& options) {
  Place place;
  auto reached = reach_directory(options, place, Missing::Stop);
  if (!reached) return Err(reached.error());
  if (::faccessat(reached.value().fd.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    const int err = errno;
    return Err(errno_error(err, "cannot write to", place.path_at(reached.value().depth)));
  }
  return Ok{};
}

void use_openat2(bool enabled) { g_use_openat2 = enabled; }

bool openat2_available() {
  if (g_openat2_missing.load()) return false;
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  int fd = openat2_beneath(root.get(), ".");
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  return errno != ENOSYS && errno != EINVAL && errno != E2BIG;
}

}  // namespace stowage::storage::local_fs
