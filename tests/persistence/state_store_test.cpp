#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "persistence/fingerprint.hpp"
#include "persistence/sqlite_state_store.hpp"
#include "persistence/work_queue.hpp"

using namespace stowage::persistence;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("stowage-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void test_write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::unique_ptr<SqliteStateStore> open_store(const fs::path& dir, boost::asio::io_context& io, int commit_ms = 5) {
  auto r = SqliteStateStore::open(dir, io.get_executor(), StoreOptions{std::chrono::milliseconds(commit_ms), true});
  REQUIRE(r.ok());
  return std::move(r.value());
}
}  // namespace

TEST_CASE("the store keeps queue rows, facts and objects across a reopen") {
  auto dir = temp_dir("reopen");
  {
    boost::asio::io_context io;
    auto store = open_store(dir, io);
    store->put(QueueRow{{"BackupStorage", "demo", "a"}, "added", 1, 42, "boom", ItemState::Processing});
    store->put(QueueRow{{"BackupStorage", "demo", "b"}, "added", 0, 7, "", ItemState::Pending});
    store->erase_queue({"BackupStorage", "demo", "b"});
    store->put(InitFact{"demo", "a", "uid-1", 3, "local:/x", "fp", 99});
    store->put(ObjectRecord{"demo", "a", "uid-1", 3, "h", "/m", "2025-01-01T00:00:00Z", "{}", "{\"phase\":\"Ready\"}", false});
    bool durable = false;
    store->when_durable([&] { durable = true; });
    io.run_for(std::chrono::seconds(5));
    CHECK(durable);
  }
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  auto rows = store->load_queue();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].key.name == "a");
  CHECK(rows[0].state == ItemState::Processing);
  CHECK(rows[0].attempts == 1);
  CHECK(rows[0].last_error == "boom");
  auto facts = store->load_facts();
  REQUIRE(facts.size() == 1);
  CHECK(facts[0].generation == 3);
  CHECK(facts[0].backend_identity == "local:/x");
  auto objects = store->load_objects();
  REQUIRE(objects.size() == 1);
  CHECK(objects[0].status_json == "{\"phase\":\"Ready\"}");
  auto ro = read_objects(dir);
  REQUIRE(ro.ok());
  CHECK(ro.value().size() == 1);
}

