#include "engine/serving_certificate.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace stowage::engine {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFiles[] = {"tls.crt", "tls.key"};

// What changes when a file is replaced or rewritten (stat follows a Secret volume's symlinks).
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
using Stamps = std::array<std::optional<FileStamp>, 2>;

Stamps stamps_of(const fs::path& dir) {
  Stamps out;
  for (std::size_t i = 0; i < 2; ++i) {
    struct stat st {};
    if (::stat((dir / kFiles[i]).c_str(), &st) != 0) continue;
    out[i] = FileStamp{st.st_dev, st.st_ino, st.st_size,
                       static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  }
  return out;
}

// The file's bytes into `text`, or why not.
std::optional<std::string> read_pem(const fs::path& file, std::string& text) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "cannot read " + file.string() + ": " + std::strerror(errno);
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPemBytes)
      return file.string() + " is larger than " + std::to_string(kMaxPemBytes) + " bytes: not a certificate or key";
  }
  return std::nullopt;
}

// A TLS 1.2+ server context from the pair in `dir`.
Result<std::shared_ptr<ssl::context>, std::string> make_context(const fs::path& dir) {
  std::string crt, key;
  struct Wipe {
    std::string& secret;
    ~Wipe() { OPENSSL_cleanse(secret.data(), secret.size()); }
  } wipe{key};
  if (auto problem = read_pem(dir / "tls.crt", crt)) return Err(*problem);
  if (auto problem = read_pem(dir / "tls.key", key)) return Err(*problem);
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  context->use_certificate_chain(asio::buffer(crt), ec);
  if (ec) return Err((dir / "tls.crt").string() + " holds no usable PEM certificate: " + ec.message());
  context->use_private_key(asio::buffer(key), ssl::context::pem, ec);
  const std::string not_the_key = (dir / "tls.key").string() +
                                  " is not a usable PEM private key of the certificate in tls.crt (are they being "
                                  "rewritten?)";
  if (ec) return Err(not_the_key + ": " + ec.message());
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) return Err(not_the_key);
  return context;
}

}  // namespace

struct ServingCertificate::Impl {
  asio::any_io_executor reactor, files;
  fs::path dir;
  std::chrono::milliseconds poll;
  asio::steady_timer timer;
  std::shared_ptr<ssl::context> context;
  std::optional<Stamps> tried;  // the files as they were at the last attempt
  std::string problem;
  std::uint64_t loads = 0;
  bool running = false, checking = false;

  Impl(asio::any_io_executor r, asio::any_io_executor f, fs::path d, std::chrono::milliseconds p)
      : reactor(r), files(f), dir(std::move(d)), poll(p), timer(r) {}

  struct Attempt {
    Stamps stamps;
    bool changed = false;
    std::shared_ptr<ssl::context> context;
    std::string problem;
  };

  static Attempt attempt(const fs::path& dir, const std::optional<Stamps>& tried) {
    Attempt a;
    a.stamps = stamps_of(dir);
    if (tried && *tried == a.stamps) return a;
    a.changed = true;
    auto made = make_context(dir);
    if (made.ok())
      a.context = std::move(made.value());
    else
      a.problem = made.error();
    return a;
  }

  void apply(Attempt a) {
    tried = a.stamps;
    if (!a.changed) return;
    if (a.context) {
      context = std::move(a.context);
      ++loads;
      if (loads > 1) spdlog::info("webhook: serving the new certificate from {} to new connections", dir.string());
      problem.clear();
      return;
    }
    if (a.problem != problem)
      spdlog::warn("webhook: cannot load the serving certificate: {}{}", a.problem,
                   context ? "; the previous one stays in service" : "; TLS connections are refused until it loads");
    problem = std::move(a.problem);
  }

  static void schedule(const std::shared_ptr<Impl>& self) {
    self->timer.expires_after(self->poll);
    self->timer.async_wait([self](boost::system::error_code ec) {
      if (ec || !self->running) return;
      self->checking = true;
      asio::post(self->files, [self, dir = self->dir, tried = self->tried] {
        Attempt a = attempt(dir, tried);
        asio::post(self->reactor, [self, a = std::move(a)]() mutable {
          self->checking = false;
          if (!self->running) return;
          self->apply(std::move(a));
          schedule(self);
        });
      });
    });
  }
};

ServingCertificate::ServingCertificate(asio::any_io_executor reactor, asio::any_io_executor files, fs::path dir,
                                       std::chrono::milliseconds poll_interval)
    : impl_(std::make_shared<Impl>(std::move(reactor), std::move(files), std::move(dir), poll_interval)) {}

ServingCertificate::~ServingCertificate() { stop(); }

Result<Ok, std::string> ServingCertificate::load() {
  impl_->apply(Impl::attempt(impl_->dir, std::nullopt));
  if (!impl_->context) return Err(impl_->problem);
  spdlog::info("webhook: serving certificate loaded from {}", impl_->dir.string());
  return Ok{};
}

void ServingCertificate::start() {
  if (impl_->running) return;
  impl_->running = true;
  if (!impl_->checking) Impl::schedule(impl_);
}

void ServingCertificate::stop() {
  impl_->running = false;
  impl_->timer.cancel();
}

std::shared_ptr<ssl::context> ServingCertificate::current() const { return impl_->context; }

const std::string& ServingCertificate::problem() const { return impl_->problem; }

std::uint64_t ServingCertificate::loads() const { return impl_->loads; }

}  // namespace stowage::engine
