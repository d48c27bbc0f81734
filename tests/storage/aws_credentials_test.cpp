// The AWS credential chain: which source the environment selects (discover_chain, on hand-built
// environments), the shared files, the STS / container / IMDS replies, and the cache in front of a
// source (CachingProvider, on a fake fetcher and a fake clock): refresh before expiry, single-flight,
// errors that name the source and never the token. The sources themselves, against servers that
// check what they receive, are in tests/engine/aws_identity_e2e_test.cpp (through the binary) and at
// the end of this file (web identity, against the test STS and moto).
#include "storage/aws_credentials.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "storage/metadata.hpp"
#include "storage/s3_backend.hpp"
#include "support/aws_identity_server.hpp"
#include "support/moto_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using namespace stowage::storage::aws;
using stowage::storage::testing::run;
using stowage::storage::testing::spawn;

namespace {

Environment env_of(std::map<std::string, std::string> variables) {
  Environment env;
  env.variables = std::move(variables);
  return env;
}

std::vector<SourceKind> kinds(const Chain& chain) {
  std::vector<SourceKind> out;
  for (const auto& s : chain.found) out.push_back(s.kind);
  return out;
}

const std::map<std::string, std::string> kEverything = {
    {"AWS_ACCESS_KEY_ID", "AKIAENV"},
    {"AWS_SECRET_ACCESS_KEY", "envsecret"},
    {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"},
    {"AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"},
    {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials"},
};

}  // namespace

TEST_CASE("aws chain: every configured source is found, in the SDK order, and the first is used") {
  Environment env = env_of(kEverything);
  env.credentials_file = "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = filesecret\n";
  Chain chain = discover_chain(env);
  CHECK(kinds(chain) == std::vector<SourceKind>{SourceKind::Environment, SourceKind::Profile, SourceKind::WebIdentity,
                                                SourceKind::Container, SourceKind::InstanceMetadata});
  REQUIRE(chain.active());
  CHECK(chain.active()->static_keys.access_key_id == "AKIAENV");
  for (const auto& name : chain.names()) {  // names only: no key, no path, no URL
    CHECK(name.find("AKIA") == std::string::npos);
    CHECK(name.find("/var/run") == std::string::npos);
    CHECK(name.find("169.254") == std::string::npos);
  }

  // Take the sources away from the front one by one: the next one becomes the one used.
  env.variables.erase("AWS_ACCESS_KEY_ID");
  CHECK(discover_chain(env).active()->kind == SourceKind::Profile);
  CHECK(discover_chain(env).active()->static_keys.access_key_id == "AKIAFILE");
  env.credentials_file.reset();
  CHECK(discover_chain(env).active()->kind == SourceKind::WebIdentity);
  env.variables.erase("AWS_ROLE_ARN");
  CHECK(discover_chain(env).active()->kind == SourceKind::Container);
  env.variables.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  CHECK(discover_chain(env).active()->kind == SourceKind::InstanceMetadata);
  CHECK(discover_chain(env).active()->instance_metadata->endpoint == "http://169.254.169.254");
  env.variables["AWS_EC2_METADATA_DISABLED"] = "TRUE";
  CHECK(discover_chain(env).found.empty());
  CHECK(discover_chain(env).active() == nullptr);
}

TEST_CASE("aws chain: a key id without a secret is no source") {
  auto chain = discover_chain(env_of({{"AWS_ACCESS_KEY_ID", "AKIA"}, {"AWS_EC2_METADATA_DISABLED", "true"}}));
  CHECK(chain.found.empty());
}

TEST_CASE("aws chain: shared files: AWS_PROFILE, the config file's [profile x], credentials over config") {
  Environment env = env_of({{"AWS_PROFILE", "team"}, {"AWS_EC2_METADATA_DISABLED", "true"}});
  env.config_file =
      "# comment\n[default]\nregion = eu-west-1\n[profile  team]\nregion=eu-central-1\n"
      "aws_access_key_id = AKIACONFIG\naws_secret_access_key = configsecret\ns3 =\n  addressing_style = path\n";
  env.credentials_file =
      "[team]\naws_access_key_id=AKIACRED\naws_secret_access_key=credsecret\n"
      "aws_session_token = tok\n";
  Chain chain = discover_chain(env);
  REQUIRE(chain.active());
  CHECK(chain.active()->kind == SourceKind::Profile);
  CHECK(chain.active()->name.find("team") != std::string::npos);
  CHECK(chain.active()->static_keys.access_key_id == "AKIACRED");
  CHECK(chain.active()->static_keys.secret_access_key == "credsecret");
  CHECK(chain.active()->static_keys.session_token == "tok");

  env.credentials_file.reset();
  CHECK(discover_chain(env).active()->static_keys.access_key_id == "AKIACONFIG");

  SECTION("a profile with role_arn and web_identity_token_file is a web identity, with the profile's region") {
    env.config_file =
        "[profile team]\nrole_arn = arn:aws:iam::1:role/r\nweb_identity_token_file = /t\n"
        "role_session_name = s1\nregion = eu-north-1\n";
    Chain c = discover_chain(env);
    REQUIRE(c.active()->web_identity);
    CHECK(c.active()->web_identity->role_arn == "arn:aws:iam::1:role/r");
    CHECK(c.active()->web_identity->token_file == "/t");
    CHECK(c.active()->web_identity->session_name == "s1");
    CHECK(c.active()->web_identity->sts_endpoint == "https://sts.eu-north-1.amazonaws.com");
  }
  SECTION("AWS_PROFILE naming a profile that is nowhere is a broken source, not the next one") {
    env.variables["AWS_PROFILE"] = "missing";
    env.variables["AWS_ROLE_ARN"] = "arn:aws:iam::1:role/r";
    env.variables["AWS_WEB_IDENTITY_TOKEN_FILE"] = "/t";
    Chain c = discover_chain(env);
    CHECK(c.active()->kind == SourceKind::Profile);
    CHECK_THAT(c.active()->broken, Catch::Contains("`missing`"));
  }
  SECTION("role_arn with source_profile is refused with what to do") {
    env.config_file = "[profile team]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n";
    CHECK_THAT(discover_chain(env).active()->broken, Catch::Contains("web_identity_token_file"));
  }
  SECTION("without AWS_PROFILE, no default profile falls through to the next source") {
    env.variables.erase("AWS_PROFILE");
    env.variables["AWS_ROLE_ARN"] = "arn:aws:iam::1:role/r";
    env.variables["AWS_WEB_IDENTITY_TOKEN_FILE"] = "/t";
    CHECK(discover_chain(env).active()->kind == SourceKind::WebIdentity);
  }
}

TEST_CASE("aws chain: the STS endpoint: AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL, then regional") {
  CHECK(sts_endpoint(env_of({})) == "https://sts.amazonaws.com");
  CHECK(sts_endpoint(env_of({{"AWS_REGION", "eu-west-3"}})) == "https://sts.eu-west-3.amazonaws.com");
  CHECK(sts_endpoint(env_of({{"AWS_DEFAULT_REGION", "us-west-2"}})) == "https://sts.us-west-2.amazonaws.com");
  CHECK(sts_endpoint(env_of({{"AWS_REGION", "cn-north-1"}})) == "https://sts.cn-north-1.amazonaws.com.cn");
  CHECK(sts_endpoint(env_of({{"AWS_REGION", "eu-west-3"}, {"AWS_STS_REGIONAL_ENDPOINTS", "legacy"}})) ==
        "https://sts.amazonaws.com");
  CHECK(sts_endpoint(env_of({{"AWS_REGION", "eu-west-3"}, {"AWS_ENDPOINT_URL", "http://all:1"}})) == "http://all:1");
  CHECK(sts_endpoint(env_of({{"AWS_ENDPOINT_URL", "http://all:1"}, {"AWS_ENDPOINT_URL_STS", "http://sts:2"}})) ==
        "http://sts:2");
}

TEST_CASE("aws chain: container credentials: the relative URI first, the full URI only where the SDKs allow it") {
  auto chain = discover_chain(env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"},
                                      {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/x"}}));
  REQUIRE(chain.active()->container);
  CHECK(chain.active()->container->url == "http://169.254.170.2/v2/credentials/abc");

  auto full = [](const std::string& uri) {
    return discover_chain(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri},
                                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token"}}))
        .active()
        ->broken;
  };
  CHECK(full("http://169.254.170.23/v1/credentials").empty());
  CHECK(full("http://127.0.0.1:8080/creds").empty());
  CHECK(full("http://[::1]:8080/creds").empty());
  CHECK(full("https://creds.example.com/x").empty());
  CHECK_THAT(full("http://creds.example.com/x"), Catch::Contains("use https"));
  CHECK_THAT(full("ftp://127.0.0.1/x"), Catch::Contains("not an http(s) URL"));
}

TEST_CASE("aws chain: IMDS endpoint override and IPv6 mode") {
  auto chain = discover_chain(env_of({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/"}}));
  CHECK(chain.active()->instance_metadata->endpoint == "http://127.0.0.1:9");
  chain = discover_chain(env_of({{"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"}}));
  CHECK(chain.active()->instance_metadata->endpoint == "http://[fd00:ec2::254]");
}

TEST_CASE("aws identity: the STS reply, its errors, and the credentials JSON") {
  const std::string ok =
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>"
      "<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
      "<Expiration>2026-12-07T19:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
      "</AssumeRoleWithWebIdentityResponse>";
  auto parsed = parse_web_identity_reply(ok);
  REQUIRE(parsed.ok());
  CHECK(parsed.value().keys.access_key_id == "ASIA1");
  CHECK(parsed.value().keys.session_token == "t");
  CHECK(parsed.value().expiration == parse_rfc3339("2026-12-07T19:00:00Z"));
  auto no_token = ok;
  no_token.replace(no_token.find("<SessionToken>t</SessionToken>"), 30, "");
  CHECK_THAT(parse_web_identity_reply(no_token).error(), Catch::Contains("SessionToken"));
  CHECK_FALSE(parse_web_identity_reply("<html>").ok());

  auto err = parse_sts_error(
      "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>bad</Message></Error></ErrorResponse>");
  REQUIRE(err);
  CHECK(err->code == "InvalidIdentityToken");
  CHECK_FALSE(parse_sts_error(ok));

  auto json = parse_credentials_json(R"({"Code":"Success","AccessKeyId":"A","SecretAccessKey":"S","Token":"T",
                                         "Expiration":"2026-12-07T19:00:00.000Z"})");
  REQUIRE(json.ok());
  CHECK(json.value().keys.session_token == "T");
  CHECK(json.value().expiration.has_value());
  CHECK_THAT(parse_credentials_json(R"({"Code":"Failure"})").error(), Catch::Contains("Failure"));
  CHECK_THAT(parse_credentials_json(R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"})").error(),
             Catch::Contains("RFC 3339"));
  CHECK_FALSE(parse_credentials_json(R"({"AccessKeyId":1})").ok());
  CHECK_FALSE(parse_credentials_json("[]").ok());

  CHECK(
      web_identity_request_body("arn:a", "s", "a.b+c") ==
      "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aa&RoleSessionName=s&WebIdentityToken=a.b%2Bc");
}

// ---- The cache ----

namespace {

using Fetched = Result<TimedCredentials, BackendError>;

// Answers from a script, after `delay` on the reactor; counts calls.
struct FakeFetcher final : CredentialFetcher {
  std::function<Fetched(int call)> answer;
  std::chrono::milliseconds delay{0};
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  boost::asio::awaitable<Fetched> fetch() override {
    int n = ++*calls;
    if (delay.count() > 0) {
      boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, delay);
      co_await timer.async_wait(boost::asio::use_awaitable);
    }
    co_return answer(n);
  }
};

struct FakeClock {
  std::shared_ptr<WallClock::time_point> at = std::make_shared<WallClock::time_point>(WallClock::now());
  std::function<WallClock::time_point()> fn() const {
    return [at = at] { return *at; };
  }
  void advance(std::chrono::milliseconds d) const { *at += d; }
};

// Keys "K<call>" that expire `lifetime` after the fake clock's present.
std::function<Fetched(int)> expiring(const FakeClock& clock, std::chrono::seconds lifetime) {
  return [clock, lifetime](int n) -> Fetched {
    return TimedCredentials{{"K" + std::to_string(n), "S", "T" + std::to_string(n)}, *clock.at + lifetime};
  };
}

}  // namespace

TEST_CASE("aws cache: the refresh time is 5 minutes before expiry, or half the lifetime when that is shorter") {
  const auto now = WallClock::now();
  CHECK(CachingProvider::refresh_time(now, now + std::chrono::hours(1)) == now + std::chrono::minutes(55));
  CHECK(CachingProvider::refresh_time(now, now + std::chrono::seconds(4)) == now + std::chrono::seconds(2));
  CHECK(CachingProvider::refresh_time(now, now + std::chrono::minutes(6)) == now + std::chrono::minutes(3));
  CHECK(CachingProvider::refresh_time(now, now - std::chrono::seconds(1)) == now);
}

TEST_CASE("aws cache: credentials that expire in seconds are refreshed before use, never used expired") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = expiring(clock, std::chrono::seconds(4));
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingProvider provider("src", std::move(f), clock.fn());
  auto get = [&] { return run(io, provider.credentials()); };

  auto first = get();
  REQUIRE(first.ok());
  CHECK(first.value().access_key_id == "K1");
  CHECK(first.value().session_token == "T1");
  clock.advance(std::chrono::milliseconds(1900));
  CHECK(get().value().access_key_id == "K1");  // within the first half of its 4 s
  CHECK(*calls == 1);
  clock.advance(std::chrono::milliseconds(200));  // 2.1 s: past half-life, still valid: refreshed anyway
  CHECK(get().value().access_key_id == "K2");
  CHECK(*calls == 2);
  clock.advance(std::chrono::seconds(10));  // long expired: never handed out
  CHECK(get().value().access_key_id == "K3");
}

TEST_CASE("aws cache: hour-long credentials are reused until 5 minutes before they expire") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = expiring(clock, std::chrono::hours(1));
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingProvider provider("src", std::move(f), clock.fn());
  CHECK(run(io, provider.credentials()).value().access_key_id == "K1");
  clock.advance(std::chrono::minutes(54));
  CHECK(run(io, provider.credentials()).value().access_key_id == "K1");
  clock.advance(std::chrono::minutes(2));
  CHECK(run(io, provider.credentials()).value().access_key_id == "K2");
  CHECK(*calls == 2);
}

TEST_CASE("aws cache: 100 waiting storages, one exchange, one outcome") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = expiring(clock, std::chrono::hours(1));
  f->delay = std::chrono::milliseconds(50);  // the exchange is in flight while the others ask
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingProvider provider("src", std::move(f), clock.fn());
  std::vector<std::future<std::optional<BackendResult<s3::Credentials>>>> waiting;
  for (int i = 0; i < 100; ++i) waiting.push_back(spawn(io, provider.credentials()));
  io.run();
  std::set<std::string> keys;
  for (auto& w : waiting) {
    auto r = *w.get();
    REQUIRE(r.ok());
    keys.insert(r.value().access_key_id);
  }
  CHECK(*calls == 1);
  CHECK(provider.fetches() == 1);
  CHECK(keys == std::set<std::string>{"K1"});

  SECTION("an error is shared the same way, names the source, and is not cached") {
    auto failing = std::make_unique<FakeFetcher>();
    failing->answer = [](int) -> Fetched {
      return Err(BackendError{false, "StsRefused", "STS refused role arn:r (InvalidIdentityToken)", std::nullopt});
    };
    failing->delay = std::chrono::milliseconds(50);
    auto failing_calls = failing->calls;
    CachingProvider refused("web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)", std::move(failing), clock.fn());
    std::vector<std::future<std::optional<BackendResult<s3::Credentials>>>> all;
    for (int i = 0; i < 100; ++i) all.push_back(spawn(io, refused.credentials()));
    io.restart();
    io.run();
    for (auto& w : all) {
      auto r = *w.get();
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == "StsRefused");
      CHECK_THAT(r.error().message, Catch::StartsWith("AWS credentials from web identity (AWS_ROLE_ARN"));
    }
    CHECK(*failing_calls == 1);
    CHECK_FALSE(run(io, refused.credentials()).ok());
    CHECK(*failing_calls == 2);  // the next call tries again
  }
}

TEST_CASE("aws cache: a failed refresh keeps keys that are still valid, and drops expired ones") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = [clock](int n) -> Fetched {
    if (n == 1) return TimedCredentials{{"K1", "S", "T"}, *clock.at + std::chrono::minutes(20)};
    return Err(BackendError{true, "StsUnavailable", "STS answered HTTP 503", std::nullopt});
  };
  boost::asio::io_context io;
  CachingProvider provider("src", std::move(f), clock.fn());
  CHECK(run(io, provider.credentials()).value().access_key_id == "K1");
  clock.advance(std::chrono::minutes(16));  // refresh due, STS down: K1 still has 4 minutes
  CHECK(run(io, provider.credentials()).value().access_key_id == "K1");
  clock.advance(std::chrono::minutes(4));  // K1 expired, STS still down: the error, with the source
  auto r = run(io, provider.credentials());
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Contains("AWS credentials from src: STS answered HTTP 503"));
  CHECK(r.error().transient);
}

