// Exec credential plugins: KUBERNETES_EXEC_INFO for v1 and v1beta1, interactive mode, the
// plugin's environment, parsing what the plugin prints, and the cache rule.
#include "kube/exec_credential.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "common/crypto.hpp"

using namespace stowage;
using namespace stowage::kube;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

const std::string kData = std::string(STOWAGE_SOURCE_DIR) + "/tests/kube/data/client_config";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

ExecConfig plugin(const std::string& api_version = kExecApiVersionV1) {
  ExecConfig x;
  x.api_version = api_version;
  x.command = "/usr/bin/get-token";
  x.args = {"--secret-arg", "hunter2"};
  x.interactive_mode = "Never";
  return x;
}

ClientConfig cluster() {
  ClientConfig c;
  c.server = parse_server_url("https://api.example:6443/prefix", false).value();
  return c;
}

std::string credential(const std::string& api_version, const std::string& status) {
  return R"({"kind":"ExecCredential","apiVersion":")" + api_version + R"(","spec":{"interactive":false},"status":)" +
         status + "}";
}

std::string json_string(const std::string& s) { return json::serialize(json::string(s)); }

ExecCredentialError must_fail(const std::string& output, const ExecConfig& exec = plugin()) {
  auto parsed = parse_exec_credential(output, exec);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Input.

TEST_CASE("KUBERNETES_EXEC_INFO for v1 without cluster info") {
  CHECK(exec_info_json(plugin(), cluster(), false) ==
        R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}})");
  CHECK(exec_info_json(plugin(), cluster(), true) ==
        R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}})");
}

TEST_CASE("KUBERNETES_EXEC_INFO for v1beta1 with every cluster field") {
  ExecConfig x = plugin(kExecApiVersionV1beta1);
  x.provide_cluster_info = true;
  x.cluster_config = json::parse(R"({"audience":"stowage"})");
  ClientConfig c = cluster();
  c.ca_pem = slurp(kData + "/ca.crt");
  c.tls_server_name = "api.internal";
  c.insecure_skip_tls_verify = true;  // not a valid pair for loading, but each field is passed on as it is
  c.proxy_url = "socks5://proxy:1080";
  c.disable_compression = true;
  c.bearer_token = "never-sent-to-the-plugin";
  CHECK(exec_info_json(x, c, false) ==
        R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"cluster":{)"
        R"("server":"https://api.example:6443/prefix","tls-server-name":"api.internal",)"
        R"("insecure-skip-tls-verify":true,"certificate-authority-data":")" +
            crypto::base64_encode(c.ca_pem) +
            R"(","proxy-url":"socks5://proxy:1080","disable-compression":true,"config":{"audience":"stowage"}},)"
            R"("interactive":false}})");
}

