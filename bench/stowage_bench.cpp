// stowage-bench: the figures in README "Performance", each beside a baseline measured in the same run.
//  1. The offline mode as it is run: the real `stowage run --manifests` binary in its own process,
//     10,000 local storages from 100 manifest files, until its state store records all of them Ready;
//     its peak RSS (VmHWM: this process's memory is not in it) and the time to Ready. It runs first,
//     while this process is small, so that wait4's maxrss (which counts the forked copy of this
//     process too) says the same.
//  2. Durable queue: enqueue + claim + complete per item through the group-committing state store,
//     vs. the same three row writes as one SQLite transaction each (what a naive durable queue does).
//  3. 10,000 local storages from manifests to Ready through the whole engine in this process, vs. a
//     plain loop doing only the filesystem work (mkdir, write, fsync, rename, fsync dir) for the same
//     files.
// 2 and 3 report the reactor's longest stall and p99 lag while they ran.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "bench_support.hpp"
#include "engine/lag_monitor.hpp"
#include "engine/manifest_source.hpp"
#include "engine/runtime.hpp"
#include "persistence/sqlite_state_store.hpp"
#include "kube/conditions.hpp"
#include "storage/metadata.hpp"
#include <spdlog/spdlog.h>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace stowage;

namespace {

using bench::seconds_since;

fs::path scratch(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("stowage-bench-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// 1a. The engine's queue: everything on the reactor, writes grouped by the store. Three phases,
// each waiting until it is durable, so every item's enqueue, claim and completion each reach the
// disk as a row write (the worst case: no change is absorbed by a later one in the same batch).
double queue_rate(int items, engine::LagMonitor*& lag_out, std::unique_ptr<engine::LagMonitor>& keep) {
  auto dir = scratch("queue");
  boost::asio::io_context io;
  auto store = persistence::SqliteStateStore::open(dir, io.get_executor(), {std::chrono::milliseconds(5), true});
  persistence::WorkQueue q(store.value().get(), [] { return std::int64_t{0}; });
  keep = std::make_unique<engine::LagMonitor>(io.get_executor(), std::chrono::milliseconds(1));
  lag_out = keep.get();
  keep->start();
  auto t0 = Clock::now();
  std::vector<persistence::QueueKey> claimed;
  int phase = 0, next = 0;
  // Each reactor turn does one slice of 1,000 operations, as a busy controller would.
  double longest_turn_ms = 0;
  std::function<void()> turn = [&] {
    auto turn_start = Clock::now();
    struct Measure {
      Clock::time_point t0;
      double& out;
      ~Measure() { out = std::max(out, std::chrono::duration<double, std::milli>(Clock::now() - t0).count()); }
    } measure{turn_start, longest_turn_ms};
    int budget = 1000;
    if (phase == 0)
      for (; budget > 0 && next < items; --budget, ++next)
        q.add({"BackupStorage", "bench", "s" + std::to_string(next)}, "added");
    if (phase == 1)
      for (; budget > 0; --budget) {
        auto item = q.claim();
        if (!item) break;
        claimed.push_back(item->key);
      }
    if (phase == 2)
      for (; budget > 0 && !claimed.empty(); --budget) {
        q.complete(claimed.back());
        claimed.pop_back();
      }
    bool phase_done = (phase == 0 && next == items) || (phase == 1 && q.pending() == 0) ||
                      (phase == 2 && claimed.empty());
    if (!phase_done) return boost::asio::post(io, turn);
    store.value()->when_durable([&] {
      if (++phase < 3) return boost::asio::post(io, turn);
      keep->stop();
      io.stop();
    });
  };
  boost::asio::post(io, turn);
  io.run();
  double secs = seconds_since(t0);
  std::printf("  longest slice of 1,000 queue operations: %.1f ms\n", longest_turn_ms);
  auto stats = store.value()->stats();
  std::printf("  engine queue: %d items (3 durable row writes each) in %.3f s = %.0f items/s "
              "(%llu transactions, longest commit %.1f ms)\n",
              items, secs, items / secs, static_cast<unsigned long long>(stats.transactions),
              stats.longest_commit.count() / 1000.0);
  return items / secs;
}

// 1b. Baseline: each queue change is its own durable transaction.
double naive_queue_rate(int items) {
  auto dir = scratch("naive");
  sqlite3* db = nullptr;
  sqlite3_open((dir / "naive.db").c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE queue(kind TEXT, namespace TEXT, name TEXT, state TEXT, PRIMARY KEY(kind,namespace,name))",
               nullptr, nullptr, nullptr);
  auto t0 = Clock::now();
  for (int i = 0; i < items; ++i) {
    std::string n = "s" + std::to_string(i);
    std::string sql = "INSERT INTO queue VALUES('BackupStorage','bench','" + n + "','pending');" +
                      "UPDATE queue SET state='processing' WHERE name='" + n + "';" +
                      "DELETE FROM queue WHERE name='" + n + "';";
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);  // three autocommit transactions
  }
  double secs = seconds_since(t0);
  sqlite3_close(db);
  std::printf("  baseline (one transaction per change): %d items in %.3f s = %.0f items/s\n", items, secs,
              items / secs);
  return items / secs;
}

void write_manifests(const fs::path& dir, int storages) {
  for (int f = 0; f < storages / 100; ++f) {
    std::ofstream out(dir / ("batch-" + std::to_string(f) + ".yaml"));
    for (int i = f * 100; i < (f + 1) * 100; ++i)
      out << "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata:\n  name: s" << i
          << "\n  namespace: bench\nspec:\n  storage:\n    provider: local\n    local:\n      mountPath: /safe/data\n"
             "      hostPath:\n        path: /data/s"
          << i << "\n  deletionPolicy: Delete\n---\n";
  }
}

// 1. How many storages the state store in `state_dir` records as Ready (0 while it cannot be read).
int ready_in_store(const fs::path& state_dir) {
  sqlite3* db = nullptr;
  int ready = 0;
  if (sqlite3_open_v2((state_dir / "state.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 1000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, R"(SELECT count(*) FROM objects WHERE status_json LIKE '%"phase":"Ready"%')", -1, &st,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      ready = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return ready;
}

struct OfflineRun {
  bool all_ready = false;
  double ready_secs = 0;
  long hwm_kib = 0, maxrss_kib = 0;
  int exit_code = -1;
};

// 1. The real binary on a folder of `storages` local storages (100 a file), polled every 100 ms
// until all are Ready in its store (at most `timeout`), then stopped with SIGTERM.
OfflineRun offline_process(int storages, std::chrono::seconds timeout) {
  auto dir = scratch("offline");
  fs::create_directories(dir / "manifests");
  fs::create_directories(dir / "root");
  write_manifests(dir / "manifests", storages);
  std::vector<std::string> args{STOWAGE_BINARY, "run",        "--manifests", (dir / "manifests").string(),
                                "--state-dir",  (dir / "state").string(), "--local-root", (dir / "root").string(),
                                "--log-file",   (dir / "stowage.log").string()};
  OfflineRun run;
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
    int fd = ::open((dir / "output").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  bool exited = false;
  while (!exited && Clock::now() - t0 < timeout) {
    ::usleep(100'000);
    run.hwm_kib = std::max(run.hwm_kib, bench::status_kib("VmHWM", pid));
    if (::wait4(pid, &status, WNOHANG, &usage) == pid) {
      exited = true;
      break;
    }
    if (ready_in_store(dir / "state") >= storages) {
      run.all_ready = true;
      run.ready_secs = seconds_since(t0);
      break;
    }
  }
  if (!exited) {
    run.hwm_kib = std::max(run.hwm_kib, bench::status_kib("VmHWM", pid));
    ::kill(pid, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (::wait4(pid, &status, WNOHANG, &usage) != pid) {
      if (Clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::wait4(pid, &status, 0, &usage);
        break;
      }
      run.hwm_kib = std::max(run.hwm_kib, bench::status_kib("VmHWM", pid));
      ::usleep(10'000);
    }
  }
  run.maxrss_kib = usage.ru_maxrss;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (run.all_ready)
    std::printf("  stowage run --manifests: %d storages Ready in %.2f s; peak RSS %.1f MiB (VmHWM; wait4 maxrss "
                "%.1f MiB); exit code %d after SIGTERM\n",
                storages, run.ready_secs, run.hwm_kib / 1024.0, run.maxrss_kib / 1024.0, run.exit_code);
  else
    std::printf("  stowage run --manifests: NOT all %d storages Ready (%d) after %.0f s (exit code %d; see %s)\n",
                storages, ready_in_store(dir / "state"), seconds_since(t0), run.exit_code,
                (dir / "stowage.log").c_str());
  return run;
}

// 2a. The whole engine: manifests -> store -> queue -> reconciler -> local backend -> status.
double engine_e2e(int storages, config::Config cfg) {
  auto dir = scratch("e2e");
  fs::create_directories(dir / "manifests");
  write_manifests(dir / "manifests", storages);
  cfg.state_dir = dir / "state";
  cfg.local_root = dir / "root";
  fs::create_directories(cfg.local_root);
  cfg.manifests = dir / "manifests";
  auto t0 = Clock::now();
  engine::Runtime rt(cfg, engine::OfflineSource{cfg.manifests.string(), true});
  engine::ManifestSource source(rt.io().get_executor(), rt.pool(), {cfg.manifests, cfg.manifests_debounce,
                                                                cfg.manifests_poll_interval, false},
                                rt.world());
  std::set<std::string> ready;
  double load_secs = 0;
  rt.controller().on_outcome([&](const persistence::QueueKey& k, const engine::Outcome&) {
    if (auto found = rt.world().get({k.namespace_, k.name}); found && found->object.status.phase == kube::kPhaseReady)
      ready.insert(k.str());
    if (static_cast<int>(ready.size()) == storages) {
      source.stop();
      rt.controller().stop();
      rt.lag().stop();
      rt.store().when_durable([&] { rt.io().stop(); });
    }
  });
  source.start([&] {
    load_secs = seconds_since(t0);
    rt.controller().start();
  });
  rt.lag().start();
  rt.io().run();
  double secs = seconds_since(t0);
  std::printf("  engine: %d storages Ready in %.2f s = %.0f storages/s (manifests loaded after %.2f s); "
              "reactor longest stall %.1f ms, p99 lag %.1f ms\n",
              storages, secs, storages / secs, load_secs, rt.lag().longest().count() / 1000.0,
              rt.lag().percentile(99).count() / 1000.0);
  return secs;
}

// 2b. Baseline: only the filesystem work the local backend must do, in a plain loop on one thread.
double filesystem_baseline(int storages) {
  auto dir = scratch("fs");
  std::string body = storage::render_metadata({"2026-01-01T00:00:00Z", "v0.1.0"});
  auto t0 = Clock::now();
  for (int i = 0; i < storages; ++i) {
    auto d = dir / ("data/s" + std::to_string(i));
    fs::create_directories(d);
    auto tmp = d / ".tmp", final = d / "metadata.yaml";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (::write(fd, body.data(), body.size()) < 0) std::perror("write");
    ::fsync(fd);
    ::close(fd);
    ::rename(tmp.c_str(), final.c_str());
    int dfd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY);
    ::fsync(dfd);
    ::close(dfd);
  }
  double secs = seconds_since(t0);
  std::printf("  baseline (plain loop, filesystem work only): %d files in %.2f s = %.0f files/s\n", storages, secs,
              storages / secs);
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  int storages = argc > 1 ? std::atoi(argv[1]) : 10000;
  int queue_items = argc > 2 ? std::atoi(argv[2]) : 100000;
  char host[256] = {};
  ::gethostname(host, sizeof host);
  std::printf("stowage-bench on %s, %ld cores (%s), load average %s\n", host, ::sysconf(_SC_NPROCESSORS_ONLN),
              bench::cpu_model().c_str(), bench::load_average().c_str());

  std::printf("\n[1] the offline mode in its own process: %d local storages from %d manifest files (default "
              "settings)\n", storages, storages / 100);
  OfflineRun offline = offline_process(storages, std::chrono::seconds(600));

  std::printf("\n[2] durable work queue (enqueue + claim + complete, synchronous=FULL)\n");
  engine::LagMonitor* lag = nullptr;
  std::unique_ptr<engine::LagMonitor> keep;
  double ours = queue_rate(queue_items, lag, keep);
  std::printf("  reactor during it: longest stall %.1f ms, p99 lag %.1f ms\n", lag->longest().count() / 1000.0,
              lag->percentile(99).count() / 1000.0);
  double naive = naive_queue_rate(std::min(queue_items, 3000));
  std::printf("  => %.0fx the baseline\n", ours / naive);

  std::printf("\n[3] %d local storages from manifests to Ready in this process (default settings)\n", storages);
  config::Config cfg;
  cfg.log_level = "warn";
  double base = filesystem_baseline(storages);
  double engine_secs = engine_e2e(storages, cfg);
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  std::printf("  => engine time / plain filesystem loop = %.2f; peak RSS of this process (all its runs) %.0f MiB\n",
              engine_secs / base, ru.ru_maxrss / 1024.0);
  return offline.all_ready && offline.exit_code == 0 ? 0 : 1;  // the smoke test's check
}
