// ApiClient against the test API server (tests/apiserver/apiserver.py) over TLS with a bearer token:
// create/get/list paging, replace (PUT) with resourceVersion conflicts, merge and JSON patches, a
// watch, 401s, token-file rotation, an untrusted CA.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/http_client.hpp"
#include "kube/api_client.hpp"
#include "support/api_server.hpp"
#include "support/connect_proxy.hpp"

using namespace stowage;
namespace fs = std::filesystem;
namespace json = boost::json;
using kube::ApiClient;
using kube::ApiError;

namespace {

template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
  io.restart();
  io.run();
  return f.get();
}

struct ApiServer : test_support::TestApiServer {
  ApiServer(const std::string& name, const std::string& token)
      : TestApiServer(test_support::fresh_temp_dir("apiclient-" + name), token) {}

  kube::ClientConfig config(const std::string& bearer_token) const { return client_config(bearer_token); }

  // POST /__control (no token needed).
  void control(boost::asio::io_context& io, http::Client& http, const json::value& body) const {
    http::Request r{"POST", "/__control", {{"Content-Type", "application/json"}}, json::serialize(body)};
    auto origin = http::Url::parse("https://127.0.0.1:" + std::to_string(port)).value();
    auto res = run(io, http.send(origin, http::TlsSettings(certs.ca_pem()), r));
    REQUIRE(res.ok());
    REQUIRE(res.value().status == 200);
  }
};

const std::string kConfigMaps = "/api/v1/namespaces/ns1/configmaps";

json::value config_map(const std::string& name, const std::string& value) {
  return json::value{{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", name}, {"labels", {{"app", "stowage"}}}}},
                     {"data", {{"k", value}}}};
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

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
}

// After a moment: create, merge-patch and delete one config map.
boost::asio::awaitable<bool> create_patch_delete(boost::asio::io_context& io, ApiClient& api, std::string name) {
  boost::asio::steady_timer timer(io, std::chrono::milliseconds(300));
  co_await timer.async_wait(boost::asio::use_awaitable);
  json::value object = config_map(name, "1");
  auto c = co_await api.create(kConfigMaps, object);
  json::value change = json::parse(R"({"data":{"k":"2"}})");
  auto p = co_await api.patch(kConfigMaps + "/" + name, kube::kMergePatch, change);
  auto d = co_await api.remove(kConfigMaps + "/" + name);
  co_return c.ok() && p.ok() && d.ok();
}

}  // namespace

TEST_CASE("create, get and list with paging against the test API server") {
  ApiServer server("crud", "secret-token-1");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("secret-token-1"));

  for (int i = 0; i < 5; ++i) {
    auto created = run(io, api.create(kConfigMaps, config_map("cm-" + std::to_string(i), "v" + std::to_string(i))));
    REQUIRE(created.ok());
    CHECK(str(created.value(), {"metadata", "name"}) == "cm-" + std::to_string(i));
    CHECK_FALSE(str(created.value(), {"metadata", "resourceVersion"}).empty());
  }

  auto got = run(io, api.get(kConfigMaps + "/cm-3"));
  REQUIRE(got.ok());
  CHECK(str(got.value(), {"data", "k"}) == "v3");

  auto missing = run(io, api.get(kConfigMaps + "/nope"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().http_status == 404);
  CHECK(missing.error().kind == ApiError::Kind::Status);
  CHECK(missing.error().status.reason == "NotFound");
  CHECK(missing.error().message.find("get " + kConfigMaps + "/nope") != std::string::npos);
  CHECK_FALSE(missing.error().transient());

  auto duplicate = run(io, api.create(kConfigMaps, config_map("cm-0", "again")));
  REQUIRE_FALSE(duplicate.ok());
  CHECK(duplicate.error().http_status == 409);
  CHECK(duplicate.error().status.reason == "AlreadyExists");

  std::set<std::string> names;
  std::set<std::string> versions;
  std::vector<std::size_t> sizes;
  std::string token;
  int pages = 0;
  do {
    kube::ListOptions options;
    options.limit = 2;
    options.continue_token = token;
    auto page = run(io, api.list(kConfigMaps, options));
    REQUIRE(page.ok());
    REQUIRE(++pages <= 5);
    const auto& items = page.value().at("items").as_array();
    sizes.push_back(items.size());
    for (const auto& item : items) names.insert(str(item, {"metadata", "name"}));
    versions.insert(str(page.value(), {"metadata", "resourceVersion"}));
    token = str(page.value(), {"metadata", "continue"});
  } while (!token.empty());
  CHECK(sizes == std::vector<std::size_t>{2, 2, 1});
  CHECK(names == std::set<std::string>{"cm-0", "cm-1", "cm-2", "cm-3", "cm-4"});
  CHECK(versions.size() == 1);

  kube::ListOptions selected;
  selected.label_selector = "app=stowage";
  auto all = run(io, api.list(kConfigMaps, selected));
  REQUIRE(all.ok());
  CHECK(all.value().at("items").as_array().size() == 5);

  // A delete with a uid precondition that names another object is refused, and the object stays.
  auto cm4 = run(io, api.get(kConfigMaps + "/cm-4"));
  REQUIRE(cm4.ok());
  json::value other{{"preconditions", {{"uid", "not-the-uid-of-cm-4"}}}};
  auto refused = run(io, api.remove(kConfigMaps + "/cm-4", other));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().http_status == 409);
  REQUIRE(run(io, api.get(kConfigMaps + "/cm-4")).ok());
  json::value same{{"preconditions", {{"uid", str(cm4.value(), {"metadata", "uid"})}}}};
  auto removed = run(io, api.remove(kConfigMaps + "/cm-4", same));
  REQUIRE(removed.ok());
  auto gone = run(io, api.get(kConfigMaps + "/cm-4"));
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().http_status == 404);
}

