#pragma once
// Test support: the GCS test server (tests/servers/gcs_server.py) on free loopback ports, trusting
// a service account whose RSA key pair is generated at test time with `openssl genpkey`.
//
// The server's controls (faults, counters, seeding, token revocation) are reached over a second,
// plain-HTTP port with a tiny blocking client, so they work the same when the API speaks HTTPS.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace test_support {

// A fresh RSA-2048 private key (PKCS#8 PEM, as Google issues them), one per `name` per process:
// key generation is slow, and tests only need distinct keys, not new ones each time.
inline std::string rsa_private_key_pem(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::string> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  auto dir = std::filesystem::temp_directory_path() / ("stowage-gcs-keys-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / (name + ".pem");
  std::string command =
      "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '" + file.string() + "' 2>/dev/null";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("openssl genpkey failed for " + file.string());
  std::string pem = read_text(file);
  std::filesystem::remove_all(dir);
  if (pem.find("BEGIN PRIVATE KEY") == std::string::npos) throw std::runtime_error("no key in " + file.string());
  return cache[name] = pem;
}

// A service-account JSON key file, as the Cloud Console downloads it.
inline std::string service_account_json(const std::string& email, const std::string& key_id, const std::string& pem,
                                        const std::string& token_uri) {
  boost::json::object o{{"type", "service_account"},
                        {"project_id", "stowage-test"},
                        {"private_key_id", key_id},
                        {"private_key", pem},
                        {"client_email", email},
                        {"client_id", "100000000000000000001"},
                        {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
                        {"token_uri", token_uri}};
  return boost::json::serialize(o);
}

// An external_account file (workload identity federation) whose subject token is read from
// `token_file`; `field` empty: format text, else format json with that subject_token_field_name.
inline std::string external_account_json(const std::string& audience, const std::string& token_url,
                                         const std::string& token_file, const std::string& field = "",
                                         const std::string& impersonation_url = "") {
  boost::json::object source{{"file", token_file}};
  if (!field.empty())
    source["format"] = boost::json::object{{"type", "json"}, {"subject_token_field_name", field}};
  else
    source["format"] = boost::json::object{{"type", "text"}};
  boost::json::object o{{"type", "external_account"},
                        {"audience", audience},
                        {"subject_token_type", "urn:ietf:params:oauth:token-type:jwt"},
                        {"token_url", token_url},
                        {"credential_source", source}};
  if (!impersonation_url.empty()) o["service_account_impersonation_url"] = impersonation_url;
  return boost::json::serialize(o);
}

class GcsServer {
 public:
  struct Options {
    bool tls = false;
    bool no_auth = false;  // emulator mode: storage calls need no token
    std::vector<std::string> buckets{"stowage"};
    std::vector<std::string> forbidden_buckets;     // 403 for everything
    std::vector<std::string> objects_only_buckets;  // 403 for the bucket GET only
    int token_lifetime = 3600;                      // expires_in of issued tokens
    // Workload identity federation: the subject token and audience STS accepts (none: STS refuses
    // everything), the account generateAccessToken impersonates, and whether storage calls need an
    // impersonated token (a federated one is refused).
    std::string sts_subject_token, sts_audience, impersonate_email;
    bool require_impersonation = false;

    static Options with_tls() {
      Options o;
      o.tls = true;
      return o;
    }
    static Options without_auth() {
      Options o;
      o.no_auth = true;
      return o;
    }
    static Options with_token_lifetime(int seconds) {
      Options o;
      o.token_lifetime = seconds;
      return o;
    }
  };

  static constexpr const char* kEmail = "stowage-test@stowage-test.iam.gserviceaccount.com";
  static constexpr const char* kKeyId = "5e1f0000c0ffee0000000000000000000000beef";

  GcsServer() : GcsServer(Options()) {}
  explicit GcsServer(Options options) : options_(std::move(options)) {
    static std::atomic<int> counter{0};
    while (control_port_ == port_) control_port_ = free_port();
    dir_ = std::filesystem::temp_directory_path() /
           ("stowage-gcs-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (options_.tls) certs_ = make_certificates(dir_ / "certs");

    key_json_ = service_account_json(kEmail, kKeyId, rsa_private_key_pem("service-account"), token_uri());
    wrong_key_json_ = service_account_json(kEmail, kKeyId, rsa_private_key_pem("impostor"), token_uri());
    auto key_file = dir_ / "key.json";
    FILE* f = std::fopen(key_file.c_str(), "wb");
    std::fwrite(key_json_.data(), 1, key_json_.size(), f);
    std::fclose(f);

    std::vector<std::string> argv{"python3",          std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/gcs_server.py",
                                  "--port",           std::to_string(port_),
                                  "--control-port",   std::to_string(control_port_),
                                  "--key-file",       key_file.string(),
                                  "--token-uri",      token_uri(),
                                  "--token-lifetime", std::to_string(options_.token_lifetime)};
    for (const auto& b : options_.buckets) argv.insert(argv.end(), {"--bucket", b});
    for (const auto& b : options_.forbidden_buckets) argv.insert(argv.end(), {"--forbidden-bucket", b});
    for (const auto& b : options_.objects_only_buckets) argv.insert(argv.end(), {"--objects-only-bucket", b});
    if (options_.no_auth) argv.push_back("--no-auth");
    if (!options_.sts_subject_token.empty())
      argv.insert(argv.end(), {"--sts-subject-token", options_.sts_subject_token});
    if (!options_.sts_audience.empty()) argv.insert(argv.end(), {"--sts-audience", options_.sts_audience});
    if (!options_.impersonate_email.empty())
      argv.insert(argv.end(), {"--impersonate-email", options_.impersonate_email});
    if (options_.require_impersonation) argv.push_back("--require-impersonation");
    if (certs_) argv.insert(argv.end(), {"--cert", certs_->server_cert.string(), "--key", certs_->server_key.string()});
    log_ = dir_ / "server.log";
    process_ = Server::start(argv, log_);
    process_.wait_for_port(control_port_, log_);
    process_.wait_for_port(port_, log_);
  }

  ~GcsServer() {
    process_.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  GcsServer(const GcsServer&) = delete;
  GcsServer& operator=(const GcsServer&) = delete;

  std::string endpoint() const {
    return std::string(options_.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  std::string token_uri() const { return endpoint() + "/token"; }
  std::string sts_url() const { return endpoint() + "/v1/token"; }
  std::string impersonation_url(const std::string& email) const {
    return endpoint() + "/v1/projects/-/serviceAccounts/" + email + ":generateAccessToken";
  }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }  // GCE_METADATA_HOST form
  std::string ca_pem() const { return certs_ ? certs_->ca_pem() : std::string(); }
  const std::string& key_json() const { return key_json_; }              // the account the server trusts
  const std::string& wrong_key_json() const { return wrong_key_json_; }  // same email and key id, another key
  const std::filesystem::path& log() const { return log_; }

  std::string control(const std::string& method, const std::string& target, const std::string& body = "") const {
    auto [status, reply] = plain_http(control_port_, method, target, body);
    if (status != 200) throw std::runtime_error("control " + target + " answered " + std::to_string(status));
    return reply;
  }
  boost::json::object stats() const { return boost::json::parse(control("GET", "/__stats")).as_object(); }
  // A top-level counter ("token_exchanges", "metadata_tokens", "auth_headers", "faults_served", ...)
  // or a storage call count ("api.read", "api.upload", "api.list", "api.delete", "api.bucket").
  std::int64_t stat(const std::string& name) const {
    auto all = stats();
    if (name.rfind("api.", 0) == 0) {
      const auto& api = all.at("api").as_object();
      auto* v = api.if_contains(name.substr(4));
      return v ? v->to_number<std::int64_t>() : 0;
    }
    return all.at(name).to_number<std::int64_t>();
  }
  // {"mode":"status503","count":3,"retry_after":0}, {"mode":"delay","seconds":2,"count":5}, {"mode":"none"}
  void fault(const std::string& json) const { control("POST", "/__fault", json); }
  void revoke_tokens() const { control("POST", "/__revoke"); }
  void seed(const std::string& bucket, const std::vector<std::string>& names, const std::string& content = "x") const {
    boost::json::object objects;
    for (const auto& n : names) objects[n] = content;
    control("POST", "/__seed", boost::json::serialize(boost::json::object{{"bucket", bucket}, {"objects", objects}}));
  }
  std::vector<std::string> objects(const std::string& bucket) const {
    auto reply = boost::json::parse(control("GET", "/__objects?bucket=" + bucket)).as_object();
    std::vector<std::string> names;
    for (const auto& v : reply.at("names").as_array()) names.emplace_back(v.as_string());
    return names;
  }
  // {"data","generation","contentType"} of one object, or nothing when it does not exist.
  std::optional<boost::json::object> object(const std::string& bucket, const std::string& name) const {
    std::string target = "/__object?bucket=" + bucket + "&name=";
    static constexpr char hex[] = "0123456789ABCDEF";
    for (unsigned char c : name) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        target += static_cast<char>(c);
      } else {
        target += '%';
        target += hex[c >> 4];
        target += hex[c & 0xf];
      }
    }
    auto [status, reply] = plain_http(control_port_, "GET", target);
    if (status == 404) return std::nullopt;
    return boost::json::parse(reply).as_object();
  }

 private:
  Options options_;
  int port_ = free_port();
  int control_port_ = free_port();
  std::filesystem::path dir_, log_;
  std::optional<TestCertificates> certs_;
  std::string key_json_, wrong_key_json_;
  Server process_;
};

}  // namespace test_support
