#include "engine/volume_jobs.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <optional>

#include "kube/api.hpp"
#include "kube/json_path.hpp"

namespace stowage::engine {

namespace json = boost::json;
using kube::metadata_text;

namespace {

// Whether a volume Job was made for this very storage (its uid label), not an earlier one of the name.
bool job_serves_storage(const json::value& job, const std::string& storage_uid) {
  return kube::string_at(job, {"metadata", "labels", kLabelStorageUid}) == storage_uid;
}

// The storage a Job's invoker labels name.
std::optional<ObjectKey> storage_of(const json::value& job) {
  std::string ns = kube::string_at(job, {"metadata", "labels", kLabelInvokerNamespace});
  std::string name = kube::string_at(job, {"metadata", "labels", kLabelInvokerName});
  if (ns.empty() || name.empty()) return std::nullopt;
  return ObjectKey{std::move(ns), std::move(name)};
}

}  // namespace

VolumeJobs::VolumeJobs(kube::Api& api, VolumeJobsOptions options, OnChange on_change)
    : api_(api), options_(std::move(options)), on_change_(std::move(on_change)) {}

const json::value* VolumeJobs::cached(const ObjectKey& job) const {
  auto it = jobs_.find(job);
  return it == jobs_.end() ? nullptr : &it->second;
}

void VolumeJobs::job_upserted(json::value job) {
  if (retired_uids_.count(metadata_text(job, "uid"))) return;  // deleted by us; a late event
  ObjectKey key{metadata_text(job, "namespace"), metadata_text(job, "name")};
  auto storage = storage_of(job);
  jobs_[key] = std::move(job);
  if (storage && on_change_) on_change_(*storage, "job " + key.str() + " changed");
}

void VolumeJobs::job_removed(const std::string& ns, const std::string& name, const json::value& last) {
  // Only the Job that went: the name may already hold its successor (created by us meanwhile).
  std::string uid = last.is_object() ? metadata_text(last, "uid") : std::string();
  retired_uids_.erase(uid);
  auto cached = jobs_.find({ns, name});
  if (cached != jobs_.end() && (uid.empty() || metadata_text(cached->second, "uid") == uid)) jobs_.erase(cached);
  if (last.is_object())
    if (auto storage = storage_of(last); storage && on_change_) on_change_(*storage, "job " + ns + "/" + name + " deleted");
}

boost::asio::awaitable<TargetResult<Ok>> VolumeJobs::retire(const ObjectKey& job_key, const std::string& uid,
                                                            const std::string& why) {
  std::string item = "/apis/batch/v1/namespaces/" + job_key.namespace_ + "/jobs/" + job_key.name +
                     "?propagationPolicy=Background";
  json::value options{{"preconditions", {{"uid", uid}}}};
  auto removed = co_await api_.remove(std::move(item), std::move(options));
  if (!removed.ok() && removed.error().http_status != 404 && removed.error().http_status != 409)
    co_return Err(TargetError{"deleting the volume Job " + job_key.str() + ": " + removed.error().message,
                              removed.error().transient()});
  if (removed.ok()) spdlog::info("deleted the volume Job {}, {}", job_key.str(), why);
  // Late watch events of the deleted Job are ignored, so they cannot stand in for a new one.
  if (!uid.empty()) retired_uids_.insert(uid);
  if (auto cached = jobs_.find(job_key); cached != jobs_.end() && metadata_text(cached->second, "uid") == uid)
    jobs_.erase(cached);
  co_return Ok{};
}

boost::asio::awaitable<TargetResult<JobOutcome>> VolumeJobs::run(const kube::BackupStorage& object,
                                                                VolumeJobKind kind, std::vector<std::string> keep) {
  // jobs_ is changed by the Job informer whenever this coroutine awaits: no iterator into it is held
  // across a co_await; entries are looked up again by key.
  ObjectKey storage = key_of(object);
  ObjectKey job_key{storage.namespace_, volume_job_name(object, kind)};
  std::string jobs = "/apis/batch/v1/namespaces/" + job_key.namespace_ + "/jobs";
  std::optional<json::value> job;
  if (auto cached = jobs_.find(job_key); cached != jobs_.end()) job = cached->second;
  if (job && kind == VolumeJobKind::Cleanup && !job_serves_storage(*job, object.metadata.uid)) {
    // cleanup-<name> is KubeStash's fixed name: a Job left by an earlier storage of the same name
    // (another uid) is not this one's. Delete that very Job and start afresh.
    auto retired = co_await retire(job_key, metadata_text(*job, "uid"), "left by an earlier storage of the same name");
    if (!retired.ok()) co_return Err(retired.error());
    job.reset();
  }
  if (job && kind == VolumeJobKind::Cleanup) {
    // A failed wipe is retried on the permanent schedule: once the Job has been failed that long, it
    // is replaced by a new run (the failure stays reported on the storage meanwhile).
    JobOutcome seen = job_outcome(*job);
    auto failed_at = parse_rfc3339(seen.finished_at.empty() ? metadata_text(*job, "creationTimestamp") : seen.finished_at);
    if (seen.state == JobOutcome::Failed && failed_at && options_.now() - *failed_at >= options_.failed_cleanup_retry) {
      auto retired = co_await retire(job_key, metadata_text(*job, "uid"), "to retry the failed wipe");
      if (!retired.ok()) co_return Err(retired.error());
      job.reset();
    }
  }
  if (!job) {
    VolumeJobSettings settings = options_.settings;
    settings.wipe_keep = std::move(keep);
    auto built = build_volume_job(object, kind, settings);
    if (!built.ok()) co_return Err(TargetError{"the volume Job cannot be built: " + built.error().to_string(), false});
    for (const auto& ignored : built.value().ignored_settings)
      spdlog::warn("{}: {} is not applied to volume Jobs", storage.str(), ignored);
    json::value body = built.value().job;
    std::string path = jobs;
    auto created = co_await api_.create(std::move(path), std::move(body));
    if (created.ok()) {
      spdlog::info("{}: created the {} Job {}", storage.str(), kind == VolumeJobKind::Initialize ? "initializer" : "cleaner",
                   job_key.str());
      jobs_[job_key] = std::move(created.value());
      co_return JobOutcome{};
    }
    if (created.error().http_status != 409)
      co_return Err(TargetError{"creating the volume Job " + job_key.str() + ": " + created.error().message,
                                created.error().transient()});
    std::string item = jobs + "/" + job_key.name;
    auto got = co_await api_.get(std::move(item));
    if (!got.ok())
      co_return Err(TargetError{"reading the volume Job " + job_key.str() + ": " + got.error().message, true});
    job = std::move(got.value());
    if (kind == VolumeJobKind::Cleanup && !job_serves_storage(*job, object.metadata.uid))
      co_return Err(TargetError{
          "the volume Job " + job_key.str() + " of an earlier storage of the same name is still being deleted", true});
    jobs_.insert_or_assign(job_key, *job);
  }
  JobOutcome outcome = job_outcome(*job);
  if (outcome.state == JobOutcome::Failed) {
    // The pods' termination messages say why; a cluster (or test server) without pods leaves the Job's.
    kube::ListOptions lo;
    lo.label_selector = "batch.kubernetes.io/job-name=" + job_key.name;
    std::string pods = "/api/v1/namespaces/" + job_key.namespace_ + "/pods";
    auto listed = co_await api_.list(std::move(pods), std::move(lo));
    if (listed.ok())
      outcome = job_outcome(*job, listed.value());
    else  // the Job's own reason stands; the pods' termination messages would say more
      spdlog::warn("{}: cannot list the pods of Job {} for their termination messages: {}", storage.str(),
                   job_key.str(), listed.error().message);
  }
  co_return outcome;
}

}  // namespace stowage::engine
