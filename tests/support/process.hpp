#pragma once
// Test support: start the real servers the backend tests talk to (moto, Azurite, the GCS test
// server, the fault proxy) as child processes on loopback, on free ports, and stop them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace test_support {

// A port that was free a moment ago (bind to 0, read it back, close).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// One blocking HTTP/1.0 exchange with a test server's control port on 127.0.0.1; returns {status, body}.
// (Only for test set-up and inspection: the product's own client is what the tests exercise.)
inline std::pair<int, std::string> plain_http(int port, const std::string& method, const std::string& target,
                                              const std::string& body = "") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  std::string request = method + " " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                        "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  for (std::size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto space = reply.find(' ');
  auto blank = reply.find("\r\n\r\n");
  if (space == std::string::npos || blank == std::string::npos)
    throw std::runtime_error("bad HTTP reply from 127.0.0.1:" + std::to_string(port));
  return {std::stoi(reply.substr(space + 1, 3)), reply.substr(blank + 4)};
}

// A child process in its own process group, killed (group and all) when this goes out of scope.
class Server {
 public:
  Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Server& operator=(Server&& o) noexcept {
    if (this != &o) {
      stop();
      pid_ = o.pid_;
      o.pid_ = -1;
    }
    return *this;
  }
  ~Server() { stop(); }

  // argv[0] is looked up on PATH. Output goes to `log`. Extra environment variables are added.
  static Server start(const std::vector<std::string>& argv, const std::filesystem::path& log,
                      const std::map<std::string, std::string>& env = {}) {
    Server s;
    s.pid_ = ::fork();
    if (s.pid_ == 0) {
      ::setpgid(0, 0);
      // Gone with the test process even when it crashes (SIGTERM: wrappers pass it on to their child).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      std::vector<std::string> copy = argv;
      for (auto& a : copy) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    return s;
  }

  // Waits until the port accepts connections (or throws after `limit`, naming the log to read).
  void wait_for_port(int port, const std::filesystem::path& log,
                     std::chrono::milliseconds limit = std::chrono::seconds(60)) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (port_open(port)) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_)
        throw std::runtime_error("server exited before listening on port " + std::to_string(port) + "; see " +
                                 log.string());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("server did not listen on port " + std::to_string(port) + " in time; see " + log.string());
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A self-signed CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI.
struct TestCertificates {
  std::filesystem::path dir, ca_cert, server_cert, server_key;
  std::string ca_pem() const;
  // A client certificate (CN=stowage-client) signed by the same CA, for mutual TLS: made on demand.
  std::pair<std::string, std::string> client_cert_and_key() const;
};

inline std::string read_text(const std::filesystem::path& p) {
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) return {};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

inline std::string TestCertificates::ca_pem() const { return read_text(ca_cert); }

inline TestCertificates make_certificates(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  TestCertificates c{dir, dir / "ca.pem", dir / "server.pem", dir / "server-key.pem"};
  std::string d = dir.string();
  std::string script =
      "set -e; cd '" + d + "'; "
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=stowage test CA' -keyout ca-key.pem -out ca.pem "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; "
      "openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout server-key.pem -out server.csr 2>/dev/null; "
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' "
      "> ext.cnf; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile ext.cnf "
      "-out server.pem 2>/dev/null";
  if (std::system(("bash -c \"" + script + "\"").c_str()) != 0)
    throw std::runtime_error("openssl could not make test certificates in " + d);
  return c;
}

inline std::pair<std::string, std::string> TestCertificates::client_cert_and_key() const {
  std::string d = dir.string();
  std::string script = "cd '" + d + "' && openssl req -newkey rsa:2048 -nodes -subj '/CN=stowage-client' "
                       "-keyout client-key.pem -out client.csr 2>/dev/null && openssl x509 -req -in client.csr "
                       "-CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -out client.pem 2>/dev/null";
  if (std::system(script.c_str()) != 0) throw std::runtime_error("openssl could not make a client certificate");
  return {read_text(dir / "client.pem"), read_text(dir / "client-key.pem")};
}

}  // namespace test_support
