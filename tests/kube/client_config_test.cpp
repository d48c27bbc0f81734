// Client configuration: kubeconfig fields, client-go's merge rules across files, --context,
// in-cluster loading, auto-detection order, every error's wording, and that no secret ever
// reaches a message. Plus one kubeconfig written by the real kubectl.
#include "kube/client_config.hpp"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include "common/crypto.hpp"

using namespace stowage;
using namespace stowage::kube;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(STOWAGE_SOURCE_DIR) + "/tests/kube/data/client_config";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string b64_of(const std::string& path) { return crypto::base64_encode(slurp(path)); }

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "stowage-client-config-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path(const std::string& relative = "") const {
    return relative.empty() ? path_.string() : (path_ / relative).string();
  }
  std::string write(const std::string& relative, const std::string& content) const {
    fs::path p = path_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

 private:
  fs::path path_;
};

Result<ClientConfig, ConfigError> load_file(const std::string& path, const std::string& context = "") {
  LoadOptions options;
  options.kubeconfig = path;
  options.context = context;
  return load_client_config(options, Environment{});
}

ClientConfig must_load(const std::string& path, const std::string& context = "") {
  auto config = load_file(path, context);
  INFO((config ? std::string() : config.error().to_string()));
  REQUIRE(config.ok());
  return config.value();
}

ConfigError must_fail(const std::string& path, const std::string& context = "") {
  auto config = load_file(path, context);
  REQUIRE_FALSE(config.ok());
  return config.error();
}

// A one-cluster, one-user, one-context kubeconfig around the given cluster and user bodies
// (each an indented YAML block for `cluster:` / `user:`).
std::string kubeconfig(const std::string& cluster_body, const std::string& user_body,
                       const std::string& context_extra = "") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
         "clusters:\n- name: c\n  cluster:\n" +
         cluster_body + "users:\n- name: u\n  user:\n" + user_body +
         "contexts:\n- name: dev\n  context:\n    cluster: c\n    user: u\n" + context_extra;
}

const std::string kServer = "    server: https://api.example:6443\n";
const std::string kToken = "    token: t0ken-value\n";

// Every secret of a configuration that must never show in a message.
void require_absent(const std::string& text, std::initializer_list<std::string> secrets) {
  for (const std::string& secret : secrets) {
    INFO("secret: " << secret << "\ntext: " << text);
    CHECK(text.find(secret) == std::string::npos);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fields.

TEST_CASE("every cluster field is read") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig("    server: https://api.example:6443/k8s/clusters/c-1/\n"
                                                    "    certificate-authority-data: " +
                                                        b64_of(kData + "/ca.crt") +
                                                        "\n"
                                                        "    tls-server-name: api.internal\n"
                                                        "    proxy-url: http://proxy.example:3128\n"
                                                        "    disable-compression: true\n",
                                                    kToken));
  ClientConfig c = must_load(path);
  CHECK(c.server.scheme == "https");
  CHECK(c.server.host == "api.example");
  CHECK(c.server.port == 6443);
  CHECK(c.server.port_explicit);
  CHECK(c.server.path == "/k8s/clusters/c-1");
  CHECK(c.server.to_string() == "https://api.example:6443/k8s/clusters/c-1");
  CHECK(c.ca_pem == slurp(kData + "/ca.crt"));
  CHECK(c.ca_file.empty());
  CHECK_FALSE(c.insecure_skip_tls_verify);
  CHECK(c.tls_server_name == "api.internal");
  CHECK(c.proxy_url == "http://proxy.example:3128");
  CHECK(c.disable_compression);
  CHECK(c.bearer_token == "t0ken-value");
  CHECK(c.token_file.empty());
  CHECK(c.namespace_ == "default");
  CHECK(c.source == path);
  CHECK(c.context == "dev");
  CHECK(c.user == "u");
  CHECK(c.warnings.empty());
}

TEST_CASE("certificate-authority is a file read at load, relative to the kubeconfig") {
  TempDir dir;
  dir.write("certs/ca.crt", slurp(kData + "/ca.crt"));
  std::string path = dir.write("config", kubeconfig(kServer + "    certificate-authority: certs/ca.crt\n", kToken));
  ClientConfig c = must_load(path);
  CHECK(c.ca_pem == slurp(kData + "/ca.crt"));
  CHECK(c.ca_file == dir.path("certs/ca.crt"));
}

TEST_CASE("certificate-authority-data wins over certificate-authority, with a warning") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig(kServer +
                                                        "    certificate-authority: /nonexistent/ca.crt\n"
                                                        "    certificate-authority-data: " +
                                                        b64_of(kData + "/ca.crt") + "\n",
                                                    kToken));
  ClientConfig c = must_load(path);  // the missing file is not even read
  CHECK(c.ca_pem == slurp(kData + "/ca.crt"));
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0] == path +
                             ": clusters[0].cluster.certificate-authority-data and "
                             "clusters[0].cluster.certificate-authority are both set; the -data field is used");
}

TEST_CASE("insecure-skip-tls-verify, also as YAML 1.1 'yes' the way kubectl reads it") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig(kServer + "    insecure-skip-tls-verify: yes\n", kToken));
  ClientConfig c = must_load(path);
  CHECK(c.insecure_skip_tls_verify);
  CHECK(c.ca_pem.empty());
}

TEST_CASE("a static token, and a token file that is re-read") {
  TempDir dir;
  SECTION("tokenFile: read at load (trimmed), re-read on demand, relative to the kubeconfig") {
    dir.write("secrets/token", "  first-token\n");
    std::string path = dir.write("config", kubeconfig(kServer, "    tokenFile: secrets/token\n"));
    ClientConfig c = must_load(path);
    CHECK(c.bearer_token == "first-token");
    CHECK(c.token_file == dir.path("secrets/token"));
    dir.write("secrets/token", "rotated-token\n");
    auto again = c.read_token_file();
    REQUIRE(again.ok());
    CHECK(again.value() == "rotated-token");
    dir.write("secrets/token", "\n");
    auto empty = c.read_token_file();
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error().to_string() == dir.path("secrets/token") + ": the token file is empty");
    fs::remove(dir.path("secrets/token"));
    auto gone = c.read_token_file();
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().to_string() == dir.path("secrets/token") + ": cannot read: No such file or directory");
  }
  SECTION("token and tokenFile: the token is used first and the file is kept for re-reading (client-go)") {
    std::string path = dir.write("config", kubeconfig(kServer, kToken + "    tokenFile: later.token\n"));
    ClientConfig c = must_load(path);  // later.token does not exist yet: not read at load
    CHECK(c.bearer_token == "t0ken-value");
    CHECK(c.token_file == dir.path("later.token"));
  }
  SECTION("a config without a token file says so") {
    std::string path = dir.write("config", kubeconfig(kServer, kToken));
    auto none = must_load(path).read_token_file();
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().message == "no token file is configured");
  }
}

TEST_CASE("client certificate and key, from data or from files") {
  TempDir dir;
  SECTION("data") {
    std::string path =
        dir.write("config", kubeconfig(kServer, "    client-certificate-data: " + b64_of(kData + "/client.crt") +
                                                    "\n    client-key-data: " + b64_of(kData + "/client.key") + "\n"));
    ClientConfig c = must_load(path);
    CHECK(c.client_certificate_pem == slurp(kData + "/client.crt"));
    CHECK(c.client_key_pem == slurp(kData + "/client.key"));
    CHECK(c.bearer_token.empty());
  }
  SECTION("files, relative to the kubeconfig") {
    dir.write("pki/client.crt", slurp(kData + "/client.crt"));
    dir.write("pki/client.key", slurp(kData + "/client.key"));
    std::string path = dir.write("config", kubeconfig(kServer,
                                                      "    client-certificate: pki/client.crt\n"
                                                      "    client-key: ./pki/../pki/client.key\n"));
    ClientConfig c = must_load(path);
    CHECK(c.client_certificate_pem == slurp(kData + "/client.crt"));
    CHECK(c.client_key_pem == slurp(kData + "/client.key"));
  }
  SECTION("data wins over files, with a warning") {
    std::string path = dir.write("config", kubeconfig(kServer,
                                                      "    client-certificate: /nonexistent/c.crt\n"
                                                      "    client-certificate-data: " +
                                                          b64_of(kData + "/client.crt") + "\n    client-key-data: " +
                                                          b64_of(kData + "/client.key") + "\n"));
    ClientConfig c = must_load(path);
    CHECK(c.client_certificate_pem == slurp(kData + "/client.crt"));
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0] == path +
                               ": users[0].user.client-certificate-data and users[0].user.client-certificate are "
                               "both set; the -data field is used");
  }
  SECTION("a certificate with a token") {
    std::string path = dir.write(
        "config", kubeconfig(kServer, kToken + "    client-certificate-data: " + b64_of(kData + "/client.crt") +
                                          "\n    client-key-data: " + b64_of(kData + "/client.key") + "\n"));
    ClientConfig c = must_load(path);
    CHECK(c.bearer_token == "t0ken-value");
    CHECK_FALSE(c.client_certificate_pem.empty());
  }
}

