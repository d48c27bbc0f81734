// The reflector state machine driven by scripted server answers: paging, the atomic replace,
// watch events, bookmarks, re-watch on EOF, every failure rule with its exact delay for the seed,
// backoff growth, cap and reset, idle timeouts, and resuming from a persisted resourceVersion.
#include "kube/reflector_machine.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <ostream>
#include <random>

namespace json = boost::json;
using namespace std::chrono_literals;

namespace stowage::kube {
// Readable actions in Catch's failure messages (found by ADL through the variant).
std::ostream& operator<<(std::ostream& os, const ReflectorAction& action) {
  struct Printer {
    std::ostream& os;
    void operator()(const ListRequest& a) {
      os << "List{rv=\"" << a.resource_version << "\", limit=" << a.limit << ", continue=\"" << a.continue_token
         << "\"}";
    }
    void operator()(const WatchRequest& a) {
      os << "Watch{rv=\"" << a.resource_version << "\", timeout=" << a.timeout_seconds
         << "s, bookmarks=" << a.allow_watch_bookmarks << ", idle=" << a.idle_timeout.count() << "ms}";
    }
    void operator()(const Wait& a) { os << "Wait{" << a.duration.count() << "ms, " << a.reason << "}"; }
    void operator()(const ReplaceStore& a) {
      os << "Replace{" << a.items.size() << " items, rv=\"" << a.resource_version << "\"}";
    }
    void operator()(const ApplyEvent& a) {
      os << "Apply{" << to_string(a.type) << ", " << json::serialize(a.object) << ", rv=\"" << a.resource_version
         << "\"}";
    }
    void operator()(const Synced&) { os << "Synced"; }
    void operator()(const Checkpoint& a) { os << "Checkpoint{\"" << a.resource_version << "\"}"; }
  };
  std::visit(Printer{os}, action);
  return os;
}
}  // namespace stowage::kube

using namespace stowage::kube;

namespace {

using Time = std::chrono::steady_clock::time_point;

// The machine's documented draws, replayed independently.
struct Draws {
  std::mt19937_64 rng;
  explicit Draws(std::uint64_t seed) : rng(seed) {}
  std::int64_t timeout() { return 300 + static_cast<std::int64_t>(rng() % 300); }
  Millis jitter(Millis d) {
    return d + Millis(static_cast<Millis::rep>(rng() % static_cast<std::uint64_t>(d.count())));
  }
};

json::value object(const std::string& name, const std::string& rv) {
  return json::value{{"metadata", {{"name", name}, {"resourceVersion", rv}}}};
}

WatchEvent event(WatchEventType type, const std::string& name, const std::string& rv) {
  WatchEvent e;
  e.type = type;
  e.object = object(name, rv);
  e.resource_version = rv;
  return e;
}

WatchEvent bookmark(const std::string& rv) {
  WatchEvent e;
  e.type = WatchEventType::Bookmark;
  e.object = json::value{{"kind", "BackupStorage"}, {"metadata", {{"resourceVersion", rv}}}};
  e.resource_version = rv;
  return e;
}

WatchEvent error_event(std::int64_t code, const std::string& reason, std::vector<std::string> causes = {},
                       std::int64_t retry_after = 0) {
  WatchEvent e;
  e.type = WatchEventType::Error;
  e.object = json::value{{"kind", "Status"}, {"code", code}, {"reason", reason}};
  e.status.code = code;
  e.status.reason = reason;
  e.status.cause_types = std::move(causes);
  e.status.retry_after_seconds = retry_after;
  return e;
}

RequestFailure http(int status, const std::string& reason = "", std::optional<std::chrono::seconds> retry_after = {}) {
  RequestFailure f;
  f.http_status = status;
  f.retry_after = retry_after;
  f.status.code = status;
  f.status.reason = reason;
  return f;
}

RequestFailure transport(const std::string& what) {
  RequestFailure f;
  f.transport_error = what;
  return f;
}

ListPage page(std::vector<json::value> items, const std::string& rv, const std::string& cont = "") {
  return ListPage{std::move(items), rv, cont};
}

// A machine with a fake clock, and the same draws replayed for the expectations.
struct Harness {
  Time now{std::chrono::hours(1000)};
  ReflectorOptions options;
  ReflectorMachine machine;
  Draws draws;

