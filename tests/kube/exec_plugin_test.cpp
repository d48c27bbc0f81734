// Exec credential plugins for real: tests/kube/data/exec_plugin/plugin.py run as a child process,
// through run_exec_plugin and through ApiClient against the test API server (and, for mutual TLS,
// `openssl s_server`). What the plugin sees (KUBERNETES_EXEC_INFO, environment, stdin, process
// group, descriptors), caching until expirationTimestamp, one shared run for concurrent requests,
// the re-run after a 401, every failure's message, the timeout, a reactor that keeps running, no
// zombie left behind, and, with a PID-1 reaper running, the right status for every run.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "common/child_reaper.hpp"
#include "common/crypto.hpp"
#include "common/http_client.hpp"
#include "kube/api_client.hpp"
#include "kube/exec_plugin.hpp"
#include "support/api_server.hpp"

using namespace stowage;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using kube::ApiClient;
using kube::ApiError;
using kube::ExecPluginError;

namespace {

const std::string kPlugin = std::string(STOWAGE_SOURCE_DIR) + "/tests/kube/data/exec_plugin/plugin.py";
const std::string kSecretArg = "hunter2-secret-arg";
const std::string kConfigMaps = "/api/v1/namespaces/default/configmaps";

template <class T>
T run(asio::io_context& io, asio::awaitable<T> op) {
  auto f = asio::co_spawn(io, std::move(op), asio::use_future);
  io.restart();
  io.run();
  return f.get();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string str(const json::value& v) { return v.is_string() ? std::string(v.get_string()) : "(not a string)"; }

// How many times the plugin ran (it appends one line per run).
int runs(const fs::path& count_file) {
  std::ifstream in(count_file);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Processes whose parent is this test process, with their state letter (Z: a zombie).
std::map<pid_t, char> children() {
  std::map<pid_t, char> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end != '\0' || pid <= 0) continue;
    std::string stat = slurp(fs::path("/proc") / e->d_name / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 > stat.size()) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = '?';
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) out[static_cast<pid_t>(pid)] = state;
  }
  ::closedir(proc);
  return out;
}

int zombies() {
  int n = 0;
  for (auto [pid, state] : children()) n += state == 'Z';
  return n;
}