TEST_CASE("basic auth") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig(kServer, "    username: ann\n    password: pa55word\n"));
  ClientConfig c = must_load(path);
  CHECK(c.username == "ann");
  CHECK(c.password == "pa55word");
  CHECK(c.bearer_token.empty());
}

TEST_CASE("an exec plugin with every field") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig(kServer + "    extensions:\n"
                                                              "    - name: unrelated\n      extension: {a: 1}\n"
                                                              "    - name: client.authentication.k8s.io/exec\n"
                                                              "      extension: {audience: stowage, count: 2}\n",
                                                    "    exec:\n"
                                                    "      apiVersion: client.authentication.k8s.io/v1\n"
                                                    "      command: bin/get-token\n"
                                                    "      args: [--region, eu]\n"
                                                    "      env:\n      - {name: MODE, value: ci}\n"
                                                    "      - {name: EMPTY}\n"
                                                    "      interactiveMode: Always\n"
                                                    "      provideClusterInfo: true\n"
                                                    "      installHint: install get-token\n"));
  ClientConfig c = must_load(path);
  REQUIRE(c.exec);
  const ExecConfig& x = *c.exec;
  CHECK(x.api_version == "client.authentication.k8s.io/v1");
  CHECK(x.command == dir.path("bin/get-token"));  // it contains '/': relative to the kubeconfig
  CHECK(x.args == std::vector<std::string>{"--region", "eu"});
  REQUIRE(x.env.size() == 2);
  CHECK(x.env[0].name == "MODE");
  CHECK(x.env[0].value == "ci");
  CHECK(x.env[1].name == "EMPTY");
  CHECK(x.env[1].value.empty());
  CHECK(x.interactive_mode == "Always");
  CHECK(x.provide_cluster_info);
  CHECK(x.install_hint == "install get-token");
  CHECK(boost::json::serialize(x.cluster_config) == R"({"audience":"stowage","count":2})");
}

TEST_CASE("exec: a bare command is looked up in PATH, and v1beta1 defaults interactiveMode to IfAvailable") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig(kServer,
                                                    "    exec:\n"
                                                    "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                                                    "      command: aws\n"));
  ClientConfig c = must_load(path);
  REQUIRE(c.exec);
  CHECK(c.exec->command == "aws");
  CHECK(c.exec->interactive_mode == "IfAvailable");
  CHECK_FALSE(c.exec->provide_cluster_info);
  CHECK(c.exec->cluster_config.is_null());
}

TEST_CASE("the namespace comes from the context, else default") {
  TempDir dir;
  CHECK(must_load(dir.write("a", kubeconfig(kServer, kToken, "    namespace: backups\n"))).namespace_ == "backups");
  CHECK(must_load(dir.write("b", kubeconfig(kServer, kToken))).namespace_ == "default");
}

TEST_CASE("a context without a user is anonymous") {
  TempDir dir;
  std::string path = dir.write("config", "clusters:\n- name: c\n  cluster:\n" + kServer +
                                             "contexts:\n- name: dev\n  context: {cluster: c}\ncurrent-context: dev\n");
  ClientConfig c = must_load(path);
  CHECK(c.user.empty());
  CHECK(c.bearer_token.empty());
  CHECK(c.client_certificate_pem.empty());
  CHECK_FALSE(c.exec);
}

TEST_CASE("a kubeconfig written as JSON loads too") {
  TempDir dir;
  std::string path = dir.write("config.json",
                               R"({"apiVersion":"v1","kind":"Config","current-context":"dev",
          "clusters":[{"name":"c","cluster":{"server":"https://10.0.0.1"}}],
          "users":[{"name":"u","user":{"token":"abc"}}],
          "contexts":[{"name":"dev","context":{"cluster":"c","user":"u","namespace":"ns"}}]})");
  ClientConfig c = must_load(path);
  CHECK(c.server.to_string() == "https://10.0.0.1");
  CHECK(c.server.port == 443);
  CHECK(c.bearer_token == "abc");
  CHECK(c.namespace_ == "ns");
}

TEST_CASE("a plain-HTTP server gets no credentials, as with client-go") {
  TempDir dir;
  std::string path =
      dir.write("config", kubeconfig("    server: http://127.0.0.1:8080\n", kToken + "    tokenFile: /nonexistent\n"));
  ClientConfig c = must_load(path);
  CHECK(c.server.to_string() == "http://127.0.0.1:8080");
  CHECK(c.bearer_token.empty());
  CHECK(c.token_file.empty());
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0] ==
        "server http://127.0.0.1:8080 is plain HTTP: the credentials of user \"u\" are not sent (use https:// to "
        "send them)");
}

// ---------------------------------------------------------------------------------------------
// Server URLs.

TEST_CASE("server URLs: schemes, ports, IPv6, path prefixes, client-go's host:port form") {
  struct Row {
    const char* text;
    bool default_tls;
    const char* scheme;
    const char* host;
    int port;
    const char* path;
    const char* shown;
    const char* host_header;
  };
  const Row rows[] = {
      {"https://api.example", false, "https", "api.example", 443, "", "https://api.example", "api.example"},
      {"HTTPS://api.example:6443/", false, "https", "api.example", 6443, "", "https://api.example:6443",
       "api.example:6443"},
      {"http://localhost:8080", false, "http", "localhost", 8080, "", "http://localhost:8080", "localhost:8080"},
      {"http://localhost", false, "http", "localhost", 80, "", "http://localhost", "localhost"},
      {"https://[fd00::1]:6443", false, "https", "fd00::1", 6443, "", "https://[fd00::1]:6443", "[fd00::1]:6443"},
      {"https://[::1]", false, "https", "::1", 443, "", "https://[::1]", "[::1]"},
      {"https://rancher.example/k8s/clusters/c-1//?x=1#f", false, "https", "rancher.example", 443, "/k8s/clusters/c-1",
       "https://rancher.example/k8s/clusters/c-1", "rancher.example"},
      {"10.0.0.1:6443", true, "https", "10.0.0.1", 6443, "", "https://10.0.0.1:6443", "10.0.0.1:6443"},
      {"10.0.0.1:6443", false, "http", "10.0.0.1", 6443, "", "http://10.0.0.1:6443", "10.0.0.1:6443"},
      {"localhost", true, "https", "localhost", 443, "", "https://localhost", "localhost"},
  };
  for (const Row& row : rows) {
    INFO(row.text);
    auto url = parse_server_url(row.text, row.default_tls);
    REQUIRE(url.ok());
    CHECK(url.value().scheme == row.scheme);
    CHECK(url.value().host == row.host);
    CHECK(url.value().port == row.port);
    CHECK(url.value().path == row.path);
    CHECK(url.value().to_string() == row.shown);
    CHECK(url.value().host_header() == row.host_header);
  }
  CHECK(parse_server_url("https://[fd00::1]", false).value().authority() == "[fd00::1]:443");
  CHECK(parse_server_url("https://h", false).value().authority() == "h:443");

  struct Bad {
    const char* text;
    const char* problem;
  };
  const Bad bad[] = {
      {"", "is empty"},
      {"ftp://h", "has the scheme \"ftp\", which is not supported: write https://HOST:PORT"},
      {"https://", "has no host"},
      {"https://:6443", "has no host"},
      {"https://h:0", "has the port \"0\", which is not a number from 1 to 65535"},
      {"https://h:65536", "has the port \"65536\", which is not a number from 1 to 65535"},
      // Not quoted: "user:password" written without "@host" reads as a host and a port.
      {"https://h:https", "has a port that is not a number from 1 to 65535"},
      {"https://h:99999", "has the port \"99999\", which is not a number from 1 to 65535"},
      {"https://h:", "has ':' but no port after it: write HOST:PORT, or leave out the ':'"},
      {"10.0.0.1:", "has ':' but no port after it: write HOST:PORT, or leave out the ':'"},
      {"https://h\r\nX-Injected: yes", "contains a control character (at byte 9)"},
      {"https://h /k8s", "contains a space (at byte 9)"},
      {"https://[fd00::g]", "has a bracketed host that is not an IPv6 address"},
      {"https://api.exa%6dple", "has a host name with characters other than letters, digits, '-', '.' and '_'"},
      {"https://fd00::1:6443", "has an IPv6 address without brackets: write https://[ADDRESS]:PORT"},
      {"https://[fd00::1", "has an IPv6 address without the closing ']'"},
      {"https://[fd00::1]x", "has text after the IPv6 address"},
      {"https://user:pw@h", "must not contain a user name or password: put credentials under users[].user"},
      {"h:6443/prefix", "is neither a URL nor a HOST:PORT pair"},
  };
  for (const Bad& row : bad) {
    INFO(row.text);
    auto url = parse_server_url(row.text, true);
    REQUIRE_FALSE(url.ok());
    CHECK(url.error() == row.problem);
  }
}

