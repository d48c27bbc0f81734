// S3Backend against a real S3 implementation: moto 5 with signature checking ON (see
// tests/support/moto_server.hpp). The server's state is checked through boto3, an independent
// client. One moto serves every test in the process (each test uses its own buckets); the TLS
// tests start their own.
//
// moto quirks the tests live with (storage-backends.md, and found here): keys holding
// + = & , ; : @ or non-ASCII bytes in the URL are falsely refused (it re-signs the decoded URL), so
// the keys below avoid them; a ListObjectsV2 prefix holding any '/' is refused the same way, which
// the backend detects and works around (s3_backend.cpp) - every WipeOut test here goes through it.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <set>
#include <vector>

#include "storage/metadata.hpp"
#include "storage/s3_backend.hpp"
#include "support/moto_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;
using stowage::storage::testing::spawn;
using test_support::MotoServer;

namespace {

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

MotoServer& moto() {
  static MotoServer server;
  return server;
}

S3Options options_for(const MotoServer& server, const std::string& bucket, const std::string& prefix = "") {
  S3Options o;
  o.endpoint = server.endpoint();
  o.bucket = bucket;
  o.prefix = prefix;
  o.access_key_id = server.credentials().access_key_id;
  o.secret_access_key = server.credentials().secret_access_key;
  o.tls.ca_pem = server.ca_pem();
  return o;
}

struct Harness {
  boost::asio::io_context io;
  http::Client client{io.get_executor()};

  S3Backend backend(S3Options options) { return S3Backend(client, std::move(options)); }
};

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("S3 identity and metadata_location: no secrets, trimmed slashes, KubeStash's key") {
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  S3Options o;
  o.endpoint = "https://minio.example:9000/";
  o.bucket = "backups/";
  o.prefix = "/backup/demo/";
  o.access_key_id = "AKIDSECRETISH";
  o.secret_access_key = "very-secret";
  S3Backend custom(client, o);
  CHECK(custom.identity() == "s3:https://minio.example:9000/backups/backup/demo");
  CHECK(custom.metadata_location() == "s3://backups/backup/demo/metadata.yaml");
  CHECK(custom.identity().find("very-secret") == std::string::npos);
  CHECK(custom.region() == "us-east-1");

  o.endpoint.clear();
  o.prefix.clear();
  S3Backend aws(client, o);
  CHECK(aws.identity() == "s3:https://s3.amazonaws.com/backups");
  CHECK(aws.metadata_location() == "s3://backups/metadata.yaml");

  o.endpoint = "https://s3.us-west-1.amazonaws.com";
  CHECK(S3Backend(client, o).region() == "us-west-1");  // named by the AWS endpoint
  o.region = "eu-central-1";
  CHECK(S3Backend(client, o).region() == "eu-central-1");  // the spec wins
}

TEST_CASE("S3 create_metadata creates once, then AlreadyExists with the content left alone") {
  auto& server = moto();
  server.make_bucket("create-once");
  Harness h;
  auto backend = h.backend(options_for(server, "create-once", "/backup/demo/"));

  auto first = run(h.io, backend.create_metadata(kBody));
  REQUIRE(first.ok());
  CHECK(first.value() == CreateOutcome::Created);
  // KubeStash's layout: "/backup/demo/" -> backup/demo/metadata.yaml, nothing else.
  CHECK(server.list_keys("create-once") == std::vector<std::string>{"backup/demo/metadata.yaml"});
  CHECK(server.get_object("create-once", "backup/demo/metadata.yaml") == kBody);

  const std::string other = render_metadata({"2030-01-01T00:00:00Z", "v9.9.9"});
  auto second = run(h.io, backend.create_metadata(other));
  REQUIRE(second.ok());
  CHECK(second.value() == CreateOutcome::AlreadyExists);
  CHECK(server.get_object("create-once", "backup/demo/metadata.yaml") == kBody);

  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().exists);
  REQUIRE(state.value().meta);
  CHECK(state.value().meta->creation_timestamp == "2025-04-21T12:29:15Z");
  CHECK(state.value().meta->operator_version == "v0.1.0");
}

TEST_CASE("S3 create_metadata raced by six writers: exactly one Created") {
  // Writers whose HEADs all miss the object are kept apart by If-None-Match (moto answers the losers'
  // conditional PUTs with 412); s3_fault_test.cpp shows that path deterministically.
  auto& server = moto();
  server.make_bucket("create-race");
  Harness h;
  std::vector<S3Backend> backends;
  for (int i = 0; i < 6; ++i) backends.push_back(h.backend(options_for(server, "create-race", "race")));
  std::vector<std::future<std::optional<BackendResult<CreateOutcome>>>> futures;
  for (int i = 0; i < 6; ++i)
    futures.push_back(spawn(h.io, backends[i].create_metadata(render_metadata({"2025-01-01T00:00:0" +
                                                                                   std::to_string(i) + "Z",
                                                                               "v0.1.0"}))));
  h.io.run();
  int created = 0, exists = 0;
  for (auto& f : futures) {
    auto result = *f.get();
    REQUIRE(result.ok());
    (result.value() == CreateOutcome::Created ? created : exists)++;
  }
  CHECK(created == 1);
  CHECK(exists == 5);
}