TEST_CASE("the database file is private (0600)") {
  auto dir = temp_dir("mode");
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  struct stat st {};
  REQUIRE(::stat((dir / "state.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a corrupt state file is moved aside and the store rebuilt") {
  auto dir = temp_dir("corrupt");
  {
    std::ofstream f(dir / "state.db", std::ios::binary);
    f << std::string(8192, 'x');
  }
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  CHECK(store->load_queue().empty());
  bool moved = false;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("state.db.corrupt-", 0) == 0) moved = true;
  CHECK(moved);
}

TEST_CASE("a store written by a newer schema is refused with a clear message") {
  auto dir = temp_dir("newer");
  {
    boost::asio::io_context io;
    auto store = open_store(dir, io);
  }
  REQUIRE(std::system(("sqlite3 " + (dir / "state.db").string() + " 'PRAGMA user_version=99'").c_str()) == 0);
  boost::asio::io_context io;
  auto r = SqliteStateStore::open(dir, io.get_executor(), StoreOptions{});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("newer stowage"));
}

TEST_CASE("many writes in one turn become one transaction (group commit)") {
  auto dir = temp_dir("group");
  boost::asio::io_context io;
  auto store = open_store(dir, io, 0);
  WorkQueue q(store.get(), [] { return std::int64_t{0}; });
  for (int i = 0; i < 1000; ++i) q.add({"BackupStorage", "demo", "s" + std::to_string(i)}, "added");
  bool durable = false;
  store->when_durable([&] { durable = true; });
  io.run_for(std::chrono::seconds(10));
  REQUIRE(durable);
  CHECK(store->stats().transactions == 1);
  CHECK(store->stats().rows_written == 1000);
  CHECK(store->load_queue().size() == 1000);
}

TEST_CASE("claim then complete in one batch leaves no row behind") {
  auto dir = temp_dir("collapse");
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  WorkQueue q(store.get(), [] { return std::int64_t{0}; });
  q.add({"BackupStorage", "demo", "a"}, "added");
  auto item = q.claim();
  REQUIRE(item);
  q.complete(item->key);
  store->flush_blocking();
  CHECK(store->load_queue().empty());
}

TEST_CASE("fingerprints are keyed, stable and order-independent") {
  auto dir = temp_dir("fp");
  auto a = Fingerprinter::load_or_create(dir);
  REQUIRE(a.ok());
  auto b = Fingerprinter::load_or_create(dir);
  REQUIRE(b.ok());
  std::map<std::string, std::string> data{{"AWS_ACCESS_KEY_ID", "id"}, {"AWS_SECRET_ACCESS_KEY", "secret"}};
  CHECK(a.value().fingerprint(data) == b.value().fingerprint(data));
  CHECK(a.value().fingerprint(data) != a.value().fingerprint({{"AWS_ACCESS_KEY_ID", "id"}}));
  auto other = Fingerprinter::load_or_create(temp_dir("fp2"));
  CHECK(other.value().fingerprint(data) != a.value().fingerprint(data));  // keyed: not a plain hash
  struct stat st {};
  REQUIRE(::stat((dir / "fingerprint.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("the Kubernetes cache rows and checkpoints survive a reopen, and a clear drops a resource's rows") {
  auto dir = temp_dir("kube-cache");
  {
    boost::asio::io_context io;
    auto store = open_store(dir, io);
    store->put(KubeObjectRecord{"backupstorages", "demo", "a", "10", R"({"kind":"BackupStorage"})"});
    store->put(KubeObjectRecord{"backupstorages", "demo", "b", "11", "{}"});
    store->put(KubeObjectRecord{"secrets", "demo", "s", "12", ""});
    store->put(KubeCheckpoint{"secrets", "https://old", "12"});
    store->erase_kube_object("backupstorages", "demo", "b");
    store->put(KubeCheckpoint{"backupstorages", "https://api:6443", "11"});
    // A clear in the same batch drops only the earlier rows of its resource.
    store->clear_kube("secrets");
    store->put(KubeObjectRecord{"secrets", "demo", "t", "13", ""});
    bool durable = false;
    store->when_durable([&] { durable = true; });
    io.run_for(std::chrono::seconds(5));
    CHECK(durable);
  }
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  auto rows = store->load_kube_objects();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].resource == "backupstorages");
  CHECK(rows[0].name == "a");
  CHECK(rows[0].object_json == R"({"kind":"BackupStorage"})");
  CHECK(rows[1].resource == "secrets");
  CHECK(rows[1].name == "t");
  auto checkpoints = store->load_kube_checkpoints();
  REQUIRE(checkpoints.size() == 1);
  CHECK(checkpoints[0].resource == "backupstorages");
  CHECK(checkpoints[0].scope == "https://api:6443");
  CHECK(checkpoints[0].resource_version == "11");
}

TEST_CASE("the Kubernetes cache rows are handed over one at a time, in the order load_kube_objects gives") {
  auto dir = temp_dir("kube-scan");
  boost::asio::io_context io;
  auto store = open_store(dir, io, 0);
  for (int i = 0; i < 300; ++i)
    store->put(KubeObjectRecord{"backupstorages", "ns-" + std::to_string(i % 10), "s" + std::to_string(i),
                                std::to_string(i), "{}"});
  store->put(KubeObjectRecord{"secrets", "ns-0", "creds", "7", ""});
  bool durable = false;
  store->when_durable([&] { durable = true; });
  io.run_for(std::chrono::seconds(10));
  REQUIRE(durable);
  std::vector<std::string> scanned, loaded;
  store->scan_kube_objects([&](KubeObjectRecord& row) {
    scanned.push_back(row.resource + " " + row.namespace_ + "/" + row.name + " " + row.resource_version);
    // The grouped writes may be made meanwhile (the mirror erases rows it cannot resume as it reads).
    if (row.resource == "secrets") store->erase_kube_object(row.resource, row.namespace_, row.name);
  });
  for (const auto& row : store->load_kube_objects())
    loaded.push_back(row.resource + " " + row.namespace_ + "/" + row.name + " " + row.resource_version);
  CHECK(scanned.size() == 301);
  CHECK(scanned == loaded);
  CHECK(scanned.back() == "secrets ns-0/creds 7");
  durable = false;
  store->when_durable([&] { durable = true; });
  io.restart();
  io.run_for(std::chrono::seconds(10));
  REQUIRE(durable);
  CHECK(store->load_kube_objects().size() == 300);
}

TEST_CASE("the page cache stays within its bound while the mirrored objects outgrow it many times") {
  auto dir = temp_dir("page-cache");
  boost::asio::io_context io;
  auto store = open_store(dir, io, 0);
  const std::string object(1500, 'x');  // about a BackupStorage's JSON
  for (int i = 0; i < 6000; ++i)  // ~9 MB of rows: SQLite's default cache (2 MiB) would fill
    store->put(KubeObjectRecord{"backupstorages", "ns-" + std::to_string(i % 100), "s" + std::to_string(i),
                                std::to_string(i), object});
  bool durable = false;
  store->when_durable([&] { durable = true; });
  io.run_for(std::chrono::seconds(20));
  REQUIRE(durable);
  const auto stats = store->stats();
  CHECK(stats.page_cache_bytes > 0);
  CHECK(stats.page_cache_bytes <= std::uint64_t{SqliteStateStore::kPageCacheKiB} * 1024 * 5 / 4);  // + headers
  CHECK(store->load_kube_objects().size() == 6000);
}

TEST_CASE("a queue row's count of interrupted attempts survives a reopen") {
  auto dir = temp_dir("interrupted");
  {
    boost::asio::io_context io;
    auto store = open_store(dir, io);
    store->put(QueueRow{{"BackupStorage", "demo", "a"}, "interrupted", 4, 42, "interrupted", ItemState::Pending, 3});
    store->flush_blocking();
  }
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  auto rows = store->load_queue();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].attempts == 4);
  CHECK(rows[0].interrupted == 3);
}