TEST_CASE("a scheme-less server is https when TLS is configured, as client-go defaults it") {
  TempDir dir;
  std::string with_ca = dir.write(
      "a", kubeconfig("    server: 10.0.0.1:6443\n    certificate-authority: " + kData + "/ca.crt\n", kToken));
  CHECK(must_load(with_ca).server.to_string() == "https://10.0.0.1:6443");
  std::string insecure =
      dir.write("b", kubeconfig("    server: 10.0.0.1:6443\n    insecure-skip-tls-verify: true\n", kToken));
  CHECK(must_load(insecure).server.to_string() == "https://10.0.0.1:6443");
}

// ---------------------------------------------------------------------------------------------
// Merging several files (KUBECONFIG).

TEST_CASE("merge: first file that defines a name wins entirely, current-context is the first non-empty one") {
  const std::string one = kData + "/merge/one/config";
  const std::string two = kData + "/merge/two/config";
  const std::string three = kData + "/merge/three/config";
  auto merged = load_kubeconfig_files({one, two, three}, false);
  REQUIRE(merged.ok());
  const Kubeconfig& k = merged.value();
  CHECK(k.files == std::vector<std::string>{one, two, three});
  CHECK(k.current_context == "dev");
  CHECK(k.current_context_file == two);
  CHECK(k.clusters.size() == 4);
  CHECK(k.users.size() == 3);
  CHECK(k.contexts.size() == 3);

  const KubeconfigCluster& shared = k.clusters.at("shared");
  CHECK(shared.origin.file == one);
  CHECK(shared.origin.index == 0);
  CHECK(shared.server == "https://one.example:6443");
  CHECK_FALSE(shared.insecure_skip_tls_verify);  // two's value is not mixed in
  CHECK(shared.proxy_url.empty());
  CHECK(shared.certificate_authority == kData + "/ca.crt");

  const KubeconfigUser& alice = k.users.at("alice");
  CHECK(alice.origin.file == one);
  CHECK(alice.token.empty());  // two's token for alice is ignored
  CHECK(alice.client_certificate == kData + "/client.crt");

  CHECK(k.contexts.at("dev").origin.file == one);
  CHECK(k.contexts.at("dev").cluster == "shared");
  CHECK(k.clusters.at("only-two").certificate_authority == kData + "/merge/two/certs/ca.crt");
  CHECK(k.clusters.at("only-two").origin.index == 1);
  CHECK(k.users.at("bob").token_file == kData + "/merge/two/bob.token");
  CHECK(k.users.at("carol").exec->command == kData + "/merge/three/bin/get-token");
}

TEST_CASE("merge through KUBECONFIG: the current context and --context, each file's relative paths") {
  const std::string one = kData + "/merge/one/config";
  const std::string two = kData + "/merge/two/config";
  const std::string three = kData + "/merge/three/config";
  Environment env{{"KUBECONFIG", one + "::" + two + ":" + three + ":"}, {"HOME", "/nonexistent-home"}};

  auto dev = load_client_config(LoadOptions{}, env);
  REQUIRE(dev.ok());
  CHECK(dev.value().context == "dev");
  CHECK(dev.value().source == one + ":" + two + ":" + three);
  CHECK(dev.value().server.to_string() == "https://one.example:6443");
  CHECK(dev.value().ca_file == kData + "/ca.crt");
  CHECK(dev.value().ca_pem == slurp(kData + "/ca.crt"));
  CHECK(dev.value().client_certificate_pem == slurp(kData + "/client.crt"));
  CHECK(dev.value().client_key_pem == slurp(kData + "/client.key"));
  CHECK(dev.value().bearer_token.empty());
  CHECK(dev.value().namespace_ == "team-a");
  CHECK(dev.value().user == "alice");

  LoadOptions ops;
  ops.context = "ops";
  auto o = load_client_config(ops, env);
  REQUIRE(o.ok());
  CHECK(o.value().context == "ops");
  CHECK(o.value().server.to_string() == "https://only-two.example:8443");
  CHECK(o.value().ca_file == kData + "/merge/two/certs/ca.crt");
  CHECK(o.value().bearer_token == "bob-token-from-file");
  CHECK(o.value().token_file == kData + "/merge/two/bob.token");
  CHECK(o.value().namespace_ == "default");

  LoadOptions exec;
  exec.context = "exec";
  auto e = load_client_config(exec, env);
  REQUIRE(e.ok());
  REQUIRE(e.value().exec);
  CHECK(e.value().exec->command == kData + "/merge/three/bin/get-token");
  CHECK(e.value().exec->args == std::vector<std::string>{"--audience", "stowage"});
  CHECK(boost::json::serialize(e.value().exec->cluster_config) == R"({"audience":"stowage"})");
}

TEST_CASE("merge: the order of KUBECONFIG decides, missing files are skipped, repeats read once") {
  const std::string one = kData + "/merge/one/config";
  const std::string two = kData + "/merge/two/config";
  Environment env{{"KUBECONFIG", "/nonexistent/config:" + two + ":" + one + ":" + two}};
  auto k = load_kubeconfig_files({"/nonexistent/config", two, one, two}, false);
  REQUIRE(k.ok());
  CHECK(k.value().files == std::vector<std::string>{two, one});
  CHECK(k.value().clusters.at("shared").server == "https://two.example:6443");
  CHECK(k.value().users.at("alice").token == "from-two-never-used");

  auto c = load_client_config(LoadOptions{}, env);
  REQUIRE(c.ok());
  CHECK(c.value().context == "dev");  // two's dev context now: only-two and bob
  CHECK(c.value().server.to_string() == "https://only-two.example:8443");
  CHECK(c.value().bearer_token == "bob-token-from-file");
}

TEST_CASE("merge_kubeconfigs on parsed texts") {
  auto a = parse_kubeconfig("clusters:\n- name: x\n  cluster: {server: https://a}\n", "/k/a");
  auto b = parse_kubeconfig(
      "current-context: ctx\nclusters:\n- name: x\n  cluster: {server: https://b, "
      "tls-server-name: b}\n- name: z\n  cluster: {server: https://z}\n",
      "/k/b");
  auto c = parse_kubeconfig("current-context: other\n", "/k/c");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  Kubeconfig m = merge_kubeconfigs({a.value(), b.value(), c.value()});
  CHECK(m.clusters.at("x").server == "https://a");
  CHECK(m.clusters.at("x").tls_server_name.empty());
  CHECK(m.clusters.at("z").server == "https://z");
  CHECK(m.current_context == "ctx");
  CHECK(m.current_context_file == "/k/b");
  CHECK(m.files == std::vector<std::string>{"/k/a", "/k/b", "/k/c"});
}

TEST_CASE("the --context flag overrides current-context") {
  TempDir dir;
  std::string path = dir.write("config",
                               "current-context: a\n"
                               "clusters:\n- name: ca\n  cluster: {server: https://a.example}\n"
                               "- name: cb\n  cluster: {server: https://b.example}\n"
                               "contexts:\n- name: a\n  context: {cluster: ca}\n"
                               "- name: b\n  context: {cluster: cb, namespace: nb}\n");
  CHECK(must_load(path).server.host == "a.example");
  ClientConfig b = must_load(path, "b");
  CHECK(b.server.host == "b.example");
  CHECK(b.context == "b");
  CHECK(b.namespace_ == "nb");
  CHECK(must_fail(path, "zzz").to_string() ==
        path + ": context \"zzz\" (from --context) is not defined in contexts (defined: \"a\", \"b\")");
}

