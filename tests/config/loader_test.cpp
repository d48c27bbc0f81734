// The loader: defaults, the four layers in order, errors from the environment and flags, and the
// checks that span two settings.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace stowage::config;
using namespace stowage::config::testing;
using std::chrono::milliseconds;

TEST_CASE("with nothing set, every setting has its documented default") {
  const Config c = load_with({});
  CHECK(c.state_dir == "./var/stowage");
  CHECK(c.log_format == "text");
  CHECK(c.log_level == "info");
  CHECK(c.log_file.empty());
  CHECK(c.manifests.empty());
  CHECK(c.manifests_debounce == milliseconds(100));
  CHECK(c.manifests_poll_interval == milliseconds(2000));
  CHECK(c.local_root == "/");
  CHECK(c.local_io_threads == 4);
  CHECK(c.workers == 16);
  CHECK(c.retry_base == milliseconds(1000));
  CHECK(c.retry_cap == milliseconds(300'000));
  CHECK(c.permanent_retry == milliseconds(600'000));
  CHECK(c.commit_interval == milliseconds(5));
  CHECK(c.synchronous == "full");
  CHECK(c.shutdown_grace == milliseconds(10'000));
  CHECK(c.operator_version == "v0.1.0");
  CHECK(c.config_file.empty());
}

TEST_CASE("each layer overrides the one below: defaults < file < environment < flags") {
  TempDir dir;
  const std::string file = dir.write("config.yaml",
                                     "reconcile:\n"
                                     "  workers: 2\n"      // file only
                                     "  retry-base: 2s\n"  // file, then environment
                                     "  retry-cap: 3m\n"   // file, environment, then flag
                                     "log:\n"
                                     "  level: debug\n");
  const Env env{{"STOWAGE_CONFIG", file},
                {"STOWAGE_RECONCILE_RETRY_BASE", "3s"},
                {"STOWAGE_RECONCILE_RETRY_CAP", "4m"},
                {"STOWAGE_LOG_FORMAT", "json"}};  // environment, then flag
  const Config c = load_with({"--retry-cap", "6m", "--log-format=text"}, env);
  CHECK(c.config_file == file);
  CHECK(c.local_io_threads == 4);               // default
  CHECK(c.workers == 2);                        // file
  CHECK(c.log_level == "debug");                // file
  CHECK(c.retry_base == milliseconds(3000));    // environment over file
  CHECK(c.retry_cap == milliseconds(360'000));  // flag over environment over file
  CHECK(c.log_format == "text");                // flag over environment
}

TEST_CASE("the --config flag wins over STOWAGE_CONFIG, and an empty one means no file") {
  TempDir dir;
  const std::string from_env = dir.write("env.yaml", "reconcile: {workers: 3}\n");
  const std::string from_flag = dir.write("flag.yaml", "reconcile: {workers: 5}\n");
  CHECK(load_with({}, {{"STOWAGE_CONFIG", from_env}}).workers == 3);
  CHECK(load_with({"--config", from_flag}, {{"STOWAGE_CONFIG", from_env}}).workers == 5);
  CHECK(load_with({"--config", ""}, {{"STOWAGE_CONFIG", from_env}}).workers == 16);
  CHECK(load_with({}, {{"STOWAGE_CONFIG", ""}}).config_file.empty());
}

TEST_CASE("unknown STOWAGE_* environment variables are ignored") {
  CHECK(load_with({}, {{"STOWAGE_RECONCILE_WROKERS", "many"}, {"STOWAGE_TOKEN", "x"}}).workers == 16);
}

TEST_CASE("an empty environment value or flag sets a setting that may be empty") {
  TempDir dir;
  const std::string file = dir.write("c.yaml", "log: {file: /var/log/stowage.log}\nmanifests: {dir: /m}\n");
  CHECK(load_with({}, {{"STOWAGE_CONFIG", file}}).log_file == "/var/log/stowage.log");
  CHECK(load_with({}, {{"STOWAGE_CONFIG", file}, {"STOWAGE_LOG_FILE", ""}}).log_file.empty());
  CHECK(load_with({"--log-file="}, {{"STOWAGE_CONFIG", file}}).log_file.empty());
  CHECK(load_with({"--manifests", ""}, {{"STOWAGE_CONFIG", file}}).manifests.empty());
}

TEST_CASE("a bad environment value names the variable and the value") {
  CHECK(load_error({}, {{"STOWAGE_RECONCILE_RETRY_BASE", "5 parsecs"}}) ==
        "environment STOWAGE_RECONCILE_RETRY_BASE: bad duration \"5 parsecs\": use a number with a unit ns, us, "
        "ms, s, m or h, e.g. 500ms or 1m30s");
  CHECK(load_error({}, {{"STOWAGE_RECONCILE_WORKERS", "0"}}) ==
        "environment STOWAGE_RECONCILE_WORKERS: expected an integer between 1 and 1024, got \"0\"");
  CHECK(load_error({}, {{"STOWAGE_LOCAL_IO_THREADS", "65"}}) ==
        "environment STOWAGE_LOCAL_IO_THREADS: expected an integer between 1 and 64, got \"65\"");
  CHECK(load_error({}, {{"STOWAGE_STATE_DIR", ""}}) ==
        "environment STOWAGE_STATE_DIR: expected a non-empty path, got \"\"");
}

TEST_CASE("a bad flag value names the flag and the value") {
  CHECK(load_error({"--log-format", "xml"}) == "flag --log-format: expected one of text, json, got \"xml\"");
  CHECK(load_error({"--log-level=verbose"}) ==
        "flag --log-level: expected one of trace, debug, info, warn, error, got \"verbose\"");
  CHECK(load_error({"--store-synchronous", "off"}) ==
        "flag --store-synchronous: expected one of full, normal, got \"off\"");
  CHECK(load_error({"--workers", "12x"}) == "flag --workers: expected an integer between 1 and 1024, got \"12x\"");
  CHECK(load_error({"--workers", "99999999999"}) ==
        "flag --workers: expected an integer between 1 and 1024, got \"99999999999\"");
  CHECK(load_error({"--retry-base", "-1s"}) == "flag --retry-base: bad duration \"-1s\": must not be negative");
}

TEST_CASE("durations must be positive, except the commit interval") {
  CHECK(load_error({"--shutdown-grace-period", "0"}) ==
        "flag --shutdown-grace-period: expected a duration of at least 1ms, got \"0\"");
  CHECK(load_error({"--manifests-debounce", "100us"}) ==
        "flag --manifests-debounce: expected a duration of at least 1ms, got \"100us\" (durations are rounded to "
        "milliseconds)");
  CHECK(load_with({"--commit-interval", "0"}).commit_interval == milliseconds(0));
  CHECK(load_with({}, {{"STOWAGE_STORE_COMMIT_INTERVAL", "0s"}}).commit_interval == milliseconds(0));
}

TEST_CASE("the watch idle timeout is 90 s by default and at least a second") {
  CHECK(load_with({}).kube_watch_idle_timeout == milliseconds(90'000));
  CHECK(load_with({"--watch-idle-timeout", "3s"}).kube_watch_idle_timeout == milliseconds(3000));
  CHECK(load_with({}, {{"STOWAGE_KUBE_WATCH_IDLE_TIMEOUT", "2m"}}).kube_watch_idle_timeout == milliseconds(120'000));
  CHECK(load_error({"--watch-idle-timeout", "500ms"}) ==
        "flag --watch-idle-timeout: expected a duration of at least 1s, got \"500ms\"");
}

TEST_CASE("sizes are bytes or a binary suffix, within the setting's range") {
  const Config defaults = load_with({});
  CHECK(defaults.manifests_max_file_size == 4u << 20);
  CHECK(defaults.manifests_max_documents_per_file == 1000);
  CHECK(defaults.manifests_max_objects == 10000);
  CHECK(defaults.yaml_max_alias_expansion == 4u << 20);
  CHECK(defaults.kube_max_kubeconfig_size == 4u << 20);
  CHECK(load_with({"--manifests-max-file-size", "512Ki"}).manifests_max_file_size == 512 * 1024);
  CHECK(load_with({}, {{"STOWAGE_YAML_MAX_ALIAS_EXPANSION", "2097152"}}).yaml_max_alias_expansion == 2u << 20);
  CHECK(load_with({"--max-kubeconfig-size", "1Gi"}).kube_max_kubeconfig_size == 1u << 30);
  CHECK(load_error({"--manifests-max-file-size", "4MB"}) ==
        "flag --manifests-max-file-size: expected a size in bytes (1048576) or with Ki, Mi, Gi or Ti (512Ki, 4Mi), got "
        "\"4MB\"");
  CHECK(load_error({"--max-kubeconfig-size", "10"}) ==
        "flag --max-kubeconfig-size: expected a size between 1Ki and 1Ti, got \"10\"");
  CHECK(load_error({"--yaml-max-alias-expansion", "18014398509481984Ki"}) ==
        "flag --yaml-max-alias-expansion: expected a size in bytes (1048576) or with Ki, Mi, Gi or Ti (512Ki, 4Mi), "
        "got \"18014398509481984Ki\"");
  CHECK(load_error({"--manifests-max-objects", "0"}) ==
        "flag --manifests-max-objects: expected an integer between 1 and 100000000, got \"0\"");
  CHECK(format_size(4u << 20) == "4Mi");
  CHECK(format_size(1536) == "1536");
  CHECK(format_size(1536 * 1024) == "1536Ki");
  CHECK(parse_size(format_size(12345)) == 12345);
}

TEST_CASE("retry-cap below retry-base is an error naming both and where each came from") {
  TempDir dir;
  const std::string file = dir.write("c.yaml", "reconcile:\n  retry-base: 5s\n");
  CHECK(load_error({"--retry-cap", "2s"}, {{"STOWAGE_CONFIG", file}}) ==
        "reconcile.retry-cap (2s, from flag --retry-cap) must be at least reconcile.retry-base (5s, from " + file +
            ":2:15): raise reconcile.retry-cap or lower reconcile.retry-base");
  CHECK(load_error({}, {{"STOWAGE_RECONCILE_RETRY_BASE", "6m"}}) ==
        "reconcile.retry-cap (5m, from the default) must be at least reconcile.retry-base (6m, from environment "
        "STOWAGE_RECONCILE_RETRY_BASE): raise reconcile.retry-cap or lower reconcile.retry-base");
  CHECK(load_with({"--retry-base", "5m", "--retry-cap", "5m"}).retry_cap == milliseconds(300'000));
}

TEST_CASE("load() without a map reads the process environment") {
  ::setenv("STOWAGE_RECONCILE_WORKERS", "7", 1);
  CLI::App app{"stowage"};
  Loader loader(app);
  const char* argv[] = {"stowage"};
  app.parse(1, argv);
  const int workers = loader.load().workers;
  ::unsetenv("STOWAGE_RECONCILE_WORKERS");
  CHECK(workers == 7);
}

TEST_CASE("reconcile.max-interrupted is 5 by default, set by flag or variable, from 1 to 1000") {
  CHECK(load_with({}).max_interrupted == 5);
  CHECK(load_with({"--reconcile-max-interrupted", "2"}).max_interrupted == 2);
  CHECK(load_with({}, {{"STOWAGE_RECONCILE_MAX_INTERRUPTED", "9"}}).max_interrupted == 9);
  CHECK(load_error({"--reconcile-max-interrupted", "0"}) ==
        "flag --reconcile-max-interrupted: expected an integer between 1 and 1000, got \"0\"");
}
