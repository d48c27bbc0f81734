#include "engine/reconciler.hpp"

#include <spdlog/spdlog.h>

#include "common/time_format.hpp"
#include "kube/conditions.hpp"
#include "storage/metadata.hpp"
#include "engine/metrics.hpp"

namespace stowage::engine {

namespace {

kube::Condition condition(std::string_view type, bool ok, std::string_view reason, std::string message,
                          std::int64_t generation) {
  kube::Condition c;
  c.type = type;
  c.status = ok ? "True" : "False";
  c.reason = reason;
  c.message = std::move(message);
  c.observed_generation = generation;
  return c;
}

Outcome failed(const storage::BackendError& e) {
  return e.transient ? Outcome::transient(e.message) : Outcome::permanent(e.message);
}

Outcome target_failed(const TargetError& e) {
  return e.transient ? Outcome::transient(e.message) : Outcome::permanent(e.message);
}

bool same_status(const kube::BackupStorageStatus& a, const kube::BackupStorageStatus& b) {
  return kube::status_to_json(a) == kube::status_to_json(b);
}
}  // namespace

Reconciler::Reconciler(ReconcileTarget& target, const BackendFactory& backends, FactBook& facts,
                       const persistence::Fingerprinter& fingerprinter, ReconcilerOptions options, WallNow now)
    : target_(target),
      backends_(backends),
      facts_(facts),
      fingerprinter_(fingerprinter),
      options_(std::move(options)),
      now_(std::move(now)) {}

Outcome Reconciler::ready() const {
  if (options_.revalidate_period.count() > 0) return Outcome::done_after(options_.revalidate_period);
  return Outcome::done();
}

boost::asio::awaitable<Outcome> Reconciler::reconcile(ObjectKey key, ReconcileRequest request) {
  auto found = target_.get(key);
  if (!found) {
    facts_.forget(key);  // gone (or never ours): nothing left to clean up
    co_return Outcome::done();
  }
  if (found->deleting) co_return co_await remove(found->object, request.attempts);

  const kube::BackupStorage& s = found->object;
  // The finalizer first, before any status write, so a deletion always passes through cleanup.
  auto fin = co_await target_.ensure_finalizer(s);
  if (!fin.ok()) co_return target_failed(fin.error());

  kube::BackupStorageStatus status = s.status;
  std::string now = rfc3339(now_());
  std::int64_t gen = s.metadata.generation;
  {
    StorageRepositories repos = target_.repositories(key);
    for (const auto& problem : repos.problems) spdlog::warn("{}: repository size not counted: {}", key.str(), problem);
    status.repositories = std::move(repos.repositories);
    status.total_size = std::move(repos.total_size);
  }

  if (!found->invalid.empty()) {
    // The object holds a field of the wrong type: say which, and wait for a change.
    std::string msg = "the BackupStorage cannot be read: " + found->invalid;
    kube::set_condition(status.conditions,
                        condition(kube::kConditionBackendInitialized, false, kube::kReasonBackendInitializationFailed,
                                  msg, gen),
                        now);
    Outcome out = Outcome::permanent(msg);
    co_return co_await publish(s, std::move(status), std::move(out));
  }

  // Step 1: the Secret, when the provider names one (BackendSecretFound).
  std::optional<kube::Secret> secret;
  std::string secret_name = s.spec.storage.secret_name();
  if (!secret_name.empty()) {
    ObjectKey secret_key{key.namespace_, secret_name};
    auto read = co_await target_.secret(secret_key);
    if (!read.ok()) co_return target_failed(read.error());
    secret = std::move(read.value());
    if (!secret) {
      std::string where = key.namespace_ + "/" + secret_name;
      std::string msg = "secret " + where + " not found: create it in namespace " + key.namespace_;
      auto keys = BackendFactory::required_keys(s.spec.storage.provider);
      if (!keys.empty()) {
        msg += " with the keys";
        for (const auto& k : keys) msg += " " + k;
      }
      kube::set_condition(status.conditions,
                          condition(kube::kConditionBackendSecretFound, false, kube::kReasonBackendSecretNotAvailable,
                                    msg, gen),
                          now);
      if (!kube::find_condition(status.conditions, kube::kConditionBackendInitialized))
        kube::set_condition(status.conditions,
                            condition(kube::kConditionBackendInitialized, false,
                                      kube::kReasonBackendInitializationFailed,
                                      "cannot initialize the backend: " + msg, gen),
                            now);
      Outcome out = Outcome::permanent(msg);
      co_return co_await publish(s, std::move(status), std::move(out));
    }
    kube::set_condition(status.conditions,
                        condition(kube::kConditionBackendSecretFound, true, kube::kReasonBackendSecretAvailable,
                                  std::string(kube::kMessageBackendSecretFound), gen),
                        now);
  } else {
    kube::remove_condition(status.conditions, kube::kConditionBackendSecretFound);
  }

  // Step 2: the location. Of two storages whose locations are equal or nested only the older is
  // initialized: a WipeOut of either would otherwise delete the other's backups.
  if (auto conflict = target_.locations().conflict(key)) {
    std::string msg = "BackupStorage " + key.str() + " " + describe(conflict->nesting) + " " +
                      other_storage(*conflict, key.namespace_) +
                      ", which is older: it is not initialized and never wiped, so that a WipeOut of one cannot "
                      "delete the other's backups; give it a location of its own, or delete the other";
    kube::set_condition(status.conditions,
                        condition(kube::kConditionBackendInitialized, false, kube::kReasonStorageLocationConflict,
                                  msg, gen),
                        now);
    if (conflict->other.namespace_ != key.namespace_)  // the status does not name it; the operator's log does
      spdlog::info("{}: its location conflicts with {} ({})", key.str(), conflict->other.str(), conflict->other_label);
    Outcome out = Outcome::permanent(msg);  // the other's changes queue this one again
    co_return co_await publish(s, std::move(status), std::move(out));
  }

  // Step 3: the backend (BackendInitialized).
  Outcome out = co_await initialize(s, secret ? &*secret : nullptr, status, request.revalidate);
  co_return co_await publish(s, std::move(status), std::move(out));
}

boost::asio::awaitable<Outcome> Reconciler::initialize(const kube::BackupStorage& s, const kube::Secret* secret,
                                                       kube::BackupStorageStatus& status, bool revalidate) {
  auto key = key_of(s);
  std::string now = rfc3339(now_());
  std::int64_t gen = s.metadata.generation;
  auto set_failed = [&](const std::string& msg) {
    kube::set_condition(status.conditions,
                        condition(kube::kConditionBackendInitialized, false, kube::kReasonBackendInitializationFailed,
                                  msg, gen),
                        now);
  };

  auto made = backends_.make(s, secret);
  if (!made.ok()) {
    set_failed(made.error());
    co_return Outcome::permanent(made.error());
  }
  auto& backend = *made.value();
  std::string fingerprint = fingerprinter_.fingerprint(secret ? secret->data : std::map<std::string, std::string>{});
  std::string identity = backend.identity();
  // Once metadata.yaml is known to be in place: remember it, so later reconciles need no backend call.
  auto remember = [&] {
    facts_.record({key.namespace_, key.name, s.metadata.uid, gen, identity, fingerprint, unix_millis(now_())});
  };
  auto set_initialized = [&] {
    kube::set_condition(status.conditions,
                        condition(kube::kConditionBackendInitialized, true, kube::kReasonBackendInitializationSucceeded,
                                  std::string(kube::kMessageBackendInitialized), gen),
                        now);
  };

  if (s.spec.storage.provider == "local" && target_.volume_jobs()) {
    // In a cluster the volume is not mounted here: an initializer Job writes metadata.yaml. A Job is
    // not re-run to revalidate (its outcome stands until the storage changes).
    if (!facts_.matches(key, s.metadata.uid, gen, identity, fingerprint)) {
      std::vector<std::string> nothing_to_keep;  // named: see wipe_directly()
      auto job = co_await target_.volume_job(s, VolumeJobKind::Initialize, std::move(nothing_to_keep));
      if (!job.ok()) {
        set_failed(job.error().message);
        co_return target_failed(job.error());
      }
      const JobOutcome& o = job.value();
      std::string name = volume_job_name(s, VolumeJobKind::Initialize);
      if (o.state == JobOutcome::Running) {
        spdlog::debug("{}: waiting for the initializer Job {}{}", key.str(), name,
                      o.message.empty() ? "" : " (" + o.message + ")");
        co_return Outcome::done();  // the Job's own events queue the storage again
      }
      if (o.state == JobOutcome::Failed) {
        std::string msg = "the initializer Job " + key.namespace_ + "/" + name + " failed (" + o.reason + ")" +
                          (o.message.empty() ? "" : ": " + o.message);
        set_failed(msg);
        co_return Outcome::permanent(msg);
      }
      spdlog::info("{}: initialized by Job {}{}", key.str(), name, o.message.empty() ? "" : ": " + o.message);
      remember();
    }
    set_initialized();
    co_return ready();
  }

  if (revalidate || !facts_.matches(key, s.metadata.uid, gen, identity, fingerprint)) {
    auto read_started = std::chrono::steady_clock::now();
    auto state = co_await backend.read_metadata();
    if (options_.metrics)
      options_.metrics->backend_request_duration_seconds.observe({s.spec.storage.provider, "read"},
                                                                 std::chrono::steady_clock::now() - read_started);
    if (!state.ok()) {
      set_failed(state.error().message);
      co_return failed(state.error());
    }
    if (state.value().exists && !state.value().meta) {
      std::string msg = "existing " + backend.metadata_location() + " is not a valid BackendMeta (" +
                        state.value().invalid_reason + "); it was left untouched: fix or remove it";
      set_failed(msg);
      co_return Outcome::permanent(msg);
    }
    if (!state.value().exists) {
      storage::BackendMeta meta{rfc3339(now_()), options_.operator_version};
      std::string rendered = storage::render_metadata(meta);
      auto create_started = std::chrono::steady_clock::now();
      auto created = co_await backend.create_metadata(std::move(rendered));
      if (options_.metrics) {
        options_.metrics->backend_request_duration_seconds.observe({s.spec.storage.provider, "create"},
                                                                   std::chrono::steady_clock::now() - create_started);
        options_.metrics->backend_uploads_total.inc({s.spec.storage.provider, created.ok() ? "success" : "error"});
      }
      if (!created.ok()) {
        set_failed(created.error().message);
        co_return failed(created.error());
      }
      if (created.value() == storage::CreateOutcome::Created)
        spdlog::info("{}: created {}", key.str(), backend.metadata_location());
      else
        spdlog::info("{}: {} was created concurrently by another writer; kept it", key.str(),
                     backend.metadata_location());
    } else {
      if (revalidate)
        spdlog::debug("{}: revalidated: {} is in place", key.str(), backend.metadata_location());
      else
        spdlog::info("{}: {} already exists; kept it", key.str(), backend.metadata_location());
    }
    remember();
  }
  set_initialized();
  co_return ready();
}

boost::asio::awaitable<Outcome> Reconciler::publish(const kube::BackupStorage& s, kube::BackupStorageStatus status,
                                                    Outcome outcome) {
  status.phase = kube::calculate_phase(status.conditions);
  if (same_status(status, s.status)) co_return outcome;  // no write, so no write-triggered re-run
  auto key = key_of(s);
  bool phase_changed = status.phase != s.status.phase;
  std::string log_line;
  bool ready = status.phase == kube::kPhaseReady;
  if (phase_changed) {
    const auto* init = kube::find_condition(status.conditions, kube::kConditionBackendInitialized);
    std::string why;
    for (const auto& c : status.conditions)
      if (c.status != "True") why = c.message;
    // No failing condition but not Ready: a condition is still to come (a volume Job is running).
    if (!ready && why.empty()) why = "waiting for the backend to be initialized";
    log_line = ready ? (init ? init->message : "") : why;
  }
  // The Event for a failure: the reason and message of the condition that is not True.
  std::string warn_reason, warn_note;
  for (const auto& c : status.conditions)
    if (c.status != "True") {
      warn_reason = c.reason;
      warn_note = c.message;
    }
  auto written = co_await target_.write_status(s, std::move(status));
  if (!written.ok()) co_return target_failed(written.error());
  if (phase_changed) {
    if (ready)
      spdlog::info("{}: Ready ({})", key.str(), log_line);
    else
      spdlog::warn("{}: NotReady: {}", key.str(), log_line);
  }
  if (ready && phase_changed)
    target_.event(s, false, std::string(kube::kReasonBackendInitializationSucceeded), "Initialize", log_line);
  else if (!ready && !warn_reason.empty())
    target_.event(s, true, warn_reason, "Initialize", warn_note);
  co_return outcome;
}

// --- deletion ---

namespace {

// The location rules of a WipeOut, read from the index: nothing is wiped where an older storage has
// the same location or another storage's location holds this one; the locations of storages nested
// inside are kept (relative to this storage's directory or prefix).
struct WipeRules {
  std::string refused;  // why nothing may be deleted, or empty
  std::vector<std::string> keep;
};

WipeRules wipe_rules(const LocationIndex& index, const ObjectKey& key) {
  WipeRules rules;
  const StorageLocation* mine = index.location(key);
  for (const auto& o : index.overlaps(key)) {
    bool blocks = o.nesting == Nesting::Holds || (o.nesting == Nesting::Same && o.other_is_older);
    if (blocks && rules.refused.empty()) {
      rules.refused = "its location (" + mine->label + ") " + describe(o.nesting) + " " +
                      other_storage(o, key.namespace_) + (o.other_is_older ? ", which is older" : "") +
                      ": wiping it would delete that storage's backups";
    } else if (o.nesting == Nesting::Inside) {
      const StorageLocation* theirs = index.location(o.other);
      rules.keep.push_back(mine->path.empty() ? theirs->path : theirs->path.substr(mine->path.size() + 1));
    }
  }
  return rules;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "; ") + item;
  return out;
}

constexpr std::string_view kRefusedPrefix = "refused: ";  // how wipe-volume's report says it deleted nothing by rule

}  // namespace