// ---------------------------------------------------------------------------------------------
// In cluster.

namespace {

struct ServiceAccount {
  TempDir dir;
  ServiceAccount(bool with_ca = true, bool with_namespace = true) {
    dir.write("token", "sa-token-value\n");
    if (with_ca) dir.write("ca.crt", slurp(kData + "/ca.crt"));
    if (with_namespace) dir.write("namespace", "stowage-system\n");
  }
};

}  // namespace

TEST_CASE("in-cluster: host, port, token, CA and namespace from the service account") {
  ServiceAccount sa;
  Environment env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  auto c = load_in_cluster(env, sa.dir.path());
  REQUIRE(c.ok());
  CHECK(c.value().server.to_string() == "https://10.96.0.1:443");
  CHECK(c.value().server.authority() == "10.96.0.1:443");
  CHECK(c.value().bearer_token == "sa-token-value");
  CHECK(c.value().token_file == sa.dir.path("token"));
  CHECK(c.value().ca_pem == slurp(kData + "/ca.crt"));
  CHECK(c.value().ca_file == sa.dir.path("ca.crt"));
  CHECK(c.value().namespace_ == "stowage-system");
  CHECK(c.value().source == "in-cluster");
  CHECK(c.value().context.empty());
  CHECK(c.value().warnings.empty());

  sa.dir.write("token", "rotated\n");
  auto rotated = c.value().read_token_file();
  REQUIRE(rotated.ok());
  CHECK(rotated.value() == "rotated");
}

TEST_CASE("in-cluster: IPv6 service hosts are bracketed") {
  ServiceAccount sa;
  for (const char* host : {"fd00:10:96::1", "[fd00:10:96::1]"}) {
    Environment env{{"KUBERNETES_SERVICE_HOST", host}, {"KUBERNETES_SERVICE_PORT", "6443"}};
    auto c = load_in_cluster(env, sa.dir.path());
    REQUIRE(c.ok());
    CHECK(c.value().server.host == "fd00:10:96::1");
    CHECK(c.value().server.to_string() == "https://[fd00:10:96::1]:6443");
    CHECK(c.value().server.authority() == "[fd00:10:96::1]:6443");
  }
}

TEST_CASE("in-cluster namespace: POD_NAMESPACE, then the namespace file, then default") {
  ServiceAccount with_file;
  ServiceAccount without_file(true, false);
  Environment env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  CHECK(load_in_cluster(env, with_file.dir.path()).value().namespace_ == "stowage-system");
  CHECK(load_in_cluster(env, without_file.dir.path()).value().namespace_ == "default");
  without_file.dir.write("namespace", "  \n");
  CHECK(load_in_cluster(env, without_file.dir.path()).value().namespace_ == "default");
  env["POD_NAMESPACE"] = "from-downward-api";
  CHECK(load_in_cluster(env, with_file.dir.path()).value().namespace_ == "from-downward-api");
}

TEST_CASE("in-cluster: a missing ca.crt is a warning, a missing token an error") {
  Environment env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  ServiceAccount no_ca(false);
  auto c = load_in_cluster(env, no_ca.dir.path());
  REQUIRE(c.ok());
  CHECK(c.value().ca_pem.empty());
  REQUIRE(c.value().warnings.size() == 1);
  CHECK(c.value().warnings[0] == no_ca.dir.path("ca.crt") +
                                     ": cannot read: No such file or directory; the system trust store is used "
                                     "instead");

  no_ca.dir.write("ca.crt", "not a certificate");
  CHECK(load_in_cluster(env, no_ca.dir.path()).value().warnings.at(0) ==
        no_ca.dir.path("ca.crt") + " holds no PEM certificate; the system trust store is used instead");

  TempDir empty;
  auto e = load_in_cluster(env, empty.path());
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().to_string() == empty.path("token") +
                                     ": cannot read: No such file or directory: is the service account token "
                                     "mounted? (automountServiceAccountToken must not be false)");
}

TEST_CASE("in-cluster: the service variables must be set and the port numeric") {
  ServiceAccount sa;
  auto missing = load_in_cluster(Environment{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}, sa.dir.path());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().to_string() ==
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set");
  auto bad = load_in_cluster(Environment{{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "https"}},
                             sa.dir.path());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().to_string() == "KUBERNETES_SERVICE_PORT \"https\" is not a port number (1 to 65535)");
}

// ---------------------------------------------------------------------------------------------
// Auto-detection: --kubeconfig > KUBECONFIG > in-cluster > ~/.kube/config.

TEST_CASE("auto-detection order") {
  ServiceAccount sa;
  TempDir home;
  auto config_at = [](const std::string& server) {
    return "current-context: x\nclusters:\n- name: c\n  cluster: {server: '" + server +
           "'}\ncontexts:\n- name: x\n  context: {cluster: c}\n";
  };
  const std::string home_file = home.write(".kube/config", config_at("https://home.example"));
  const std::string env_file = home.write("env.yaml", config_at("https://env.example"));
  const std::string flag_file = home.write("flag.yaml", config_at("https://flag.example"));
  Environment env{{"HOME", home.path()},
                  {"KUBECONFIG", env_file},
                  {"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                  {"KUBERNETES_SERVICE_PORT", "443"}};
  LoadOptions options;
  options.service_account_dir = sa.dir.path();
  options.kubeconfig = flag_file;

  CHECK(load_client_config(options, env).value().server.host == "flag.example");
  options.kubeconfig.clear();
  CHECK(load_client_config(options, env).value().server.host == "env.example");
  CHECK(kubeconfig_paths(options, env) == std::vector<std::string>{env_file});
  env["KUBECONFIG"] = ":";  // only empty entries: as if unset
  CHECK(load_client_config(options, env).value().source == "in-cluster");
  env.erase("KUBECONFIG");
  CHECK(load_client_config(options, env).value().source == "in-cluster");
  env.erase("KUBERNETES_SERVICE_PORT");
  CHECK(load_client_config(options, env).value().server.host == "home.example");
  CHECK(kubeconfig_paths(options, env) == std::vector<std::string>{home_file});
  env.erase("HOME");
  auto none = load_client_config(options, env);
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().to_string() == "no kubeconfig: set --kubeconfig or KUBECONFIG, or run in a cluster");
  CHECK(kubeconfig_paths(options, env).empty());
}

TEST_CASE("auto-detection: a broken in-cluster setup falls back to ~/.kube/config with a warning") {
  TempDir home;
  TempDir no_token;
  Environment env{{"HOME", home.path()}, {"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  LoadOptions options;
  options.service_account_dir = no_token.path();

  auto failed = load_client_config(options, env);  // no ~/.kube/config: the in-cluster error
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().file == no_token.path("token"));

  home.write(".kube/config",
             "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://home.example}\n"
             "contexts:\n- name: x\n  context: {cluster: c}\n");
  auto fallback = load_client_config(options, env);
  REQUIRE(fallback.ok());
  CHECK(fallback.value().server.host == "home.example");
  REQUIRE(fallback.value().warnings.size() == 1);
  CHECK(fallback.value().warnings[0].rfind(
            "in-cluster configuration skipped (" + no_token.path("token") + ": cannot read: No such file or directory",
            0) == 0);
}

TEST_CASE("auto-detection: --context is ignored in a cluster, with a warning") {
  ServiceAccount sa;
  LoadOptions options;
  options.service_account_dir = sa.dir.path();
  options.context = "dev";
  auto c = load_client_config(options, {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}});
  REQUIRE(c.ok());
  CHECK(c.value().warnings ==
        std::vector<std::string>{"--context \"dev\" is ignored: running in a cluster with its service account"});
}

TEST_CASE("auto-detection: what is missing is named") {
  TempDir dir;
  Environment env{{"KUBECONFIG", dir.path("a") + ":" + dir.path("b")}};
  auto none = load_client_config(LoadOptions{}, env);
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().to_string() == "KUBECONFIG names " + dir.path("a") + ":" + dir.path("b") +
                                        ", but none of these files exists: fix KUBECONFIG or unset it");

  auto flag = load_file(dir.path("missing.yaml"));
  REQUIRE_FALSE(flag.ok());
  CHECK(flag.error().to_string() == dir.path("missing.yaml") + ": cannot read: No such file or directory");

  auto directory = load_file(dir.path());
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.error().to_string() == dir.path() + ": cannot read: Is a directory");

  auto direct = load_kubeconfig_files({dir.path("a"), dir.path("b")}, false);
  REQUIRE_FALSE(direct.ok());
  CHECK(direct.error().to_string() == "none of these kubeconfig files exists: " + dir.path("a") + ", " + dir.path("b"));
}