// Gone, or a zombie waiting for a parent that is not us (the grandchild re-parented to init).
bool dead(pid_t pid) {
  std::string stat = slurp(fs::path("/proc") / std::to_string(pid) / "stat");
  if (stat.empty()) return true;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

bool eventually_dead(pid_t pid) {
  for (int i = 0; i < 100; ++i) {
    if (dead(pid)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

struct Plugin {
  std::string api_version = kube::kExecApiVersionV1;
  std::string command = kPlugin;
  bool provide_cluster_info = false;
  std::string interactive_mode = "Never";
  std::string install_hint;
  std::vector<std::pair<std::string, std::string>> env;

  kube::ExecConfig exec() const {
    kube::ExecConfig x;
    x.api_version = api_version;
    x.command = command;
    x.args = {"--secret-arg", kSecretArg};
    x.interactive_mode = interactive_mode;
    x.provide_cluster_info = provide_cluster_info;
    x.install_hint = install_hint;
    for (const auto& [name, value] : env) x.env.push_back({name, value});
    return x;
  }
};

// A kubeconfig whose user runs `plugin` (written as JSON, which is YAML too), loaded as stowage
// loads it: the exec section goes through the real kubeconfig parser.
kube::ClientConfig kubeconfig_with_plugin(const test_support::TestApiServer& server, const Plugin& plugin,
                                          const std::string& file_name = "kubeconfig-exec") {
  json::array env;
  for (const auto& [name, value] : plugin.env) env.push_back(json::object{{"name", name}, {"value", value}});
  json::object exec{{"apiVersion", plugin.api_version},
                    {"command", plugin.command},
                    {"args", json::array{"--secret-arg", kSecretArg}},
                    {"env", env},
                    {"interactiveMode", plugin.interactive_mode},
                    {"provideClusterInfo", plugin.provide_cluster_info}};
  if (!plugin.install_hint.empty()) exec["installHint"] = plugin.install_hint;
  json::object cluster{{"server", server.url()},
                       {"certificate-authority", server.certs.ca_cert.string()},
                       {"extensions", json::array{json::object{{"name", "client.authentication.k8s.io/exec"},
                                                               {"extension", {{"audience", "stowage-test"}}}}}}};
  json::object config{
      {"apiVersion", "v1"},
      {"kind", "Config"},
      {"current-context", "test"},
      {"clusters", json::array{json::object{{"name", "test"}, {"cluster", cluster}}}},
      {"users", json::array{json::object{{"name", "tester"}, {"user", json::object{{"exec", exec}}}}}},
      {"contexts",
       json::array{json::object{{"name", "test"}, {"context", {{"cluster", "test"}, {"user", "tester"}}}}}}};
  fs::path path = server.dir / file_name;
  std::ofstream(path, std::ios::trunc) << json::serialize(config);
  auto files = kube::load_kubeconfig_files({path.string()}, true);
  REQUIRE(files.ok());
  auto loaded = kube::client_config_from_kubeconfig(files.value());
  INFO((loaded.ok() ? std::string() : loaded.error().to_string()));
  REQUIRE(loaded.ok());
  REQUIRE(loaded.value().exec.has_value());
  return loaded.value();
}

struct Server : test_support::TestApiServer {
  explicit Server(const std::string& name, const std::string& token = "plugin-token")
      : TestApiServer(test_support::fresh_temp_dir("exec-" + name), token) {}

  void set_token(asio::io_context& io, http::Client& http, const std::string& token) const {
    http::Request r{"POST", "/__control", {{"Content-Type", "application/json"}},
                    json::serialize(json::value{{"action", "set"}, {"token", token}})};
    auto res = run(io, http.send(http::Url::parse(url()).value(), http::TlsSettings(certs.ca_pem()), r));
    REQUIRE(res.ok());
    REQUIRE(res.value().status == 200);
  }
};

kube::ClientConfig bare_cluster() {
  kube::ClientConfig c;
  c.server = kube::parse_server_url("https://127.0.0.1:1", true).value();
  return c;
}

kube::ExecPluginResult run_plugin(asio::io_context& io, const Plugin& plugin, kube::ExecPluginOptions options = {}) {
  return run(io, kube::run_exec_plugin(plugin.exec(), bare_cluster(), options));
}

// The message never quotes the arguments or what the plugin printed.
void check_no_secret(const std::string& message) {
  CHECK(message.find(kSecretArg) == std::string::npos);
  CHECK(message.find("secret-output-xyz") == std::string::npos);
  CHECK(message.find("plugin-token") == std::string::npos);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// What the plugin gets.

TEST_CASE("KUBERNETES_EXEC_INFO v1 with cluster info reaches the plugin and its token is accepted") {
  Server server("info-v1");
  fs::path seen = server.dir / "seen.json";
  ::setenv("STOWAGE_TEST_INHERITED", "from-parent", 1);
  ::setenv("STOWAGE_TEST_OVERRIDDEN", "parent-value", 1);
  Plugin plugin;
  plugin.provide_cluster_info = true;
  plugin.env = {{"PLUGIN_INFO_FILE", seen.string()},
                {"PLUGIN_MARK", "from-exec-env"},
                {"STOWAGE_TEST_OVERRIDDEN", "exec-env-value"}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));
  // A descriptor that is not close-on-exec, as Asio opens its sockets: the plugin must not get it.
  int inheritable = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(inheritable > 2);
  auto got = run(io, api.list(kConfigMaps));
  ::close(inheritable);
  INFO((got.ok() ? std::string() : got.error().message));
  REQUIRE(got.ok());

  json::value v = json::parse(slurp(seen));
  const json::object& info = v.at("exec_info").as_object();
  CHECK(info.at("kind") == "ExecCredential");
  CHECK(info.at("apiVersion") == kube::kExecApiVersionV1);
  CHECK(info.at("spec").at("interactive") == false);
  const json::object& cluster = info.at("spec").at("cluster").as_object();
  CHECK(str(cluster.at("server")) == server.url());
  CHECK(str(cluster.at("certificate-authority-data")) == crypto::base64_encode(server.certs.ca_pem()));
  CHECK(cluster.at("config").at("audience") == "stowage-test");
  // argv as configured, the environment inherited with exec.env on top, stdin /dev/null, a process
  // group of its own, and no descriptor of ours beyond 0-2 (the one above 2 is its listdir's).
  CHECK(v.at("args") == json::array{"--secret-arg", json::string(kSecretArg)});
  CHECK(v.at("inherited") == "from-parent");
  CHECK(v.at("overridden") == "exec-env-value");
  CHECK(v.at("from_exec_env") == "from-exec-env");
  CHECK(v.at("stdin_is_devnull") == true);
  CHECK(v.at("own_process_group") == true);
  int above_stderr = 0;
  for (const auto& fd : v.at("fds").as_array()) above_stderr += fd.to_number<int>() > 2;
  CHECK(above_stderr <= 1);
  CHECK(zombies() == 0);
}

TEST_CASE("KUBERNETES_EXEC_INFO v1beta1 without provideClusterInfo has no cluster and the answer is accepted") {
  Server server("info-v1beta1");
  fs::path seen = server.dir / "seen.json";
  Plugin plugin;
  plugin.api_version = kube::kExecApiVersionV1beta1;
  plugin.env = {{"PLUGIN_INFO_FILE", seen.string()}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));
  auto got = run(io, api.get(kConfigMaps));
  INFO((got.ok() ? std::string() : got.error().message));
  REQUIRE(got.ok());
  json::value v = json::parse(slurp(seen));
  CHECK(v.at("exec_info").at("apiVersion") == kube::kExecApiVersionV1beta1);
  CHECK(v.at("exec_info").at("spec").at("interactive") == false);
  CHECK_FALSE(v.at("exec_info").at("spec").as_object().contains("cluster"));
}

TEST_CASE("an interactive run shares our stdin and process group, and Always without a terminal is refused") {
  Server server("interactive");
  fs::path seen = server.dir / "seen.json";
  Plugin plugin;
  plugin.interactive_mode = "IfAvailable";
  plugin.env = {{"PLUGIN_INFO_FILE", seen.string()}};
  asio::io_context io;
  kube::ExecPluginOptions terminal;
  terminal.stdin_is_terminal = true;
  auto result = run_plugin(io, plugin, terminal);
  REQUIRE(result.ok());
  json::value v = json::parse(slurp(seen));
  CHECK(v.at("exec_info").at("spec").at("interactive") == true);
  CHECK(v.at("own_process_group") == false);  // a background group could not read the terminal

  plugin.interactive_mode = "Always";
  kube::ExecPluginOptions no_terminal;
  no_terminal.stdin_is_terminal = false;
  auto refused = run_plugin(io, plugin, no_terminal);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == ExecPluginError::Kind::Interactive);
  CHECK(refused.error().message.find("terminal") != std::string::npos);
  CHECK_FALSE(refused.error().transient());
}

// ---------------------------------------------------------------------------------------------
// Caching, sharing, 401.

TEST_CASE("the credential is cached until its expirationTimestamp") {
  Server server("expiry");
  fs::path count = server.dir / "count";
  Plugin plugin;
  plugin.env = {{"PLUGIN_COUNT_FILE", count.string()}, {"PLUGIN_EXPIRE_IN", "2"}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));
  REQUIRE(run(io, api.get(kConfigMaps)).ok());
  CHECK(runs(count) == 1);
  // The expiry is whole seconds, so 1 to 2 s away: these requests come well before it.
  for (int i = 0; i < 3; ++i) REQUIRE(run(io, api.get(kConfigMaps)).ok());
  CHECK(runs(count) == 1);

  std::this_thread::sleep_for(2100ms);
  REQUIRE(run(io, api.get(kConfigMaps)).ok());
  CHECK(runs(count) == 2);
  REQUIRE(run(io, api.get(kConfigMaps)).ok());
  CHECK(runs(count) == 2);
}

TEST_CASE("a credential without expiry is kept, and concurrent requests share one plugin run") {
  Server server("coalesce");
  fs::path count = server.dir / "count";
  Plugin plugin;
  plugin.env = {{"PLUGIN_COUNT_FILE", count.string()}, {"PLUGIN_SLEEP", "0.3"}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));
  std::vector<std::future<ApiClient::Awaitable<json::value>::value_type>> answers;
  for (int i = 0; i < 10; ++i) answers.push_back(asio::co_spawn(io, api.get(kConfigMaps), asio::use_future));
  io.run();
  for (auto& a : answers) {
    auto r = a.get();
    INFO((r.ok() ? std::string() : r.error().message));
    CHECK(r.ok());
  }
  CHECK(runs(count) == 1);
  REQUIRE(run(io, api.get(kConfigMaps)).ok());
  CHECK(runs(count) == 1);
}

