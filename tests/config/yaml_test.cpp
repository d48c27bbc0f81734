// to_yaml: `stowage config print > f.yaml; stowage --config f.yaml` gives the same configuration.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace stowage::config;
using namespace stowage::config::testing;
using std::chrono::milliseconds;

namespace {

bool same_settings(const Config& a, const Config& b) {
  return a.state_dir == b.state_dir && a.log_format == b.log_format && a.log_level == b.log_level &&
         a.log_file == b.log_file && a.manifests == b.manifests && a.manifests_debounce == b.manifests_debounce &&
         a.manifests_poll_interval == b.manifests_poll_interval &&
         a.manifests_delete_grace == b.manifests_delete_grace &&
         a.manifests_max_file_size == b.manifests_max_file_size &&
         a.manifests_max_documents_per_file == b.manifests_max_documents_per_file &&
         a.manifests_max_objects == b.manifests_max_objects &&
         a.yaml_max_alias_expansion == b.yaml_max_alias_expansion &&
         a.kube_max_kubeconfig_size == b.kube_max_kubeconfig_size && a.local_root == b.local_root &&
         a.local_io_threads == b.local_io_threads &&
         a.local_volume_mode == b.local_volume_mode && a.volume_job_image == b.volume_job_image && a.workers == b.workers && a.retry_base == b.retry_base &&
         a.retry_cap == b.retry_cap && a.permanent_retry == b.permanent_retry &&
         a.revalidate_period == b.revalidate_period && a.max_interrupted == b.max_interrupted &&
         a.commit_interval == b.commit_interval && a.synchronous == b.synchronous &&
         a.shutdown_grace == b.shutdown_grace && a.operator_version == b.operator_version &&
         a.gcs_endpoint == b.gcs_endpoint && a.backend_connect_timeout == b.backend_connect_timeout &&
         a.backend_request_timeout == b.backend_request_timeout &&
         a.backend_max_connections == b.backend_max_connections &&
         a.ambient_credentials_namespaces == b.ambient_credentials_namespaces && a.kubeconfig == b.kubeconfig &&
         a.kube_context == b.kube_context && a.kube_namespaces == b.kube_namespaces &&
         a.kube_qps == b.kube_qps && a.kube_burst == b.kube_burst &&
         a.kube_watch_idle_timeout == b.kube_watch_idle_timeout &&
         a.metrics_bind_address == b.metrics_bind_address && a.health_bind_address == b.health_bind_address &&
         a.webhook_bind_address == b.webhook_bind_address && a.webhook_cert_dir == b.webhook_cert_dir &&
         a.leader_elect == b.leader_elect && a.leader_election_id == b.leader_election_id &&
         a.leader_election_namespace == b.leader_election_namespace &&
         a.leader_lease_duration == b.leader_lease_duration && a.leader_renew_deadline == b.leader_renew_deadline &&
         a.leader_retry_period == b.leader_retry_period && a.webhook_cert_dir == b.webhook_cert_dir &&
         a.webhook_cert_self_signed == b.webhook_cert_self_signed && a.webhook_service == b.webhook_service &&
         a.webhook_service_namespace == b.webhook_service_namespace &&
         a.webhook_cert_secret == b.webhook_cert_secret &&
         a.webhook_mutating_configuration == b.webhook_mutating_configuration &&
         a.webhook_validating_configuration == b.webhook_validating_configuration;
}

Config reload(const Config& config) {
  TempDir dir;
  const std::string file = dir.write("printed.yaml", to_yaml(config));
  return load_with({"--config", file});
}

}  // namespace

TEST_CASE("to_yaml prints every setting, nested like the file") {
  CHECK(to_yaml(Config{}) ==
        "state-dir: ./var/stowage\n"
        "log:\n"
        "  format: text\n"
        "  level: info\n"
        "  file: \"\"\n"
        "manifests:\n"
        "  dir: \"\"\n"
        "  debounce: 100ms\n"
        "  poll-interval: 2s\n"
        "  delete-grace: 30s\n"
        "  max-file-size: 4Mi\n"
        "  max-documents-per-file: 1000\n"
        "  max-objects: 10000\n"
        "yaml:\n"
        "  max-alias-expansion: 4Mi\n"
        "local:\n"
        "  root: /\n"
        "  io-threads: 4\n"
        "  volume-mode: auto\n"
        "  job-image: stowage:0.1.0\n"
        "reconcile:\n"
        "  workers: 16\n"
        "  retry-base: 1s\n"
        "  retry-cap: 5m\n"
        "  permanent-retry: 10m\n"
        "  revalidate-period: 10m\n"
        "  max-interrupted: 5\n"
        "store:\n"
        "  commit-interval: 5ms\n"
        "  synchronous: full\n"
        "  max-pending-bytes: 64Mi\n"
        "shutdown:\n"
        "  grace-period: 10s\n"
        "operator-version: v0.1.0\n"
        "gcs:\n"
        "  endpoint: \"\"\n"
        "azure:\n"
        "  endpoint: \"\"\n"
        "backends:\n"
        "  connect-timeout: 10s\n"
        "  request-timeout: 30s\n"
        "  max-connections: 16\n"
        "ambient-credentials:\n"
        "  namespaces: \"\"\n"
        "kube:\n"
        "  kubeconfig: \"\"\n"
        "  max-kubeconfig-size: 4Mi\n"
        "  context: \"\"\n"
        "  namespace: \"\"\n"
        "  qps: 20\n"
        "  burst: 30\n"
        "  watch-idle-timeout: 1m30s\n"
        "metrics:\n"
        "  bind-address: 0\n"
        "health:\n"
        "  bind-address: 0\n"
        "webhook:\n"
        "  bind-address: 0\n"
        "  cert-dir: /tmp/k8s-webhook-server/serving-certs\n"
        "  cert-self-signed: false\n"
        "  service: stowage-webhook\n"
        "  service-namespace: \"\"\n"
        "  cert-secret: stowage-webhook-cert\n"
        "  mutating-configuration: stowage\n"
        "  validating-configuration: stowage\n"
        "leader-election:\n"
        "  enabled: false\n"
        "  id: stowage-leader\n"
        "  namespace: \"\"\n"
        "  lease-duration: 15s\n"
        "  renew-deadline: 10s\n"
        "  retry-period: 2s\n");
}

