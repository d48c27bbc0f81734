// SqliteStateStore: schema, integrity check, and the group-commit writer thread.
#include "persistence/sqlite_state_store.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <tuple>
#include <mutex>
#include <optional>
#include <thread>

#include "common/liveness.hpp"
#include "common/time_format.hpp"

namespace stowage::persistence {
namespace {

namespace fs = std::filesystem;
using NsName = std::pair<std::string, std::string>;

// Forward migrations: entry i brings the schema from version i to i+1.
const char* const kMigrations[] = {
    R"sql(
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
)sql",
    R"sql(
CREATE TABLE kube_objects (
  resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  resource_version TEXT NOT NULL, object_json TEXT NOT NULL,
  PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;
CREATE TABLE kube_checkpoints (
  resource TEXT NOT NULL PRIMARY KEY, scope TEXT NOT NULL, resource_version TEXT NOT NULL) WITHOUT ROWID;
)sql",
    // Consecutive attempts interrupted by the process's end (poison items back off, then are parked).
    R"sql(
ALTER TABLE queue ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
)sql",
};
static_assert(std::size(kMigrations) == SqliteStateStore::kSchemaVersion);

class Db {
 public:
  explicit Db(sqlite3* db) : db_(db) {}
  ~Db() { sqlite3_close_v2(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }

  // Runs SQL without results; returns the SQLite error text, empty on success.
  std::string exec(const char* sql) const {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) == SQLITE_OK) return {};
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return msg;
  }

 private:
  sqlite3* db_;
};

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds `v` without copying it (SQLITE_STATIC): `v` must outlive the statement's next run() or
  // step() sequence; every caller binds fields of a Batch or locals that live through the run.
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& bind(int i, const char* literal) {  // a string literal: static by nature
    sqlite3_bind_text(stmt_, i, literal, -1, SQLITE_STATIC);
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // Steps once; true while rows come. Throws on error.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(sqlite3_errmsg(sqlite3_db_handle(stmt_)));
  }
  // Every parameter is bound again before the next run, so the bindings are not cleared; the
  // reset happens even when the step throws, so that a failed commit can be retried.
  void run() {
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() { sqlite3_reset(s); }
    } reset{stmt_};
    step();
  }
  std::string text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// What one written row holds, roughly (its text plus a fixed cost): the unit of store.max-pending-bytes.
constexpr std::uint64_t kRowOverhead = 64;
std::uint64_t row_bytes(const QueueRow& r) {
  return kRowOverhead + r.key.kind.size() + r.key.namespace_.size() + r.key.name.size() + r.reason.size() +
         r.last_error.size();
}
std::uint64_t row_bytes(const InitFact& f) {
  return kRowOverhead + f.namespace_.size() + f.name.size() + f.uid.size() + f.backend_identity.size() +
         f.credential_fingerprint.size();
}
std::uint64_t row_bytes(const ObjectRecord& o) {
  return kRowOverhead + o.namespace_.size() + o.name.size() + o.uid.size() + o.spec_hash.size() + o.source.size() +
         o.creation_timestamp.size() + o.object_json.size() + o.status_json.size();
}
std::uint64_t row_bytes(const KubeObjectRecord& o) {
  return kRowOverhead + o.resource.size() + o.namespace_.size() + o.name.size() + o.resource_version.size() +
         o.object_json.size();
}
std::uint64_t row_bytes(const KubeCheckpoint& c) {
  return kRowOverhead + c.resource.size() + c.scope.size() + c.resource_version.size();
}

const char* state_name(ItemState s) { return s == ItemState::Processing ? "processing" : "pending"; }

// One group of writes; later writes to the same row replace earlier ones.
using KubeKey = std::tuple<std::string, std::string, std::string>;  // resource, namespace, name