  explicit Harness(ReflectorOptions o = seeded(42)) : options(o), machine(o, [this] { return now; }), draws(o.seed) {}

  static ReflectorOptions seeded(std::uint64_t seed) {
    ReflectorOptions o;
    o.seed = seed;
    return o;
  }

  // The next Watch the machine should ask for (takes one draw): idle timeout 90 s by default.
  WatchRequest expected_watch(const std::string& rv) {
    std::int64_t t = draws.timeout();
    return WatchRequest{rv, t, true, 90s};
  }

  // List from "0" in one page and open the watch, as every test starts.
  void sync(std::vector<json::value> items, const std::string& rv) {
    REQUIRE(machine.start() == ReflectorActions{ListRequest{"0", 500, ""}});
    ReflectorActions got = machine.on_list_page(page(items, rv));
    CHECK(got == ReflectorActions{ReplaceStore{items, rv}, Synced{}, Checkpoint{rv}, expected_watch(rv)});
    CHECK(machine.on_watch_opened().empty());
  }
};

// A single Wait whose reason mentions `about`; returns its duration.
Millis wait_of(const ReflectorActions& actions, const std::string& about = "") {
  INFO("actions: " << ::Catch::Detail::stringify(actions));
  REQUIRE(actions.size() == 1);
  const Wait* wait = std::get_if<Wait>(&actions[0]);
  REQUIRE(wait);
  CHECK(wait->reason.find(about) != std::string::npos);
  return wait->duration;
}

}  // namespace

TEST_CASE("reflector: lists page by page, then replaces the store once, syncs and watches") {
  Harness h;
  CHECK(h.machine.phase() == ReflectorMachine::Phase::Idle);
  CHECK(h.machine.start() == ReflectorActions{ListRequest{"0", 500, ""}});
  CHECK(h.machine.phase() == ReflectorMachine::Phase::Listing);
  // Continue pages carry rv "" (the API server refuses an rv with a continue token).
  CHECK(h.machine.on_list_page(page({object("a", "3"), object("b", "4")}, "10", "c1")) ==
        ReflectorActions{ListRequest{"", 500, "c1"}});
  CHECK(h.machine.on_list_page(page({object("c", "5")}, "10", "c2")) == ReflectorActions{ListRequest{"", 500, "c2"}});
  CHECK_FALSE(h.machine.synced());
  ReflectorActions done = h.machine.on_list_page(page({object("d", "9")}, "10"));
  CHECK(done ==
        ReflectorActions{ReplaceStore{{object("a", "3"), object("b", "4"), object("c", "5"), object("d", "9")}, "10"},
                         Synced{}, Checkpoint{"10"}, h.expected_watch("10")});
  CHECK(h.machine.synced());
  CHECK(h.machine.resource_version() == "10");
  CHECK(h.machine.phase() == ReflectorMachine::Phase::Watching);
}

TEST_CASE("reflector: an empty list still replaces, syncs and watches") {
  Harness h;
  h.sync({}, "7");
  CHECK(h.machine.synced());
}

TEST_CASE("reflector: watch events are applied in order and move the resourceVersion") {
  Harness h;
  h.sync({object("a", "1")}, "10");
  CHECK(h.machine.on_watch_event(event(WatchEventType::Added, "b", "11")) ==
        ReflectorActions{ApplyEvent{WatchEventType::Added, object("b", "11"), "11"}, Checkpoint{"11"}});
  CHECK(h.machine.on_watch_event(event(WatchEventType::Modified, "a", "12")) ==
        ReflectorActions{ApplyEvent{WatchEventType::Modified, object("a", "12"), "12"}, Checkpoint{"12"}});
  CHECK(h.machine.on_watch_event(event(WatchEventType::Deleted, "b", "13")) ==
        ReflectorActions{ApplyEvent{WatchEventType::Deleted, object("b", "13"), "13"}, Checkpoint{"13"}});
  // An event without a resourceVersion is applied but does not move it.
  CHECK(h.machine.on_watch_event(event(WatchEventType::Modified, "a", "")) ==
        ReflectorActions{ApplyEvent{WatchEventType::Modified, object("a", ""), ""}});
  CHECK(h.machine.resource_version() == "13");
  CHECK(h.machine.ignored_inputs() == 0);
}

