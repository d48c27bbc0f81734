#include "kube/event_recorder.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "common/backoff.hpp"
#include "kube/api.hpp"

namespace stowage::kube {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t kNoteLimit = 1024;     // events.k8s.io validation: note at most 1 KiB
constexpr std::size_t kFieldLimit = 128;     // reportingController/Instance, action, reason
constexpr std::size_t kNameLimit = 253;      // a DNS subdomain
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr auto kWaitToken = asio::as_tuple(asio::use_awaitable);

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return n;
}

std::int64_t unix_nanos(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

// The isomorphism key (client-go getKey). reportingController and reportingInstance belong to it
// too, but they are fixed for one recorder, so they are left out of the comparison.
struct Key {
  ObjectReference regarding;
  EventType type = EventType::Normal;
  std::string reason;
  std::string action;
  auto operator<=>(const Key&) const = default;
};

// One series: what the server has been sent for a key, and what it has not yet.
// Everything but count/last_observed/written_count/queued is fixed once the entry exists.
struct Entry {
  Key key;
  std::string note;  // the first occurrence's (client-go keeps it for the whole series)
  std::string name;
  std::string namespace_;
  WallClock::time_point event_time;
  // Guarded by Impl::mutex:
  std::int64_t count = 1;
  WallClock::time_point last_observed;
  std::int64_t written_count = 0;  // 0 = no Event on the server yet (as far as we know)
  bool queued = false;
};

// What one write sends: the entry's counters when the write (or its retry) starts.
struct Snapshot {
  std::int64_t count = 1;
  WallClock::time_point last_observed;
  bool exists = false;  // the Event was created: PATCH its series
};

struct Outcome {
  bool done = false;
  std::optional<ApiError> error;  // set when !done
  bool retry = false;             // worth another attempt
};

Outcome written() { return Outcome{true, std::nullopt, false}; }
Outcome failure(ApiError error) {
  bool retry = error.transient();
  return Outcome{false, std::move(error), retry};
}

std::string describe(const Entry& e) {
  return e.namespace_ + "/" + e.name + " (reason " + e.key.reason + ")";
}

}  // namespace

const char* to_string(EventType type) { return type == EventType::Warning ? "Warning" : "Normal"; }

std::string rfc3339_micro(WallClock::time_point t) {
  auto micros = std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::int64_t secs = micros / 1'000'000, frac = micros % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%06lldZ", date, static_cast<long long>(frac));
  return out;
}

std::string truncate_utf8(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_sequence_length(text, i);
    std::string_view piece = n ? text.substr(i, n) : std::string_view(kReplacement);
    i += n ? n : 1;
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
  }
  return out;
}

