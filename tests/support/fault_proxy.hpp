#pragma once
// Test support: tests/servers/fault_proxy.py in front of a real server (moto, Azurite, the GCS test
// server). It forwards every request unchanged (the Host header included, which SigV4 signs) until
// a fault is armed with inject(): 503s, SlowDown, canned answers, TCP resets, truncated answers,
// delays. See the script's docstring for the modes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "support/process.hpp"

namespace test_support {

// A control request to the proxy; anything but 200 is a test set-up failure.
inline std::string loopback_http(int port, const std::string& method, const std::string& path,
                                 const std::string& body = "") {
  auto [status, reply] = plain_http(port, method, path, body);
  if (status != 200)
    throw std::runtime_error("fault proxy control " + path + " failed: HTTP " + std::to_string(status) + " " +
                             reply.substr(0, 200));
  return reply;
}

class FaultProxy {
 public:
  // `upstream`: "http://127.0.0.1:PORT" of the real server.
  explicit FaultProxy(const std::string& upstream) {
    std::string pattern = (std::filesystem::temp_directory_path() / "stowage-proxy-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    log_ = dir_ / "fault_proxy.log";
    port_ = free_port();
    server_ = Server::start({"python3", std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/fault_proxy.py", "--port",
                             std::to_string(port_), "--upstream", upstream},
                            log_);
    server_.wait_for_port(port_, log_);
  }
  ~FaultProxy() {
    server_.stop();
    std::error_code ec;
    if (std::getenv("STOWAGE_KEEP_TEST_LOGS") == nullptr) std::filesystem::remove_all(dir_, ec);
  }
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Arms faults, e.g. inject(R"({"mode": "slowdown", "count": 3})"); replaces any armed fault.
  void inject(const std::string& fault_json) const { loopback_http(port_, "POST", "/__fault", fault_json); }
  void reset() const { loopback_http(port_, "POST", "/__reset"); }

  // The requests seen since the last reset: [{"method","path","host","scope","fault","time","seq"}].
  boost::json::array requests() const { return boost::json::parse(loopback_http(port_, "GET", "/__log")).as_array(); }

 private:
  std::filesystem::path dir_, log_;
  int port_ = 0;
  Server server_;
};

}  // namespace test_support
