#pragma once
// Test support: a moto 5 S3 server on loopback with signature checking ON, seeded through
// tests/servers/moto_seed.py (python3 + boto3 of the image's pyenv, found on PATH like moto_server).
//
// moto checks signatures only once auth is on: the server starts with a large
// INITIAL_NO_AUTH_ACTION_COUNT, the seed script creates an IAM user + access key + s3:* policy and a
// role it assumes through STS (temporary credentials with a session token), then turns auth on for
// every later request (POST /moto-api/reset-auth "0") and creates buckets with the user's key.
// From then on a wrong secret gets 403 SignatureDoesNotMatch.
//
// Helpers (make_bucket, put_objects, list_keys, get_object) go through boto3: an independent SigV4
// client, so the tests check the server's state with something other than the code under test.
#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace test_support {

struct MotoCredentials {
  std::string access_key_id, secret_access_key;                                  // IAM user, s3:*
  std::string session_access_key_id, session_secret_access_key, session_token;  // STS assume_role
};

// Single-quoted for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command; returns its stdout and exit code.
inline std::pair<std::string, int> run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : 128};
}

struct MotoOptions {
  bool tls = false;  // https with a certificate for 127.0.0.1 signed by a test CA (ca_pem())
};

// `argv` under a bash watchdog that stops it when the test process goes away without stopping it
// (a crash, a ctest timeout's kill): no orphaned servers left listening. "Gone" is "bash was
// re-parented" (/proc/$$/stat), which also holds when the dead test is an unreaped zombie. Server::stop() signals the
// whole process group, so the normal stop is unchanged.
inline std::vector<std::string> stopped_with_parent(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& arg : argv) command += shell_quote(arg) + " ";
  return {"bash", "-c",
          command +
              "& child=$!; trap 'kill $child 2>/dev/null; exit 0' TERM INT; "
              "while [ \"$(cut -d' ' -f4 /proc/$$/stat)\" = \"$PPID\" ] && kill -0 $child 2>/dev/null; "
              "do sleep 0.5; done; "
              "kill $child 2>/dev/null; wait $child"};
}

