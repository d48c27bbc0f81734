// One conformance suite for Backend::wipe() run against every object store: S3 (moto 5, auth on),
// Azure (Azurite 3.37) and GCS (tests/servers/gcs_server.py), each behind the fault proxy so that
// deletes can be made to fail or hang part-way through a wipe. Each TEMPLATE_TEST_CASE runs once per
// store ("... - S3World", "- AzureWorld", "- GcsWorld"); each run gets a bucket (container) of its
// own on a server shared by the process.
//
// Objects are seeded and checked behind the backend's back: S3 through signed PUTs and boto3's
// listing, Azure through the harness's own requests, GCS through the server's control port.
// (The algorithm's rules one by one, with a fake store: object_wipe_test.cpp.)
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/azure_backend.hpp"
#include "storage/gcs_backend.hpp"
#include "storage/metadata.hpp"
#include "storage/s3_backend.hpp"
#include "storage/s3_signer.hpp"
#include "support/azurite_server.hpp"
#include "support/fault_proxy.hpp"
#include "support/gcs_server.hpp"
#include "support/moto_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;
using test_support::AzuriteServer;
using test_support::FaultProxy;
using test_support::GcsServer;
using test_support::MotoServer;

namespace {

namespace asio = boost::asio;

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});
const std::string kInvalid = "apiVersion: v1\nkind: ConfigMap\n";

// How the backend under test is set up beyond its place.
struct Tuning {
  std::size_t page_size = 4;
  std::size_t max_connections = 0;
  int attempts = 3;
};

RetryPolicy retries(const Tuning& t) {
  return RetryPolicy{t.attempts, std::chrono::milliseconds(10), std::chrono::milliseconds(50)};
}

std::string next_name() {
  static std::atomic<int> counter{0};
  return "wipe-" + std::to_string(counter++);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---- S3: moto ------------------------------------------------------------------------------

class S3World {
 public:
  S3World() : bucket_(next_name()) {
    moto().make_bucket(bucket_);
    proxy().reset();
  }

  static FaultProxy& proxy() {
    static FaultProxy p(moto().endpoint());
    return p;
  }

  // A signed PUT straight to moto (many seed objects: one boto3 process each would be slow).
  void put(const std::string& key, const std::string& body) const {
    http::Request r{"PUT", "/" + bucket_ + "/" + http::uri_encode(key, true), {}, body};
    const std::string host = "127.0.0.1:" + std::to_string(moto().port());
    s3::Credentials c{moto().credentials().access_key_id, moto().credentials().secret_access_key, ""};
    s3::sign(r, c, s3::SigningParams{host, "us-east-1", "s3", WallClock::now()});
    asio::io_context io;
    http::Client client(io.get_executor());
    auto origin = http::Url::parse(moto().endpoint()).value();
    auto op = [&]() -> asio::awaitable<std::optional<http::HttpResult>> {
      co_return co_await client.send(origin, {}, r);
    };
    auto future = asio::co_spawn(io, op(), asio::use_future);
    io.run();
    auto result = future.get();
    REQUIRE(result->ok());
    REQUIRE(result->value().status == 200);
  }

  std::vector<std::string> keys() const { return sorted(moto().list_keys(bucket_)); }

  std::unique_ptr<Backend> backend(http::Client& client, const std::string& prefix, const Tuning& t,
                                   const std::string& bucket = "") const {
    S3Options o;
    o.endpoint = proxy().endpoint();
    o.bucket = bucket.empty() ? bucket_ : bucket;
    o.prefix = prefix;
    o.access_key_id = moto().credentials().access_key_id;
    o.secret_access_key = moto().credentials().secret_access_key;
    o.list_page_size = t.page_size;
    o.max_connections = t.max_connections;
    o.retry = retries(t);
    return std::make_unique<S3Backend>(client, o);
  }

  std::string location(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }

  // Deletes are DeleteObjects (POST ?delete) here.
  static std::string deny_deletes() {
    return R"({"mode": "respond", "count": 1000, "method": "POST", "status": 403,
               "body": "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"})";
  }
  static std::string delay_deletes(int ms) {
    return R"({"mode": "delay", "count": 1000, "method": "POST", "delay_ms": )" + std::to_string(ms) + "}";
  }
  static bool is_listing(const std::string& path) { return path.find("list-type=2") != std::string::npos; }

 private:
  static MotoServer& moto() {
    static MotoServer server;
    return server;
  }
  std::string bucket_;
};

