#pragma once
// Test support: tests/servers/http_test_server.py on a free loopback port (HTTP, HTTPS, mutual TLS),
// and small helpers for running one coroutine to completion in a test.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "common/http_client.hpp"
#include "support/process.hpp"

namespace test_support {

struct HttpTestServer {
  int port = free_port();
  std::filesystem::path log;
  Server proc;
  HttpTestServer(const std::filesystem::path& dir, const TestCertificates* certs = nullptr, bool client_certs = false)
      : log(dir / "server.log") {
    std::vector<std::string> argv{"python3", std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/http_test_server.py",
                                  "--port", std::to_string(port)};
    if (certs) {
      argv.insert(argv.end(), {"--cert", certs->server_cert.string(), "--key", certs->server_key.string()});
      if (client_certs) argv.insert(argv.end(), {"--client-ca", certs->ca_cert.string()});
    }
    proc = Server::start(argv, log);
    proc.wait_for_port(port, log);
  }
  stowage::http::Url url(const std::string& scheme = "http") const {
    return stowage::http::Url::parse(scheme + "://127.0.0.1:" + std::to_string(port)).value();
  }
};

inline std::filesystem::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("stowage-http-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Runs one coroutine on `io` until it completes and returns its result.
template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
  io.restart();
  io.run();
  return f.get();
}

inline stowage::http::Request get(const std::string& target) { return stowage::http::Request{"GET", target, {}, ""}; }

}  // namespace test_support