class MotoServer {
 public:
  explicit MotoServer(MotoOptions options = {}) : options_(options) {
    std::string pattern = (std::filesystem::temp_directory_path() / "stowage-moto-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    log_ = dir_ / "moto.log";
    port_ = free_port();
    std::vector<std::string> argv = {"moto_server", "-H", "127.0.0.1", "-p", std::to_string(port_)};
    if (options_.tls) {
      certificates_ = make_certificates(dir_ / "certs");
      argv.insert(argv.end(), {"-c", certificates_->server_cert.string(), "-k", certificates_->server_key.string()});
    }
    server_ = Server::start(stopped_with_parent(argv), log_, {{"INITIAL_NO_AUTH_ACTION_COUNT", "1000000"}});
    server_.wait_for_port(port_, log_);
    auto setup = seed("setup", "");
    auto json = boost::json::parse(setup).as_object();
    auto text = [](const boost::json::value& v) { return std::string(v.as_string()); };
    credentials_.access_key_id = text(json.at("access_key_id"));
    credentials_.secret_access_key = text(json.at("secret_access_key"));
    admin_key_id_ = text(json.at("admin").at("access_key_id"));
    admin_secret_ = text(json.at("admin").at("secret_access_key"));
    const auto& session = json.at("session").as_object();
    credentials_.session_access_key_id = text(session.at("access_key_id"));
    credentials_.session_secret_access_key = text(session.at("secret_access_key"));
    credentials_.session_token = text(session.at("session_token"));
  }

  ~MotoServer() {
    server_.stop();
    std::error_code ec;
    if (std::getenv("STOWAGE_KEEP_TEST_LOGS") == nullptr) std::filesystem::remove_all(dir_, ec);
  }
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  int port() const { return port_; }
  std::string endpoint() const {
    return (options_.tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
  }
  const MotoCredentials& credentials() const { return credentials_; }
  // The IAM administrator (policy "*"): may call sts:AssumeRole, which the stowage user may not.
  std::pair<std::string, std::string> admin_credentials() const { return {admin_key_id_, admin_secret_}; }
  // The role setup created (s3:* on everything), which the administrator may assume.
  static std::string role_arn() { return "arn:aws:iam::123456789012:role/stowage-role"; }
  std::string ca_pem() const { return certificates_ ? certificates_->ca_pem() : std::string(); }
  const std::filesystem::path& log() const { return log_; }

  void make_bucket(const std::string& bucket) const { seed("mb", "--bucket " + shell_quote(bucket)); }
  // Empties the bucket and deletes it.
  void remove_bucket(const std::string& bucket) const { seed("rb", "--bucket " + shell_quote(bucket)); }
  // Deletes credentials().access_key_id in IAM (as an administrator would revoke it): requests
  // signed with it fail with InvalidAccessKeyId from then on.
  void revoke_access_key() const {
    std::string c = "python3 " + shell_quote(script()) + " revoke --endpoint " + shell_quote(endpoint());
    if (options_.tls) c += " --ca " + shell_quote(certificates_->ca_cert.string());
    c += " --key-id " + shell_quote(admin_key_id_) + " --secret " + shell_quote(admin_secret_) + " --key " +
         shell_quote(credentials_.access_key_id) + " 2>>" + shell_quote(log_.string());
    if (run_command(c).second != 0) throw std::runtime_error("moto_seed.py revoke failed; see " + log_.string());
  }

  // Objects key_prefix00000 .. key_prefix{count-1}.
  void put_objects(const std::string& bucket, const std::string& key_prefix, int count) const {
    seed("put", "--bucket " + shell_quote(bucket) + " --key-prefix " + shell_quote(key_prefix) + " --count " +
                    std::to_string(count));
  }

  void put_object(const std::string& bucket, const std::string& key, const std::string& body) const {
    seed("put-one", "--bucket " + shell_quote(bucket) + " --key " + shell_quote(key) + " --body " + shell_quote(body));
  }

  std::optional<std::string> get_object(const std::string& bucket, const std::string& key) const {
    auto [out, code] = run_command(command("get", "--bucket " + shell_quote(bucket) + " --key " + shell_quote(key)));
    if (code == 3) return std::nullopt;
    if (code != 0) throw std::runtime_error("moto_seed.py get failed; see " + log_.string());
    return out;
  }

  std::vector<std::string> list_keys(const std::string& bucket) const {
    auto json = boost::json::parse(seed("list", "--bucket " + shell_quote(bucket)));
    std::vector<std::string> keys;
    for (const auto& key : json.as_array()) keys.emplace_back(key.as_string());
    return keys;
  }

 private:
  static std::string script() { return std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/moto_seed.py"; }

  std::string command(const std::string& verb, const std::string& args) const {
    std::string c = "python3 " + shell_quote(script()) + " " + verb + " --endpoint " + shell_quote(endpoint());
    if (options_.tls) c += " --ca " + shell_quote(certificates_->ca_cert.string());
    if (verb != "setup")
      c += " --key-id " + shell_quote(credentials_.access_key_id) + " --secret " +
           shell_quote(credentials_.secret_access_key);
    return c + " " + args + " 2>>" + shell_quote(log_.string());
  }

  std::string seed(const std::string& verb, const std::string& args) const {
    auto [out, code] = run_command(command(verb, args));
    if (code != 0) throw std::runtime_error("moto_seed.py " + verb + " failed; see " + log_.string());
    return out;
  }

  MotoOptions options_;
  std::string admin_key_id_, admin_secret_;  // IAM administrator, for revoke_access_key()
  std::filesystem::path dir_, log_;
  int port_ = 0;
  std::optional<TestCertificates> certificates_;
  Server server_;
  MotoCredentials credentials_;
};

}  // namespace test_support