TEST_CASE("merge patch and JSON patch, with a failing test operation as a 422") {
  ApiServer server("patch", "tok");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("tok"));
  REQUIRE(run(io, api.create(kConfigMaps, config_map("p", "one"))).ok());

  auto merged = run(io, api.patch(kConfigMaps + "/p", kube::kMergePatch, json::value{{"data", {{"extra", "x"}}}}));
  REQUIRE(merged.ok());
  CHECK(str(merged.value(), {"data", "k"}) == "one");
  CHECK(str(merged.value(), {"data", "extra"}) == "x");

  auto patched = run(io, api.patch(kConfigMaps + "/p", kube::kJsonPatch,
                                   json::parse(R"([{"op":"test","path":"/data/k","value":"one"},
                                                   {"op":"replace","path":"/data/k","value":"two"}])")));
  REQUIRE(patched.ok());
  CHECK(str(patched.value(), {"data", "k"}) == "two");

  auto failed = run(io, api.patch(kConfigMaps + "/p", kube::kJsonPatch,
                                  json::parse(R"([{"op":"test","path":"/data/k","value":"one"},
                                                  {"op":"replace","path":"/data/k","value":"three"}])")));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().http_status == 422);
  CHECK(failed.error().kind == ApiError::Kind::Status);
  CHECK(failed.error().message.find("patch " + kConfigMaps + "/p") != std::string::npos);
  CHECK_FALSE(failed.error().transient());
  auto after = run(io, api.get(kConfigMaps + "/p"));
  REQUIRE(after.ok());
  CHECK(str(after.value(), {"data", "k"}) == "two");
}

TEST_CASE("replace is a PUT that honours resourceVersion: a stale one is a 409 Conflict") {
  ApiServer server("replace", "tok");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("tok"));
  auto created = run(io, api.create(kConfigMaps, config_map("r", "one")));
  REQUIRE(created.ok());
  const std::string first_rv = str(created.value(), {"metadata", "resourceVersion"});

  json::value changed = created.value();
  changed.as_object()["data"] = json::object{{"k", "two"}};  // replaced whole: no merge with the old data
  auto replaced = run(io, api.replace(kConfigMaps + "/r", changed));
  INFO((replaced.ok() ? std::string() : replaced.error().message));
  REQUIRE(replaced.ok());
  CHECK(str(replaced.value(), {"data", "k"}) == "two");
  const std::string second_rv = str(replaced.value(), {"metadata", "resourceVersion"});
  CHECK(second_rv != first_rv);

  // The same body again still carries first_rv, which is stale now.
  json::value stale = changed;
  stale.as_object()["data"] = json::object{{"k", "three"}};
  auto conflict = run(io, api.replace(kConfigMaps + "/r", stale));
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.error().http_status == 409);
  CHECK(conflict.error().status.reason == "Conflict");
  CHECK(conflict.error().message.find("update " + kConfigMaps + "/r") != std::string::npos);
  CHECK_FALSE(conflict.error().transient());
  auto after = run(io, api.get(kConfigMaps + "/r"));
  REQUIRE(after.ok());
  CHECK(str(after.value(), {"data", "k"}) == "two");

  // Without a resourceVersion the write is unconditional.
  stale.as_object()["metadata"].as_object().erase("resourceVersion");
  auto forced = run(io, api.replace(kConfigMaps + "/r", stale));
  REQUIRE(forced.ok());
  CHECK(str(forced.value(), {"data", "k"}) == "three");

  json::value ghost = config_map("ghost", "x");
  auto missing = run(io, api.replace(kConfigMaps + "/ghost", ghost));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().http_status == 404);
}

