// WebhookCerts (--webhook-cert-self-signed) against the in-process FakeApi: the Secret made once and
// shared, the files in the cert dir, renewal of the serving certificate and of the CA, a Secret that
// cannot be used replaced (with a log line, never a key), and the CA written into the caBundle of
// both webhook configurations. Every certificate is checked with OpenSSL here, independently of the
// component: the chain verifies against ca.crt for a TLS server of the Service's names.
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "engine/webhook_certs.hpp"
#include "support.hpp"
#include "support/fake_api.hpp"
#include "support/run_awaitable.hpp"
#include "support/log_capture.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;
using std::chrono::hours;
using std::chrono::system_clock;

namespace {

constexpr const char* kSecrets = "/api/v1/namespaces/stowage-system/secrets";
const std::string kSecretPath = std::string(kSecrets) + "/stowage-webhook-cert";
constexpr const char* kMutating = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
constexpr const char* kValidating = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
const std::string kSvc = "stowage-webhook.stowage-system.svc";
constexpr auto kDay = hours(24);
using FakeApiRequest = test_support::FakeApi::Request;

// ---------------------------------------------------------------- OpenSSL, independent of the component

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Cert = std::unique_ptr<X509, X509Free>;

std::vector<Cert> certs_of(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::vector<Cert> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  return out;
}

// The chain leaf <- one of `ca_pem`'s certificates verifies for a TLS server named `host`, now.
bool verifies(const std::string& leaf_pem, const std::string& ca_pem, const std::string& host) {
  auto leaf = certs_of(leaf_pem);
  auto cas = certs_of(ca_pem);
  if (leaf.empty() || cas.empty()) return false;
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  for (auto& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.front().get(), nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx.get()), host.c_str(), host.size());
  bool ok = X509_verify_cert(ctx.get()) == 1;
  if (!ok) UNSCOPED_INFO("verify " << host << ": " << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  return ok;
}

bool key_matches(const std::string& cert_pem, const std::string& key_pem) {
  auto certs = certs_of(cert_pem);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())),
                                                BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                                                          EVP_PKEY_free);
  return !certs.empty() && key && X509_check_private_key(certs.front().get(), key.get()) == 1;
}

system_clock::time_point not_after(const std::string& pem) {
  auto certs = certs_of(pem);
  REQUIRE_FALSE(certs.empty());
  std::tm tm{};
  REQUIRE(ASN1_TIME_to_tm(X509_get0_notAfter(certs.front().get()), &tm) == 1);
  return system_clock::from_time_t(::timegm(&tm));
}