TEST_CASE("KUBERNETES_EXEC_INFO with cluster info and only the server set omits the empty fields") {
  ExecConfig x = plugin();
  x.provide_cluster_info = true;
  ClientConfig c;
  c.server = parse_server_url("https://[fd00::1]", false).value();
  CHECK(exec_info_json(x, c, false) ==
        R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{)"
        R"("server":"https://[fd00::1]"},"interactive":false}})");
}

TEST_CASE("the plugin's environment: the kubeconfig's env entries, then KUBERNETES_EXEC_INFO") {
  ExecConfig x = plugin();
  x.env = {{"MODE", "ci"}, {"KUBERNETES_EXEC_INFO", "overridden below"}};
  auto env = exec_environment(x, cluster(), false);
  REQUIRE(env.size() == 3);
  CHECK(env[0].name == "MODE");
  CHECK(env[0].value == "ci");
  CHECK(env[2].name == "KUBERNETES_EXEC_INFO");
  CHECK(env[2].value == exec_info_json(x, cluster(), false));
}

TEST_CASE("interactive mode, by client-go's rules") {
  ExecConfig x = plugin();
  x.interactive_mode = "Never";
  CHECK(exec_interactive(x, true).value() == false);
  CHECK(exec_interactive(x, false).value() == false);
  x.interactive_mode = "IfAvailable";
  CHECK(exec_interactive(x, true).value() == true);
  CHECK(exec_interactive(x, false).value() == false);
  x.interactive_mode = "Always";
  CHECK(exec_interactive(x, true).value() == true);
  auto no_terminal = exec_interactive(x, false);
  REQUIRE_FALSE(no_terminal.ok());
  CHECK(no_terminal.error().to_string() ==
        "exec plugin /usr/bin/get-token needs a terminal (interactiveMode: Always) but standard input is not one: "
        "configure the plugin to run without prompting and set interactiveMode: Never");
  x.interactive_mode = "Maybe";
  CHECK(exec_interactive(x, true).error().to_string() ==
        "exec plugin /usr/bin/get-token has interactiveMode \"Maybe\", which is not one of Never, IfAvailable, "
        "Always");
}

// ---------------------------------------------------------------------------------------------
// Output.

TEST_CASE("a token with an expiry, v1") {
  auto c = parse_exec_credential(
      credential(kExecApiVersionV1, R"({"token":"tok-123","expirationTimestamp":"2030-01-02T03:04:05Z"})"), plugin());
  REQUIRE(c.ok());
  CHECK(c.value().token == "tok-123");
  CHECK(c.value().client_certificate_pem.empty());
  REQUIRE(c.value().expiration);
  CHECK(rfc3339(*c.value().expiration) == "2030-01-02T03:04:05Z");
}

TEST_CASE("a client certificate and key, v1beta1, without expiry") {
  const std::string cert = slurp(kData + "/client.crt");
  const std::string key = slurp(kData + "/client.key");
  auto c =
      parse_exec_credential(credential(kExecApiVersionV1beta1, R"({"clientCertificateData":)" + json_string(cert) +
                                                                   R"(,"clientKeyData":)" + json_string(key) + "}"),
                            plugin(kExecApiVersionV1beta1));
  REQUIRE(c.ok());
  CHECK(c.value().token.empty());
  CHECK(c.value().client_certificate_pem == cert);
  CHECK(c.value().client_key_pem == key);
  CHECK_FALSE(c.value().expiration);
}

TEST_CASE("a token and a certificate together, and null fields count as absent") {
  const std::string cert = slurp(kData + "/client.crt");
  const std::string key = slurp(kData + "/client.key");
  auto c = parse_exec_credential(
      credential(kExecApiVersionV1, R"({"token":"t","expirationTimestamp":null,"clientCertificateData":)" +
                                        json_string(cert) + R"(,"clientKeyData":)" + json_string(key) + "}"),
      plugin());
  REQUIRE(c.ok());
  CHECK(c.value().token == "t");
  CHECK_FALSE(c.value().client_certificate_pem.empty());
  CHECK_FALSE(c.value().expiration);
}

TEST_CASE("expiration timestamps with fractions and offsets") {
  auto at = [](const std::string& ts) {
    auto c = parse_exec_credential(
        credential(kExecApiVersionV1, R"({"token":"t","expirationTimestamp":")" + ts + "\"}"), plugin());
    REQUIRE(c.ok());
    REQUIRE(c.value().expiration);
    return rfc3339(*c.value().expiration);
  };
  CHECK(at("2030-01-02T03:04:05.123456Z") == "2030-01-02T03:04:05Z");
  CHECK(at("2030-01-02T05:04:05+02:00") == "2030-01-02T03:04:05Z");
}

TEST_CASE("YAML output and extra fields are accepted (client-go's decoder takes both)") {
  auto c = parse_exec_credential(
      "kind: ExecCredential\napiVersion: client.authentication.k8s.io/v1\n"
      "status:\n  token: from-yaml\n  extra: ignored\n",
      plugin());
  REQUIRE(c.ok());
  CHECK(c.value().token == "from-yaml");
}

