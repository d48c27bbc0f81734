// The table of settings and the checks on each kind of value. Guarantees: every row's key, flag
// and environment variable are unique (a test checks); assign() either stores a valid value or
// throws ConfigError saying what was expected and what was given; value_of() writes a value that
// assign() accepts and reads back unchanged.
#include "config/settings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <type_traits>

namespace stowage::config::detail {
namespace {

using std::filesystem::path;
constexpr Millis kPositive{1};
constexpr Millis kZeroAllowed{0};
constexpr std::uint64_t kMaxBudgetBytes = std::uint64_t{1} << 40;  // 1Ti: beyond any memory this runs in

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

std::string join(const std::vector<std::string_view>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

template <class T>
void check_and_store(const Text<T>& text, Config& config, const std::string& input) {
  if (input.empty() && !text.may_be_empty) {
    throw ConfigError("expected a non-empty " + std::string(text.type_name == "PATH" ? "path" : "value") +
                      ", got \"\"");
  }
  config.*text.field = input;
}

void check_and_store(const Flag& flag, Config& config, const std::string& input) {
  if (input.empty() || input == "true") {
    config.*flag.field = true;
  } else if (input == "false") {
    config.*flag.field = false;
  } else {
    throw ConfigError("expected true or false, got " + quoted(input));
  }
}

void check_and_store(const Choice& choice, Config& config, const std::string& input) {
  for (const auto& allowed : choice.choices) {
    if (input == allowed) {
      config.*choice.field = input;
      return;
    }
  }
  throw ConfigError("expected one of " + join(choice.choices, ", ") + ", got " + quoted(input));
}

void check_and_store(const Integer& integer, Config& config, const std::string& input) {
  int number = 0;
  const char* end = input.data() + input.size();
  auto [stop, error] = std::from_chars(input.data(), end, number);
  if (input.empty() || error != std::errc() || stop != end || number < integer.min || number > integer.max) {
    throw ConfigError("expected an integer between " + std::to_string(integer.min) + " and " +
                      std::to_string(integer.max) + ", got " + quoted(input));
  }
  config.*integer.field = number;
}

void check_and_store(const Size& size, Config& config, const std::string& input) {
  std::uint64_t bytes = parse_size(input);  // throws on bad syntax
  if (bytes < size.min || bytes > size.max) {
    throw ConfigError("expected a size between " + format_size(size.min) + " and " + format_size(size.max) + ", got " +
                      quoted(input));
  }
  config.*size.field = bytes;
}

void check_and_store(const Duration& duration, Config& config, const std::string& input) {
  Millis parsed = parse_duration(input);  // throws on bad syntax
  if (parsed < duration.min) {
    throw ConfigError("expected a duration of at least " + format_duration(duration.min) + ", got " + quoted(input) +
                      (input != "0" && parsed.count() == 0 ? " (durations are rounded to milliseconds)" : ""));
  }
  config.*duration.field = parsed;
}

// A namespace's name is a DNS-1123 label: lower-case letters, digits and '-', starting and ending
// with a letter or digit, at most 63 characters.
bool is_namespace_name(std::string_view name) {
  auto alphanumeric = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (name.empty() || name.size() > 63 || !alphanumeric(name.front()) || !alphanumeric(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return alphanumeric(c) || c == '-'; });
}

std::string trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return std::string(text);
}

// "team-a, team-b" -> {team-a, team-b}; "*" -> {*}; "" (or spaces) -> {}.
void check_and_store(const NamespaceList& list, Config& config, const std::string& input) {
  std::vector<std::string> names;
  if (!trimmed(input).empty()) {
    for (std::size_t start = 0;;) {
      const std::size_t comma = std::min(input.find(',', start), input.size());
      std::string name = trimmed(std::string_view(input).substr(start, comma - start));
      if (name.empty())
        throw ConfigError("expected namespace names separated by commas, got an empty name in " + quoted(input));
      if (name == "*" && !list.star_means_all)
        throw ConfigError("\"*\" is not a namespace name: leave the setting empty for every namespace, or give names "
                          "separated by commas, got " + quoted(input));
      if (name != "*" && !is_namespace_name(name)) {
        throw ConfigError("\"" + name + "\" is not a namespace name (lower-case letters, digits and '-', at most 63 "
                          "characters, starting and ending with a letter or digit); give names separated by commas" +
                          std::string(list.star_means_all ? ", or \"*\" for every namespace" : ""));
      }
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
      if (comma == input.size()) break;
      start = comma + 1;
    }
  }
  if (names.size() > 1 && std::find(names.begin(), names.end(), "*") != names.end())
    throw ConfigError("\"*\" already means every namespace: give it alone, or only names, got " + quoted(input));
  config.*list.field = std::move(names);
}

template <class T>
std::string print(const Text<T>& text, const Config& config) {
  if constexpr (std::is_same_v<T, path>) {
    return (config.*text.field).string();
  } else {
    return config.*text.field;
  }
}
std::string print(const Choice& choice, const Config& config) { return config.*choice.field; }
std::string print(const Flag& flag, const Config& config) { return config.*flag.field ? "true" : "false"; }
std::string print(const Integer& integer, const Config& config) { return std::to_string(config.*integer.field); }
std::string print(const Size& size, const Config& config) { return format_size(config.*size.field); }
std::string print(const Duration& duration, const Config& config) { return format_duration(config.*duration.field); }
std::string print(const NamespaceList& list, const Config& config) {
  std::string out;
  for (const auto& name : config.*list.field) out += (out.empty() ? "" : ",") + name;
  return out;
}

template <class T>
std::string placeholder(const Text<T>& text) {
  return std::string(text.type_name);
}
std::string placeholder(const Choice& choice) { return join(choice.choices, "|"); }
std::string placeholder(const Flag&) { return "BOOL"; }
std::string placeholder(const Integer&) { return "INT"; }
std::string placeholder(const Size&) { return "SIZE"; }
std::string placeholder(const Duration&) { return "DURATION"; }
std::string placeholder(const NamespaceList&) { return "NAMESPACES"; }

std::vector<Setting> make_table() {
  using std::chrono::milliseconds;
  return {
      {"state-dir", "--state-dir", "Directory holding state.db and the fingerprint key",
       Text<path>{&Config::state_dir, "PATH", false}},
      {"log.format", "--log-format", "Log line format", Choice{&Config::log_format, {"text", "json"}}},
      {"log.level", "--log-level", "Lowest level that is logged",
       Choice{&Config::log_level, {"trace", "debug", "info", "warn", "error"}}},
      {"log.file", "--log-file", "File the log is appended to; empty logs to stderr",
       Text<std::string>{&Config::log_file, "PATH", true}},
      {"manifests.dir", "--manifests", "Folder of BackupStorage and Secret manifests to watch (offline mode)",
       Text<path>{&Config::manifests, "PATH", true}},
      {"manifests.debounce", "--manifests-debounce", "Quiet time after a manifest change before it is read",
       Duration{&Config::manifests_debounce, kPositive}},
      {"manifests.poll-interval", "--manifests-poll-interval",
       "How often the manifests directory is rescanned when inotify is unavailable",
       Duration{&Config::manifests_poll_interval, kPositive}},
      {"manifests.delete-grace", "--manifests-delete-grace",
       "How long an object must stay absent from the manifests before it is deleted; 0 deletes at once",
       Duration{&Config::manifests_delete_grace, kZeroAllowed}},
      {"manifests.max-file-size", "--manifests-max-file-size",
       "A manifest file larger than this is not read (it counts as failing: nothing is deleted)",
       Size{&Config::manifests_max_file_size, 1024, kMaxBudgetBytes}},
      {"manifests.max-documents-per-file", "--manifests-max-documents-per-file",
       "Documents read from one manifest file; the rest of a longer file is not (it counts as failing)",
       Integer{&Config::manifests_max_documents_per_file, 1, 100'000'000}},
      {"manifests.max-objects", "--manifests-max-objects",
       "BackupStorages and Secrets loaded from all manifest files together; files whose objects go past it count as "
       "failing",
       Integer{&Config::manifests_max_objects, 1, 100'000'000}},
      {"yaml.max-alias-expansion", "--yaml-max-alias-expansion",
       "Bytes that YAML aliases may expand to: in all manifest files together, and in each kubeconfig",
       Size{&Config::yaml_max_alias_expansion, 1024, kMaxBudgetBytes}},
      {"local.root", "--local-root",
       "Directory that absolute volume paths in manifests are resolved under, as a container sees its mounts",
       Text<path>{&Config::local_root, "PATH", false}},
      {"local.io-threads", "--local-io-threads", "Threads doing file I/O for local volumes",
       Integer{&Config::local_io_threads, 1, 64}},
      {"local.volume-mode", "--local-volume-mode",
       "Kubernetes mode: reach local volumes through a Job that mounts them (job), or write them directly under "
       "local.root (direct, which needs a local.root other than /); auto: job against an API server",
       Choice{&Config::local_volume_mode, {"auto", "job", "direct"}}},
      {"local.job-image", "--volume-job-image", "Image the volume Jobs run (stowage's own; its entrypoint is stowage)",
       Text<std::string>{&Config::volume_job_image, "IMAGE", false}},
      {"reconcile.workers", "--workers", "Reconciles that may run at the same time",
       Integer{&Config::workers, 1, 1024}},
      {"reconcile.retry-base", "--retry-base", "First delay before retrying a failed reconcile",
       Duration{&Config::retry_base, kPositive}},
      {"reconcile.retry-cap", "--retry-cap", "Longest delay between retries of a failing reconcile",
       Duration{&Config::retry_cap, kPositive}},
      {"reconcile.permanent-retry", "--permanent-retry",
       "Delay before retrying a reconcile that failed in a way that needs a change to fix",
       Duration{&Config::permanent_retry, kPositive}},
      {"reconcile.revalidate-period", "--revalidate-period",
       "How often a Ready storage's backend is checked again (a revoked key or a deleted bucket turns it NotReady); 0 never",
       Duration{&Config::revalidate_period, kZeroAllowed}},
      {"reconcile.max-interrupted", "--reconcile-max-interrupted",
       "Attempts in a row that the process's end (a crash, kill -9) cut short, after which a storage is parked: "
       "retried only every reconcile.permanent-retry until an attempt finishes",
       Integer{&Config::max_interrupted, 1, 1000}},
      {"store.commit-interval", "--commit-interval",
       "How long state writes are grouped before one commit; 0 commits on the next reactor turn",
       Duration{&Config::commit_interval, kZeroAllowed}},
      {"store.synchronous", "--store-synchronous", "SQLite synchronous mode for state.db",
       Choice{&Config::synchronous, {"full", "normal"}}},
      {"store.max-pending-bytes", "--store-max-pending-bytes",
       "State writes waiting to be committed (the disk is full or failing) above which no new work is claimed and "
       "/readyz fails, until the writer catches up",
       Size{&Config::store_max_pending_bytes, 1024, kMaxBudgetBytes}},
      {"shutdown.grace-period", "--shutdown-grace-period",
       "How long running reconciles may take to finish after SIGTERM", Duration{&Config::shutdown_grace, kPositive}},
      {"operator-version", "--operator-version", "operatorVersion written into each new metadata.yaml",
       Text<std::string>{&Config::operator_version, "TEXT", false}},
      {"gcs.endpoint", "--gcs-endpoint",
       "Replaces https://storage.googleapis.com for every GCS storage (private endpoints, tests); authentication kept",
       Text<std::string>{&Config::gcs_endpoint, "URL", true}},
      {"azure.endpoint", "--azure-endpoint",
       "Replaces https://{account}.blob.core.windows.net for every Azure storage without a connection string "
       "({account} becomes spec.storage.azure.storageAccount): sovereign clouds, Azure Stack, tests",
       Text<std::string>{&Config::azure_endpoint, "URL", true}},
      {"backends.connect-timeout", "--backend-connect-timeout", "Connect and TLS handshake timeout for cloud backends",
       Duration{&Config::backend_connect_timeout, kPositive}},
      {"backends.request-timeout", "--backend-request-timeout",
       "Timeout of one request/response exchange with a cloud backend", Duration{&Config::backend_request_timeout, kPositive}},
      {"backends.max-connections", "--backend-max-connections",
       "Connections per cloud endpoint when a storage's maxConnections is 0", Integer{&Config::backend_max_connections, 1, 1024}},
      {"ambient-credentials.namespaces", "--ambient-credentials-namespaces",
       "Kubernetes mode: namespaces (comma-separated, or * for all) whose storages without secretName may use this "
       "process's own cloud credentials (AWS_* environment, GCE metadata server); empty: none",
       NamespaceList{&Config::ambient_credentials_namespaces}},
      {"kube.kubeconfig", "--kubeconfig",
       "Kubeconfig file for the Kubernetes mode; empty: KUBECONFIG, then the in-cluster service account, then ~/.kube/config",
       Text<std::string>{&Config::kubeconfig, "PATH", true}},
      {"kube.max-kubeconfig-size", "--max-kubeconfig-size", "A kubeconfig file larger than this is refused at start",
       Size{&Config::kube_max_kubeconfig_size, 1024, kMaxBudgetBytes}},
      {"kube.context", "--context", "Kubeconfig context to use; empty: its current-context",
       Text<std::string>{&Config::kube_context, "NAME", true}},
      {"kube.namespace", "--namespace",
       "Only serve BackupStorages (and read Secrets, Repositories, Jobs) in these namespaces: comma-separated, or the "
       "flag given once per namespace; one watch per namespace, no cluster-wide access needed; empty: all namespaces",
       NamespaceList{&Config::kube_namespaces, false}},
      {"kube.qps", "--kube-api-qps",
       "Requests per second to the API server, on average (client-side rate limit); 0 disables the limit",
       Integer{&Config::kube_qps, 0, 100000}},
      {"kube.burst", "--kube-api-burst", "Requests to the API server that may go at once above kube.qps",
       Integer{&Config::kube_burst, 1, 100000}},
      {"kube.watch-idle-timeout", "--watch-idle-timeout",
       "A watch on which nothing arrives for this long (no event, no bookmark: the API server sends one about "
       "every minute) is taken for a stalled connection and opened again from its last resourceVersion",
       Duration{&Config::kube_watch_idle_timeout, Millis{1000}}},
      {"metrics.bind-address", "--metrics-bind-address",
       "Where /metrics is served (Prometheus text), e.g. :8080 or 127.0.0.1:8080; 0 disables it",
       Text<std::string>{&Config::metrics_bind_address, "ADDRESS", false}},
      {"health.bind-address", "--health-probe-bind-address",
       "Where /healthz and /readyz are served, e.g. :8081; 0 disables them",
       Text<std::string>{&Config::health_bind_address, "ADDRESS", false}},
      {"webhook.bind-address", "--webhook-bind-address",
       "Kubernetes mode: where the BackupStorage admission webhook is served over HTTPS, e.g. :9443; 0 disables it",
       Text<std::string>{&Config::webhook_bind_address, "ADDRESS", false}},
      {"webhook.cert-dir", "--webhook-cert-dir",
       "Directory holding the webhook's serving certificate, tls.crt and tls.key (read again when they change)",
       Text<path>{&Config::webhook_cert_dir, "PATH", false}},
      {"webhook.cert-self-signed", "--webhook-cert-self-signed",
       "Kubernetes mode: make the webhook's CA and serving certificate, keep them in the Secret webhook.cert-secret "
       "(shared by the replicas), renew them before they expire and write the CA into the webhook configurations' "
       "caBundle; no cert-manager needed",
       Flag{&Config::webhook_cert_self_signed}},
      {"webhook.service", "--webhook-service",
       "The webhook's Service: the serving certificate is for <service>.<namespace>.svc (and .svc.cluster.local)",
       Text<std::string>{&Config::webhook_service, "NAME", false}},
      {"webhook.service-namespace", "--webhook-service-namespace",
       "Namespace of the webhook's Service and of the certificate Secret; empty: the pod's namespace (or the "
       "kubeconfig context's)",
       Text<std::string>{&Config::webhook_service_namespace, "NAME", true}},
      {"webhook.cert-secret", "--webhook-cert-secret",
       "Secret (kubernetes.io/tls, with ca.crt) holding the self-signed CA and serving certificate",
       Text<std::string>{&Config::webhook_cert_secret, "NAME", false}},
      {"webhook.mutating-configuration", "--webhook-mutating-configuration",
       "MutatingWebhookConfiguration whose webhooks get the self-signed CA as caBundle; empty: none",
       Text<std::string>{&Config::webhook_mutating_configuration, "NAME", true}},
      {"webhook.validating-configuration", "--webhook-validating-configuration",
       "ValidatingWebhookConfiguration whose webhooks get the self-signed CA as caBundle; empty: none",
       Text<std::string>{&Config::webhook_validating_configuration, "NAME", true}},
      {"leader-election.enabled", "--leader-elect",
       "Kubernetes mode: reconcile only while holding a coordination.k8s.io Lease (run several replicas)",
       Flag{&Config::leader_elect}},
      {"leader-election.id", "--leader-election-id", "Name of the Lease", Text<std::string>{&Config::leader_election_id, "NAME", false}},
      {"leader-election.namespace", "--leader-election-namespace",
       "Namespace of the Lease; empty: the pod's namespace (or the kubeconfig context's)",
       Text<std::string>{&Config::leader_election_namespace, "NAME", true}},
      {"leader-election.lease-duration", "--leader-elect-lease-duration",
       "How long a standby waits after the last renewal before taking the Lease over",
       Duration{&Config::leader_lease_duration, kPositive}},
      {"leader-election.renew-deadline", "--leader-elect-renew-deadline",
       "How long the leader keeps trying to renew before it gives leadership up (and exits)",
       Duration{&Config::leader_renew_deadline, kPositive}},
      {"leader-election.retry-period", "--leader-elect-retry-period", "How often candidates and the leader try",
       Duration{&Config::leader_retry_period, kPositive}},
  };
}

}  // namespace

const std::vector<Setting>& table() {
  static const std::vector<Setting> rows = make_table();
  return rows;
}

std::string env_name(std::string_view key) {
  std::string name = "STOWAGE_";
  for (char c : key) {
    name += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

void assign(const Setting& setting, Config& config, const std::string& text) {
  std::visit([&](const auto& value) { check_and_store(value, config, text); }, setting.value);
}

std::string value_of(const Setting& setting, const Config& config) {
  return std::visit([&](const auto& value) { return print(value, config); }, setting.value);
}

std::string type_name(const Setting& setting) {
  return std::visit([](const auto& value) { return placeholder(value); }, setting.value);
}

}  // namespace stowage::config::detail

namespace stowage::config {

namespace {
constexpr std::pair<std::string_view, int> kSizeSuffixes[] = {{"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
}

std::uint64_t parse_size(const std::string& text) {
  std::string_view digits = text;
  int shift = 0;
  for (auto [suffix, bits] : kSizeSuffixes) {
    if (digits.ends_with(suffix)) {
      digits.remove_suffix(suffix.size());
      shift = bits;
      break;
    }
  }
  std::uint64_t number = 0;
  const char* end = digits.data() + digits.size();
  auto [stop, error] = std::from_chars(digits.data(), end, number);
  if (digits.empty() || error != std::errc() || stop != end || number > (UINT64_MAX >> shift)) {
    throw ConfigError("expected a size in bytes (1048576) or with Ki, Mi, Gi or Ti (512Ki, 4Mi), got \"" + text +
                      "\"");
  }
  return number << shift;
}

std::string format_size(std::uint64_t bytes) {
  for (auto [suffix, bits] : kSizeSuffixes) {
    const std::uint64_t unit = std::uint64_t{1} << bits;
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + std::string(suffix);
  }
  return std::to_string(bytes);
}

const std::vector<SettingInfo>& settings() {
  static const std::vector<SettingInfo> infos = [] {
    std::vector<SettingInfo> out;
    const Config defaults;
    for (const auto& row : detail::table()) {
      out.push_back({std::string(row.key), std::string(row.flag), detail::env_name(row.key),
                     detail::value_of(row, defaults), std::string(row.description)});
    }
    return out;
  }();
  return infos;
}

}  // namespace stowage::config
