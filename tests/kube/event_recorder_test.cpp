// EventRecorder against the test API server (tests/apiserver/apiserver.py) over TLS: the Event's fields
// as ApiClient and the real kubectl read them back, series aggregation and its window, coalescing of
// repeats while a write is in flight, retries of a 500 burst, a 403 dropped with one warning, a full
// queue, and re-creation after a 404. The wall clock is injected; faults come from /__control.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/http_client.hpp"
#include "common/time_format.hpp"
#include "kube/api_client.hpp"
#include "kube/event_recorder.hpp"
#include "support/api_server.hpp"
#include "support/log_capture.hpp"

using namespace stowage;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
using kube::EventRecorder;
using kube::EventType;
using kube::ObjectReference;

namespace {

const std::string kToken = "event-token-3f9a";
const std::string kEvents = "/apis/events.k8s.io/v1/namespaces/ns1/events";

// Runs `op` on `io` until it completes (the recorder's loop never lets io.run() return on its own);
// fails the test after `limit`.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> op, std::chrono::seconds limit = 60s) {
  std::optional<T> out;
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(io, std::move(op), [&](std::exception_ptr ep, T value) {
    error = ep;
    out = std::move(value);
    done = true;
    io.stop();
  });
  asio::steady_timer guard(io, limit);
  guard.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  io.restart();
  io.run();
  guard.cancel();
  REQUIRE(done);
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}

asio::awaitable<bool> flushed(EventRecorder& recorder) {
  co_await recorder.async_flush();
  co_return true;
}

std::string str(const json::value& v, std::initializer_list<const char*> keys) {
  const json::value* cur = &v;
  for (const char* k : keys) {
    if (!cur->is_object()) return "";
    auto* next = cur->as_object().if_contains(k);
    if (!next) return "";
    cur = next;
  }
  return cur->is_string() ? std::string(cur->as_string()) : "";
}

std::int64_t series_count(const json::value& event) {
  auto* series = event.as_object().if_contains("series");
  if (!series) return 0;
  return series->as_object().at("count").to_number<std::int64_t>();
}

std::string hex_nanos(WallClock::time_point t) {
  char buf[32];
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(nanos));
  return buf;
}

ObjectReference storage_ref(const std::string& name = "s3-storage", const std::string& rv = "42") {
  return ObjectReference{"storage.kubestash.com/v1alpha1", "BackupStorage", "ns1", name, "uid-" + name, rv};
}

struct Fixture {
  test_support::TestApiServer server;
  asio::io_context io;
  http::Client http{io.get_executor()};
  kube::ApiClient api;
  // 2026-11-26T17:00:00.123456Z, moved by hand.
  WallClock::time_point now = *parse_rfc3339("2026-11-26T17:00:00Z") + 123456us;

  explicit Fixture(const std::string& name)
      : server(test_support::fresh_temp_dir("events-" + name), kToken), api(http, config()) {}

  kube::ClientConfig config() const { return server.client_config(); }

  kube::EventRecorderOptions options() {
    kube::EventRecorderOptions o;
    o.reporting_instance = "stowage-0";
    o.retry_base = 10ms;
    o.retry_cap = 100ms;
    o.max_attempts = 4;
    o.retry_seed = 7;
    o.now = [this] { return now; };
    return o;
  }

  // The test server's control and stats endpoints (no token needed).
  json::value server_call(const std::string& method, const std::string& target, const json::value& body) {
    http::Request r{method, target, {{"Content-Type", "application/json"}}, body.is_null() ? "" : json::serialize(body)};
    auto origin = http::Url::parse(server.url()).value();
    auto res = run(io, http.send(origin, http::TlsSettings(server.certs.ca_pem()), r));
    REQUIRE(res.ok());
    REQUIRE(res.value().status == 200);
    return json::parse(res.value().body);
  }
  void control(const json::value& body) { server_call("POST", "/__control", body); }
  std::int64_t requests(const std::string& verb_and_path) {
    auto stats = server_call("GET", "/__stats", nullptr);
    auto* n = stats.at("requests_by_path").as_object().if_contains(verb_and_path);
    return n ? n->to_number<std::int64_t>() : 0;
  }