TEST_CASE("what is wrong with the plugin's output is said plainly") {
  const std::string cert = slurp(kData + "/client.crt");
  const std::string key = slurp(kData + "/client.key");
  const std::string other = slurp(kData + "/other.key");
  struct Row {
    std::string output, expected;
  };
  const Row rows[] = {
      {"", "exec plugin /usr/bin/get-token printed nothing: it must print an ExecCredential JSON object on stdout"},
      {"  \n", "exec plugin /usr/bin/get-token printed nothing: it must print an ExecCredential JSON object on stdout"},
      {"token: [unclosed\n",
       "exec plugin /usr/bin/get-token printed something that is not an ExecCredential JSON object (syntax error)"},
      {"[1,2]", "exec plugin /usr/bin/get-token printed JSON that is not an object: expected an ExecCredential object"},
      {R"({"apiVersion":"client.authentication.k8s.io/v1","status":{"token":"t"}})",
       "exec plugin /usr/bin/get-token returned no kind, expected kind ExecCredential"},
      {R"({"kind":"Secret","apiVersion":"v1"})",
       "exec plugin /usr/bin/get-token returned kind \"Secret\", expected kind ExecCredential"},
      {credential(kExecApiVersionV1beta1, R"({"token":"t"})"),
       "exec plugin /usr/bin/get-token returned apiVersion \"client.authentication.k8s.io/v1beta1\", expected "
       "apiVersion client.authentication.k8s.io/v1 (users[].user.exec.apiVersion in the kubeconfig): make the two "
       "agree"},
      {R"({"kind":"ExecCredential","status":{"token":"t"}})",
       "exec plugin /usr/bin/get-token returned no apiVersion, expected apiVersion client.authentication.k8s.io/v1 "
       "(users[].user.exec.apiVersion in the kubeconfig): make the two agree"},
      {R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1"})",
       "exec plugin /usr/bin/get-token returned no status: expected status.token, or status.clientCertificateData "
       "and status.clientKeyData"},
      {credential(kExecApiVersionV1, "null"),
       "exec plugin /usr/bin/get-token returned no status: expected status.token, or status.clientCertificateData "
       "and status.clientKeyData"},
      {credential(kExecApiVersionV1, "\"t\""),
       "exec plugin /usr/bin/get-token returned a status that is not an object"},
      {credential(kExecApiVersionV1, R"({"expirationTimestamp":"2030-01-02T03:04:05Z"})"),
       "exec plugin /usr/bin/get-token returned neither status.token nor status.clientCertificateData and "
       "status.clientKeyData"},
      {credential(kExecApiVersionV1, R"({"token":""})"),
       "exec plugin /usr/bin/get-token returned neither status.token nor status.clientCertificateData and "
       "status.clientKeyData"},
      {credential(kExecApiVersionV1, R"({"token":42})"),
       "exec plugin /usr/bin/get-token returned status.token that is not a string"},
      {credential(kExecApiVersionV1, R"({"clientCertificateData":)" + json_string(cert) + "}"),
       "exec plugin /usr/bin/get-token returned status.clientCertificateData without status.clientKeyData: it must "
       "return both"},
      {credential(kExecApiVersionV1, R"({"token":"t","clientKeyData":)" + json_string(key) + "}"),
       "exec plugin /usr/bin/get-token returned status.clientKeyData without status.clientCertificateData: it must "
       "return both"},
      {credential(kExecApiVersionV1, R"({"clientCertificateData":)" + json_string(cert) + R"(,"clientKeyData":)" +
                                         json_string(other) + "}"),
       "exec plugin /usr/bin/get-token returned a client certificate and key that cannot be used: the client key "
       "does not belong to the client certificate"},
      {credential(kExecApiVersionV1, R"({"clientCertificateData":"not pem","clientKeyData":)" + json_string(key) + "}"),
       "exec plugin /usr/bin/get-token returned a client certificate and key that cannot be used: the client "
       "certificate holds no PEM certificate"},
      {credential(kExecApiVersionV1, R"({"token":"t","expirationTimestamp":"2030-01-02 03:04:05"})"),
       "exec plugin /usr/bin/get-token returned status.expirationTimestamp \"2030-01-02 03:04:05\", which is not an "
       "RFC 3339 time such as 2025-04-21T12:29:15Z"},
      {credential(kExecApiVersionV1, R"({"token":"t","expirationTimestamp":"tomorrow"})"),
       "exec plugin /usr/bin/get-token returned a status.expirationTimestamp that is not shown, which is not an RFC "
       "3339 time such as 2025-04-21T12:29:15Z"},
      {credential(kExecApiVersionV1, R"({"token":"t","expirationTimestamp":1700000000})"),
       "exec plugin /usr/bin/get-token returned status.expirationTimestamp that is not a string"},
  };
  for (const Row& row : rows) {
    INFO(row.output);
    CHECK(must_fail(row.output).to_string() == row.expected);
  }
}

