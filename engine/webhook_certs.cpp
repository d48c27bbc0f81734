// WebhookCerts: the Secret, the files and the caBundle patches (engine/webhook_certs.hpp). The X.509
// work is OpenSSL 3 (EVP keys, X509 objects), each object owned by a unique_ptr; errors inside the
// crypto helpers are CryptoError exceptions, caught at the two entry points (making and reading a
// set of certificates) and turned into sentences. No key and no certificate is ever logged.
#include "engine/webhook_certs.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "common/backoff.hpp"
#include "common/crypto.hpp"
#include "common/liveness.hpp"
#include "common/time_format.hpp"
#include "config/config.hpp"
#include "kube/api.hpp"

namespace stowage::engine {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using Time = std::chrono::system_clock::time_point;

namespace {

constexpr const char* kTlsType = "kubernetes.io/tls";
// Set on the Secret this component creates; only a Secret carrying it is ever replaced or deleted.
constexpr const char* kManagedByLabel = "app.kubernetes.io/managed-by";
constexpr const char* kManagedBy = "stowage";

// Whether `secret` carries kManagedByLabel=kManagedBy, i.e. was made by stowage.
bool made_by_stowage(const json::value& secret) {
  const auto* object = secret.if_object();
  const auto* md = object ? object->if_contains("metadata") : nullptr;
  const auto* labels = md && md->is_object() ? md->as_object().if_contains("labels") : nullptr;
  const auto* value = labels && labels->is_object() ? labels->as_object().if_contains(kManagedByLabel) : nullptr;
  return value && value->is_string() && value->get_string() == kManagedBy;
}
constexpr const char* kCaCommonName = "stowage-webhook-ca";

// ------------------------------------------------------------------------------------------ OpenSSL

struct CryptoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

// `what`, with OpenSSL's reason for the last error (its text names routines and reasons, never data);
// the error queue is emptied.
[[noreturn]] void fail(const std::string& what) {
  unsigned long code = ERR_peek_last_error();
  std::string reason;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    reason = std::string(": ") + buf;
  }
  ERR_clear_error();
  throw CryptoError(what + reason);
}

// A PEM password callback that refuses: an encrypted key fails to load instead of prompting.
int no_password(char*, int, int, void*) { return 0; }

KeyPtr make_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) fail("cannot make an ECDSA P-256 key");
  return key;
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) fail("cannot add the extension " + std::string(OBJ_nid2sn(nid)));
}

void set_time(ASN1_TIME* field, Time t) {
  if (!ASN1_TIME_set(field, std::chrono::system_clock::to_time_t(t))) fail("cannot set a validity time");
}

struct Subject {
  std::string common_name;
  EVP_PKEY* key;
  Time not_before, not_after;
  bool ca;
  std::vector<std::string> dns_names;  // serving certificates only
};

// A certificate for `subject`, signed by `issuer` with `issuer_key` (both null: self-signed).
X509Ptr issue(const Subject& subject, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("cannot make a certificate");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) fail("cannot draw a serial number");
  serial[0] &= 0x7f;  // positive
  BnPtr serial_number(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!serial_number || !BN_to_ASN1_INTEGER(serial_number.get(), X509_get_serialNumber(cert.get())))
    fail("cannot set the serial number");
  set_time(X509_getm_notBefore(cert.get()), subject.not_before);
  set_time(X509_getm_notAfter(cert.get()), subject.not_after);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(subject.common_name.c_str()), -1, -1, 0) != 1)
    fail("cannot set the subject");
  if (X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name) != 1 ||
      X509_set_pubkey(cert.get(), subject.key) != 1)
    fail("cannot set the issuer or the public key");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (subject.ca) {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
    std::string names;
    for (const auto& dns : subject.dns_names) names += (names.empty() ? "DNS:" : ",DNS:") + dns;
    add_extension(cert.get(), &ctx, NID_subject_alt_name, names);
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : subject.key, EVP_sha256()) <= 0) fail("cannot sign a certificate");
  return cert;
}

