#include "engine/kube_world.hpp"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/volume_jobs.hpp"
#include "kube/json_path.hpp"
#include "kube/api.hpp"
#include "kube/event_recorder.hpp"
#include "kube/informer.hpp"
#include "kube/repository.hpp"
#include "persistence/work_queue.hpp"

namespace stowage::engine {

namespace json = boost::json;

namespace {

constexpr const char* kKind = "BackupStorage";
constexpr const char* kStorages = KubeCacheMirror::kStorages;
constexpr const char* kSecrets = KubeCacheMirror::kSecrets;
constexpr const char* kGroupVersion = "/apis/storage.kubestash.com/v1alpha1";

std::string storages_path(const std::string& ns) {
  return ns.empty() ? std::string(kGroupVersion) + "/backupstorages"
                    : std::string(kGroupVersion) + "/namespaces/" + ns + "/backupstorages";
}
std::string storage_path(const ObjectKey& key) {
  return std::string(kGroupVersion) + "/namespaces/" + key.namespace_ + "/backupstorages/" + key.name;
}
std::string secrets_path(const std::string& ns) {
  return ns.empty() ? "/api/v1/secrets" : "/api/v1/namespaces/" + ns + "/secrets";
}
std::string repositories_path(const std::string& ns) {
  return ns.empty() ? std::string(kGroupVersion) + "/repositories"
                    : std::string(kGroupVersion) + "/namespaces/" + ns + "/repositories";
}
std::string secret_path(const ObjectKey& key) { return "/api/v1/namespaces/" + key.namespace_ + "/secrets/" + key.name; }


bool has_finalizer(const kube::BackupStorage& s) {
  const auto& f = s.metadata.finalizers;
  return std::find(f.begin(), f.end(), kCleanupFinalizer) != f.end();
}

using kube::metadata_text;

// 409 Conflict and 422 from a failed `test`: the object moved on since the cache saw it.
bool moved_on(const kube::ApiError& e) { return e.http_status == 409 || e.http_status == 422; }

kube::InformerOptions informer_options(std::string name, std::string path, std::uint64_t seed,
                                       std::chrono::milliseconds watch_idle_timeout) {
  kube::InformerOptions o;
  o.name = std::move(name);
  o.path = std::move(path);
  o.reflector.seed = seed;
  o.reflector.watch_idle_timeout = watch_idle_timeout;
  return o;
}

}  // namespace

KubeWorld::KubeWorld(boost::asio::any_io_executor executor, kube::Api& api, persistence::WorkQueue& queue,
                     persistence::StateStore* store, KubeWorldOptions options)
    : executor_(executor),
      api_(api),
      queue_(queue),
      options_(std::move(options)),
      mirror_(store, options_.scope),
      dependents_(api_, repositories_),
      locations_(LocationSettings{options_.local_root, options_.volume_jobs.has_value()}) {
  kube::InformerHandlers storage_handlers;
  storage_handlers.upserted = [this](json::value o) { storage_upserted(std::move(o)); };
  storage_handlers.removed = [this](const std::string& ns, const std::string& name, json::value) {
    storage_removed(ns, name);
  };
  storage_handlers.synced = [this] { check_synced(); };
  storage_handlers.checkpoint = [this](const std::string& rv) { mirror_.checkpoint(kStorages, rv); };

  kube::InformerHandlers secret_handlers;
  secret_handlers.upserted = [this](json::value o) {
    std::string ns = metadata_text(o, "namespace"), name = metadata_text(o, "name");
    std::string rv = metadata_text(o, "resourceVersion");
    ObjectKey key{ns, name};
    auto cached = secret_data_.find(key);
    if (cached != secret_data_.end() && cached->second.resource_version != rv) secret_data_.erase(cached);
    mirror_.secret_upserted(ns, name, rv);
    secret_changed(ns, name, "changed");
  };
  secret_handlers.removed = [this](const std::string& ns, const std::string& name, json::value) {
    secret_data_.erase({ns, name});
    mirror_.removed(kSecrets, ns, name);
    secret_changed(ns, name, "deleted");
  };
  secret_handlers.synced = [this] { check_synced(); };
  secret_handlers.checkpoint = [this](const std::string& rv) { mirror_.checkpoint(kSecrets, rv); };

  auto storage_options = informer_options("backupstorages", storages_path(options_.namespace_), options_.seed,
                                          options_.watch_idle_timeout);
  auto secret_options = informer_options("secrets (metadata only)", secrets_path(options_.namespace_),
                                         options_.seed + 1, options_.watch_idle_timeout);
  secret_options.list_accept = kube::kAcceptPartialMetadataList;
  secret_options.watch_accept = kube::kAcceptPartialMetadata;

  auto restored = mirror_.load();
  storage_options.reflector.resume_resource_version = restored.storages.resource_version;
  secret_options.reflector.resume_resource_version = restored.secrets.resource_version;
  // Room for every storage turning Ready at once (10,000 in the benchmark) without dropping Events.
  kube::EventRecorderOptions event_options;
  event_options.queue_capacity = 32768;
  events_ = std::make_unique<kube::EventRecorder>(executor_, api_, std::move(event_options));
  kube::InformerHandlers repo_handlers;
  repo_handlers.upserted = [this](json::value o) {
    std::string ns = metadata_text(o, "namespace"), name = metadata_text(o, "name");
    auto repo = kube::parse_repository(o);
    std::vector<ObjectKey> touched;
    if (repo.ok()) {
      touched = repositories_.upsert(repo.value());
    } else {
      spdlog::warn("repository {}/{} cannot be read ({}); left out of its storage's status", ns, name,
                   repo.error().to_string());
      touched = repositories_.remove({ns, name});
    }
    for (const auto& k : touched) enqueue(k, "repository " + ns + "/" + name + " changed");
  };
  repo_handlers.removed = [this](const std::string& ns, const std::string& name, json::value) {
    for (const auto& k : repositories_.remove({ns, name})) enqueue(k, "repository " + ns + "/" + name + " deleted");
  };
  repo_handlers.synced = [this] { check_synced(); };
  if (options_.volume_jobs) {
    VolumeJobsOptions job_options{*options_.volume_jobs, options_.failed_cleanup_retry};
    volume_jobs_ = std::make_unique<VolumeJobs>(
        api_, std::move(job_options), [this](const ObjectKey& storage, const std::string& why) { enqueue(storage, why); });
    kube::InformerHandlers job_handlers;
    job_handlers.upserted = [this](json::value o) { volume_jobs_->job_upserted(std::move(o)); };
    job_handlers.removed = [this](const std::string& ns, const std::string& name, json::value last) {
      volume_jobs_->job_removed(ns, name, last);
    };
    job_handlers.synced = [this] { check_synced(); };
    auto job_informer = informer_options("volume jobs", options_.namespace_.empty()
                                                           ? std::string("/apis/batch/v1/jobs")
                                                           : "/apis/batch/v1/namespaces/" + options_.namespace_ + "/jobs",
                                        options_.seed + 3, options_.watch_idle_timeout);
    job_informer.label_selector = std::string(kVolumeJobSelector);
    job_informer_ = std::make_unique<kube::Informer>(executor_, api_, std::move(job_informer), std::move(job_handlers));
  }
  repository_informer_ = std::make_unique<kube::Informer>(
      executor_, api_,
      informer_options("repositories", repositories_path(options_.namespace_), options_.seed + 2,
                       options_.watch_idle_timeout),
      std::move(repo_handlers));
  storages_resumed_ = !storage_options.reflector.resume_resource_version.empty();
  secrets_resumed_ = !secret_options.reflector.resume_resource_version.empty();
  storages_ = std::make_unique<kube::Informer>(executor_, api_, std::move(storage_options), std::move(storage_handlers));
  secrets_ = std::make_unique<kube::Informer>(executor_, api_, std::move(secret_options), std::move(secret_handlers));

  // The restored objects enter the caches as the informers' own would, neither persisted again nor queued.
  for (auto& secret : restored.secrets.objects) {
    secrets_->seed(secret.namespace_, secret.name, secret.resource_version);
    ++stats_.restored_secrets;
  }
  for (auto& storage : restored.storages.objects) {
    storages_->seed(storage.namespace_, storage.name, storage.resource_version);
    restoring_ = true;
    storage_upserted(std::move(storage.object));
    restoring_ = false;
    ++stats_.restored_storages;
  }
  if (storages_resumed_ || secrets_resumed_)
    spdlog::info("restored {} BackupStorages and {} Secret versions from the state store; resuming the watches",
                 stats_.restored_storages, stats_.restored_secrets);
}

KubeWorld::~KubeWorld() = default;

void KubeWorld::start(std::function<void()> on_synced) {
  on_synced_ = std::move(on_synced);
  storages_->start();
  secrets_->start();
  repository_informer_->start();
  if (job_informer_) job_informer_->start();
  // Restored caches are complete as of their resourceVersions: reconciling may start at once.
  if (storages_resumed_ || secrets_resumed_) boost::asio::post(executor_, [this] { check_synced(); });
}

void KubeWorld::stop() {
  storages_->stop();
  secrets_->stop();
  repository_informer_->stop();
  if (job_informer_) job_informer_->stop();
  events_->stop();
}

void KubeWorld::event(const kube::BackupStorage& object, bool warning, const std::string& reason,
                      const std::string& action, const std::string& note) {
  // No resourceVersion in the reference: repeats aggregate across the object's own status writes.
  kube::ObjectReference regarding{kube::kBackupStorageApiVersion, "BackupStorage", object.metadata.namespace_,
                                  object.metadata.name, object.metadata.uid, ""};
  events_->record(std::move(regarding), warning ? kube::EventType::Warning : kube::EventType::Normal, reason, action,
                  note);
}

bool KubeWorld::synced() const {
  return (storages_resumed_ || storages_->synced()) && (secrets_resumed_ || secrets_->synced()) &&
         repository_informer_->synced() && (!job_informer_ || job_informer_->synced());
}

std::string KubeWorld::problem() const {
  std::string out;
  for (const auto* i : {storages_.get(), secrets_.get(), repository_informer_.get()}) {
    if (i->synced() || i->last_error().empty()) continue;
    if (!out.empty()) out += "; ";
    out += i->last_error();
  }
  return out;
}

void KubeWorld::check_synced() {
  if (synced_reported_ || !synced()) return;
  synced_reported_ = true;
  if (on_synced_) on_synced_();
}

void KubeWorld::enqueue(const ObjectKey& key, const std::string& reason) {
  queue_.add({kKind, key.namespace_, key.name}, reason);
}

void KubeWorld::storage_upserted(json::value object) {
  if (!restoring_) mirror_.storage_upserted(object);
  auto parsed = kube::parse_backup_storage(object);
  if (!parsed.ok()) {
    auto meta = kube::parse_object_meta(object.is_object() && object.as_object().contains("metadata")
                                            ? object.as_object().at("metadata")
                                            : json::value());
    if (!meta.ok() || meta.value().name.empty()) {
      spdlog::error("backupstorages: an object without a readable name was skipped: {}", parsed.error().to_string());
      return;
    }
    Invalid bad;
    bad.partial.metadata = std::move(meta.value());
    bad.partial.raw = object;
    if (const auto* status = object.as_object().if_contains("status")) {
      if (auto st = kube::parse_status(*status); st.ok()) bad.partial.status = std::move(st.value());
    }
    bad.problem = parsed.error().to_string();
    ObjectKey key = key_of(bad.partial);
    spdlog::warn("{}: cannot be read: {}", key.str(), bad.problem);
    cache_.erase_storage(key);
    invalid_[key] = std::move(bad);
    if (!restoring_) enqueue(key, "invalid object");
    return;
  }
  kube::BackupStorage s = std::move(parsed.value());
  ObjectKey key = key_of(s);
  bool was_invalid = invalid_.erase(key) > 0;
  const kube::BackupStorage* old = cache_.storage(key);
  bool changed = !old || was_invalid || old->metadata.uid != s.metadata.uid ||
                 old->metadata.generation != s.metadata.generation ||
                 old->metadata.deletion_timestamp != s.metadata.deletion_timestamp ||
                 (has_finalizer(*old) && !has_finalizer(s));
  std::string reason = !old ? "added" : "changed";
  auto overlapping = locations_.put(s);
  cache_.upsert(std::move(s));
  if (changed && !restoring_) enqueue(key, reason);
  if (!restoring_)
    for (const auto& other : overlapping) enqueue(other, "the location of " + key.str() + " changed");
}

void KubeWorld::storage_removed(const std::string& ns, const std::string& name) {
  ObjectKey key{ns, name};
  cache_.erase_storage(key);
  invalid_.erase(key);
  mirror_.removed(kStorages, ns, name);
  enqueue(key, "deleted");
  for (const auto& other : locations_.erase(key)) enqueue(other, "the location of " + key.str() + " changed");
}

void KubeWorld::secret_changed(const std::string& ns, const std::string& name, const std::string& why) {
  ObjectKey secret{ns, name};
  for (const auto& s : cache_.storages_using_secret(secret)) enqueue(s, "secret " + secret.str() + " " + why);
}

boost::asio::awaitable<TargetResult<Dependents>> KubeWorld::delete_dependents(const kube::BackupStorage& object) {
  co_return co_await dependents_.delete_for(key_of(object));
}

boost::asio::awaitable<TargetResult<JobOutcome>> KubeWorld::volume_job(const kube::BackupStorage& object,
                                                                      VolumeJobKind kind, std::vector<std::string> keep) {
  if (!volume_jobs_) co_return Err(TargetError{"volume Jobs are not enabled (local.volume-mode is not job)", false});
  co_return co_await volume_jobs_->run(object, kind, std::move(keep));
}

std::optional<Lookup> KubeWorld::get(const ObjectKey& key) {
  if (auto bad = invalid_.find(key); bad != invalid_.end()) {
    const auto& s = bad->second.partial;
    bool deleting = !s.metadata.deletion_timestamp.empty();
    if (deleting && !has_finalizer(s)) return std::nullopt;
    return Lookup{s, deleting, deleting ? "" : bad->second.problem};
  }
  const kube::BackupStorage* s = cache_.storage(key);
  if (!s) return std::nullopt;
  if (!s->metadata.deletion_timestamp.empty()) {
    if (!has_finalizer(*s)) return std::nullopt;  // not ours to clean up (as KubeStash: no finalizer, no cleanup)
    return Lookup{*s, true, ""};
  }
  return Lookup{*s, false, ""};
}

boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> KubeWorld::secret(ObjectKey key) {
  const std::string* known_rv = secrets_->find(key.namespace_, key.name);
  if (auto cached = secret_data_.find(key); cached != secret_data_.end()) {
    if (known_rv && *known_rv == cached->second.resource_version)
      co_return std::optional<kube::Secret>(cached->second.secret);
  }
  if (!known_rv && secrets_->synced()) co_return std::optional<kube::Secret>();  // not in the cluster

  ++stats_.secret_gets;
  std::string path = secret_path(key);
  auto got = co_await api_.get(std::move(path));
  if (!got.ok()) {
    if (got.error().http_status == 404) {
      secret_data_.erase(key);
      co_return std::optional<kube::Secret>();
    }
    co_return Err(TargetError{"reading secret " + key.str() + ": " + got.error().message, got.error().transient()});
  }
  auto parsed = kube::parse_secret(got.value());
  if (!parsed.ok())
    co_return Err(TargetError{"secret " + key.str() + " cannot be read: " + parsed.error().to_string(), false});
  kube::Secret secret = std::move(parsed.value());
  secret_data_[key] = CachedSecret{secret.metadata.resource_version, secret};
  co_return std::optional<kube::Secret>(std::move(secret));
}

boost::asio::awaitable<TargetResult<Ok>> KubeWorld::ensure_finalizer(const kube::BackupStorage& object) {
  if (has_finalizer(object)) co_return Ok{};
  ObjectKey key = key_of(object);
  json::array ops;
  if (object.metadata.finalizers.empty()) {
    // `test null` passes on a missing member: race-free against another writer adding the first one.
    ops.push_back(json::object{{"op", "test"}, {"path", "/metadata/finalizers"}, {"value", nullptr}});
    ops.push_back(json::object{{"op", "add"}, {"path", "/metadata/finalizers"}, {"value", json::array{kCleanupFinalizer}}});
  } else {
    json::array current;
    for (const auto& f : object.metadata.finalizers) current.push_back(json::string(f));
    ops.push_back(json::object{{"op", "test"}, {"path", "/metadata/finalizers"}, {"value", std::move(current)}});
    ops.push_back(json::object{{"op", "add"}, {"path", "/metadata/finalizers/-"}, {"value", kCleanupFinalizer}});
  }
  ++stats_.finalizer_writes;
  json::value body(std::move(ops));
  std::string path = storage_path(key);
  auto patched = co_await api_.patch(std::move(path), kube::kJsonPatch, std::move(body));
  if (!patched.ok()) {
    const auto& e = patched.error();
    if (moved_on(e))
      co_return Err(TargetError{key.str() + ": the finalizers changed while " + kCleanupFinalizer +
                                    " was being added; retrying with the newer object",
                                true});
    co_return Err(TargetError{"adding the finalizer " + std::string(kCleanupFinalizer) + ": " + e.message,
                              e.transient() || e.http_status == 404});
  }
  // Keep the cache's finalizers in step at once, so a quick re-run does not add it twice.
  if (auto fresh = kube::parse_backup_storage(patched.value()); fresh.ok()) {
    if (const auto* cached = cache_.storage(key); cached && cached->metadata.uid == fresh.value().metadata.uid) {
      auto copy = *cached;
      copy.metadata.finalizers = fresh.value().metadata.finalizers;
      cache_.upsert(std::move(copy));
    }
  }
  spdlog::debug("{}: finalizer {} added", key.str(), kCleanupFinalizer);
  co_return Ok{};
}

boost::asio::awaitable<TargetResult<Ok>> KubeWorld::write_status(const kube::BackupStorage& object,
                                                                 kube::BackupStorageStatus status) {
  ObjectKey key = key_of(object);
  json::value next = kube::status_to_json(status);
  json::object patch = next.is_object() ? next.as_object() : json::object();
  // A merge patch keeps what it does not mention: null the fields that are gone from the status.
  if (const auto* raw = object.raw.if_object()) {
    if (const auto* old = raw->if_contains("status"); old && old->is_object()) {
      for (const auto& [field, _] : old->as_object())
        if (!patch.contains(field)) patch[field] = nullptr;
    }
  }
  ++stats_.status_writes;
  json::value body = json::object{{"status", std::move(patch)}};
  std::string path = storage_path(key) + "/status";
  auto patched = co_await api_.patch(std::move(path), kube::kMergePatch, std::move(body));
  if (!patched.ok()) {
    if (patched.error().http_status == 404) co_return Ok{};  // gone meanwhile: nothing to report on
    co_return Err(TargetError{"writing the status: " + patched.error().message, patched.error().transient()});
  }
  remember_status(key, patched.value());
  co_return Ok{};
}

// Keeps the cache's status in step with a status write at once, as ensure_finalizer does for the
// finalizers: a re-run before the watch event comes back then finds its status written (no second
// PATCH, no second Event), and the next write nulls what this one wrote (it reads `raw`). Only for
// the object the cache holds: by now the name may hold another storage (another uid).
void KubeWorld::remember_status(const ObjectKey& key, const json::value& answer) {
  const kube::BackupStorage* cached = cache_.storage(key);
  if (!cached || cached->metadata.uid != metadata_text(answer, "uid")) return;
  const json::value* status = kube::value_at(answer, {"status"});
  json::value written = status && !status->is_null() ? *status : json::value(json::object());
  auto parsed = kube::parse_status(written);
  if (!parsed.ok()) return;  // the watch event brings whatever the server holds
  kube::BackupStorage copy = *cached;
  copy.status = std::move(parsed.value());
  if (auto* raw = copy.raw.if_object()) (*raw)["status"] = std::move(written);
  cache_.upsert(std::move(copy));
}

boost::asio::awaitable<TargetResult<Ok>> KubeWorld::deletion_done(const kube::BackupStorage& object) {
  ObjectKey key = key_of(object);
  const auto& f = object.metadata.finalizers;
  auto it = std::find(f.begin(), f.end(), kCleanupFinalizer);
  if (it == f.end()) co_return Ok{};
  std::string at = "/metadata/finalizers/" + std::to_string(it - f.begin());
  json::array ops;
  ops.push_back(json::object{{"op", "test"}, {"path", at}, {"value", kCleanupFinalizer}});
  ops.push_back(json::object{{"op", "remove"}, {"path", at}});
  ++stats_.finalizer_writes;
  json::value body(std::move(ops));
  std::string path = storage_path(key);
  auto patched = co_await api_.patch(std::move(path), kube::kJsonPatch, std::move(body));
  if (!patched.ok()) {
    const auto& e = patched.error();
    if (e.http_status == 404) co_return Ok{};
    if (moved_on(e))
      co_return Err(TargetError{key.str() + ": the finalizers changed while " + kCleanupFinalizer +
                                    " was being removed; retrying with the newer object",
                                true});
    co_return Err(
        TargetError{"removing the finalizer " + std::string(kCleanupFinalizer) + ": " + e.message, e.transient()});
  }
  spdlog::debug("{}: finalizer {} removed", key.str(), kCleanupFinalizer);
  co_return Ok{};
}

}  // namespace stowage::engine