std::string pem_of(const Cert& cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// ---------------------------------------------------------------- the rig

using test_support::LogCapture;

json::value configuration(const char* kind, std::vector<std::string> webhooks) {
  json::array entries;
  for (const auto& name : webhooks)
    entries.push_back({{"name", name},
                       {"clientConfig", {{"service", {{"name", "stowage-webhook"}, {"namespace", "stowage-system"}}}}},
                       {"sideEffects", "None"},
                       {"admissionReviewVersions", json::array{"v1"}}});
  return {{"apiVersion", "admissionregistration.k8s.io/v1"},
          {"kind", kind},
          {"metadata", {{"name", "stowage"}}},
          {"webhooks", std::move(entries)}};
}

struct Rig {
  test::fs::path dir;
  boost::asio::io_context io;
  test_support::FakeApi api{io.get_executor()};
  LogCapture logs;

  explicit Rig(const std::string& name) : dir(test::temp_dir("webhook-certs-" + name)) {}

  void put_configurations() {
    api.put(kMutating, configuration("MutatingWebhookConfiguration", {"mutate.stowage.dev", "mutate-2.stowage.dev"}));
    api.put(kValidating, configuration("ValidatingWebhookConfiguration", {"validate.stowage.dev"}));
  }

  WebhookCertsOptions options(const std::string& replica) const {
    WebhookCertsOptions o;
    o.namespace_ = "stowage-system";
    o.cert_dir = dir / replica;
    o.mutating_configuration = "stowage";
    o.validating_configuration = "stowage";
    return o;
  }

  Result<system_clock::time_point, std::string> pass(WebhookCertsOptions o) {
    WebhookCerts certs(io.get_executor(), api, std::move(o));
    return test_support::run_awaitable(io, certs.pass());
  }
  void pass_ok(WebhookCertsOptions o) {
    auto r = pass(std::move(o));
    INFO((r.ok() ? "" : r.error()) << "\n" << logs.all());
    REQUIRE(r.ok());
  }

  std::string data(const std::string& key) const {
    const auto* secret = api.object(kSecretPath);
    REQUIRE(secret);
    auto decoded = crypto::base64_decode(secret->at("data").at(key).as_string());
    REQUIRE(decoded);
    return *decoded;
  }
  std::string file(const std::string& replica, const std::string& name) const {
    return test::read_file(dir / replica / name);
  }
  std::vector<std::string> ca_bundles() const {
    std::vector<std::string> out;
    for (std::string path : {std::string(kMutating) + "/stowage", std::string(kValidating) + "/stowage"}) {
      const auto* c = api.object(path);
      REQUIRE(c);
      for (const auto& w : c->at("webhooks").as_array()) {
        const auto* bundle = w.at("clientConfig").as_object().if_contains("caBundle");
        out.push_back(bundle ? std::string(bundle->as_string()) : "");
      }
    }
    return out;
  }
  // The Secret's pair and the files of `replica` are one valid set for the Service.
  void check_valid_set(const std::string& replica) const {
    CHECK(file(replica, "tls.crt") == data("tls.crt"));
    CHECK(file(replica, "tls.key") == data("tls.key"));
    CHECK(verifies(data("tls.crt"), data("ca.crt"), kSvc));
    CHECK(verifies(data("tls.crt"), data("ca.crt"), kSvc + ".cluster.local"));
    CHECK(key_matches(data("tls.crt"), data("tls.key")));
    CHECK(key_matches(data("ca.crt"), data("ca.key")));
  }
};

int mode_of(const test::fs::path& p) {
  struct stat st{};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("webhook certs: the first start makes the Secret and the files, and writes the CA into both configurations") {
  Rig rig("first");
  rig.put_configurations();
  rig.pass_ok(rig.options("a"));

  const auto* secret = rig.api.object(kSecretPath);
  REQUIRE(secret);
  CHECK(secret->at("type") == "kubernetes.io/tls");
  CHECK(rig.api.count("create", kSecrets) == 1);
  rig.check_valid_set("a");
  // Only the Service's names, and a serving certificate that is no CA.
  CHECK_FALSE(verifies(rig.data("tls.crt"), rig.data("ca.crt"), "stowage-webhook.other.svc"));
  CHECK_FALSE(verifies(rig.data("tls.crt"), rig.data("ca.crt"), "kubernetes.default.svc"));
  auto leaf = certs_of(rig.data("tls.crt"));
  CHECK(X509_check_ca(leaf.front().get()) == 0);
  CHECK(certs_of(rig.data("ca.crt")).size() == 1);
  CHECK(mode_of(rig.dir / "a" / "tls.key") == 0600);
  CHECK(mode_of(rig.dir / "a" / "tls.crt") == 0600);
  // Serving certificate for a year, CA for ten.
  CHECK(not_after(rig.data("tls.crt")) > system_clock::now() + 364 * kDay);
  CHECK(not_after(rig.data("ca.crt")) > system_clock::now() + 3600 * kDay);

  // Every webhook of both configurations has ca.crt as caBundle, written by JSON patch.
  auto bundles = rig.ca_bundles();
  REQUIRE(bundles.size() == 3);
  for (const auto& b : bundles) CHECK(b == crypto::base64_encode(rig.data("ca.crt")));
  CHECK(rig.api.count("patch", std::string(kMutating) + "/stowage") == 1);
  CHECK(rig.api.count("patch", std::string(kValidating) + "/stowage") == 1);

  // Nothing about the keys in the log.
  std::string log = rig.logs.all();
  CHECK(log.find("PRIVATE KEY") == std::string::npos);
  CHECK(log.find(crypto::base64_encode(rig.data("tls.key")).substr(0, 40)) == std::string::npos);
  CHECK_THAT(log, Catch::Contains("made a CA"));
}

TEST_CASE("webhook certs: a second start (another replica, a restart) reuses the Secret and writes nothing to the API") {
  Rig rig("second");
  rig.put_configurations();
  rig.pass_ok(rig.options("a"));
  const std::string ca = rig.data("ca.crt"), crt = rig.data("tls.crt");
  const auto writes = rig.api.count("create") + rig.api.count("update") + rig.api.count("patch");

  rig.pass_ok(rig.options("b"));
  CHECK(rig.data("ca.crt") == ca);
  CHECK(rig.data("tls.crt") == crt);
  CHECK(rig.file("b", "tls.crt") == crt);
  CHECK(rig.file("b", "tls.key") == rig.file("a", "tls.key"));
  CHECK(rig.api.count("create") + rig.api.count("update") + rig.api.count("patch") == writes);
}

TEST_CASE("webhook certs: two replicas creating at once: the one that loses the create uses the winner's Secret") {
  Rig rig("race");
  rig.put_configurations();
  rig.pass_ok(rig.options("a"));
  const std::string crt = rig.data("tls.crt");
  // b read the Secret before a created it: its own create is a 409, and it reads a's.
  rig.api.fail_next("get", kSecretPath, test_support::FakeApi::status_error(404, "not found"));
  rig.pass_ok(rig.options("b"));
  CHECK(rig.api.count("create", kSecrets) == 2);
  CHECK(rig.data("tls.crt") == crt);
  CHECK(rig.file("b", "tls.crt") == crt);
}

TEST_CASE("webhook certs: a serving certificate past 2/3 of its life is renewed under the same CA") {
  Rig rig("renew-serving");
  rig.put_configurations();
  auto made_300_days_ago = rig.options("a");
  made_300_days_ago.clock = [] { return system_clock::now() - 300 * kDay; };
  rig.pass_ok(made_300_days_ago);
  const std::string ca = rig.data("ca.crt"), old_crt = rig.data("tls.crt");
  REQUIRE(not_after(old_crt) < system_clock::now() + 66 * kDay);

  rig.pass_ok(rig.options("b"));
  CHECK(rig.api.count("update", kSecretPath) == 1);
  CHECK(rig.data("ca.crt") == ca);  // same CA: the caBundle stays
  CHECK(rig.data("tls.crt") != old_crt);
  CHECK(not_after(rig.data("tls.crt")) > system_clock::now() + 364 * kDay);
  rig.check_valid_set("b");
  CHECK_THAT(rig.logs.all(), Catch::Contains("renewed the serving certificate"));
  // A later pass finds nothing to do.
  rig.pass_ok(rig.options("b"));
  CHECK(rig.api.count("update", kSecretPath) == 1);
}

TEST_CASE("webhook certs: a CA past 2/3 of its life is renewed, and the old CA stays trusted in ca.crt and caBundle") {
  Rig rig("renew-ca");
  rig.put_configurations();
  auto made_7_years_ago = rig.options("a");
  made_7_years_ago.clock = [] { return system_clock::now() - 7 * 365 * kDay; };
  rig.pass_ok(made_7_years_ago);
  const std::string old_ca = rig.data("ca.crt"), old_crt = rig.data("tls.crt");

  rig.pass_ok(rig.options("b"));
  auto bundle = certs_of(rig.data("ca.crt"));
  REQUIRE(bundle.size() == 2);
  CHECK(pem_of(bundle[1]) == old_ca);
  CHECK(pem_of(bundle[0]) != old_ca);
  CHECK(not_after(rig.data("ca.crt")) > system_clock::now() + 3600 * kDay);
  rig.check_valid_set("b");
  CHECK(verifies(rig.data("tls.crt"), pem_of(bundle[0]), kSvc));  // signed by the new CA
  for (const auto& b : rig.ca_bundles()) CHECK(b == crypto::base64_encode(rig.data("ca.crt")));
  CHECK_THAT(rig.logs.all(), Catch::Contains("renewed the CA"));
}

// The metadata of a Secret stowage made (its label); only such a Secret is ever replaced or deleted.
const json::object kOurs{{"name", "stowage-webhook-cert"},
                         {"namespace", "stowage-system"},
                         {"labels", {{"app.kubernetes.io/managed-by", "stowage"}}}};

TEST_CASE("webhook certs: a Secret that cannot be used is replaced, with a log line saying why") {
  Rig rig("corrupt");
  rig.put_configurations();
  // A valid set of another Service, for parts.
  auto other = rig.options("other");
  other.service = "other";
  rig.pass_ok(other);
  const std::string good_ca = rig.data("ca.crt"), good_ca_key = rig.data("ca.key");
  const std::string good_crt = rig.data("tls.crt"), good_key = rig.data("tls.key");
  rig.api.erase(kSecretPath);
  rig.pass_ok(other);  // a second, unrelated set: its CA did not sign the first's certificate
  const std::string foreign_ca = rig.data("ca.crt"), foreign_ca_key = rig.data("ca.key");
  const std::string foreign_key = rig.data("tls.key");

  struct Case {
    const char* name;
    json::object data;
    const char* reason;
  };
  auto b64 = [](const std::string& s) { return crypto::base64_encode(s); };
  auto set = [&](std::string ca, std::string ca_key, std::string crt, std::string key) {
    return json::object{{"ca.crt", b64(ca)}, {"ca.key", b64(ca_key)}, {"tls.crt", b64(crt)}, {"tls.key", b64(key)}};
  };
  std::string truncated = good_crt.substr(0, good_crt.size() / 2);
  std::vector<Case> cases{
      {"no data", {}, "it has no ca.crt"},
      {"not Base64", {{"ca.crt", "%%%"}, {"ca.key", b64(good_ca_key)}, {"tls.crt", b64(good_crt)}, {"tls.key", b64(good_key)}},
       "ca.crt is not Base64"},
      {"garbage certificate", set("garbage", good_ca_key, good_crt, good_key), "ca.crt holds no PEM certificate"},
      {"truncated certificate", set(good_ca, good_ca_key, truncated, good_key), "tls.crt holds no PEM certificate"},
      {"garbage key", set(good_ca, good_ca_key, good_crt, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
       "tls.key holds no unencrypted PEM private key"},
      {"key of another certificate", set(good_ca, good_ca_key, good_crt, foreign_key), "tls.key is not the key of tls.crt"},
      {"CA key of another CA", set(good_ca, foreign_ca_key, good_crt, good_key),
       "ca.key is not the key of ca.crt's first certificate"},
      {"certificate of another CA", set(foreign_ca, foreign_ca_key, good_crt, good_key),
       "tls.crt was not issued by ca.crt's first certificate"},
      {"a serving certificate as CA", set(good_crt, good_key, good_crt, good_key), "ca.crt's first certificate is not a CA"},
  };
  for (auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      rig.api.erase(kSecretPath);
      rig.api.put(kSecrets, {{"apiVersion", "v1"},
                             {"kind", "Secret"},
                             {"metadata", kOurs},
                             {"type", "kubernetes.io/tls"},
                             {"data", c.data}});
      rig.pass_ok(rig.options("a"));
      std::string log = rig.logs.all();
      // The reason, then OpenSSL's own where it has one ("error:05800074:x509 certificate routines::key
      // values mismatch"), then what is done.
      CHECK(rig.logs.has("warning", "webhook certificates (Secret stowage-system/stowage-webhook-cert) cannot be used: " +
                                        std::string(c.reason),
                         "; replacing it with a new CA and serving certificate"));
      CHECK(log.find("PRIVATE KEY") == std::string::npos);
      CHECK(log.find("CERTIFICATE") == std::string::npos);
      CHECK(rig.api.count("update", kSecretPath) == 1);
      rig.check_valid_set("a");
      for (const auto& b : rig.ca_bundles()) CHECK(b == crypto::base64_encode(rig.data("ca.crt")));
    }
  }
}

TEST_CASE("webhook certs: a Secret of another type is deleted and made again (a Secret's type cannot change)") {
  Rig rig("opaque");
  rig.put_configurations();
  rig.api.put(kSecrets, {{"apiVersion", "v1"},
                         {"kind", "Secret"},
                         {"metadata", kOurs},
                         {"type", "Opaque"},
                         {"data", {{"x", "eA=="}}}});
  const std::string uid(rig.api.object(kSecretPath)->at("metadata").at("uid").as_string());
  rig.pass_ok(rig.options("a"));
  CHECK(rig.api.count("delete", kSecretPath) == 1);
  for (const auto& r : rig.api.requests())
    if (r.verb == "delete") CHECK(r.body.at("preconditions").at("uid") == uid.c_str());
  CHECK(rig.api.object(kSecretPath)->at("type") == "kubernetes.io/tls");
  rig.check_valid_set("a");
}

TEST_CASE("webhook certs: a Secret stowage did not make is neither replaced nor deleted, and the pass says why") {
  Rig rig("foreign");
  rig.put_configurations();
  for (const char* type : {"Opaque", "kubernetes.io/tls"}) {
    DYNAMIC_SECTION(type) {
      rig.api.put(kSecrets, {{"apiVersion", "v1"},
                             {"kind", "Secret"},
                             {"metadata", {{"name", "stowage-webhook-cert"}, {"namespace", "stowage-system"}}},
                             {"type", type},
                             {"data", {{"tls.crt", "eA=="}}}});
      const json::value before = *rig.api.object(kSecretPath);
      auto r = rig.pass(rig.options("a"));
      REQUIRE_FALSE(r.ok());
      CHECK_THAT(r.error(), Catch::Contains("not made by stowage") && Catch::Contains("it is left alone") &&
                                Catch::Contains("--webhook-cert-secret"));
      CHECK(rig.api.count("delete", kSecretPath) == 0);
      CHECK(rig.api.count("update", kSecretPath) == 0);
      CHECK(*rig.api.object(kSecretPath) == before);
    }
  }
}

TEST_CASE("webhook certs: a certificate not for the Service's names is replaced under the same CA") {
  Rig rig("names");
  rig.put_configurations();
  auto other = rig.options("a");
  other.service = "renamed";
  rig.pass_ok(other);
  const std::string ca = rig.data("ca.crt");
  rig.pass_ok(rig.options("a"));
  CHECK(rig.data("ca.crt") == ca);
  rig.check_valid_set("a");
}

TEST_CASE("webhook certs: a configuration applied later gets the CA at the next pass, and caBundles already right are left alone") {
  Rig rig("later");
  rig.pass_ok(rig.options("a"));  // no configuration yet: no error
  CHECK_THAT(rig.logs.all(), Catch::Contains("MutatingWebhookConfiguration stowage is not there (yet)"));
  rig.put_configurations();
  rig.pass_ok(rig.options("a"));
  for (const auto& b : rig.ca_bundles()) CHECK(b == crypto::base64_encode(rig.data("ca.crt")));
  // One webhook's caBundle changed by someone else: only that one is written again, guarded by its name.
  auto config = *rig.api.object(std::string(kMutating) + "/stowage");
  config.at("webhooks").as_array()[1].at("clientConfig").as_object()["caBundle"] = "c3RhbGU=";
  rig.api.put(kMutating, config);
  const auto patches = rig.api.count("patch");
  rig.pass_ok(rig.options("a"));
  REQUIRE(rig.api.count("patch") == patches + 1);
  const FakeApiRequest* patch = nullptr;
  for (const auto& r : rig.api.requests())
    if (r.verb == "patch") patch = &r;
  const auto& last = *patch;
  CHECK(last.path == std::string(kMutating) + "/stowage");
  CHECK(last.content_type == "application/json-patch+json");
  CHECK(json::serialize(last.body) ==
        json::serialize(json::array{
            {{"op", "test"}, {"path", "/webhooks/1/name"}, {"value", "mutate-2.stowage.dev"}},
            {{"op", "add"}, {"path", "/webhooks/1/clientConfig/caBundle"}, {"value", crypto::base64_encode(rig.data("ca.crt"))}}}));
  for (const auto& b : rig.ca_bundles()) CHECK(b == crypto::base64_encode(rig.data("ca.crt")));
}

TEST_CASE("webhook certs: failures are errors that say what failed") {
  Rig rig("failures");
  rig.put_configurations();
  SECTION("the API server refuses the Secret") {
    rig.api.fail_next("get", kSecretPath, test_support::FakeApi::status_error(403, "secrets is forbidden"));
    auto r = rig.pass(rig.options("a"));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("cannot read the Secret") && Catch::Contains("forbidden"));
  }
  SECTION("the cert dir cannot be written") {
    test::write_file(rig.dir / "file", "x");
    auto o = rig.options("a");
    o.cert_dir = rig.dir / "file" / "certs";
    auto r = rig.pass(o);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("cannot create " + (rig.dir / "file" / "certs").string()));
  }
  SECTION("a configuration's patch is refused") {
    rig.api.fail_next("patch", std::string(kValidating) + "/stowage",
                      test_support::FakeApi::status_error(422, "the test failed"));
    auto r = rig.pass(rig.options("a"));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("cannot write the caBundle of ValidatingWebhookConfiguration stowage"));
    rig.pass_ok(rig.options("a"));  // the next pass writes it
    for (const auto& b : rig.ca_bundles()) CHECK(b == crypto::base64_encode(rig.data("ca.crt")));
  }
}