TEST_CASE("aws cache: keys S3 refused are fetched again, long-lived keys are not") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = expiring(clock, std::chrono::hours(1));
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingProvider provider("src", std::move(f), clock.fn());
  auto k1 = run(io, provider.credentials()).value();
  provider.rejected(s3::Credentials{"other", "S", "T"});  // not the cached ones: nothing happens
  CHECK(run(io, provider.credentials()).value().access_key_id == "K1");
  provider.rejected(k1);
  CHECK(run(io, provider.credentials()).value().access_key_id == "K2");
  CHECK(*calls == 2);

  auto fixed = std::make_unique<FakeFetcher>();
  fixed->answer = [](int) -> Fetched { return TimedCredentials{{"AKIA", "S", ""}, std::nullopt}; };
  auto fixed_calls = fixed->calls;
  CachingProvider static_keys("environment keys", std::move(fixed), clock.fn());
  auto keys = run(io, static_keys.credentials()).value();
  clock.advance(std::chrono::hours(100));
  static_keys.rejected(keys);
  CHECK(run(io, static_keys.credentials()).value().access_key_id == "AKIA");
  CHECK(*fixed_calls == 1);
}

// ---- Web identity against the test STS, credentials checked by moto ----

TEST_CASE("aws web identity: the token file is re-read for every exchange, and S3 accepts the credentials") {
  using namespace test_support;
  testing::TempDir dir;
  MotoServer moto;
  moto.make_bucket("wi-bucket");
  const auto token_file = dir.path() / "token";
  testing::write_file(token_file, "token-one\n");
  AwsIdentityServer sts(moto, dir.path(), {"sts", token_file});

  boost::asio::io_context io;
  boost::asio::thread_pool files(1);
  http::Client client(io.get_executor());
  SourceSettings source;
  source.kind = SourceKind::WebIdentity;
  source.name = "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)";
  source.web_identity = WebIdentitySettings{MotoServer::role_arn(), token_file.string(), "", sts.url()};
  auto fetcher = make_fetcher(source, client, files.get_executor());

  auto first = run(io, fetcher->fetch());
  INFO((first.ok() ? std::string() : first.error().message) << "\n" << testing::read_file(sts.log()));
  REQUIRE(first.ok());
  CHECK(first.value().keys.session_token.size() > 0);
  CHECK(first.value().expiration.has_value());

  testing::write_file(token_file, "token-two");  // the kubelet rotates it (the server reads the same file)
  auto second = run(io, fetcher->fetch());
  REQUIRE(second.ok());
  CHECK(sts.exchanges() == 2);
  CHECK(sts.refused() == 0);

  // S3 with those credentials: moto checks key, secret and session token.
  S3Options o;
  o.endpoint = moto.endpoint();
  o.bucket = "wi-bucket";
  o.credential_provider =
      std::make_shared<CachingProvider>(source.name, make_fetcher(source, client, files.get_executor()));
  S3Backend backend(client, o);
  auto created = run(io, backend.create_metadata(render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"})));
  REQUIRE(created.ok());
  CHECK(moto.get_object("wi-bucket", "metadata.yaml").has_value());

  SECTION("a token STS refuses: the error names the source and the role, never the token") {
    testing::write_file(token_file, "token-three");
    auto wrong = dir.path() / "wrong";
    testing::write_file(wrong, "not-the-token-xyz");
    source.web_identity->token_file = wrong.string();
    CachingProvider refused(source.name, make_fetcher(source, client, files.get_executor()));
    auto r = run(io, refused.credentials());
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.error().transient);
    CHECK_THAT(r.error().message, Catch::Contains("web identity") && Catch::Contains("InvalidIdentityToken") &&
                                      Catch::Contains(MotoServer::role_arn()));
    CHECK(r.error().message.find("not-the-token-xyz") == std::string::npos);
  }
}

TEST_CASE("aws web identity: a token file that is a device, too large or empty is refused before any exchange") {
  testing::TempDir dir;
  boost::asio::io_context io;
  boost::asio::thread_pool files(1);
  http::Client client(io.get_executor());
  SourceSettings source;
  source.kind = SourceKind::WebIdentity;
  source.name = "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)";
  // Nothing listens on port 1: a request would fail with a transport error, not the file's.
  source.web_identity = WebIdentitySettings{"arn:aws:iam::123456789012:role/r", "", "", "http://127.0.0.1:1"};
  auto refused = [&](const std::string& path) {
    source.web_identity->token_file = path;
    auto r = run(io, make_fetcher(source, client, files.get_executor())->fetch());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "WebIdentityTokenUnreadable");
    return r.error().message;
  };
  // /dev/zero never ends: only a bounded read comes back.
  CHECK_THAT(refused("/dev/zero"), Catch::Contains("too large to be a token"));
  const auto big = dir.path() / "big";
  testing::write_file(big, std::string(64 * 1024 + 1, 'a'));
  CHECK_THAT(refused(big.string()), Catch::Contains("too large to be a token"));
  const auto blank = dir.path() / "blank";
  testing::write_file(blank, "\n");
  CHECK_THAT(refused(blank.string()), Catch::Contains("empty"));
  CHECK_THAT(refused((dir.path() / "missing").string()), Catch::Contains("cannot be opened"));
}

