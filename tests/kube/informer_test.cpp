// The Informer against the test API server over TLS: paged list then watch, every injected fault
// survived with the handlers' view equal to the server's, metadata-only watches, prompt stop().
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>

#include "common/http_client.hpp"
#include "kube/api_client.hpp"
#include "kube/informer.hpp"
#include "support/api_server.hpp"

using namespace stowage;
namespace json = boost::json;
using test_support::TestApiServer;

namespace {

const std::string kConfigMaps = "/api/v1/namespaces/ns1/configmaps";

json::value config_map(const std::string& name, int value) {
  return json::value{{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", name}, {"namespace", "ns1"}}},
                     {"data", {{"k", std::to_string(value)}}}};
}

std::string meta(const json::value& v, const char* field) {
  const auto* m = v.as_object().if_contains("metadata");
  const auto* f = m ? m->as_object().if_contains(field) : nullptr;
  return f && f->is_string() ? std::string(f->as_string()) : "";
}

struct Harness {
  TestApiServer server;
  boost::asio::io_context io;
  http::Client http{io.get_executor()};
  kube::ApiClient api;
  std::map<std::string, std::string> view;  // ns/name -> resourceVersion, as the handlers saw it
  std::map<std::string, json::value> objects;
  int synced = 0;
  std::vector<std::string> checkpoints;

  explicit Harness(const std::string& name)
      : server(test_support::fresh_temp_dir("informer-" + name), "tok"), api(http, client_config()) {}

  kube::ClientConfig client_config() { return server.client_config(); }

  kube::InformerHandlers handlers() {
    kube::InformerHandlers h;
    h.upserted = [this](json::value o) {
      std::string key = meta(o, "namespace") + "/" + meta(o, "name");
      view[key] = meta(o, "resourceVersion");
      objects[key] = std::move(o);
    };
    h.removed = [this](const std::string& ns, const std::string& name, json::value) {
      view.erase(ns + "/" + name);
      objects.erase(ns + "/" + name);
    };
    h.synced = [this] { ++synced; };
    h.checkpoint = [this](const std::string& rv) { checkpoints.push_back(rv); };
    return h;
  }

  static kube::InformerOptions fast_options(std::string path = kConfigMaps) {
    kube::InformerOptions o;
    o.name = "configmaps";
    o.path = std::move(path);
    o.reflector.backoff_initial = std::chrono::milliseconds(50);
    o.reflector.backoff_cap = std::chrono::milliseconds(400);
    o.reflector.seed = 7;
    return o;
  }

  // Runs the reactor until `done` holds or `limit` passes; returns whether it held.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io.restart();
      io.run_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  // The server's state of the collection, read with a plain list.
  std::map<std::string, std::string> server_view(const std::string& path = kConfigMaps) {
    std::map<std::string, std::string> out;
    auto f = boost::asio::co_spawn(io, api.list(path), boost::asio::use_future);
    run_until([&] { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    auto r = f.get();
    REQUIRE(r.ok());
    for (const auto& item : r.value().as_object().at("items").as_array())
      out[meta(item, "namespace") + "/" + meta(item, "name")] = meta(item, "resourceVersion");
    return out;
  }

  void create(const std::string& name, int value) {
    server.control({{"action", "create"}, {"objects", json::array{config_map(name, value)}}});
  }

  // Create, change and delete through the API (one request each), driven on this reactor.
  void write(const std::string& verb, const std::string& name, int value) {
    boost::asio::awaitable<Result<json::value, kube::ApiError>> op =
        verb == "create"   ? api.create(kConfigMaps, config_map(name, value))
        : verb == "patch"  ? api.patch(kConfigMaps + "/" + name, kube::kMergePatch,
                                       json::value{{"data", {{"k", std::to_string(value)}}}})
                           : api.remove(kConfigMaps + "/" + name);
    auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
    REQUIRE(run_until([&] { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
    auto r = f.get();
    INFO(verb << " " << name << ": " << (r.ok() ? "" : r.error().message));
    REQUIRE(r.ok());
  }
};

}  // namespace

TEST_CASE("informer lists 1200 objects in pages of 500, then follows the watch") {
  Harness h("paged");
  json::array seed;
  for (int i = 0; i < 1200; ++i) seed.push_back(config_map("cm-" + std::to_string(i), i));
  h.server.control({{"action", "create"}, {"objects", seed}});

  kube::Informer informer(h.io.get_executor(), h.api, Harness::fast_options(), h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced(); }));
  CHECK(h.synced == 1);
  CHECK(h.view.size() == 1200);
  CHECK(informer.stats().lists == 3);  // 500 + 500 + 200
  CHECK(informer.size() == 1200);
  CHECK_FALSE(h.checkpoints.empty());

  h.write("create", "new", 1);
  h.write("patch", "cm-5", 55);
  h.write("delete", "cm-6", 0);
  REQUIRE(h.run_until([&] { return h.view.count("ns1/new") && !h.view.count("ns1/cm-6"); }));
  REQUIRE(h.run_until([&] { return h.view == h.server_view(); }));
  CHECK(json::value_to<std::string>(h.objects["ns1/cm-5"].at("data").at("k")) == "55");
  CHECK(informer.stats().relists == 0);
  CHECK(informer.stats().failures == 0);
}

TEST_CASE("informer survives every injected watch fault without losing a change") {
  Harness h("faults");
  for (int i = 0; i < 20; ++i) h.create("cm-" + std::to_string(i), i);
  auto options = Harness::fast_options();
  options.reflector.min_watch_timeout = std::chrono::seconds(2);  // idle timeout = 2..4 s + margin
  options.reflector.idle_timeout_margin = std::chrono::seconds(1);
  kube::Informer informer(h.io.get_executor(), h.api, options, h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced(); }));

  int n = 100;
  auto change_and_converge = [&](const std::string& what) {
    INFO("after fault: " << what);
    h.write("create", "x-" + std::to_string(n), n);
    h.write("patch", "cm-" + std::to_string(n % 20), n);
    h.write("delete", "x-" + std::to_string(n - 1), 0);  // may not exist the first time
    ++n;
    REQUIRE(h.run_until([&] { return h.view == h.server_view(); }, std::chrono::seconds(30)));
  };
  h.write("create", "x-99", 0);

  h.server.control({{"action", "drop_watch"}, {"path", "/configmaps"}});
  change_and_converge("drop_watch (half an event, then the socket closes)");
  h.server.control({{"action", "garbage_watch"}, {"path", "/configmaps"}});
  change_and_converge("garbage_watch (not JSON)");
  auto relists = informer.stats().relists;
  h.server.control({{"action", "compact"}});
  h.server.control({{"action", "fail"}, {"code", 410}, {"verb", "watch"}});
  h.server.control({{"action", "close_watches"}});
  change_and_converge("410 Expired as a watch ERROR event");
  CHECK(informer.stats().relists > relists);
  h.server.control({{"action", "fail"}, {"code", 500}, {"verb", "watch"}, {"count", 2}});
  h.server.control({{"action", "fail"}, {"code", 504}, {"verb", "watch"}, {"count", 1}});
  h.server.control({{"action", "close_watches"}});
  change_and_converge("500 and 504 on re-watch");
  h.server.control({{"action", "stall_watch"}, {"path", "/configmaps"}});
  change_and_converge("stall_watch (half-open: silence, socket open)");
  h.server.control({{"action", "clear_faults"}});
  h.server.control({{"action", "fail"}, {"code", 429}, {"retry_after", 1}, {"verb", "watch"}});
  h.server.control({{"action", "close_watches"}});
  change_and_converge("429 with Retry-After");

  CHECK(h.synced == 1);
  CHECK(informer.stats().failures >= 6);
  // No hot loop: a handful of requests per fault, not hundreds.
  CHECK(informer.stats().watches + informer.stats().lists < 60);
}

TEST_CASE("informer relists after a 429 on list with the server's Retry-After") {
  Harness h("list429");
  h.create("a", 1);
  h.server.control({{"action", "fail"}, {"code", 429}, {"retry_after", 1}, {"verb", "list"}});
  kube::Informer informer(h.io.get_executor(), h.api, Harness::fast_options(), h.handlers());
  auto started = std::chrono::steady_clock::now();
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced(); }));
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(950));
  CHECK(h.view.count("ns1/a") == 1);
  CHECK(informer.stats().failures == 1);
  CHECK(informer.last_error().empty());
}

