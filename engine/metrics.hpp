#pragma once
// engine::Metrics — every metric family stowage exposes, registered once into a metrics::Registry,
// as named references. Where controller-runtime / client-go have a metric for the same thing, the
// family has their name, labels, help text and buckets, so their dashboards and alerts work as-is.
//
// Label values used throughout: controller = the workqueue name = "backupstorage"; host =
// "host:port" of the API server; provider = "s3" | "gcs" | "azure" | "local".
//
// Every update is safe from any thread (the SQLite writer thread, the disk pool); see
// common/metrics.hpp. Typical calls:
//   metrics.reconcile_total.inc({"backupstorage", "success"});
//   auto timer = metrics.reconcile_time_seconds.start_timer({"backupstorage"});  // observes when destroyed
//   metrics.reconcile_finished("backupstorage", ReconcileResult::Error, elapsed);  // total+errors+time at once
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.hpp"

namespace stowage::engine {

// The `result` label of controller_runtime_reconcile_total, as controller-runtime sets it.
enum class ReconcileResult {
  Success,       // Outcome::Done: settled
  Error,         // Outcome::Transient or Permanent: the reconcile failed (retried with backoff / later)
  Requeue,       // succeeded but asked to run again at once (controller-runtime's Result.Requeue)
  RequeueAfter,  // succeeded but asked to run again after a delay (Result.RequeueAfter)
};
std::string_view result_label(ReconcileResult result);  // "success" | "error" | "requeue" | "requeue_after"

class FactBook;
class ObjectCache;

// One storage as the per-storage families show it.
struct StorageSample {
  std::string namespace_, name, provider;
  bool ready = false;
  std::optional<double> last_initialized;  // unix seconds; nullopt while this process has no record of it
  bool wipeout_failed = false;
};

// The storages of `cache` (every storage the source still has, those being deleted included), with
// the time `facts` records each (its current uid) as last found initialized.
std::vector<StorageSample> storage_samples(const ObjectCache& cache, const FactBook& facts);

struct Metrics {
  explicit Metrics(metrics::Registry& registry);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // ---- controller-runtime: the reconcile loop -------------------------------------------------
  // {controller, result}: one per finished reconcile (result: see ReconcileResult).
  metrics::Counter& reconcile_total;
  // {controller}: one per reconcile that ended in an error (also counted in reconcile_total{error}).
  metrics::Counter& reconcile_errors_total;
  // {controller}: wall time of each reconcile, whatever its result (controller-runtime's buckets).
  metrics::Histogram& reconcile_time_seconds;
  // {controller}: reconciles running now (inc when one starts, dec when it ends).
  metrics::Gauge& active_workers;
  // {controller}: the worker limit (ControllerOptions::workers), set once at start.
  metrics::Gauge& max_concurrent_reconciles;

  // ---- client-go workqueue (name = the controller's name) -------------------------------------
  // {name}: keys waiting to be claimed (inc on add of a key not already waiting, dec on claim).
  metrics::Gauge& workqueue_depth;
  // {name}: keys added (one per add of a key not already waiting, retries included).
  metrics::Counter& workqueue_adds_total;
  // {name}: seconds from a key's add (or its retry time coming due) until a worker claims it.
  metrics::Histogram& workqueue_queue_duration_seconds;
  // {name}: seconds a worker spent on a claimed key (claim to done).
  metrics::Histogram& workqueue_work_duration_seconds;
  // {name}: keys put back to be retried after a failure (client-go's AddRateLimited).
  metrics::Counter& workqueue_retries_total;
  // {name}: sum over in-flight keys of the seconds they have been processed so far; refresh it
  // periodically (client-go: every 500 ms). Growing steadily = stuck workers.
  metrics::Gauge& workqueue_unfinished_work_seconds;
  // {name}: seconds the longest-running in-flight key has been processed; refreshed with the above.
  metrics::Gauge& workqueue_longest_running_processor_seconds;
  // {name}: items parked after reconcile.max-interrupted attempts in a row that the process's end
  // cut short (a crash loop); they are retried only every reconcile.permanent-retry. Alert on > 0.
  metrics::Gauge& workqueue_parked_items;

  // ---- client-go REST client (the Kubernetes API) ---------------------------------------------
  // {code, method, host}: one per request; code = the HTTP status ("200") or "<error>" when no
  // response came; method = "GET", "PUT", ...
  metrics::Counter& rest_client_requests_total;
  // {verb, host}: request latency, sent to whole response (watches: until the headers arrive).
  metrics::Histogram& rest_client_request_duration_seconds;
  // {name}: 1 while this process holds the lease `name`, 0 while it is a standby.
  metrics::Gauge& leader_election_master_status;