TEST_CASE("a 401 makes the plugin run again and the request or watch is retried once") {
  Server server("unauthorized", "right-1");
  fs::path count = server.dir / "count";
  Plugin plugin;
  // Run 1 prints a token the server refuses; run 2 the right one; runs 3 and 4 follow the server's
  // token changes below; after that it keeps printing one the server never accepts.
  plugin.env = {{"PLUGIN_COUNT_FILE", count.string()},
                {"PLUGIN_TOKENS", "wrong-token-xyz,right-1,right-2,right-3,never-right"}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));

  auto got = run(io, api.get(kConfigMaps));
  INFO((got.ok() ? std::string() : got.error().message));
  REQUIRE(got.ok());
  CHECK(runs(count) == 2);

  // The server's token changes: the cached credential gets a 401, is forgotten, run 3 has the new one.
  server.set_token(io, http, "right-2");
  REQUIRE(run(io, api.list(kConfigMaps)).ok());
  CHECK(runs(count) == 3);

  // The same for a watch.
  server.set_token(io, http, "right-3");
  kube::WatchOptions options;
  options.timeout_seconds = 1;
  auto watched = run(io, api.watch(kConfigMaps, options, [](kube::WatchEvent) { return true; }));
  INFO((watched.ok() ? std::string() : watched.error().message));
  CHECK(watched.ok());
  CHECK(runs(count) == 4);

  // A new credential that is refused too: one re-run, one retry, then the 401 is the answer.
  server.set_token(io, http, "right-4");
  auto refused = run(io, api.get(kConfigMaps));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().http_status == 401);
  CHECK(refused.error().kind == ApiError::Kind::Status);
  CHECK(refused.error().message.find("exec plugin " + kPlugin) != std::string::npos);
  CHECK(refused.error().message.find("never-right") == std::string::npos);
  CHECK(refused.error().message.find("right-3") == std::string::npos);
  CHECK(runs(count) == 5);
}