TEST_CASE("a relist reports what was deleted while the watch was down") {
  Harness h("relist-deletes");
  h.create("keep", 1);
  h.create("gone", 2);
  kube::Informer informer(h.io.get_executor(), h.api, Harness::fast_options(), h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced() && h.view.size() == 2; }));
  // Every watch is refused with 403 (a relist follows each), and meanwhile one object is deleted
  // and the history compacted: only the relist can tell the informer.
  h.server.control({{"action", "fail"}, {"code", 403}, {"verb", "watch"}, {"count", -1}});
  h.server.control({{"action", "close_watches"}});
  h.write("delete", "gone", 0);
  h.server.control({{"action", "compact"}});
  REQUIRE(h.run_until([&] { return h.view.size() == 1; }));
  CHECK(h.view.count("ns1/keep") == 1);
  CHECK(informer.stats().failures >= 1);  // (last_error() is cleared by each successful relist between 403s)
  h.server.control({{"action", "clear_faults"}});
}

TEST_CASE("a metadata-only informer sees Secrets without their data") {
  Harness h("metadata");
  h.server.control({{"action", "create"},
                    {"objects", json::array{json::value{{"apiVersion", "v1"},
                                                        {"kind", "Secret"},
                                                        {"metadata", {{"name", "s1"}, {"namespace", "ns1"}}},
                                                        {"stringData", {{"password", "hunter2"}}}}}}});
  auto options = Harness::fast_options("/api/v1/secrets");
  options.list_accept = kube::kAcceptPartialMetadataList;
  options.watch_accept = kube::kAcceptPartialMetadata;
  kube::Informer informer(h.io.get_executor(), h.api, options, h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced() && h.view.count("ns1/s1"); }));
  CHECK(json::serialize(h.objects["ns1/s1"]).find("\"data\"") == std::string::npos);
  CHECK(json::serialize(h.objects["ns1/s1"]).find("hunter2") == std::string::npos);
  CHECK(json::value_to<std::string>(h.objects["ns1/s1"].at("kind")) == "PartialObjectMetadata");
  h.server.control({{"action", "create"},
                    {"objects", json::array{json::value{{"apiVersion", "v1"},
                                                        {"kind", "Secret"},
                                                        {"metadata", {{"name", "s2"}, {"namespace", "ns2"}}},
                                                        {"stringData", {{"token", "abc"}}}}}}});
  REQUIRE(h.run_until([&] { return h.view.count("ns2/s2") == 1; }));
  CHECK(json::serialize(h.objects["ns2/s2"]).find("abc") == std::string::npos);
}