TEST_CASE("aws s3: temporary credentials S3 refuses are named by source, dropped, and fetched again") {
  using namespace test_support;
  MotoServer moto;
  moto.make_bucket("refused-bucket");
  const auto& c = moto.credentials();
  auto f = std::make_unique<FakeFetcher>();
  f->answer = [&c](int n) -> Fetched {
    // The first answer carries a session token moto never issued (a revoked session, say).
    return TimedCredentials{{c.session_access_key_id, c.session_secret_access_key,
                             n == 1 ? std::string("FQoGZXIvYXdzEBogus") : c.session_token},
                            WallClock::now() + std::chrono::hours(1)};
  };
  auto calls = f->calls;
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  S3Options o;
  o.endpoint = moto.endpoint();
  o.bucket = "refused-bucket";
  o.retry.max_attempts = 1;
  o.credential_provider =
      std::make_shared<CachingProvider>("container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)", std::move(f));
  S3Backend backend(client, o);
  auto first = run(io, backend.read_metadata());
  REQUIRE_FALSE(first.ok());
  CHECK_THAT(first.error().message, Catch::Contains("container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)"));
  CHECK(first.error().message.find("FQoGZXIvYXdzEBogus") == std::string::npos);
  auto second = run(io, backend.read_metadata());
  INFO((second.ok() ? std::string() : second.error().message));
  REQUIRE(second.ok());
  CHECK(*calls == 2);
}