TEST_CASE("reflector: a bookmark only moves the resourceVersion") {
  Harness h;
  h.sync({}, "10");
  CHECK(h.machine.on_watch_event(bookmark("20")) == ReflectorActions{Checkpoint{"20"}});
  CHECK(h.machine.on_watch_event(bookmark("20")).empty());  // unchanged: nothing to persist
  CHECK(h.machine.resource_version() == "20");
  // The next watch starts from the bookmark.
  h.now += 400s;
  CHECK(h.machine.on_watch_ended() == ReflectorActions{h.expected_watch("20")});
}

TEST_CASE("reflector: a clean end re-watches at once from the last resourceVersion") {
  Harness h;
  h.sync({}, "10");
  CHECK(h.machine.on_watch_event(event(WatchEventType::Added, "a", "11")).size() == 2);
  h.now += 350s;
  CHECK(h.machine.on_watch_ended() == ReflectorActions{h.expected_watch("11")});  // no list, no Synced again
  h.now += 2s;
  CHECK(h.machine.on_watch_opened().empty());
  h.now += 500s;
  CHECK(h.machine.on_watch_ended() == ReflectorActions{h.expected_watch("11")});
}

TEST_CASE("reflector: watch timeouts are drawn from 300 to 599 s, the idle timeout is 90 s") {
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    Harness h(Harness::seeded(seed));
    REQUIRE(h.machine.start().size() == 1);
    ReflectorActions got = h.machine.on_list_page(page({}, "1"));
    const auto& watch = std::get<WatchRequest>(got.back());
    CHECK(watch.timeout_seconds >= 300);
    CHECK(watch.timeout_seconds < 600);
    CHECK(watch.idle_timeout == 90s);
    CHECK(watch.allow_watch_bookmarks);
  }
}

TEST_CASE("reflector: the idle timeout never outlasts timeoutSeconds plus the margin, 0 means that bound") {
  ReflectorOptions o = Harness::seeded(3);
  o.min_watch_timeout = 10s;  // timeoutSeconds in [10, 20)
  o.watch_idle_timeout = 60s;
  Harness longer(o);
  REQUIRE(longer.machine.start().size() == 1);
  auto watch = std::get<WatchRequest>(longer.machine.on_list_page(page({}, "1")).back());
  CHECK(watch.idle_timeout == std::chrono::seconds(watch.timeout_seconds) + 5s);
  o.watch_idle_timeout = 0s;
  Harness off(o);
  REQUIRE(off.machine.start().size() == 1);
  watch = std::get<WatchRequest>(off.machine.on_list_page(page({}, "1")).back());
  CHECK(watch.idle_timeout == std::chrono::seconds(watch.timeout_seconds) + 5s);
  o.watch_idle_timeout = 3s;
  Harness short_idle(o);
  REQUIRE(short_idle.machine.start().size() == 1);
  CHECK(std::get<WatchRequest>(short_idle.machine.on_list_page(page({}, "1")).back()).idle_timeout == 3s);
}

TEST_CASE("reflector: the documented draws for seed 42") {
  // Pinned so a change of the formula (or of the generator) shows up here. The values were checked
  // against an independent implementation of MT19937-64 (first output for seed 42: 13930160852258120406).
  Harness h;
  h.sync({}, "10");
  std::mt19937_64 rng(42);
  const std::int64_t first_timeout = 300 + static_cast<std::int64_t>(rng() % 300);
  const Millis first_delay = 800ms + Millis(rng() % 800);
  ReflectorActions failed = h.machine.on_watch_failed(http(500, "InternalError"));
  CHECK(wait_of(failed) == first_delay);
  CHECK(first_timeout == 306);
  CHECK(first_delay == 1224ms);
}

