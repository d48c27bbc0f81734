// A poison item through the real binary: a storage whose reconcile is cut short by kill -9 at every
// start (its S3 endpoint accepts connections and never answers, so the reconcile is always in
// flight when the test kills the process). Each restart retries it after a growing backoff, never
// at once; after reconcile.max-interrupted (5) it is parked (error log, gauge) and retried only every
// reconcile.permanent-retry; an attempt that finishes ends the streak.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <optional>
#include <regex>

#include "common/crypto.hpp"
#include "support.hpp"
#include "support/process.hpp"

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

// A TCP endpoint that accepts connections (the kernel completes them) and never answers: a hung backend.
struct SilentEndpoint {
  int fd = -1;
  int port = 0;
  SilentEndpoint() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ~SilentEndpoint() { close(); }
};

struct Row {
  std::string state;
  int interrupted = 0, attempts = 0;
  std::int64_t next_attempt_ms = 0;
  std::string last_error;
};

// The storage's queue row as the state store has it (read with the sqlite3 CLI while stowage runs).
std::optional<Row> queue_row(const test::fs::path& db) {
  auto out = command_output("sqlite3 -separator '|' " + db.string() +
                            " \"SELECT state,interrupted,attempts,next_attempt_ms,last_error FROM queue WHERE "
                            "namespace='demo' AND name='poison'\" 2>/dev/null");
  std::smatch m;
  static const std::regex re("^(\\w+)\\|(\\d+)\\|(\\d+)\\|(-?\\d+)\\|(.*)\n");
  if (!std::regex_search(out, m, re)) return std::nullopt;
  return Row{m[1], std::stoi(m[2]), std::stoi(m[3]), std::stoll(m[4]), m[5]};
}

}  // namespace

TEST_CASE("a storage whose reconcile is killed again and again backs off and is parked after 5", "[crash]") {
  SilentEndpoint s3;
  auto dir = test::temp_dir("poison");
  auto manifests = dir / "manifests", state = dir / "state", log = dir / "stowage.log";
  auto db = state / "state.db";
  test::write_file(manifests / "poison.yaml",
                   "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: demo}\ndata:\n"
                   "  AWS_ACCESS_KEY_ID: " + stowage::crypto::base64_encode("AKIDEXAMPLE") +
                       "\n  AWS_SECRET_ACCESS_KEY: " + stowage::crypto::base64_encode("not-a-real-secret") +
                       "\n---\napiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\n"
                       "metadata: {name: poison, namespace: demo}\nspec:\n  storage:\n    provider: s3\n"
                       "    s3: {endpoint: 'http://127.0.0.1:" + std::to_string(s3.port) +
                       "', bucket: b, region: us-east-1, secretName: creds}\n  deletionPolicy: Delete\n");
  constexpr std::int64_t kBase = 400, kPermanent = 6000;
  int metrics_port = test_support::free_port();
  std::vector<std::string> args{"run", "--manifests", manifests.string(), "--state-dir", state.string(),
                                "--log-file", log.string(), "--retry-base", std::to_string(kBase) + "ms",
                                "--retry-cap", "1m", "--permanent-retry", std::to_string(kPermanent) + "ms",
                                "--backend-request-timeout", "10m", "--backend-connect-timeout", "10m",
                                "--metrics-bind-address", "127.0.0.1:" + std::to_string(metrics_port)};

  // Start 1: the storage is new, so it runs at once and hangs on the endpoint; kill -9 mid-reconcile.
  {
    auto child = test::Child::spawn(args, dir / "out", dir / "err");
    REQUIRE(test::eventually([&] {
      auto row = queue_row(db);
      return row && row->state == "processing";
    }));
    child.kill9();
  }
  // Starts 2 to 7: each finds the item interrupted once more.
  for (int interrupted = 1; interrupted <= 6; ++interrupted) {
    INFO("interrupted attempts in a row: " << interrupted);
    std::int64_t spawned = wall_ms();
    auto child = test::Child::spawn(args, dir / "out", dir / "err");
    std::optional<Row> restored;
    // Restored as pending with one more interruption; on a loaded machine the poll may first see it
    // already claimed again (a short jittered delay): the claim keeps the count and the due time.
    REQUIRE(test::eventually([&] {
      restored = queue_row(db);
      return restored && (restored->state == "pending" || restored->state == "processing") &&
             restored->interrupted == interrupted;
    }));
    std::int64_t seen = wall_ms();
    CHECK(restored->attempts == interrupted);
    CHECK_THAT(restored->last_error, Catch::StartsWith("interrupted"));
    if (interrupted < 5) {
      // The Transient backoff after `interrupted - 1` earlier failures: full jitter up to base * 2^(n-1).
      std::int64_t ceiling = kBase << (interrupted - 1);
      CHECK(restored->next_attempt_ms >= spawned + 10);
      CHECK(restored->next_attempt_ms <= seen + ceiling);
    } else {
      // Parked: the permanent schedule.
      CHECK(restored->next_attempt_ms >= spawned + kPermanent);
      CHECK(restored->next_attempt_ms <= seen + kPermanent);
      CHECK(test::eventually([&] {
        auto metrics = command_output("curl -s http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics");
        return metrics.find("stowage_workqueue_parked_items{name=\"backupstorage\"} 1\n") != std::string::npos;
      }));
    }
    // It runs again only once due, although the manifest listing queued it ("changed") at start.
    std::optional<Row> running;
    REQUIRE(test::eventually(
        [&] {
          running = queue_row(db);
          return running && running->state == "processing";
        },
        std::chrono::milliseconds(kPermanent + 20000)));
    CHECK(wall_ms() >= restored->next_attempt_ms);
    child.kill9();
  }
  std::string logs = test::read_file(log);
  // Each restart said when it would retry; the ones before the limit with the backoff, then parked.
  std::regex retry_re("demo/poison: the previous process ended while reconciling it \\((\\d) of 5 interrupted "
                      "attempts in a row before it is parked\\); retry in (\\d+) ms");
  std::vector<std::int64_t> delays;
  for (auto it = std::sregex_iterator(logs.begin(), logs.end(), retry_re); it != std::sregex_iterator(); ++it) {
    int n = std::stoi((*it)[1]);
    CHECK(n == static_cast<int>(delays.size()) + 1);
    delays.push_back(std::stoll((*it)[2]));
    CHECK(delays.back() <= kBase << (n - 1));
  }
  CHECK(delays.size() == 4);
  CHECK(test::count_of(log, "error demo/poison: parked: the process ended 5 times in a row") == 1);
  CHECK(test::count_of(log, "error demo/poison: parked: the process ended 6 times in a row") == 1);
  CHECK_THAT(logs, !Catch::Contains("not-a-real-secret"));

  // The endpoint goes away: the next attempt fails (connection refused) and finishes, which ends the
  // streak: no longer parked, back to the ordinary backoff.
  s3.close();
  auto child = test::Child::spawn(args, dir / "out", dir / "err");
  std::optional<Row> after;
  REQUIRE(test::eventually(
      [&] {
        after = queue_row(db);
        return after && after->state == "pending" && after->interrupted == 0;
      },
      std::chrono::milliseconds(kPermanent + 20000)));
  CHECK(after->attempts == 8);
  CHECK_THAT(after->last_error, !Catch::StartsWith("interrupted"));
  REQUIRE(test::eventually([&] {
    auto metrics = command_output("curl -s http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics");
    return metrics.find("stowage_workqueue_parked_items{name=\"backupstorage\"} 0\n") != std::string::npos;
  }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}