// What one attempt at a WipeOut came to.
struct Reconciler::Wipe {
  enum Kind {
    Running,   // a cleaner Job is still at work
    Done,      // everything the storage owns is gone (`left` lists what was deliberately left)
    Refused,   // nothing was deleted, by rule
    Failed,    // stopped on an error; `removed` files were already gone
    Unusable,  // the backend cannot be reached at all (spec or Secret unusable): the data is kept
  };
  Kind kind = Done;
  std::string where;
  std::string message;
  bool transient = false;
  std::size_t removed = 0;
  std::vector<std::string> left;
};

boost::asio::awaitable<Outcome> Reconciler::remove(const kube::BackupStorage& object, int attempts) {
  auto key = key_of(object);
  kube::BackupStorage s = object;  // its status follows the writes made below
  auto waiting = co_await delete_dependents(s);
  if (waiting) co_return *waiting;
  if (s.spec.deletion_policy != "WipeOut") {
    spdlog::info("{}: deleted; deletionPolicy {} keeps the backend data", key.str(), s.spec.deletion_policy);
    co_return co_await deletion_done(s);
  }
  WipeRules rules = wipe_rules(target_.locations(), key);
  Wipe w;
  if (!rules.refused.empty()) {
    w.kind = Wipe::Refused;
    w.message = rules.refused + "; nothing was deleted";
  } else if (s.spec.storage.provider == "local" && target_.volume_jobs()) {
    w = co_await wipe_with_job(s, std::move(rules.keep));
  } else {
    w = co_await wipe_directly(s, std::move(rules.keep));
  }

  switch (w.kind) {
    case Wipe::Running:
      co_return Outcome::done();  // the Job's own events queue the storage again
    case Wipe::Done: {
      std::string note = w.message.empty() ? "removed " + std::to_string(w.removed) + " files from " + w.where
                                           : w.message;
      if (!w.left.empty()) note += "; left in place: " + joined(w.left);
      if (w.left.empty())
        spdlog::info("{}: deleted; WipeOut {}", key.str(), note);
      else
        spdlog::warn("{}: deleted; WipeOut {}", key.str(), note);
      target_.event(s, !w.left.empty(), "WipedOut", "Delete", note);
      co_return co_await deletion_done(s);
    }
    case Wipe::Refused:
      spdlog::warn("{}: deleted without wiping its data: {}", key.str(), w.message);
      co_await wipe_condition(s, kube::kReasonWipeOutRefused, w.message);
      target_.event(s, true, std::string(kube::kReasonWipeOutRefused), "Delete", w.message);
      co_return co_await deletion_done(s);
    case Wipe::Unusable: {
      // As KubeStash does, deletion is never blocked by an unusable spec or Secret: the object goes,
      // the data stays, and we say so.
      std::string msg = "the backend cannot be wiped (" + w.message + "); the object is deleted and the data is kept";
      spdlog::warn("{}: deleted with deletionPolicy WipeOut, but {}", key.str(), msg);
      target_.event(s, true, std::string(kube::kReasonWipeOutFailed), "Delete", msg);
      co_return co_await deletion_done(s);
    }
    case Wipe::Failed:
      break;
  }
  if (w.transient && attempts + 1 < kWipeTransientLimit) co_return Outcome::transient(w.message);
  std::string msg = "WipeOut of " + w.where +
                    (w.removed > 0 ? " stopped after removing " + std::to_string(w.removed) + " files (partial)"
                                   : " failed before removing anything") +
                    ": " + w.message + (w.left.empty() ? "" : "; also left in place: " + joined(w.left)) +
                    ". The object is kept and the wipe is retried; to delete the object and keep the data, set "
                    "spec.deletionPolicy to Delete";
  spdlog::warn("{}: {}", key.str(), msg);
  co_await wipe_condition(s, kube::kReasonWipeOutFailed, msg);
  target_.event(s, true, std::string(kube::kReasonWipeOutFailed), "Delete", msg);
  co_return Outcome::permanent(msg);
}