struct Batch {
  std::map<QueueKey, std::optional<QueueRow>> queue;
  std::map<NsName, std::optional<InitFact>> facts;
  std::map<NsName, std::optional<ObjectRecord>> objects;
  std::vector<std::string> kube_clears;  // applied before the kube rows below
  std::map<KubeKey, std::optional<KubeObjectRecord>> kube_objects;
  std::map<std::string, KubeCheckpoint> kube_checkpoints;
  bool empty() const {
    return queue.empty() && facts.empty() && objects.empty() && kube_clears.empty() && kube_objects.empty() &&
           kube_checkpoints.empty();
  }
  std::size_t size() const {
    return queue.size() + facts.size() + objects.size() + kube_clears.size() + kube_objects.size() +
           kube_checkpoints.size();
  }
  void merge(Batch&& later) {
    for (auto& [k, v] : later.queue) queue[k] = std::move(v);
    for (auto& [k, v] : later.facts) facts[k] = std::move(v);
    for (auto& [k, v] : later.objects) objects[k] = std::move(v);
    for (auto& resource : later.kube_clears) clear_kube(resource);
    for (auto& [k, v] : later.kube_objects) kube_objects[k] = std::move(v);
    for (auto& [k, v] : later.kube_checkpoints) kube_checkpoints[k] = std::move(v);
  }
  // A clear drops the rows of that resource written earlier in this batch.
  void clear_kube(const std::string& resource) {
    kube_clears.push_back(resource);
    for (auto it = kube_objects.begin(); it != kube_objects.end();)
      it = std::get<0>(it->first) == resource ? kube_objects.erase(it) : std::next(it);
    kube_checkpoints.erase(resource);
  }
};

// The statements the writer thread uses, prepared once.
struct WriteStatements {
  explicit WriteStatements(sqlite3* db)
      : put_queue(db,
                  "INSERT OR REPLACE INTO queue(kind,namespace,name,reason,attempts,next_attempt_ms,last_error,state,"
                  "interrupted) VALUES(?,?,?,?,?,?,?,?,?)"),
        del_queue(db, "DELETE FROM queue WHERE kind=? AND namespace=? AND name=?"),
        put_fact(db,
                 "INSERT OR REPLACE INTO initialized(namespace,name,uid,generation,backend_identity,"
                 "credential_fingerprint,initialized_ms) VALUES(?,?,?,?,?,?,?)"),
        del_fact(db, "DELETE FROM initialized WHERE namespace=? AND name=?"),
        put_object(db,
                   "INSERT OR REPLACE INTO objects(namespace,name,uid,generation,spec_hash,source,creation_timestamp,"
                   "object_json,status_json,deleting) VALUES(?,?,?,?,?,?,?,?,?,?)"),
        del_object(db, "DELETE FROM objects WHERE namespace=? AND name=?"),
        put_kube(db, "INSERT OR REPLACE INTO kube_objects(resource,namespace,name,resource_version,object_json) "
                     "VALUES(?,?,?,?,?)"),
        del_kube(db, "DELETE FROM kube_objects WHERE resource=? AND namespace=? AND name=?"),
        clear_kube_objects(db, "DELETE FROM kube_objects WHERE resource=?"),
        clear_kube_checkpoint(db, "DELETE FROM kube_checkpoints WHERE resource=?"),
        put_checkpoint(db, "INSERT OR REPLACE INTO kube_checkpoints(resource,scope,resource_version) VALUES(?,?,?)") {}