  void flush(EventRecorder& recorder) { REQUIRE(run(io, flushed(recorder))); }

  std::vector<json::value> events(const std::string& ns = "ns1") {
    auto listed = run(io, api.list("/apis/events.k8s.io/v1/namespaces/" + ns + "/events"));
    REQUIRE(listed.ok());
    std::vector<json::value> out;
    for (const auto& item : listed.value().at("items").as_array()) out.push_back(item);
    return out;
  }

  json::value only_event(const std::string& ns = "ns1") {
    auto all = events(ns);
    REQUIRE(all.size() == 1);
    return all.front();
  }
};

using test_support::LogCapture;

}  // namespace

TEST_CASE("one record writes one Event with every field, as ApiClient and kubectl read it") {
  Fixture f("one");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  recorder.record(storage_ref(), EventType::Warning, "BackendUnreachable", "Reconcile", "bucket unreachable: timeout");
  f.flush(recorder);

  auto stats = recorder.stats();
  CHECK(stats.created == 1);
  CHECK(stats.patched == 0);
  CHECK(stats.failed == 0);
  CHECK(stats.dropped == 0);

  const std::string name = "s3-storage." + hex_nanos(f.now);
  auto check = [&](const json::value& e) {
    CHECK(str(e, {"metadata", "name"}) == name);
    CHECK(str(e, {"metadata", "namespace"}) == "ns1");
    CHECK(str(e, {"eventTime"}) == "2026-11-26T17:00:00.123456Z");
    CHECK(str(e, {"reportingController"}) == "stowage");
    CHECK(str(e, {"reportingInstance"}) == "stowage-0");
    CHECK(str(e, {"action"}) == "Reconcile");
    CHECK(str(e, {"reason"}) == "BackendUnreachable");
    CHECK(str(e, {"note"}) == "bucket unreachable: timeout");
    CHECK(str(e, {"type"}) == "Warning");
    CHECK(str(e, {"regarding", "apiVersion"}) == "storage.kubestash.com/v1alpha1");
    CHECK(str(e, {"regarding", "kind"}) == "BackupStorage");
    CHECK(str(e, {"regarding", "namespace"}) == "ns1");
    CHECK(str(e, {"regarding", "name"}) == "s3-storage");
    CHECK(str(e, {"regarding", "uid"}) == "uid-s3-storage");
    CHECK(str(e, {"regarding", "resourceVersion"}) == "42");
    CHECK(e.as_object().if_contains("series") == nullptr);
  };
  check(f.only_event());

  f.server.write_kubeconfig("ns1");
  auto [rc, out] = f.server.kubectl("get events.events.k8s.io -n ns1 -o json");
  INFO(out);
  REQUIRE(rc == 0);
  auto listed = json::parse(out);
  REQUIRE(listed.at("items").as_array().size() == 1);
  check(listed.at("items").as_array().at(0));
  CHECK(f.requests("create " + kEvents) == 1);
}

TEST_CASE("repeats patch one Event's series, and repeats during a write in flight coalesce into one PATCH") {
  Fixture f("series");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  // The create takes 1.5 s; four repeats arrive while it is in flight.
  f.control(json::value{{"action", "delay"}, {"ms", 1500}, {"path", "/events"}, {"verb", "create"}});
  auto scenario = [&]() -> asio::awaitable<bool> {
    recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "first note");
    asio::steady_timer timer(f.io, 150ms);
    co_await timer.async_wait(asio::use_awaitable);
    for (int i = 2; i <= 5; ++i) {
      f.now += 1s;
      recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "note " + std::to_string(i));
    }
    co_await recorder.async_flush();
    co_return true;
  };
  auto first_round = scenario();
  REQUIRE(run(f.io, std::move(first_round)));

  auto event = f.only_event();
  CHECK(series_count(event) == 5);
  CHECK(str(event, {"series", "lastObservedTime"}) == "2026-11-26T17:00:04.123456Z");
  CHECK(str(event, {"note"}) == "first note");  // the note is not part of the key: the series keeps the first
  CHECK(str(event, {"eventTime"}) == "2026-11-26T17:00:00.123456Z");
  const std::string name = str(event, {"metadata", "name"});
  CHECK(recorder.stats().created == 1);
  CHECK(recorder.stats().patched == 1);
  CHECK(f.requests("create " + kEvents) == 1);
  CHECK(f.requests("patch " + kEvents + "/" + name) == 1);

  // Five more before the loop runs at all: one PATCH with the latest count.
  for (int i = 0; i < 5; ++i) {
    f.now += 10s;
    recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "again");
  }
  f.flush(recorder);
  event = f.only_event();
  CHECK(series_count(event) == 10);
  CHECK(str(event, {"series", "lastObservedTime"}) == "2026-11-26T17:00:54.123456Z");
  CHECK(recorder.stats().patched == 2);
  CHECK(f.requests("patch " + kEvents + "/" + name) == 2);
  CHECK(recorder.stats().failed == 0);
  CHECK(recorder.stats().dropped == 0);
}