TEST_CASE("webhook certs: random damage to a valid Secret gives a usable set or a clear error, never a crash") {
  Rig rig("damage");
  rig.pass_ok(rig.options("a"));
  const json::value good = *rig.api.object(kSecretPath);
  std::mt19937 rng(11);
  const char* keys[] = {"ca.crt", "ca.key", "tls.crt", "tls.key"};
  for (int round = 0; round < 200; ++round) {
    json::value damaged = good;
    auto& data = damaged.at("data").as_object();
    const char* key = keys[rng() % 4];
    std::string pem = *crypto::base64_decode(data.at(key).as_string());
    std::size_t at = 30 + rng() % (pem.size() - 60);  // inside the PEM body
    pem[at] = static_cast<char>(rng() % 256);
    if (rng() % 3 == 0) pem.resize(at);
    data[key] = crypto::base64_encode(pem);
    rig.api.erase(kSecretPath);
    rig.api.put(kSecrets, damaged);
    rig.pass_ok(rig.options("a"));
    rig.check_valid_set("a");
  }
}

TEST_CASE("webhook certs: the loop renews a short-lived serving certificate at 2/3 of its life, by itself") {
  // Renewed at 4 s after the start at the latest, and never before 3 s (the whole second of notBefore
  // at most 1 s early): seen between 0.5 s and 5 s, well before the end of its life at 6 s.
  Rig rig("loop");
  rig.put_configurations();
  auto o = rig.options("a");
  o.serving_validity = std::chrono::seconds(6);  // renewed at 4 s (at the latest: X.509 times are whole seconds)
  o.ca_validity = hours(1);
  o.backdate = std::chrono::seconds(0);
  o.recheck = std::chrono::seconds(30);
  WebhookCerts certs(rig.io.get_executor(), rig.api, o);
  certs.start();
  rig.io.run_for(std::chrono::milliseconds(500));
  const std::string first = rig.file("a", "tls.crt");
  REQUIRE_FALSE(first.empty());
  CHECK(rig.api.count("update", kSecretPath) == 0);
  rig.io.run_for(std::chrono::milliseconds(4500));  // past 4 s, before the end at 6 s: renewed
  INFO(rig.logs.all());
  CHECK(rig.api.count("update", kSecretPath) >= 1);
  CHECK(rig.file("a", "tls.crt") != first);
  rig.check_valid_set("a");
  certs.stop();
  rig.io.run_for(std::chrono::milliseconds(50));
}