TEST_CASE("a watch sees ADDED, MODIFIED and DELETED and ends when timeoutSeconds passes") {
  ApiServer server("watch", "tok");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("tok"));
  REQUIRE(run(io, api.create(kConfigMaps, config_map("before", "0"))).ok());
  auto listed = run(io, api.list(kConfigMaps));
  REQUIRE(listed.ok());
  std::string rv = str(listed.value(), {"metadata", "resourceVersion"});
  REQUIRE_FALSE(rv.empty());

  std::vector<std::pair<kube::WatchEventType, std::string>> seen;
  kube::WatchOptions options;
  options.resource_version = rv;
  options.timeout_seconds = 2;
  auto on_event = [&seen](kube::WatchEvent e) {
    seen.emplace_back(e.type, str(e.object, {"metadata", "name"}));
    return true;
  };
  auto started = std::chrono::steady_clock::now();
  auto watched = boost::asio::co_spawn(io, api.watch(kConfigMaps, options, on_event), boost::asio::use_future);

  auto wrote = boost::asio::co_spawn(io, create_patch_delete(io, api, "w"), boost::asio::use_future);
  io.restart();
  io.run();
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(wrote.get());
  auto result = watched.get();
  INFO((result.ok() ? std::string() : result.error().message));
  REQUIRE(result.ok());
  using T = kube::WatchEventType;
  std::vector<std::pair<T, std::string>> expected{{T::Added, "w"}, {T::Modified, "w"}, {T::Deleted, "w"}};
  CHECK(seen == expected);
  CHECK(elapsed >= std::chrono::milliseconds(1500));
  CHECK(elapsed < std::chrono::seconds(10));
}

TEST_CASE("a wrong token is a 401 ApiError that does not quote the token") {
  ApiServer server("unauthorized", "right-token");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("wrong-token-xyz"));
  auto got = run(io, api.get(kConfigMaps));
  REQUIRE_FALSE(got.ok());
  CHECK(got.error().http_status == 401);
  CHECK(got.error().kind == ApiError::Kind::Status);
  CHECK(got.error().message.find("refused") != std::string::npos);
  CHECK(got.error().message.find(kConfigMaps) != std::string::npos);
  CHECK(got.error().message.find("wrong-token-xyz") == std::string::npos);
  CHECK(got.error().message.find("right-token") == std::string::npos);

  kube::WatchOptions options;
  options.timeout_seconds = 1;
  auto watched = run(io, api.watch(kConfigMaps, options, [](kube::WatchEvent) { return true; }));
  REQUIRE_FALSE(watched.ok());
  CHECK(watched.error().http_status == 401);
  CHECK(watched.error().message.find("wrong-token-xyz") == std::string::npos);
}