TEST_CASE("aws web identity: 100 storages share one exchange, and 4-second credentials are refreshed at half-life") {
  using namespace test_support;
  testing::TempDir dir;
  MotoServer moto;
  moto.make_bucket("shared-bucket");
  const auto token_file = dir.path() / "token";
  testing::write_file(token_file, "shared-token");
  AwsIdentityServer sts(moto, dir.path(), {"sts", token_file, 4});

  boost::asio::io_context io;
  boost::asio::thread_pool files(1);
  http::Client client(io.get_executor());
  SourceSettings source;
  source.name = "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)";
  source.web_identity = WebIdentitySettings{MotoServer::role_arn(), token_file.string(), "", sts.url()};
  auto provider = std::make_shared<CachingProvider>(source.name, make_fetcher(source, client, files.get_executor()));
  std::vector<std::unique_ptr<S3Backend>> storages;
  for (int i = 0; i < 100; ++i) {
    S3Options o;
    o.endpoint = moto.endpoint();
    o.bucket = "shared-bucket";
    o.prefix = "s" + std::to_string(i);
    o.max_connections = 4;
    o.credential_provider = provider;
    storages.push_back(std::make_unique<S3Backend>(client, o));
  }
  auto read_all = [&] {
    std::vector<std::future<std::optional<BackendResult<MetadataState>>>> reads;
    for (auto& s : storages) reads.push_back(spawn(io, s->read_metadata()));
    io.restart();
    io.run();
    int ok = 0;
    for (auto& r : reads) ok += (*r.get()).ok() ? 1 : 0;
    return ok;
  };
  CHECK(read_all() == 100);
  CHECK(sts.exchanges() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // past half of the announced 4 s
  CHECK(read_all() == 100);
  CHECK(sts.exchanges() == 2);
  CHECK(provider->fetches() == 2);
}

TEST_CASE("aws instance metadata: a server that never answers ends after the timeout, naming the hop limit") {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  boost::asio::ip::tcp::socket held(io);
  silent.async_accept(held, [](boost::system::error_code) {});  // accepts, reads nothing, answers nothing
  http::Client client(io.get_executor());
  SourceSettings source;
  source.name = "instance metadata (IMDSv2)";
  source.instance_metadata =
      InstanceMetadataSettings{"http://127.0.0.1:" + std::to_string(silent.local_endpoint().port())};
  CachingProvider provider(source.name, make_fetcher(source, client, io.get_executor()));
  const auto started = std::chrono::steady_clock::now();
  auto r = run(io, provider.credentials());
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().transient);
  CHECK_THAT(r.error().message, Catch::Contains("instance metadata (IMDSv2)") && Catch::Contains("hop limit"));
  CHECK(took >= kImdsTimeout);
  CHECK(took < kImdsTimeout + std::chrono::seconds(5));
}
