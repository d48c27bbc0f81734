// The `stowage` command line: subcommands, flags (kubectl's and controller-runtime's names where
// they exist) and exit codes: 0 success, 1 failure, 2 bad usage or configuration.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/logging.hpp"
#include "engine/commands.hpp"
#include "engine/runtime.hpp"
#include "engine/volume_commands.hpp"

namespace stowage::engine {

namespace {

void setup_logging(const config::Config& c) {
  logging::setup(c.log_format == "json" ? logging::Format::Json : logging::Format::Text, c.log_level, c.log_file);
}

// Loads the configuration for a subcommand; prints the error and returns false when it is bad.
bool load(const config::Loader& loader, config::Config& out) {
  try {
    out = loader.load();
    return true;
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return false;
  }
}

}  // namespace

int main_entry(int argc, char** argv) {
  CLI::App app{"stowage: a BackupStorage controller (storage.kubestash.com/v1alpha1)", "stowage"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "stowage 0.1.0");

  auto* run = app.add_subcommand(
      "run", "Keep BackupStorages initialized: from a Kubernetes API server (--kubeconfig, KUBECONFIG, in-cluster) "
             "or, with --manifests DIR, from a folder of manifests");
  config::Loader run_cfg(*run);

  auto* init = app.add_subcommand("init", "Initialize the BackupStorages in some manifests once, then exit");
  config::Loader init_cfg(*init);
  std::vector<std::string> files;
  std::string timeout_text = "60s";
  init->add_option("-f,--filename", files, "Manifest file(s) with BackupStorage and Secret objects")->required();
  init->add_option("--timeout", timeout_text, "Give up on storages still retrying after this long")
      ->capture_default_str();

  auto* get = app.add_subcommand("get", "Show BackupStorages and their status from the state store");
  GetOptions get_opts;
  get->add_option("resource", get_opts.resource, "backupstorages (bs)")->required();
  get->add_option("name", get_opts.name, "Only this BackupStorage");
  get->add_option("-n,--namespace", get_opts.namespace_, "Namespace")->capture_default_str();
  get->add_flag("-A,--all-namespaces", get_opts.all_namespaces, "List across all namespaces");
  get->add_option("-o,--output", get_opts.output, "Output format: wide, yaml, json, name");
  config::Loader get_cfg(*get);  // after -n/--namespace, which is get's own

  auto* cfg = app.add_subcommand("config", "Configuration tools");
  cfg->require_subcommand(1);
  auto* print = cfg->add_subcommand("print", "Print the effective configuration as YAML");
  config::Loader print_cfg(*print);

  // What the volume Jobs run inside the cluster (local.volume-mode=job).
  auto* init_volume_cmd = app.add_subcommand("init-volume", "Write metadata.yaml (create-only) into a mounted volume");
  std::string volume_path, volume_version = "v0.1.0";
  init_volume_cmd->add_option("--path", volume_path, "Where the volume is mounted")->required();
  init_volume_cmd->add_option("--operator-version", volume_version, "operatorVersion written into metadata.yaml");
  auto* wipe_volume_cmd = app.add_subcommand("wipe-volume", "Remove everything under a mounted volume (WipeOut)");
  wipe_volume_cmd->add_option("--path", volume_path, "Where the volume is mounted")->required();
  std::vector<std::string> volume_keep;
  wipe_volume_cmd
      ->add_option("--keep", volume_keep, "Leave this location (relative to --path; another storage's) in place")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

  app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  config::Config c;
  try {
    if (run->parsed()) {
      if (!load(run_cfg, c)) return 2;
      setup_logging(c);
      return run_command(c);
    }
    if (init->parsed()) {
      if (!load(init_cfg, c)) return 2;
      setup_logging(c);
      std::chrono::milliseconds timeout;
      try {
        timeout = config::parse_duration(timeout_text);
      } catch (const config::ConfigError& e) {
        std::fprintf(stderr, "error: flag --timeout: %s\n", e.what());
        return 2;
      }
      std::vector<std::filesystem::path> paths(files.begin(), files.end());
      return init_command(c, paths, timeout);
    }
    if (get->parsed()) {
      if (!load(get_cfg, c)) return 2;
      return get_command(c, get_opts);
    }
    if (init_volume_cmd->parsed()) return init_volume(volume_path, volume_version);
    if (wipe_volume_cmd->parsed()) return wipe_volume(volume_path, volume_keep);
    if (print->parsed()) {
      if (!load(print_cfg, c)) return 2;
      std::printf("%s", config::to_yaml(c).c_str());
      return 0;
    }
    std::printf("stowage 0.1.0\n");
    return 0;
  } catch (const StartupError& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

}  // namespace stowage::engine