TEST_CASE("webhook certs: options that would make wrong certificates are refused") {
  WebhookCertsOptions o;
  o.namespace_ = "stowage-system";
  CHECK_FALSE(validate(o).has_value());
  o.mutating_configuration = "a/b";
  CHECK_THAT(validate(o).value_or(""), Catch::Contains("\"a/b\" is not a valid name"));
  o.mutating_configuration = "";
  o.namespace_ = "";
  CHECK_THAT(validate(o).value_or(""), Catch::Contains("namespace name \"\""));
  o.namespace_ = "ns";
  o.serving_validity = hours(2);
  CHECK_THAT(validate(o).value_or(""), Catch::Contains("backdate < serving / 2"));
}

TEST_CASE("webhook certs: the test knob for short lifetimes takes a duration of at least 10s, and says what is wrong otherwise") {
  WebhookCertsOptions o;
  o.namespace_ = "stowage-system";
  REQUIRE_FALSE(apply_test_lifetime("30s", o).has_value());
  CHECK(o.ca_validity == std::chrono::seconds(30));
  CHECK(o.serving_validity == std::chrono::seconds(15));
  CHECK(o.backdate == std::chrono::seconds(3));
  CHECK_FALSE(validate(o).has_value());  // what the knob makes passes the usual rules

  WebhookCertsOptions untouched;
  for (const char* bad : {"5s", "soon", "", "-30s", "100000h"}) {
    WebhookCertsOptions p;
    INFO(bad);
    CHECK(apply_test_lifetime(bad, p).has_value());
    CHECK(p.ca_validity == untouched.ca_validity);  // a refused value changes nothing
    CHECK(p.serving_validity == untouched.serving_validity);
  }
  CHECK_THAT(apply_test_lifetime("5s", o).value_or(""), Catch::Contains("at least 10s, got \"5s\""));
}

