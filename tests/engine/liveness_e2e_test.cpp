// Liveness on the real binary: a long-running loop that dies makes /healthz fail naming it, and the
// process exits 1 once the reconciles in flight had the grace period.
//
// The fault is a real one: a state.db whose schema version is current but which lacks a table
// (a damaged or hand-edited file; integrity_check passes and the offline start-up reads do not touch
// that table), so the store's writer thread cannot prepare its statements at its first commit.
// Before, that exception ended in std::terminate (SIGABRT, nothing on /healthz). A reconcile is kept
// in flight by an S3 endpoint that accepts connections and never answers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "support.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;

// A TCP listener that never accepts: connects succeed (the backlog), requests get no answer.
class SilentEndpoint {
 public:
  SilentEndpoint() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 64) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentEndpoint() { ::close(fd_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string hanging_s3_storage(const std::string& endpoint) {
  return "apiVersion: v1\nkind: Secret\nmetadata: {name: s3-creds, namespace: demo}\n"
         "stringData: {AWS_ACCESS_KEY_ID: AKIDLIVENESS, AWS_SECRET_ACCESS_KEY: liveness-test-key}\n---\n"
         "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: slow, namespace: demo}\n"
         "spec:\n  storage:\n    provider: s3\n    s3: {endpoint: " +
         endpoint + ", bucket: b, secretName: s3-creds}\n  deletionPolicy: Delete\n";
}

// A store of the current schema in `state` (made by a run on an empty folder), then damaged: the
// writer's first commit fails.
void damage_store(const std::filesystem::path& dir, const std::filesystem::path& state) {
  std::filesystem::create_directories(dir / "empty");
  {
    auto first = test::Child::spawn({"run", "--manifests", (dir / "empty").string(), "--state-dir", state.string()},
                                    dir / "first.out", dir / "first.err");
    REQUIRE(test::eventually([&] { return test::count_of(dir / "first.err", "manifests loaded") == 1; }));
    first.signal(SIGTERM);
    REQUIRE(first.wait(20s) == 0);
  }
  REQUIRE(std::system(("sqlite3 " + (state / "state.db").string() + " 'DROP TABLE kube_checkpoints'").c_str()) == 0);
}

}  // namespace

TEST_CASE("a state store writer that dies offline fails /healthz naming it and the process exits 1 after the grace period") {
  auto dir = test::temp_dir("liveness-writer");
  auto state = dir / "state";
  damage_store(dir, state);

  SilentEndpoint s3;
  test::write_file(dir / "manifests/slow.yaml", hanging_s3_storage(s3.url()));
  int probe_port = test_support::free_port();
  auto child = test::Child::spawn({"run", "--manifests", (dir / "manifests").string(), "--state-dir", state.string(),
                                   "--commit-interval", "300ms", "--shutdown-grace-period", "3s",
                                   "--backend-request-timeout", "60s", "--health-probe-bind-address",
                                   "127.0.0.1:" + std::to_string(probe_port)},
                                  dir / "run.out", dir / "run.err");
  LAZY_INFO(test::read_file(dir / "run.err"));

  std::pair<int, std::string> health{0, ""};
  bool unhealthy = test::eventually(
      [&] {
        try {
          health = test_support::plain_http(probe_port, "GET", "/healthz");
        } catch (const std::exception&) {  // not listening yet, or gone
        }
        return health.first == 500;
      },
      15s);
  auto seen_at = std::chrono::steady_clock::now();
  REQUIRE(unhealthy);
  CHECK_THAT(health.second, Catch::Contains("state store writer") &&
                                Catch::Contains("no such table: kube_checkpoints"));

  int code = child.wait(3s + 5s);
  auto took = std::chrono::steady_clock::now() - seen_at;
  CHECK(code == 1);
  CHECK(took < 3s + 5s);
  auto log = dir / "run.err";
  CHECK(test::count_of(log, "error state store writer") + test::count_of(log, "\"level\":\"error\"") >= 1);
  CHECK(test::count_of(log, "no such table: kube_checkpoints; the process is unhealthy") == 1);
  CHECK(test::count_of(log, "grace period over with 1 reconciles in flight") == 1);
  CHECK(test::count_of(log, "liveness-test-key") == 0);
}

TEST_CASE("stowage init with a state store writer that dies exits 1 at once, naming it, instead of waiting forever") {
  auto dir = test::temp_dir("liveness-init");
  auto state = dir / "state";
  damage_store(dir, state);

  SilentEndpoint s3;
  test::write_file(dir / "slow.yaml", hanging_s3_storage(s3.url()));
  const auto started = std::chrono::steady_clock::now();
  auto child = test::Child::spawn({"init", "-f", (dir / "slow.yaml").string(), "--state-dir", state.string(),
                                   "--commit-interval", "300ms", "--timeout", "10m", "--backend-request-timeout",
                                   "10m"},
                                  dir / "init.out", dir / "init.err");
  LAZY_INFO(test::read_file(dir / "init.err"));
  // Before, the command waited for a commit that never came: past its own --timeout, forever.
  int code = child.wait(60s);
  CHECK(code == 1);
  CHECK(std::chrono::steady_clock::now() - started < 60s);
  CHECK(test::count_of(dir / "init.err", "error: state store writer (" + (state / "state.db").string() +
                                             ") stopped (an exception: ") == 1);
  CHECK(test::count_of(dir / "init.err", "no such table: kube_checkpoints") >= 1);
  CHECK(test::count_of(dir / "init.err", "liveness-test-key") == 0);
}