TEST_CASE("the defaults round-trip through to_yaml and the loader") {
  CHECK(same_settings(reload(Config{}), Config{}));
}

TEST_CASE("a configuration with every setting changed round-trips") {
  const Config changed = load_with({"--state-dir",
                                    "/data/state dir",
                                    "--log-format",
                                    "json",
                                    "--log-level",
                                    "trace",
                                    "--log-file",
                                    "/var/log/s: x.log",
                                    "--manifests",
                                    "null",
                                    "--manifests-debounce",
                                    "1.5s",
                                    "--manifests-poll-interval",
                                    "1h0m1ms",
                                    "--manifests-delete-grace",
                                    "0",
                                    "--manifests-max-file-size",
                                    "1536Ki",
                                    "--manifests-max-documents-per-file",
                                    "7",
                                    "--manifests-max-objects",
                                    "100000000",
                                    "--yaml-max-alias-expansion",
                                    "1048577",
                                    "--max-kubeconfig-size",
                                    "1Ti",
                                    "--local-root",
                                    "~",
                                    "--local-io-threads",
                                    "64",
                                    "--local-volume-mode",
                                    "job",
                                    "--volume-job-image",
                                    "registry.example/stowage:1.2",
                                    "--workers",
                                    "1",
                                    "--retry-base",
                                    "250ms",
                                    "--retry-cap",
                                    "90s",
                                    "--permanent-retry",
                                    "2h45m",
                                    "--revalidate-period",
                                    "0",
                                    "--reconcile-max-interrupted",
                                    "2",
                                    "--commit-interval",
                                    "0",
                                    "--store-synchronous",
                                    "normal",
                                    "--shutdown-grace-period",
                                    "1ms",
                                    "--operator-version",
                                    "'quoted' #1",
                                    "--ambient-credentials-namespaces",
                                    " team-a ,team-b",
                                    "--kubeconfig",
                                    "/etc/kube config",
                                    "--context",
                                    "prod: east",
                                    "--namespace",
                                    "backups",
                                    "--kube-api-qps",
                                    "0",
                                    "--kube-api-burst",
                                    "1",
                                    "--watch-idle-timeout",
                                    "2.5s",
                                    "--metrics-bind-address",
                                    "[::1]:9090",
                                    "--health-probe-bind-address",
                                    ":8081",
                                    "--webhook-bind-address",
                                    ":9443",
                                    "--webhook-cert-dir",
                                    "/run/webhook certs",
                                    "--leader-elect",
                                    "--leader-election-id",
                                    "x",
                                    "--leader-election-namespace",
                                    "ops",
                                    "--leader-elect-lease-duration",
                                    "30s",
                                    "--leader-elect-renew-deadline",
                                    "20s",
                                    "--leader-elect-retry-period",
                                    "4s",
                                    "--webhook-cert-dir",
                                    "/run/certs",
                                    "--webhook-cert-self-signed",
                                    "--webhook-service",
                                    "hook",
                                    "--webhook-service-namespace",
                                    "ops",
                                    "--webhook-cert-secret",
                                    "hook-tls",
                                    "--webhook-mutating-configuration",
                                    "",
                                    "--webhook-validating-configuration",
                                    "v"});
  CHECK(changed.webhook_cert_self_signed);
  CHECK(changed.webhook_mutating_configuration.empty());
  CHECK(changed.leader_elect);
  CHECK(changed.manifests == "null");
  CHECK(changed.manifests_poll_interval == milliseconds(3'600'001));
  CHECK(changed.manifests_delete_grace == milliseconds(0));
  CHECK(changed.manifests_max_file_size == 1536 * 1024);
  CHECK(changed.yaml_max_alias_expansion == 1048577);
  CHECK(changed.kube_max_kubeconfig_size == std::uint64_t{1} << 40);
  CHECK(changed.ambient_credentials_namespaces == std::vector<std::string>{"team-a", "team-b"});
  const Config again = reload(changed);
  CHECK(same_settings(again, changed));
  CHECK(to_yaml(again) == to_yaml(changed));
}