TEST_CASE("a rotated token file is re-read after a 401 and when it is old") {
  ApiServer server("rotation", "first");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  fs::path token_file = server.dir / "token";
  write_file(token_file, "first\n");
  kube::ClientConfig config = server.config("first");
  config.token_file = token_file.string();
  auto now = std::chrono::steady_clock::now();
  ApiClient api(http, config, [&now] { return now; });
  REQUIRE(run(io, api.get(kConfigMaps)).ok());

  // The server's token changes and the file is rewritten: the 401 makes the client re-read the file.
  server.control(io, http, json::value{{"action", "set"}, {"token", "second"}});
  write_file(token_file, "second\n");
  auto recovered = run(io, api.list(kConfigMaps));
  INFO((recovered.ok() ? std::string() : recovered.error().message));
  REQUIRE(recovered.ok());

  // A watch recovers the same way.
  server.control(io, http, json::value{{"action", "set"}, {"token", "third"}});
  write_file(token_file, "third\n");
  kube::WatchOptions options;
  options.timeout_seconds = 1;
  auto watched = run(io, api.watch(kConfigMaps, options, [](kube::WatchEvent) { return true; }));
  INFO((watched.ok() ? std::string() : watched.error().message));
  CHECK(watched.ok());

  // Once the last read is older than kTokenFileRereadInterval the file is read before the request.
  write_file(token_file, "fourth\n");
  server.control(io, http, json::value{{"action", "set"}, {"token", "fourth"}});
  now += kube::kTokenFileRereadInterval + std::chrono::seconds(1);
  server.control(io, http, json::value{{"action", "reset_stats"}});
  REQUIRE(run(io, api.get(kConfigMaps)).ok());
  http::Request stats{"GET", "/__stats", {}, ""};
  auto res = run(io, http.send(http::Url::parse("https://127.0.0.1:" + std::to_string(server.port)).value(),
                               http::TlsSettings(server.certs.ca_pem()), stats));
  REQUIRE(res.ok());
  auto body = json::parse(res.value().body);
  auto* unauthorized = body.as_object().if_contains("unauthorized");
  REQUIRE(unauthorized);
  CHECK(unauthorized->to_number<std::int64_t>() == 0);

  // A server token the file does not hold: one re-read, one retry, then the 401 is the answer.
  server.control(io, http, json::value{{"action", "set"}, {"token", "fifth"}});
  auto refused = run(io, api.get(kConfigMaps));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().http_status == 401);
  CHECK(refused.error().message.find("fourth") == std::string::npos);
}

TEST_CASE("a server certificate from an untrusted CA is a TLS error") {
  ApiServer server("untrusted", "tok");
  auto other = test_support::make_certificates(server.dir / "other-ca");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  kube::ClientConfig config = server.config("tok");
  config.ca_pem = other.ca_pem();
  ApiClient api(http, config);
  auto got = run(io, api.get(kConfigMaps));
  REQUIRE_FALSE(got.ok());
  CHECK(got.error().kind == ApiError::Kind::Transport);
  CHECK(got.error().http_status == 0);
  CHECK_FALSE(got.error().transient());
  CHECK(got.error().message.find("get " + kConfigMaps) != std::string::npos);
  CHECK(got.error().message.find("TLS") != std::string::npos);
  CHECK(got.error().message.find("tok") == std::string::npos);

  // Skipping verification (insecure-skip-tls-verify) connects.
  config.insecure_skip_tls_verify = true;
  config.ca_pem.clear();
  ApiClient insecure(http, config);
  CHECK(run(io, insecure.get(kConfigMaps)).ok());
}

TEST_CASE("a huge Retry-After from the API server is capped at a day") {
  ApiServer server("huge-retry-after", "tok");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("tok"));
  // Converted to milliseconds (Event recorder, informers), 9223372036854775807 s used to overflow.
  server.control(io, http,
                 json::value{{"action", "fail"}, {"code", 429}, {"retry_after", INT64_MAX}, {"verb", "get"}});
  auto throttled = run(io, api.get(kConfigMaps + "/x"));
  REQUIRE_FALSE(throttled.ok());
  REQUIRE(throttled.error().retry_after.has_value());
  CHECK(*throttled.error().retry_after == std::chrono::hours(24));
}

TEST_CASE("a 403 quotes the server's RBAC message, a 429 is transient with Retry-After, a dropped watch fails") {
  ApiServer server("faults", "tok");
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  ApiClient api(http, server.config("tok"));
  const std::string rbac = "configmaps is forbidden: User \"system:serviceaccount:stowage:stowage\" cannot list "
                           "resource \"configmaps\" in API group \"\" in the namespace \"ns1\"";
  server.control(io, http, json::value{{"action", "fail"}, {"code", 403}, {"verb", "list"}, {"message", rbac}});
  auto forbidden = run(io, api.list(kConfigMaps));
  REQUIRE_FALSE(forbidden.ok());
  CHECK(forbidden.error().http_status == 403);
  CHECK(forbidden.error().status.reason == "Forbidden");
  CHECK(forbidden.error().message.find("list " + kConfigMaps) != std::string::npos);
  CHECK(forbidden.error().message.find(rbac) != std::string::npos);
  CHECK(forbidden.error().message.find("tok") == std::string::npos);
  CHECK_FALSE(forbidden.error().transient());

  server.control(io, http, json::value{{"action", "fail"}, {"code", 429}, {"retry_after", 3}, {"verb", "get"}});
  auto throttled = run(io, api.get(kConfigMaps + "/x"));
  REQUIRE_FALSE(throttled.ok());
  CHECK(throttled.error().http_status == 429);
  CHECK(throttled.error().transient());
  REQUIRE(throttled.error().retry_after.has_value());
  CHECK(*throttled.error().retry_after == std::chrono::seconds(3));

  // The next watch send is half an event, then the connection closes.
  server.control(io, http, json::value{{"action", "drop_watch"}, {"path", "/configmaps"}});
  kube::WatchOptions options;
  options.timeout_seconds = 5;
  int events = 0;
  auto on_event = [&events](kube::WatchEvent) {
    ++events;
    return true;
  };
  auto watched = boost::asio::co_spawn(io, api.watch(kConfigMaps, options, on_event), boost::asio::use_future);
  auto wrote = boost::asio::co_spawn(io, create_patch_delete(io, api, "d"), boost::asio::use_future);
  io.restart();
  io.run();
  CHECK(wrote.get());
  auto result = watched.get();
  REQUIRE_FALSE(result.ok());
  CHECK(events == 0);
  CHECK(result.error().transient());
  CHECK(result.error().message.find("watch " + kConfigMaps) != std::string::npos);
  CHECK(result.error().message.find("tok") == std::string::npos);
}

