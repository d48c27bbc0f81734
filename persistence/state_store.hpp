#pragma once
// StateStore — what the engine keeps across restarts (the work queue, initialization facts, the
// offline objects, the Kubernetes cache mirror), as its consumers see it. SqliteStateStore
// (sqlite_state_store.hpp) is the one real implementation; tests put an in-memory fake behind this
// interface (tests/support/fake_store.hpp).
//
// The contract every implementation keeps:
//  - Writes (put/erase/clear_kube) are grouped and committed later, in order; none is dropped
//    unless abandon() gives them up. A write is durable once its group has committed, and
//    `when_durable` tells when that has happened (on the reactor, never inline).
//  - uncommitted_bytes() says how far the commits are behind the writes (the engine's
//    backpressure: store.max-pending-bytes).
//  - Shutdown is bounded: flush_within() waits at most a given time, and abandon() gives up what is
//    left, so a failing disk never holds the process past its stop deadline.
// Assumes: the load_* calls come before the reactor runs; put/erase/clear_kube/when_durable come
// from the one reactor thread; flush_within/abandon after it stopped.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "persistence/records.hpp"

namespace stowage::persistence {

struct StoreStats {
  std::uint64_t transactions = 0;
  std::uint64_t rows_written = 0;
  std::chrono::microseconds longest_commit{0};
  std::uint64_t page_cache_bytes = 0;  // held by the store's page cache after the last commit
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Start-up reads (blocking; before the reactor runs).
  virtual std::vector<QueueRow> load_queue() = 0;
  virtual std::vector<InitFact> load_facts() = 0;
  virtual std::vector<ObjectRecord> load_objects() = 0;
  virtual std::vector<KubeObjectRecord> load_kube_objects() = 0;
  virtual std::vector<KubeCheckpoint> load_kube_checkpoints() = 0;
  // The rows load_kube_objects() returns, handed to `each` one at a time as they are read (the same
  // order), so that a restart never holds them all. `each` may call the grouped writes.
  virtual void scan_kube_objects(const std::function<void(KubeObjectRecord&)>& each) {
    for (auto& row : load_kube_objects()) each(row);
  }

  // Grouped writes (reactor thread only).
  virtual void put(const QueueRow& row) = 0;
  virtual void erase_queue(const QueueKey& key) = 0;
  virtual void put(const InitFact& fact) = 0;
  virtual void erase_fact(const std::string& ns, const std::string& name) = 0;
  virtual void put(const ObjectRecord& record) = 0;
  virtual void erase_object(const std::string& ns, const std::string& name) = 0;
  virtual void put(const KubeObjectRecord& record) = 0;
  virtual void erase_kube_object(const std::string& resource, const std::string& ns, const std::string& name) = 0;
  virtual void put(const KubeCheckpoint& checkpoint) = 0;
  // Forgets every row and the checkpoint of `resource` (a cache from another scope).
  virtual void clear_kube(const std::string& resource) = 0;

  // Calls `done` on the reactor once everything written so far has committed.
  virtual void when_durable(std::function<void()> done) = 0;
  // Waits at most `limit` for every write so far to commit: true when everything did. Any thread
  // but the reactor's own while it runs (shutdown path).
  virtual bool flush_within(std::chrono::milliseconds limit) = 0;
  // Gives up the writes not committed yet (the stop deadline passed while commits fail, e.g. disk
  // full), with an error log saying so; what is committed stays consistent, and the queue rows in it
  // say what to replay at the next start. After the reactor stopped.
  virtual void abandon() = 0;
  // Bytes written (put/erase, counted per call) and not committed yet. Any thread.
  virtual std::uint64_t uncommitted_bytes() const = 0;

  virtual StoreStats stats() const = 0;
  // Where the state lives (for log lines and messages).
  virtual const std::filesystem::path& path() const = 0;

 protected:
  StateStore() = default;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
};

}  // namespace stowage::persistence
