#pragma once
// Test support: Azurite 3.37 (Microsoft's Azure Storage emulator, blob service only) on a free
// loopback port, with its data in a fresh directory, optionally over TLS with a test CA, and then
// optionally with OAuth (`--oauth basic`: bearer tokens are accepted when their aud, iss, nbf and exp
// are right; Azurite does not check their signature; Shared Key keeps working).
//
// Azurite comes from tests/servers (package.json + package-lock.json): install it with
//   npm ci --prefix tests/servers
// It verifies Shared Key and SAS signatures of its development account (devstoreaccount1, whose
// well-known key is in azure_auth.hpp); it is reached path-style:
// http(s)://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB.
//
// Side requests (creating containers, putting and listing blobs behind the backend's back) are
// signed with the project's own Shared Key signer and sent with the project's HTTP client on a
// private io_context, so the harness needs nothing else. SAS tokens for the SAS tests are account
// SAS tokens (azure::account_sas_token, Azure's account-SAS string to sign for version 2020-12-06+).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "storage/azure_auth.hpp"
#include "storage/azure_xml.hpp"
#include "common/http_client.hpp"
#include "support/process.hpp"

namespace test_support {

class AzuriteServer {
 public:
  static std::filesystem::path executable() {
    return std::filesystem::path(STOWAGE_SOURCE_DIR) / "tests/servers/node_modules/.bin/azurite-blob";
  }

  explicit AzuriteServer(bool tls = false, bool oauth = false) : tls_(tls || oauth) {
    if (!std::filesystem::exists(executable()))
      throw std::runtime_error("Azurite is not installed at " + executable().string() +
                               ": run `npm ci --prefix tests/servers` in the source tree");
    std::string pattern = (std::filesystem::temp_directory_path() / "stowage-azurite-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    std::filesystem::create_directories(dir_ / "data");
    log_ = dir_ / "azurite.log";
    std::vector<std::string> argv = {executable().string(), "--blobHost", "127.0.0.1",
                                     "--blobPort",         "0",          "--location",
                                     (dir_ / "data").string(), "--silent", "--disableTelemetry"};
    if (tls_) {
      certificates_ = make_certificates(dir_ / "certs");
      argv.insert(argv.end(), {"--cert", certificates_->server_cert.string(), "--key",
                               certificates_->server_key.string()});
    }
    if (oauth) argv.insert(argv.end(), {"--oauth", "basic"});
    // free_port() can race with another process; try a few ports before giving up.
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      argv[4] = std::to_string(port_);
      server_.emplace(Server::start(argv, log_));
      try {
        server_->wait_for_port(port_, log_, std::chrono::seconds(60));
        return;
      } catch (const std::exception&) {
        server_.reset();
        if (attempt == 2) {
          std::string log = read_text(log_);
          cleanup();
          throw std::runtime_error("Azurite did not start; its log:\n" + log);
        }
      }
    }
  }
  AzuriteServer(const AzuriteServer&) = delete;
  AzuriteServer& operator=(const AzuriteServer&) = delete;
  ~AzuriteServer() {
    server_.reset();
    cleanup();
  }

  int port() const { return port_; }
  std::string account() const { return std::string(stowage::storage::azure::kDevelopmentAccount); }
  std::string key() const { return std::string(stowage::storage::azure::kDevelopmentKey); }
  std::string endpoint() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + "/" + account();
  }
  std::string connection_string() const {
    return "DefaultEndpointsProtocol=" + std::string(tls_ ? "https" : "http") + ";AccountName=" + account() +
           ";AccountKey=" + key() + ";BlobEndpoint=" + endpoint() + ";";
  }
  std::string ca_pem() const { return certificates_ ? certificates_->ca_pem() : std::string(); }
  std::filesystem::path ca_file() const { return certificates_ ? certificates_->ca_cert : std::filesystem::path(); }
  stowage::http::TlsSettings tls() const { return {ca_pem(), false, ""}; }