TEST_CASE("a state.db of the previous schema (2) opens and keeps its queue, with no interruption counted") {
  auto dir = temp_dir("schema2");
  // Schema 2 exactly as the previous stowage created it, with one row in flight.
  const std::string v2 = R"sql(
CREATE TABLE queue (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  reason TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL, state TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name)) WITHOUT ROWID;
CREATE TABLE initialized (
  namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, generation INTEGER NOT NULL,
  backend_identity TEXT NOT NULL, credential_fingerprint TEXT NOT NULL, initialized_ms INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)) WITHOUT ROWID;
CREATE TABLE objects (
  namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, generation INTEGER NOT NULL,
  spec_hash TEXT NOT NULL, source TEXT NOT NULL, creation_timestamp TEXT NOT NULL,
  object_json TEXT NOT NULL, status_json TEXT NOT NULL, deleting INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)) WITHOUT ROWID;
CREATE TABLE kube_objects (
  resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  resource_version TEXT NOT NULL, object_json TEXT NOT NULL,
  PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;
CREATE TABLE kube_checkpoints (
  resource TEXT NOT NULL PRIMARY KEY, scope TEXT NOT NULL, resource_version TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO queue VALUES('BackupStorage','demo','a','added',2,1700000000000,'timeout','processing');
INSERT INTO initialized VALUES('demo','a','uid-1',1,'local:/x','fp',99);
PRAGMA user_version=2;
)sql";
  test_write(dir / "v2.sql", v2);
  REQUIRE(std::system(("sqlite3 " + (dir / "state.db").string() + " < " + (dir / "v2.sql").string()).c_str()) == 0);
  fs::remove(dir / "v2.sql");
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  auto rows = store->load_queue();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].key.name == "a");
  CHECK(rows[0].attempts == 2);
  CHECK(rows[0].state == ItemState::Processing);
  CHECK(rows[0].interrupted == 0);
  CHECK(store->load_facts().size() == 1);
  // Nothing was moved aside: the file was migrated, not rebuilt.
  for (auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find("corrupt") == std::string::npos);
  // And the migrated table takes the new column.
  store->put(QueueRow{{"BackupStorage", "demo", "a"}, "interrupted", 3, 5, "x", ItemState::Pending, 1});
  store->flush_blocking();
  CHECK(store->load_queue()[0].interrupted == 1);
}

TEST_CASE("an item in flight when the process dies comes back from disk backed off, its interruptions counted") {
  auto dir = temp_dir("poison");
  std::int64_t wall = 1'700'000'000'000;
  auto steady = std::chrono::steady_clock::time_point(std::chrono::hours(1));
  auto wall_clock = [&] { return wall; };
  auto steady_clock = [&] { return steady; };
  {
    boost::asio::io_context io;
    auto store = open_store(dir, io);
    WorkQueue q(store.get(), wall_clock, steady_clock);
    q.add({"BackupStorage", "demo", "poison"}, "added");
    REQUIRE(q.claim());
    store->flush_blocking();  // the claim is durable, then the process "dies": nothing completes
  }
  for (int start = 1; start <= 3; ++start) {
    INFO("start " << start);
    boost::asio::io_context io;
    auto store = open_store(dir, io);
    WorkQueue q(store.get(), wall_clock, steady_clock);
    std::vector<int> seen;
    q.restore(store->load_queue(), [&](const QueueRow& row) {
      seen.push_back(row.interrupted);
      return std::chrono::milliseconds(1000 << row.interrupted);
    });
    REQUIRE(seen == std::vector<int>{start});
    CHECK_FALSE(q.claim());  // not due at once
    store->flush_blocking();
    auto rows = store->load_queue();
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == ItemState::Pending);
    CHECK(rows[0].interrupted == start);
    CHECK(rows[0].attempts == start);
    CHECK(rows[0].next_attempt_ms == wall + (1000 << start));
    wall += 1000 << start;
    steady += std::chrono::milliseconds(1000 << start);
    REQUIRE(q.claim());  // runs once due, and the process "dies" again
    store->flush_blocking();
  }
  // An attempt that finishes ends the streak, on disk too.
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  WorkQueue q(store.get(), wall_clock, steady_clock);
  q.restore(store->load_queue(), [](const QueueRow&) { return std::chrono::milliseconds(0); });
  REQUIRE(q.claim());
  q.fail({"BackupStorage", "demo", "poison"}, "timeout", std::chrono::milliseconds(5000));
  store->flush_blocking();
  auto rows = store->load_queue();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].interrupted == 0);
  CHECK(rows[0].attempts == 5);
}