namespace {
// The FakeApi, noting at every caBundle patch which serving certificate the replica's files held then.
struct PatchWitness : kube::Api {
  explicit PatchWitness(test_support::FakeApi& inner) : inner(inner) {}
  test_support::FakeApi& inner;
  test::fs::path cert_file;
  std::vector<std::string> served_at_patch;
  Awaitable<json::value> get(std::string path) override { return inner.get(std::move(path)); }
  Awaitable<json::value> list(std::string path, kube::ListOptions options) override {
    return inner.list(std::move(path), std::move(options));
  }
  Awaitable<json::value> create(std::string collection, json::value object) override {
    return inner.create(std::move(collection), std::move(object));
  }
  Awaitable<json::value> replace(std::string path, json::value object) override {
    return inner.replace(std::move(path), std::move(object));
  }
  Awaitable<json::value> patch(std::string path, std::string content_type, json::value body) override {
    served_at_patch.push_back(test::fs::exists(cert_file) ? test::read_file(cert_file) : std::string());
    return inner.patch(std::move(path), std::move(content_type), std::move(body));
  }
  Awaitable<json::value> remove(std::string path, json::value options) override {
    return inner.remove(std::move(path), std::move(options));
  }
  Awaitable<Ok> watch(std::string path, kube::WatchOptions options,
                            std::function<bool(kube::WatchEvent)> on_event) override {
    return inner.watch(std::move(path), std::move(options), std::move(on_event));
  }
};
}  // namespace