TEST_CASE("reflector: 410 as an ERROR event relists with an empty rv after the backoff") {
  Harness h;
  h.sync({object("a", "1")}, "10");
  CHECK(h.machine.on_watch_event(event(WatchEventType::Added, "b", "11")).size() == 2);
  const Millis delay = h.draws.jitter(800ms);
  CHECK(wait_of(h.machine.on_watch_event(error_event(410, "Expired")), "Expired") == delay);
  CHECK(h.machine.phase() == ReflectorMachine::Phase::Waiting);
  h.now += delay;
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  // No second Synced; the store is swapped for the fresh list.
  CHECK(h.machine.on_list_page(page({object("b", "30")}, "30")) ==
        ReflectorActions{ReplaceStore{{object("b", "30")}, "30"}, Checkpoint{"30"}, h.expected_watch("30")});
  // Once a list has succeeded, later relists use the last resourceVersion again.
  const Millis again = h.draws.jitter(1600ms);
  CHECK(wait_of(h.machine.on_watch_failed(http(403, "Forbidden")), "HTTP 403 (Forbidden)") == again);
  h.now += again;
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"30", 500, ""}});
}

TEST_CASE("reflector: 410 as an HTTP status, and reason Gone, relist with an empty rv") {
  for (RequestFailure failure : {http(410, "Expired"), http(410, ""), http(410, "Gone")}) {
    Harness h;
    h.sync({}, "10");
    const Millis delay = h.draws.jitter(800ms);
    CHECK(wait_of(h.machine.on_watch_failed(failure), "watch failed: HTTP 410") == delay);
    h.now += delay;
    CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  }
  Harness h;
  h.sync({}, "10");
  h.draws.jitter(800ms);
  CHECK(wait_of(h.machine.on_watch_event(error_event(410, "Gone"))) >= 800ms);
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
}

TEST_CASE("reflector: TooLarge on a watch waits the Retry-After, then relists with an empty rv") {
  Harness h;
  h.sync({}, "10");
  RequestFailure too_large = http(504, "Timeout", 1s);
  too_large.status.cause_types = {"ResourceVersionTooLarge"};
  CHECK(wait_of(h.machine.on_watch_failed(too_large), "HTTP 504") == 1000ms);
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});

  // The same as an ERROR event, Retry-After from the Status's details.
  Harness e;
  e.sync({}, "10");
  CHECK(wait_of(e.machine.on_watch_event(error_event(504, "Timeout", {"ResourceVersionTooLarge"}, 1))) == 1000ms);
  CHECK(e.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
}

TEST_CASE("reflector: an expired continue token restarts the list from scratch") {
  Harness h;
  CHECK(h.machine.start() == ReflectorActions{ListRequest{"0", 500, ""}});
  CHECK(h.machine.on_list_page(page({object("a", "1")}, "10", "c1")) == ReflectorActions{ListRequest{"", 500, "c1"}});
  // At once, from the first page, with rv "" (the snapshot is gone); the first page is dropped.
  CHECK(h.machine.on_list_failed(http(410, "Expired")) == ReflectorActions{ListRequest{"", 500, ""}});
  CHECK(h.machine.on_list_page(page({object("a", "2")}, "20", "d1")) == ReflectorActions{ListRequest{"", 500, "d1"}});
  // A second expiry in the same list waits for the backoff before starting over.
  const Millis delay = h.draws.jitter(800ms);
  CHECK(wait_of(h.machine.on_list_failed(http(410, "Expired")), "list failed: HTTP 410 (Expired)") == delay);
  h.now += delay;
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  CHECK(h.machine.on_list_page(page({object("a", "3")}, "30", "e1")) == ReflectorActions{ListRequest{"", 500, "e1"}});
  CHECK(h.machine.on_list_page(page({object("b", "4")}, "30")) ==
        ReflectorActions{ReplaceStore{{object("a", "3"), object("b", "4")}, "30"}, Synced{}, Checkpoint{"30"},
                         h.expected_watch("30")});
}