TEST_CASE("a writer thread that dies is reported to liveness and releases the waiters, never std::terminate") {
  auto dir = temp_dir("writer-dies");
  {
    boost::asio::io_context io;
    open_store(dir, io);
  }
  // A damaged file: the schema version says 3 but a table is missing, so the writer's statements
  // cannot be prepared (integrity_check passes; the start-up reads used here do not touch it).
  REQUIRE(std::system(("sqlite3 " + (dir / "state.db").string() + " 'DROP TABLE kube_checkpoints'").c_str()) == 0);
  boost::asio::io_context io;
  stowage::common::Liveness liveness;
  auto r = SqliteStateStore::open(dir, io.get_executor(), StoreOptions{std::chrono::milliseconds(5), true, &liveness});
  REQUIRE(r.ok());
  auto store = std::move(r.value());
  CHECK(store->load_queue().empty());
  store->put(QueueRow{{"BackupStorage", "demo", "a"}, "added", 0, 1, "", ItemState::Pending});
  bool released = false;
  store->when_durable([&] { released = true; });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!released && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  CHECK(released);
  REQUIRE_FALSE(liveness.healthy());
  auto ended = liveness.ended();
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].loop == "state store writer (" + (dir / "state.db").string() + ")");
  CHECK_THAT(ended[0].reason, Catch::Contains("no such table: kube_checkpoints"));
  bool later = false;
  store->put(QueueRow{{"BackupStorage", "demo", "b"}, "added", 0, 1, "", ItemState::Pending});
  store->when_durable([&] { later = true; });
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
  CHECK(later);
  store->flush_blocking();  // returns: nothing will commit any more
}

TEST_CASE("writes not committed are counted until the writer catches up, and flush_within gives up at its limit") {
  auto dir = temp_dir("behind");
  boost::asio::io_context io;
  auto store = open_store(dir, io);
  CHECK(store->uncommitted_bytes() == 0);
  // Another connection holds the write lock for 2 s: the writer's BEGIN IMMEDIATE waits, then fails
  // and is retried (the store's busy timeout is 5 s), as with a failing disk.
  auto held = dir / "held";
  REQUIRE(std::system(("(sqlite3 " + (dir / "state.db").string() + " 'BEGIN IMMEDIATE;' \".shell touch " +
                       held.string() + "\" '.shell sleep 2' 'COMMIT;' &)")
                          .c_str()) == 0);
  for (int i = 0; i < 100 && !fs::exists(held); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(fs::exists(held));
  const ObjectRecord record{"demo", "a", "uid-1", 1, "h", "/m", "2025-01-01T00:00:00Z", std::string(1000, 'x'), "{}", false};
  store->put(record);
  store->erase_queue({"BackupStorage", "demo", "gone"});
  const auto behind = store->uncommitted_bytes();
  CHECK(behind >= 1000);  // the row's text and a fixed cost per write
  io.run_for(std::chrono::milliseconds(100));  // submitted to the writer, which is waiting for the lock
  CHECK(store->uncommitted_bytes() == behind);
  auto started = std::chrono::steady_clock::now();
  CHECK_FALSE(store->flush_within(std::chrono::milliseconds(300)));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  // The lock goes: the commit succeeds and nothing is behind any more.
  bool durable = false;
  store->when_durable([&] { durable = true; });
  for (int i = 0; i < 100 && !durable; ++i) io.run_for(std::chrono::milliseconds(100));
  CHECK(durable);
  CHECK(store->uncommitted_bytes() == 0);
  CHECK(store->flush_within(std::chrono::milliseconds(100)));
  CHECK(store->load_objects().size() == 1);
}