TEST_CASE("stop ends an idle watch at once") {
  Harness h("stop");
  kube::Informer informer(h.io.get_executor(), h.api, Harness::fast_options(), h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced(); }));
  h.run_until([] { return false; }, std::chrono::milliseconds(200));  // the watch is open and quiet
  REQUIRE(h.server.stats().at("active_watches").to_number<int>() >= 1);
  informer.stop();
  auto stopped = std::chrono::steady_clock::now();
  h.io.restart();
  h.io.run_for(std::chrono::seconds(5));  // returns early only when nothing is left to run
  CHECK(std::chrono::steady_clock::now() - stopped < std::chrono::seconds(2));
}

TEST_CASE("a watch that goes silent is opened again from its resourceVersion after the idle timeout") {
  Harness h("idle");
  h.create("before", 1);
  // Bookmarks every 100 ms, as a real server's every minute: a healthy watch is never idle for 600 ms.
  h.server.control({{"action", "set"}, {"bookmark_interval", 0.1}});
  auto options = Harness::fast_options();
  options.reflector.watch_idle_timeout = std::chrono::milliseconds(600);  // timeoutSeconds stays 300..599 s
  kube::Informer informer(h.io.get_executor(), h.api, options, h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced(); }));
  h.run_until([] { return false; }, std::chrono::milliseconds(1500));
  CHECK(informer.stats().idle_timeouts == 0);  // the bookmarks kept it alive
  CHECK(informer.stats().failures == 0);

  h.server.control({{"action", "stall_open_watches"}});
  h.server.control({{"action", "reset_stats"}});
  h.create("during", 2);
  const auto stalled_at = std::chrono::steady_clock::now();
  REQUIRE(h.run_until([&] { return h.view.count("ns1/during") == 1; }, std::chrono::seconds(10)));
  CHECK(std::chrono::steady_clock::now() - stalled_at >= std::chrono::milliseconds(500));  // not before the timeout
  CHECK(informer.stats().idle_timeouts == 1);
  CHECK(informer.stats().relists == 0);
  // Re-established from the last resourceVersion: one new watch, no list.
  auto by_verb = h.server.stats().at("requests_by_verb").as_object();
  CHECK(by_verb.if_contains("list") == nullptr);
  CHECK(by_verb.at("watch").to_number<int>() == 1);
  h.server.control({{"action", "clear_faults"}});
}