TEST_CASE("errors about the plugin's output never show a token, a key or the plugin's arguments") {
  const std::string token = "SECRET-EXEC-TOKEN-0987";
  const std::string key = slurp(kData + "/client.key");
  const std::string key_line = key.substr(28, 40);
  const std::string outputs[] = {
      credential(kExecApiVersionV1beta1, R"({"token":")" + token + "\"}"),
      R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":")" + token +
          "\"",  // cut short: not JSON
      "token: " + token + "\n",
      credential(kExecApiVersionV1, R"({"token":")" + token + R"(","clientKeyData":)" + json_string(key) + "}"),
      credential(kExecApiVersionV1, R"({"token":")" + token + R"(","expirationTimestamp":"soon"})"),
      R"({"kind":")" + token + "\"}",
      R"({"kind":"ExecCredential","apiVersion":")" + token + "\"}",
      credential(kExecApiVersionV1, R"({"token":"t","expirationTimestamp":")" + token + "\"}"),
  };
  const std::string expected[] = {
      "exec plugin /usr/bin/get-token returned a kind that is not shown, expected kind ExecCredential",
      "exec plugin /usr/bin/get-token returned an apiVersion that is not shown, expected apiVersion "
      "client.authentication.k8s.io/v1 (users[].user.exec.apiVersion in the kubeconfig): make the two agree",
      "exec plugin /usr/bin/get-token returned a status.expirationTimestamp that is not shown, which is not an RFC "
      "3339 time such as 2025-04-21T12:29:15Z",
  };
  CHECK(must_fail(outputs[5]).to_string() == expected[0]);
  CHECK(must_fail(outputs[6]).to_string() == expected[1]);
  CHECK(must_fail(outputs[7]).to_string() == expected[2]);
  for (const std::string& output : outputs) {
    std::string message = must_fail(output).to_string();
    INFO(message);
    CHECK(message.find("SECRET-EXEC-TOKEN") == std::string::npos);
    CHECK(message.find(key_line) == std::string::npos);
    CHECK(message.find("hunter2") == std::string::npos);
  }
}

TEST_CASE("a status.token that could inject a header or is not token68 is refused, by position") {
  struct Row {
    std::string token, expected;
  };
  const Row rows[] = {
      {"tok\r\nX-Injected: yes", "returned a status.token that contains a control character (at byte 3)"},
      {std::string("tok\0en", 6), "returned a status.token that contains a control character (at byte 3)"},
      {"tok en", "returned a status.token that is not an RFC 6750 bearer token: the character at byte 3 is not "
                 "allowed (only letters, digits, - . _ ~ + / and a trailing =)"},
      {"tok=en", "returned a status.token that is not an RFC 6750 bearer token: the character at byte 4"},
      {std::string(kMaxBearerTokenBytes + 1, 't'), "returned a status.token that is longer than 16384 bytes"},
  };
  for (const Row& row : rows) {
    std::string message = must_fail(credential(kExecApiVersionV1, R"({"token":)" + json_string(row.token) + "}"))
                              .to_string();
    INFO(message);
    CHECK_THAT(message, Catch::StartsWith("exec plugin /usr/bin/get-token " + row.expected));
    CHECK(message.find("Injected") == std::string::npos);
  }
  // Tokens as plugins issue them pass: EKS, GKE, OIDC JWTs, padded base64.
  for (const char* token : {"k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9u", "ya29.a0AfH6SMB-x_y~z",
                            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "dG9rZW4="}) {
    auto parsed = parse_exec_credential(credential(kExecApiVersionV1, R"({"token":")" + std::string(token) + "\"}"),
                                        plugin());
    REQUIRE(parsed.ok());
    CHECK(parsed.value().token == token);
  }
}