  // ---- stowage ---------------------------------------------------------------------------------
  // {provider, result}: backend writes of a storage's metadata (result: "success" | "error").
  metrics::Counter& backend_uploads_total;
  // {provider, operation}: latency of each backend request (operation: "put" | "get" | "head" |
  // "list" | "delete"), whatever its outcome.
  metrics::Histogram& backend_request_duration_seconds;
  // How late the reactor ran its last lag probe (LagMonitor's tick), in seconds.
  metrics::Gauge& event_loop_lag_seconds;
  // The distribution of those samples (a separate name: one name cannot be a gauge and a histogram).
  metrics::Histogram& event_loop_lag_distribution_seconds;
  // The longest single stall of the reactor since the process started.
  metrics::Gauge& event_loop_longest_stall_seconds;
  // {phase}: BackupStorages known, by status phase ("Ready" | "NotReady"). Set every phase on
  // each recount (0 included), so an emptied phase reads 0 rather than its last count.
  metrics::Gauge& backupstorages;
  // The per-storage gauges, set by storages_observed / sweep_storages only. Per storage,
  // {namespace, name, provider}: one series each while the storage is known, removed when it goes
  // (deleted, or no longer watched) or changes provider; so at most one per storage.
  //  - stowage_backupstorage_ready: 1 while the storage's phase is Ready, else 0.
  //  - stowage_backupstorage_last_initialized_timestamp_seconds: the unix time this process last found
  //    the storage's backend initialized (metadata.yaml written, found in place, or revalidated);
  //    absent while it has no such record (since the state directory was made, or for this uid).
  //  - stowage_backupstorage_wipeout_failed: 1 while the storage's WipeOut condition is False with
  //    reason WipeOutFailed (a wipe that failed and keeps the object), else 0.
  // They are rendered at exposition from the one table of what each storage shows (no series object
  // per storage and family: at 10,000 storages those were 30,000 label sets, about 5 MB).

  // ---- helpers that keep related families consistent -----------------------------------------
  // Creates the zero series controller-runtime creates when a controller starts (reconcile_total
  // for every result, errors, active workers, the queue's counters and gauges) and sets
  // max_concurrent_reconciles: rate() then works from the first scrape.
  void controller_started(std::string_view controller, int max_concurrent_reconciles);
  // After a reconcile: reconcile_total{result}, reconcile_errors_total on Error, and
  // reconcile_time_seconds.
  void reconcile_finished(std::string_view controller, ReconcileResult result, std::chrono::duration<double> took);
  // After an API request: rest_client_requests_total (status nullopt = "<error>") and its latency.
  void rest_request_finished(std::optional<int> status, std::string_view method, std::string_view host,
                             std::chrono::duration<double> took);
  // One LagMonitor sample: the last-sample gauge, the histogram and the longest stall.
  void event_loop_sampled(std::chrono::duration<double> late);
  // Sets the per-storage families to exactly `storages`: the series of every storage not among them
  // are removed. Call from one thread (the reactor's gauge refresh).
  void storages_observed(const std::vector<StorageSample>& storages);

  // The same, in slices: brings the series of the storages of `cache` from the key `from` on
  // (nullopt: from the first) up to date with `cache` and `facts`, touching only the series whose
  // value changed, and removing those of storages no longer in the cache. Stops once `out_of_time()`
  // says so (asked every kSweepCheckEvery storages) and returns the key to go on from in a later
  // call; nullopt once the sweep reached the end. The cache may change between two calls: each call
  // starts again from the key it is given. Reactor thread.
  using SweepCursor = std::pair<std::string, std::string>;  // namespace, name
  static constexpr int kSweepCheckEvery = 64;
  std::optional<SweepCursor> sweep_storages(const ObjectCache& cache, const FactBook& facts,
                                            const std::optional<SweepCursor>& from,
                                            const std::function<bool()>& out_of_time);

 private:
  struct Shown {  // what a storage's series show now
    std::string provider;
    bool ready = false, wipeout_failed = false;
    std::optional<double> last_initialized;
  };
  using ShownMap = std::map<SweepCursor, Shown>;
  // shown_ with its lock: changed on the reactor, read by the families below when they render (on the
  // metrics render thread); shared with them, so a registry exposed after this is gone stays safe.
  struct ShownTable {
    std::mutex mutex;
    ShownMap rows;
  };
  class StorageFamily;
  // Sets the row of `ns/name` to `sample`'s values (`it` = shown_.end(): none shown yet; `hint` is
  // where to insert). Returns the entry after it. Under table_->mutex.
  ShownMap::iterator show(ShownMap::iterator it, ShownMap::iterator hint, const std::string& ns,
                          const std::string& name, const StorageSample& sample);
  ShownMap::iterator hide(ShownMap::iterator it);  // removes its row (its series); returns the next entry
  std::shared_ptr<ShownTable> table_;
  ShownMap& shown_;  // table_->rows, by namespace and name: the series shown now (changed under table_->mutex)
};

}  // namespace stowage::engine