std::string drain(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string pem_of(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("cannot write a certificate as PEM");
  return drain(bio.get());
}

std::string pem_of(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("cannot write a key as PEM");
  return drain(bio.get());
}

// Every certificate of a PEM text (at least one), `what` naming it in errors.
std::vector<X509Ptr> read_certificates(const std::string& pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("cannot read " + what);
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr)) certs.emplace_back(cert);
  // The loop ends at the first block that is not a certificate: the end of the text is the normal end.
  unsigned long last = ERR_peek_last_error();
  bool clean_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (certs.empty()) fail(what + " holds no PEM certificate");
  if (!clean_end) fail(what + " holds something after its certificates that is not one");
  ERR_clear_error();
  return certs;
}

KeyPtr read_key(const std::string& pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("cannot read " + what);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
  if (!key) fail(what + " holds no unencrypted PEM private key");
  ERR_clear_error();
  return key;
}

Time time_of(const ASN1_TIME* t, const std::string& what) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) fail(what + " has a validity time that cannot be read");
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

// ------------------------------------------------------------------------------------------ the set

// One set of certificates, as the Secret holds it (PEM texts) with the times that decide renewal.
struct Material {
  std::string ca_crt;  // the signing CA first, then any earlier CA still trusted
  std::string ca_key, tls_crt, tls_key;
  Time ca_not_before, ca_not_after, serving_not_before, serving_not_after;
  bool names_match = true;  // the serving certificate is for the Service's names

  static Time renewal(Time from, Time to) { return from + (to - from) * 2 / 3; }
  Time ca_renewal() const { return renewal(ca_not_before, ca_not_after); }
  Time serving_renewal() const { return renewal(serving_not_before, serving_not_after); }
  Time next_renewal() const { return std::min(ca_renewal(), serving_renewal()); }
};

struct Maker {
  const WebhookCertsOptions& options;
  std::vector<std::string> names;
  Time now;

  // A new CA (keeping `previous`'s CA in the bundle while it is valid) and a serving certificate of it.
  Material with_new_ca(const Material* previous) const {
    KeyPtr ca_key = make_key();
    Subject ca_subject{kCaCommonName, ca_key.get(), now - options.backdate, now + options.ca_validity, true, {}};
    X509Ptr ca = issue(ca_subject, nullptr, nullptr);
    Material m;
    m.ca_crt = pem_of(ca.get());
    if (previous && previous->ca_not_after > now) m.ca_crt += first_pem(previous->ca_crt);
    m.ca_key = pem_of(ca_key.get());
    m.ca_not_before = ca_subject.not_before;
    m.ca_not_after = ca_subject.not_after;
    add_serving(m, ca.get(), ca_key.get());
    return m;
  }

  // `current`'s CA (and bundle) with a new serving certificate.
  Material with_new_serving(const Material& current) const {
    Material m = current;
    X509Ptr ca = std::move(read_certificates(current.ca_crt, "ca.crt").front());
    KeyPtr ca_key = read_key(current.ca_key, "ca.key");
    add_serving(m, ca.get(), ca_key.get());
    return m;
  }

 private:
  void add_serving(Material& m, X509* ca, EVP_PKEY* ca_key) const {
    KeyPtr key = make_key();
    Subject subject{names.front(), key.get(), now - options.backdate,
                    std::min(now + options.serving_validity, m.ca_not_after), false, names};
    X509Ptr cert = issue(subject, ca, ca_key);
    m.tls_crt = pem_of(cert.get());
    m.tls_key = pem_of(key.get());
    m.serving_not_before = subject.not_before;
    m.serving_not_after = subject.not_after;
    m.names_match = true;
  }

  static std::string first_pem(const std::string& bundle) {
    const std::string end = "-----END CERTIFICATE-----";
    auto at = bundle.find(end);
    return at == std::string::npos ? std::string() : bundle.substr(0, at + end.size()) + "\n";
  }
};