boost::asio::awaitable<std::optional<Outcome>> Reconciler::delete_dependents(kube::BackupStorage& s) {
  auto key = key_of(s);
  auto deleted = co_await target_.delete_dependents(s);
  if (deleted.ok() && deleted.value().waiting.empty()) {
    if (kube::find_condition(s.status.conditions, kube::kConditionRepositoriesDeleted)) {
      kube::BackupStorageStatus status = s.status;
      kube::remove_condition(status.conditions, kube::kConditionRepositoriesDeleted);
      if (co_await write_while_deleting(s, status)) s.status = std::move(status);
      spdlog::info("{}: its Repositories and Snapshots are gone", key.str());
    }
    co_return std::nullopt;
  }
  std::string reason, message;
  Outcome out;
  if (!deleted.ok()) {
    reason = kube::kReasonRepositoryDeletionFailed;
    message = "the Repositories and Snapshots that use this storage could not be deleted (" + deleted.error().message +
              "); the storage is kept until they are";
    out = target_failed(deleted.error());
    out.error = message;
  } else {
    const auto& waiting = deleted.value().waiting;
    constexpr std::size_t kNamed = 10;
    std::string named;
    for (std::size_t i = 0; i < waiting.size() && i < kNamed; ++i) named += (i ? "; " : "") + waiting[i];
    if (waiting.size() > kNamed) named += "; and " + std::to_string(waiting.size() - kNamed) + " more";
    reason = kube::kReasonWaitingForRepositories;
    message = "waiting for " + std::to_string(waiting.size()) +
              (waiting.size() == 1 ? " object" : " objects") + " that use this storage to be deleted: " + named +
              ". Their finalizers belong to other controllers (KubeStash's); remove one by hand only if its "
              "controller is gone";
    out = Outcome::transient(message);  // backoff; a Repository's removal queues it at once
  }
  kube::BackupStorageStatus status = s.status;
  kube::set_condition(status.conditions,
                      condition(kube::kConditionRepositoriesDeleted, false, reason, message, s.metadata.generation),
                      rfc3339(now_()));
  if (co_await write_while_deleting(s, std::move(status))) {
    if (deleted.ok())
      spdlog::info("{}: deleting; {}", key.str(), message);
    else
      spdlog::warn("{}: deleting; {}", key.str(), message);
  }
  co_return out;
}