// Loads the kubeconfig at `path` (through KUBECONFIG) and says how it went: "loaded" or the error.
// As root, whom no file permission stops, it runs in a child that has become nobody (65534).
std::string load_as_unprivileged(const std::string& path) {
  auto attempt = [&]() -> std::string {
    auto c = load_client_config(LoadOptions{}, Environment{{"KUBECONFIG", path}});
    return c.ok() ? "loaded" : c.error().to_string();
  };
  if (::geteuid() != 0) return attempt();
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string out = ::setgid(65534) == 0 && ::setuid(65534) == 0 ? attempt() : "cannot become nobody";
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return got;
}

TEST_CASE("an unreadable file in KUBECONFIG is an error, not skipped") {
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  std::string path = dir.write("config", kubeconfig(kServer, kToken));
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  REQUIRE(load_as_unprivileged(path) == "loaded");  // the same user can reach and read it...
  fs::permissions(path, fs::perms::none);
  CHECK(load_as_unprivileged(path) == path + ": cannot read: Permission denied");  // ...until it may not
}

TEST_CASE("process_environment reads this process's variables") {
  ::setenv("STOWAGE_CLIENT_CONFIG_TEST", "a=b", 1);
  Environment env = process_environment();
  CHECK(env.at("STOWAGE_CLIENT_CONFIG_TEST") == "a=b");
  ::unsetenv("STOWAGE_CLIENT_CONFIG_TEST");
}

// ---------------------------------------------------------------------------------------------
// Errors, with their exact wording.

TEST_CASE("errors in the structure of a file name the file and the field") {
  TempDir dir;
  struct Row {
    std::string yaml;
    std::string expected;  // after "FILE: "
  };
  const Row rows[] = {
      {"- a\n- b\n", "expected a mapping with clusters, users and contexts at the top level, got a list"},
      {"apiVersion: v2\n", "apiVersion \"v2\" is not a kubeconfig version: use v1"},
      {"kind: Pod\n", "kind \"Pod\" is not a kubeconfig: expected kind Config"},
      {"clusters: {}\n", "clusters: expected a list, got a mapping"},
      {"clusters:\n- just-a-name\n", "clusters[0]: expected a mapping with name and cluster, got a string"},
      {"clusters:\n- name: 5\n", "clusters[0].name: expected a string, got a number"},
      {"clusters:\n- name: c\n  cluster: [1]\n", "clusters[0].cluster: expected a mapping, got a list"},
      {"clusters:\n- name: c\n  cluster:\n    insecure-skip-tls-verify: 'true'\n",
       "clusters[0].cluster.insecure-skip-tls-verify: expected true or false, got a string"},
      {"clusters:\n- name: c\n  cluster:\n    server: 6443\n",
       "clusters[0].cluster.server: expected a string, got a number"},
      {"clusters:\n- name: c\n  cluster:\n    extensions: {a: 1}\n",
       "clusters[0].cluster.extensions: expected a list, got a mapping"},
      {"clusters:\n- name: c\n  cluster: {server: https://a}\n- name: d\n- name: c\n  cluster: {server: https://b}\n",
       "clusters[2].name \"c\" is already used by clusters[0]: names must be unique within a file"},
      {"users:\n- name: u\n  user:\n    exec:\n      args: --x\n",
       "users[0].user.exec.args: expected a list of strings, got a string"},
      {"users:\n- name: u\n  user:\n    exec:\n      args: [a, 1]\n",
       "users[0].user.exec.args[1]: expected a string, got a number"},
      {"users:\n- name: u\n  user:\n    exec:\n      env: [FOO=bar]\n",
       "users[0].user.exec.env[0]: expected a mapping with name and value, got a string"},
      {"users:\n- name: u\n  user:\n    exec:\n      provideClusterInfo: sure\n",
       "users[0].user.exec.provideClusterInfo: expected true or false, got a string"},
      {"users:\n- name: u\n  user:\n    auth-provider: gcp\n",
       "users[0].user.auth-provider: expected a mapping, got a string"},
      {"contexts:\n- name: x\n  context:\n    namespace: [a]\n",
       "contexts[0].context.namespace: expected a string, got a list"},
      {"current-context: [a]\n", "current-context: expected a string, got a list"},
  };
  for (const Row& row : rows) {
    std::string path = dir.write("config", row.yaml);
    INFO(row.yaml);
    CHECK(must_fail(path).to_string() == path + ": " + row.expected);
  }
}

TEST_CASE("malformed YAML gives line and column") {
  TempDir dir;
  std::string path = dir.write("config", "clusters:\n- name: c\n  cluster:\n    server: https://a\n   bad: 1\n");
  ConfigError e = must_fail(path);
  CHECK(e.line == 5);
  CHECK(e.column == 4);
  CHECK(e.to_string() == path + ":5:4: malformed YAML: end of map not found");
  std::string unclosed = dir.write("unclosed", "clusters:\n- name: c\n  cluster: {server: https://a\n");
  CHECK(must_fail(unclosed).to_string() == unclosed + ":4:1: malformed YAML: end of map flow not found");
}

// The old reader took up to 16 MiB of any file, and its alias limit counted nodes: a kubeconfig
// bomb grew to 4 GB in 19 s.
TEST_CASE("a kubeconfig over the size budget is refused from its size, before it is read") {
  TempDir dir;
  std::string huge = dir.write("huge", "");
  fs::resize_file(huge, std::uintmax_t{8} << 30);  // 8 GiB, sparse
  CHECK(must_fail(huge).to_string() == huge + ": 8589934592 bytes, over kube.max-kubeconfig-size (4Mi): not read; "
                                               "if it really is the kubeconfig, raise --max-kubeconfig-size");
  // The budget is a setting, and holds for every file KUBECONFIG lists too.
  std::string fine = dir.write("fine", kubeconfig(kServer, kToken));
  LoadOptions options;
  options.budgets.max_file_size = 64;
  auto refused = load_client_config(options, Environment{{"KUBECONFIG", fine}});
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().to_string(), Catch::StartsWith(fine + ": ") &&
                                              Catch::Contains("bytes, over kube.max-kubeconfig-size (64)"));
  options.budgets.max_file_size = 4096;
  CHECK(load_client_config(options, Environment{{"KUBECONFIG", fine}}).ok());
}

TEST_CASE("a kubeconfig alias bomb is refused at once, naming the alias budget's setting") {
  TempDir dir;
  std::string bomb = "apiVersion: v1\nkind: Config\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'i'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  std::string body = kubeconfig(kServer, kToken);
  std::string path = dir.write("bomb", bomb + body.substr(body.find("current-context")));
  auto started = std::chrono::steady_clock::now();
  ConfigError e = must_fail(path);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  CHECK(e.line > 3);
  CHECK_THAT(e.to_string(), Catch::StartsWith(path + ":") &&
                                Catch::EndsWith(": its YAML aliases expand past 4Mi (yaml.max-alias-expansion; an "
                                                "alias bomb?): if the file is trusted, raise "
                                                "--yaml-max-alias-expansion"));
  LoadOptions options;
  options.kubeconfig = dir.write("labels", kubeconfig(kServer, kToken) + "x: &x {a: b}\ny: [*x, *x, *x]\n");
  CHECK(load_client_config(options, Environment{}).ok());
  options.budgets.max_alias_expansion = 64;
  CHECK_THAT(load_client_config(options, Environment{}).error().to_string(),
             Catch::Contains("expand past 64 (yaml.max-alias-expansion"));
}

TEST_CASE("a YAML 1.1 boolean where a name belongs gets a hint, as kubectl would refuse it too") {
  TempDir dir;
  std::string path = dir.write("config", "clusters:\n- name: y\n  cluster: {server: https://y.example}\n");
  CHECK(must_fail(path).to_string() ==
        path +
            ": clusters[0].name: expected a string, got a boolean: put the value in quotes, YAML reads y, n, yes, "
            "no, on and off as booleans");
  std::string quoted = dir.write("quoted",
                                 "current-context: x\nclusters:\n- name: 'y'\n  cluster: {server: "
                                 "https://y.example}\ncontexts:\n- name: x\n  context: {cluster: 'y'}\n");
  CHECK(must_load(quoted).server.host == "y.example");
}