// The set a Secret holds, or why it cannot be used. Everything in it is untrusted.
Result<Material, std::string> read_material(const json::value& secret, const std::vector<std::string>& names) {
  const json::object* data = nullptr;
  if (const auto* o = secret.if_object())
    if (const auto* d = o->if_contains("data")) data = d->if_object();
  if (!data) return Err("it has no data");
  // The decoded value of data[key], or nothing after setting `problem`.
  std::string problem;
  auto field = [&](const char* key) -> std::optional<std::string> {
    const auto* v = data->if_contains(key);
    if (!v || !v->is_string()) {
      problem = "it has no " + std::string(key);
      return std::nullopt;
    }
    auto decoded = crypto::base64_decode(v->get_string());
    if (!decoded) problem = std::string(key) + " is not Base64";
    return decoded;
  };
  Material m;
  for (auto [key, out] : {std::pair{"ca.crt", &m.ca_crt}, {"ca.key", &m.ca_key}, {"tls.crt", &m.tls_crt},
                          {"tls.key", &m.tls_key}}) {
    auto value = field(key);
    if (!value) return Err(problem);
    *out = std::move(*value);
  }
  try {
    auto cas = read_certificates(m.ca_crt, "ca.crt");
    X509* ca = cas.front().get();
    KeyPtr ca_key = read_key(m.ca_key, "ca.key");
    if (X509_check_private_key(ca, ca_key.get()) != 1) fail("ca.key is not the key of ca.crt's first certificate");
    if (X509_check_ca(ca) < 1) fail("ca.crt's first certificate is not a CA");
    auto leaf = read_certificates(m.tls_crt, "tls.crt");
    X509* cert = leaf.front().get();
    KeyPtr key = read_key(m.tls_key, "tls.key");
    if (X509_check_private_key(cert, key.get()) != 1) fail("tls.key is not the key of tls.crt");
    if (X509_check_issued(ca, cert) != X509_V_OK || X509_verify(cert, X509_get0_pubkey(ca)) != 1)
      fail("tls.crt was not issued by ca.crt's first certificate");
    m.ca_not_before = time_of(X509_get0_notBefore(ca), "ca.crt");
    m.ca_not_after = time_of(X509_get0_notAfter(ca), "ca.crt");
    m.serving_not_before = time_of(X509_get0_notBefore(cert), "tls.crt");
    m.serving_not_after = time_of(X509_get0_notAfter(cert), "tls.crt");
    if (m.ca_not_after <= m.ca_not_before || m.serving_not_after <= m.serving_not_before)
      fail("a certificate ends before it begins");
    for (const auto& name : names)
      if (X509_check_host(cert, name.c_str(), name.size(), 0, nullptr) != 1) m.names_match = false;
    ERR_clear_error();
  } catch (const CryptoError& e) {
    return Err(std::string(e.what()));
  }
  return m;
}

// A Secret object holding `m`; `base` (when not null) gives the metadata (resourceVersion included).
json::object secret_object(const Material& m, const WebhookCertsOptions& options, const json::value* base) {
  json::object metadata;
  if (base && base->is_object())
    if (const auto* md = base->as_object().if_contains("metadata"); md && md->is_object()) metadata = md->as_object();
  metadata["name"] = options.secret;
  metadata["namespace"] = options.namespace_;
  auto* labels = metadata.if_contains("labels");
  if (!labels || !labels->is_object()) labels = &(metadata["labels"] = json::object());
  labels->as_object()[kManagedByLabel] = kManagedBy;
  json::object data{{"ca.crt", crypto::base64_encode(m.ca_crt)},
                    {"ca.key", crypto::base64_encode(m.ca_key)},
                    {"tls.crt", crypto::base64_encode(m.tls_crt)},
                    {"tls.key", crypto::base64_encode(m.tls_key)}};
  return {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", std::move(metadata)}, {"type", kTlsType},
          {"data", std::move(data)}};
}

// ------------------------------------------------------------------------------------------ files

