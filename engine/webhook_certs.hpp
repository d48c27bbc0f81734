#pragma once
// WebhookCerts — the admission webhook's TLS certificates without cert-manager
// (--webhook-cert-self-signed): a CA and a serving certificate of stowage's own, shared by every
// replica through one Secret, renewed before they expire, with the CA written into the caBundle of
// stowage's own webhook configurations.
//
// Flow: one coroutine on the reactor repeats one pass:
//   GET the Secret   404 -> make a CA and a serving certificate; create the Secret (create only: a
//                           409 means another replica was first, whose Secret is read and used)
//                    unusable (data missing, a PEM that does not parse, a key that does not match its
//                    certificate, a serving certificate the CA did not sign or not for the Service's
//                    names) -> log why (never a key), make new ones, replace the Secret
//                    usable but past a renewal point (2/3 of a certificate's life) -> renew: the serving
//                    certificate alone, or the CA and then the serving certificate
//                    every replace carries the resourceVersion read: a 409 means another replica wrote
//                    first, and the pass starts again from the GET (it then finds their fresh ones)
//   write tls.key, then tls.crt, into the cert dir where they differ from the Secret's (mode 0600,
//   each written to a temporary file and renamed over the old one: a reader never sees half a file;
//   between the two renames the pair does not match, which a reloader must take as "not yet")
//   patch caBundle into every webhook of the named Mutating/ValidatingWebhookConfiguration where it
//   differs from ca.crt (JSON patch, each entry guarded by a `test` of its name); a configuration
//   that is not there (yet) is looked for again at the next pass
//   sleep until the next renewal point, at most `recheck` (a configuration applied later, a Secret
//   renewed by another replica, a file removed are all noticed by then); after a failure, a backoff
//
// Guarantees:
// - The Secret is `kubernetes.io/tls` with tls.crt, tls.key, ca.crt and ca.key. ca.crt holds the
//   current CA first and, after a CA renewal, the previous CA while it is still valid: webhooks still
//   serving a certificate of the old CA keep being trusted until their replica has read the new one.
// - Keys: ECDSA P-256; certificates signed with SHA-256; the serving certificate is for
//   <service>.<namespace>.svc and <service>.<namespace>.svc.cluster.local (serverAuth), never past
//   its CA's end. notBefore is set `backdate` early, for clocks that run behind.
// - The content of the Secret is untrusted: whatever it holds gives a usable pair or a sentence
//   saying why not; nothing in it can crash the process or be logged (no key, no certificate).
// - Failures (API errors, a cert dir that cannot be written) are logged and retried with backoff;
//   the loop ends only by stop(). Its end outside stop() (an exception) is reported to the process's
//   Liveness, as every other loop.
//
// Assumes: one reactor; the Api outlives the component's requests; the cert dir is this process's own
// (an emptyDir), not a mounted Secret.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace stowage::config {
struct Config;
}
namespace stowage::kube {
class Api;
}

namespace stowage::engine {

struct WebhookCertsOptions {
  std::string namespace_;                   // of the Service and of the Secret
  std::string service = "stowage-webhook";  // the Service the API server calls
  std::string secret = "stowage-webhook-cert";
  std::filesystem::path cert_dir;           // tls.crt and tls.key are written here
  std::string mutating_configuration;       // "" = none
  std::string validating_configuration;     // "" = none
  std::chrono::seconds ca_validity{std::chrono::hours(24 * 3650)};
  std::chrono::seconds serving_validity{std::chrono::hours(24 * 365)};
  std::chrono::seconds backdate{std::chrono::hours(1)};
  std::chrono::milliseconds recheck{std::chrono::minutes(1)};
  std::chrono::milliseconds retry_base{std::chrono::seconds(1)};
  std::function<std::chrono::system_clock::time_point()> clock;  // null: the system clock
};

// The DNS names the serving certificate is for.
std::vector<std::string> webhook_dns_names(const std::string& service, const std::string& namespace_);

// The first rule `options` breaks (names that are not Kubernetes names, validities that would renew
// at once), or nothing.
std::optional<std::string> validate(const WebhookCertsOptions& options);

class WebhookCerts {
 public:
  WebhookCerts(boost::asio::any_io_executor executor, kube::Api& api, WebhookCertsOptions options);
  ~WebhookCerts();
  WebhookCerts(const WebhookCerts&) = delete;
  WebhookCerts& operator=(const WebhookCerts&) = delete;

  void start();  // the loop (above)
  void stop();   // ends it at its next await

  // One pass of the loop: when it succeeds, the time of the next renewal point. The error says what
  // failed (no key, no certificate). For tests, and for start()'s loop.
  boost::asio::awaitable<Result<std::chrono::system_clock::time_point, std::string>> pass();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A test knob, not a setting (it is in neither --help, `config print` nor the README's table): when the
// environment variable below holds a duration of at least 10s, start_webhook_certs gives the CA that
// life, the serving certificate half of it and the backdate a tenth of it, so that an end-to-end test
// sees the serving certificate renewed, then the CA, within seconds
// (tests/engine/webhook_rotation_e2e_test.cpp). Start-up logs a warning while it is in effect; a value
// that is not such a duration fails start-up saying so. Never set it in a cluster: the API server would
// be trusting certificates that live for seconds.
inline constexpr const char* kWebhookCertTestLifetimeEnv = "STOWAGE_TEST_WEBHOOK_CERT_LIFETIME";
// Applies the knob's value `text` to `options`; the error says what is wrong with it.
std::optional<std::string> apply_test_lifetime(const std::string& text, WebhookCertsOptions& options);

// For `stowage run`: the component the configuration asks for, started; null without
// --webhook-cert-self-signed. `default_namespace` (the pod's, or the kubeconfig context's) is used
// when webhook.service-namespace is empty. The error says which setting is wrong.
Result<std::unique_ptr<WebhookCerts>, std::string> start_webhook_certs(const config::Config& config,
                                                                       boost::asio::any_io_executor executor,
                                                                       kube::Api& api,
                                                                       const std::string& default_namespace);

}  // namespace stowage::engine
