#pragma once
// Where the API server is and how to authenticate to it: the in-cluster service account, or
// kubeconfig files merged as client-go merges them (KUBECONFIG with several files, --kubeconfig,
// --context, ~/.kube/config).
//
// Guarantees:
// - Nothing here throws, logs or talks to the network. Errors are values (ConfigError) naming the
//   file and the field at fault and saying how to fix it.
// - No token, password, private key or certificate data ever appears in an error message, a
//   warning or describe(); the values live only in the ClientConfig fields meant for them.
// - Credentials that become headers are checked at load: a token (from `token` or a token file)
//   must be RFC 6750 token68 of at most kMaxBearerTokenBytes, a basic-auth user name or password
//   hold no control character and at most kMaxBasicAuthBytes; the error names the file, the field
//   and the position.
// - Files a kubeconfig names (certificate-authority, client-certificate, client-key, tokenFile)
//   are read when the configuration is loaded, and only for the context in use; PEM blocks are
//   checked (the CA bundle holds a certificate, the client key matches the client certificate),
//   so a broken file is reported at start-up rather than as a TLS handshake failure.
// - Relative paths resolve against the directory of the kubeconfig file that names them.
//
// Assumes: the HTTP client that uses a ClientConfig re-reads token_file (read_token_file) at least
// every kTokenFileRereadInterval and after every 401, as client-go does for projected tokens.
//
// Differences from client-go, on purpose: certificate-authority-data wins over
// certificate-authority (likewise client-certificate-data / client-key-data over the files) with a
// warning, where client-go refuses the pair; impersonation (`as`, `as-groups`, ...) and
// auth-provider are refused instead of being half-supported; an exec plugin together with a token,
// basic auth or a client certificate is refused (client-go mixes them in surprising ways); a
// context may name no user (anonymous) instead of kubectl's username prompt. As in client-go, a
// plain-HTTP server gets no credentials at all (with a warning).
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace stowage::kube {

// Environment variables as name -> value; tests pass their own, production passes
// process_environment().
using Environment = std::map<std::string, std::string>;

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
inline constexpr std::chrono::seconds kTokenFileRereadInterval{60};
// Bearer tokens (kubeconfig `token`, token files, exec plugins) go into the Authorization header.
// They must be RFC 6750 token68 and at most this long: service-account JWTs are about 1 KiB, OIDC
// tokens with many group claims reach several KiB; 16 KiB is well above those and below the API
// server's header limit, and catches a whole file pasted by mistake.
inline constexpr std::size_t kMaxBearerTokenBytes = 16 * 1024;
// Basic-auth user names and passwords travel Base64-encoded in one header; 4 KiB each keeps that
// header under 11 KiB.
inline constexpr std::size_t kMaxBasicAuthBytes = 4 * 1024;
inline constexpr const char* kExecApiVersionV1 = "client.authentication.k8s.io/v1";
inline constexpr const char* kExecApiVersionV1beta1 = "client.authentication.k8s.io/v1beta1";

struct ConfigError {
  std::string file;  // the file at fault (a kubeconfig, a token file, ...); "" when none
  int line = 0;      // 1-based position for malformed YAML; 0 otherwise
  int column = 0;
  std::string field;    // e.g. "clusters[0].cluster.server", "contexts[1].context.user", "KUBECONFIG"
  std::string message;  // a whole sentence that names the field and says how to fix it
  // "FILE:LINE:COLUMN: MESSAGE", "FILE: MESSAGE" or "MESSAGE".
  std::string to_string() const;
};

// The API server URL, split. The path is a prefix put before every API path (for API servers
// behind a proxy, e.g. Rancher's "/k8s/clusters/c-xxxxx"); query and fragment are dropped as
// client-go drops them.
struct ServerUrl {
  std::string scheme;          // "https" or "http"
  std::string host;            // without brackets, also for IPv6 ("fd00::1")
  std::uint16_t port = 0;      // the explicit port or the scheme's default (443 / 80)
  bool port_explicit = false;  // whether the URL named the port
  std::string path;            // "" or "/prefix" without a trailing slash

  bool is_https() const { return scheme == "https"; }
  std::string authority() const;    // "host:port" with IPv6 hosts bracketed; always has the port
  std::string host_header() const;  // value for the Host header: the port only when explicit
  std::string to_string() const;    // "https://[fd00::1]:6443/prefix", as written (port only if explicit)
};

// Parses a kubeconfig `server`: "https://host[:port][/prefix]", "http://..." or client-go's
// scheme-less "host:port" (https when `default_tls`, http otherwise). Returns the problem in words.
Result<ServerUrl, std::string> parse_server_url(std::string_view text, bool default_tls);

struct ExecEnvVar {
  std::string name;
  std::string value;
};

// users[].user.exec: a credential plugin (client.authentication.k8s.io). Run it with
// kube/exec_credential.hpp.
struct ExecConfig {
  std::string api_version;  // kExecApiVersionV1 or kExecApiVersionV1beta1
  std::string command;      // resolved against the kubeconfig's directory when it contains '/'
  std::vector<std::string> args;
  std::vector<ExecEnvVar> env;                   // added to the inherited environment, in order
  std::string interactive_mode = "IfAvailable";  // "Never" | "IfAvailable" | "Always"
  bool provide_cluster_info = false;
  std::string install_hint;  // shown when the command is not found
  // clusters[].cluster.extensions["client.authentication.k8s.io/exec"]: passed to the plugin as
  // spec.cluster.config; null when absent.
  boost::json::value cluster_config;
};

struct ClientConfig {
  // --- The server.
  ServerUrl server;
  std::string ca_pem;   // trusted CAs (PEM); empty = the system trust store
  std::string ca_file;  // where ca_pem was read from; "" when it came from -data or is empty
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;  // SNI and name to verify instead of server.host; "" = server.host
  std::string proxy_url;        // "http://", "https://" or "socks5://" URL; may hold credentials
  bool disable_compression = false;

  // --- Credentials (at most one of token / basic auth; a client certificate may come with either).
  std::string bearer_token;  // the token at load time (from `token`, or read from token_file)
  std::string token_file;    // re-read with read_token_file(); "" when the token is static
  std::string client_certificate_pem;
  std::string client_key_pem;
  std::string username;
  std::string password;
  std::optional<ExecConfig> exec;

  // --- Where requests go by default.
  std::string namespace_ = "default";

  // --- Provenance, for logs.
  std::string source;                 // "in-cluster" or the kubeconfig file(s), ':'-separated
  std::string context;                // the kubeconfig context used; "" in-cluster
  std::string user;                   // the kubeconfig user used; "" in-cluster or anonymous
  std::vector<std::string> warnings;  // things the caller should log once (never secret)

  // The current token from token_file, trimmed; an error if the file is unreadable or empty.
  // Callers keep using the last good token when this fails (client-go does the same).
  Result<std::string, ConfigError> read_token_file() const;

  // One line for a start-up log: server, source, context, namespace and the kind of credentials,
  // never their values: "https://10.0.0.1:443 (in-cluster, namespace ns, auth: token file ...)".
  std::string describe() const;
};

// Reads a bearer-token file: whitespace trimmed; an empty file is an error, and so is a token that
// is not RFC 6750 token68 (a control character, a space inside) or longer than kMaxBearerTokenBytes.
Result<std::string, ConfigError> read_token_file(const std::string& path);

// ---------------------------------------------------------------------------------------------
// In cluster.

// The service account of the pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (IPv6
// hosts bracketed), `token` and `ca.crt` in service_account_dir, the namespace from POD_NAMESPACE,
// then service_account_dir/namespace, then "default". A missing ca.crt is a warning (client-go
// falls back to the system trust store too); a missing token is an error.
Result<ClientConfig, ConfigError> load_in_cluster(const Environment& env,
                                                  const std::string& service_account_dir = kServiceAccountDir);

// ---------------------------------------------------------------------------------------------
// kubeconfig files: parse each one, merge them, then build the ClientConfig of one context.

struct Origin {
  std::string file;       // the kubeconfig file that defines the entry
  std::size_t index = 0;  // its position in that file's list
};

struct KubeconfigCluster {
  Origin origin;
  std::string server;
  std::string certificate_authority;       // path, made absolute against the file's directory
  std::string certificate_authority_data;  // decoded
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;
  std::string proxy_url;
  bool disable_compression = false;
  boost::json::value exec_extension;  // extensions["client.authentication.k8s.io/exec"]; null if absent
};

struct KubeconfigUser {
  Origin origin;
  std::string token;
  std::string token_file;               // path, made absolute
  std::string client_certificate;       // path, made absolute
  std::string client_certificate_data;  // decoded
  std::string client_key;               // path, made absolute
  std::string client_key_data;          // decoded
  std::string username;
  std::string password;
  std::optional<ExecConfig> exec;   // command made absolute when it contains '/'
  std::string auth_provider;        // auth-provider.name; refused when this user is used
  std::string impersonation_field;  // the first of as/as-uid/as-groups/as-user-extra set; refused when used
};

struct KubeconfigContext {
  Origin origin;
  std::string cluster;
  std::string user;
  std::string namespace_;
};

struct Kubeconfig {
  std::map<std::string, KubeconfigCluster> clusters;
  std::map<std::string, KubeconfigUser> users;
  std::map<std::string, KubeconfigContext> contexts;
  std::string current_context;
  std::string current_context_file;  // the file current_context came from
  std::vector<std::string> files;    // the files merged, in order
};

// What reading one kubeconfig file may cost (the engine passes the settings named here).
struct KubeconfigBudgets {
  std::uint64_t max_file_size = 4u << 20;        // kube.max-kubeconfig-size: a larger file is refused unread
  std::uint64_t max_alias_expansion = 4u << 20;  // yaml.max-alias-expansion: bytes its YAML aliases may add
};

// One kubeconfig file's text (pure apart from making a relative `path` absolute). Type errors,
// bad base64 and duplicate names anywhere in the file are errors, as they are for kubectl; the
// meaning of the entries is checked later, and only for the context used. YAML aliases that expand
// past `max_alias_expansion` bytes are an error naming yaml.max-alias-expansion.
Result<Kubeconfig, ConfigError> parse_kubeconfig(std::string_view text, const std::string& path,
                                                 std::uint64_t max_alias_expansion = 4u << 20);

// client-go's merge: for clusters, users and contexts the first file that defines a name wins
// entirely; current-context is the first non-empty one.
Kubeconfig merge_kubeconfigs(const std::vector<Kubeconfig>& files);

// Reads and merges `paths` in order (empty entries and repeats skipped). A missing file is
// skipped unless `must_exist` (the --kubeconfig flag); an unreadable or malformed one is an error,
// and so is one over a budget (refused before it is read when its size is). An error too when none
// of the files exists.
Result<Kubeconfig, ConfigError> load_kubeconfig_files(const std::vector<std::string>& paths, bool must_exist,
                                                      const KubeconfigBudgets& budgets = {});

// The ClientConfig of `context_name` (or of current-context when empty). Checks the context, its
// cluster and its user, and reads the files they name.
Result<ClientConfig, ConfigError> client_config_from_kubeconfig(const Kubeconfig& config,
                                                                const std::string& context_name = "");

// ---------------------------------------------------------------------------------------------
// Auto-detection, the order controller-runtime uses.

struct LoadOptions {
  std::string kubeconfig;  // --kubeconfig: one file, which must exist
  std::string context;     // --context: overrides current-context (kubeconfig only)
  std::string service_account_dir = kServiceAccountDir;
  KubeconfigBudgets budgets{};  // for every kubeconfig file read
};

// --kubeconfig, else the files in KUBECONFIG (':'-separated, empty entries skipped), else the
// in-cluster service account (when KUBERNETES_SERVICE_HOST and _PORT are set), else
// $HOME/.kube/config. When in-cluster loading fails but $HOME/.kube/config exists, that file is
// used and the in-cluster problem becomes a warning.
Result<ClientConfig, ConfigError> load_client_config(const LoadOptions& options, const Environment& env);

// The files load_client_config would read (not in-cluster), for messages and tests.
std::vector<std::string> kubeconfig_paths(const LoadOptions& options, const Environment& env);

// This process's environment.
Environment process_environment();

// A description of what is wrong with a client certificate/key pair in PEM ("" when it is
// usable): no certificate, unreadable or encrypted key, or a key that does not match. Never
// quotes the data.
std::string client_key_pair_problem(std::string_view certificate_pem, std::string_view key_pem);

}  // namespace stowage::kube