TEST_CASE("reflector: an expired list from an empty rv is not retried at once") {
  Harness h;
  h.sync({}, "10");
  h.draws.jitter(800ms);
  REQUIRE(wait_of(h.machine.on_watch_event(error_event(410, "Expired"))) > 0ms);
  REQUIRE(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  // A server that answers 410 to a quorum read would otherwise spin.
  const Millis delay = h.draws.jitter(1600ms);
  CHECK(wait_of(h.machine.on_list_failed(http(410, "Expired"))) == delay);
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
}

TEST_CASE("reflector: TooLarge on a list from a resourceVersion relists at once with an empty rv") {
  Harness h;
  h.sync({}, "10");
  const Millis delay = h.draws.jitter(800ms);
  CHECK(wait_of(h.machine.on_watch_stream_error(WatchStreamError{5, "garbage"}), "byte 5: garbage") == delay);
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"10", 500, ""}});
  RequestFailure too_large = http(504, "Timeout");
  too_large.status.message = "Too large resource version: 10, current: 5";
  CHECK(h.machine.on_list_failed(too_large) == ReflectorActions{ListRequest{"", 500, ""}});
}

TEST_CASE("reflector: 429 honours Retry-After, capped, then re-watches") {
  Harness h;
  h.sync({}, "10");
  CHECK(wait_of(h.machine.on_watch_failed(http(429, "TooManyRequests", 3s)), "HTTP 429 (TooManyRequests)") == 3000ms);
  h.now += 3s;
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  // Retry-After above the cap is capped at 30 s.
  h.now += 1s;
  CHECK(wait_of(h.machine.on_watch_failed(http(429, "TooManyRequests", 120s))) == 30'000ms);
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  // Retry-After 0 means nothing: the backoff applies (the third failure: base 3.2 s).
  h.now += 1s;
  CHECK(wait_of(h.machine.on_watch_failed(http(429, "TooManyRequests", 0s))) == h.draws.jitter(3200ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  // Without Retry-After: the backoff (fourth failure: 6.4 s).
  CHECK(wait_of(h.machine.on_watch_failed(http(429))) == h.draws.jitter(6400ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
}

TEST_CASE("reflector: 5xx backoff grows, is capped at 30 s, and resets after 2 min quiet") {
  Harness h;
  h.sync({}, "10");
  const std::vector<Millis> bases = {800ms, 1600ms, 3200ms, 6400ms, 12'800ms, 25'600ms, 30'000ms, 30'000ms, 30'000ms};
  Time last_failure = h.now;
  for (Millis base : bases) {
    last_failure = h.now;
    const Millis expected = h.draws.jitter(base);
    const Millis got = wait_of(h.machine.on_watch_failed(http(503, "ServiceUnavailable")), "HTTP 503");
    CHECK(got == expected);
    CHECK(got >= base);
    CHECK(got < 2 * base);
    h.now += got;
    CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
    h.now += 100ms;
  }
  // 2 min after the last failure is not quiet enough: still capped.
  h.now = last_failure + 120s;
  last_failure = h.now;
  Millis capped = wait_of(h.machine.on_watch_failed(http(500)));
  CHECK(capped == h.draws.jitter(30'000ms));
  h.now += capped;
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  // More than 2 min after the last failure: back to 800 ms.
  h.now = last_failure + 120s + 1ms;
  CHECK(wait_of(h.machine.on_watch_failed(http(502))) == h.draws.jitter(800ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  h.now += 1s;
  CHECK(wait_of(h.machine.on_watch_failed(http(500))) == h.draws.jitter(1600ms));
}

TEST_CASE("reflector: 5xx as an ERROR event re-watches, other ERROR events relist") {
  Harness h;
  h.sync({}, "10");
  CHECK(wait_of(h.machine.on_watch_event(error_event(500, "InternalError")), "InternalError") == h.draws.jitter(800ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  CHECK(wait_of(h.machine.on_watch_event(error_event(400, "BadRequest"))) == h.draws.jitter(1600ms));
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"10", 500, ""}});
}

TEST_CASE("reflector: transport errors re-watch, 4xx relist, garbage relists") {
  Harness h;
  h.sync({}, "10");
  CHECK(wait_of(h.machine.on_watch_failed(transport("connection reset")), "transport error: connection reset") ==
        h.draws.jitter(800ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  CHECK(wait_of(h.machine.on_watch_failed(http(404, "NotFound"))) == h.draws.jitter(1600ms));
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"10", 500, ""}});
}

TEST_CASE("reflector: list failures back off and restart the list from its first page") {
  Harness h;
  CHECK(h.machine.start() == ReflectorActions{ListRequest{"0", 500, ""}});
  CHECK(h.machine.on_list_page(page({object("a", "1")}, "10", "c1")) == ReflectorActions{ListRequest{"", 500, "c1"}});
  CHECK(wait_of(h.machine.on_list_failed(http(500, "InternalError")), "list failed: HTTP 500") ==
        h.draws.jitter(800ms));
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"0", 500, ""}});  // nothing synced yet: "0" again
  CHECK(wait_of(h.machine.on_list_failed(transport("connection refused"))) == h.draws.jitter(1600ms));
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"0", 500, ""}});
  CHECK(wait_of(h.machine.on_list_failed(http(429, "TooManyRequests", 2s))) == 2000ms);
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"0", 500, ""}});
  CHECK(h.machine.on_list_page(page({object("b", "2")}, "20")) ==
        ReflectorActions{ReplaceStore{{object("b", "2")}, "20"}, Synced{}, Checkpoint{"20"}, h.expected_watch("20")});
}

