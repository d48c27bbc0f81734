#pragma once
// FakeStore — an in-memory persistence::StateStore for unit tests: the tables as maps, and the
// commits under the test's control.
//
// What it keeps as SqliteStateStore does:
// - Writes (put/erase/clear_kube) are not visible to the load_* calls until they commit; they commit
//   in order, all at once. uncommitted_bytes() counts what was written and not committed yet.
// - when_durable(done) posts `done` to the reactor once everything written before it has committed
//   (at once, posted, when nothing is waiting).
// - abandon() gives up what is not committed (a restart then loads only what had committed).
// By default every write commits at once (a healthy disk). For tests:
// - stall_commits() makes writes stay uncommitted (a full or failing disk, a writer far behind), so
//   uncommitted_bytes() grows and when_durable waits; commit() commits what is waiting then (one
//   successful retry); resume_commits() commits it and makes every later write commit at once.
// - flush_within() does not wait: it commits unless stalled, and records the limit it was given.
// - abandoned(), flush_limits(), stats() say what the code under test did.
//
// Assumes: one thread (the reactor's, and the test's once the reactor stopped).
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "persistence/state_store.hpp"

namespace test_support {

class FakeStore final : public stowage::persistence::StateStore {
 public:
  explicit FakeStore(boost::asio::any_io_executor reactor, std::filesystem::path path = "/fake/state.db");

  std::vector<stowage::persistence::QueueRow> load_queue() override;
  std::vector<stowage::persistence::InitFact> load_facts() override;
  std::vector<stowage::persistence::ObjectRecord> load_objects() override;
  std::vector<stowage::persistence::KubeObjectRecord> load_kube_objects() override;
  std::vector<stowage::persistence::KubeCheckpoint> load_kube_checkpoints() override;

  void put(const stowage::persistence::QueueRow& row) override;
  void erase_queue(const stowage::persistence::QueueKey& key) override;
  void put(const stowage::persistence::InitFact& fact) override;
  void erase_fact(const std::string& ns, const std::string& name) override;
  void put(const stowage::persistence::ObjectRecord& record) override;
  void erase_object(const std::string& ns, const std::string& name) override;
  void put(const stowage::persistence::KubeObjectRecord& record) override;
  void erase_kube_object(const std::string& resource, const std::string& ns, const std::string& name) override;
  void put(const stowage::persistence::KubeCheckpoint& checkpoint) override;
  void clear_kube(const std::string& resource) override;

  void when_durable(std::function<void()> done) override;
  bool flush_within(std::chrono::milliseconds limit) override;
  void abandon() override;
  std::uint64_t uncommitted_bytes() const override { return uncommitted_bytes_; }
  stowage::persistence::StoreStats stats() const override { return stats_; }
  const std::filesystem::path& path() const override { return path_; }

  // Failure injection (see above).
  void stall_commits() { stalled_ = true; }
  void commit();
  void resume_commits();

  bool abandoned() const { return abandoned_; }
  const std::vector<std::chrono::milliseconds>& flush_limits() const { return flush_limits_; }

 private:
  using NsName = std::pair<std::string, std::string>;
  using KubeKey = std::tuple<std::string, std::string, std::string>;  // resource, namespace, name
  struct Tables {
    std::map<stowage::persistence::QueueKey, stowage::persistence::QueueRow> queue;
    std::map<NsName, stowage::persistence::InitFact> facts;
    std::map<NsName, stowage::persistence::ObjectRecord> objects;
    std::map<KubeKey, stowage::persistence::KubeObjectRecord> kube_objects;
    std::map<std::string, stowage::persistence::KubeCheckpoint> kube_checkpoints;
  };
  void write(std::uint64_t bytes, std::function<void(Tables&)> change);

  boost::asio::any_io_executor reactor_;
  std::filesystem::path path_;
  Tables committed_;
  std::vector<std::function<void(Tables&)>> waiting_;  // written, not committed, in order
  std::vector<std::function<void()>> durable_waiters_;
  std::uint64_t uncommitted_bytes_ = 0;
  bool stalled_ = false;
  bool abandoned_ = false;
  std::vector<std::chrono::milliseconds> flush_limits_;
  stowage::persistence::StoreStats stats_;
};

}  // namespace test_support