boost::asio::awaitable<Reconciler::Wipe> Reconciler::wipe_with_job(const kube::BackupStorage& s,
                                                                   std::vector<std::string> keep) {
  Wipe w;
  std::string name = s.metadata.namespace_ + "/" + volume_job_name(s, VolumeJobKind::Cleanup);
  w.where = "the volume of " + s.metadata.namespace_ + "/" + s.metadata.name;
  auto job = co_await target_.volume_job(s, VolumeJobKind::Cleanup, std::move(keep));
  if (!job.ok()) {
    w.kind = job.error().transient ? Wipe::Failed : Wipe::Unusable;
    w.transient = job.error().transient;
    w.message = job.error().message;
    co_return w;
  }
  const JobOutcome& o = job.value();
  if (o.state == JobOutcome::Running) {
    w.kind = Wipe::Running;
  } else if (o.state == JobOutcome::Succeeded) {
    w.kind = Wipe::Done;
    w.message = "the cleaner Job " + name + " wiped the volume" + (o.message.empty() ? "" : ": " + o.message);
  } else if (std::string_view(o.message).starts_with(kRefusedPrefix)) {
    w.kind = Wipe::Refused;
    w.message = "the cleaner Job " + name + " " + o.message;
  } else {
    w.kind = Wipe::Failed;  // the Job has had its own retries (backoffLimit)
    w.message = "the cleaner Job " + name + " failed (" + o.reason + ")" + (o.message.empty() ? "" : ": " + o.message);
  }
  co_return w;
}