// ---------------------------------------------------------------------------------------------
// Failures.

TEST_CASE("a plugin that exits non-zero, is killed or prints garbage gives a clear error naming the command") {
  asio::io_context io;
  Plugin plugin;
  plugin.env = {{"PLUGIN_EXIT", "3"}};
  auto failed = run_plugin(io, plugin);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().kind == ExecPluginError::Kind::Failed);
  CHECK(failed.error().exit_code == 3);
  CHECK(failed.error().message == "exec plugin " + kPlugin + " failed with exit code 3 (its messages are on stderr)");
  CHECK(failed.error().transient());
  check_no_secret(failed.error().message);

  plugin.env = {{"PLUGIN_MODE", "signal"}};
  auto killed = run_plugin(io, plugin);
  REQUIRE_FALSE(killed.ok());
  CHECK(killed.error().kind == ExecPluginError::Kind::Killed);
  CHECK(killed.error().signal == SIGTERM);
  CHECK(killed.error().message == "exec plugin " + kPlugin + " was killed by signal SIGTERM (15)");
  check_no_secret(killed.error().message);

  plugin.env = {{"PLUGIN_MODE", "garbage"}};
  auto garbage = run_plugin(io, plugin);
  REQUIRE_FALSE(garbage.ok());
  INFO(garbage.error().message);
  CHECK(garbage.error().kind == ExecPluginError::Kind::BadOutput);
  CHECK(garbage.error().message.find("exec plugin " + kPlugin + " printed something that is not an ExecCredential") ==
        0);
  CHECK_FALSE(garbage.error().transient());
  check_no_secret(garbage.error().message);

  plugin.env = {{"PLUGIN_MODE", "flood"}};
  kube::ExecPluginOptions small;
  small.max_output_bytes = 64 * 1024;
  auto flood = run_plugin(io, plugin, small);
  REQUIRE_FALSE(flood.ok());
  CHECK(flood.error().kind == ExecPluginError::Kind::OutputTooLarge);
  CHECK(flood.error().message.find("more than 65536 bytes") != std::string::npos);

  // An answer in another apiVersion than the kubeconfig's: parse_exec_credential's message.
  plugin.env = {{"PLUGIN_API_VERSION", kube::kExecApiVersionV1beta1}};
  auto wrong_version = run_plugin(io, plugin);
  REQUIRE_FALSE(wrong_version.ok());
  CHECK(wrong_version.error().kind == ExecPluginError::Kind::BadOutput);
  CHECK(wrong_version.error().message.find("exec plugin " + kPlugin + " returned apiVersion") == 0);
  CHECK(wrong_version.error().message.find("expected apiVersion " + std::string(kube::kExecApiVersionV1)) !=
        std::string::npos);
  check_no_secret(wrong_version.error().message);
  CHECK(zombies() == 0);
}

