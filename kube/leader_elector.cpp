// The elector's loop: client-go's tryAcquireOrRenew on the reactor, a watchdog timer for the renew
// deadline, and the release.
#include "kube/leader_elector.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <exception>
#include <random>
#include <stdexcept>
#include <unistd.h>

#include "common/crypto.hpp"
#include "kube/event_recorder.hpp"  // rfc3339_micro: metav1.MicroTime

namespace stowage::kube {

namespace asio = boost::asio;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr double kJitterFactor = 1.2;  // client-go's JitterFactor: waits of retry x [1, 2.2)
constexpr int kReleaseRounds = 3;      // release attempts that may end in a 409

const json::object* spec_of(const json::value& lease) {
  const auto* o = lease.if_object();
  const auto* s = o ? o->if_contains("spec") : nullptr;
  return s ? s->if_object() : nullptr;
}

std::string holder_of(const json::value& lease) {
  const auto* spec = spec_of(lease);
  const auto* h = spec ? spec->if_contains("holderIdentity") : nullptr;
  return h && h->is_string() ? std::string(h->get_string()) : std::string();
}

std::int64_t int_at(const json::object* spec, const char* field) {
  const auto* v = spec ? spec->if_contains(field) : nullptr;
  if (v && v->is_int64()) return v->get_int64();
  if (v && v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  return 0;
}

// leaseDurationSeconds is whole seconds: round up, so others never think the lease shorter.
std::int64_t whole_seconds(milliseconds d) { return (d.count() + 999) / 1000; }

// The spec object of a Lease, made when missing.
json::object& spec_in(json::value& lease) {
  json::value& spec = lease.as_object()["spec"];
  if (!spec.is_object()) spec = json::object();
  return spec.as_object();
}

}  // namespace

std::optional<std::string> validate(const LeaderElectionOptions& o) {
  if (o.namespace_.empty()) return std::string("leader election: the Lease's namespace is empty");
  if (o.name.empty()) return std::string("leader election: the Lease's name is empty");
  if (o.retry_period <= milliseconds(0)) return std::string("leader election: the retry period must be positive");
  if (o.lease_duration < milliseconds(1000))
    return "leader election: the lease duration (" + std::to_string(o.lease_duration.count()) +
           " ms) must be at least 1 s (leaseDurationSeconds is whole seconds)";
  if (o.lease_duration <= o.renew_deadline)
    return "leader election: the lease duration (" + std::to_string(o.lease_duration.count()) +
           " ms) must be greater than the renew deadline (" + std::to_string(o.renew_deadline.count()) + " ms)";
  if (o.renew_deadline.count() * 10 <= o.retry_period.count() * 12)
    return "leader election: the renew deadline (" + std::to_string(o.renew_deadline.count()) +
           " ms) must be greater than 1.2 x the retry period (" + std::to_string(o.retry_period.count()) + " ms)";
  return std::nullopt;
}

std::string default_leader_identity() {
  char host[256] = {};
  std::string name = ::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "stowage";
  return name + "_" + crypto::hex(crypto::random_bytes(8));
}

struct LeaderElector::Impl : std::enable_shared_from_this<Impl> {
  enum class Outcome { Acquired, HeldByOther, Failed };

  Impl(asio::any_io_executor ex, Api& client, LeaderElectionOptions o, LeaderCallbacks cb,
       LeaderElectionClocks c)
      : executor(ex),
        api(client),
        options(std::move(o)),
        callbacks(std::move(cb)),
        clocks(std::move(c)),
        collection("/apis/coordination.k8s.io/v1/namespaces/" + options.namespace_ + "/leases"),
        path(collection + "/" + options.name),
        label("leader election " + options.namespace_ + "/" + options.name),
        pause(ex),
        watchdog(ex),
        rng(options.seed != 0 ? options.seed : std::random_device{}()) {}

  asio::any_io_executor executor;
  Api& api;
  const LeaderElectionOptions options;
  LeaderCallbacks callbacks;
  LeaderElectionClocks clocks;
  const std::string collection;  // /apis/coordination.k8s.io/v1/namespaces/NS/leases
  const std::string path;        // collection/NAME
  const std::string label;       // "leader election NS/NAME", for logs
  asio::steady_timer pause;      // between attempts; stop() cancels it
  asio::steady_timer watchdog;   // fires at leading_until
  std::mt19937_64 rng;

  bool alive = true;  // false once the LeaderElector is destroyed: no callbacks, no more requests
  bool started = false;
  bool stopping = false;
  std::atomic<bool> leading{false};
  SteadyClock::time_point leading_until{};

