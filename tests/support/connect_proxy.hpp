#pragma once
// Test support: tests/servers/connect_proxy.py, a forward proxy that tunnels with CONNECT, on a free
// loopback port, optionally requiring a user and password (407 otherwise), refusing ports, or
// misbehaving; it counts the tunnels it opened (stats()). Killed when this goes out of scope.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace test_support {

struct ConnectProxyStats {
  std::int64_t tunnels = 0;  // opened so far
  std::int64_t open = 0;     // open now
  std::int64_t refused = 0;  // CONNECTs answered with an error
  std::vector<std::string> connects;  // "HOST:PORT with-auth" / "HOST:PORT without-auth", in order
};

struct ConnectProxyOptions {
  std::optional<std::pair<std::string, std::string>> credentials;  // required user and password
  std::vector<int> allowed_ports;                                  // empty = any port
  std::string misbehave;                                           // "", "close" or "silent"
  std::vector<std::pair<std::string, std::string>> hosts;          // the proxy resolves NAME to ADDRESS
};

class ConnectProxy {
 public:
  explicit ConnectProxy(const std::filesystem::path& dir, ConnectProxyOptions options = {})
      : log_(dir / ("connect_proxy-" + std::to_string(port_) + ".log")) {
    std::vector<std::string> argv{"python3", std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/connect_proxy.py",
                                  "--port", std::to_string(port_)};
    if (options.credentials)
      argv.insert(argv.end(), {"--user", options.credentials->first, "--password", options.credentials->second});
    for (int p : options.allowed_ports) argv.insert(argv.end(), {"--allow-port", std::to_string(p)});
    if (!options.misbehave.empty()) argv.insert(argv.end(), {"--misbehave", options.misbehave});
    for (const auto& [name, address] : options.hosts) argv.insert(argv.end(), {"--map", name + "=" + address});
    server_ = Server::start(argv, log_);
    server_.wait_for_port(port_, log_);
  }

  int port() const { return port_; }
  // "http://127.0.0.1:PORT", or with user info when given: what a kubeconfig's proxy-url holds.
  std::string url(const std::string& userinfo = "") const {
    return "http://" + (userinfo.empty() ? "" : userinfo + "@") + "127.0.0.1:" + std::to_string(port_);
  }

  ConnectProxyStats stats() const {
    auto [status, body] = plain_http(port_, "GET", "/__stats");
    if (status != 200) throw std::runtime_error("connect proxy /__stats answered " + std::to_string(status));
    ConnectProxyStats out;
    std::istringstream lines(body);
    for (std::string name, rest; lines >> name && std::getline(lines, rest);) {
      rest.erase(0, rest.find_first_not_of(' '));
      if (name == "tunnels") out.tunnels = std::stoll(rest);
      else if (name == "open") out.open = std::stoll(rest);
      else if (name == "refused") out.refused = std::stoll(rest);
      else if (name == "connect") out.connects.push_back(rest);
    }
    return out;
  }
  std::int64_t tunnels() const { return stats().tunnels; }

  void stop() { server_.stop(); }

 private:
  int port_ = free_port();
  std::filesystem::path log_;
  Server server_;
};

}  // namespace test_support
