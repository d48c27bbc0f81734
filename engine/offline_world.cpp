#include "engine/offline_world.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "common/crypto.hpp"
#include "common/time_format.hpp"
#include "persistence/state_store.hpp"
#include "persistence/work_queue.hpp"

namespace stowage::engine {

namespace {
constexpr const char* kKind = "BackupStorage";

std::string spec_hash(const kube::BackupStorage& s) {
  const auto* obj = s.raw.if_object();
  const auto* spec = obj ? obj->if_contains("spec") : nullptr;
  return crypto::hex(crypto::sha256(spec ? boost::json::serialize(*spec) : "")).substr(0, 16);
}

std::string without_status(const kube::BackupStorage& s) {
  boost::json::value v = kube::to_json(s);
  if (auto* obj = v.if_object()) obj->erase("status");
  return boost::json::serialize(v);
}
}  // namespace

OfflineWorld::OfflineWorld(persistence::StateStore* store, const std::vector<persistence::ObjectRecord>& records,
                           std::string source_id, persistence::WorkQueue& queue, bool deletions,
                           LocationSettings locations)
    : store_(store),
      source_id_(std::move(source_id)),
      queue_(queue),
      deletions_(deletions),
      locations_(std::move(locations)) {
  for (const auto& r : records) {
    records_[{r.namespace_, r.name}] = r;
    boost::system::error_code ec;
    auto json = boost::json::parse(r.object_json, ec);
    if (ec) continue;
    if (auto parsed = kube::parse_backup_storage(json); parsed.ok()) (void)locations_.put(parsed.value());
  }
}

void OfflineWorld::save(const persistence::ObjectRecord& record) {
  if (store_) store_->put(record);
}

void OfflineWorld::enqueue(const ObjectKey& key, const std::string& reason) {
  queue_.add({kKind, key.namespace_, key.name}, reason);
}

void OfflineWorld::enqueue_overlapping(const std::vector<ObjectKey>& keys, const ObjectKey& changed) {
  for (const auto& k : keys) enqueue(k, "the location of " + changed.str() + " changed");
}

void OfflineWorld::storage_upserted(kube::BackupStorage storage) {
  ObjectKey key{storage.metadata.namespace_, storage.metadata.name};
  std::string hash = spec_hash(storage);
  auto [it, is_new] = records_.try_emplace(key);
  auto& rec = it->second;
  bool changed = is_new || rec.spec_hash != hash || rec.deleting || rec.source != source_id_;
  if (is_new) {
    rec.namespace_ = key.namespace_;
    rec.name = key.name;
    rec.uid = storage.metadata.uid.empty() ? crypto::uuid_v4() : storage.metadata.uid;
    rec.generation = 1;
    rec.creation_timestamp =
        storage.metadata.creation_timestamp.empty() ? rfc3339(WallClock::now()) : storage.metadata.creation_timestamp;
  } else if (rec.spec_hash != hash) {
    ++rec.generation;  // as the API server does: only a spec change moves the generation
  }
  storage.metadata.uid = rec.uid;
  storage.metadata.generation = rec.generation;
  storage.metadata.creation_timestamp = rec.creation_timestamp;
  if (!rec.status_json.empty()) {
    auto status = kube::parse_status(boost::json::parse(rec.status_json));
    if (status.ok()) storage.status = std::move(status.value());
  }
  if (changed) {
    rec.spec_hash = hash;
    rec.source = source_id_;
    rec.deleting = false;
    rec.object_json = without_status(storage);
    save(rec);
  }
  // The object as given was needed for the spec hash and the record only; the cache, the reconciler
  // and the status writes use the typed fields, so it is not kept (a second copy of every storage).
  storage.raw = nullptr;
  enqueue_overlapping(locations_.put(storage), key);
  cache_.upsert(std::move(storage));
  enqueue(key, is_new ? "added" : "changed");
}

void OfflineWorld::storage_removed(const ObjectKey& key) {
  cache_.erase_storage(key);
  if (deletions_ && records_.count(key)) enqueue(key, "removed from manifests");
}

void OfflineWorld::secret_upserted(kube::Secret secret) {
  ObjectKey key{secret.metadata.namespace_, secret.metadata.name};
  cache_.upsert(std::move(secret));
  for (const auto& s : cache_.storages_using_secret(key)) enqueue(s, "secret " + key.str() + " changed");
}

void OfflineWorld::secret_removed(const ObjectKey& key) {
  cache_.erase_secret(key);
  for (const auto& s : cache_.storages_using_secret(key)) enqueue(s, "secret " + key.str() + " removed");
}

// The first listing is in. A recorded storage of this folder that it lacks is not deleted here:
// the source reports it removed once it has stayed absent for the delete grace (a file truncated
// while stowage was stopped must not wipe anything). Until then it stays in the cache as recorded,
// so that a reconcile replayed from the queue (or a re-validation) finds it alive, not gone. A
// deletion that had already begun before the restart is finished.
void OfflineWorld::synced() {
  if (!deletions_) return;
  for (const auto& [key, rec] : records_) {
    if (cache_.storage(key)) continue;
    if (rec.source != source_id_) {
      spdlog::debug("{}: recorded from another manifest folder ({}); left alone", key.str(), rec.source);
      continue;
    }
    if (rec.deleting) {
      enqueue(key, "removed from manifests");
      continue;
    }
    auto recorded = kube::parse_backup_storage(boost::json::parse(rec.object_json), kube::Unknown::Drop);
    if (!recorded.ok()) continue;  // get() reports it if it is ever reconciled
    kube::BackupStorage storage = std::move(recorded.value());
    if (!rec.status_json.empty()) {
      auto status = kube::parse_status(boost::json::parse(rec.status_json));
      if (status.ok()) storage.status = std::move(status.value());
    }
    cache_.upsert(std::move(storage));
  }
}

std::optional<Lookup> OfflineWorld::get(const ObjectKey& key) {
  if (const auto* s = cache_.storage(key)) return Lookup{*s, false, ""};
  auto it = records_.find(key);
  if (it == records_.end() || !deletions_ || it->second.source != source_id_) return std::nullopt;
  auto parsed = kube::parse_backup_storage(boost::json::parse(it->second.object_json));
  if (!parsed.ok()) {
    spdlog::error("{}: the recorded object cannot be read back ({}); forgetting it without cleanup", key.str(),
                  parsed.error().to_string());
    forget(key);
    return std::nullopt;
  }
  if (!it->second.deleting) {
    it->second.deleting = true;
    save(it->second);
  }
  // Its last status too: a deletion that waits (a failed WipeOut) reports there.
  if (!it->second.status_json.empty()) {
    boost::system::error_code ec;
    auto json = boost::json::parse(it->second.status_json, ec);
    auto status = kube::parse_status(json);
    if (!ec && status.ok()) parsed.value().status = std::move(status.value());
  }
  return Lookup{std::move(parsed.value()), true, ""};
}

boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> OfflineWorld::secret(ObjectKey key) {
  const kube::Secret* s = cache_.secret(key);
  if (!s) co_return std::optional<kube::Secret>();
  co_return std::optional<kube::Secret>(*s);
}

// The offline mode has no API server to protect the object with a finalizer: its own records are it.
boost::asio::awaitable<TargetResult<Ok>> OfflineWorld::ensure_finalizer(const kube::BackupStorage&) { co_return Ok{}; }

boost::asio::awaitable<TargetResult<Ok>> OfflineWorld::write_status(const kube::BackupStorage& object,
                                                                    kube::BackupStorageStatus status) {
  ObjectKey key{object.metadata.namespace_, object.metadata.name};
  auto it = records_.find(key);
  if (it == records_.end()) co_return Ok{};
  it->second.status_json = boost::json::serialize(kube::status_to_json(status));
  save(it->second);
  if (const auto* s = cache_.storage(key)) {
    auto copy = *s;
    copy.status = std::move(status);
    enqueue_overlapping(locations_.put(copy), key);  // initialized now: it wins a tie in age
    cache_.upsert(std::move(copy));
  }
  co_return Ok{};
}

boost::asio::awaitable<TargetResult<Ok>> OfflineWorld::deletion_done(const kube::BackupStorage& object) {
  forget({object.metadata.namespace_, object.metadata.name});
  co_return Ok{};
}

void OfflineWorld::forget(const ObjectKey& key) {
  if (records_.erase(key) && store_) store_->erase_object(key.namespace_, key.name);
  if (!cache_.storage(key)) enqueue_overlapping(locations_.erase(key), key);
}

}  // namespace stowage::engine
