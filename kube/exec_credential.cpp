// Exec credential plugins: input JSON, output parsing and the cache rule (client-go's
// plugin/pkg/client/auth/exec). See exec_credential.hpp for the flow.
#include "kube/exec_credential.hpp"

#include <boost/json.hpp>

#include "common/crypto.hpp"
#include "common/header_values.hpp"
#include "kube/yaml_json.hpp"

namespace stowage::kube {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxShownChars = 40;

std::string in_quotes(std::string_view s) { return json::serialize(json::string(s)); }

// Values the plugin printed are echoed only when they look like what belongs in the field (a kind,
// an apiVersion, a timestamp): a misbehaving plugin could put a token anywhere.
constexpr std::string_view kLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kApiVersionChars = "abcdefghijklmnopqrstuvwxyz0123456789./-";
constexpr std::string_view kTimestampChars = "0123456789TZtz:.+- ";

std::string shown(std::string_view field, std::string_view value, std::string_view allowed) {
  if (!value.empty() && value.size() <= kMaxShownChars && value.find_first_not_of(allowed) == value.npos)
    return std::string(field) + " " + in_quotes(value);
  const bool vowel = std::string_view("aeiou").find(field.front()) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(field) + " that is not shown";
}

ExecCredentialError plugin_error(const ExecConfig& exec, const std::string& what) {
  return ExecCredentialError{"exec plugin " + exec.command + " " + what};
}

// The plugin's output as a JSON value: JSON first, then YAML (client-go's universal decoder
// takes both). Never quotes the output.
Result<json::value, ExecCredentialError> decode_output(std::string_view text, const ExecConfig& exec) {
  if (text.find_first_not_of(" \t\r\n") == text.npos)
    return Err(plugin_error(exec, "printed nothing: it must print an ExecCredential JSON object on stdout"));
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (!ec) return value;
  auto docs = parse_yaml_documents(text);
  if (docs && docs.value().size() == 1 && docs.value()[0].value.is_object()) return docs.value()[0].value;
  return Err(plugin_error(exec, "printed something that is not an ExecCredential JSON object (" + ec.message() + ")"));
}

// status.<key> as a string ("" when absent or null).
Result<std::string, ExecCredentialError> status_string(const json::object& status, std::string_view key,
                                                       const ExecConfig& exec) {
  auto it = status.find(key);
  if (it == status.end() || it->value().is_null()) return std::string();
  if (!it->value().is_string())
    return Err(plugin_error(exec, "returned status." + std::string(key) + " that is not a string"));
  return std::string(it->value().get_string());
}

std::optional<ExecCredentialError> check_type(const json::object& root, const ExecConfig& exec) {
  auto field = [&](std::string_view key) -> std::string {
    auto it = root.find(key);
    return it != root.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string();
  };
  const std::string kind = field("kind");
  const std::string api_version = field("apiVersion");
  if (kind != "ExecCredential")
    return plugin_error(exec,
                        (kind.empty() ? std::string("returned no kind") : "returned " + shown("kind", kind, kLetters)) +
                            ", expected kind ExecCredential");
  if (api_version != exec.api_version)
    return plugin_error(exec, (api_version.empty() ? std::string("returned no apiVersion")
                                                   : "returned " + shown("apiVersion", api_version, kApiVersionChars)) +
                                  ", expected apiVersion " + exec.api_version +
                                  " (users[].user.exec.apiVersion in the kubeconfig): make the two agree");
  return std::nullopt;
}

Result<ExecCredential, ExecCredentialError> read_status(const json::object& status, const ExecConfig& exec) {
  ExecCredential out;
  std::string expiration;
  for (auto [key, field] : {std::pair<std::string_view, std::string*>{"token", &out.token},
                            {"clientCertificateData", &out.client_certificate_pem},
                            {"clientKeyData", &out.client_key_pem},
                            {"expirationTimestamp", &expiration}}) {
    auto value = status_string(status, key, exec);
    if (!value) return Err(value.error());
    *field = std::move(value.value());
  }
  if (!out.token.empty())
    if (auto bad = http::check_bearer_token(out.token, kMaxBearerTokenBytes))
      return Err(plugin_error(exec, "returned a status.token that " + bad.describe()));
  const bool has_cert = !out.client_certificate_pem.empty();
  const bool has_key = !out.client_key_pem.empty();
  if (out.token.empty() && !has_cert && !has_key)
    return Err(
        plugin_error(exec, "returned neither status.token nor status.clientCertificateData and status.clientKeyData"));
  if (has_cert && !has_key)
    return Err(
        plugin_error(exec, "returned status.clientCertificateData without status.clientKeyData: it must return both"));
  if (has_key && !has_cert)
    return Err(
        plugin_error(exec, "returned status.clientKeyData without status.clientCertificateData: it must return both"));
  if (has_cert) {
    if (std::string problem = client_key_pair_problem(out.client_certificate_pem, out.client_key_pem); !problem.empty())
      return Err(plugin_error(exec, "returned a client certificate and key that cannot be used: " + problem));
  }
  if (!expiration.empty()) {
    out.expiration = parse_rfc3339(expiration);
    if (!out.expiration)
      return Err(plugin_error(exec, "returned " + shown("status.expirationTimestamp", expiration, kTimestampChars) +
                                        ", which is not an RFC 3339 time such as 2025-04-21T12:29:15Z"));
  }
  return out;
}

json::object cluster_info(const ExecConfig& exec, const ClientConfig& cluster) {
  json::object c;
  c["server"] = cluster.server.to_string();
  if (!cluster.tls_server_name.empty()) c["tls-server-name"] = cluster.tls_server_name;
  if (cluster.insecure_skip_tls_verify) c["insecure-skip-tls-verify"] = true;
  if (!cluster.ca_pem.empty()) c["certificate-authority-data"] = crypto::base64_encode(cluster.ca_pem);
  if (!cluster.proxy_url.empty()) c["proxy-url"] = cluster.proxy_url;
  if (cluster.disable_compression) c["disable-compression"] = true;
  if (!exec.cluster_config.is_null()) c["config"] = exec.cluster_config;
  return c;
}

}  // namespace

