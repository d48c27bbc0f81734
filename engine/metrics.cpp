#include "engine/metrics.hpp"

#include <string>

#include "engine/facts.hpp"
#include "engine/object_cache.hpp"
#include "kube/conditions.hpp"

namespace stowage::engine {

namespace {

// k8s.io/component-base's rest client latency buckets.
std::vector<double> rest_client_buckets() { return {0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60}; }

// Backend requests: the REST client's, stretched to ten minutes for uploads over slow links.
std::vector<double> backend_buckets() {
  return {0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600};
}

// The reactor's lateness: 1 ms (the probe's own jitter) to 10 s (a reactor that has stopped).
std::vector<double> lag_buckets() { return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; }

}  // namespace

std::string_view result_label(ReconcileResult result) {
  switch (result) {
    case ReconcileResult::Success:
      return "success";
    case ReconcileResult::Error:
      return "error";
    case ReconcileResult::Requeue:
      return "requeue";
    case ReconcileResult::RequeueAfter:
      return "requeue_after";
  }
  return "error";
}

// Help texts are controller-runtime's and client-go's, word for word, where the family is theirs.
// One per-storage gauge family, rendered from the shown table as a Gauge with these samples would be.
class Metrics::StorageFamily final : public metrics::detail::FamilyBase {
 public:
  enum Field { Ready, LastInitialized, WipeoutFailed };
  StorageFamily(std::string name, std::string help, std::shared_ptr<ShownTable> table, Field field)
      : FamilyBase(std::move(name), std::move(help), {"namespace", "name", "provider"}),
        table_(std::move(table)),
        field_(field) {}

  // Per row: the name, the labels with their values (a provider's name is short) and a value.
  std::size_t expected_size() const override {
    std::size_t bytes = 0;
    std::lock_guard lock(table_->mutex);
    for (const auto& [key, shown] : table_->rows) bytes += name().size() + key.first.size() + key.second.size() + 64;
    return bytes;
  }

  // The rows are copied under the lock and rendered after it: the reactor's sweep takes the same lock,
  // and formatting 10,000 samples while holding it made the reactor wait for the render thread.
  void expose(std::string& out) const override {
    struct Row {
      std::string namespace_, name, provider;
      double value;
    };
    std::vector<Row> rows;
    {
      std::lock_guard lock(table_->mutex);
      rows.reserve(table_->rows.size());
      for (const auto& [key, shown] : table_->rows) {
        double value = 0;
        switch (field_) {
          case Ready:
            value = shown.ready ? 1 : 0;
            break;
          case WipeoutFailed:
            value = shown.wipeout_failed ? 1 : 0;
            break;
          case LastInitialized:
            if (!shown.last_initialized) continue;
            value = *shown.last_initialized;
            break;
        }
        rows.push_back(Row{key.first, key.second, shown.provider, value});
      }
    }
    if (rows.empty()) return;
    header(out, "gauge");
    for (const Row& row : rows) {
      sample_name(out, {row.namespace_, row.name, row.provider});
      out += ' ';
      out += metrics::format_value(row.value);
      out += '\n';
    }
  }