TEST_CASE("S3 read_metadata: absent, present but invalid, at the bucket root") {
  auto& server = moto();
  server.make_bucket("read-cases");
  Harness h;

  auto absent = run(h.io, h.backend(options_for(server, "read-cases", "nothing/here")).read_metadata());
  REQUIRE(absent.ok());
  CHECK_FALSE(absent.value().exists);

  server.put_object("read-cases", "broken/metadata.yaml", "kind: Something\n");
  auto invalid = run(h.io, h.backend(options_for(server, "read-cases", "broken/")).read_metadata());
  REQUIRE(invalid.ok());
  CHECK(invalid.value().exists);
  CHECK_FALSE(invalid.value().meta);
  CHECK_FALSE(invalid.value().invalid_reason.empty());

  auto root = h.backend(options_for(server, "read-cases", ""));
  REQUIRE(run(h.io, root.create_metadata(kBody)).ok());
  CHECK(server.get_object("read-cases", "metadata.yaml") == kBody);
  auto state = run(h.io, root.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().meta);
}

TEST_CASE("S3 WipeOut empties exactly the prefix over more than one 1000-key page") {
  auto& server = moto();
  server.make_bucket("wipe-big");
  server.put_objects("wipe-big", "backup/demo/repo/chunk-", 1100);
  const std::vector<std::string> outside = {"backup/demo",          "backup/demo-old/x", "backup/demo.x",
                                            "backup/demo0",         "backup/dem",        "backupdemo/x",
                                            "other/backup/demo/x", "backup/zzz"};
  for (const auto& key : outside) server.put_object("wipe-big", key, "keep");

  Harness h;
  auto backend = h.backend(options_for(server, "wipe-big", "/backup/demo/"));
  REQUIRE(run(h.io, backend.create_metadata(kBody)).ok());
  auto report = run(h.io, backend.wipe({}));
  REQUIRE(report.done());
  CHECK(report.removed == 1101);
  CHECK(as_set(server.list_keys("wipe-big")) == as_set(outside));

  // metadata.yaml went last: nothing proves ownership any more, so nothing more is deleted.
  auto again = run(h.io, backend.wipe({}));
  REQUIRE(again.refused);
  CHECK(again.refused->code == "NotOwned");
}

TEST_CASE("S3 WipeOut pages with a small max-keys, and with an empty prefix empties the bucket") {
  auto& server = moto();
  server.make_bucket("wipe-pages");
  server.put_objects("wipe-pages", "data/p/", 45);
  server.put_objects("wipe-pages", "data/a", 5);  // sort before "data/p/" under the listing's segment
  server.put_objects("wipe-pages", "data/q", 5);  // sort after it

  Harness h;
  auto options = options_for(server, "wipe-pages", "data/p");
  options.list_page_size = 7;
  auto backend = h.backend(options);
  REQUIRE(run(h.io, backend.create_metadata(kBody)).ok());
  auto report = run(h.io, backend.wipe({}));
  REQUIRE(report.done());
  CHECK(report.removed == 46);
  CHECK(server.list_keys("wipe-pages").size() == 10);

  options.prefix = "";
  auto root = h.backend(options);
  REQUIRE(run(h.io, root.create_metadata(kBody)).ok());
  auto everything = run(h.io, root.wipe({}));
  REQUIRE(everything.done());
  CHECK(everything.removed == 11);
  CHECK(server.list_keys("wipe-pages").empty());
}

TEST_CASE("S3 check_access passes on a bucket the credentials may use") {
  auto& server = moto();
  server.make_bucket("access-ok");
  Harness h;
  auto result = run(h.io, h.backend(options_for(server, "access-ok")).check_access());
  CHECK(result.ok());
}

TEST_CASE("S3 wrong secret: permanent, says to check AWS_SECRET_ACCESS_KEY, never shows the secret") {
  auto& server = moto();
  server.make_bucket("wrong-secret");
  Harness h;
  auto options = options_for(server, "wrong-secret", "p");
  options.secret_access_key = "not-the-secret-0123456789";
  auto backend = h.backend(options);

  auto check = [&](const BackendError& e) {
    CHECK_FALSE(e.transient);
    CHECK(e.code == "SignatureDoesNotMatch");
    CHECK(e.message.find("check AWS_SECRET_ACCESS_KEY") != std::string::npos);
    CHECK(e.message.find(server.endpoint()) != std::string::npos);
    CHECK(e.message.find(options.secret_access_key) == std::string::npos);
    CHECK(e.message.find("Signature=") == std::string::npos);
  };
  auto access = run(h.io, backend.check_access());  // HEAD 403 without a body, then diagnosed
  REQUIRE_FALSE(access.ok());
  check(access.error());
  auto read = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(read.ok());
  check(read.error());
  auto create = run(h.io, backend.create_metadata(kBody));
  REQUIRE_FALSE(create.ok());
  check(create.error());
  auto wipe = run(h.io, backend.wipe({}));
  REQUIRE(wipe.error);
  check(*wipe.error);
  CHECK(server.list_keys("wrong-secret").empty());
}