// ---- Azure: Azurite ------------------------------------------------------------------------

class AzureWorld {
 public:
  AzureWorld() : container_(next_name()) {
    azurite().create_container(container_);
    proxy().reset();
  }

  static FaultProxy& proxy() {
    static FaultProxy p("http://127.0.0.1:" + std::to_string(azurite().port()));
    return p;
  }

  void put(const std::string& key, const std::string& body) const { azurite().put_blob(container_, key, body); }
  std::vector<std::string> keys() const { return sorted(azurite().list_blobs(container_)); }

  std::unique_ptr<Backend> backend(http::Client& client, const std::string& prefix, const Tuning& t,
                                   const std::string& container = "") const {
    AzureOptions o;
    o.container = container.empty() ? container_ : container;
    o.prefix = prefix;
    o.connection_string = "AccountName=devstoreaccount1;AccountKey=" + std::string(azure::kDevelopmentKey) +
                          ";BlobEndpoint=" + proxy().endpoint() + "/devstoreaccount1";
    o.list_page_size = t.page_size;
    o.max_connections = t.max_connections;
    o.retry = retries(t);
    return std::make_unique<AzureBackend>(client, o);
  }

  std::string location(const std::string& key) const {
    return "azure://devstoreaccount1/" + container_ + "/" + key;
  }

  static std::string deny_deletes() {
    return R"({"mode": "respond", "count": 1000, "method": "DELETE", "status": 403,
               "headers": {"x-ms-error-code": "AuthorizationPermissionMismatch"},
               "body": "<?xml version=\"1.0\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>"})";
  }
  static std::string delay_deletes(int ms) {
    return R"({"mode": "delay", "count": 1000, "method": "DELETE", "delay_ms": )" + std::to_string(ms) + "}";
  }
  static bool is_listing(const std::string& path) { return path.find("comp=list") != std::string::npos; }

 private:
  static AzuriteServer& azurite() {
    static AzuriteServer server;
    return server;
  }
  std::string container_;
};

// ---- GCS: the test server ------------------------------------------------------------------

class GcsWorld {
 public:
  GcsWorld() : bucket_(next_name()) {
    gcs().seed(bucket_, {});  // creates the bucket
    proxy().reset();
  }

  static FaultProxy& proxy() {
    static FaultProxy p(gcs().endpoint());
    return p;
  }

  void put(const std::string& key, const std::string& body) const { gcs().seed(bucket_, {key}, body); }
  std::vector<std::string> keys() const { return gcs().objects(bucket_); }

  std::unique_ptr<Backend> backend(http::Client& client, const std::string& prefix, const Tuning& t,
                                   const std::string& bucket = "") {
    GcsOptions o;
    o.bucket = bucket.empty() ? bucket_ : bucket;
    o.prefix = prefix;
    o.service_account_json = gcs().key_json();  // the token comes from the server itself, not via the proxy
    o.endpoint = proxy().endpoint();
    o.list_page_size = t.page_size;
    o.max_connections = t.max_connections;
    o.retry = retries(t);
    return std::make_unique<GcsBackend>(client, o, tokens_);
  }

  std::string location(const std::string& key) const { return "gs://" + bucket_ + "/" + key; }

