#include "persistence/fingerprint.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/crypto.hpp"

namespace stowage::persistence {

namespace {
constexpr std::size_t kKeySize = 32;

std::string read_key(const std::filesystem::path& file, std::string& err) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) err = "cannot read " + file.string() + ": " + std::strerror(errno);
    return {};
  }
  // A key readable by others (written by hand, or by an old copy) is made 0600 again.
  if (struct stat st {}; ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
    if (::fchmod(fd, 0600) == 0)
      spdlog::warn("{} could be read by group or others; its mode is now 0600", file.string());
    else
      spdlog::warn("{} can be read by group or others and its mode cannot be changed ({}): run chmod 600 {}",
                   file.string(), std::strerror(errno), file.string());
  }
  std::string key(kKeySize, '\0');
  ssize_t n = ::read(fd, key.data(), kKeySize);
  ::close(fd);
  if (n != static_cast<ssize_t>(kKeySize)) err = file.string() + " is damaged (expected 32 bytes): delete it to make a new one";
  return key;
}

bool write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Writes `key` to `file` complete or not at all: a temp file of our own (a stale one, left by a
// crash, is unlinked first: unlink never follows a symlink; then O_CREAT|O_EXCL|O_NOFOLLOW, so
// nothing planted under its name is opened), mode 0600 whatever the umask, fsync'd, renamed into
// place, and the directory fsync'd. Empty on success, else what failed.
std::string write_key(const std::filesystem::path& file, const std::string& key) {
  const std::string tmp = file.string() + ".tmp";
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return "cannot remove the stale " + tmp + ": " + std::strerror(errno);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  bool ok = ::fchmod(fd, 0600) == 0 && write_all(fd, key) && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && ::rename(tmp.c_str(), file.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return "cannot write " + file.string() + ": " + std::strerror(err);
  }
  if (int dir = ::open(file.parent_path().empty() ? "." : file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}
}  // namespace

Result<Fingerprinter, std::string> Fingerprinter::load_or_create(const std::filesystem::path& state_dir) {
  auto file = state_dir / "fingerprint.key";
  std::string err;
  std::string key = read_key(file, err);
  if (!err.empty()) return Err(err);
  if (!key.empty()) return Fingerprinter(std::move(key));
  key = crypto::random_bytes(kKeySize);
  if (auto failed = write_key(file, key); !failed.empty()) return Err(failed);
  return Fingerprinter(std::move(key));
}

std::string Fingerprinter::fingerprint(const std::map<std::string, std::string>& data) const {
  if (data.empty()) return {};
  std::string framed;
  for (const auto& [k, v] : data) {
    framed += std::to_string(k.size()) + ":" + k + std::to_string(v.size()) + ":" + v;
  }
  return crypto::hex(crypto::hmac_sha256(key_, framed)).substr(0, 32);
}

}  // namespace stowage::persistence