TEST_CASE("an informer whose handler throws reports its end to liveness, and is no longer synced") {
  Harness h("handler-throws");
  h.create("cm-1", 1);
  common::Liveness liveness;
  auto options = Harness::fast_options();
  options.liveness = &liveness;
  auto handlers = h.handlers();
  auto record = handlers.upserted;
  handlers.upserted = [&](json::value o) {
    if (meta(o, "name") == "poison") throw std::runtime_error("cannot handle configmap poison");
    record(std::move(o));
  };
  kube::Informer informer(h.io.get_executor(), h.api, options, std::move(handlers));
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced(); }));
  CHECK(liveness.healthy());

  h.write("create", "poison", 2);  // reaches the handler through the watch
  REQUIRE(h.run_until([&] { return !liveness.healthy(); }));
  auto ended = liveness.ended();
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].loop == "configmaps informer");
  CHECK(ended[0].reason == "an exception: cannot handle configmap poison");
  CHECK_FALSE(informer.synced());  // readiness sees it too: the cache no longer follows the server
  informer.stop();
}

TEST_CASE("an informer stopped, or destroyed, reports nothing to liveness") {
  Harness h("stop-quiet");
  h.create("cm-1", 1);
  common::Liveness liveness;
  auto options = Harness::fast_options();
  options.liveness = &liveness;
  {
    kube::Informer informer(h.io.get_executor(), h.api, options, h.handlers());
    informer.start();
    REQUIRE(h.run_until([&] { return informer.synced(); }));
    informer.stop();
    h.run_until([] { return false; }, std::chrono::milliseconds(300));
    CHECK(informer.synced());
  }
  {
    kube::Informer destroyed(h.io.get_executor(), h.api, options, h.handlers());
    destroyed.start();
    h.run_until([] { return false; }, std::chrono::milliseconds(100));
  }
  h.run_until([] { return false; }, std::chrono::milliseconds(300));  // its coroutine ends meanwhile
  CHECK(liveness.healthy());
}

TEST_CASE("a relist after a 410 brings the handlers' store to the server's state: changes, removals, additions") {
  Harness h("relist-after-410");
  constexpr int kChanged = 300;
  json::array seed;
  for (int i = 0; i < kChanged; ++i) seed.push_back(config_map("cm-" + std::to_string(i), i));
  seed.push_back(config_map("old", 0));
  h.server.control({{"action", "create"}, {"objects", seed}});
  kube::Informer informer(h.io.get_executor(), h.api, Harness::fast_options(), h.handlers());
  informer.start();
  REQUIRE(h.run_until([&] { return informer.synced() && h.view.size() == kChanged + 1; }));

  // While the informer hears nothing (its watch stalled, its reactor idle), another client changes
  // every object, removes "old" and adds "a-new"; the history is compacted, so only a relist can
  // tell the informer.
  h.server.control({{"action", "stall_open_watches"}});
  {
    boost::asio::io_context io2;
    http::Client http2{io2.get_executor()};
    kube::ApiClient writer(http2, h.client_config());
    auto run = [&](boost::asio::awaitable<Result<json::value, kube::ApiError>> op) {
      auto f = boost::asio::co_spawn(io2, std::move(op), boost::asio::use_future);
      io2.restart();
      io2.run();
      auto r = f.get();
      INFO((r.ok() ? std::string() : r.error().message));
      REQUIRE(r.ok());
    };
    for (int i = 0; i < kChanged; ++i) {
      std::string path = kConfigMaps + "/cm-" + std::to_string(i);
      json::value patch{{"data", {{"k", std::to_string(i + 1000)}}}};
      run(writer.patch(path, kube::kMergePatch, std::move(patch)));
    }
    run(writer.remove(kConfigMaps + "/old"));
    run(writer.create(kConfigMaps, config_map("a-new", 1)));
  }
  h.server.control({{"action", "compact"}});

  // The relist is handed over in slices (kube/informer.hpp): a reader may see some objects old and
  // some new meanwhile, but the end state is the server's.
  auto changed_count = [&] {
    int n = 0;
    for (int i = 0; i < kChanged; ++i) {
      auto it = h.objects.find("ns1/cm-" + std::to_string(i));
      if (it != h.objects.end() && json::value_to<std::string>(it->second.at("data").at("k")) == std::to_string(i + 1000))
        ++n;
    }
    return n;
  };
  h.server.control({{"action", "clear_faults"}});  // the stalled watch closes: re-watch, 410, relist
  REQUIRE(h.run_until([&] { return changed_count() == kChanged && !h.view.count("ns1/old"); }));
  CHECK(h.view.count("ns1/a-new") == 1);
  CHECK(informer.stats().relists >= 1);
  CHECK(h.view == h.server_view());
}
