#include "support/fake_store.hpp"

#include <boost/asio/post.hpp>

namespace test_support {

using namespace stowage::persistence;

namespace {
// Roughly what a row holds, as SqliteStateStore counts it: its text plus a fixed cost.
constexpr std::uint64_t kRowOverhead = 64;
std::uint64_t text_bytes(std::initializer_list<const std::string*> texts) {
  std::uint64_t n = kRowOverhead;
  for (const auto* t : texts) n += t->size();
  return n;
}
template <class Map>
std::vector<typename Map::mapped_type> values(const Map& map) {
  std::vector<typename Map::mapped_type> out;
  for (const auto& [_, v] : map) out.push_back(v);
  return out;
}
}  // namespace

FakeStore::FakeStore(boost::asio::any_io_executor reactor, std::filesystem::path path)
    : reactor_(std::move(reactor)), path_(std::move(path)) {}

std::vector<QueueRow> FakeStore::load_queue() { return values(committed_.queue); }
std::vector<InitFact> FakeStore::load_facts() { return values(committed_.facts); }
std::vector<ObjectRecord> FakeStore::load_objects() { return values(committed_.objects); }
std::vector<KubeObjectRecord> FakeStore::load_kube_objects() { return values(committed_.kube_objects); }
std::vector<KubeCheckpoint> FakeStore::load_kube_checkpoints() { return values(committed_.kube_checkpoints); }

void FakeStore::write(std::uint64_t bytes, std::function<void(Tables&)> change) {
  waiting_.push_back(std::move(change));
  uncommitted_bytes_ += bytes;
  if (!stalled_) commit();
}

void FakeStore::put(const QueueRow& row) {
  write(text_bytes({&row.key.kind, &row.key.namespace_, &row.key.name, &row.reason, &row.last_error}),
        [row](Tables& t) { t.queue[row.key] = row; });
}
void FakeStore::erase_queue(const QueueKey& key) {
  write(kRowOverhead, [key](Tables& t) { t.queue.erase(key); });
}
void FakeStore::put(const InitFact& fact) {
  write(text_bytes({&fact.namespace_, &fact.name, &fact.uid, &fact.backend_identity, &fact.credential_fingerprint}),
        [fact](Tables& t) { t.facts[{fact.namespace_, fact.name}] = fact; });
}
void FakeStore::erase_fact(const std::string& ns, const std::string& name) {
  write(kRowOverhead, [key = NsName{ns, name}](Tables& t) { t.facts.erase(key); });
}
void FakeStore::put(const ObjectRecord& record) {
  write(text_bytes({&record.namespace_, &record.name, &record.uid, &record.object_json, &record.status_json}),
        [record](Tables& t) { t.objects[{record.namespace_, record.name}] = record; });
}
void FakeStore::erase_object(const std::string& ns, const std::string& name) {
  write(kRowOverhead, [key = NsName{ns, name}](Tables& t) { t.objects.erase(key); });
}
void FakeStore::put(const KubeObjectRecord& record) {
  write(text_bytes({&record.resource, &record.namespace_, &record.name, &record.object_json}),
        [record](Tables& t) { t.kube_objects[{record.resource, record.namespace_, record.name}] = record; });
}
void FakeStore::erase_kube_object(const std::string& resource, const std::string& ns, const std::string& name) {
  write(kRowOverhead, [key = KubeKey{resource, ns, name}](Tables& t) { t.kube_objects.erase(key); });
}
void FakeStore::put(const KubeCheckpoint& checkpoint) {
  write(text_bytes({&checkpoint.resource, &checkpoint.scope, &checkpoint.resource_version}),
        [checkpoint](Tables& t) { t.kube_checkpoints[checkpoint.resource] = checkpoint; });
}
void FakeStore::clear_kube(const std::string& resource) {
  write(kRowOverhead, [resource](Tables& t) {
    std::erase_if(t.kube_objects, [&](const auto& entry) { return std::get<0>(entry.first) == resource; });
    t.kube_checkpoints.erase(resource);
  });
}

void FakeStore::when_durable(std::function<void()> done) {
  if (waiting_.empty())
    boost::asio::post(reactor_, std::move(done));
  else
    durable_waiters_.push_back(std::move(done));
}

void FakeStore::commit() {
  if (waiting_.empty()) return;
  for (auto& change : waiting_) change(committed_);
  stats_.transactions += 1;
  stats_.rows_written += waiting_.size();
  waiting_.clear();
  uncommitted_bytes_ = 0;
  for (auto& done : durable_waiters_) boost::asio::post(reactor_, std::move(done));
  durable_waiters_.clear();
}

void FakeStore::resume_commits() {
  stalled_ = false;
  commit();
}

bool FakeStore::flush_within(std::chrono::milliseconds limit) {
  flush_limits_.push_back(limit);
  if (!stalled_) commit();
  return waiting_.empty();
}

void FakeStore::abandon() {
  if (waiting_.empty()) return;
  abandoned_ = true;
  waiting_.clear();
  durable_waiters_.clear();
  uncommitted_bytes_ = 0;
}

}  // namespace test_support
