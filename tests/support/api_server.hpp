#pragma once
// The test Kubernetes API server (tests/apiserver/apiserver.py) as a fixture: started over TLS with a
// CA made at test time and one accepted bearer token, killed when the fixture goes out of scope.
// Also writes a kubeconfig for kubectl and `stowage run --kubeconfig`, and drives /__control.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

#include "common/http_client.hpp"
#include "kube/client_config.hpp"
#include "support/process.hpp"

namespace test_support {

inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("stowage-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

struct TestApiServer {
  std::filesystem::path dir;
  TestCertificates certs;
  std::string token;
  int port = free_port();
  std::filesystem::path log;
  Server proc;

  TestApiServer(const std::filesystem::path& work_dir, std::string bearer_token,
                std::vector<std::string> extra_args = {})
      : dir(work_dir),
        certs(make_certificates(work_dir / "certs")),
        token(std::move(bearer_token)),
        log(work_dir / "apiserver.log") {
    std::vector<std::string> argv{"python3",      std::string(STOWAGE_SOURCE_DIR) + "/tests/apiserver/apiserver.py",
                                  "--port",       std::to_string(port),
                                  "--cert",       certs.server_cert.string(),
                                  "--key",        certs.server_key.string(),
                                  "--token",      token};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    proc = Server::start(argv, log);
    proc.wait_for_port(port, log);
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port); }

  // What a kubeconfig for this server gives the API client: its URL, its CA and the token
  // (another token, to test a refused one, when given).
  stowage::kube::ClientConfig client_config(const std::string& bearer_token = "") const {
    stowage::kube::ClientConfig c;
    c.server = stowage::kube::parse_server_url(url(), true).value();
    c.ca_pem = certs.ca_pem();
    c.bearer_token = bearer_token.empty() ? token : bearer_token;
    return c;
  }

  // One blocking HTTPS exchange on a private reactor (for /__control and /__stats, which need no token).
  stowage::http::Response call(const std::string& method, const std::string& target, const std::string& body = "") const {
    boost::asio::io_context io;
    stowage::http::Client client(io.get_executor());
    stowage::http::Request r{method, target, {{"Content-Type", "application/json"}}, body};
    auto origin = stowage::http::Url::parse(url()).value();
    auto f = boost::asio::co_spawn(io, client.send(origin, stowage::http::TlsSettings(certs.ca_pem()), r),
                                   boost::asio::use_future);
    io.run();
    auto res = f.get();
    if (!res.ok()) throw std::runtime_error("test API server " + target + ": " + res.error().message);
    return res.value();
  }
  // POST /__control {...}; throws unless the server says 200.
  void control(const boost::json::value& body) const {
    auto r = call("POST", "/__control", boost::json::serialize(body));
    if (r.status != 200) throw std::runtime_error("/__control answered " + std::to_string(r.status) + ": " + r.body);
  }
  boost::json::value stats() const { return boost::json::parse(call("GET", "/__stats").body); }

  // A kubeconfig naming this server, its CA file and the token; `namespace_` is the context's namespace.
  std::filesystem::path write_kubeconfig(const std::string& namespace_ = "default") const {
    auto path = dir / "kubeconfig";
    std::ofstream out(path, std::ios::trunc);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        << "clusters:\n- name: test\n  cluster:\n    server: " << url()
        << "\n    certificate-authority: " << certs.ca_cert.string() << "\n"
        << "users:\n- name: test\n  user:\n    token: " << token << "\n"
        << "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: " << namespace_
        << "\n";
    return path;
  }

  // A kubeconfig at dir/`file_name` for this server whose user has exactly `user_fields` (kubeconfig
  // field -> value, e.g. {"username", "u"}, {"password", "p"} or {"client-certificate-data", base64}),
  // for credentials other than the admin token. Values are written as YAML double-quoted strings.
  std::filesystem::path write_kubeconfig_for_user(const std::string& file_name,
                                                  const std::map<std::string, std::string>& user_fields,
                                                  const std::string& namespace_ = "default") const {
    auto quoted = [](const std::string& v) {
      std::string q = "\"";
      for (char c : v) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
      }
      return q + "\"";
    };
    auto path = dir / file_name;
    std::ofstream out(path, std::ios::trunc);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        << "clusters:\n- name: test\n  cluster:\n    server: " << url()
        << "\n    certificate-authority: " << certs.ca_cert.string() << "\n"
        << "users:\n- name: test\n  user:\n";
    for (const auto& [field, value] : user_fields) out << "    " << field << ": " << quoted(value) << "\n";
    if (user_fields.empty()) out << "    {}\n";
    out << "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: " << namespace_
        << "\n";
    return path;
  }

  // kubectl against this server (no validation, a fresh discovery cache); returns exit status and output.
  std::pair<int, std::string> kubectl(const std::string& args) const { return kubectl_with(dir / "kubeconfig", args); }

  // kubectl with another kubeconfig (e.g. one from write_kubeconfig_for_user).
  std::pair<int, std::string> kubectl_with(const std::filesystem::path& kubeconfig, const std::string& args) const {
    std::string cmd = "KUBECACHEDIR='" + (dir / "kubecache").string() + "' kubectl --kubeconfig '" +
                      kubeconfig.string() + "' " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return {-1, "popen failed"};
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  }
};

}  // namespace test_support
