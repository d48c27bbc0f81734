#include "engine/kube_world.hpp"

#include "engine/volume_jobs.hpp"

namespace stowage::engine {

KubeWorld::KubeWorld(boost::asio::any_io_executor executor, kube::Api& api, persistence::WorkQueue& queue,
                     persistence::StateStore* store, KubeWorldOptions options)
    : options_(std::move(options)) {
  if (options_.volume_jobs) {
    VolumeJobsOptions job_options{*options_.volume_jobs, options_.failed_cleanup_retry};
    // A Job's change queues the storage it names; called only once the informers run, after the source exists.
    volume_jobs_ = std::make_unique<VolumeJobs>(
        api, std::move(job_options),
        [this](const ObjectKey& storage, const std::string& why) { source_->enqueue(storage, why); });
  }
  KubeSourceOptions source_options;
  source_options.namespaces = options_.namespaces;
  source_options.seed = options_.seed;
  source_options.server = options_.server;
  source_options.locations = LocationSettings{options_.local_root, options_.volume_jobs.has_value()};
  source_options.watch_idle_timeout = options_.watch_idle_timeout;
  source_ = std::make_unique<KubeSource>(executor, api, queue, store, std::move(source_options), volume_jobs_.get());
  target_ = std::make_unique<KubeTarget>(executor, api, *source_);
  dependents_ = std::make_unique<DependentDeleter>(api, source_->repositories());
}

KubeWorld::~KubeWorld() = default;

void KubeWorld::start(std::function<void()> on_synced) { source_->start(std::move(on_synced)); }

void KubeWorld::stop() {
  source_->stop();
  target_->stop();
}

bool KubeWorld::synced() const { return source_->synced(); }

std::string KubeWorld::problem() const { return source_->problem(); }

const KubeWorld::Stats& KubeWorld::stats() const {
  const auto& source = source_->stats();
  const auto& target = target_->stats();
  stats_ = Stats{source.secret_gets, target.status_writes, target.finalizer_writes, source.restored_storages,
                 source.restored_secrets};
  return stats_;
}

std::optional<Lookup> KubeWorld::get(const ObjectKey& key) { return source_->get(key); }

boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> KubeWorld::secret(ObjectKey key) {
  return source_->secret(std::move(key));
}

boost::asio::awaitable<TargetResult<Ok>> KubeWorld::ensure_finalizer(const kube::BackupStorage& object) {
  return target_->ensure_finalizer(object);
}

boost::asio::awaitable<TargetResult<Ok>> KubeWorld::write_status(const kube::BackupStorage& object,
                                                                 kube::BackupStorageStatus status) {
  return target_->write_status(object, std::move(status));
}

boost::asio::awaitable<TargetResult<Ok>> KubeWorld::deletion_done(const kube::BackupStorage& object) {
  return target_->deletion_done(object);
}

void KubeWorld::event(const kube::BackupStorage& object, bool warning, const std::string& reason,
                      const std::string& action, const std::string& note) {
  target_->event(object, warning, reason, action, note);
}

boost::asio::awaitable<TargetResult<Dependents>> KubeWorld::delete_dependents(const kube::BackupStorage& object) {
  co_return co_await dependents_->delete_for(key_of(object));
}

boost::asio::awaitable<TargetResult<JobOutcome>> KubeWorld::volume_job(const kube::BackupStorage& object,
                                                                      VolumeJobKind kind, std::vector<std::string> keep) {
  if (!volume_jobs_) co_return Err(TargetError{"volume Jobs are not enabled (local.volume-mode is not job)", false});
  co_return co_await volume_jobs_->run(object, kind, std::move(keep));
}

}  // namespace stowage::engine