TEST_CASE("a missing or non-executable command says what to install or fix") {
  asio::io_context io;
  Plugin plugin;
  plugin.command = "stowage-no-such-credential-plugin";
  plugin.install_hint = "Install it with: apt-get install stowage-test-plugin";
  auto missing = run_plugin(io, plugin);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == ExecPluginError::Kind::NotFound);
  CHECK(missing.error().message.find("exec plugin stowage-no-such-credential-plugin was not found on PATH") == 0);
  CHECK(missing.error().message.find(plugin.install_hint) != std::string::npos);
  CHECK_FALSE(missing.error().transient());
  check_no_secret(missing.error().message);

  plugin.install_hint.clear();
  plugin.command = "/nonexistent/dir/get-token";
  auto no_hint = run_plugin(io, plugin);
  REQUIRE_FALSE(no_hint.ok());
  CHECK(no_hint.error().message.find("exec plugin /nonexistent/dir/get-token was not found") == 0);
  CHECK(no_hint.error().message.find("kubernetes.io/docs") != std::string::npos);

  fs::path dir = test_support::fresh_temp_dir("exec-noexec");
  fs::path script = dir / "get-token";
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
  plugin.command = script.string();
  auto not_executable = run_plugin(io, plugin);
  REQUIRE_FALSE(not_executable.ok());
  CHECK(not_executable.error().kind == ExecPluginError::Kind::CannotStart);
  CHECK(not_executable.error().message.find("permission denied") != std::string::npos);
  CHECK(zombies() == 0);
}

TEST_CASE("a plugin failure reaches the caller as an ApiError of kind Credentials and nothing is sent") {
  Server server("failure");
  Plugin plugin;
  plugin.env = {{"PLUGIN_EXIT", "7"}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));
  auto got = run(io, api.get(kConfigMaps + "/x"));
  REQUIRE_FALSE(got.ok());
  CHECK(got.error().kind == ApiError::Kind::Credentials);
  CHECK(got.error().http_status == 0);
  CHECK(got.error().message == "get " + kConfigMaps + "/x: exec plugin " + kPlugin +
                                   " failed with exit code 7 (its messages are on stderr)");
  CHECK(got.error().transient());
  CHECK(http.stats().requests == 0);

  plugin.command = "stowage-no-such-credential-plugin";
  ApiClient missing(http, kubeconfig_with_plugin(server, plugin, "kubeconfig-missing"));
  kube::WatchOptions options;
  options.timeout_seconds = 1;
  auto watched = run(io, missing.watch(kConfigMaps, options, [](kube::WatchEvent) { return true; }));
  REQUIRE_FALSE(watched.ok());
  CHECK(watched.error().kind == ApiError::Kind::Credentials);
  CHECK(watched.error().message.find("watch " + kConfigMaps + ": exec plugin stowage-no-such-credential-plugin") == 0);
  CHECK_FALSE(watched.error().transient());
  check_no_secret(watched.error().message);
}

