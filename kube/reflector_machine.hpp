#pragma once
// client-go's reflector (list, then watch, then keep the cache in step) as a pure state machine.
//
// No I/O and no threads: the caller performs the actions the machine returns and reports what
// happened through the on_* inputs. Time comes from an injected clock and randomness from a seeded
// generator, so a test can script a server and expect exact actions and delays.
//
// Expected flow:
//   start() -> List{rv "0", limit 500} -> on_list_page()... -> Replace, Synced, Checkpoint, Watch{rv}
//   -> on_watch_opened() -> on_watch_event()... -> Apply/Checkpoint -> on_watch_ended() -> Watch{last rv} ...
//
// Guarantees:
// - At most one request (a List or a Watch) or one Wait is outstanding. An action List, Watch or Wait
//   supersedes whatever was outstanding: the caller drops an open watch when it gets one.
// - The store is only ever changed through ReplaceStore (the whole list, swapped in at once after its
//   last page, as kube-rs's store does) and ApplyEvent (one watch event, in stream order).
// - Synced comes once, the first time the store holds a complete state.
// - Every failure is followed by a Wait, never by an immediate retry of the same request, except the
//   documented fallbacks (one immediate relist from scratch when a list's resourceVersion or continue
//   token has expired) and a clean end of a healthy watch (re-watch at once, as the server intends).
// - Inputs that do not fit the current state (a stale timer, an event after the watch was given up)
//   are ignored and counted in ignored_inputs().
//
// Assumptions: the caller reports only on the request it was last asked for; once it drops a watch
// (because of a List, Watch or Wait action) nothing from that connection may reach the machine, since
// a late EOF from it would be taken for the end of the next watch. The caller arms a timer for each
// Wait and the watch's idle timeout, resetting the latter on every byte received.
//
// Rules (client-go tools/cache/reflector.go, with the choices made here):
// - List: rv "0" the first time (the watch cache may answer), "" (a quorum read) after Expired or
//   TooLarge until a list succeeds, else the last resourceVersion seen. Continue pages carry rv ""
//   (the API server refuses an rv with a continue token).
// - BOOKMARK only moves the resourceVersion. A clean end of the stream re-watches from the last one.
// - Expired/TooLarge, as an HTTP status or an ERROR event: relist with rv "" after the delay.
// - 429, 5xx, transport errors, an idle timeout, and a watch that ends within 1 s without any event:
//   re-watch from the last resourceVersion after the delay.
// - The idle timeout: a watch asks for bookmarks, so a healthy one hears from the API server about
//   once a minute even when nothing changes; no byte for watch_idle_timeout (90 s) means a stalled,
//   half-open connection (a hung server or load balancer), given up then rather than at
//   timeoutSeconds. The Wait that follows is `routine` (logged at info): the silence was the failure. Other failures of a watch (400, 401,
//   403, 404, ... or garbage in the stream): relist after the delay (404 may mean the CRD was
//   re-created, so the cache is rebuilt). A failed list is restarted from its first page.
// - The delay: the server's Retry-After when given (capped at 30 s), else the backoff: base 800 ms,
//   doubled after each failure up to 30 s, reset when the previous failure is more than 2 min old;
//   the delay is the base plus a jitter drawn from [0, base), i.e. in [d, 2d) as client-go's
//   wait.Jitter(d, 1.0). The cap bounds the base, so a delay stays below 60 s (client-go does the same).
//   A Retry-After also steps the backoff, so failures that follow it keep growing.
// - Resuming: with options.resume_resource_version set, start() watches from it instead of listing.
//   This is only correct when the caller has restored the store as it was at that resourceVersion.
//   Synced then comes with the first non-ERROR event or clean end of that watch (the server accepted
//   the resourceVersion); a 410 falls back to a full list.
//
// Randomness: every draw takes one output r of std::mt19937_64(seed): a watch timeout is
// min_watch_timeout + r % min_watch_timeout seconds, a jittered delay is d + r % d milliseconds.
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "common/result.hpp"
#include "kube/model.hpp"
#include "kube/watch_stream.hpp"