TEST_CASE("bad base64 in a -data field is an error that never shows the data") {
  TempDir dir;
  const std::string secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";  // unpadded: not valid standard base64
  struct Row {
    std::string cluster, user, expected;
  };
  const Row rows[] = {
      {kServer + "    certificate-authority-data: " + secret + "\n", kToken,
       "clusters[0].cluster.certificate-authority-data is not valid base64: put the output of `base64 -w0 FILE` "
       "there, or name the file in certificate-authority instead"},
      {kServer, "    client-certificate-data: " + secret + "\n",
       "users[0].user.client-certificate-data is not valid base64: put the output of `base64 -w0 FILE` there, or "
       "name the file in client-certificate instead"},
      {kServer, "    client-key-data: " + secret + "!\n",
       "users[0].user.client-key-data is not valid base64: put the output of `base64 -w0 FILE` there, or name the "
       "file in client-key instead"},
  };
  for (const Row& row : rows) {
    std::string path = dir.write("config", kubeconfig(row.cluster, row.user));
    ConfigError e = must_fail(path);
    CHECK(e.to_string() == path + ": " + row.expected);
    require_absent(e.to_string(), {secret});
  }
  // Line breaks inside the value are ignored, as Go's decoder ignores them.
  std::string folded = b64_of(kData + "/ca.crt");
  folded.insert(20, "\n      ");
  std::string path =
      dir.write("ok", kubeconfig(kServer + "    certificate-authority-data: |\n      " + folded + "\n", kToken));
  CHECK(must_load(path).ca_pem == slurp(kData + "/ca.crt"));
}

TEST_CASE("errors in choosing the context") {
  TempDir dir;
  SECTION("current-context is not set") {
    std::string path = dir.write("config",
                                 "clusters:\n- name: c\n  cluster: {server: https://a}\n"
                                 "contexts:\n- name: a\n  context: {cluster: c}\n- name: b\n  context: "
                                 "{cluster: c}\n");
    CHECK(must_fail(path).to_string() ==
          path +
              ": current-context is not set: pass --context NAME or run kubectl config use-context NAME "
              "(defined: \"a\", \"b\")");
    std::string empty = dir.write("empty", "");
    CHECK(must_fail(empty).to_string() ==
          empty +
              ": current-context is not set: no context is defined either: add one with kubectl config "
              "set-context");
  }
  SECTION("current-context names an undefined context") {
    std::string path = dir.write("config", "current-context: prod\ncontexts:\n- name: dev\n  context: {cluster: c}\n");
    CHECK(must_fail(path).to_string() ==
          path +
              ": current-context names context \"prod\", which is not defined in contexts (defined: \"dev\"): "
              "run kubectl config use-context NAME");
  }
  SECTION("with several files, the file that set current-context is named") {
    std::string a = dir.write("a", "clusters:\n- name: c\n  cluster: {server: https://a}\n");
    std::string b = dir.write("b", "current-context: nope\n");
    auto c = load_client_config(LoadOptions{}, {{"KUBECONFIG", a + ":" + b}});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().to_string() ==
          b + ": current-context names context \"nope\", which is not defined in contexts (none is defined): run "
              "kubectl config use-context NAME");
    auto none = load_client_config(LoadOptions{}, {{"KUBECONFIG", a + ":" + dir.path("absent") + ":" + a}});
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().to_string() ==
          a + ": current-context is not set: no context is defined either: add one with kubectl config set-context");
  }
  SECTION("the context's cluster and user must exist") {
    std::string no_user = dir.write(
        "u", kubeconfig(kServer, kToken).replace(kubeconfig(kServer, kToken).find("user: u\n"), 8, "user: bob\n"));
    CHECK(must_fail(no_user).to_string() ==
          no_user + ": context \"dev\" names user \"bob\", which is not defined in users");
    CHECK(must_fail(no_user).field == "contexts[0].context.user");

    std::string no_cluster = dir.write("c",
                                       "current-context: dev\ncontexts:\n- name: other\n  context: {}\n"
                                       "- name: dev\n  context: {cluster: prod}\n");
    CHECK(must_fail(no_cluster).to_string() ==
          no_cluster + ": context \"dev\" names cluster \"prod\", which is not defined in clusters");
    CHECK(must_fail(no_cluster).field == "contexts[1].context.cluster");

    std::string unnamed = dir.write("n", "current-context: dev\ncontexts:\n- name: dev\n  context: {user: u}\n");
    CHECK(must_fail(unnamed).to_string() ==
          unnamed + ": context \"dev\" names no cluster: set contexts[0].context.cluster to one of the clusters");
  }
  SECTION("the namespace must be a DNS-1123 label") {
    std::string path = dir.write("config", kubeconfig(kServer, kToken, "    namespace: Team_A\n"));
    CHECK(must_fail(path).to_string() ==
          path +
              ": contexts[0].context.namespace \"Team_A\" is not a valid namespace name: use lower-case "
              "letters, digits and '-', at most 63 characters");
  }
}

TEST_CASE("errors in the cluster") {
  TempDir dir;
  struct Row {
    std::string cluster, expected;
  };
  const Row rows[] = {
      {"    tls-server-name: x\n",
       "clusters[0].cluster.server is missing: set it to the API server's URL, e.g. https://127.0.0.1:6443"},
      {"    server: ftp://a\n",
       "clusters[0].cluster.server has the scheme \"ftp\", which is not supported: write https://HOST:PORT"},
      {"    server: https://fd00::1\n",
       "clusters[0].cluster.server has an IPv6 address without brackets: write https://[ADDRESS]:PORT"},
      {kServer + "    certificate-authority: /x/ca.crt\n",
       "clusters[0].cluster.certificate-authority /x/ca.crt: cannot read: No such file or directory"},
      {kServer + "    certificate-authority: " + kData + "/client.key\n",
       "clusters[0].cluster.certificate-authority " + kData +
           "/client.key holds no PEM certificate (-----BEGIN CERTIFICATE-----)"},
      {kServer + "    certificate-authority-data: " + crypto::base64_encode("hello") + "\n",
       "clusters[0].cluster.certificate-authority-data holds no PEM certificate: it must be the base64 of a PEM "
       "file (-----BEGIN CERTIFICATE-----)"},
      {kServer + "    insecure-skip-tls-verify: true\n    certificate-authority: " + kData + "/ca.crt\n",
       "clusters[0].cluster.insecure-skip-tls-verify is true and a certificate authority is set: remove one of "
       "them (client-go refuses both)"},
      {kServer + "    proxy-url: ftp://proxy:21\n",
       "clusters[0].cluster.proxy-url has the scheme \"ftp\", which is not supported: use http, https or socks5"},
      {kServer + "    proxy-url: proxy.example:3128\n",
       "clusters[0].cluster.proxy-url is not a URL: write http://HOST:PORT, https://HOST:PORT or "
       "socks5://HOST:PORT"},
      {kServer + "    proxy-url: http://user:pw@:3128\n", "clusters[0].cluster.proxy-url has no host"},
      {kServer + "    proxy-url: http://user:pw@proxy:99999\n",
       "clusters[0].cluster.proxy-url has the port \"99999\", which is not a number from 1 to 65535"},
      {kServer + "    proxy-url: \"socks5://proxy:\"\n",
       "clusters[0].cluster.proxy-url has ':' but no port after it: write HOST:PORT, or leave out the ':'"},
      {kServer + "    proxy-url: http://fd00::1:3128\n",
       "clusters[0].cluster.proxy-url has an IPv6 address without brackets: write http://[ADDRESS]:PORT"},
  };
  for (const Row& row : rows) {
    std::string path = dir.write("config", kubeconfig(row.cluster, kToken));
    INFO(row.cluster);
    CHECK(must_fail(path).to_string() == path + ": " + row.expected);
  }
  // socks5 and https proxies, with credentials, are accepted.
  std::string path = dir.write("ok", kubeconfig(kServer + "    proxy-url: socks5://u:p@proxy:1080\n", kToken));
  CHECK(must_load(path).proxy_url == "socks5://u:p@proxy:1080");
}

