#pragma once
// The effective configuration: defaults < YAML file (--config / STOWAGE_CONFIG) < STOWAGE_*
// environment variables < command-line flags. Every setting is described once, in the table in
// config.cpp, which drives file parsing, environment lookup, flags, `stowage config print` and the
// README's configuration table. A bad value fails start-up with a ConfigError naming the setting
// and where it came from (file:line:column, environment variable, or flag); main exits 2.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace stowage::config {

using Millis = std::chrono::milliseconds;

struct Config {
  std::filesystem::path state_dir = "./var/stowage";  // state-dir
  std::string log_format = "text";                    // log.format: text | json
  std::string log_level = "info";                     // log.level: trace | debug | info | warn | error
  std::string log_file;                               // log.file: empty = stderr
  std::filesystem::path manifests;                    // manifests.dir
  Millis manifests_debounce{100};                     // manifests.debounce
  Millis manifests_poll_interval{2000};               // manifests.poll-interval (when inotify is unavailable)
  Millis manifests_delete_grace{30000};               // manifests.delete-grace: absent this long before deletion
  // Budgets for files stowage cannot trust (the manifest folder, kubeconfigs). The defaults keep a
  // folder full of bombs (alias bombs, huge files, millions of documents or objects, link loops)
  // under 256 MiB of peak RSS (tests/engine/budgets_test.cpp measures it) while leaving room for
  // real use:
  //  - 4 MiB per file: no Kubernetes object is larger than 1.5 MiB (etcd's limit), and 4 MiB holds
  //    ~4,000 typical BackupStorages; parsing one costs a few times its size, transiently.
  //  - 1,000 documents per file: generators write many objects as a List or as several files;
  //    every document can cost a parse and a problem line.
  //  - 10,000 objects in the folder: `make bench` measured 10,000 storages from manifests at ~180 MiB
  //    peak; each object is held in the source's cache, the world's cache and the store.
  //  - 4 MiB of alias expansion for the whole folder (and per kubeconfig): anchors in real manifests
  //    repeat a few labels; counted in bytes, so 4 MiB costs at most about that much per copy held.
  std::uint64_t manifests_max_file_size = 4u << 20;   // manifests.max-file-size
  int manifests_max_documents_per_file = 1000;        // manifests.max-documents-per-file
  int manifests_max_objects = 10000;                  // manifests.max-objects (BackupStorages and Secrets)
  std::uint64_t yaml_max_alias_expansion = 4u << 20;  // yaml.max-alias-expansion (all manifest files together)
  std::filesystem::path local_root = "/";             // local.root
  int local_io_threads = 4;                           // local.io-threads
  std::string local_volume_mode = "auto";             // local.volume-mode: auto | job | direct (Kubernetes mode)
  std::string volume_job_image = "stowage:0.1.0";     // local.job-image: the image the volume Jobs run
  int workers = 16;                                   // reconcile.workers
  Millis retry_base{1000};                            // reconcile.retry-base
  Millis retry_cap{300000};                           // reconcile.retry-cap
  Millis permanent_retry{600000};                     // reconcile.permanent-retry
  Millis revalidate_period{600000};                   // reconcile.revalidate-period: 0 = never
  int max_interrupted = 5;                            // reconcile.max-interrupted
  Millis commit_interval{5};                          // store.commit-interval
  std::string synchronous = "full";                   // store.synchronous: full | normal
  // store.max-pending-bytes: writes waiting for the store's writer (a full or failing disk) above
  // which no new work is claimed and /readyz fails, until the writer catches up
  std::uint64_t store_max_pending_bytes = 64u << 20;
  Millis shutdown_grace{10000};                       // shutdown.grace-period
  std::string operator_version = "v0.1.0";            // operator-version (written into metadata.yaml)
  std::string gcs_endpoint;                           // gcs.endpoint: empty = https://storage.googleapis.com
  std::string azure_endpoint;  // azure.endpoint: empty = https://{account}.blob.core.windows.net
  Millis backend_connect_timeout{10000};              // backends.connect-timeout
  Millis backend_request_timeout{30000};              // backends.request-timeout
  int backend_max_connections = 16;                   // backends.max-connections (when maxConnections is 0)
  // ambient-credentials.namespaces: namespaces whose storages without secretName may use this process's own
  // cloud identity; {"*"} = every namespace; empty = none (the offline modes allow all regardless).
  std::vector<std::string> ambient_credentials_namespaces;
  std::string kubeconfig;                             // kube.kubeconfig: empty = KUBECONFIG, in-cluster, ~/.kube/config
  // kube.max-kubeconfig-size: each kubeconfig file (each of those KUBECONFIG lists, too); 4 MiB holds
  // hundreds of clusters with their certificates inline.
  std::uint64_t kube_max_kubeconfig_size = 4u << 20;
  std::string kube_context;                           // kube.context: empty = current-context
  // kube.namespace: the namespaces served (each a DNS-1123 label, no repeats); empty = all namespaces
  std::vector<std::string> kube_namespaces;
  int kube_qps = 20;                                  // kube.qps: client-side rate limit (controller-runtime's)
  int kube_burst = 30;                                // kube.burst
  // kube.watch-idle-timeout: a watch silent this long (no event, no bookmark) is opened again
  Millis kube_watch_idle_timeout{90000};
  std::string metrics_bind_address = "0";             // metrics.bind-address: "0" = off
  std::string health_bind_address = "0";              // health.bind-address: "0" = off
  std::string webhook_bind_address = "0";             // webhook.bind-address: "0" = off (Kubernetes mode)
  std::filesystem::path webhook_cert_dir = "/tmp/k8s-webhook-server/serving-certs";  // webhook.cert-dir
  bool webhook_cert_self_signed = false;              // webhook.cert-self-signed: a CA and certificate of our own
  std::string webhook_service = "stowage-webhook";    // webhook.service: the Service the API server calls
  std::string webhook_service_namespace;              // webhook.service-namespace: "" = the pod's
  std::string webhook_cert_secret = "stowage-webhook-cert";  // webhook.cert-secret (self-signed mode)
  std::string webhook_mutating_configuration = "stowage";    // webhook.mutating-configuration: "" = none
  std::string webhook_validating_configuration = "stowage";  // webhook.validating-configuration: "" = none
  bool leader_elect = false;                          // leader-election.enabled
  std::string leader_election_id = "stowage-leader";  // leader-election.id (the Lease's name)
  std::string leader_election_namespace;              // leader-election.namespace: "" = the pod's
  Millis leader_lease_duration{15000};                // leader-election.lease-duration
  Millis leader_renew_deadline{10000};                // leader-election.renew-deadline
  Millis leader_retry_period{2000};                   // leader-election.retry-period

