#include "engine/kube_source.hpp"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/kube_paths.hpp"
#include "engine/volume_jobs.hpp"
#include "kube/api.hpp"
#include "kube/informer.hpp"
#include "kube/json_path.hpp"
#include "kube/repository.hpp"
#include "persistence/work_queue.hpp"

namespace stowage::engine {

namespace json = boost::json;
using kube::metadata_text;

namespace {

constexpr const char* kKind = "BackupStorage";
constexpr const char* kStorages = KubeCacheMirror::kStorages;
constexpr const char* kSecrets = KubeCacheMirror::kSecrets;

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

bool has_cleanup_finalizer(const kube::BackupStorage& storage) {
  const auto& f = storage.metadata.finalizers;
  return std::find(f.begin(), f.end(), kCleanupFinalizer) != f.end();
}

KubeSource::KubeSource(boost::asio::any_io_executor executor, kube::Api& api, persistence::WorkQueue& queue,
                       persistence::StateStore* store, KubeSourceOptions options, VolumeJobs* jobs)
    : executor_(executor),
      api_(api),
      queue_(queue),
      options_(std::move(options)),
      mirror_(store, options_.server, options_.namespaces),
      locations_(options_.locations) {
  auto restored = mirror_.resume_points();
  // Each stream's informers get seeds of their own (jitter apart); their order is the list's.
  std::vector<std::string> namespaces = options_.namespaces;
  if (namespaces.empty()) namespaces.push_back("");
  streams_.reserve(namespaces.size());
  for (std::size_t i = 0; i < namespaces.size(); ++i)
    add_stream(namespaces[i], options_.seed + 4 * i, restored, jobs);
  // The stored objects, one at a time as they are read (never all of them parsed at once).
  mirror_.restore_objects(restored, [this](const char* resource, const std::string& stream_namespace,
                                           KubeCacheMirror::RestoredObject&& object) {
    restore(resource, stream_namespace, std::move(object));
  });
  if (stats_.restored_storages || stats_.restored_secrets)
    spdlog::info("restored {} BackupStorages and {} Secret versions from the state store; resuming the watches",
                 stats_.restored_storages, stats_.restored_secrets);
}

KubeSource::~KubeSource() = default;

void KubeSource::add_stream(const std::string& ns, std::uint64_t seed, KubeCacheMirror::Loaded& restored,
                            VolumeJobs* jobs) {
  Stream& stream = streams_.emplace_back();
  stream.namespace_ = ns;
  const std::string where = ns.empty() ? "" : " in " + ns;
  auto& storages_resume = restored.storages[ns];
  auto& secrets_resume = restored.secrets[ns];
  stream.storages_resumed = storages_resume.resumed();
  stream.secrets_resumed = secrets_resume.resumed();

  kube::InformerHandlers storage_handlers;
  storage_handlers.upserted = [this](json::value o) { storage_upserted(std::move(o)); };
  storage_handlers.removed = [this](const std::string& ns, const std::string& name, json::value) {
    storage_removed(ns, name);
  };
  storage_handlers.synced = [this] { check_synced(); };
  storage_handlers.checkpoint = [this, ns](const std::string& rv) { mirror_.checkpoint(kStorages, ns, rv); };
  auto storage_options = informer_options("backupstorages" + where, kubestash_collection_path("backupstorages", ns),
                                          seed, options_.watch_idle_timeout);
  storage_options.reflector.resume_resource_version = storages_resume.resource_version;
  stream.storages = std::make_unique<kube::Informer>(executor_, api_, std::move(storage_options), std::move(storage_handlers));

  kube::InformerHandlers secret_handlers;
  secret_handlers.upserted = [this](json::value o) { secret_upserted(o); };
  secret_handlers.removed = [this](const std::string& ns, const std::string& name, json::value) {
    secret_removed(ns, name);
  };
  secret_handlers.synced = [this] { check_synced(); };
  secret_handlers.checkpoint = [this, ns](const std::string& rv) { mirror_.checkpoint(kSecrets, ns, rv); };
  auto secret_options = informer_options("secrets (metadata only)" + where, collection_path("/api/v1", "secrets", ns),
                                         seed + 1, options_.watch_idle_timeout);
  secret_options.list_accept = kube::kAcceptPartialMetadataList;
  secret_options.watch_accept = kube::kAcceptPartialMetadata;
  secret_options.reflector.resume_resource_version = secrets_resume.resource_version;
  stream.secrets = std::make_unique<kube::Informer>(executor_, api_, std::move(secret_options), std::move(secret_handlers));

  kube::InformerHandlers repo_handlers;
  repo_handlers.upserted = [this](json::value o) { repository_upserted(o); };
  repo_handlers.removed = [this](const std::string& ns, const std::string& name, json::value) {
    for (const auto& k : repositories_.remove({ns, name})) enqueue(k, "repository " + ns + "/" + name + " deleted");
  };
  repo_handlers.synced = [this] { check_synced(); };
  stream.repositories = std::make_unique<kube::Informer>(
      executor_, api_,
      informer_options("repositories" + where, kubestash_collection_path("repositories", ns), seed + 2,
                       options_.watch_idle_timeout),
      std::move(repo_handlers));

  if (jobs) {
    kube::InformerHandlers job_handlers;
    job_handlers.upserted = [jobs](json::value o) { jobs->job_upserted(std::move(o)); };
    job_handlers.removed = [jobs](const std::string& ns, const std::string& name, json::value last) {
      jobs->job_removed(ns, name, last);
    };
    job_handlers.synced = [this] { check_synced(); };
    auto job_options = informer_options("volume jobs" + where, collection_path("/apis/batch/v1", "jobs", ns), seed + 3,
                                        options_.watch_idle_timeout);
    job_options.label_selector = std::string(kVolumeJobSelector);
    stream.jobs = std::make_unique<kube::Informer>(executor_, api_, std::move(job_options), std::move(job_handlers));
  }
}

// The restored objects enter the caches as the informers' own would, neither persisted again nor queued.
void KubeSource::restore(const char* resource, const std::string& stream_namespace,
                         KubeCacheMirror::RestoredObject&& object) {
  auto stream = std::find_if(streams_.begin(), streams_.end(),
                             [&](const Stream& s) { return s.namespace_ == stream_namespace; });
  if (stream == streams_.end()) return;
  if (resource != std::string_view(kStorages)) {
    stream->secrets->seed(object.namespace_, object.name, object.resource_version);
    ++stats_.restored_secrets;
    return;
  }
  stream->storages->seed(object.namespace_, object.name, object.resource_version);
  restoring_ = true;
  storage_upserted(std::move(object.object));
  restoring_ = false;
  ++stats_.restored_storages;
}

void KubeSource::start(std::function<void()> on_synced) {
  on_synced_ = std::move(on_synced);
  bool resumed = false;
  for (auto& stream : streams_) {
    stream.storages->start();
    stream.secrets->start();
    stream.repositories->start();
    if (stream.jobs) stream.jobs->start();
    resumed = resumed || stream.storages_resumed || stream.secrets_resumed;
  }
  // Restored caches are complete as of their resourceVersions: reconciling may start at once.
  if (resumed) boost::asio::post(executor_, [this] { check_synced(); });
}

void KubeSource::stop() {
  for (auto& stream : streams_) {
    stream.storages->stop();
    stream.secrets->stop();
    stream.repositories->stop();
    if (stream.jobs) stream.jobs->stop();
  }
}

bool KubeSource::Stream::synced() const {
  return (storages_resumed || storages->synced()) && (secrets_resumed || secrets->synced()) &&
         repositories->synced() && (!jobs || jobs->synced());
}

bool KubeSource::synced() const {
  return std::all_of(streams_.begin(), streams_.end(), [](const Stream& s) { return s.synced(); });
}

std::string KubeSource::problem() const {
  std::string out;
  for (const auto& stream : streams_) {
    for (const auto* i : {stream.storages.get(), stream.secrets.get(), stream.repositories.get(), stream.jobs.get()}) {
      if (!i || i->synced() || i->last_error().empty()) continue;
      if (!out.empty()) out += "; ";
      out += i->last_error();
    }
  }
  return out;
}

bool KubeSource::serves(const std::string& ns) const { return stream_of(ns) != nullptr; }

const KubeSource::Stream* KubeSource::stream_of(const std::string& ns) const {
  for (const auto& stream : streams_)
    if (stream.namespace_.empty() || stream.namespace_ == ns) return &stream;
  return nullptr;
}

void KubeSource::check_synced() {
  if (synced_reported_ || !synced()) return;
  synced_reported_ = true;
  if (on_synced_) on_synced_();
}

void KubeSource::enqueue(const ObjectKey& key, const std::string& reason) {
  queue_.add({kKind, key.namespace_, key.name}, reason);
}

void KubeSource::storage_upserted(json::value object) {
  if (!restoring_) mirror_.storage_upserted(object);
  auto parsed = kube::parse_backup_storage(object, kube::Unknown::Drop);  // the cache keeps the typed form only
  if (!parsed.ok()) {
    storage_invalid(object, parsed.error().to_string());
    return;
  }
  kube::BackupStorage s = std::move(parsed.value());
  ObjectKey key = key_of(s);
  bool was_invalid = invalid_.erase(key) > 0;
  const kube::BackupStorage* old = cache_.storage(key);
  bool changed = !old || was_invalid || old->metadata.uid != s.metadata.uid ||
                 old->metadata.generation != s.metadata.generation ||
                 old->metadata.deletion_timestamp != s.metadata.deletion_timestamp ||
                 (has_cleanup_finalizer(*old) && !has_cleanup_finalizer(s));
  std::string reason = !old ? "added" : "changed";
  auto overlapping = locations_.put(s);
  cache_.upsert(std::move(s));
  if (restoring_) return;
  if (changed) enqueue(key, reason);
  for (const auto& other : overlapping) enqueue(other, "the location of " + key.str() + " changed");
}

// An object that cannot be read: kept apart with what could be read and the problem, queued (the
// reconciler reports it). Its entry in the LocationIndex stays: its data has not moved.
void KubeSource::storage_invalid(const json::value& object, std::string problem) {
  auto meta = kube::parse_object_meta(object.is_object() && object.as_object().contains("metadata")
                                          ? object.as_object().at("metadata")
                                          : json::value());
  if (!meta.ok() || meta.value().name.empty()) {
    spdlog::error("backupstorages: an object without a readable name was skipped: {}", problem);
    return;
  }
  Invalid bad;
  bad.partial.metadata = std::move(meta.value());
  bad.partial.raw = object;
  if (const auto* status = object.as_object().if_contains("status")) {
    if (auto st = kube::parse_status(*status); st.ok()) bad.partial.status = std::move(st.value());
  }
  bad.problem = std::move(problem);
  ObjectKey key = key_of(bad.partial);
  spdlog::warn("{}: cannot be read: {}", key.str(), bad.problem);
  cache_.erase_storage(key);
  invalid_[key] = std::move(bad);
  if (!restoring_) enqueue(key, "invalid object");
}

void KubeSource::storage_removed(const std::string& ns, const std::string& name) {
  ObjectKey key{ns, name};
  cache_.erase_storage(key);
  invalid_.erase(key);
  mirror_.removed(kStorages, ns, name);
  enqueue(key, "deleted");
  for (const auto& other : locations_.erase(key)) enqueue(other, "the location of " + key.str() + " changed");
}

void KubeSource::secret_upserted(const json::value& object) {
  ObjectKey key{metadata_text(object, "namespace"), metadata_text(object, "name")};
  std::string rv = metadata_text(object, "resourceVersion");
  auto cached = secret_data_.find(key);
  if (cached != secret_data_.end() && cached->second.resource_version != rv) secret_data_.erase(cached);
  mirror_.secret_upserted(key.namespace_, key.name, rv);
  secret_changed(key, "changed");
}

void KubeSource::secret_removed(const std::string& ns, const std::string& name) {
  secret_data_.erase({ns, name});
  mirror_.removed(kSecrets, ns, name);
  secret_changed({ns, name}, "deleted");
}

void KubeSource::secret_changed(const ObjectKey& secret, const std::string& why) {
  for (const auto& s : cache_.storages_using_secret(secret)) enqueue(s, "secret " + secret.str() + " " + why);
}

void KubeSource::repository_upserted(const json::value& object) {
  std::string ns = metadata_text(object, "namespace"), name = metadata_text(object, "name");
  auto repo = kube::parse_repository(object);
  std::vector<ObjectKey> touched;
  if (repo.ok()) {
    touched = repositories_.upsert(repo.value());
  } else {
    spdlog::warn("repository {}/{} cannot be read ({}); left out of its storage's status", ns, name,
                 repo.error().to_string());
    touched = repositories_.remove({ns, name});
  }
  for (const auto& k : touched) enqueue(k, "repository " + ns + "/" + name + " changed");
}

std::optional<Lookup> KubeSource::get(const ObjectKey& key) const {
  if (auto bad = invalid_.find(key); bad != invalid_.end()) {
    const auto& s = bad->second.partial;
    bool deleting = !s.metadata.deletion_timestamp.empty();
    if (deleting && !has_cleanup_finalizer(s)) return std::nullopt;
    return Lookup{s, deleting, deleting ? "" : bad->second.problem};
  }
  const kube::BackupStorage* s = cache_.storage(key);
  if (!s) return std::nullopt;
  if (!s->metadata.deletion_timestamp.empty()) {
    if (!has_cleanup_finalizer(*s)) return std::nullopt;  // not ours to clean up (as KubeStash: no finalizer, no cleanup)
    return Lookup{*s, true, ""};
  }
  return Lookup{*s, false, ""};
}

boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> KubeSource::secret(ObjectKey key) {
  // A namespace not served has no informer: its Secrets are read (RBAC permitting), never cached.
  const Stream* stream = stream_of(key.namespace_);
  const std::string* known_rv = stream ? stream->secrets->find(key.namespace_, key.name) : nullptr;
  if (auto cached = secret_data_.find(key); stream && cached != secret_data_.end()) {
    if (known_rv && *known_rv == cached->second.resource_version)
      co_return std::optional<kube::Secret>(cached->second.secret);
  }
  if (stream && !known_rv && stream->secrets->synced()) co_return std::optional<kube::Secret>();  // not in the cluster

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
  if (stream) secret_data_[key] = CachedSecret{secret.metadata.resource_version, secret};
  co_return std::optional<kube::Secret>(std::move(secret));
}

// Keeps the cache's finalizers in step with a finalizer write at once, so a quick re-run does not
// add it twice.
void KubeSource::finalizers_written(const ObjectKey& key, const json::value& answer) {
  auto fresh = kube::parse_backup_storage(answer, kube::Unknown::Drop);
  if (!fresh.ok()) return;
  const kube::BackupStorage* cached = cache_.storage(key);
  if (!cached || cached->metadata.uid != fresh.value().metadata.uid) return;
  auto copy = *cached;
  copy.metadata.finalizers = fresh.value().metadata.finalizers;
  cache_.upsert(std::move(copy));
}

// Keeps the cache's status in step with a status write at once: a re-run before the watch event
// comes back then finds its status written (no second PATCH, no second Event), and the next write
// nulls what this one wrote (it reads `raw`). Only for the object the cache holds: by now the name
// may hold another storage (another uid).
void KubeSource::status_written(const ObjectKey& key, const json::value& answer) {
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

}  // namespace stowage::engine