TEST_CASE("errors in the user") {
  TempDir dir;
  const std::string cert_data = "    client-certificate-data: " + b64_of(kData + "/client.crt") + "\n";
  const std::string key_data = "    client-key-data: " + b64_of(kData + "/client.key") + "\n";
  const std::string exec_head = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n";
  struct Row {
    std::string user, expected;
  };
  const Row rows[] = {
      {cert_data, "users[0].user has a client certificate but no client-key or client-key-data: set both or neither"},
      {"    client-key: " + kData + "/client.key\n",
       "users[0].user has a client key but no client-certificate or client-certificate-data: set both or neither"},
      {"    client-certificate: /nonexistent/c.crt\n" + key_data,
       "users[0].user.client-certificate /nonexistent/c.crt: cannot read: No such file or directory"},
      {cert_data + "    client-key: missing.key\n",
       "users[0].user.client-key " + dir.path("missing.key") + ": cannot read: No such file or directory"},
      {cert_data + "    client-key: " + kData + "/other.key\n",
       "users[0].user: the client key does not belong to the client certificate"},
      {cert_data + "    client-key: " + kData + "/encrypted.key\n",
       "users[0].user: the client key is not a PEM private key (or is encrypted, which is not supported)"},
      {"    client-certificate: " + kData + "/ca.key.absent\n" + key_data,
       "users[0].user.client-certificate " + kData + "/ca.key.absent: cannot read: No such file or directory"},
      {"    client-certificate: " + kData + "/client.key\n" + key_data,
       "users[0].user: the client certificate holds no PEM certificate"},
      {kToken + "    username: ann\n",
       "users[0].user has both a token and a username/password: keep only one authentication method"},
      {"    tokenFile: t\n    password: p\n",
       "users[0].user has both a token and a username/password: keep only one authentication method"},
      {"    tokenFile: /nonexistent/token\n",
       "users[0].user.tokenFile /nonexistent/token: cannot read: No such file or directory"},
      {"    auth-provider:\n      name: gcp\n",
       "users[0].user.auth-provider \"gcp\" is not supported: use an exec credential plugin (users[].user.exec) "
       "instead, e.g. gke-gcloud-auth-plugin or kubelogin"},
      {"    as: admin\n",
       "users[0].user.as: impersonation is not supported: remove it and give this user the rights directly"},
      {"    as-groups: [system:masters]\n",
       "users[0].user.as-groups: impersonation is not supported: remove it and give this user the rights directly"},
      {kToken + exec_head + "      command: x\n      interactiveMode: Never\n",
       "users[0].user has an exec plugin and also a token, a username/password or a client certificate: keep "
       "only one authentication method"},
      {exec_head + "      interactiveMode: Never\n",
       "users[0].user.exec.command is missing: name the credential plugin to run"},
      {"    exec:\n      command: x\n",
       "users[0].user.exec.apiVersion is missing: use client.authentication.k8s.io/v1"},
      {"    exec:\n      command: x\n      apiVersion: client.authentication.k8s.io/v1alpha1\n",
       "users[0].user.exec.apiVersion \"client.authentication.k8s.io/v1alpha1\" is not supported: use "
       "client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1"},
      {exec_head + "      command: x\n",
       "users[0].user.exec.interactiveMode is missing (required with client.authentication.k8s.io/v1): use Never "
       "for a controller"},
      {exec_head + "      command: x\n      interactiveMode: Sometimes\n",
       "users[0].user.exec.interactiveMode \"Sometimes\" is not one of Never, IfAvailable, Always"},
      {exec_head + "      command: x\n      interactiveMode: Never\n      env:\n      - {name: A, value: b}\n"
                   "      - {value: c}\n",
       "users[0].user.exec.env[1].name is missing: every env entry needs a name"},
  };
  for (const Row& row : rows) {
    std::string path = dir.write("config", kubeconfig(kServer, row.user));
    INFO(row.user);
    CHECK(must_fail(path).to_string() == path + ": " + row.expected);
  }
  dir.write("empty.token", " \n");
  std::string path = dir.write("config", kubeconfig(kServer, "    tokenFile: empty.token\n"));
  CHECK(must_fail(path).to_string() ==
        path + ": users[0].user.tokenFile " + dir.path("empty.token") + ": the token file is empty");
}

TEST_CASE("entries that are not used are not checked (client-go checks only the context in use)") {
  TempDir dir;
  std::string path = dir.write(
      "config", kubeconfig(kServer, kToken) + "- name: broken\n  context: {cluster: nowhere, user: nobody}\n");
  CHECK(must_load(path).bearer_token == "t0ken-value");
  std::string bad_user =
      dir.write("bad-user", kubeconfig(kServer, kToken)
                                .replace(kubeconfig(kServer, kToken).find("users:\n"), 7,
                                         "users:\n- name: other\n  user:\n    exec: {command: x}\n"));
  CHECK(must_load(bad_user).bearer_token == "t0ken-value");
}

// ---------------------------------------------------------------------------------------------
// Secrets.

TEST_CASE("secrets never appear in errors, warnings or describe()") {
  TempDir dir;
  const std::string token = "SECRET-TOKEN-a1b2c3";
  const std::string password = "SECRET-PASSWORD-d4e5";
  const std::string proxy_password = "SECRET-PROXY-f6g7";
  const std::string key_b64 = b64_of(kData + "/client.key");
  const std::string cert_b64 = b64_of(kData + "/client.crt");
  const std::string ca_b64 = b64_of(kData + "/ca.crt");
  const std::string key_pem_line = slurp(kData + "/client.key").substr(28, 40);  // a line of the key itself
  const std::initializer_list<std::string> secrets = {token, password, proxy_password, key_b64.substr(0, 40),
                                                      key_pem_line};
  std::vector<std::string> texts;

  auto collect_error = [&](const std::string& cluster, const std::string& user) {
    std::string path = dir.write("config", kubeconfig(cluster, user));
    auto c = load_file(path);
    REQUIRE_FALSE(c.ok());
    texts.push_back(c.error().to_string());
  };
  const std::string proxy = "    proxy-url: https://admin:" + proxy_password + "@proxy.example\n";
  collect_error(kServer, "    token: " + token + "\n    password: " + password + "\n");
  collect_error(kServer, "    client-certificate-data: " + cert_b64 +
                             "\n    client-key-data: " + b64_of(kData + "/other.key") + "\n");
  collect_error(kServer, "    client-key-data: " + key_b64 + "\n");
  collect_error(kServer, "    token: " + token + "\n    exec: {command: x, apiVersion: v}\n");
  collect_error("    server: https://admin:" + password + "@api.example\n", "    token: " + token + "\n");
  collect_error(kServer + "    proxy-url: ftp://admin:" + proxy_password + "@proxy\n", "    token: " + token + "\n");
  collect_error(kServer + "    certificate-authority-data: " + ca_b64 + "\n    insecure-skip-tls-verify: true\n",
                "    token: " + token + "\n");
  collect_error(kServer, "    client-key-data: " + key_b64.substr(1) + "\n");
  collect_error(kServer, "    token: " + token + "\n    username: " + password + "\n");

  std::string ok_path =
      dir.write("ok", kubeconfig(kServer + proxy + "    certificate-authority-data: " + ca_b64 +
                                     "\n    certificate-authority: ca.crt\n",
                                 "    token: " + token + "\n    client-certificate-data: " + cert_b64 +
                                     "\n    client-certificate: c.crt\n    client-key-data: " + key_b64 + "\n"));
  ClientConfig ok = must_load(ok_path);
  CHECK(ok.bearer_token == token);
  texts.push_back(ok.describe());
  for (const auto& w : ok.warnings) texts.push_back(w);
  CHECK(ok.warnings.size() == 2);

  std::string http_path = dir.write(
      "http", kubeconfig("    server: http://api.example\n", "    username: u\n    password: " + password + "\n"));
  ClientConfig http = must_load(http_path);
  CHECK(http.password.empty());
  for (const auto& w : http.warnings) texts.push_back(w);

  for (const std::string& text : texts) require_absent(text, secrets);
}

