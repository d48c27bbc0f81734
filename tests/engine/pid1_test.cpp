// `stowage run` as a container's entrypoint: PID 1 of a new PID namespace (`unshare -fp
// --mount-proc`, util-linux), against the test API server. An exec credential plugin that leaves
// orphans behind must leave no zombie in the namespace (the kernel gives them to PID 1, which must
// reap them), while the plugin's own credential still works. And SIGTERM during a slow start-up
// (here a kubeconfig that is a FIFO nobody writes: a hung mount, a huge file) ends the process
// within a second or two with exit code 0, as PID 1 (whose unhandled signals the kernel drops)
// and not; also while the first listing waits for a slow exec plugin (a guard: that already worked).
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "kube_cluster.hpp"
#include "support.hpp"

namespace {

const std::string kPlugin = std::string(STOWAGE_SOURCE_DIR) + "/tests/kube/data/exec_plugin/plugin.py";

// Whether this machine lets us make a PID namespace (root, util-linux's unshare, no seccomp veto).
bool can_unshare() {
  return std::system("unshare -fp --mount-proc --kill-child true >/dev/null 2>&1") == 0;
}

// `stowage ARGS` as PID 1 of a new PID namespace. `pid` is unshare's; `init()` is stowage's (as this
// process sees it). unshare exits with stowage's exit code, and --kill-child takes stowage down if
// unshare is killed (when the test dies: PR_SET_PDEATHSIG).
test::Child spawn_as_pid1(const std::vector<std::string>& args, const test::fs::path& out, const test::fs::path& err) {
  test::Child c;
  c.out = out;
  c.err = err;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<std::string> all{"unshare", "-fp", "--mount-proc", "--kill-child", STOWAGE_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("unshare", argv.data());
    ::_exit(127);
  }
  return c;
}

struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
};