  // An account SAS for the blob service (container and object resources), valid for a day.
  std::string account_sas(const std::string& permissions = "rwdlc") const {
    stowage::storage::azure::AccountSasParams p;
    p.permissions = permissions;
    p.services = "b";
    p.resource_types = "co";
    p.expiry = iso8601(std::chrono::system_clock::now() + std::chrono::hours(24));
    return stowage::storage::azure::account_sas_token(shared_key(), p);
  }

  // A request signed with the development key, sent synchronously. `path` is below the account.
  stowage::http::Response request(std::string method, const std::string& path,
                                           std::vector<std::pair<std::string, std::string>> headers = {},
                                           std::string body = {}) const {
    namespace http = stowage::http;
    http::Request r{std::move(method), "/" + account() + path, std::move(headers), std::move(body)};
    r.headers.emplace_back("x-ms-date", stowage::storage::azure::rfc1123_date(std::chrono::system_clock::now()));
    r.headers.emplace_back("x-ms-version", std::string(stowage::storage::azure::kApiVersion));
    shared_key().sign(r);
    auto origin = http::Url::parse(endpoint());
    if (!origin.ok()) throw std::runtime_error(origin.error());
    boost::asio::io_context io;
    http::Client client(io.get_executor());
    auto op = [&]() -> boost::asio::awaitable<std::optional<http::HttpResult>> {
      co_return co_await client.send(origin.value(), tls(), r);
    };
    auto future = boost::asio::co_spawn(io, op(), boost::asio::use_future);
    io.run();
    auto result = future.get();
    if (!result->ok()) throw std::runtime_error("Azurite request failed: " + result->error().message);
    return result->value();
  }

  void create_container(const std::string& name) const {
    auto r = request("PUT", "/" + name + "?restype=container");
    if (r.status != 201 && r.status != 409)
      throw std::runtime_error("cannot create container " + name + ": HTTP " + std::to_string(r.status));
  }

  void put_blob(const std::string& container, const std::string& name, const std::string& body) const {
    auto r = request("PUT", "/" + container + "/" + stowage::http::uri_encode(name, true),
                     {{"x-ms-blob-type", "BlockBlob"}, {"Content-Type", "application/octet-stream"}}, body);
    if (r.status != 201) throw std::runtime_error("cannot put blob " + name + ": HTTP " + std::to_string(r.status));
  }

  // (status, body) of a blob.
  std::pair<int, std::string> get_blob(const std::string& container, const std::string& name) const {
    auto r = request("GET", "/" + container + "/" + stowage::http::uri_encode(name, true));
    return {r.status, r.body};
  }

  std::vector<std::string> list_blobs(const std::string& container, const std::string& prefix = {}) const {
    std::vector<std::string> names;
    std::string marker;
    do {
      std::string path = "/" + container + "?restype=container&comp=list&prefix=" +
                         stowage::http::uri_encode(prefix, false);
      if (!marker.empty()) path += "&marker=" + stowage::http::uri_encode(marker, false);
      auto r = request("GET", path);
      if (r.status != 200) throw std::runtime_error("cannot list " + container + ": HTTP " + std::to_string(r.status));
      auto page = stowage::storage::azure::parse_blob_list(r.body);
      if (!page.ok()) throw std::runtime_error(page.error());
      names.insert(names.end(), page.value().names.begin(), page.value().names.end());
      marker = page.value().next_marker;
    } while (!marker.empty());
    return names;
  }

 private:
  static std::string iso8601(std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }

  stowage::storage::azure::SharedKey shared_key() const {
    auto k = stowage::storage::azure::SharedKey::make(account(), key());
    if (!k.ok()) throw std::runtime_error(k.error());
    return k.value();
  }

  void cleanup() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  bool tls_ = false;
  std::filesystem::path dir_, log_;
  std::optional<TestCertificates> certificates_;
  int port_ = 0;
  std::optional<Server> server_;  // Server can be moved from, not assigned to
};

}  // namespace test_support