  static std::string deny_deletes() {
    return R"({"mode": "respond", "count": 1000, "method": "DELETE", "status": 403,
               "headers": {"Content-Type": "application/json"},
               "body": "{\"error\": {\"code\": 403, \"message\": \"denied by the test\", \"errors\": [{\"reason\": \"forbidden\"}]}}"})";
  }
  static std::string delay_deletes(int ms) {
    return R"({"mode": "delay", "count": 1000, "method": "DELETE", "delay_ms": )" + std::to_string(ms) + "}";
  }
  static bool is_listing(const std::string& path) {
    return path.find("/o?") != std::string::npos && path.find("alt=media") == std::string::npos;
  }

 private:
  static GcsServer& gcs() {
    static GcsServer server;
    return server;
  }
  std::string bucket_;
  gcs::TokenRegistry tokens_;
};

// ---- the harness ---------------------------------------------------------------------------

template <class World>
struct Harness {
  explicit Harness(http::ClientOptions options = {}) : client(io.get_executor(), options) {}

  World world;
  asio::io_context io;
  http::Client client;
  std::vector<std::size_t> progress;     // every count the hook was given
  std::function<void()> on_first_page;  // run once, from the hook after the first page

  std::unique_ptr<Backend> backend(const std::string& prefix, const Tuning& tuning = {}) {
    auto b = world.backend(client, prefix, tuning);
    b->on_delete_progress([this](std::size_t removed) -> asio::awaitable<void> {
      progress.push_back(removed);
      if (progress.size() == 1 && on_first_page) on_first_page();
      co_return;
    });
    return b;
  }

  WipeReport wipe(Backend& backend, WipePlan plan = {}) { return run(io, backend.wipe(std::move(plan))); }

  void put_all(const std::vector<std::string>& keys, const std::string& body = "x") {
    for (const auto& key : keys) world.put(key, body);
  }

  // GET requests the proxy saw: listings, and object reads.
  std::pair<std::size_t, std::size_t> gets() const {
    std::size_t lists = 0, reads = 0;
    for (const auto& entry : World::proxy().requests()) {
      const auto& o = entry.as_object();
      if (o.at("method").as_string() != "GET") continue;
      (World::is_listing(std::string(o.at("path").as_string())) ? lists : reads)++;
    }
    return {lists, reads};
  }
};

#define WIPE_CASE(name) TEMPLATE_TEST_CASE("wipe: " name, "[wipe]", S3World, AzureWorld, GcsWorld)

}  // namespace

WIPE_CASE("without metadata.yaml nothing is deleted: refused NotOwned") {
  Harness<TestType> h;
  h.put_all({"backup/demo/repo/1", "backup/demo/repo/2"});
  auto backend = h.backend("backup/demo");
  auto report = h.wipe(*backend);
  REQUIRE(report.refused);
  CHECK_FALSE(report.error);
  CHECK(report.refused->code == "NotOwned");
  CHECK(report.refused->message ==
        h.world.location("backup/demo/metadata.yaml") +
            " does not exist, so nothing shows that this storage owns the data there: nothing was deleted");
  CHECK(report.removed == 0);
  CHECK(h.world.keys() == std::vector<std::string>{"backup/demo/repo/1", "backup/demo/repo/2"});
  CHECK(h.gets().first == 0);  // not even listed
}

WIPE_CASE("an invalid metadata.yaml: nothing is deleted, refused InvalidMetadata") {
  Harness<TestType> h;
  h.put_all({"backup/demo/repo/1"});
  h.world.put("backup/demo/metadata.yaml", kInvalid);
  auto backend = h.backend("/backup/demo/");
  auto report = h.wipe(*backend);
  REQUIRE(report.refused);
  CHECK(report.refused->code == "InvalidMetadata");
  CHECK(report.refused->message.find(h.world.location("backup/demo/metadata.yaml") + " is not a valid BackendMeta (") ==
        0);
  CHECK(h.world.keys() == std::vector<std::string>{"backup/demo/metadata.yaml", "backup/demo/repo/1"});
}