std::optional<ProcStat> proc_stat(const std::string& pid) {
  std::string stat = test::read_file(test::fs::path("/proc") / pid / "stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 4 > stat.size()) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  ProcStat s;
  rest >> s.state >> s.ppid;
  return s;
}

// stowage's pid as this process sees it: unshare's only child.
pid_t init_of(pid_t unshare_pid) {
  for (const auto& e : test::fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (auto s = proc_stat(name); s && s->ppid == unshare_pid) return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

std::string pid_namespace_of(pid_t pid) {
  std::error_code ec;
  auto link = test::fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/pid", ec);
  return ec ? "" : link.string();
}

// Zombies (state Z) among the processes of `init`'s PID namespace.
int zombies_in_namespace_of(pid_t init) {
  const std::string ns = pid_namespace_of(init);
  REQUIRE_FALSE(ns.empty());
  int n = 0;
  for (const auto& e : test::fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (pid_namespace_of(static_cast<pid_t>(std::stol(name))) != ns) continue;
    if (auto s = proc_stat(name); s && s->state == 'Z') ++n;
  }
  return n;
}

// A kubeconfig for `server` whose user runs the test plugin with `env`.
test::fs::path kubeconfig_with_plugin(const kube_e2e::KubeCluster& cluster,
                                      const std::vector<std::pair<std::string, std::string>>& env) {
  std::string yaml = "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n"
                     "    server: " + cluster.server.url() + "\n    certificate-authority: " +
                     cluster.server.certs.ca_cert.string() +
                     "\nusers:\n- name: test\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                     "      interactiveMode: Never\n      command: " + kPlugin + "\n      env:\n";
  for (const auto& [name, value] : env) yaml += "      - {name: " + name + ", value: \"" + value + "\"}\n";
  yaml += "contexts:\n- name: test\n  context: {cluster: test, user: test, namespace: demo}\n";
  auto path = cluster.dir / "kubeconfig-exec";
  test::write_file(path, yaml);
  return path;
}

std::vector<std::string> run_args(const kube_e2e::KubeCluster& cluster, const test::fs::path& kubeconfig) {
  return {"run",          "--kubeconfig", kubeconfig.string(), "--state-dir",         cluster.state.string(),
          "--local-root", cluster.root.string(), "--local-volume-mode", "direct", "--log-level", "debug"};
}

}  // namespace

TEST_CASE("as PID 1, the orphans an exec plugin leaves are reaped and its credential still works") {
  if (!can_unshare()) {
    WARN("skipped: `unshare -fp --mount-proc` fails here (needs root and util-linux), so no PID namespace");
    return;
  }
  kube_e2e::KubeCluster cluster("pid1-reap", "plugin-token", {});
  cluster.server.write_kubeconfig("demo");  // kubectl's, with the token
  cluster.apply("storage", test::local_storage("a", "/data/a"));
  const auto runs = cluster.dir / "plugin-runs";
  // Each run leaves 5 `sleep 0.3` behind, orphans once the plugin has answered and exited.
  auto kubeconfig = kubeconfig_with_plugin(cluster, {{"PLUGIN_ORPHANS", "5"}, {"PLUGIN_COUNT_FILE", runs.string()}});
  auto child = spawn_as_pid1(run_args(cluster, kubeconfig), cluster.dir / "run.out", cluster.dir / "run.log");
  const auto log = cluster.dir / "run.log";
  REQUIRE(test::eventually([&] { return cluster.phase("a") == "Ready"; }));
  LAZY_INFO(test::read_file(log));
  const pid_t init = init_of(child.pid);
  REQUIRE(init > 0);
  CHECK_THAT(test::read_file(log), Catch::Contains("running as PID 1"));
  auto plugin_runs = test::count_of(runs, "\n");
  REQUIRE(plugin_runs >= 1);
  // The orphans' `sleep 0.3` is over within a second on an idle machine; under a loaded one (the
  // suite runs two tests at once beside builds) their exits may take longer to come: wait for them.
  test::eventually(
      [&] {
        plugin_runs = test::count_of(runs, "\n");
        return zombies_in_namespace_of(init) == 0 &&
               test::count_of(log, "reaped orphaned process") >= 5 * plugin_runs;
      },
      std::chrono::seconds(20));

  INFO(5 * plugin_runs << " orphans left by " << plugin_runs << " plugin runs");
  CHECK(zombies_in_namespace_of(init) == 0);
  CHECK(test::count_of(log, "reaped orphaned process") == 5 * plugin_runs);
  for (const char* judged : {"plugin.py failed", "plugin.py was killed", "plugin.py printed"})
    CHECK(test::count_of(log, judged) == 0);  // the plugin's own status was never lost or mistaken

  ::kill(init, SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

namespace {

// A kubeconfig that is a FIFO nobody writes: reading it blocks, as on a hung mount.
test::fs::path blocking_kubeconfig(const test::fs::path& dir) {
  auto fifo = dir / "kubeconfig.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  return fifo;
}

// Whether `pid` is asleep in the kernel (blocked opening the FIFO), not running or gone.
bool sleeping(pid_t pid) {
  auto s = proc_stat(std::to_string(pid));
  return s && s->state == 'S';
}

}  // namespace

TEST_CASE("SIGTERM during a slow start-up ends the process at once with exit code 0") {
  auto dir = test::temp_dir("startup-sigterm");
  auto fifo = blocking_kubeconfig(dir);
  auto child = test::Child::spawn({"run", "--kubeconfig", fifo.string(), "--state-dir", (dir / "state").string()},
                                  dir / "run.out", dir / "run.err");
  REQUIRE(test::eventually([&] { return sleeping(child.pid); }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  child.signal(SIGTERM);
  const auto sent = std::chrono::steady_clock::now();
  const int code = child.wait(std::chrono::seconds(5));
  INFO(test::read_file(dir / "run.err"));
  CHECK(code == 0);
  CHECK(std::chrono::steady_clock::now() - sent < std::chrono::seconds(2));
  CHECK_THAT(test::read_file(dir / "run.err"), Catch::Contains("during start-up: stopping"));
  CHECK_FALSE(test::fs::exists(dir / "state"));  // nothing was begun, so nothing is half-written
}

TEST_CASE("as PID 1, SIGTERM during a slow start-up ends the process at once with exit code 0") {
  if (!can_unshare()) {
    WARN("skipped: `unshare -fp --mount-proc` fails here (needs root and util-linux), so no PID namespace");
    return;
  }
  auto dir = test::temp_dir("startup-sigterm-pid1");
  auto fifo = blocking_kubeconfig(dir);
  auto child = spawn_as_pid1({"run", "--kubeconfig", fifo.string(), "--state-dir", (dir / "state").string()},
                             dir / "run.out", dir / "run.err");
  pid_t init = -1;
  REQUIRE(test::eventually([&] { return (init = init_of(child.pid)) > 0 && sleeping(init); },
                           std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(init, SIGTERM);
  const auto sent = std::chrono::steady_clock::now();
  const int code = child.wait(std::chrono::seconds(5));
  INFO(test::read_file(dir / "run.err"));
  CHECK(code == 0);
  CHECK(std::chrono::steady_clock::now() - sent < std::chrono::seconds(2));
  CHECK_THAT(test::read_file(dir / "run.err"), Catch::Contains("during start-up: stopping"));
}

TEST_CASE("SIGTERM while the first listing waits for a slow exec plugin ends the process promptly with exit code 0") {
  kube_e2e::KubeCluster cluster("slow-plugin-sigterm", "plugin-token", {});
  const auto runs = cluster.dir / "plugin-runs";
  auto kubeconfig = kubeconfig_with_plugin(cluster, {{"PLUGIN_SLEEP", "30"}, {"PLUGIN_COUNT_FILE", runs.string()}});
  auto child = test::Child::spawn(run_args(cluster, kubeconfig), cluster.dir / "run.out", cluster.dir / "run.log");
  REQUIRE(test::eventually([&] { return test::count_of(runs, "\n") >= 1; }, std::chrono::seconds(20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  child.signal(SIGTERM);
  const auto sent = std::chrono::steady_clock::now();
  const int code = child.wait(std::chrono::seconds(20));
  LAZY_INFO(test::read_file(cluster.dir / "run.log"));
  CHECK(code == 0);
  CHECK(std::chrono::steady_clock::now() - sent < std::chrono::seconds(3));
  // The plugin (it appended its pid) went with it: killed and reaped, not left sleeping.
  const pid_t plugin = static_cast<pid_t>(std::stol(test::read_file(runs)));
  CHECK((::kill(plugin, 0) != 0 && errno == ESRCH));
}