TEST_CASE("reflector: a watch that ends within 1 s without events counts as an error") {
  Harness h;
  h.sync({}, "10");
  h.now += 500ms;
  CHECK(wait_of(h.machine.on_watch_ended(), "closed after 500 ms without any event") == h.draws.jitter(800ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});  // re-watch, no relist
  // Measured from when the watch opened.
  h.now += 5s;
  CHECK(h.machine.on_watch_opened().empty());
  h.now += 999ms;
  CHECK(wait_of(h.machine.on_watch_ended()) == h.draws.jitter(1600ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  // One second is long enough.
  CHECK(h.machine.on_watch_opened().empty());
  h.now += 1s;
  CHECK(h.machine.on_watch_ended() == ReflectorActions{h.expected_watch("10")});
  // A short watch that delivered an event (even a bookmark) is fine.
  CHECK(h.machine.on_watch_opened().empty());
  CHECK(h.machine.on_watch_event(bookmark("11")) == ReflectorActions{Checkpoint{"11"}});
  h.now += 10ms;
  CHECK(h.machine.on_watch_ended() == ReflectorActions{h.expected_watch("11")});
}

TEST_CASE("reflector: an idle timeout gives the watch up and re-watches from the last resourceVersion") {
  Harness h;
  REQUIRE(h.machine.start().size() == 1);
  ReflectorActions synced = h.machine.on_list_page(page({}, "10"));
  const WatchRequest watch = std::get<WatchRequest>(synced.back());
  CHECK(watch == h.expected_watch("10"));
  CHECK(watch.idle_timeout == 90s);
  CHECK(h.machine.on_watch_opened().empty());
  CHECK(h.machine.on_watch_event(event(WatchEventType::Added, "a", "11")).size() == 2);
  CHECK(h.machine.on_watch_event(bookmark("12")) == ReflectorActions{Checkpoint{"12"}});
  h.now += watch.idle_timeout;
  ReflectorActions idle = h.machine.on_idle_timeout();
  CHECK(wait_of(idle, "no byte on the watch for 90 s") == h.draws.jitter(800ms));
  const Wait& wait = std::get<Wait>(idle.front());
  CHECK(wait.routine);  // logged at info: the silence was the failure, and the retry heals it
  CHECK_THAT(wait.reason, Catch::Contains("stalled or half-open") && Catch::Contains("resourceVersion 12"));
  // Not a relist: the watch resumes where the last bookmark left it.
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("12")});
  // Other failures stay warnings.
  const ReflectorActions failed = h.machine.on_watch_failed(http(503));
  REQUIRE(failed.size() == 1);
  CHECK_FALSE(std::get<Wait>(failed.front()).routine);
}