TEST_CASE("a plugin still running at the timeout is killed with its process group") {
  fs::path dir = test_support::fresh_temp_dir("exec-timeout");
  fs::path grandchild_file = dir / "grandchild.pid";
  asio::io_context io;
  Plugin plugin;
  plugin.env = {{"PLUGIN_SLEEP", "30"}, {"PLUGIN_GRANDCHILD_PID_FILE", grandchild_file.string()}};
  kube::ExecPluginOptions options;
  options.timeout = 1500ms;
  auto started = std::chrono::steady_clock::now();
  auto result = run_plugin(io, plugin, options);
  auto elapsed = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().kind == ExecPluginError::Kind::TimedOut);
  CHECK(result.error().message == "exec plugin " + kPlugin +
                                      " did not finish within 1500ms and was killed with its process group: check "
                                      "that it can reach its identity provider without prompting");
  CHECK(result.error().transient());
  CHECK(elapsed >= 1500ms);
  CHECK(elapsed < 10s);
  // The plugin's own child (`sleep 60`, same process group) died with it.
  std::string grandchild = slurp(grandchild_file);
  REQUIRE_FALSE(grandchild.empty());
  CHECK(eventually_dead(std::stoi(grandchild)));
  CHECK(children().empty());
}

TEST_CASE("the reactor keeps running while a plugin sleeps for 1 s") {
  Server server("reactor");
  Plugin plugin;
  plugin.env = {{"PLUGIN_SLEEP", "1"}};
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, kubeconfig_with_plugin(server, plugin));
  int ticks = 0;
  bool done = false;
  auto ticker = [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(io);
    while (!done) {
      timer.expires_after(20ms);
      co_await timer.async_wait(asio::use_awaitable);
      ++ticks;
    }
  };
  auto request = [&]() -> asio::awaitable<bool> {
    auto r = co_await api.get(kConfigMaps);
    done = true;
    co_return r.ok();
  };
  auto started = std::chrono::steady_clock::now();
  asio::co_spawn(io, ticker(), asio::detached);
  auto ok = asio::co_spawn(io, request(), asio::use_future);
  io.run();
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(ok.get());
  CHECK(elapsed >= 1s);
  // 1 s at 20 ms is 50 ticks on an idle machine; a blocked reactor would give 1.
  INFO("ticks: " << ticks);
  CHECK(ticks >= 20);
}

TEST_CASE("many plugin runs at once, ending every way, leave no child process behind") {
  asio::io_context io;
  std::vector<std::future<kube::ExecPluginResult>> results;
  const std::vector<std::vector<std::pair<std::string, std::string>>> variants = {
      {}, {{"PLUGIN_EXIT", "1"}}, {{"PLUGIN_MODE", "signal"}}, {{"PLUGIN_MODE", "garbage"}}, {{"PLUGIN_SLEEP", "20"}}};
  kube::ExecPluginOptions options;
  options.timeout = 10s;  // well under the sleeper's 20 s, and room for 15 Pythons starting on a loaded machine
  for (int i = 0; i < 15; ++i) {
    Plugin plugin;
    plugin.env = variants[i % variants.size()];
    results.push_back(asio::co_spawn(io, kube::run_exec_plugin(plugin.exec(), bare_cluster(), options),
                                     asio::use_future));
  }
  io.run();
  int ok = 0;
  for (auto& r : results) ok += r.get().ok();
  CHECK(ok == 3);
  CHECK(children().empty());
}

