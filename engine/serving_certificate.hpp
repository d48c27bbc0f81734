#pragma once
// ServingCertificate — the TLS certificate an HTTPS listener serves (the admission webhook's), read
// from `tls.crt` (the certificate chain, PEM) and `tls.key` (its private key, PEM) in a directory,
// and read again whenever either file changes, as controller-runtime's certwatcher does: a new
// certificate serves the connections accepted after it was loaded; those already open keep theirs.
//
// Guarantees: the files are stat()ed every poll interval and read only when one changed (device,
// inode, size or modification time: a Secret volume's atomic symlink swap, a cert-manager renewal,
// stowage's own self-signed rotation writing the files); all file work and PEM parsing runs on the
// pool given, never on the reactor; a pair that does not load (missing, unreadable, larger than
// kMaxPemBytes, a key not matching the certificate — a writer between its two files) leaves the
// previous certificate in service and is tried again at the next tick, with one warning per
// distinct problem (never the key's bytes). Not thread-safe: call every member on the reactor, or
// before it runs.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/result.hpp"

namespace boost::asio::ssl {
class context;
}

namespace stowage::engine {

inline constexpr std::size_t kMaxPemBytes = 1u << 20;

class ServingCertificate {
 public:
  // `files` runs the file reads (a thread pool's executor); `reactor` the timer and the swap.
  ServingCertificate(boost::asio::any_io_executor reactor, boost::asio::any_io_executor files,
                     std::filesystem::path dir, std::chrono::milliseconds poll_interval = std::chrono::seconds(1));
  ~ServingCertificate();  // stops
  ServingCertificate(const ServingCertificate&) = delete;
  ServingCertificate& operator=(const ServingCertificate&) = delete;

  // Reads the files now, on the calling thread (start-up). A failure says which file and why; the
  // watch started afterwards still picks the files up once they are there.
  Result<Ok, std::string> load();
  // Watches the files from now on.
  void start();
  void stop();

  // The certificate in service; nullptr while none has loaded.
  std::shared_ptr<boost::asio::ssl::context> current() const;
  // Why the last attempt failed ("" after a success, or before any attempt).
  const std::string& problem() const;
  // How many certificates have been loaded (the first one included).
  std::uint64_t loads() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace stowage::engine
