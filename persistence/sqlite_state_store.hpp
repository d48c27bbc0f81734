#pragma once
// SqliteStateStore — the StateStore on the one SQLite database in the state directory (state.db,
// mode 0600, WAL).
//
// Guarantees (besides StateStore's):
//  - Opening runs forward schema migrations and PRAGMA integrity_check; a corrupt or foreign file is
//    moved aside (state.db.corrupt-<time>) with a log line and a fresh store is created.
//  - Writes are grouped: put/erase calls made on the reactor are collected and committed together
//    in one transaction every `commit_interval` (or on the next reactor turn when it is 0) by a
//    dedicated writer thread, so SQLite never stalls the reactor. Several writes to one row in a
//    batch collapse into the last. Batches commit in order; a failed commit is retried, never dropped.
//  - A write is durable once its batch has committed (synchronous=FULL by default: also across a
//    power cut; NORMAL: across a process crash).
//  - The connection's page cache is bounded (kPageCacheKiB): the table of mirrored objects grows
//    with the storages, and SQLite's default (2 MiB a connection) would keep that much of it in
//    memory for the process's life; the OS's file cache has the pages anyway.
//  - A writer thread that dies (an exception) is reported to StoreOptions::liveness, never ends in
//    std::terminate; waiters are released then, since nothing will commit any more.
// Assumes: the put/erase/when_durable calls all come from the one reactor thread.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/liveness.hpp"
#include "common/result.hpp"
#include "persistence/state_store.hpp"

namespace stowage::persistence {

struct StoreOptions {
  std::chrono::milliseconds commit_interval{5};
  bool synchronous_full = true;
  // Where the writer thread's death is reported (null: the process's registry). After it, waiters
  // are released and flush_blocking returns: nothing commits any more.
  common::Liveness* liveness = nullptr;
};

class SqliteStateStore final : public StateStore {
 public:
  static constexpr int kSchemaVersion = 3;
  static constexpr int kPageCacheKiB = 512;

  // Opens (creating if needed) <state_dir>/state.db for the controller. Blocking: call before the
  // reactor runs. Error: a message naming the file and what to do.
  static Result<std::unique_ptr<SqliteStateStore>, std::string> open(const std::filesystem::path& state_dir,
                                                                     boost::asio::any_io_executor reactor,
                                                                     StoreOptions options);
  ~SqliteStateStore() override;

  std::vector<QueueRow> load_queue() override;
  std::vector<InitFact> load_facts() override;
  std::vector<ObjectRecord> load_objects() override;
  std::vector<KubeObjectRecord> load_kube_objects() override;
  std::vector<KubeCheckpoint> load_kube_checkpoints() override;
  void scan_kube_objects(const std::function<void(KubeObjectRecord&)>& each) override;

  void put(const QueueRow& row) override;
  void erase_queue(const QueueKey& key) override;
  void put(const InitFact& fact) override;
  void erase_fact(const std::string& ns, const std::string& name) override;
  void put(const ObjectRecord& record) override;
  void erase_object(const std::string& ns, const std::string& name) override;
  void put(const KubeObjectRecord& record) override;
  void erase_kube_object(const std::string& resource, const std::string& ns, const std::string& name) override;
  void put(const KubeCheckpoint& checkpoint) override;
  void clear_kube(const std::string& resource) override;

  void when_durable(std::function<void()> done) override;
  // Blocks until every write so far has committed (tests, and the destructor unless abandoned).
  void flush_blocking();
  bool flush_within(std::chrono::milliseconds limit) override;
  // The writer stops retrying, an error log names the file and the last error, and the destructor
  // no longer waits.
  void abandon() override;
  // In `current`, waiting for the writer, or in the commit it is retrying.
  std::uint64_t uncommitted_bytes() const override;

  StoreStats stats() const override;
  const std::filesystem::path& path() const override;

 private:
  struct Impl;
  explicit SqliteStateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Read-only access for `stowage get` while a controller may be running (WAL allows it).
Result<std::vector<ObjectRecord>, std::string> read_objects(const std::filesystem::path& state_dir);

}  // namespace stowage::persistence