TEST_CASE("reflector: inputs that do not fit the state are ignored") {
  Harness h;
  CHECK(h.machine.on_timer().empty());
  CHECK(h.machine.on_watch_event(bookmark("5")).empty());
  CHECK(h.machine.on_list_page(page({}, "1")).empty());
  CHECK(h.machine.ignored_inputs() == 3);
  h.sync({}, "10");
  CHECK(h.machine.start().empty());
  CHECK(h.machine.on_timer().empty());
  CHECK(h.machine.on_list_failed(http(500)).empty());
  CHECK(h.machine.ignored_inputs() == 6);
  REQUIRE(wait_of(h.machine.on_watch_failed(http(500))) > 0ms);
  h.draws.jitter(800ms);
  // Whatever the abandoned watch still reports is stale.
  CHECK(h.machine.on_watch_event(event(WatchEventType::Added, "a", "11")).empty());
  CHECK(h.machine.on_watch_ended().empty());
  CHECK(h.machine.on_idle_timeout().empty());
  CHECK(h.machine.on_watch_stream_error(WatchStreamError{1, "x"}).empty());
  CHECK(h.machine.on_watch_opened().empty());
  CHECK(h.machine.ignored_inputs() == 11);
  CHECK(h.machine.resource_version() == "10");
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
}

TEST_CASE("reflector: resuming from a persisted resourceVersion watches first") {
  ReflectorOptions options = Harness::seeded(9);
  options.resume_resource_version = "77";
  Harness h(options);
  CHECK(h.machine.start() == ReflectorActions{h.expected_watch("77")});
  CHECK(h.machine.resource_version() == "77");
  CHECK(h.machine.on_watch_opened().empty());
  CHECK_FALSE(h.machine.synced());
  // The server accepted the resourceVersion: synced with the first event.
  CHECK(h.machine.on_watch_event(event(WatchEventType::Modified, "a", "80")) ==
        ReflectorActions{ApplyEvent{WatchEventType::Modified, object("a", "80"), "80"}, Synced{}, Checkpoint{"80"}});
  CHECK(h.machine.on_watch_event(bookmark("90")) == ReflectorActions{Checkpoint{"90"}});
}

TEST_CASE("reflector: a resumed watch that ends cleanly is synced too") {
  ReflectorOptions options = Harness::seeded(9);
  options.resume_resource_version = "77";
  Harness h(options);
  CHECK(h.machine.start() == ReflectorActions{h.expected_watch("77")});
  // A short empty watch does not prove anything yet.
  CHECK(wait_of(h.machine.on_watch_ended()) == h.draws.jitter(800ms));
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("77")});
  h.now += 300s;
  CHECK(h.machine.on_watch_ended() == ReflectorActions{Synced{}, h.expected_watch("77")});
}

TEST_CASE("reflector: a resumed watch falls back to a full list on 410") {
  ReflectorOptions options = Harness::seeded(9);
  options.resume_resource_version = "77";
  Harness h(options);
  CHECK(h.machine.start() == ReflectorActions{h.expected_watch("77")});
  CHECK(h.machine.on_watch_opened().empty());
  const Millis delay = h.draws.jitter(800ms);
  CHECK(wait_of(h.machine.on_watch_event(error_event(410, "Expired"))) == delay);
  h.now += delay;
  CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  CHECK(h.machine.on_list_page(page({object("a", "200")}, "200")) ==
        ReflectorActions{ReplaceStore{{object("a", "200")}, "200"}, Synced{}, Checkpoint{"200"},
                         h.expected_watch("200")});
}