  void apply(const Batch& b) {
    for (auto& [k, row] : b.queue) {
      if (!row) {
        del_queue.bind(1, k.kind).bind(2, k.namespace_).bind(3, k.name).run();
        continue;
      }
      put_queue.bind(1, k.kind).bind(2, k.namespace_).bind(3, k.name).bind(4, row->reason);
      put_queue.bind(5, std::int64_t{row->attempts}).bind(6, row->next_attempt_ms).bind(7, row->last_error);
      put_queue.bind(8, state_name(row->state)).bind(9, std::int64_t{row->interrupted}).run();
    }
    for (auto& [k, f] : b.facts) {
      if (!f) {
        del_fact.bind(1, k.first).bind(2, k.second).run();
        continue;
      }
      put_fact.bind(1, k.first).bind(2, k.second).bind(3, f->uid).bind(4, f->generation);
      put_fact.bind(5, f->backend_identity).bind(6, f->credential_fingerprint).bind(7, f->initialized_ms).run();
    }
    for (auto& [k, o] : b.objects) {
      if (!o) {
        del_object.bind(1, k.first).bind(2, k.second).run();
        continue;
      }
      put_object.bind(1, k.first).bind(2, k.second).bind(3, o->uid).bind(4, o->generation).bind(5, o->spec_hash);
      put_object.bind(6, o->source).bind(7, o->creation_timestamp).bind(8, o->object_json).bind(9, o->status_json);
      put_object.bind(10, std::int64_t{o->deleting ? 1 : 0}).run();
    }
    for (const auto& resource : b.kube_clears) {
      clear_kube_objects.bind(1, resource).run();
      clear_kube_checkpoint.bind(1, resource).run();
    }
    for (auto& [k, o] : b.kube_objects) {
      auto& [resource, ns, name] = k;
      if (!o) {
        del_kube.bind(1, resource).bind(2, ns).bind(3, name).run();
        continue;
      }
      put_kube.bind(1, resource).bind(2, ns).bind(3, name).bind(4, o->resource_version).bind(5, o->object_json).run();
    }
    for (auto& [resource, c] : b.kube_checkpoints)
      put_checkpoint.bind(1, resource).bind(2, c.scope).bind(3, c.resource_version).run();
  }

  Stmt put_queue, del_queue, put_fact, del_fact, put_object, del_object;
  Stmt put_kube, del_kube, clear_kube_objects, clear_kube_checkpoint, put_checkpoint;
};

// An existing -wal or -shm file gets mode 0600 too. SQLite creates them with the database file's
// mode (0600), but ones left by an older run, or made under a laxer rule, may be wider.
void tighten_companion(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;  // none yet: SQLite makes it with the database's mode
  if (struct stat st {}; ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) != 0600)
    ::fchmod(fd, 0600);
  ::close(fd);
}

// Opens the file and checks it; empty error string on success. The file and its -wal and -shm
// companions are mode 0600, whatever the umask.
std::string open_checked(const fs::path& file, bool synchronous_full, std::unique_ptr<Db>& out) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return std::string("cannot create ") + file.string() + ": " + std::strerror(errno);
  ::fchmod(fd, 0600);
  ::close(fd);
  tighten_companion(file.string() + "-wal");
  tighten_companion(file.string() + "-shm");
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  auto db = std::make_unique<Db>(raw);
  if (rc != SQLITE_OK) return std::string("cannot open ") + file.string() + ": " + sqlite3_errmsg(raw);
  sqlite3_busy_timeout(raw, 5000);
  if (auto e = db->exec("PRAGMA journal_mode=WAL"); !e.empty()) return "corrupt: " + e;
  db->exec(synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  db->exec(("PRAGMA cache_size=-" + std::to_string(SqliteStateStore::kPageCacheKiB)).c_str());
  Stmt check(raw, "PRAGMA integrity_check");
  std::string verdict;
  try {
    while (check.step()) verdict += check.text(0);
  } catch (const std::exception& e) {
    return std::string("corrupt: ") + e.what();
  }
  if (verdict != "ok") return "corrupt: integrity_check says " + verdict.substr(0, 200);
  out = std::move(db);
  return {};
}

std::string migrate(Db& db) {
  Stmt v(db.get(), "PRAGMA user_version");
  v.step();
  auto version = v.integer(0);
  if (version > SqliteStateStore::kSchemaVersion)
    return "was written by a newer stowage (schema " + std::to_string(version) + ", this one knows " +
           std::to_string(SqliteStateStore::kSchemaVersion) + "): run that version, or use a new --state-dir";
  for (auto i = version; i < SqliteStateStore::kSchemaVersion; ++i) {
    std::string sql = std::string("BEGIN;") + kMigrations[i] + "PRAGMA user_version=" + std::to_string(i + 1) +
                      ";COMMIT;";
    if (auto e = db.exec(sql.c_str()); !e.empty()) {
      db.exec("ROLLBACK");
      return "migration to schema " + std::to_string(i + 1) + " failed: " + e;
    }
  }
  return {};
}