 private:
  std::shared_ptr<ShownTable> table_;
  Field field_;
};

Metrics::Metrics(metrics::Registry& r)
    : reconcile_total(r.counter("controller_runtime_reconcile_total", "Total number of reconciliations per controller",
                                {"controller", "result"})),
      reconcile_errors_total(r.counter("controller_runtime_reconcile_errors_total",
                                       "Total number of reconciliation errors per controller", {"controller"})),
      reconcile_time_seconds(r.histogram("controller_runtime_reconcile_time_seconds",
                                         "Length of time per reconciliation per controller", {"controller"},
                                         metrics::reconcile_time_buckets())),
      active_workers(r.gauge("controller_runtime_active_workers", "Number of currently used workers per controller",
                             {"controller"})),
      max_concurrent_reconciles(r.gauge("controller_runtime_max_concurrent_reconciles",
                                        "Maximum number of concurrent reconciles per controller", {"controller"})),
      workqueue_depth(r.gauge("workqueue_depth", "Current depth of workqueue", {"name"})),
      workqueue_adds_total(r.counter("workqueue_adds_total", "Total number of adds handled by workqueue", {"name"})),
      workqueue_queue_duration_seconds(r.histogram("workqueue_queue_duration_seconds",
                                                   "How long in seconds an item stays in workqueue before being "
                                                   "requested",
                                                   {"name"}, metrics::workqueue_buckets())),
      workqueue_work_duration_seconds(r.histogram("workqueue_work_duration_seconds",
                                                  "How long in seconds processing an item from workqueue takes.",
                                                  {"name"}, metrics::workqueue_buckets())),
      workqueue_retries_total(
          r.counter("workqueue_retries_total", "Total number of retries handled by workqueue", {"name"})),
      workqueue_unfinished_work_seconds(r.gauge(
          "workqueue_unfinished_work_seconds",
          "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. "
          "Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at "
          "which this increases.",
          {"name"})),
      workqueue_longest_running_processor_seconds(
          r.gauge("workqueue_longest_running_processor_seconds",
                  "How many seconds has the longest running processor for workqueue been running.", {"name"})),
      workqueue_parked_items(r.gauge("stowage_workqueue_parked_items",
                                     "Work items parked because the process ended while reconciling them "
                                     "reconcile.max-interrupted times in a row; retried every "
                                     "reconcile.permanent-retry.",
                                     {"name"})),
      rest_client_requests_total(r.counter("rest_client_requests_total",
                                           "Number of HTTP requests, partitioned by status code, method, and host.",
                                           {"code", "method", "host"})),
      rest_client_request_duration_seconds(
          r.histogram("rest_client_request_duration_seconds", "Request latency in seconds. Broken down by verb, and host.",
                      {"verb", "host"}, rest_client_buckets())),
      leader_election_master_status(r.gauge("leader_election_master_status",
                                            "Gauge of if the reporting system is master of the relevant lease, 0 "
                                            "indicates backup, 1 indicates master. 'name' is the string used to "
                                            "identify the lease. Please make sure to group by name.",
                                            {"name"})),
      backend_uploads_total(r.counter("stowage_backend_uploads_total",
                                      "Writes of BackupStorage metadata to storage backends, by provider and result.",
                                      {"provider", "result"})),
      backend_request_duration_seconds(r.histogram("stowage_backend_request_duration_seconds",
                                                   "Latency of storage backend requests in seconds, by provider and "
                                                   "operation.",
                                                   {"provider", "operation"}, backend_buckets())),
      event_loop_lag_seconds(r.gauge("stowage_event_loop_lag_seconds",
                                     "How late the reactor ran its last lag probe, in seconds.")),
      event_loop_lag_distribution_seconds(r.histogram("stowage_event_loop_lag_distribution_seconds",
                                                      "How late the reactor runs its lag probes, in seconds.", {},
                                                      lag_buckets())),
      event_loop_longest_stall_seconds(r.gauge("stowage_event_loop_longest_stall_seconds",
                                               "The longest the reactor was kept from running ready work since the "
                                               "process started, in seconds.")),
      backupstorages(r.gauge("stowage_backupstorages", "BackupStorages known to the controller, by status phase.",
                             {"phase"})),
      table_(std::make_shared<ShownTable>()),
      shown_(table_->rows) {
  r.add(std::make_unique<StorageFamily>("stowage_backupstorage_ready",
                                        "Whether the BackupStorage's phase is Ready (1) or not (0).", table_,
                                        StorageFamily::Ready));
  r.add(std::make_unique<StorageFamily>(
      "stowage_backupstorage_last_initialized_timestamp_seconds",
      "Unix time the BackupStorage's backend was last found initialized (metadata.yaml written or in place).", table_,
      StorageFamily::LastInitialized));
  r.add(std::make_unique<StorageFamily>("stowage_backupstorage_wipeout_failed",
                                        "Whether the BackupStorage's WipeOut failed and keeps it from being deleted "
                                        "(1) or not (0).",
                                        table_, StorageFamily::WipeoutFailed));
}

void Metrics::controller_started(std::string_view controller, int max_concurrent) {
  for (auto result : {ReconcileResult::Success, ReconcileResult::Error, ReconcileResult::Requeue,
                      ReconcileResult::RequeueAfter})
    reconcile_total.with({controller, result_label(result)});
  reconcile_errors_total.with({controller});
  active_workers.set({controller}, 0);
  max_concurrent_reconciles.set({controller}, max_concurrent);
  workqueue_depth.with({controller});
  workqueue_adds_total.with({controller});
  workqueue_retries_total.with({controller});
  workqueue_unfinished_work_seconds.with({controller});
  workqueue_longest_running_processor_seconds.with({controller});
}

void Metrics::reconcile_finished(std::string_view controller, ReconcileResult result,
                                 std::chrono::duration<double> took) {
  reconcile_total.inc({controller, result_label(result)});
  if (result == ReconcileResult::Error) reconcile_errors_total.inc({controller});
  reconcile_time_seconds.observe({controller}, took);
}

void Metrics::rest_request_finished(std::optional<int> status, std::string_view method, std::string_view host,
                                    std::chrono::duration<double> took) {
  std::string code = status ? std::to_string(*status) : "<error>";
  rest_client_requests_total.inc({code, method, host});
  rest_client_request_duration_seconds.observe({method, host}, took);
}

void Metrics::event_loop_sampled(std::chrono::duration<double> late) {
  double seconds = late.count() < 0 ? 0 : late.count();
  event_loop_lag_seconds.set(seconds);
  event_loop_lag_distribution_seconds.observe(seconds);
  event_loop_longest_stall_seconds.with({}).set_max(seconds);
}

namespace {
// ns/name against a cache key, without building a pair.
int compare_key(const Metrics::SweepCursor& a, const ObjectKey& b) {
  if (int c = a.first.compare(b.namespace_); c != 0) return c;
  return a.second.compare(b.name);
}

StorageSample sample_of(const kube::BackupStorage& s, const persistence::InitFact* fact) {
  StorageSample sample;
  sample.provider = s.spec.storage.provider;
  sample.ready = s.status.phase == kube::kPhaseReady;
  if (fact && fact->uid == s.metadata.uid) sample.last_initialized = static_cast<double>(fact->initialized_ms) / 1000.0;
  const auto* wipe = kube::find_condition(s.status.conditions, kube::kConditionWipeOut);
  sample.wipeout_failed = wipe && wipe->status == "False" && wipe->reason == kube::kReasonWipeOutFailed;
  return sample;
}
}  // namespace

// Both under table_->mutex.
Metrics::ShownMap::iterator Metrics::show(ShownMap::iterator it, ShownMap::iterator hint, const std::string& ns,
                                          const std::string& name, const StorageSample& sample) {
  if (it == shown_.end()) it = shown_.emplace_hint(hint, SweepCursor{ns, name}, Shown{});
  Shown& shown = it->second;
  if (shown.provider != sample.provider) shown.provider = sample.provider;  // the label set changes
  shown.ready = sample.ready;
  shown.wipeout_failed = sample.wipeout_failed;
  shown.last_initialized = sample.last_initialized;
  return std::next(it);
}

Metrics::ShownMap::iterator Metrics::hide(ShownMap::iterator it) { return shown_.erase(it); }

void Metrics::storages_observed(const std::vector<StorageSample>& storages) {
  std::lock_guard lock(table_->mutex);
  std::set<SweepCursor> seen;
  for (const auto& s : storages) {
    SweepCursor key{s.namespace_, s.name};
    auto it = shown_.find(key);
    show(it, shown_.lower_bound(key), s.namespace_, s.name, s);
    seen.insert(std::move(key));
  }
  for (auto it = shown_.begin(); it != shown_.end();) it = seen.count(it->first) ? std::next(it) : hide(it);
}

std::optional<Metrics::SweepCursor> Metrics::sweep_storages(const ObjectCache& cache, const FactBook& facts,
                                                            const std::optional<SweepCursor>& from,
                                                            const std::function<bool()>& out_of_time) {
  std::lock_guard lock(table_->mutex);
  const auto& storages = cache.storages();
  auto it = from ? storages.lower_bound(ObjectKey{from->first, from->second}) : storages.begin();
  auto shown = from ? shown_.lower_bound(*from) : shown_.begin();
  for (int n = 1; it != storages.end(); ++it, ++n) {
    if (n % kSweepCheckEvery == 0 && out_of_time()) return SweepCursor{it->first.namespace_, it->first.name};
    while (shown != shown_.end() && compare_key(shown->first, it->first) < 0) shown = hide(shown);  // gone
    bool same = shown != shown_.end() && compare_key(shown->first, it->first) == 0;
    shown = show(same ? shown : shown_.end(), shown, it->first.namespace_, it->first.name,
                 sample_of(it->second, facts.find(it->first)));
  }
  while (shown != shown_.end()) shown = hide(shown);  // gone, after the last storage
  return std::nullopt;
}

std::vector<StorageSample> storage_samples(const ObjectCache& cache, const FactBook& facts) {
  std::vector<StorageSample> out;
  out.reserve(cache.storages().size());
  for (const auto& [key, s] : cache.storages()) {
    StorageSample sample = sample_of(s, facts.find(key));
    sample.namespace_ = key.namespace_;
    sample.name = key.name;
    out.push_back(std::move(sample));
  }
  return out;
}

}  // namespace stowage::engine