// ---------------------------------------------------------------------------------------------
// Cache.

TEST_CASE("a credential is fresh until its expiry, one without expiry until a 401") {
  const auto t0 = WallClock::from_time_t(1'900'000'000);
  ExecCredential forever{"t", "", "", std::nullopt};
  CHECK(exec_credential_fresh(forever, t0));
  CHECK(exec_credential_fresh(forever, t0 + 24h * 3650));
  ExecCredential hour{"t", "", "", t0 + 1h};
  CHECK(exec_credential_fresh(hour, t0));
  CHECK(exec_credential_fresh(hour, t0 + 1h));  // client-go: expired only once now is after the expiry
  CHECK_FALSE(exec_credential_fresh(hour, t0 + 1h + 1s));
}

TEST_CASE("the cache: get, expiry, and invalidation after a 401") {
  const auto t0 = WallClock::from_time_t(1'900'000'000);
  ExecCredentialCache cache;
  CHECK(cache.get(t0) == nullptr);

  ExecCredential first{"first", "", "", t0 + 10min};
  cache.store(first);
  REQUIRE(cache.get(t0) != nullptr);
  CHECK(cache.get(t0)->token == "first");
  CHECK(cache.get(t0 + 11min) == nullptr);  // expired: run the plugin again

  // A 401 with the cached credential drops it.
  CHECK(cache.invalidate(first));
  CHECK(cache.get(t0) == nullptr);
  CHECK_FALSE(cache.invalidate(first));

  // A late 401 for an older credential keeps the newer one.
  ExecCredential second{"second", "", "", std::nullopt};
  cache.store(second);
  CHECK_FALSE(cache.invalidate(first));
  REQUIRE(cache.get(t0 + 24h) != nullptr);
  CHECK(cache.get(t0 + 24h)->token == "second");
  cache.clear();
  CHECK(cache.get(t0) == nullptr);
}

// ---------------------------------------------------------------------------------------------
// From a kubeconfig.

TEST_CASE("the exec context of the merge fixture gives the plugin its cluster") {
  LoadOptions options;
  options.kubeconfig = kData + "/merge/three/config";
  options.context = "exec";
  auto config = load_client_config(options, Environment{});
  REQUIRE(config.ok());
  REQUIRE(config.value().exec);
  const ExecConfig& x = *config.value().exec;
  auto interactive = exec_interactive(x, true);
  REQUIRE(interactive.ok());
  CHECK_FALSE(interactive.value());  // interactiveMode: Never
  json::value info = json::parse(exec_info_json(x, config.value(), interactive.value()));
  CHECK(info.at("apiVersion") == "client.authentication.k8s.io/v1");
  CHECK(info.at("spec").at("interactive") == false);
  const json::object& c = info.at("spec").at("cluster").as_object();
  CHECK(c.at("server") == "https://only-three.example");
  CHECK(crypto::base64_decode(c.at("certificate-authority-data").as_string()).value() == slurp(kData + "/ca.crt"));
  CHECK(json::serialize(c.at("config")) == R"({"audience":"stowage"})");
  auto env = exec_environment(x, config.value(), false);
  REQUIRE(env.size() == 2);
  CHECK(env[0].name == "MODE");
  CHECK(env[1].name == "KUBERNETES_EXEC_INFO");
}