WIPE_CASE("a valid metadata.yaml: everything under the prefix goes, metadata.yaml included, neighbours stay") {
  Harness<TestType> h;
  const std::vector<std::string> inside = {"backup/demo/a",         "backup/demo/b/c",     "backup/demo/m",
                                           "backup/demo/repo/snap-1", "backup/demo/repo/snap-2", "backup/demo/z/z",
                                           "backup/demo/zz"};
  const std::vector<std::string> outside = {"backup/demo2/x", "backup/demo",          "backup/demox",
                                            "backup/dem",     "other/backup/demo/x", "backup/demo.x"};
  h.put_all(inside);
  h.put_all(outside);
  h.world.put("backup/demo2/metadata.yaml", kBody);
  h.world.put("backup/demo/metadata.yaml", kBody);
  auto backend = h.backend("backup/demo");
  auto report = h.wipe(*backend);
  REQUIRE(report.done());
  CHECK(report.removed == inside.size() + 1);
  CHECK(report.left.empty());
  auto expected = outside;
  expected.push_back("backup/demo2/metadata.yaml");
  CHECK(h.world.keys() == sorted(expected));
  // The hook after each page of the delete pass (8 keys, 4 a page: at least 2), counting up to all
  // but metadata.yaml, which goes last.
  CHECK(h.progress.size() >= 2);
  CHECK(std::is_sorted(h.progress.begin(), h.progress.end()));
  CHECK(h.progress.back() == inside.size());

  // Gone with metadata.yaml: a second wipe has nothing to prove ownership with.
  auto again = h.wipe(*backend);
  REQUIRE(again.refused);
  CHECK(again.refused->code == "NotOwned");
}

WIPE_CASE("another storage's location below is kept and reported, an invalid nested metadata.yaml is data") {
  Harness<TestType> h;
  h.world.put("backup/demo/metadata.yaml", kBody);
  h.world.put("backup/demo/team-b/metadata.yaml", kBody);
  h.world.put("backup/demo/team-c/metadata.yaml", kInvalid);
  h.world.put("backup/demo/team-d/metadata.yaml", "");
  h.put_all({"backup/demo/repo/1", "backup/demo/team-b/repo/1", "backup/demo/team-b/repo/2", "backup/demo/team-b0/x",
             "backup/demo/team-c/repo/1"});
  auto backend = h.backend("backup/demo");
  auto report = h.wipe(*backend);
  REQUIRE(report.done());
  CHECK(report.left ==
        std::vector<std::string>{h.world.location("backup/demo/team-b") + ": another storage's metadata.yaml"});
  CHECK(h.world.keys() == std::vector<std::string>{"backup/demo/team-b/metadata.yaml", "backup/demo/team-b/repo/1",
                                                   "backup/demo/team-b/repo/2"});
  CHECK(report.removed == 6);  // repo/1, team-b0/x, team-c (2), team-d (1), own metadata.yaml
}

WIPE_CASE("the plan's kept locations are left alone and reported") {
  Harness<TestType> h;
  h.world.put("p/metadata.yaml", kBody);
  h.put_all({"p/a", "p/live/x/1", "p/live/x/2", "p/live/x0", "p/live/y"});
  auto backend = h.backend("p");
  auto report = h.wipe(*backend, WipePlan{{"live/x"}});
  REQUIRE(report.done());
  CHECK(report.left == std::vector<std::string>{h.world.location("p/live/x") + ": another storage's location"});
  CHECK(h.world.keys() == std::vector<std::string>{"p/live/x/1", "p/live/x/2"});
  CHECK(report.removed == 4);

  auto bad = h.backend("q");
  auto refused = h.wipe(*bad, WipePlan{{"../p"}});
  REQUIRE(refused.refused);
  CHECK(refused.refused->code == "InvalidPlan");
}

WIPE_CASE("an empty prefix wipes the whole bucket except other storages") {
  Harness<TestType> h;
  h.world.put("metadata.yaml", kBody);
  h.world.put("team/metadata.yaml", kBody);
  h.world.put("bad/metadata.yaml", kInvalid);
  h.put_all({"a", "b/c", "team/x", "zzz"});
  auto backend = h.backend("");
  auto report = h.wipe(*backend);
  REQUIRE(report.done());
  CHECK(h.world.keys() == std::vector<std::string>{"team/metadata.yaml", "team/x"});
  CHECK(report.left == std::vector<std::string>{h.world.location("team") + ": another storage's metadata.yaml"});
  CHECK(report.removed == 5);
}