Result<bool, ExecCredentialError> exec_interactive(const ExecConfig& exec, bool stdin_is_terminal) {
  if (exec.interactive_mode == "Never") return false;
  if (exec.interactive_mode == "IfAvailable") return stdin_is_terminal;
  if (exec.interactive_mode == "Always") {
    if (stdin_is_terminal) return true;
    return Err(plugin_error(exec,
                            "needs a terminal (interactiveMode: Always) but standard input is not one: configure "
                            "the plugin to run without prompting and set interactiveMode: Never"));
  }
  return Err(plugin_error(exec, "has interactiveMode " + in_quotes(exec.interactive_mode) +
                                    ", which is not one of Never, IfAvailable, Always"));
}

std::string exec_info_json(const ExecConfig& exec, const ClientConfig& cluster, bool interactive) {
  json::object spec;
  if (exec.provide_cluster_info) spec["cluster"] = cluster_info(exec, cluster);
  spec["interactive"] = interactive;
  json::object credential;
  credential["kind"] = "ExecCredential";
  credential["apiVersion"] = exec.api_version;
  credential["spec"] = std::move(spec);
  return json::serialize(credential);
}

std::vector<ExecEnvVar> exec_environment(const ExecConfig& exec, const ClientConfig& cluster, bool interactive) {
  std::vector<ExecEnvVar> env = exec.env;
  env.push_back({"KUBERNETES_EXEC_INFO", exec_info_json(exec, cluster, interactive)});
  return env;
}

Result<ExecCredential, ExecCredentialError> parse_exec_credential(std::string_view stdout_text,
                                                                  const ExecConfig& exec) {
  auto decoded = decode_output(stdout_text, exec);
  if (!decoded) return Err(decoded.error());
  if (!decoded.value().is_object())
    return Err(plugin_error(exec, "printed JSON that is not an object: expected an ExecCredential object"));
  const json::object& root = decoded.value().get_object();
  if (auto e = check_type(root, exec)) return Err(*e);
  auto status = root.find("status");
  if (status == root.end() || status->value().is_null())
    return Err(plugin_error(exec,
                            "returned no status: expected status.token, or status.clientCertificateData and "
                            "status.clientKeyData"));
  if (!status->value().is_object()) return Err(plugin_error(exec, "returned a status that is not an object"));
  return read_status(status->value().get_object(), exec);
}

bool exec_credential_fresh(const ExecCredential& credential, WallClock::time_point now) {
  return !credential.expiration || now <= *credential.expiration;
}

const ExecCredential* ExecCredentialCache::get(WallClock::time_point now) const {
  if (!cached_ || !exec_credential_fresh(*cached_, now)) return nullptr;
  return &*cached_;
}

void ExecCredentialCache::store(ExecCredential credential) { cached_ = std::move(credential); }

bool ExecCredentialCache::invalidate(const ExecCredential& used) {
  if (!cached_ || !(*cached_ == used)) return false;
  cached_.reset();
  return true;
}

}  // namespace stowage::kube