// Writes `content` to dir/name unless it already holds it (mode 0600, through a temporary file and
// a rename). Small files in the process's own folder: done on the reactor, like the crypto. No fsync:
// after a crash the files are written again from the Secret. Returns whether it wrote, or why not.
Result<bool, std::string> write_if_changed(const fs::path& dir, const std::string& name, const std::string& content) {
  const fs::path target = dir / name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Err("cannot create " + dir.string() + ": " + ec.message());
  {
    std::ifstream in(target, std::ios::binary);
    std::stringstream current;
    current << in.rdbuf();
    struct stat st{};
    if (in && current.str() == content && ::stat(target.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600)
      return false;
  }
  const fs::path temporary = dir / ("." + name + ".tmp");
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Err("cannot write " + temporary.string() + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0;
  for (std::size_t done = 0; ok && done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  int saved = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (!ok || ::rename(temporary.c_str(), target.c_str()) != 0) {
    if (ok) saved = errno;
    ::unlink(temporary.c_str());
    return Err("cannot write " + target.string() + ": " + std::strerror(saved));
  }
  return true;
}

bool is_dns_subdomain(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

std::vector<std::string> webhook_dns_names(const std::string& service, const std::string& namespace_) {
  std::string svc = service + "." + namespace_ + ".svc";
  return {svc, svc + ".cluster.local"};
}

std::optional<std::string> validate(const WebhookCertsOptions& options) {
  for (auto [what, name] : {std::pair<const char*, const std::string*>{"namespace", &options.namespace_},
                            {"Service", &options.service},
                            {"Secret", &options.secret}}) {
    if (!is_dns_subdomain(*name)) return "the webhook's " + std::string(what) + " name \"" + *name + "\" is not a valid name";
  }
  for (const auto* name : {&options.mutating_configuration, &options.validating_configuration})
    if (!name->empty() && !is_dns_subdomain(*name))
      return "the webhook configuration name \"" + *name + "\" is not a valid name";
  if (options.backdate * 2 >= options.serving_validity || options.serving_validity >= options.ca_validity)
    return "the certificates' validities must be: backdate < serving / 2, serving < CA";
  return std::nullopt;
}

std::optional<std::string> apply_test_lifetime(const std::string& text, WebhookCertsOptions& options) {
  config::Millis lifetime;
  try {
    lifetime = config::parse_duration(text);
  } catch (const config::ConfigError& e) {
    return std::string(e.what());
  }
  // Certificates count in whole seconds; below 10 s the renewal points would fall within a second of each other.
  if (lifetime < std::chrono::seconds(10))
    return "expected a duration of at least 10s, got \"" + text + "\"";
  if (lifetime > options.ca_validity) return "expected a duration shorter than the CA's usual life, got \"" + text + "\"";
  options.ca_validity = std::chrono::duration_cast<std::chrono::seconds>(lifetime);
  options.serving_validity = options.ca_validity / 2;
  options.backdate = options.ca_validity / 10;
  return std::nullopt;
}

// ------------------------------------------------------------------------------------------ the loop

struct WebhookCerts::Impl {
  asio::any_io_executor executor;
  kube::Api& api;
  WebhookCertsOptions options;
  std::vector<std::string> names;
  std::string secret_path, label;
  asio::steady_timer timer;
  FullJitterBackoff backoff;
  std::map<std::string, std::string> configuration_state;  // last logged state of each configuration
  bool started = false, stopping = false;

  Impl(asio::any_io_executor ex, kube::Api& a, WebhookCertsOptions o)
      : executor(ex),
        api(a),
        options(std::move(o)),
        names(webhook_dns_names(options.service, options.namespace_)),
        secret_path("/api/v1/namespaces/" + options.namespace_ + "/secrets/" + options.secret),
        label("webhook certificates (Secret " + options.namespace_ + "/" + options.secret + ")"),
        timer(ex),
        backoff(options.retry_base, std::max(options.retry_base, options.recheck)) {}

  Time now() const { return options.clock ? options.clock() : std::chrono::system_clock::now(); }

  // The Secret's set, made, renewed or replaced as needed.
  asio::awaitable<Result<Material, std::string>> ensure_secret() {
    const std::string collection = "/api/v1/namespaces/" + options.namespace_ + "/secrets";
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto got = co_await api.get(secret_path);
      if (!got.ok() && got.error().http_status != 404) co_return Err("cannot read the Secret: " + got.error().message);
      Maker maker{options, names, now()};
      if (!got.ok()) {
        Material made;
        try {
          made = maker.with_new_ca(nullptr);
        } catch (const CryptoError& e) {
          co_return Err(std::string(e.what()));
        }
        auto created = co_await api.create(collection, secret_object(made, options, nullptr));
        if (created.ok()) {
          spdlog::info("{}: made a CA (until {}) and a serving certificate for {} (until {})", label,
                       rfc3339(made.ca_not_after), names.front(), rfc3339(made.serving_not_after));
          co_return made;
        }
        if (created.error().http_status == 409) continue;  // another replica was first: use theirs
        co_return Err("cannot create the Secret: " + created.error().message);
      }
      const json::value& secret = got.value();
      auto current = read_material(secret, names);
      Material next;
      std::string what;
      try {
        if (!current.ok()) {
          spdlog::warn("{} cannot be used: {}; replacing it with a new CA and serving certificate", label,
                       current.error());
          next = maker.with_new_ca(nullptr);
          what = "replaced it with a new CA and serving certificate";
        } else if (maker.now >= current.value().ca_renewal()) {
          next = maker.with_new_ca(&current.value());
          what = "renewed the CA (the previous one stays trusted in ca.crt until it expires) and the serving certificate";
        } else if (maker.now >= current.value().serving_renewal()) {
          next = maker.with_new_serving(current.value());
          what = "renewed the serving certificate";
        } else if (!current.value().names_match) {
          next = maker.with_new_serving(current.value());
          what = "made a serving certificate for " + names.front() + " (the previous one was not for it)";
        } else {
          co_return std::move(current.value());
        }
      } catch (const CryptoError& e) {
        co_return Err(std::string(e.what()));
      }
      // Fail closed: a Secret stowage did not make (someone else's, cert-manager's) is never overwritten
      // nor deleted, however unusable it looks to us.
      if (!made_by_stowage(secret))
        co_return Err("the Secret exists but was not made by stowage (no label " + std::string(kManagedByLabel) + "=" +
                      kManagedBy + ") and " + (current.ok() ? "needs renewing" : current.error()) +
                      ": it is left alone; delete it, or name another with --webhook-cert-secret, or serve "
                      "certificates from cert-manager (deploy/overlays/cert-manager) without --webhook-cert-self-signed");
      // A Secret's type cannot change: one of another type is deleted (this one only) and created anew.
      const json::object* object = secret.if_object();
      const json::value* type = object ? object->if_contains("type") : nullptr;
      if (!type || !type->is_string() || type->get_string() != kTlsType) {
        json::object preconditions;
        if (const auto* md = object ? object->if_contains("metadata") : nullptr; md && md->is_object())
          if (const auto* uid = md->as_object().if_contains("uid")) preconditions["uid"] = *uid;
        json::object delete_options;
        delete_options["preconditions"] = std::move(preconditions);
        auto removed = co_await api.remove(secret_path, std::move(delete_options));
        if (!removed.ok() && removed.error().http_status != 404 && removed.error().http_status != 409)
          co_return Err("cannot delete the Secret of the wrong type: " + removed.error().message);
        spdlog::info("{}: deleted it (its type is not {}); it is made again", label, kTlsType);
        continue;
      }
      auto replaced = co_await api.replace(secret_path, secret_object(next, options, &secret));
      if (replaced.ok()) {
        spdlog::info("{}: {} (CA until {}, serving certificate until {})", label, what, rfc3339(next.ca_not_after),
                     rfc3339(next.serving_not_after));
        co_return next;
      }
      if (replaced.error().http_status == 409) continue;  // another replica wrote first: read theirs
      co_return Err("cannot update the Secret: " + replaced.error().message);
    }
    co_return Err(std::string("the Secret changed under every attempt to write it; trying again later"));
  }

  std::optional<std::string> write_files(const Material& m) {
    // The key first: a reloader that reacts to tls.crt then finds both new.
    auto key = write_if_changed(options.cert_dir, "tls.key", m.tls_key);
    if (!key.ok()) return key.error();
    auto cert = write_if_changed(options.cert_dir, "tls.crt", m.tls_crt);
    if (!cert.ok()) return cert.error();
    if (key.value() || cert.value())
      spdlog::info("{}: wrote tls.crt and tls.key into {} (serving certificate until {})", label,
                   options.cert_dir.string(), rfc3339(m.serving_not_after));
    return std::nullopt;
  }

  void note(const std::string& configuration, const std::string& state, bool problem) {
    auto& last = configuration_state[configuration];
    if (last == state) return spdlog::debug("{}: {} {}", label, configuration, state);
    last = state;
    if (problem)
      spdlog::warn("{}: {} {}", label, configuration, state);
    else
      spdlog::info("{}: {} {}", label, configuration, state);
  }

  // caBundle = ca_bundle in every webhook of one configuration; an absent configuration is no error.
  asio::awaitable<std::optional<std::string>> patch_configuration(const std::string& plural, const std::string& kind,
                                                                  const std::string& name,
                                                                  const std::string& ca_bundle) {
    const std::string path = "/apis/admissionregistration.k8s.io/v1/" + plural + "/" + name;
    const std::string which = kind + " " + name;
    auto got = co_await api.get(path);
    if (!got.ok()) {
      if (got.error().http_status == 404) {
        note(which, "is not there (yet): looked for again every " + std::to_string(options.recheck.count()) + " ms",
             false);
        co_return std::nullopt;
      }
      co_return "cannot read " + which + ": " + got.error().message;
    }
    json::array ops;
    std::size_t webhooks = 0;
    const json::object* object = got.value().if_object();
    const json::value* list = object ? object->if_contains("webhooks") : nullptr;
    if (list && list->is_array()) {
      const auto& entries = list->get_array();
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto* entry = entries[i].if_object();
        const auto* entry_name = entry ? entry->if_contains("name") : nullptr;
        const auto* client = entry ? entry->if_contains("clientConfig") : nullptr;
        if (!entry_name || !client || !client->is_object()) continue;  // not a webhook the API server can call
        ++webhooks;
        const auto* current = client->as_object().if_contains("caBundle");
        if (current && current->is_string() && current->get_string() == ca_bundle) continue;
        std::string at = "/webhooks/" + std::to_string(i);
        ops.push_back({{"op", "test"}, {"path", at + "/name"}, {"value", *entry_name}});
        ops.push_back({{"op", "add"}, {"path", at + "/clientConfig/caBundle"}, {"value", ca_bundle}});
      }
    }
    if (ops.empty()) {
      note(which, "has the CA in the caBundle of its " + std::to_string(webhooks) + " webhooks", false);
      co_return std::nullopt;
    }
    const std::size_t patched = ops.size() / 2;
    auto written = co_await api.patch(path, kube::kJsonPatch, std::move(ops));
    if (!written.ok())  // 422: the configuration changed meanwhile; the next attempt reads it again
      co_return "cannot write the caBundle of " + which + ": " + written.error().message;
    configuration_state[which].clear();
    spdlog::info("{}: wrote the CA into the caBundle of {} of the {} webhooks of {}", label, patched, webhooks, which);
    co_return std::nullopt;
  }

  asio::awaitable<Result<Time, std::string>> pass() {
    auto material = co_await ensure_secret();
    if (!material.ok()) co_return Err(material.error());
    // The caBundle first, the files after: after a CA renewal the API server must trust the new CA
    // before this replica serves a certificate of it (the files are reloaded within a second).
    const std::string ca_bundle = crypto::base64_encode(material.value().ca_crt);
    std::string problems;
    for (auto [plural, kind, name] :
         {std::tuple{"mutatingwebhookconfigurations", "MutatingWebhookConfiguration", &options.mutating_configuration},
          {"validatingwebhookconfigurations", "ValidatingWebhookConfiguration", &options.validating_configuration}}) {
      if (name->empty()) continue;
      if (auto problem = co_await patch_configuration(plural, kind, *name, ca_bundle))
        problems += (problems.empty() ? "" : "; ") + *problem;
    }
    // Written even when a configuration could not be patched (absent, or not ours to patch): this
    // replica's certificate must still follow the Secret.
    if (auto problem = write_files(material.value())) problems += (problems.empty() ? "" : "; ") + *problem;
    if (!problems.empty()) co_return Err(problems);
    co_return material.value().next_renewal();
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    int failures = 0;
    while (!self->stopping) {
      auto result = co_await self->pass();
      if (self->stopping) break;
      std::chrono::milliseconds wait;
      if (result.ok()) {
        failures = 0;
        auto until = std::chrono::duration_cast<std::chrono::milliseconds>(result.value() - self->now());
        wait = std::clamp(until, std::chrono::milliseconds(100),
                          std::max(self->options.recheck, std::chrono::milliseconds(100)));
      } else {
        wait = self->backoff.next(failures++);
        spdlog::warn("{}: {}; trying again in {} ms", self->label, result.error(), wait.count());
      }
      self->timer.expires_after(wait);
      co_await self->timer.async_wait(kTuple);
    }
  }
};

WebhookCerts::WebhookCerts(asio::any_io_executor executor, kube::Api& api, WebhookCertsOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), api, std::move(options))) {}