TEST_CASE("the kubeconfig proxy-url carries requests and watches through an HTTP CONNECT proxy") {
  ApiServer server("proxy", "tok");
  test_support::ConnectProxy proxy(server.dir, {{{"kube", "proxy-pass"}}, {}, "", {}});
  boost::asio::io_context io;
  http::Client http(io.get_executor());
  auto config = server.config("tok");
  config.proxy_url = proxy.url("kube:proxy-pass");
  ApiClient api(http, config);
  auto created = run(io, api.create(kConfigMaps, config_map("via-proxy", "1")));
  REQUIRE(created.ok());
  auto listed = run(io, api.list(kConfigMaps));
  REQUIRE(listed.ok());
  CHECK(proxy.tunnels() == 1);  // one kept-alive tunnel for both requests
  kube::WatchOptions wo;
  wo.timeout_seconds = 1;
  int events = 0;
  auto watched = run(io, api.watch(kConfigMaps, wo, [&](kube::WatchEvent) { return ++events < 1; }));
  CHECK(watched.ok());
  CHECK(events == 1);
  CHECK(proxy.tunnels() == 2);  // the watch has its own

  auto wrong = config;
  wrong.proxy_url = proxy.url("kube:wrong");
  ApiClient refused(http, wrong);
  auto denied = run(io, refused.get(kConfigMaps + "/via-proxy"));
  REQUIRE_FALSE(denied.ok());
  CHECK_THAT(denied.error().message, Catch::Contains("407"));
  CHECK(denied.error().message.find("wrong") == std::string::npos);
  CHECK_FALSE(denied.error().transient());
}

// The Kubernetes client's part of header injection. A kubeconfig token with a line break is
// refused at load (client_config_test); one that reaches the ApiClient any other way is still
// never written (the HTTP client's own check), and a token file rewritten with one is refused when
// re-read: the last good token stays in use and the smuggled header goes nowhere.
TEST_CASE("a token with a line break never reaches the API server") {
  ApiServer server("injection", "good-token");
  boost::asio::io_context io;
  http::Client http(io.get_executor());

  ApiClient direct(http, server.config("good-token\r\nX-Injected: yes"));
  auto refused = run(io, direct.get(kConfigMaps));
  REQUIRE_FALSE(refused.ok());
  CHECK_FALSE(refused.error().transient());
  CHECK_THAT(refused.error().message, Catch::Contains("header Authorization contains a control character"));
  CHECK(refused.error().message.find("Injected") == std::string::npos);
  CHECK(refused.error().message.find("good-token") == std::string::npos);
  CHECK(http.stats().requests == 0);

  fs::path token_file = server.dir / "token";
  write_file(token_file, "good-token\n");
  kube::ClientConfig config = server.config("good-token");
  config.token_file = token_file.string();
  auto now = std::chrono::steady_clock::now();
  ApiClient rotating(http, config, [&now] { return now; });
  REQUIRE(run(io, rotating.get(kConfigMaps)).ok());
  write_file(token_file, "good-token\r\nX-Injected: yes\n");
  now += kube::kTokenFileRereadInterval + std::chrono::seconds(1);
  auto kept = run(io, rotating.get(kConfigMaps));  // the file is re-read, refused, and the last good token used
  INFO((kept.ok() ? std::string() : kept.error().message));
  CHECK(kept.ok());
}
