#pragma once
// Test support: tests/servers/aws_identity_server.py on a free loopback port, as an STS
// (AssumeRoleWithWebIdentity), a container-credentials endpoint or an IMDSv2 server. Each checks the
// web identity token, the Authorization header or the IMDS session token, and hands out temporary
// credentials it obtained from `moto`'s signed AssumeRole, so moto verifies key, secret and session
// token on every S3 request signed with them.
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/moto_server.hpp"
#include "support/process.hpp"

namespace test_support {

struct AwsIdentityServerOptions {
  std::string mode;                      // "sts", "container", "imds"
  std::filesystem::path token_file;      // sts: the expected web identity token; container: the Authorization value
  int lifetime_seconds = 3600;           // the Expiration it announces, from now
  std::string path = "/v1/credentials";  // container
};

class AwsIdentityServer {
 public:
  AwsIdentityServer(const MotoServer& moto, const std::filesystem::path& dir, AwsIdentityServerOptions options)
      : port_(free_port()), log_(dir / ("aws-" + options.mode + ".log")) {
    auto [key, secret] = moto.admin_credentials();
    std::vector<std::string> argv{
        "python3",    std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/aws_identity_server.py",
        "--mode",     options.mode,
        "--port",     std::to_string(port_),
        "--moto",     moto.endpoint(),
        "--key-id",   key,
        "--secret",   secret,
        "--role-arn", MotoServer::role_arn(),
        "--lifetime", std::to_string(options.lifetime_seconds),
        "--path",     options.path};
    if (!options.token_file.empty()) argv.insert(argv.end(), {"--token-file", options.token_file.string()});
    server_ = Server::start(stopped_with_parent(argv), log_);
    server_.wait_for_port(port_, log_);
  }
  ~AwsIdentityServer() { server_.stop(); }
  AwsIdentityServer(const AwsIdentityServer&) = delete;
  AwsIdentityServer& operator=(const AwsIdentityServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::filesystem::path& log() const { return log_; }

  // Credentials handed out, and requests refused, so far.
  int exchanges() const { return stat("exchanges"); }
  int refused() const { return stat("refused"); }

 private:
  int stat(const char* name) const {
    auto [out, code] = run_command("curl -sf " + url() + "/stats");
    if (code != 0) throw std::runtime_error("aws_identity_server.py /stats failed; see " + log_.string());
    return static_cast<int>(boost::json::parse(out).at(name).as_int64());
  }

  int port_;
  std::filesystem::path log_;
  Server server_;
};

}  // namespace test_support
