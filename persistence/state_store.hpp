#pragma once
// StateStore — the one SQLite database in the state directory (state.db, mode 0600, WAL).
//
// Guarantees:
//  - Opening runs forward schema migrations and PRAGMA integrity_check; a corrupt or foreign file is
//    moved aside (state.db.corrupt-<time>) with a log line and a fresh store is created.
//  - Writes are grouped: put/erase calls made on the reactor are collected and committed together
//    in one transaction every `commit_interval` (or on the next reactor turn when it is 0) by a
//    dedicated writer thread, so SQLite never stalls the reactor. Several writes to one row in a
//    batch collapse into the last. Batches commit in order; a failed commit is retried, never dropped.
//  - Shutdown is bounded: flush_within() waits at most a given time and abandon() gives up what is
//    left (see there), so a failing disk never holds the process past its stop deadline.
//  - uncommitted_bytes() tells how far the writer is behind (the engine's backpressure).
//  - A write is durable once its batch has committed (synchronous=FULL by default: also across a
//    power cut; NORMAL: across a process crash). `when_durable` tells when that has happened.
//  - A writer thread that dies (an exception) is reported to StoreOptions::liveness, never ends in
//    std::terminate; waiters are released then, since nothing will commit any more.
// Assumes: the put/erase/when_durable calls all come from the one reactor thread.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/liveness.hpp"
#include "common/result.hpp"
#include "persistence/records.hpp"

namespace stowage::persistence {

struct StoreOptions {
  std::chrono::milliseconds commit_interval{5};
  bool synchronous_full = true;
  // Where the writer thread's death is reported (null: the process's registry). After it, waiters
  // are released and flush_blocking returns: nothing commits any more.
  common::Liveness* liveness = nullptr;
};

struct StoreStats {
  std::uint64_t transactions = 0;
  std::uint64_t rows_written = 0;
  std::chrono::microseconds longest_commit{0};
};

class StateStore {
 public:
  static constexpr int kSchemaVersion = 3;

  // Opens (creating if needed) <state_dir>/state.db for the controller. Blocking: call before the
  // reactor runs. Error: a message naming the file and what to do.
  static Result<std::unique_ptr<StateStore>, std::string> open(const std::filesystem::path& state_dir,
                                                               boost::asio::any_io_executor reactor,
                                                               StoreOptions options);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Start-up reads (blocking; before the reactor runs).
  std::vector<QueueRow> load_queue();
  std::vector<InitFact> load_facts();
  std::vector<ObjectRecord> load_objects();
  std::vector<KubeObjectRecord> load_kube_objects();
  std::vector<KubeCheckpoint> load_kube_checkpoints();

  // Grouped writes (reactor thread only).
  void put(const QueueRow& row);
  void erase_queue(const QueueKey& key);
  void put(const InitFact& fact);
  void erase_fact(const std::string& ns, const std::string& name);
  void put(const ObjectRecord& record);
  void erase_object(const std::string& ns, const std::string& name);
  void put(const KubeObjectRecord& record);
  void erase_kube_object(const std::string& resource, const std::string& ns, const std::string& name);
  void put(const KubeCheckpoint& checkpoint);
  // Forgets every row and the checkpoint of `resource` (a cache from another scope).
  void clear_kube(const std::string& resource);

  // Calls `done` on the reactor once everything written so far has committed.
  void when_durable(std::function<void()> done);
  // Blocks until every write so far has committed (shutdown path, after the reactor stopped).
  void flush_blocking();
  // The same, for at most `limit`: true when everything committed. Any thread but the writer's.
  bool flush_within(std::chrono::milliseconds limit);
  // Gives up the writes not committed yet (the stop deadline passed while commits fail, e.g. disk
  // full): the writer stops retrying, an error log names the file and the last error, and the
  // destructor no longer waits. What SQLite holds stays consistent (each batch is one transaction),
  // and the queue rows it holds say what to replay at the next start. After the reactor stopped.
  void abandon();
  // Bytes written (put/erase, counted per call) and not committed yet: in `current`, waiting for
  // the writer, or in the commit it is retrying. Any thread.
  std::uint64_t uncommitted_bytes() const;

  StoreStats stats() const;
  const std::filesystem::path& path() const;

 private:
  struct Impl;
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Read-only access for `stowage get` while a controller may be running (WAL allows it).
Result<std::vector<ObjectRecord>, std::string> read_objects(const std::filesystem::path& state_dir);

}  // namespace stowage::persistence