void move_aside(const fs::path& file, const std::string& why) {
  std::string stamp = rfc3339(WallClock::now());
  std::erase(stamp, ':');
  fs::path target = file.string() + ".corrupt-" + stamp;
  std::error_code ec;
  fs::rename(file, target, ec);
  fs::rename(file.string() + "-wal", target.string() + "-wal", ec);
  fs::remove(file.string() + "-shm", ec);
  spdlog::error("state store {} is unusable ({}); moved it aside to {} and starting with an empty store: "
                "queued work and initialization facts are rebuilt from the source",
                file.string(), why, target.string());
}

std::vector<ObjectRecord> select_objects(sqlite3* db) {
  Stmt s(db,
         "SELECT namespace,name,uid,generation,spec_hash,source,creation_timestamp,object_json,status_json,deleting "
         "FROM objects ORDER BY namespace,name");
  std::vector<ObjectRecord> out;
  while (s.step())
    out.push_back({s.text(0), s.text(1), s.text(2), s.integer(3), s.text(4), s.text(5), s.text(6), s.text(7),
                   s.text(8), s.integer(9) != 0});
  return out;
}

}  // namespace

struct SqliteStateStore::Impl {
  fs::path file;
  boost::asio::any_io_executor reactor;
  StoreOptions options;
  std::unique_ptr<Db> db;
  std::mutex db_mutex;  // the connection is used by start-up reads or the writer, never both

  // Reactor side.
  Batch current;
  std::uint64_t current_bytes = 0;  // written into `current` (each write counted, collapsed or not)
  bool flush_scheduled = false;
  std::uint64_t submitted_seq = 0;
  std::uint64_t committed_seq = 0;  // as last seen on the reactor
  std::multimap<std::uint64_t, std::function<void()>> waiters;
  std::unique_ptr<boost::asio::steady_timer> timer;

  // Writer side.
  std::mutex m;
  std::condition_variable cv;
  struct Submitted {
    std::uint64_t seq;
    Batch batch;
    boost::asio::any_io_executor tracked;  // keeps the reactor running until the commit is reported
    std::uint64_t bytes = 0;
  };
  std::deque<Submitted> pending;
  std::uint64_t writer_committed = 0;
  bool stopping = false;
  bool abandoned = false;  // abandon(): the writer gives up what it has not committed
  std::string last_error;  // the last failed commit's error, "" once one succeeds
  // Written on the reactor and not yet committed (the sum of row_bytes): store.max-pending-bytes.
  std::atomic<std::uint64_t> uncommitted_bytes{0};
  std::string writer_dead;  // why the writer thread ended outside stop(); "" while it runs
  StoreStats stats;
  std::thread writer;

  void start() {
    timer = std::make_unique<boost::asio::steady_timer>(reactor);
    writer = std::thread([this] { run_writer(); });
  }

  // The writer's one exit besides stop(): an exception (a statement that cannot be prepared, such as
  // a table missing from a damaged file) is reported to liveness and releases every waiter, since
  // nothing will commit any more; the process then exits by the liveness policy.
  void run_writer() {
    try {
      writer_loop();
      return;
    } catch (const std::exception& e) {
      std::lock_guard lock(m);
      writer_dead = "an exception: " + std::string(e.what());
    }
    cv.notify_all();
    common::Liveness& liveness = options.liveness ? *options.liveness : common::Liveness::process();
    liveness.report("state store writer (" + file.string() + ")", writer_dead);
    boost::asio::post(reactor, [this] { committed(std::numeric_limits<std::uint64_t>::max()); });
  }

  void touched(std::uint64_t bytes) {
    current_bytes += bytes;
    uncommitted_bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (flush_scheduled) return;
    flush_scheduled = true;
    if (options.commit_interval.count() == 0) {
      boost::asio::post(reactor, [this] { submit(); });
    } else {
      timer->expires_after(options.commit_interval);
      timer->async_wait([this](boost::system::error_code) { submit(); });
    }
  }

