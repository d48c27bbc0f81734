#include "engine/kube_target.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/kube_paths.hpp"
#include "engine/kube_source.hpp"
#include "kube/api.hpp"
#include "kube/event_recorder.hpp"

namespace stowage::engine {

namespace json = boost::json;

namespace {

std::string storage_path(const ObjectKey& key) { return kubestash_object_path("backupstorages", key); }

// 409 Conflict and 422 from a failed `test`: the object moved on since the cache saw it.
bool moved_on(const kube::ApiError& e) { return e.http_status == 409 || e.http_status == 422; }

}  // namespace

KubeTarget::KubeTarget(boost::asio::any_io_executor executor, kube::Api& api, KubeSource& source)
    : api_(api), source_(source) {
  // Room for every storage turning Ready at once (10,000 in the benchmark) without dropping Events.
  kube::EventRecorderOptions event_options;
  event_options.queue_capacity = 32768;
  events_ = std::make_unique<kube::EventRecorder>(executor, api_, std::move(event_options));
}

KubeTarget::~KubeTarget() = default;

void KubeTarget::stop() { events_->stop(); }

void KubeTarget::event(const kube::BackupStorage& object, bool warning, const std::string& reason,
                       const std::string& action, const std::string& note) {
  // No resourceVersion in the reference: repeats aggregate across the object's own status writes.
  kube::ObjectReference regarding{kube::kBackupStorageApiVersion, "BackupStorage", object.metadata.namespace_,
                                  object.metadata.name, object.metadata.uid, ""};
  events_->record(std::move(regarding), warning ? kube::EventType::Warning : kube::EventType::Normal, reason, action,
                  note);
}

boost::asio::awaitable<TargetResult<Ok>> KubeTarget::ensure_finalizer(const kube::BackupStorage& object) {
  if (has_cleanup_finalizer(object)) co_return Ok{};
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
  source_.finalizers_written(key, patched.value());
  spdlog::debug("{}: finalizer {} added", key.str(), kCleanupFinalizer);
  co_return Ok{};
}

boost::asio::awaitable<TargetResult<Ok>> KubeTarget::write_status(const kube::BackupStorage& object,
                                                                  kube::BackupStorageStatus status) {
  ObjectKey key = key_of(object);
  json::value next = kube::status_to_json(status);
  json::object patch = next.is_object() ? next.as_object() : json::object();
  // A merge patch keeps what it does not mention: null the fields that are gone from the status
  // (the typed status as read, the members it does not model, and for an object kept whole its
  // status as given).
  auto null_gone = [&](std::string_view field) {
    if (!patch.contains(field)) patch[field] = nullptr;
  };
  const json::value old_status = kube::status_to_json(object.status);
  if (const auto* old = old_status.if_object())
    for (const auto& [field, _] : *old) null_gone(field);
  for (const auto& field : object.status.other_fields) null_gone(field);
  if (const auto* raw = object.raw.if_object()) {
    if (const auto* old = raw->if_contains("status"); old && old->is_object()) {
      for (const auto& [field, _] : old->as_object()) null_gone(field);
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
  source_.status_written(key, patched.value());
  co_return Ok{};
}

boost::asio::awaitable<TargetResult<Ok>> KubeTarget::deletion_done(const kube::BackupStorage& object) {
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