  json::value observed;           // the Lease last read or written (null: none yet)
  std::string observed_spec;      // its spec, serialized, to notice changes
  SteadyClock::time_point observed_time{};  // local time the spec last changed
  std::string reported_leader;    // the holder last handed to on_new_leader

  bool forbidden_logged = false;  // a 403 was logged at error in this episode of failures
  LeaderElectionStatus stats;

  SteadyClock::time_point now() const { return clocks.steady(); }

  milliseconds jittered_retry() {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    double factor = 1.0 + kJitterFactor * unit(rng);
    return milliseconds(static_cast<milliseconds::rep>(static_cast<double>(options.retry_period.count()) * factor));
  }

  // Callbacks are the owner's code: an exception from one is logged, never let into the loop.
  template <class F, class... Args>
  void invoke(const char* name, const F& callback, const Args&... args) {
    if (!callback || !alive) return;
    try {
      callback(args...);
    } catch (const std::exception& e) {
      spdlog::error("{}: {} threw: {}", label, name, e.what());
    } catch (...) {
      spdlog::error("{}: {} threw", label, name);
    }
  }

  // client-go's isLeaseValid: observed_time + the record's leaseDurationSeconds is still ahead.
  bool lease_valid(SteadyClock::time_point t) const {
    std::int64_t seconds = int_at(spec_of(observed), "leaseDurationSeconds");
    milliseconds duration = seconds > 0 ? milliseconds(seconds * 1000) : options.lease_duration;
    return observed_time + duration > t;
  }

  // Remembers a Lease read (`written` false) or written by us (true: observed_time restarts, as
  // client-go's setObservedRecord). observed_time moves only when the spec changed: a holder that
  // stops renewing leaves it still.
  void observe(json::value lease, bool written) {
    const json::object* spec = spec_of(lease);
    std::string raw = spec ? json::serialize(*spec) : std::string();
    if (written || observed.is_null() || raw != observed_spec) {
      observed_spec = std::move(raw);
      observed_time = now();
    }
    observed = std::move(lease);
    std::string holder = holder_of(observed);
    if (holder == reported_leader) return;
    reported_leader = holder;
    if (holder.empty()) return;
    spdlog::info("{}: the leader is {}", label, holder);
    invoke("on_new_leader", callbacks.on_new_leader, holder);
  }

  void request_failed(const ApiError& e) {
    ++stats.failures;
    stats.last_error = e.message;
    if (e.http_status == 409) {
      spdlog::debug("{}: {} (another candidate wrote first)", label, e.message);
    } else if (e.http_status == 403) {
      if (forbidden_logged) {
        spdlog::debug("{}: {}", label, e.message);
        return;
      }
      forbidden_logged = true;
      spdlog::error("{}: {}; grant get,create,update on leases.coordination.k8s.io in namespace {} to this "
                    "controller's service account (retrying every {} ms; logged once until a request succeeds)",
                    label, e.message, options.namespace_, options.retry_period.count());
    } else {
      spdlog::warn("{}: {}; next attempt in about {} ms", label, e.message, options.retry_period.count());
    }
  }

  void request_succeeded() {
    forbidden_logged = false;
    stats.last_error.clear();
  }

  // The record client-go writes: we hold it from now; acquireTime and leaseTransitions carry on
  // while the record already named us, else this is a transition.
  void write_record(json::object& spec, bool holding) {
    std::string stamp = rfc3339_micro(clocks.wall());
    std::int64_t transitions = int_at(&spec, "leaseTransitions");
    spec["holderIdentity"] = options.identity;
    spec["leaseDurationSeconds"] = whole_seconds(options.lease_duration);
    spec["renewTime"] = stamp;
    if (!holding || !spec.contains("acquireTime")) spec["acquireTime"] = stamp;
    spec["leaseTransitions"] = holding ? transitions : transitions + 1;
  }

  json::value new_lease() {
    json::value lease = json::object{{"apiVersion", "coordination.k8s.io/v1"},
                                     {"kind", "Lease"},
                                     {"metadata", {{"name", options.name}, {"namespace", options.namespace_}}}};
    json::object& spec = spec_in(lease);
    spec["leaseTransitions"] = 0;
    write_record(spec, true);
    return lease;
  }