TEST_CASE("a different reason, type or object version is a different Event, cluster-scoped ones go to default") {
  Fixture f("keys");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.now += 1ms;
  recorder.record(storage_ref(), EventType::Normal, "NotReady", "Reconcile", "bucket gone");
  f.now += 1ms;
  recorder.record(storage_ref(), EventType::Warning, "Ready", "Reconcile", "odd");
  f.now += 1ms;
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok again");  // repeat of the first
  f.now += 1ms;
  // client-go's key holds the whole regarding reference: a new resourceVersion starts a new series.
  recorder.record(storage_ref("s3-storage", "43"), EventType::Normal, "Ready", "Reconcile", "ok");
  ObjectReference cluster_scoped{"v1", "Namespace", "", "ns1", "uid-ns1", ""};
  recorder.record(cluster_scoped, EventType::Normal, "Adopted", "Scan", "namespace scanned");
  f.flush(recorder);

  auto events = f.events();
  REQUIRE(events.size() == 4);
  std::multiset<std::string> seen;
  for (const auto& e : events)
    seen.insert(str(e, {"reason"}) + "/" + str(e, {"type"}) + "/" + str(e, {"regarding", "resourceVersion"}) + "/" +
                std::to_string(series_count(e)));
  CHECK(seen == std::multiset<std::string>{"Ready/Normal/42/2", "NotReady/Normal/42/0", "Ready/Warning/42/0",
                                           "Ready/Normal/43/0"});
  auto in_default = f.only_event("default");
  CHECK(str(in_default, {"regarding", "kind"}) == "Namespace");
  CHECK(in_default.at("regarding").as_object().if_contains("namespace") == nullptr);
  CHECK(str(in_default, {"metadata", "name"}).rfind("ns1.", 0) == 0);
  CHECK(recorder.stats().created == 5);
  CHECK(recorder.stats().patched == 0);  // the repeat came before the first write: the create carried the series
  CHECK(recorder.cached_series() == 5);
}