TEST_CASE("without a pidfd the exit is found by polling waitpid, with the same results and no child left") {
  // Kernels before 5.3 have no pidfd_open; this forces the fallback those machines take.
  asio::io_context io;
  std::vector<std::future<kube::ExecPluginResult>> results;
  const std::vector<std::vector<std::pair<std::string, std::string>>> variants = {
      {}, {{"PLUGIN_EXIT", "3"}}, {{"PLUGIN_MODE", "signal"}}, {{"PLUGIN_SLEEP", "20"}}};
  kube::ExecPluginOptions options;
  options.timeout = 10s;  // well under the sleeper's 20 s, and room for Python to start on a loaded machine
  options.use_pidfd = false;
  for (const auto& env : variants) {
    Plugin plugin;
    plugin.env = env;
    results.push_back(asio::co_spawn(io, kube::run_exec_plugin(plugin.exec(), bare_cluster(), options),
                                     asio::use_future));
  }
  io.run();
  auto ok = results[0].get();
  REQUIRE(ok.ok());
  CHECK_FALSE(ok.value().token.empty());
  auto failed = results[1].get();
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().kind == ExecPluginError::Kind::Failed);
  CHECK(failed.error().exit_code == 3);
  auto killed = results[2].get();
  REQUIRE_FALSE(killed.ok());
  CHECK(killed.error().kind == ExecPluginError::Kind::Killed);
  auto late = results[3].get();
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().kind == ExecPluginError::Kind::TimedOut);
  CHECK(children().empty());
}

TEST_CASE("a client certificate from the plugin is used for mutual TLS") {
  // openssl s_server with -Verify 1 refuses a handshake without a client certificate from its CA
  // and answers HTTP 200 (an HTML page, so a Decode error for ApiClient) with one.
  fs::path dir = test_support::fresh_temp_dir("exec-mtls");
  auto certs = test_support::make_certificates(dir / "certs");
  auto [cert, key] = certs.client_cert_and_key();
  std::ofstream(dir / "client.pem") << cert;
  std::ofstream(dir / "client-key.pem") << key;
  int port = test_support::free_port();
  auto log = dir / "s_server.log";
  auto s_server = test_support::Server::start(
      {"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert", certs.server_cert.string(),
       "-key", certs.server_key.string(), "-CAfile", certs.ca_cert.string(), "-Verify", "1", "-www", "-quiet"},
      log);
  s_server.wait_for_port(port, log);

  kube::ClientConfig config;
  config.server = kube::parse_server_url("https://127.0.0.1:" + std::to_string(port), true).value();
  config.ca_pem = certs.ca_pem();
  Plugin plugin;
  plugin.env = {{"PLUGIN_MODE", "cert"},
                {"PLUGIN_NO_TOKEN", "1"},
                {"PLUGIN_CERT_FILE", (dir / "client.pem").string()},
                {"PLUGIN_KEY_FILE", (dir / "client-key.pem").string()}};
  config.exec = plugin.exec();
  asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, config);
  auto with_cert = run(io, api.get("/"));
  REQUIRE_FALSE(with_cert.ok());
  INFO(with_cert.error().message);
  CHECK(with_cert.error().kind == ApiError::Kind::Decode);
  CHECK(with_cert.error().http_status == 200);
  CHECK(with_cert.error().message.find("BEGIN") == std::string::npos);

  // The same server without the plugin's certificate: no HTTP answer at all.
  config.exec.reset();
  ApiClient without(http, config);
  auto refused = run(io, without.get("/"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == ApiError::Kind::Transport);
}

TEST_CASE("an API client destroyed while its exec plugin runs, then its reactor, leaves nothing behind") {
  // As at the end of `stowage run` when the grace period runs out: the Runtime destroys the API
  // client before the io_context, whose destructor then destroys the suspended request, the
  // plugin run with it. Nothing may reach back into the destroyed client (valgrind showed it did).
  Server server("destroyed");
  Plugin plugin;
  plugin.env = {{"PLUGIN_SLEEP", "30"}};
  auto io = std::make_unique<asio::io_context>();
  auto http = std::make_unique<http::Client>(io->get_executor());
  auto api = std::make_unique<ApiClient>(*http, kubeconfig_with_plugin(server, plugin));
  asio::co_spawn(*io, api->get(kConfigMaps), asio::detached);
  asio::co_spawn(*io, api->get(kConfigMaps), asio::detached);  // a second request waits for the same run
  auto plugins = [&] {
    auto c = children();
    c.erase(server.proc.pid());  // the test API server is a child of this process too
    return c;
  };
  io->run_for(300ms);
  REQUIRE_FALSE(plugins().empty());  // the plugin is running
  api.reset();
  http.reset();
  io.reset();
  CHECK(plugins().empty());  // killed and reaped with the request
}

// ---------------------------------------------------------------------------------------------
// As PID 1.

