#pragma once
// Test support: tests/servers/azure_token_server.py on a free loopback port, as a Microsoft Entra
// token endpoint (client credentials with a federated assertion or a client secret) or a managed
// identity (IMDS) endpoint. It checks tenant, client id, grant type, scope and the assertion (the
// content of the federated token file) or the secret, and issues JWTs Azurite's `--oauth basic`
// accepts, expiring after `lifetime_seconds`.
#include <boost/json.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "support/moto_server.hpp"  // run_command, stopped_with_parent
#include "support/process.hpp"

namespace test_support {

struct AzureTokenServerOptions {
  std::string mode;                          // "entra", "imds"
  std::filesystem::path assertion_file;      // entra: the federated token it expects
  std::filesystem::path client_secret_file;  // entra: the client secret it expects
  int lifetime_seconds = 3600;
  std::string tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  std::string client_id = "0b9f2d6e-5a1c-4f5e-9b0e-3c2d1e0f9a8b";
};

class AzureTokenServer {
 public:
  AzureTokenServer(const std::filesystem::path& dir, AzureTokenServerOptions options)
      : options_(std::move(options)), port_(free_port()), log_(dir / ("azure-" + options_.mode + ".log")) {
    std::vector<std::string> argv{"python3",
                                  std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/azure_token_server.py",
                                  "--mode",
                                  options_.mode,
                                  "--port",
                                  std::to_string(port_),
                                  "--tenant",
                                  options_.tenant,
                                  "--client-id",
                                  options_.client_id,
                                  "--lifetime",
                                  std::to_string(options_.lifetime_seconds)};
    if (!options_.assertion_file.empty()) argv.insert(argv.end(), {"--assertion-file", options_.assertion_file.string()});
    if (!options_.client_secret_file.empty())
      argv.insert(argv.end(), {"--client-secret-file", options_.client_secret_file.string()});
    server_ = Server::start(stopped_with_parent(argv), log_);
    server_.wait_for_port(port_, log_);
  }
  ~AzureTokenServer() { server_.stop(); }
  AzureTokenServer(const AzureTokenServer&) = delete;
  AzureTokenServer& operator=(const AzureTokenServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& tenant() const { return options_.tenant; }
  const std::string& client_id() const { return options_.client_id; }
  const std::filesystem::path& log() const { return log_; }

  int exchanges() const { return stat("exchanges"); }
  int refused() const { return stat("refused"); }

 private:
  int stat(const char* name) const {
    auto [out, code] = run_command("curl -sf " + url() + "/stats");
    if (code != 0) throw std::runtime_error("azure_token_server.py /stats failed; see " + log_.string());
    return static_cast<int>(boost::json::parse(out).at(name).as_int64());
  }

  AzureTokenServerOptions options_;
  int port_;
  std::filesystem::path log_;
  Server server_;
};

}  // namespace test_support