WebhookCerts::~WebhookCerts() { stop(); }

void WebhookCerts::start() {
  Impl& i = *impl_;
  if (i.started || i.stopping) return;
  i.started = true;
  spdlog::info("{}: keeping the webhook's certificates for {} in {}", i.label, i.names.front(),
               i.options.cert_dir.string());
  std::weak_ptr<Impl> weak = impl_;
  auto stopped = [weak] {
    auto self = weak.lock();
    return !self || self->stopping;
  };
  asio::co_spawn(i.executor, Impl::run(impl_), common::loop_completion(i.label + " loop", std::move(stopped)));
}

void WebhookCerts::stop() {
  impl_->stopping = true;
  impl_->timer.cancel();
}

asio::awaitable<Result<Time, std::string>> WebhookCerts::pass() {
  std::shared_ptr<Impl> self = impl_;
  co_return co_await self->pass();
}

Result<std::unique_ptr<WebhookCerts>, std::string> start_webhook_certs(const config::Config& config,
                                                                       asio::any_io_executor executor,
                                                                       kube::Api& api,
                                                                       const std::string& default_namespace) {
  if (!config.webhook_cert_self_signed) return std::unique_ptr<WebhookCerts>();
  WebhookCertsOptions options;
  options.namespace_ =
      config.webhook_service_namespace.empty() ? default_namespace : config.webhook_service_namespace;
  options.service = config.webhook_service;
  options.secret = config.webhook_cert_secret;
  options.cert_dir = config.webhook_cert_dir;
  options.mutating_configuration = config.webhook_mutating_configuration;
  options.validating_configuration = config.webhook_validating_configuration;
  if (const char* lifetime = std::getenv(kWebhookCertTestLifetimeEnv)) {
    if (auto bad = apply_test_lifetime(lifetime, options))
      return Err(std::string(kWebhookCertTestLifetimeEnv) + ": " + *bad);
    spdlog::warn("{}={} (a test knob): the webhook's CA lives {} s and its serving certificates {} s; never set it "
                 "in a cluster",
                 kWebhookCertTestLifetimeEnv, lifetime, options.ca_validity.count(), options.serving_validity.count());
  }
  if (auto bad = validate(options))
    return Err("--webhook-cert-self-signed: " + *bad +
               " (see --webhook-service-namespace, "
               "--webhook-service, --webhook-cert-secret and the configuration names)");
  auto certs = std::make_unique<WebhookCerts>(std::move(executor), api, std::move(options));
  certs->start();
  return certs;
}

}  // namespace stowage::engine