TEST_CASE("with a PID-1 reaper running, every plugin's status is right and the orphans it leaves are reaped") {
  // `stowage run` as PID 1 starts a process::ChildReaper; here this process is made a child
  // subreaper instead, which brings it the same orphans. Each plugin leaves 3 `sleep 0.3` behind and
  // ends 100 ms after closing its stdout: the reaper then usually takes its status before its own
  // waiter does (always when the waiter polls every 20 ms), and the waiter must still get it.
  struct Subreaper {
    Subreaper() { REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
    ~Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
  } subreaper;
  asio::io_context io;
  process::ChildReaper reaper(io.get_executor());
  const std::vector<std::vector<std::pair<std::string, std::string>>> variants = {
      {}, {{"PLUGIN_EXIT", "3"}}, {{"PLUGIN_MODE", "garbage"}}};
  std::vector<std::future<kube::ExecPluginResult>> results;
  for (bool pidfd : {false, true}) {
    for (const auto& env : variants) {
      Plugin plugin;
      plugin.env = env;
      plugin.env.insert(plugin.env.end(), {{"PLUGIN_ORPHANS", "3"}, {"PLUGIN_LINGER", "0.1"}});
      kube::ExecPluginOptions options;
      options.use_pidfd = pidfd;
      results.push_back(
          asio::co_spawn(io, kube::run_exec_plugin(plugin.exec(), bare_cluster(), options), asio::use_future));
    }
  }
  // The reaper keeps the reactor busy for good: run it in slices until everything is in.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  auto all_ready = [&] {
    for (auto& r : results)
      if (r.wait_for(0s) != std::future_status::ready) return false;
    return true;
  };
  while (std::chrono::steady_clock::now() < deadline && !(all_ready() && reaper.orphans_reaped() >= 18))
    io.run_for(20ms);
  REQUIRE(all_ready());
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO("run " << i << (i < 3 ? " (polling)" : " (pidfd)"));
    auto r = results[i].get();
    switch (i % 3) {
      case 0:
        REQUIRE(r.ok());
        CHECK(r.value().token == "plugin-token");
        break;
      case 1:
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().kind == ExecPluginError::Kind::Failed);
        CHECK(r.error().exit_code == 3);
        break;
      default:
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().kind == ExecPluginError::Kind::BadOutput);
    }
  }
  CHECK(reaper.orphans_reaped() == 18);
  CHECK(reaper.own_reaped() >= 1);  // the waiters got statuses the reaper had taken
  CHECK(process::own_children().claimed() == 0);
  CHECK(children().empty());
}

// The case for the Kubernetes client: a plugin (or whatever it asks) printing a token with
// a line break would add a header of its own to every request. The credential is refused: no
// request is sent, and the error names the plugin and the position, never the token.
TEST_CASE("a plugin token with a line break or a space is refused and nothing is sent") {
  Server server("injected");
  asio::io_context io;
  http::Client http(io.get_executor());
  struct Case {
    const char* token;
    const char* expected;
  };
  const Case cases[] = {
      {"plugin-token\r\nX-Injected: yes", "returned a status.token that contains a control character (at byte 12)"},
      {"plugin-token\nX-Injected: yes", "returned a status.token that contains a control character (at byte 12)"},
      {"plugin token", "returned a status.token that is not an RFC 6750 bearer token: the character at byte 6"},
  };
  int n = 0;
  for (const auto& c : cases) {
    INFO(c.token);
    Plugin plugin;
    plugin.env = {{"PLUGIN_TOKENS", c.token}};
    ApiClient api(http, kubeconfig_with_plugin(server, plugin, "kubeconfig-injected-" + std::to_string(n++)));
    auto got = run(io, api.get(kConfigMaps + "/x"));
    REQUIRE_FALSE(got.ok());
    CHECK(got.error().kind == ApiError::Kind::Credentials);
    CHECK_THAT(got.error().message,
               Catch::StartsWith("get " + kConfigMaps + "/x: exec plugin " + kPlugin + " " + c.expected));
    CHECK(got.error().message.find("Injected") == std::string::npos);
    check_no_secret(got.error().message);
  }
  CHECK(http.stats().requests == 0);
  CHECK(http.stats().connections_opened == 0);
}