TEST_CASE("describe() names the server, the source and the kind of credentials") {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig(kServer + "    proxy-url: http://u:p@proxy.example:3128/x\n"
                                                              "    insecure-skip-tls-verify: true\n",
                                                    "    tokenFile: t\n    token: abc\n", "    namespace: ns\n"));
  CHECK(must_load(path).describe() == "https://api.example:6443 (context dev from " + path +
                                          ", user u, namespace ns, " + "auth: bearer token file " + dir.path("t") +
                                          ", proxy http://proxy.example:3128, TLS verification disabled)");
  ServiceAccount sa;
  auto in_cluster =
      load_in_cluster({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}, sa.dir.path());
  CHECK(in_cluster.value().describe() ==
        "https://10.96.0.1:443 (in-cluster, namespace stowage-system, auth: bearer "
        "token file " +
            sa.dir.path("token") + ")");
  std::string cert =
      dir.write("cert", kubeconfig(kServer, "    client-certificate: " + kData +
                                                "/client.crt\n    client-key: " + kData + "/client.key\n"));
  CHECK(must_load(cert).describe() == "https://api.example:6443 (context dev from " + cert +
                                          ", user u, namespace default, auth: client certificate)");
}

// ---------------------------------------------------------------------------------------------
// The real kubectl.

namespace {

int run(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("a kubeconfig written by kubectl config loads to the expected values") {
  const std::string kubectl = "/usr/bin/kubectl";
  if (::access(kubectl.c_str(), X_OK) != 0) {
    WARN("kubectl is not installed at /usr/bin/kubectl: skipped");
    return;
  }
  TempDir dir;
  const std::string file = dir.path("kubeconfig");
  const std::string k = "env -u KUBECONFIG HOME=" + dir.path() + " " + kubectl + " config --kubeconfig " + file + " ";
  const std::string quiet = " >/dev/null";
  REQUIRE(run(k + "set-cluster prod --server=https://10.1.2.3:6443/prefix --certificate-authority=" + kData +
              "/ca.crt --embed-certs=true --tls-server-name=api.prod.internal "
              "--proxy-url=socks5://proxy.internal:1080" +
              quiet) == 0);
  REQUIRE(run(k + "set-cluster files --server=https://[fd00::1]:6443 --certificate-authority=" + kData + "/ca.crt" +
              quiet) == 0);
  REQUIRE(run(k + "set-credentials admin --client-certificate=" + kData + "/client.crt --client-key=" + kData +
              "/client.key --embed-certs=true" + quiet) == 0);
  REQUIRE(run(k + "set-credentials filecert --client-certificate=" + kData + "/client.crt --client-key=" + kData +
              "/client.key" + quiet) == 0);
  REQUIRE(run(k + "set-credentials robot --token=robot-token-123" + quiet) == 0);
  REQUIRE(run(k + "set-credentials basic --username=ann --password=pw-456" + quiet) == 0);
  REQUIRE(run(k +
              "set-credentials plugin --exec-command=/usr/local/bin/get-token "
              "--exec-api-version=client.authentication.k8s.io/v1 --exec-arg=--region --exec-arg=eu "
              "--exec-env=MODE=ci --exec-interactive-mode=Never --exec-provide-cluster-info=true" +
              quiet) == 0);
  REQUIRE(run(k + "set-context prod-admin --cluster=prod --user=admin --namespace=backups" + quiet) == 0);
  REQUIRE(run(k + "set-context files --cluster=files --user=filecert" + quiet) == 0);
  for (const char* user : {"robot", "basic", "plugin"})
    REQUIRE(run(k + "set-context " + user + " --cluster=prod --user=" + user + quiet) == 0);
  REQUIRE(run(k + "use-context prod-admin" + quiet) == 0);

  ClientConfig admin = must_load(file);
  CHECK(admin.context == "prod-admin");
  CHECK(admin.server.to_string() == "https://10.1.2.3:6443/prefix");
  CHECK(admin.server.path == "/prefix");
  CHECK(admin.ca_pem == slurp(kData + "/ca.crt"));
  CHECK(admin.tls_server_name == "api.prod.internal");
  CHECK(admin.proxy_url == "socks5://proxy.internal:1080");
  CHECK(admin.client_certificate_pem == slurp(kData + "/client.crt"));
  CHECK(admin.client_key_pem == slurp(kData + "/client.key"));
  CHECK(admin.namespace_ == "backups");
  CHECK(admin.warnings.empty());

  ClientConfig files = must_load(file, "files");
  CHECK(files.server.host == "fd00::1");
  CHECK(files.server.authority() == "[fd00::1]:6443");
  CHECK(files.ca_file == kData + "/ca.crt");
  CHECK(files.client_certificate_pem == slurp(kData + "/client.crt"));
  CHECK(files.namespace_ == "default");

  CHECK(must_load(file, "robot").bearer_token == "robot-token-123");
  ClientConfig basic = must_load(file, "basic");
  CHECK(basic.username == "ann");
  CHECK(basic.password == "pw-456");

  ClientConfig plugin = must_load(file, "plugin");
  REQUIRE(plugin.exec);
  CHECK(plugin.exec->api_version == "client.authentication.k8s.io/v1");
  CHECK(plugin.exec->command == "/usr/local/bin/get-token");
  CHECK(plugin.exec->args == std::vector<std::string>{"--region", "eu"});
  REQUIRE(plugin.exec->env.size() == 1);
  CHECK(plugin.exec->env[0].name == "MODE");
  CHECK(plugin.exec->env[0].value == "ci");
  CHECK(plugin.exec->interactive_mode == "Never");
  CHECK(plugin.exec->provide_cluster_info);
}

// ---------------------------------------------------------------------------------------------
// Credentials that become the Authorization header: checked at load, and a token file each time it
// is read, so a line break can never add a header of its own to a request.

TEST_CASE("a kubeconfig token, token file or basic auth that would inject a header is refused at load") {
  TempDir dir;
  struct Row {
    std::string user, expected;
  };
  const Row rows[] = {
      // YAML double-quoted strings turn \r\n into the two control characters.
      {"    token: \"abc\\r\\nX-Injected: yes\"\n", "users[0].user.token contains a control character (at byte 3)"},
      {"    token: \"a b\"\n",
       "users[0].user.token is not an RFC 6750 bearer token: the character at byte 1 is not allowed (only letters, "
       "digits, - . _ ~ + / and a trailing =)"},
      {"    token: \"abc=def\"\n", "users[0].user.token is not an RFC 6750 bearer token: the character at byte 4"},
      {"    token: " + std::string(kMaxBearerTokenBytes + 1, 'a') + "\n",
       "users[0].user.token is longer than 16384 bytes"},
      {"    username: \"ann\\nX-Injected: yes\"\n    password: p\n",
       "users[0].user.username contains a control character (at byte 3)"},
      {"    username: ann\n    password: \"p\\u0000w\"\n",
       "users[0].user.password contains a control character (at byte 1)"},
  };
  for (const Row& row : rows) {
    std::string path = dir.write("config", kubeconfig(kServer, row.user));
    INFO(row.user);
    std::string message = must_fail(path).to_string();
    CHECK_THAT(message, Catch::StartsWith(path + ": " + row.expected));
    CHECK(message.find("Injected") == std::string::npos);
  }

  dir.write("injected.token", "  abc\r\nX-Injected: yes\n");
  std::string path = dir.write("config", kubeconfig(kServer, "    tokenFile: injected.token\n"));
  CHECK(must_fail(path).to_string() == path + ": users[0].user.tokenFile " + dir.path("injected.token") +
                                           ": the token contains a control character (at byte 5)");
  // Tokens as issued pass: a service-account JWT, a bootstrap token, base64 with padding.
  for (const char* token : {"eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrIn0.c2lnbmF0dXJl", "abcdef.0123456789abcdef",
                            "dG9rZW4=", "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9u"}) {
    path = dir.write("config", kubeconfig(kServer, "    token: " + std::string(token) + "\n"));
    CHECK(must_load(path).bearer_token == token);
  }
}

TEST_CASE("a token file rewritten with a line break inside is refused when re-read, and in-cluster too") {
  TempDir dir;
  dir.write("token", "good-token\n");
  std::string path = dir.write("config", kubeconfig(kServer, "    tokenFile: token\n"));
  ClientConfig c = must_load(path);
  CHECK(c.bearer_token == "good-token");
  dir.write("token", "rotated\r\nX-Injected: yes\n");
  auto reread = c.read_token_file();
  REQUIRE_FALSE(reread.ok());
  CHECK(reread.error().to_string() == dir.path("token") + ": the token contains a control character (at byte 7)");

  dir.write("sa/token", "sa-token\nX-Injected: yes");
  Environment env{{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  auto in_cluster = load_in_cluster(env, dir.path("sa"));
  REQUIRE_FALSE(in_cluster.ok());
  CHECK_THAT(in_cluster.error().to_string(),
             Catch::StartsWith(dir.path("sa/token") + ": the token contains a control character (at byte 8)"));
}
