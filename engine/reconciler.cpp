#include "engine/reconciler.hpp"

#include <spdlog/spdlog.h>

#include "common/time_format.hpp"
#include "kube/conditions.hpp"
#include "storage/metadata.hpp"
#include "engine/metrics.hpp"

namespace stowage::engine {

namespace {
ObjectKey key_of(const kube::BackupStorage& s) { return {s.metadata.namespace_, s.metadata.name}; }

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
  return {e.transient ? Outcome::Transient : Outcome::Permanent, e.message, false};
}

Outcome target_failed(const TargetError& e) { return {e.transient ? Outcome::Transient : Outcome::Permanent, e.message, false}; }

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

boost::asio::awaitable<Outcome> Reconciler::reconcile(ObjectKey key, bool revalidate) {
  auto found = target_.get(key);
  if (!found) {
    facts_.forget(key);  // gone (or never ours): nothing left to clean up
    co_return Outcome{};
  }
  if (found->deleting) co_return co_await remove(found->object);

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
    Outcome out{Outcome::Permanent, msg, false};
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
      Outcome out{Outcome::Permanent, msg, false};
      co_return co_await publish(s, std::move(status), std::move(out));
    }
    kube::set_condition(status.conditions,
                        condition(kube::kConditionBackendSecretFound, true, kube::kReasonBackendSecretAvailable,
                                  std::string(kube::kMessageBackendSecretFound), gen),
                        now);
  } else {
    kube::remove_condition(status.conditions, kube::kConditionBackendSecretFound);
  }

  // Step 2: the backend (BackendInitialized).
  Outcome out = co_await initialize(s, secret ? &*secret : nullptr, status, revalidate);
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
    co_return Outcome{Outcome::Permanent, made.error(), false};
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
      auto job = co_await target_.volume_job(s, VolumeJobKind::Initialize);
      if (!job.ok()) {
        set_failed(job.error().message);
        co_return target_failed(job.error());
      }
      const JobOutcome& o = job.value();
      std::string name = volume_job_name(s, VolumeJobKind::Initialize);
      if (o.state == JobOutcome::Running) {
        spdlog::debug("{}: waiting for the initializer Job {}{}", key.str(), name,
                      o.message.empty() ? "" : " (" + o.message + ")");
        co_return Outcome{Outcome::Done, "", false};  // the Job's own events queue the storage again
      }
      if (o.state == JobOutcome::Failed) {
        std::string msg = "the initializer Job " + key.namespace_ + "/" + name + " failed (" + o.reason + ")" +
                          (o.message.empty() ? "" : ": " + o.message);
        set_failed(msg);
        co_return Outcome{Outcome::Permanent, msg, false};
      }
      spdlog::info("{}: initialized by Job {}{}", key.str(), name, o.message.empty() ? "" : ": " + o.message);
      remember();
    }
    set_initialized();
    co_return Outcome{Outcome::Done, "", true};
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
      co_return Outcome{Outcome::Permanent, msg, false};
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
  co_return Outcome{Outcome::Done, "", true};
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

boost::asio::awaitable<Outcome> Reconciler::remove(const kube::BackupStorage& s) {
  auto key = key_of(s);
  if (s.spec.deletion_policy == "WipeOut" && s.spec.storage.provider == "local" && target_.volume_jobs()) {
    auto job = co_await target_.volume_job(s, VolumeJobKind::Cleanup);
    if (!job.ok() && job.error().transient) co_return target_failed(job.error());
    if (job.ok() && job.value().state == JobOutcome::Running) co_return Outcome{Outcome::Done, "", false};
    if (!job.ok() || job.value().state == JobOutcome::Failed) {
      std::string why = job.ok() ? job.value().reason + (job.value().message.empty() ? "" : ": " + job.value().message)
                                 : job.error().message;
      spdlog::warn("{}: the cleaner Job failed ({}); the object is deleted and the data is kept", key.str(), why);
      target_.event(s, true, "WipeOutFailed", "Delete",
                    "the cleaner Job failed (" + why + "); the object is deleted and the data is kept");
    } else {
      std::string detail = job.value().message.empty() ? "" : ": " + job.value().message;
      spdlog::info("{}: deleted; the cleaner Job wiped the volume{}", key.str(), detail);
      target_.event(s, false, "WipedOut", "Delete", "the cleaner Job wiped the volume" + detail);
    }
  } else if (s.spec.deletion_policy == "WipeOut") {
    std::optional<kube::Secret> secret;
    if (auto name = s.spec.storage.secret_name(); !name.empty()) {
      ObjectKey secret_key{key.namespace_, name};
      auto read = co_await target_.secret(secret_key);
      if (!read.ok() && read.error().transient) co_return target_failed(read.error());
      if (read.ok()) secret = std::move(read.value());
    }
    auto made = backends_.make(s, secret ? &*secret : nullptr);
    if (!made.ok()) {
      // As KubeStash does, deletion is never blocked: the object goes, the data stays, and we say so.
      spdlog::warn("{}: deleted with deletionPolicy WipeOut, but its backend cannot be wiped ({}); the data is kept",
                   key.str(), made.error());
      target_.event(s, true, "WipeOutFailed", "Delete", "the backend cannot be wiped (" + made.error() +
                                                           "); the object is deleted and the data is kept");
    } else {
      // Progress, page by page: a log line and a WipeOut condition in the status, at most every 2 s.
      storage::Backend& backend = *made.value();
      std::string where = backend.identity();
      kube::BackupStorageStatus progress = s.status;
      std::optional<std::chrono::steady_clock::time_point> reported;
      backend.on_delete_progress([&](std::size_t removed) -> boost::asio::awaitable<void> {
        auto now = std::chrono::steady_clock::now();
        if (reported && now - *reported < std::chrono::seconds(2)) co_return;
        reported = now;
        std::string msg = "WipeOut in progress: " + std::to_string(removed) + " objects removed so far from " + where;
        spdlog::info("{}: {}", key.str(), msg);
        kube::Condition c;
        c.type = "WipeOut";
        c.status = "False";
        c.reason = "WipeOutInProgress";
        c.message = msg;
        c.observed_generation = s.metadata.generation;
        kube::set_condition(progress.conditions, std::move(c), rfc3339(now_()));
        auto written = co_await target_.write_status(s, progress);
        if (!written.ok()) spdlog::debug("{}: WipeOut progress not written: {}", key.str(), written.error().message);
      });
      auto wiped = co_await backend.delete_all();
      if (!wiped.ok() && wiped.error().transient) co_return failed(wiped.error());
      if (!wiped.ok()) {
        spdlog::warn("{}: WipeOut of {} failed ({}); the object is deleted and the data is kept", key.str(),
                     made.value()->identity(), wiped.error().message);
        target_.event(s, true, "WipeOutFailed", "Delete",
                      "WipeOut failed (" + wiped.error().message + "); the object is deleted and the data is kept");
      } else {
        spdlog::info("{}: deleted; WipeOut removed {} files from {}", key.str(), wiped.value(),
                     made.value()->identity());
        target_.event(s, false, "WipedOut", "Delete",
                      "removed " + std::to_string(wiped.value()) + " files from " + made.value()->identity());
      }
    }
  } else {
    spdlog::info("{}: deleted; deletionPolicy {} keeps the backend data", key.str(), s.spec.deletion_policy);
  }
  auto done = co_await target_.deletion_done(s);
  if (!done.ok()) co_return target_failed(done.error());
  facts_.forget(key);
  co_return Outcome{};
}

}  // namespace stowage::engine