namespace stowage::kube {

using Millis = std::chrono::milliseconds;

struct ReflectorOptions {
  std::int64_t page_size = 500;
  std::chrono::seconds min_watch_timeout{300};  // timeoutSeconds is drawn from [min, 2 x min)
  // Give a watch up when no byte (an event or a bookmark) arrives for this long; never longer than
  // timeoutSeconds + idle_timeout_margin. 0: timeoutSeconds + idle_timeout_margin alone.
  Millis watch_idle_timeout{90'000};
  std::chrono::seconds idle_timeout_margin{5};
  Millis short_watch{1000};                     // a watch closing sooner without events is a failure
  Millis backoff_initial{800};
  Millis backoff_cap{30'000};
  Millis backoff_reset_after{120'000};
  Millis retry_after_cap{30'000};
  std::string resume_resource_version;  // non-empty: start by watching from here
  std::uint64_t seed = 0;
};

// Actions: what the caller does next.
struct ListRequest {
  std::string resource_version;  // "0", "" or a resourceVersion; "" on continue pages
  std::int64_t limit = 0;
  std::string continue_token;  // "" for the first page
  bool operator==(const ListRequest&) const = default;
};

struct WatchRequest {
  std::string resource_version;
  std::int64_t timeout_seconds = 0;  // the server closes the watch after this
  bool allow_watch_bookmarks = true;
  Millis idle_timeout{0};  // give the connection up when no byte arrives for this long
  bool operator==(const WatchRequest&) const = default;
};

struct Wait {  // then call on_timer()
  Millis duration{0};
  std::string reason;  // the failure, for the log: "watch failed: HTTP 503 (ServiceUnavailable)"
  bool routine = false;  // expected now and then and healed by the retry (an idle watch): info, not warn
  bool operator==(const Wait&) const = default;
};

struct ReplaceStore {  // the store becomes exactly these items
  std::vector<boost::json::value> items;
  std::string resource_version;
  bool operator==(const ReplaceStore&) const = default;
};

struct ApplyEvent {  // ADDED, MODIFIED or DELETED
  WatchEventType type = WatchEventType::Added;
  boost::json::value object;
  std::string resource_version;
  bool operator==(const ApplyEvent&) const = default;
};

struct Synced {  // the store holds a complete state for the first time
  bool operator==(const Synced&) const = default;
};

struct Checkpoint {  // the resourceVersion to persist for a later resume
  std::string resource_version;
  bool operator==(const Checkpoint&) const = default;
};

using ReflectorAction = std::variant<ListRequest, WatchRequest, Wait, ReplaceStore, ApplyEvent, Synced, Checkpoint>;
using ReflectorActions = std::vector<ReflectorAction>;

// Inputs.
struct ListPage {
  std::vector<boost::json::value> items;
  std::string resource_version;  // metadata.resourceVersion
  std::string continue_token;    // metadata.continue ("" on the last page)
};

// A list body (a *List object): items, metadata.resourceVersion, metadata.continue.
ParseResult<ListPage> parse_list_page(boost::json::value body);

struct RequestFailure {
  int http_status = 0;                              // 0: no HTTP response (connect, TLS, reset)
  std::optional<std::chrono::seconds> retry_after;  // the Retry-After header
  ApiStatus status;                                 // the Status in the body, when there was one
  std::string transport_error;                      // what went wrong when http_status is 0
  // The client's own sentence for the failure when it has one (it names the request and what to
  // fix, e.g. which credentials a 401 refused or the RBAC rule a 403 quotes); used in Wait reasons.
  std::string message;
};

class ReflectorMachine {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  enum class Phase { Idle, Listing, Watching, Waiting };

  ReflectorMachine(ReflectorOptions options, Clock clock);

  ReflectorActions start();
  ReflectorActions on_list_page(ListPage page);
  ReflectorActions on_list_failed(const RequestFailure& failure);
  ReflectorActions on_watch_opened();  // the watch answered 200; the body follows
  ReflectorActions on_watch_event(WatchEvent event);
  ReflectorActions on_watch_ended();  // the body ended cleanly (EOF between events)
  ReflectorActions on_watch_failed(const RequestFailure& failure);
  ReflectorActions on_watch_stream_error(const WatchStreamError& error);  // garbage or a truncated body
  ReflectorActions on_idle_timeout();  // no byte for the WatchRequest's idle_timeout
  ReflectorActions on_timer();

  Phase phase() const { return phase_; }
  bool synced() const { return synced_; }
  const std::string& resource_version() const { return last_rv_; }  // the last one seen ("" before any)
  std::uint64_t ignored_inputs() const { return ignored_; }

 private:
  enum class Next { Relist, Rewatch };

  ReflectorActions list_from_scratch();
  ReflectorActions watch();
  ReflectorActions fail(Next next, std::optional<Millis> retry_after, std::string reason);
  ReflectorActions ignore();
  std::string relist_resource_version() const;
  Millis step_backoff();
  void move_resource_version(const std::string& rv, ReflectorActions& actions);
  void mark_synced(ReflectorActions& actions);

  ReflectorOptions options_;
  Clock clock_;
  std::mt19937_64 rng_;
  Phase phase_ = Phase::Idle;

  std::string last_rv_;
  bool rv_unavailable_ = false;  // last_rv_ is compacted away (or ahead of the server): list with ""
  bool synced_ = false;
  std::uint64_t ignored_ = 0;

  // Backoff (client-go's exponentialBackoffManager).
  Millis backoff_base_;
  std::optional<std::chrono::steady_clock::time_point> last_failure_at_;

  // The list in flight.
  ListRequest list_request_;
  std::vector<boost::json::value> list_items_;
  std::string list_rv_;
  bool list_fell_back_ = false;  // the one immediate relist with "" has been used

  // The watch in flight.
  std::chrono::steady_clock::time_point watch_started_at_{};
  std::uint64_t watch_events_ = 0;
  Millis watch_idle_{0};  // the idle timeout it was asked with

  // What on_timer() starts.
  Next after_wait_ = Next::Relist;
};

}  // namespace stowage::kube