TEST_CASE("reflector: a resumed watch refused with HTTP 410 or TooLarge lists with an empty rv") {
  ReflectorOptions options = Harness::seeded(3);
  options.resume_resource_version = "77";
  {
    Harness h(options);
    CHECK(h.machine.start() == ReflectorActions{h.expected_watch("77")});
    CHECK(wait_of(h.machine.on_watch_failed(http(410, "Gone"))) == h.draws.jitter(800ms));
    CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  }
  {
    Harness h(options);
    CHECK(h.machine.start() == ReflectorActions{h.expected_watch("77")});
    RequestFailure too_large = http(504, "Timeout", 1s);
    too_large.status.cause_types = {"ResourceVersionTooLarge"};
    CHECK(wait_of(h.machine.on_watch_failed(too_large)) == 1000ms);
    CHECK(h.machine.on_timer() == ReflectorActions{ListRequest{"", 500, ""}});
  }
  {
    // Other failures keep the resumed resourceVersion: a 503 re-watches from it.
    Harness h(options);
    CHECK(h.machine.start() == ReflectorActions{h.expected_watch("77")});
    CHECK(wait_of(h.machine.on_watch_failed(http(503))) == h.draws.jitter(800ms));
    CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("77")});
    CHECK_FALSE(h.machine.synced());
  }
}

TEST_CASE("reflector: the Retry-After of a failed request may come from its Status body") {
  Harness h;
  h.sync({}, "10");
  RequestFailure busy = http(503, "ServiceUnavailable");
  busy.status.retry_after_seconds = 4;
  CHECK(wait_of(h.machine.on_watch_failed(busy)) == 4000ms);
}

TEST_CASE("reflector: a huge Retry-After from the server waits the cap, not a wrapped-around delay") {
  // 18446744073709552 s * 1000 overflows int64 and used to wrap to 384 ms.
  constexpr std::int64_t kHuge = 18'446'744'073'709'552;
  Harness h;
  h.sync({}, "10");
  RequestFailure busy = http(503, "ServiceUnavailable");
  busy.status.retry_after_seconds = kHuge;
  CHECK(wait_of(h.machine.on_watch_failed(busy)) == 30'000ms);
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  CHECK(wait_of(h.machine.on_watch_event(error_event(429, "TooManyRequests", {}, kHuge))) == 30'000ms);
  CHECK(h.machine.on_timer() == ReflectorActions{h.expected_watch("10")});
  CHECK(wait_of(h.machine.on_watch_failed(http(429, "", std::chrono::seconds(kHuge)))) == 30'000ms);
}

TEST_CASE("reflector: parse_list_page") {
  auto ok = parse_list_page(json::parse(
      R"({"kind":"BackupStorageList","metadata":{"resourceVersion":"55","continue":"tok","remainingItemCount":3},)"
      R"("items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})"));
  REQUIRE(ok.ok());
  CHECK(ok.value().resource_version == "55");
  CHECK(ok.value().continue_token == "tok");
  REQUIRE(ok.value().items.size() == 2);
  CHECK(ok.value().items[1].at("metadata").at("name") == "b");

  auto last = parse_list_page(json::parse(R"({"metadata":{"resourceVersion":"56"},"items":null})"));
  REQUIRE(last.ok());
  CHECK(last.value().items.empty());
  CHECK(last.value().continue_token.empty());

  CHECK(parse_list_page(json::parse("[]")).error().to_string() == "a list response must be a JSON object");
  CHECK(parse_list_page(json::parse(R"({"items":{}})")).error().to_string() == "items: expected an array");
  CHECK(parse_list_page(json::parse(R"({"metadata":[]})")).error().to_string() == "metadata: expected an object");
  CHECK(parse_list_page(json::parse(R"({"metadata":{"continue":5}})")).error().to_string() ==
        "metadata.continue: expected a string");
}