  void submit() {
    flush_scheduled = false;
    if (current.empty()) return;
    std::lock_guard lock(m);
    pending.push_back(Submitted{++submitted_seq, std::move(current),
                                boost::asio::prefer(reactor, boost::asio::execution::outstanding_work.tracked),
                                current_bytes});
    current = Batch{};
    current_bytes = 0;
    cv.notify_one();
  }

  void committed(std::uint64_t seq) {  // on the reactor
    committed_seq = std::max(committed_seq, seq);
    while (!waiters.empty() && waiters.begin()->first <= committed_seq) {
      auto done = std::move(waiters.begin()->second);
      waiters.erase(waiters.begin());
      done();
    }
  }

  void writer_loop() {
    WriteStatements* stmts = nullptr;
    std::unique_ptr<WriteStatements> owned;
    for (;;) {
      std::deque<Submitted> taken;
      {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return stopping || !pending.empty(); });
        if (pending.empty()) return;
        taken.swap(pending);  // merge outside the lock: the reactor's submit() never waits on it
      }
      // Everything waiting goes into one transaction: the slower the disk, the bigger the group.
      Batch batch = std::move(taken.front().batch);
      for (std::size_t i = 1; i < taken.size(); ++i) batch.merge(std::move(taken[i].batch));
      std::uint64_t last = taken.back().seq;
      std::uint64_t bytes = 0;
      for (const auto& t : taken) bytes += t.bytes;
      boost::asio::any_io_executor tracked = std::move(taken.back().tracked);
      taken.clear();
      std::lock_guard db_lock(db_mutex);
      if (!stmts) {
        owned = std::make_unique<WriteStatements>(db->get());
        stmts = owned.get();
      }
      if (!commit_until_done(*stmts, batch)) return;  // abandoned: SQLite keeps what was committed before
      uncommitted_bytes.fetch_sub(bytes, std::memory_order_relaxed);
      {
        std::lock_guard lock(m);
        writer_committed = last;
      }
      cv.notify_all();
      boost::asio::post(tracked, [this, last] { committed(last); });
    }
  }

  // A failed commit (disk full, I/O error) is retried until it succeeds (true), or until abandon()
  // (false): queued work is never dropped while the process runs.
  bool commit_until_done(WriteStatements& stmts, const Batch& batch) {
    for (int attempt = 0;; ++attempt) {
      auto t0 = std::chrono::steady_clock::now();
      std::string err = db->exec("BEGIN IMMEDIATE");
      if (err.empty()) {
        try {
          stmts.apply(batch);
        } catch (const std::exception& e) {
          err = e.what();
        }
      }
      if (err.empty()) err = db->exec("COMMIT");
      if (err.empty()) {
        auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
        std::lock_guard lock(m);
        ++stats.transactions;
        stats.rows_written += batch.size();
        stats.longest_commit = std::max(stats.longest_commit, took);
        int used = 0, highwater = 0;
        if (sqlite3_db_status(db->get(), SQLITE_DBSTATUS_CACHE_USED, &used, &highwater, 0) == SQLITE_OK)
          stats.page_cache_bytes = static_cast<std::uint64_t>(used);
        last_error.clear();
        return true;
      }
      if (sqlite3_errcode(db->get()) == SQLITE_FULL)
        err = "disk full (" + err + "): free space on the filesystem holding " + file.parent_path().string();
      db->exec("ROLLBACK");
      spdlog::error("state store {}: commit of {} changes failed (attempt {}): {}; retrying in 1s",
                    file.string(), batch.size(), attempt + 1, err);
      std::unique_lock lock(m);
      last_error = err;
      if (cv.wait_for(lock, std::chrono::seconds(1), [&] { return abandoned; })) return false;
    }
  }

  bool writer_died() {
    std::lock_guard lock(m);
    return !writer_dead.empty();
  }

  void stop() {
    {
      std::lock_guard lock(m);
      stopping = true;
    }
    cv.notify_all();
    if (writer.joinable()) writer.join();
  }
};