  std::filesystem::path config_file;  // the file that was read, if any
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Describes one setting, for `config print` and the README table.
struct SettingInfo {
  std::string key;       // "reconcile.workers"
  std::string flag;      // "--workers"
  std::string env;       // "STOWAGE_RECONCILE_WORKERS"
  std::string default_value;
  std::string description;
};
const std::vector<SettingInfo>& settings();

// Registers --config and one flag per setting on `app` (a CLI11 App or subcommand), except flags the
// subcommand already defines itself (register those first). The returned loader must outlive the
// parse; call load() after app.parse().
class Loader {
 public:
  explicit Loader(CLI::App& app);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Throws ConfigError. `env` defaults to the process environment (tests pass their own map).
  Config load() const;
  Config load(const std::map<std::string, std::string>& env) const;

 private:
  struct Impl;
  Impl* impl_;
};

// Parses "150ms", "5s", "2m", "1h30m", "1.5s" (Go's time.ParseDuration units ns..h); throws
// ConfigError on anything else ("5 parsecs").
Millis parse_duration(const std::string& text);
std::string format_duration(Millis d);

// Sizes in bytes: "1048576", or with a binary suffix as Kubernetes quantities write them: "512Ki",
// "4Mi", "1Gi". parse_size throws ConfigError on anything else; format_size writes the largest
// suffix that is exact.
std::uint64_t parse_size(const std::string& text);
std::string format_size(std::uint64_t bytes);

// The effective configuration as YAML, every key shown (`stowage config print`).
std::string to_yaml(const Config& config);

}  // namespace stowage::config