TEST_CASE("a repeat after six quiet minutes creates a new Event and old keys are forgotten") {
  Fixture f("window");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  const auto t0 = f.now;
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  recorder.record(storage_ref("other"), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  CHECK(recorder.cached_series() == 2);

  f.now = t0 + 5min;  // within six minutes of the last one: the series goes on
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  CHECK(recorder.stats().patched == 1);

  f.now = t0 + 5min + 6min;  // exactly six minutes after the last: still the same series
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  CHECK(recorder.stats().patched == 2);
  CHECK(recorder.stats().created == 2);

  f.now = t0 + 5min + 12min + 1s;  // six minutes and a second of quiet: a new Event
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  CHECK(recorder.stats().created == 3);
  CHECK(recorder.stats().patched == 2);
  // "other" has been quiet for 17 minutes: forgotten, and the old series was replaced.
  CHECK(recorder.cached_series() == 1);

  std::vector<std::int64_t> counts;
  for (const auto& e : f.events()) {
    if (str(e, {"regarding", "name"}) != "s3-storage") continue;
    counts.push_back(series_count(e));
    if (series_count(e) == 0) CHECK(str(e, {"eventTime"}) == rfc3339(t0 + 17min + 1s).substr(0, 19) + ".123456Z");
  }
  std::sort(counts.begin(), counts.end());
  CHECK(counts == std::vector<std::int64_t>{0, 3});
}

TEST_CASE("a burst of 500s is retried until the Event is written, and an outage drops it after the last try") {
  Fixture f("retry");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  f.control(json::value{{"action", "fail"}, {"code", 500}, {"count", 3}, {"path", "/events"}, {"verb", "create"}});
  recorder.record(storage_ref(), EventType::Warning, "BackendUnreachable", "Reconcile", "timeout");
  f.flush(recorder);
  CHECK(recorder.stats().created == 1);
  CHECK(recorder.stats().failed == 3);
  CHECK(recorder.stats().dropped == 0);
  CHECK(f.requests("create " + kEvents) == 4);
  CHECK(str(f.only_event(), {"reason"}) == "BackendUnreachable");

  // An outage longer than the attempts (Retry-After 1 s is capped by retry_cap): dropped, counted.
  f.control(json::value{{"action", "fail"}, {"code", 503}, {"count", -1}, {"retry_after", 1}, {"path", "/events"}});
  LogCapture logs;
  auto started = std::chrono::steady_clock::now();
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(recorder.stats().failed == 3 + 4);
  CHECK(recorder.stats().dropped == 1);
  CHECK(recorder.stats().created == 1);
  CHECK(logs.count("warning", "dropped after 4 attempts") == 1);
  f.control(json::value{{"action", "clear_faults"}});
  CHECK(f.events().size() == 1);
}

TEST_CASE("a 403 drops the Event, warns once naming the RBAC fix, and logs neither token nor note") {
  Fixture f("forbidden");
  LogCapture logs;
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  const std::string rbac = "events.events.k8s.io is forbidden: User \"system:serviceaccount:stowage:stowage\" "
                           "cannot create resource \"events\" in API group \"events.k8s.io\" in the namespace \"ns1\"";
  f.control(json::value{{"action", "fail"}, {"code", 403}, {"count", -1}, {"path", "/events"}, {"message", rbac}});
  recorder.record(storage_ref(), EventType::Warning, "BackendUnreachable", "Reconcile", "note-with-detail-51");
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "note-with-detail-52");
  f.flush(recorder);
  CHECK(recorder.stats().created == 0);
  CHECK(recorder.stats().failed == 2);
  CHECK(recorder.stats().dropped == 2);
  f.now += 1s;
  recorder.record(storage_ref(), EventType::Warning, "BackendUnreachable", "Reconcile", "note-with-detail-53");
  f.flush(recorder);
  CHECK(recorder.stats().failed == 3);
  CHECK(recorder.stats().dropped == 3);
  CHECK(f.requests("create " + kEvents) == 3);  // a 403 is not retried

  CHECK(logs.count("warning", "grant create,patch on events.events.k8s.io") == 1);
  CHECK(logs.count("warning", rbac) == 1);
  CHECK(logs.count("debug", "grant create,patch on events.events.k8s.io") == 2);
  CHECK_FALSE(logs.mentions(kToken));
  CHECK_FALSE(logs.mentions("note-with-detail"));

  // With the rights back, the next repeat creates the Event and counts every occurrence.
  f.control(json::value{{"action", "clear_faults"}});
  f.now += 1s;
  recorder.record(storage_ref(), EventType::Warning, "BackendUnreachable", "Reconcile", "note-with-detail-54");
  f.flush(recorder);
  CHECK(recorder.stats().created == 1);
  auto event = f.only_event();
  CHECK(str(event, {"reason"}) == "BackendUnreachable");
  CHECK(series_count(event) == 3);
  CHECK(str(event, {"note"}) == "note-with-detail-51");
}

