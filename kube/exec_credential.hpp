#pragma once
// Exec credential plugins (client.authentication.k8s.io/v1 and v1beta1), the parts without a
// process: what to give the plugin (spec.interactive, the KUBERNETES_EXEC_INFO JSON, its
// environment), how to read what it prints (an ExecCredential with a token and/or a client
// certificate and key, and an optional expiry), and when to run it again.
//
// The expected flow (kube/exec_plugin.hpp does the spawning, kube/api_client.hpp the rest):
//   1. cache.get(now) -> a credential: use it.
//   2. Otherwise: interactive = exec_interactive(exec, isatty(0)); spawn exec.command with
//      exec.args and the inherited environment plus exec_environment(...); read its stdout;
//      parse_exec_credential(stdout, exec) -> cache.store(credential).
//   3. On a 401 answered to a request made with credential C: cache.invalidate(C), then retry once.
// Guarantees: nothing here throws or logs; error messages name the plugin (its command, never its
// arguments) and the field, and never quote a token, key or certificate.
// Assumes: one user at a time (ExecCredentialCache is not synchronised).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/time_format.hpp"
#include "kube/client_config.hpp"

namespace stowage::kube {

struct ExecCredentialError {
  std::string message;
  const std::string& to_string() const { return message; }
};

struct ExecCredential {
  std::string token;                                // status.token; may be empty when a certificate is given
  std::string client_certificate_pem;               // status.clientCertificateData
  std::string client_key_pem;                       // status.clientKeyData
  std::optional<WallClock::time_point> expiration;  // status.expirationTimestamp; none = until a 401

  bool operator==(const ExecCredential&) const = default;
};

// spec.interactive, by client-go's rules: Never -> false; IfAvailable -> whether standard input is
// a terminal; Always -> true, or an error when standard input is not a terminal.
Result<bool, ExecCredentialError> exec_interactive(const ExecConfig& exec, bool stdin_is_terminal);

// The KUBERNETES_EXEC_INFO value: an ExecCredential of exec.api_version with spec.interactive and,
// when exec.provide_cluster_info, spec.cluster {server, tls-server-name, insecure-skip-tls-verify,
// certificate-authority-data, proxy-url, disable-compression, config} taken from `cluster`.
std::string exec_info_json(const ExecConfig& exec, const ClientConfig& cluster, bool interactive);

// What to add to the plugin's inherited environment, in order (a later entry wins): the
// kubeconfig's exec.env, then KUBERNETES_EXEC_INFO.
std::vector<ExecEnvVar> exec_environment(const ExecConfig& exec, const ClientConfig& cluster, bool interactive);

// The plugin's stdout (JSON, or YAML as client-go also accepts): kind ExecCredential of the
// configured apiVersion, with status.token and/or status.clientCertificateData +
// status.clientKeyData (PEM, a matching pair), and an optional RFC 3339 status.expirationTimestamp.
// The token becomes the Authorization header: it must be RFC 6750 token68 of at most
// kMaxBearerTokenBytes (a control character is named as such, with its position).
Result<ExecCredential, ExecCredentialError> parse_exec_credential(std::string_view stdout_text, const ExecConfig& exec);

// Usable at `now`: no expiry, or `now` not after the expiry (client-go's rule).
bool exec_credential_fresh(const ExecCredential& credential, WallClock::time_point now);

// The last credential a plugin returned, kept until it expires or a 401 rejects it.
class ExecCredentialCache {
 public:
  // The cached credential when it is still fresh at `now`; nullptr means: run the plugin.
  const ExecCredential* get(WallClock::time_point now) const;
  void store(ExecCredential credential);
  // A 401 answered a request made with `used`. Forgets the cached credential if it is still that
  // one (a newer one, stored since, is kept) and says whether it did.
  bool invalidate(const ExecCredential& used);
  void clear() { cached_.reset(); }

 private:
  std::optional<ExecCredential> cached_;
};

}  // namespace stowage::kube