TEST_CASE("S3 unknown access key id: permanent, says to check AWS_ACCESS_KEY_ID") {
  auto& server = moto();
  server.make_bucket("wrong-key-id");
  Harness h;
  auto options = options_for(server, "wrong-key-id");
  options.access_key_id = "AKIANOTAKEYATALL000";
  auto result = run(h.io, h.backend(options).read_metadata());
  REQUIRE_FALSE(result.ok());
  CHECK_FALSE(result.error().transient);
  CHECK(result.error().code == "InvalidAccessKeyId");
  CHECK(result.error().message.find("check AWS_ACCESS_KEY_ID") != std::string::npos);
  CHECK(result.error().message.find("request id") != std::string::npos);
}

TEST_CASE("S3 missing bucket: NoSuchBucket naming the bucket and the endpoint, and WipeOut has nothing to delete") {
  auto& server = moto();
  Harness h;
  auto backend = h.backend(options_for(server, "no-such-bucket-here", "p"));
  const std::string expected =
      "S3 bucket `no-such-bucket-here` does not exist at endpoint `" + server.endpoint() + "`";
  auto check = [&](const BackendError& e) {
    CHECK_FALSE(e.transient);
    CHECK(e.code == "NoSuchBucket");
    CHECK(e.message.rfind(expected, 0) == 0);
  };
  auto access = run(h.io, backend.check_access());
  REQUIRE_FALSE(access.ok());
  check(access.error());
  auto read = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(read.ok());
  check(read.error());
  auto create = run(h.io, backend.create_metadata(kBody));
  REQUIRE_FALSE(create.ok());
  check(create.error());
  auto wipe = run(h.io, backend.wipe({}));
  CHECK(wipe.done());
  CHECK(wipe.removed == 0);
}

TEST_CASE("S3 temporary credentials: the session token is sent and signed, a wrong one is refused") {
  auto& server = moto();
  server.make_bucket("session-token");
  Harness h;
  auto options = options_for(server, "session-token", "sts");
  options.access_key_id = server.credentials().session_access_key_id;
  options.secret_access_key = server.credentials().session_secret_access_key;
  options.session_token = server.credentials().session_token;
  auto created = run(h.io, h.backend(options).create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(server.get_object("session-token", "sts/metadata.yaml") == kBody);

  options.session_token = "not-the-token";
  auto refused = run(h.io, h.backend(options).read_metadata());
  REQUIRE_FALSE(refused.ok());
  CHECK_FALSE(refused.error().transient);
  CHECK(refused.error().code == "InvalidToken");
  CHECK(refused.error().message.find("check AWS_SESSION_TOKEN") != std::string::npos);
  CHECK(refused.error().message.find("not-the-token") == std::string::npos);
}

TEST_CASE("S3 over TLS: trusted through CA_CERT_DATA, or insecure, refused with neither") {
  MotoServer server({.tls = true});
  server.make_bucket("tls-bucket");
  Harness h;

  auto with_ca = options_for(server, "tls-bucket", "ca");
  REQUIRE_FALSE(with_ca.tls.ca_pem.empty());
  auto created = run(h.io, h.backend(with_ca).create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);

  auto insecure = options_for(server, "tls-bucket", "insecure");
  insecure.tls.ca_pem.clear();
  insecure.tls.insecure = true;
  auto created_insecure = run(h.io, h.backend(insecure).create_metadata(kBody));
  REQUIRE(created_insecure.ok());
  CHECK(created_insecure.value() == CreateOutcome::Created);

  auto neither = options_for(server, "tls-bucket", "neither");
  neither.tls.ca_pem.clear();
  const auto start = std::chrono::steady_clock::now();
  auto refused = run(h.io, h.backend(neither).create_metadata(kBody));
  REQUIRE_FALSE(refused.ok());
  CHECK_FALSE(refused.error().transient);
  CHECK(refused.error().code == "TLSVerifyFailed");
  CHECK(refused.error().message.find("127.0.0.1:" + std::to_string(server.port())) != std::string::npos);
  CHECK(refused.error().message.find("CA_CERT_DATA") != std::string::npos);
  CHECK(refused.error().message.find("insecureTLS") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // not retried
  CHECK(server.list_keys("tls-bucket") ==
        std::vector<std::string>{"ca/metadata.yaml", "insecure/metadata.yaml"});
}
