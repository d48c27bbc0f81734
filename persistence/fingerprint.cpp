#include "persistence/fingerprint.hpp"

#include <fcntl.h>
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
  std::string key(kKeySize, '\0');
  ssize_t n = ::read(fd, key.data(), kKeySize);
  ::close(fd);
  if (n != static_cast<ssize_t>(kKeySize)) err = file.string() + " is damaged (expected 32 bytes): delete it to make a new one";
  return key;
}
}  // namespace

Result<Fingerprinter, std::string> Fingerprinter::load_or_create(const std::filesystem::path& state_dir) {
  auto file = state_dir / "fingerprint.key";
  std::string err;
  std::string key = read_key(file, err);
  if (!err.empty()) return err;
  if (!key.empty()) return Fingerprinter(std::move(key));
  key = crypto::random_bytes(kKeySize);
  auto tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) return "cannot write " + file.string() + ": " + std::strerror(errno);
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