boost::asio::awaitable<Reconciler::Wipe> Reconciler::wipe_directly(const kube::BackupStorage& s,
                                                                   std::vector<std::string> keep) {
  auto key = key_of(s);
  Wipe w;
  std::optional<kube::Secret> secret;
  if (auto name = s.spec.storage.secret_name(); !name.empty()) {
    ObjectKey secret_key{key.namespace_, name};  // named: see the plan below
    auto read = co_await target_.secret(secret_key);
    if (!read.ok() && read.error().transient) {
      w.kind = Wipe::Failed;
      w.transient = true;
      w.where = key.str();
      w.message = read.error().message;
      co_return w;
    }
    if (read.ok()) secret = std::move(read.value());
  }
  auto made = backends_.make(s, secret ? &*secret : nullptr);
  if (!made.ok()) {
    w.kind = Wipe::Unusable;
    w.message = made.error();
    co_return w;
  }
  // Progress, page by page: a log line and a WipeOut condition in the status, at most every 2 s.
  storage::Backend& backend = *made.value();
  w.where = backend.identity();
  std::optional<std::chrono::steady_clock::time_point> reported;
  backend.on_delete_progress([&](std::size_t removed) -> boost::asio::awaitable<void> {
    auto now = std::chrono::steady_clock::now();
    if (reported && now - *reported < std::chrono::seconds(2)) co_return;
    reported = now;
    std::string msg = "WipeOut in progress: " + std::to_string(removed) + " objects removed so far from " + w.where;
    spdlog::info("{}: {}", key.str(), msg);
    co_await wipe_condition(s, kube::kReasonWipeOutInProgress, std::move(msg));
  });
  // A named plan: GCC 12 destroys a temporary built inside a co_await expression twice.
  storage::WipePlan plan{std::move(keep)};
  storage::WipeReport report = co_await backend.wipe(std::move(plan));
  w.removed = report.removed;
  w.left = std::move(report.left);
  if (report.refused) {
    w.kind = Wipe::Refused;
    w.message = report.refused->message;
  } else if (report.error) {
    w.kind = Wipe::Failed;
    w.transient = report.error->transient;
    w.message = report.error->message;
  } else {
    w.kind = Wipe::Done;
  }
  co_return w;
}

boost::asio::awaitable<void> Reconciler::wipe_condition(const kube::BackupStorage& s, std::string_view reason,
                                                        std::string message) {
  kube::BackupStorageStatus status = s.status;
  kube::set_condition(status.conditions,
                      condition(kube::kConditionWipeOut, false, reason, std::move(message), s.metadata.generation),
                      rfc3339(now_()));
  co_await write_while_deleting(s, std::move(status));
}

boost::asio::awaitable<bool> Reconciler::write_while_deleting(const kube::BackupStorage& s,
                                                             kube::BackupStorageStatus status) {
  if (same_status(status, s.status)) co_return false;
  auto written = co_await target_.write_status(s, std::move(status));
  if (!written.ok()) {
    spdlog::warn("{}: the status of the storage being deleted was not written: {}", key_of(s).str(),
                 written.error().message);
    co_return false;
  }
  co_return true;
}

boost::asio::awaitable<Outcome> Reconciler::deletion_done(const kube::BackupStorage& s) {
  auto done = co_await target_.deletion_done(s);
  if (!done.ok()) co_return target_failed(done.error());
  facts_.forget(key_of(s));
  co_return Outcome::done();
}

}  // namespace stowage::engine