struct EventRecorder::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, Api& client, EventRecorderOptions opts)
      : executor(std::move(ex)),
        api(client),
        options(std::move(opts)),
        backoff(options.retry_base, options.retry_cap, std::chrono::milliseconds(10),
                options.retry_seed ? options.retry_seed : std::random_device{}()),
        wake(executor),
        retry_timer(executor) {
    if (!options.now) options.now = [] { return WallClock::now(); };
    if (options.reporting_instance.empty()) options.reporting_instance = host_name();
    options.reporting_controller = truncate_utf8(options.reporting_controller, kFieldLimit);
    options.reporting_instance = truncate_utf8(options.reporting_instance, kFieldLimit);
    options.queue_capacity = std::max<std::size_t>(options.queue_capacity, 1);
    options.max_series = std::max<std::size_t>(options.max_series, 1);
    options.max_attempts = std::max(options.max_attempts, 1);
  }

  asio::any_io_executor executor;
  Api& api;
  EventRecorderOptions options;
  FullJitterBackoff backoff;  // drain loop only
  asio::steady_timer wake;         // the idle drain loop waits on it; cancel() wakes it
  asio::steady_timer retry_timer;  // the backoff between attempts

  mutable std::mutex mutex;  // guards everything down to the counters
  std::map<Key, std::shared_ptr<Entry>> series;
  std::deque<std::shared_ptr<Entry>> queue;
  bool stopped = false;
  bool idle = false;         // the drain loop waits on `wake`
  bool wake_posted = false;  // a wake-up is on its way to the executor
  bool busy = false;         // a write is in flight (or being retried)
  std::uint64_t overflow_drops = 0;  // since the queue last became full
  WallClock::time_point last_prune{};
  std::int64_t last_name_nanos = 0;

  std::atomic<std::uint64_t> created{0}, patched{0}, failed{0}, dropped{0};

  // Executor only.
  std::vector<asio::steady_timer*> flush_waiters;
  std::set<std::string> warned;  // "<http status> <reason>" already logged at warn

  // ------------------------------------------------------------------------------------ recording

  void record(Key key, std::string note) {
    const auto now = options.now();
    bool post_wake = false;
    {
      std::lock_guard lock(mutex);
      if (stopped) {
        ++dropped;
        return;
      }
      if (now - last_prune >= options.series_window / 4 || now < last_prune) prune(now);
      std::shared_ptr<Entry> entry;
      auto it = series.find(key);
      if (it != series.end() && now - it->second->last_observed <= options.series_window) {
        entry = it->second;
        entry->count += 1;
        entry->last_observed = now;
      } else {
        entry = make_entry(std::move(key), note, now);
        if (it != series.end()) {
          it->second = entry;  // a new series; the old entry lives on in the queue if it is still there
        } else {
          make_room(now);
          series.emplace(entry->key, entry);
        }
      }
      if (!entry->queued) enqueue(entry);
      if (idle && !wake_posted) post_wake = wake_posted = true;
    }
    if (post_wake) {
      asio::post(executor, [self = shared_from_this()] {
        {
          std::lock_guard lock(self->mutex);
          self->wake_posted = false;
        }
        self->wake.cancel();
      });
    }
  }

  std::shared_ptr<Entry> make_entry(Key key, std::string_view note, WallClock::time_point now) {
    auto e = std::make_shared<Entry>();
    // Unique names even when the clock stands still (tests) or steps back.
    std::int64_t nanos = std::max(unix_nanos(now), last_name_nanos + 1);
    last_name_nanos = nanos;
    char hex[24];
    std::snprintf(hex, sizeof hex, ".%llx", static_cast<unsigned long long>(nanos));
    e->name = key.regarding.name.substr(0, kNameLimit - std::string_view(hex).size()) + hex;
    e->namespace_ = key.regarding.namespace_.empty() ? "default" : key.regarding.namespace_;
    e->key = std::move(key);
    e->note = truncate_utf8(note, kNoteLimit);
    e->event_time = now;
    e->last_observed = now;
    return e;
  }

  // Forgets keys quiet for longer than the window. Queued entries are still written: the queue holds them.
  void prune(WallClock::time_point now) {
    last_prune = now;
    std::erase_if(series, [&](const auto& kv) { return now - kv.second->last_observed > options.series_window; });
  }

  void make_room(WallClock::time_point now) {
    if (series.size() < options.max_series) return;
    prune(now);
    if (series.size() < options.max_series) return;
    // Still full of live series: forget the quietest eighth at once (their next repeats start new
    // Events), so that the scan is paid once per max_series/8 new keys, not on every one.
    std::vector<std::pair<WallClock::time_point, const Key*>> by_age;
    by_age.reserve(series.size());
    for (const auto& [key, entry] : series) by_age.emplace_back(entry->last_observed, &key);
    std::size_t evict = std::max<std::size_t>(1, options.max_series / 8);
    evict = std::min(evict, by_age.size());
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(evict - 1), by_age.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Key> victims;
    victims.reserve(evict);
    for (std::size_t i = 0; i < evict; ++i) victims.push_back(*by_age[i].second);
    for (const auto& k : victims) series.erase(k);
  }

  void enqueue(const std::shared_ptr<Entry>& entry) {
    if (queue.size() >= options.queue_capacity) {
      auto oldest = queue.front();
      queue.pop_front();
      oldest->queued = false;
      ++dropped;
      if (overflow_drops++ == 0)
        spdlog::warn("event queue full ({} pending writes): dropping the oldest, Event {}; more drops are "
                     "counted until the queue drains",
                     options.queue_capacity, describe(*oldest));
    }
    entry->queued = true;
    queue.push_back(entry);
  }

  // ------------------------------------------------------------------------------------ draining

  static asio::awaitable<void> drain(std::shared_ptr<Impl> self) {
    for (;;) {
      std::shared_ptr<Entry> entry;
      Snapshot snapshot;
      bool stop = false;
      std::uint64_t overflowed = 0;
      {
        std::lock_guard lock(self->mutex);
        stop = self->stopped;
        if (!stop && !self->queue.empty()) {
          entry = self->queue.front();
          self->queue.pop_front();
          entry->queued = false;
          snapshot = take_snapshot(*entry);
          self->busy = true;
          self->idle = false;
        } else {
          self->busy = false;
          self->idle = !stop;
          overflowed = std::exchange(self->overflow_drops, 0);
        }
      }
      if (stop) {
        self->notify_flushers();
        co_return;
      }
      if (!entry) {
        if (overflowed) spdlog::info("event queue drained; {} Event writes were dropped while it was full", overflowed);
        self->notify_flushers();
        self->wake.expires_at(asio::steady_timer::time_point::max());
        auto [ec] = co_await self->wake.async_wait(kWaitToken);
        (void)ec;  // cancelled = woken
        continue;
      }
      co_await self->write(std::move(entry), snapshot);
    }
  }

  static Snapshot take_snapshot(const Entry& e) {
    return Snapshot{e.count, e.last_observed, e.written_count > 0};
  }

  // One entry's write with retries; it never fails, it counts.
  asio::awaitable<void> write(std::shared_ptr<Entry> entry, Snapshot snapshot) {
    for (int attempt = 0;; ++attempt) {
      if (snapshot.exists && snapshot.count <= snapshot_written(*entry)) co_return;  // a retry already carried it
      Outcome outcome = co_await write_once(*entry, snapshot);
      if (outcome.done) {
        std::lock_guard lock(mutex);
        entry->written_count = std::max(entry->written_count, snapshot.count);
        co_return;
      }
      const ApiError& error = *outcome.error;
      ++failed;
      if (!outcome.retry) {
        report_rejection(*entry, error);
        ++dropped;
        co_return;
      }
      if (attempt + 1 >= options.max_attempts || is_stopped()) {
        spdlog::warn("Event {} dropped after {} attempts: {}", describe(*entry), attempt + 1, error.message);
        ++dropped;
        co_return;
      }
      auto delay = backoff.next(attempt);
      if (error.retry_after)
        delay = std::max(delay, std::min<std::chrono::milliseconds>(*error.retry_after, options.retry_cap));
      spdlog::debug("Event {} not written (attempt {}), retrying in {} ms: {}", describe(*entry), attempt + 1,
                    delay.count(), error.message);
      retry_timer.expires_after(delay);
      auto [ec] = co_await retry_timer.async_wait(kWaitToken);
      if (ec || is_stopped()) {
        ++dropped;
        co_return;
      }
      std::lock_guard lock(mutex);
      snapshot = take_snapshot(*entry);  // a retry carries the latest count
    }
  }

  std::int64_t snapshot_written(const Entry& e) {
    std::lock_guard lock(mutex);
    return e.written_count;
  }

  bool is_stopped() {
    std::lock_guard lock(mutex);
    return stopped;
  }

  std::string collection(const Entry& e) const {
    return "/apis/events.k8s.io/v1/namespaces/" + e.namespace_ + "/events";
  }

  // One request (two when a PATCH finds the Event gone and it is created again).
  asio::awaitable<Outcome> write_once(const Entry& e, Snapshot s) {
    std::string events = collection(e);
    if (!s.exists) {
      json::value body = event_body(e, s);
      auto result = co_await api.create(events, std::move(body));
      // AlreadyExists on a first create: an earlier attempt did create it (its answer was lost).
      if (result.ok() || result.error().http_status == 409) {
        ++created;
        co_return written();
      }
      co_return failure(std::move(result.error()));
    }
    std::string path = events + "/" + e.name;
    json::value change = series_patch(s);
    auto patch_result = co_await api.patch(path, kMergePatch, std::move(change));
    if (patch_result.ok()) {
      ++patched;
      co_return written();
    }
    if (patch_result.error().http_status != 404) co_return failure(std::move(patch_result.error()));
    // The Event expired (1 h TTL) or was deleted while the series goes on: create it again, series included.
    spdlog::debug("Event {} is gone from the server; creating it again", describe(e));
    json::value body = event_body(e, s);
    auto recreated = co_await api.create(events, std::move(body));
    if (recreated.ok()) {
      ++created;
      co_return written();
    }
    Outcome outcome = failure(std::move(recreated.error()));
    // Re-created by someone else between our PATCH and POST: another round (a PATCH) is right, as client-go.
    if (outcome.error->http_status == 409) outcome.retry = true;
    co_return outcome;
  }

  json::value event_body(const Entry& e, const Snapshot& s) const {
    const ObjectReference& r = e.key.regarding;
    json::object regarding;
    auto put = [](json::object& o, const char* key, const std::string& value) {
      if (!value.empty()) o[key] = value;  // Go's omitempty
    };
    put(regarding, "apiVersion", r.api_version);
    put(regarding, "kind", r.kind);
    put(regarding, "namespace", r.namespace_);
    put(regarding, "name", r.name);
    put(regarding, "uid", r.uid);
    put(regarding, "resourceVersion", r.resource_version);
    json::object event{{"apiVersion", "events.k8s.io/v1"},
                       {"kind", "Event"},
                       {"metadata", {{"name", e.name}, {"namespace", e.namespace_}}},
                       {"eventTime", rfc3339_micro(e.event_time)},
                       {"reportingController", options.reporting_controller},
                       {"reportingInstance", options.reporting_instance},
                       {"action", e.key.action},
                       {"reason", e.key.reason},
                       {"regarding", std::move(regarding)},
                       {"type", to_string(e.key.type)}};
    put(event, "note", e.note);
    if (s.count >= 2) event["series"] = series_value(s);
    return event;
  }

  static json::value series_value(const Snapshot& s) {
    return json::object{{"count", s.count}, {"lastObservedTime", rfc3339_micro(s.last_observed)}};
  }

  static json::value series_patch(const Snapshot& s) { return json::object{{"series", series_value(s)}}; }

  // A permanent refusal: warn once per status and reason, with the fix when it is RBAC.
  void report_rejection(const Entry& e, const ApiError& error) {
    std::string tag = std::to_string(error.http_status) + " " + error.status.reason;
    bool first = warned.insert(tag).second;
    auto level = first ? spdlog::level::warn : spdlog::level::debug;
    if (error.http_status == 403) {
      spdlog::log(level,
                  "Events cannot be written: {}; grant create,patch on events.events.k8s.io to stowage's service "
                  "account (Event {} dropped; further refusals are logged at debug)",
                  error.message, describe(e));
    } else if (error.http_status == 401) {
      spdlog::log(level, "Events cannot be written: the API server refused the credentials: {} (Event {} dropped)",
                  error.message, describe(e));
    } else {
      spdlog::log(level, "the API server rejected Event {}, which is dropped: {}", describe(e), error.message);
    }
  }

  // ------------------------------------------------------------------------------------ flushing

  bool drained() {
    std::lock_guard lock(mutex);
    return stopped || (queue.empty() && !busy);
  }

  void notify_flushers() {
    for (auto* timer : flush_waiters) timer->cancel();
  }

  static asio::awaitable<void> flush(std::shared_ptr<Impl> self) {
    while (!self->drained()) {
      asio::steady_timer signal(self->executor, asio::steady_timer::time_point::max());
      self->flush_waiters.push_back(&signal);
      // Off the list however the wait ends: a cancelled (throwing) wait or a destroyed frame
      // must not leave notify_flushers() a dangling timer.
      struct Unlist {
        Impl& impl;
        asio::steady_timer* timer;
        ~Unlist() { std::erase(impl.flush_waiters, timer); }
      } unlist{*self, &signal};
      auto [ec] = co_await signal.async_wait(kWaitToken);
      (void)ec;
    }
  }

  void stop() {
    {
      std::lock_guard lock(mutex);
      if (stopped) return;
      stopped = true;
      dropped += queue.size();
      for (auto& e : queue) e->queued = false;
      queue.clear();
    }
    wake.cancel();
    retry_timer.cancel();
    notify_flushers();
  }
};