  // Leadership lasts until `until` (the attempt's start + renew_deadline); the watchdog ends it then.
  void extend(SteadyClock::time_point until) {
    if (until <= now()) {
      spdlog::warn("{}: the lease was written only after the renew deadline ({} ms from the attempt's start); "
                   "not leading on it", label, options.renew_deadline.count());
      return;
    }
    leading_until = until;
    arm_watchdog();
    if (leading) return;
    leading = true;
    ++stats.acquisitions;
    spdlog::info("{}: started leading as {}", label, options.identity);
    invoke("on_started_leading", callbacks.on_started_leading);
  }

  void arm_watchdog() {
    watchdog.expires_after(leading_until - now());
    watchdog.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || !self->alive || !self->leading) return;
      if (self->now() < self->leading_until) {  // a clock that runs apart from the timer's
        self->arm_watchdog();
        return;
      }
      self->lose("the lease was not renewed within the renew deadline (" +
                     std::to_string(self->options.renew_deadline.count()) + " ms)",
                 spdlog::level::warn);
    });
  }

  void lose(const std::string& reason, spdlog::level::level_enum level) {
    if (!leading) return;
    leading = false;
    watchdog.cancel();
    ++stats.losses;
    spdlog::log(level, "{}: stopped leading: {}", label, reason);
    invoke("on_stopped_leading", callbacks.on_stopped_leading);
  }

  // Stops the loop (at its next step) and ends leadership (on_stopped_leading when leading).
  void stop_campaigning() {
    if (stopping) return;
    stopping = true;
    pause.cancel();
    lose("stopped", spdlog::level::info);
  }

  bool record_names_us() const { return holder_of(observed) == options.identity; }

  static asio::awaitable<Outcome> create(std::shared_ptr<Impl> self) {
    json::value lease = self->new_lease();
    spdlog::info("{}: no Lease yet; creating it with {} as the holder", self->label, self->options.identity);
    auto made = co_await self->api.create(self->collection, std::move(lease));
    if (!self->alive || self->stopping) co_return Outcome::Failed;
    if (!made.ok()) {
      self->request_failed(made.error());
      co_return Outcome::Failed;
    }
    self->request_succeeded();
    self->observe(std::move(made.value()), true);
    co_return Outcome::Acquired;
  }

  // client-go's tryAcquireOrRenew.
  static asio::awaitable<Outcome> attempt(std::shared_ptr<Impl> self) {
    ++self->stats.attempts;
    auto got = co_await self->api.get(self->path);
    if (!self->alive || self->stopping) co_return Outcome::Failed;
    if (!got.ok() && got.error().http_status == 404) {
      Outcome created = co_await create(self);
      co_return created;
    }
    if (!got.ok()) {
      self->request_failed(got.error());
      co_return Outcome::Failed;
    }
    self->request_succeeded();
    if (!got.value().is_object()) {
      ApiError e;
      e.message = "get " + self->path + ": the answer is not an object";
      self->request_failed(e);
      co_return Outcome::Failed;
    }
    self->observe(std::move(got.value()), false);
    if (!self->alive || self->stopping) co_return Outcome::Failed;  // on_new_leader may have stopped us

    const std::string holder = holder_of(self->observed);
    const bool holding = holder == self->options.identity;
    if (!holder.empty() && !holding && self->lease_valid(self->now())) {
      spdlog::debug("{}: held by {}, not expired", self->label, holder);
      co_return Outcome::HeldByOther;
    }
    if (!holding)
      spdlog::info("{}: taking over the lease from {}", self->label,
                   holder.empty() ? std::string("no holder (released)") : holder + " (expired)");
    json::value desired = self->observed;
    self->write_record(spec_in(desired), holding);
    auto put = co_await self->api.replace(self->path, std::move(desired));
    // After stop() a release may be racing: its result decides, not this write's.
    if (!self->alive || self->stopping) co_return Outcome::Failed;
    if (!put.ok()) {
      self->request_failed(put.error());
      co_return Outcome::Failed;
    }
    self->request_succeeded();
    self->observe(std::move(put.value()), true);
    co_return Outcome::Acquired;
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    while (self->alive && !self->stopping) {
      const SteadyClock::time_point started = self->now();
      Outcome outcome = co_await attempt(self);
      if (!self->alive || self->stopping) co_return;
      if (outcome == Outcome::Acquired) {
        self->extend(started + self->options.renew_deadline);
      } else if (outcome == Outcome::HeldByOther) {
        self->lose("the lease is held by " + holder_of(self->observed) + " now", spdlog::level::warn);
      }
      if (!self->alive || self->stopping) co_return;  // a callback may have stopped us
      const milliseconds wait = self->leading ? self->options.retry_period : self->jittered_retry();
      self->pause.expires_after(wait);
      auto [ec] = co_await self->pause.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;
    }
  }

  // Writes the released record while the last one observed names us; a 409 reads the Lease again.
  static asio::awaitable<Result<Ok, ApiError>> release(std::shared_ptr<Impl> self) {
    std::optional<ApiError> conflict;
    for (int round = 0; round < kReleaseRounds; ++round) {
      if (!self->record_names_us()) co_return Ok{};
      json::value lease = self->observed;
      json::object& spec = spec_in(lease);
      std::string stamp = rfc3339_micro(self->clocks.wall());
      spec["holderIdentity"] = "";
      spec["leaseDurationSeconds"] = 1;
      spec["acquireTime"] = stamp;
      spec["renewTime"] = stamp;
      auto put = co_await self->api.replace(self->path, std::move(lease));
      if (put.ok()) {
        self->observe(std::move(put.value()), true);
        spdlog::info("{}: released the lease", self->label);
        co_return Ok{};
      }
      if (put.error().http_status != 409) {
        spdlog::warn("{}: could not release the lease: {}; others take over once it expires", self->label,
                     put.error().message);
        co_return Err(put.error());
      }
      conflict = put.error();
      auto got = co_await self->api.get(self->path);
      if (!got.ok() && got.error().http_status == 404) co_return Ok{};
      if (!got.ok()) {
        spdlog::warn("{}: could not release the lease: {}; others take over once it expires", self->label,
                     got.error().message);
        co_return Err(got.error());
      }
      self->observe(std::move(got.value()), false);
    }
    spdlog::warn("{}: could not release the lease: {}; others take over once it expires", self->label,
                 conflict->message);
    co_return Err(*conflict);
  }
};