SqliteStateStore::SqliteStateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SqliteStateStore::~SqliteStateStore() {
  if (!impl_->abandoned) flush_blocking();
  impl_->stop();
}

Result<std::unique_ptr<SqliteStateStore>, std::string> SqliteStateStore::open(const fs::path& state_dir,
                                                                  boost::asio::any_io_executor reactor,
                                                                  StoreOptions options) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec)
    return Err("cannot create state directory " + state_dir.string() + ": " + ec.message() +
               " (set --state-dir to a writable directory)");
  auto impl = std::make_unique<Impl>();
  impl->file = state_dir / "state.db";
  impl->reactor = std::move(reactor);
  impl->options = options;
  std::string err = open_checked(impl->file, options.synchronous_full, impl->db);
  if (err.rfind("corrupt: ", 0) == 0) {
    impl->db.reset();
    move_aside(impl->file, err.substr(9));
    err = open_checked(impl->file, options.synchronous_full, impl->db);
  }
  if (err.empty()) err = migrate(*impl->db);
  if (!err.empty()) return Err("state store " + impl->file.string() + ": " + err);
  impl->start();
  return std::unique_ptr<SqliteStateStore>(new SqliteStateStore(std::move(impl)));
}

std::vector<QueueRow> SqliteStateStore::load_queue() {
  std::lock_guard lock(impl_->db_mutex);
  Stmt s(impl_->db->get(),
         "SELECT kind,namespace,name,reason,attempts,next_attempt_ms,last_error,state,interrupted FROM queue");
  std::vector<QueueRow> out;
  while (s.step()) {
    QueueRow r{{s.text(0), s.text(1), s.text(2)}, s.text(3), static_cast<int>(s.integer(4)), s.integer(5),
               s.text(6), s.text(7) == "processing" ? ItemState::Processing : ItemState::Pending,
               static_cast<int>(s.integer(8))};
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<InitFact> SqliteStateStore::load_facts() {
  std::lock_guard lock(impl_->db_mutex);
  Stmt s(impl_->db->get(),
         "SELECT namespace,name,uid,generation,backend_identity,credential_fingerprint,initialized_ms FROM initialized");
  std::vector<InitFact> out;
  while (s.step())
    out.push_back({s.text(0), s.text(1), s.text(2), s.integer(3), s.text(4), s.text(5), s.integer(6)});
  return out;
}

std::vector<ObjectRecord> SqliteStateStore::load_objects() {
  std::lock_guard lock(impl_->db_mutex);
  return select_objects(impl_->db->get());
}

void SqliteStateStore::put(const QueueRow& row) {
  impl_->current.queue[row.key] = row;
  impl_->touched(row_bytes(row));
}
void SqliteStateStore::erase_queue(const QueueKey& key) {
  impl_->current.queue[key] = std::nullopt;
  impl_->touched(kRowOverhead);
}
void SqliteStateStore::put(const InitFact& fact) {
  impl_->current.facts[{fact.namespace_, fact.name}] = fact;
  impl_->touched(row_bytes(fact));
}
void SqliteStateStore::erase_fact(const std::string& ns, const std::string& name) {
  impl_->current.facts[{ns, name}] = std::nullopt;
  impl_->touched(kRowOverhead);
}
void SqliteStateStore::put(const ObjectRecord& record) {
  impl_->current.objects[{record.namespace_, record.name}] = record;
  impl_->touched(row_bytes(record));
}
void SqliteStateStore::erase_object(const std::string& ns, const std::string& name) {
  impl_->current.objects[{ns, name}] = std::nullopt;
  impl_->touched(kRowOverhead);
}

std::vector<KubeObjectRecord> SqliteStateStore::load_kube_objects() {
  std::vector<KubeObjectRecord> out;
  scan_kube_objects([&](KubeObjectRecord& row) { out.push_back(std::move(row)); });
  return out;
}

// The grouped writes `each` may make only touch the reactor side's batch, never the connection: the
// writer thread, if it wants the connection meanwhile, waits for the scan's end.
void SqliteStateStore::scan_kube_objects(const std::function<void(KubeObjectRecord&)>& each) {
  std::lock_guard lock(impl_->db_mutex);
  Stmt s(impl_->db->get(),
         "SELECT resource,namespace,name,resource_version,object_json FROM kube_objects ORDER BY resource,namespace,name");
  while (s.step()) {
    KubeObjectRecord row{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4)};
    each(row);
  }
}

std::vector<KubeCheckpoint> SqliteStateStore::load_kube_checkpoints() {
  std::lock_guard lock(impl_->db_mutex);
  Stmt s(impl_->db->get(), "SELECT resource,scope,resource_version FROM kube_checkpoints ORDER BY resource");
  std::vector<KubeCheckpoint> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

void SqliteStateStore::put(const KubeObjectRecord& record) {
  impl_->current.kube_objects[{record.resource, record.namespace_, record.name}] = record;
  impl_->touched(row_bytes(record));
}
void SqliteStateStore::erase_kube_object(const std::string& resource, const std::string& ns, const std::string& name) {
  impl_->current.kube_objects[{resource, ns, name}] = std::nullopt;
  impl_->touched(kRowOverhead);
}
void SqliteStateStore::put(const KubeCheckpoint& checkpoint) {
  impl_->current.kube_checkpoints[checkpoint.resource] = checkpoint;
  impl_->touched(row_bytes(checkpoint));
}
void SqliteStateStore::clear_kube(const std::string& resource) {
  impl_->current.clear_kube(resource);
  impl_->touched(kRowOverhead);
}

void SqliteStateStore::when_durable(std::function<void()> done) {
  auto& i = *impl_;
  std::uint64_t target = i.current.empty() ? i.submitted_seq : i.submitted_seq + 1;
  if (target <= i.committed_seq || i.writer_died()) {
    boost::asio::post(i.reactor, std::move(done));
    return;
  }
  i.waiters.emplace(target, std::move(done));
}

void SqliteStateStore::flush_blocking() {
  auto& i = *impl_;
  i.submit();
  std::unique_lock lock(i.m);
  i.cv.wait(lock, [&] { return i.writer_committed >= i.submitted_seq || !i.writer_dead.empty(); });
}

bool SqliteStateStore::flush_within(std::chrono::milliseconds limit) {
  auto& i = *impl_;
  i.submit();
  std::unique_lock lock(i.m);
  i.cv.wait_for(lock, limit,
                [&] { return i.writer_committed >= i.submitted_seq || i.abandoned || !i.writer_dead.empty(); });
  return i.writer_committed >= i.submitted_seq;
}

void SqliteStateStore::abandon() {
  auto& i = *impl_;
  std::string why;
  {
    std::lock_guard lock(i.m);
    if (i.abandoned || i.writer_committed >= i.submitted_seq) return;
    i.abandoned = true;
    why = i.last_error;
  }
  i.cv.notify_all();
  spdlog::error("state store {}: about {} bytes of changes were not committed before the stop{}; the work they "
                "record is done again at the next start (the queue rows still in the file say where each item was)",
                i.file.string(), i.uncommitted_bytes.load(), why.empty() ? "" : " (the last commit failed: " + why + ")");
}

std::uint64_t SqliteStateStore::uncommitted_bytes() const {
  return impl_->uncommitted_bytes.load(std::memory_order_relaxed);
}

StoreStats SqliteStateStore::stats() const {
  std::lock_guard lock(impl_->m);
  return impl_->stats;
}

const fs::path& SqliteStateStore::path() const { return impl_->file; }

Result<std::vector<ObjectRecord>, std::string> read_objects(const fs::path& state_dir) {
  fs::path file = state_dir / "state.db";
  if (!fs::exists(file))
    return Err("no state at " + file.string() + ": run `stowage run` or `stowage init` with this --state-dir first");
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) return Err("cannot open " + file.string() + ": " + sqlite3_errmsg(raw));
  sqlite3_busy_timeout(raw, 5000);
  try {
    return select_objects(raw);
  } catch (const std::exception& e) {
    return Err("cannot read " + file.string() + ": " + e.what());
  }
}

}  // namespace stowage::persistence