EventRecorder::EventRecorder(asio::any_io_executor executor, Api& api, EventRecorderOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), api, std::move(options))) {
  std::weak_ptr<Impl> weak = impl_;
  asio::co_spawn(impl_->executor, Impl::drain(impl_), [weak](std::exception_ptr ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("event recorder: the write loop failed, no more Events are written: {}", e.what());
    } catch (...) {
      spdlog::error("event recorder: the write loop failed, no more Events are written");
    }
    if (auto self = weak.lock()) self->stop();
  });
}

EventRecorder::~EventRecorder() { impl_->stop(); }

void EventRecorder::record(ObjectReference regarding, EventType type, std::string reason, std::string action,
                           std::string note) noexcept {
  try {
    // Cut before the key is made, so that repeats of an over-long reason still find their series.
    impl_->record(Key{std::move(regarding), type, truncate_utf8(reason, kFieldLimit), truncate_utf8(action, kFieldLimit)},
                  std::move(note));
  } catch (...) {  // bad_alloc: an Event is not worth more than that
    ++impl_->dropped;
  }
}

asio::awaitable<void> EventRecorder::async_flush() { return Impl::flush(impl_); }

void EventRecorder::stop() { impl_->stop(); }

EventRecorderStats EventRecorder::stats() const {
  return EventRecorderStats{impl_->created.load(), impl_->patched.load(), impl_->failed.load(),
                            impl_->dropped.load()};
}

std::size_t EventRecorder::pending() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->queue.size();
}

std::size_t EventRecorder::cached_series() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->series.size();
}

}  // namespace stowage::kube