TEST_CASE("a full queue drops the oldest pending writes, and stop abandons what is queued") {
  Fixture f("full");
  LogCapture logs;
  auto options = f.options();
  options.queue_capacity = 3;
  EventRecorder recorder(f.io.get_executor(), f.api, options);
  for (int i = 0; i < 5; ++i) {
    f.now += 1ms;
    recorder.record(storage_ref(), EventType::Normal, "Reason" + std::to_string(i), "Reconcile", "n");
  }
  // A repeat of a queued key takes no second place in the queue.
  recorder.record(storage_ref(), EventType::Normal, "Reason4", "Reconcile", "n");
  CHECK(recorder.pending() == 3);
  CHECK(recorder.stats().dropped == 2);
  f.flush(recorder);
  CHECK(recorder.stats().created == 3);
  std::set<std::string> reasons;
  for (const auto& e : f.events()) reasons.insert(str(e, {"reason"}));
  CHECK(reasons == std::set<std::string>{"Reason2", "Reason3", "Reason4"});
  CHECK(logs.count("warning", "event queue full (3 pending writes)") == 1);
  CHECK(logs.count("info", "2 Event writes were dropped") == 1);

  recorder.record(storage_ref(), EventType::Normal, "Late", "Reconcile", "n");
  recorder.stop();
  f.flush(recorder);  // returns at once once stopped
  CHECK(recorder.stats().dropped == 3);
  recorder.record(storage_ref(), EventType::Normal, "AfterStop", "Reconcile", "n");
  CHECK(recorder.stats().dropped == 4);
  CHECK(f.events().size() == 3);
}

TEST_CASE("a deleted Event is re-created with its series when the PATCH gets a 404") {
  Fixture f("recreate");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  const std::string name = str(f.only_event(), {"metadata", "name"});
  REQUIRE(run(f.io, f.api.remove(kEvents + "/" + name)).ok());
  REQUIRE(f.events().empty());

  f.now += 1min;
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  auto event = f.only_event();
  CHECK(str(event, {"metadata", "name"}) == name);
  CHECK(series_count(event) == 2);
  CHECK(str(event, {"series", "lastObservedTime"}) == "2026-11-26T17:01:00.123456Z");
  CHECK(recorder.stats().created == 2);
  CHECK(recorder.stats().patched == 0);
  CHECK(recorder.stats().failed == 0);
  CHECK(f.requests("patch " + kEvents + "/" + name) == 1);

  f.now += 1min;
  recorder.record(storage_ref(), EventType::Normal, "Ready", "Reconcile", "ok");
  f.flush(recorder);
  CHECK(series_count(f.only_event()) == 3);
  CHECK(recorder.stats().patched == 1);
  CHECK(recorder.stats().dropped == 0);
}

TEST_CASE("a note is cut to 1024 bytes and a reason to 128 at a character boundary, invalid UTF-8 replaced") {
  CHECK(kube::truncate_utf8("abc", 1024) == "abc");
  CHECK(kube::truncate_utf8("ab\xC3\xA9", 3) == "ab");           // "é" does not fit whole
  CHECK(kube::truncate_utf8("a\xFF" "b", 10) == "a\xEF\xBF\xBD" "b");
  CHECK(kube::truncate_utf8("\xED\xA0\x80", 10) == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(kube::truncate_utf8("\xF0\x9F\x93\xA6", 4) == "\xF0\x9F\x93\xA6");
  CHECK(kube::rfc3339_micro(*parse_rfc3339("2026-01-02T03:04:05Z") + 7us) == "2026-01-02T03:04:05.000007Z");

  Fixture f("note");
  EventRecorder recorder(f.io.get_executor(), f.api, f.options());
  std::string long_note = std::string(1023, 'a') + "\xC3\xA9" + "tail";
  recorder.record(storage_ref(), EventType::Normal, "Long", "Reconcile", long_note);
  recorder.record(storage_ref(), EventType::Normal, "Binary", "Reconcile", "bad \xFF byte");
  // reason and action are limited to 128 bytes; repeats of an over-long reason still make one series.
  const std::string long_reason(200, 'R');
  recorder.record(storage_ref(), EventType::Normal, long_reason, "Reconcile", "n");
  f.now += 1s;
  recorder.record(storage_ref(), EventType::Normal, long_reason, "Reconcile", "n");
  f.flush(recorder);
  CHECK(recorder.stats().created == 3);
  int checked = 0;
  for (const auto& e : f.events()) {
    std::string reason = str(e, {"reason"});
    if (reason == "Long") CHECK(str(e, {"note"}) == std::string(1023, 'a'));
    if (reason == "Binary") CHECK(str(e, {"note"}) == "bad \xEF\xBF\xBD byte");
    if (reason == std::string(128, 'R')) CHECK(series_count(e) == 2);
    checked += reason == "Long" || reason == "Binary" || reason == std::string(128, 'R');
  }
  CHECK(checked == 3);
}