LeaderElector::LeaderElector(asio::any_io_executor executor, Api& api, LeaderElectionOptions options,
                             LeaderCallbacks callbacks, LeaderElectionClocks clocks) {
  if (options.identity.empty()) options.identity = default_leader_identity();
  if (auto problem = validate(options)) throw std::invalid_argument(*problem);
  impl_ = std::make_shared<Impl>(std::move(executor), api, std::move(options), std::move(callbacks),
                                 std::move(clocks));
}

LeaderElector::~LeaderElector() {
  impl_->alive = false;
  impl_->stopping = true;
  impl_->leading = false;
  impl_->pause.cancel();
  impl_->watchdog.cancel();
}

void LeaderElector::start() {
  Impl& i = *impl_;
  if (i.started || i.stopping) return;
  i.started = true;
  spdlog::info("{}: campaigning as {} (lease {} ms, renew deadline {} ms, retry {} ms)", i.label, i.options.identity,
               i.options.lease_duration.count(), i.options.renew_deadline.count(), i.options.retry_period.count());
  std::weak_ptr<Impl> weak = impl_;
  auto stopped = [weak] {
    auto self = weak.lock();
    return !self || !self->alive || self->stopping;
  };
  asio::co_spawn(i.executor, Impl::run(impl_),
                 common::loop_completion(i.label + " loop", std::move(stopped), i.options.liveness));
}

void LeaderElector::stop() {
  Impl& i = *impl_;
  if (i.stopping) return;
  i.stop_campaigning();
  if (!i.options.release_on_cancel || !i.record_names_us()) return;
  asio::co_spawn(i.executor, Impl::release(impl_), [label = i.label](std::exception_ptr ep, Result<Ok, ApiError>) {
    if (!ep) return;  // the outcome is logged by release()
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("{}: the release stopped by an internal error: {}", label, e.what());
    } catch (...) {
      spdlog::error("{}: the release stopped by an internal error", label);
    }
  });
}

asio::awaitable<Result<Ok, ApiError>> LeaderElector::async_release() {
  std::shared_ptr<Impl> self = impl_;  // the elector may be gone when the release completes
  self->stop_campaigning();
  co_return co_await Impl::release(self);
}

bool LeaderElector::is_leader() const { return impl_->leading; }

std::string LeaderElector::leader_identity() const { return holder_of(impl_->observed); }

const std::string& LeaderElector::identity() const { return impl_->options.identity; }

const LeaderElectionOptions& LeaderElector::options() const { return impl_->options; }

LeaderElectionStatus LeaderElector::status() const {
  LeaderElectionStatus s = impl_->stats;
  s.leading = impl_->leading;
  s.leader = holder_of(impl_->observed);
  return s;
}

}  // namespace stowage::kube