WIPE_CASE("deletes refused part-way: the error and the count so far, metadata.yaml stays, a second wipe finishes") {
  Harness<TestType> h;
  h.world.put("p/metadata.yaml", kBody);
  for (int i = 10; i < 22; ++i) h.world.put("p/data-" + std::to_string(i), "x");
  h.world.put("neighbour/x", "x");
  auto backend = h.backend("p");
  h.on_first_page = [] { TestType::proxy().inject(TestType::deny_deletes()); };
  auto report = h.wipe(*backend);
  REQUIRE(report.error);
  CHECK_FALSE(report.refused);
  CHECK_FALSE(report.error->transient);
  CHECK(report.removed == 4);  // the first page
  auto left = h.world.keys();
  CHECK(left.size() == 1 + 8 + 1);
  CHECK(std::count(left.begin(), left.end(), "p/metadata.yaml") == 1);

  TestType::proxy().reset();
  auto again = h.wipe(*backend);
  REQUIRE(again.done());
  CHECK(again.removed == 9);
  CHECK(h.world.keys() == std::vector<std::string>{"neighbour/x"});
}

WIPE_CASE("deletes that time out: a transient error, metadata.yaml stays, a second wipe finishes") {
  http::ClientOptions client_options;
  client_options.request_timeout = std::chrono::milliseconds(1000);
  Harness<TestType> h(client_options);
  h.world.put("p/metadata.yaml", kBody);
  for (int i = 10; i < 22; ++i) h.world.put("p/data-" + std::to_string(i), "x");
  Tuning tuning;
  tuning.attempts = 2;
  auto backend = h.backend("p", tuning);
  h.on_first_page = [] { TestType::proxy().inject(TestType::delay_deletes(3000)); };
  auto report = h.wipe(*backend);
  REQUIRE(report.error);
  CHECK(report.error->transient);
  CHECK(report.error->code == "Timeout");
  CHECK(report.removed == 4);
  auto left = h.world.keys();
  CHECK(std::count(left.begin(), left.end(), "p/metadata.yaml") == 1);

  // The proxy still forwards the delayed deletes later; landing before, during or after the second
  // wipe, they only delete what that wipe deletes anyway.
  TestType::proxy().reset();
  auto again = h.wipe(*backend);
  REQUIRE(again.done());
  CHECK(h.world.keys().empty());
}

WIPE_CASE("a bucket that does not exist has nothing to delete") {
  Harness<TestType> h;
  auto backend = h.world.backend(h.client, "p", Tuning{}, "no-such-" + next_name());
  auto report = h.wipe(*backend);
  CHECK(report.done());
  CHECK(report.removed == 0);
}

WIPE_CASE("what a wipe costs: one read per nested metadata.yaml beyond the own one, each page listed twice") {
  Harness<TestType> h;
  h.world.put("p/metadata.yaml", kBody);
  h.world.put("p/n1/metadata.yaml", kBody);
  h.world.put("p/n2/metadata.yaml", kInvalid);
  for (int i = 10; i < 20; ++i) h.world.put("p/data-" + std::to_string(i), "x");
  h.put_all({"p/n1/x/metadata.yaml"});  // inside n1: never read
  auto backend = h.backend("p");
  auto report = h.wipe(*backend);
  REQUIRE(report.done());
  CHECK(report.removed == 10 + 1 + 1);
  auto [lists, reads] = h.gets();
  CHECK(reads == 3);  // own, n1, n2
  // 14 keys, 4 a page: 4 pages a pass (S3 adds one refused listing with a '/' in the prefix: moto).
  CHECK(lists >= 8);
  CHECK(lists <= 9);
}