TEST_CASE("webhook certs: after a CA renewal the caBundle is patched before the replica serves a certificate of the new CA") {
  // Serving a certificate of a CA the API server does not trust yet would make every BackupStorage
  // write fail (failurePolicy: Fail) until the bundle caught up.
  Rig rig("renew-ca-order");
  boost::asio::io_context& io = rig.io;
  rig.put_configurations();
  PatchWitness api(rig.api);
  auto old = rig.options("a");
  old.clock = [] { return system_clock::now() - 7 * 365 * kDay; };
  api.cert_file = old.cert_dir / "tls.crt";
  {
    WebhookCerts certs(io.get_executor(), api, old);
    REQUIRE(test_support::run_awaitable(io, certs.pass()).ok());
  }
  const std::string old_crt = test::read_file(api.cert_file);
  api.served_at_patch.clear();
  {
    WebhookCerts certs(io.get_executor(), api, rig.options("a"));  // now: the CA is past 2/3 of its life
    REQUIRE(test_support::run_awaitable(io, certs.pass()).ok());
  }
  REQUIRE(api.served_at_patch.size() == 2);  // both configurations got the new bundle...
  for (const auto& served : api.served_at_patch) CHECK(served == old_crt);  // ...while the old certificate was served
  CHECK(test::read_file(api.cert_file) != old_crt);  // and then the new one
}
