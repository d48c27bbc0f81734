// Azure credentials without an account key: which source the environment selects (discover_chain,
// on hand-built environments), the Entra and IMDS requests and replies, the token cache (on a fake
// fetcher and a fake clock: refresh before expiry, single-flight, errors that name the source and
// never the token), the fetchers against tests/servers/azure_token_server.py (which checks tenant,
// client, grant, scope and the assertion or secret), and AzureBackend's Bearer requests against
// Azurite with OAuth on (HTTPS, --oauth basic: it checks the token's audience, issuer and lifetime).
// Through the binary: tests/engine/azure_identity_e2e_test.cpp.
#include "storage/azure_credentials.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <set>
#include <thread>

#include "common/crypto.hpp"
#include "storage/azure_backend.hpp"
#include "storage/metadata.hpp"
#include "support/azure_token_server.hpp"
#include "support/azurite_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using namespace stowage::storage::azure;
using stowage::storage::testing::run;
using stowage::storage::testing::spawn;

namespace {

IdentityEnvironment env_of(std::map<std::string, std::string> variables) {
  IdentityEnvironment env;
  env.variables = std::move(variables);
  return env;
}

std::vector<SourceKind> kinds(const Chain& chain) {
  std::vector<SourceKind> out;
  for (const auto& s : chain.found) out.push_back(s.kind);
  return out;
}

const std::string kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const std::string kClient = "0b9f2d6e-5a1c-4f5e-9b0e-3c2d1e0f9a8b";

}  // namespace

// ---- The chain ----

TEST_CASE("azure chain: service principal, workload identity, then managed identity, the first used") {
  auto all = discover_chain(env_of({{"AZURE_TENANT_ID", kTenant},
                                    {"AZURE_CLIENT_ID", kClient},
                                    {"AZURE_CLIENT_SECRET", "s3cr3t"},
                                    {"AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"}}));
  CHECK(kinds(all) ==
        std::vector<SourceKind>{SourceKind::ServicePrincipal, SourceKind::WorkloadIdentity, SourceKind::ManagedIdentity});
  CHECK(all.active()->name == "service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)");
  for (const auto& s : all.found) CHECK(s.broken.empty());
  CHECK(all.found[0].client->client_secret == "s3cr3t");
  CHECK(all.found[0].client->authority_host == "https://login.microsoftonline.com/");
  CHECK(all.found[1].client->assertion_file == "/var/run/secrets/azure/tokens/azure-identity-token");
  CHECK(all.found[1].client->client_secret.empty());
  CHECK(all.found[2].managed->client_id == kClient);  // a user-assigned identity
  CHECK(all.found[2].name == "managed identity (IMDS, AZURE_CLIENT_ID)");

  // What the AKS webhook injects.
  auto wi = discover_chain(env_of({{"AZURE_TENANT_ID", kTenant},
                                   {"AZURE_CLIENT_ID", kClient},
                                   {"AZURE_FEDERATED_TOKEN_FILE", "/t"},
                                   {"AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"}}));
  CHECK(wi.active()->kind == SourceKind::WorkloadIdentity);
  CHECK(wi.active()->name == "workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)");
  CHECK(token_url(*wi.active()->client) == "https://login.microsoftonline.us/" + kTenant + "/oauth2/v2.0/token");

  // Nothing set: the system-assigned managed identity at the link-local address.
  auto none = discover_chain(env_of({}));
  REQUIRE(kinds(none) == std::vector<SourceKind>{SourceKind::ManagedIdentity});
  CHECK(none.active()->name == "managed identity (IMDS)");
  CHECK(none.active()->managed->host == "http://169.254.169.254");
  CHECK(none.active()->managed->client_id.empty());
  CHECK(none.active()->broken.empty());

  auto redirected = discover_chain(env_of({{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:8080/"}}));
  CHECK(redirected.active()->managed->host == "http://127.0.0.1:8080");
  CHECK(redirected.active()->name == "managed identity (IMDS, AZURE_POD_IDENTITY_AUTHORITY_HOST)");
}

TEST_CASE("azure chain: a configured source that cannot work is still chosen, and says why") {
  auto no_tenant = discover_chain(env_of({{"AZURE_CLIENT_ID", kClient}, {"AZURE_FEDERATED_TOKEN_FILE", "/t"}}));
  CHECK(no_tenant.active()->kind == SourceKind::WorkloadIdentity);  // not a silent fall back to IMDS
  CHECK_THAT(no_tenant.active()->broken, Catch::Contains("AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID is not"));

  auto path_tenant = discover_chain(
      env_of({{"AZURE_TENANT_ID", "../evil"}, {"AZURE_CLIENT_ID", kClient}, {"AZURE_FEDERATED_TOKEN_FILE", "/t"}}));
  CHECK_THAT(path_tenant.active()->broken, Catch::Contains("AZURE_TENANT_ID is not a tenant id"));

  auto plain = discover_chain(env_of({{"AZURE_TENANT_ID", kTenant},
                                      {"AZURE_CLIENT_ID", kClient},
                                      {"AZURE_CLIENT_SECRET", "s"},
                                      {"AZURE_AUTHORITY_HOST", "http://login.example.com/"}}));
  CHECK_THAT(plain.active()->broken, Catch::Contains("AZURE_AUTHORITY_HOST is plain http"));
  CHECK(plain.active()->broken.find("s3cr3t") == std::string::npos);

  auto imds = discover_chain(env_of({{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://imds.example.com"}}));
  CHECK_THAT(imds.active()->broken, Catch::Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST is plain http"));

  ClientCredentialSettings ok;
  ok.tenant_id = "contoso.onmicrosoft.com";
  ok.client_id = kClient;
  CHECK(client_credentials_problem(ok).empty());
  ok.authority_host = "http://127.0.0.1:9999";  // a loopback test endpoint may be plain http
  CHECK(client_credentials_problem(ok).empty());
  ok.client_id = "a\r\nInjected: 1";
  CHECK_THAT(client_credentials_problem(ok), Catch::Contains("AZURE_CLIENT_ID contains a control character"));
}

TEST_CASE("azure identity: the client-credentials form, the IMDS target") {
  ClientCredentialSettings s;
  s.tenant_id = kTenant;
  s.client_id = "c1";
  s.client_secret = "a+b&c";
  CHECK(client_credentials_body(s, "") ==
        "grant_type=client_credentials&client_id=c1&scope=https%3A%2F%2Fstorage.azure.com%2F.default"
        "&client_secret=a%2Bb%26c");
  CHECK(client_credentials_body(s, "eyJ.x.y") ==
        "grant_type=client_credentials&client_id=c1&scope=https%3A%2F%2Fstorage.azure.com%2F.default"
        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        "&client_assertion=eyJ.x.y");
  ManagedIdentitySettings m;
  CHECK(imds_target(m) ==
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F");
  m.client_id = "c1";
  CHECK_THAT(imds_target(m), Catch::EndsWith("&client_id=c1"));
}

TEST_CASE("azure identity: token replies from Entra (numbers) and IMDS (strings), and what is refused") {
  const auto now = WallClock::now();
  auto entra = parse_token_reply(R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,
                                     "access_token":"eyJ0eXAi.eyJhdWQi.c2ln"})",
                                 now);
  REQUIRE(entra.ok());
  CHECK(entra.value().token == "eyJ0eXAi.eyJhdWQi.c2ln");
  CHECK(entra.value().expires_at == now + std::chrono::seconds(3599));

  auto imds = parse_token_reply(R"({"access_token":"eyJ.a.b","refresh_token":"","expires_in":"86399",
                                    "expires_on":"1700000000","not_before":"1699913300",
                                    "resource":"https://storage.azure.com/","token_type":"Bearer"})",
                                now);
  REQUIRE(imds.ok());
  CHECK(imds.value().expires_at == now + std::chrono::seconds(86399));
  auto on_only = parse_token_reply(R"({"access_token":"t","expires_on":"1700000000"})", now);
  REQUIRE(on_only.ok());
  CHECK(on_only.value().expires_at == WallClock::time_point(std::chrono::seconds(1700000000)));

  // Found by the fuzzer: a year past 2262 overflowed the nanosecond clock (undefined behaviour).
  CHECK_THAT(parse_token_reply(R"({"access_token":"t","expires_on":"17005000000"})", now).error(),
             Catch::Contains("within a year"));
  CHECK_THAT(parse_token_reply(R"({"access_token":"t","expires_on":"253402300799"})", now).error(),
             Catch::Contains("within a year"));
  CHECK_THAT(parse_token_reply(R"({"expires_in":1})", now).error(), Catch::Contains("no access_token"));
  CHECK_THAT(parse_token_reply(R"({"access_token":"t"})", now).error(), Catch::Contains("neither expires_in"));
  CHECK_THAT(parse_token_reply(R"({"access_token":"t","expires_in":"soon"})", now).error(),
             Catch::Contains("neither expires_in"));
  CHECK_THAT(parse_token_reply(R"({"access_token":"t","expires_in":-5})", now).error(), Catch::Contains("expires_in"));
  CHECK_THAT(parse_token_reply(R"({"access_token":"t","expires_in":1,"token_type":"MAC"})", now).error(),
             Catch::Contains("not Bearer"));
  // A token that would inject a header, or is no bearer token: refused without quoting it.
  auto injected = parse_token_reply(R"({"access_token":"abc\r\nX-Evil: 1","expires_in":60})", now);
  REQUIRE_FALSE(injected.ok());
  CHECK_THAT(injected.error(), Catch::Contains("control character"));
  CHECK(injected.error().find("X-Evil") == std::string::npos);
  CHECK_FALSE(parse_token_reply(R"({"access_token":"a b","expires_in":60})", now).ok());
  CHECK_FALSE(parse_token_reply("[]", now).ok());
  CHECK_FALSE(parse_token_reply("", now).ok());
  std::string huge = R"({"access_token":")" + std::string(kMaxTokenReplyBytes, 'a') + R"(","expires_in":60})";
  CHECK_THAT(parse_token_reply(huge, now).error(), Catch::Contains("larger than"));
  std::string long_token = R"({"access_token":")" + std::string(kMaxAccessTokenBytes + 1, 'a') + R"(","expires_in":60})";
  CHECK_THAT(parse_token_reply(long_token, now).error(), Catch::Contains("longer than"));

  auto error = parse_oauth_error(R"({"error":"invalid_client","error_description":"AADSTS700213: No matching\r\nfederated identity record found","error_codes":[700213]})");
  REQUIRE(error);
  CHECK(error->error == "invalid_client");
  CHECK_THAT(error->description, Catch::StartsWith("AADSTS700213: No matching  federated"));
  CHECK(error->description.find('\n') == std::string::npos);
  CHECK_FALSE(parse_oauth_error(R"({"access_token":"t"})"));
}

// ---- The cache ----

namespace {

using Fetched = Result<AccessToken, BackendError>;

struct FakeFetcher final : TokenFetcher {
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

std::string crypto_base64url(const std::string& bytes) {
  std::string out = crypto::base64_encode(bytes);
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::function<Fetched(int)> expiring(const FakeClock& clock, std::chrono::seconds lifetime) {
  return [clock, lifetime](int n) -> Fetched { return AccessToken{"tok" + std::to_string(n), *clock.at + lifetime}; };
}

}  // namespace

TEST_CASE("azure cache: refreshed 5 minutes before expiry, or at half-life, and never used expired") {
  const auto now = WallClock::now();
  CHECK(CachingTokenProvider::refresh_time(now, now + std::chrono::hours(1)) == now + std::chrono::minutes(55));
  CHECK(CachingTokenProvider::refresh_time(now, now + std::chrono::seconds(4)) == now + std::chrono::seconds(2));

  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = expiring(clock, std::chrono::seconds(4));
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingTokenProvider provider("src", std::move(f), clock.fn());
  auto get = [&] { return run(io, provider.token()).value(); };
  CHECK(get() == "tok1");
  clock.advance(std::chrono::milliseconds(1900));
  CHECK(get() == "tok1");
  CHECK(*calls == 1);
  clock.advance(std::chrono::milliseconds(200));  // past half of 4 s, still valid: refreshed anyway
  CHECK(get() == "tok2");
  clock.advance(std::chrono::seconds(10));
  CHECK(get() == "tok3");

  auto hour = std::make_unique<FakeFetcher>();
  hour->answer = expiring(clock, std::chrono::hours(1));
  CachingTokenProvider hourly("src", std::move(hour), clock.fn());
  CHECK(run(io, hourly.token()).value() == "tok1");
  clock.advance(std::chrono::minutes(54));
  CHECK(run(io, hourly.token()).value() == "tok1");
  clock.advance(std::chrono::minutes(2));
  CHECK(run(io, hourly.token()).value() == "tok2");
}

TEST_CASE("azure cache: 100 waiting storages, one exchange, one outcome, errors named by source") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = expiring(clock, std::chrono::hours(1));
  f->delay = std::chrono::milliseconds(50);
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingTokenProvider provider("src", std::move(f), clock.fn());
  std::vector<std::future<std::optional<BackendResult<std::string>>>> waiting;
  for (int i = 0; i < 100; ++i) waiting.push_back(spawn(io, provider.token()));
  io.run();
  std::set<std::string> tokens;
  for (auto& w : waiting) tokens.insert((*w.get()).value());
  CHECK(*calls == 1);
  CHECK(provider.fetches() == 1);
  CHECK(tokens == std::set<std::string>{"tok1"});

  auto failing = std::make_unique<FakeFetcher>();
  failing->answer = [](int) -> Fetched {
    return Err(BackendError{false, "TokenRefused", "Microsoft Entra token endpoint refused client c", std::nullopt});
  };
  failing->delay = std::chrono::milliseconds(50);
  auto failing_calls = failing->calls;
  CachingTokenProvider refused("workload identity (AZURE_FEDERATED_TOKEN_FILE)", std::move(failing), clock.fn());
  std::vector<std::future<std::optional<BackendResult<std::string>>>> all;
  for (int i = 0; i < 100; ++i) all.push_back(spawn(io, refused.token()));
  io.restart();
  io.run();
  for (auto& w : all) {
    auto r = *w.get();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "TokenRefused");
    CHECK_THAT(r.error().message, Catch::StartsWith("Azure token from workload identity (AZURE_FEDERATED_TOKEN_FILE)"));
  }
  CHECK(*failing_calls == 1);
  CHECK_FALSE(run(io, refused.token()).ok());
  CHECK(*failing_calls == 2);  // errors are not cached
}

TEST_CASE("azure cache: a failed refresh keeps a token still valid, and a refused token is fetched again") {
  FakeClock clock;
  auto f = std::make_unique<FakeFetcher>();
  f->answer = [clock](int n) -> Fetched {
    if (n == 1) return AccessToken{"tok1", *clock.at + std::chrono::minutes(20)};
    if (n == 2) return Err(BackendError{true, "TokenEndpointUnavailable", "HTTP 503", std::nullopt});
    return AccessToken{"tok" + std::to_string(n), *clock.at + std::chrono::minutes(20)};
  };
  auto calls = f->calls;
  boost::asio::io_context io;
  CachingTokenProvider provider("src", std::move(f), clock.fn());
  CHECK(run(io, provider.token()).value() == "tok1");
  clock.advance(std::chrono::minutes(16));  // refresh due, endpoint down: tok1 has 4 minutes left
  CHECK(run(io, provider.token()).value() == "tok1");
  provider.rejected("another");  // not the cached one
  CHECK(run(io, provider.token()).value() == "tok3");  // (the refresh is still due) fetched, third call
  provider.rejected("tok3");
  CHECK(run(io, provider.token()).value() == "tok4");
  CHECK(*calls == 4);
}

// ---- The fetchers against the test token endpoint ----

TEST_CASE("azure workload identity: the assertion is the token file, re-read for every exchange") {
  testing::TempDir dir;
  const auto token_file = dir.path() / "azure-identity-token";
  testing::write_file(token_file, "eyJhbGciOi.projected-sa-token-one.sig\n");
  test_support::AzureTokenServer entra(dir.path(), {"entra", token_file, {}, 3600});
  boost::asio::io_context io;
  boost::asio::thread_pool files(1);
  http::Client client(io.get_executor());
  SourceSettings source;
  source.kind = SourceKind::WorkloadIdentity;
  source.name = "workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)";
  source.client = ClientCredentialSettings{entra.url(), entra.tenant(), entra.client_id(), "", token_file.string()};
  auto fetcher = make_fetcher(source, client, files.get_executor());

  auto first = run(io, fetcher->fetch());
  INFO((first.ok() ? std::string() : first.error().message) << "\n" << testing::read_file(entra.log()));
  REQUIRE(first.ok());
  CHECK(first.value().expires_at > WallClock::now() + std::chrono::minutes(59));
  testing::write_file(token_file, "eyJhbGciOi.projected-sa-token-two.sig");  // the kubelet rotates it
  REQUIRE(run(io, fetcher->fetch()).ok());
  CHECK(entra.exchanges() == 2);
  CHECK(entra.refused() == 0);

  SECTION("an assertion the endpoint refuses: the source, the client and Entra's code named, never the assertion") {
    auto stale = dir.path() / "stale";
    testing::write_file(stale, "eyJhbGciOi.stale-assertion-xyz.sig");
    source.client->assertion_file = stale.string();
    CachingTokenProvider refused(source.name, make_fetcher(source, client, files.get_executor()));
    auto r = run(io, refused.token());
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.error().transient);
    CHECK_THAT(r.error().message, Catch::Contains("workload identity") && Catch::Contains(entra.client_id()) &&
                                      Catch::Contains("AADSTS700213") && Catch::Contains("federated identity credential"));
    CHECK(r.error().message.find("stale-assertion-xyz") == std::string::npos);
    CHECK(entra.refused() == 1);
  }
  SECTION("a missing token file: said, with the variable, and nothing sent") {
    source.client->assertion_file = (dir.path() / "absent").string();
    auto r = run(io, make_fetcher(source, client, files.get_executor())->fetch());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("AZURE_FEDERATED_TOKEN_FILE names") && Catch::Contains("absent"));
    CHECK(entra.refused() == 0);
  }
}

TEST_CASE("azure service principal: the client secret grant, a wrong secret refused without quoting it") {
  testing::TempDir dir;
  const auto secret_file = dir.path() / "secret";
  testing::write_file(secret_file, "Zx8Q~the-client-secret");
  test_support::AzureTokenServer entra(dir.path(), {"entra", {}, secret_file, 3600});
  boost::asio::io_context io;
  boost::asio::thread_pool files(1);
  http::Client client(io.get_executor());
  ServicePrincipalRegistry registry;
  ClientCredentialSettings sp{entra.url(), entra.tenant(), entra.client_id(), "Zx8Q~the-client-secret", ""};
  auto provider = registry.provider(sp, "service principal c (storage secret demo/sp)", client, files.get_executor());
  CHECK(registry.provider(sp, "service principal c (storage secret demo/sp)", client, files.get_executor()) == provider);
  REQUIRE(run(io, provider->token()).ok());
  CHECK(entra.exchanges() == 1);

  sp.client_secret = "Zx8Q~a-wrong-secret";  // rotated in the Secret: another provider
  auto wrong = registry.provider(sp, "service principal c (storage secret demo/sp)", client, files.get_executor());
  CHECK(wrong != provider);
  auto r = run(io, wrong->token());
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Contains("storage secret demo/sp") && Catch::Contains("AADSTS7000215") &&
                                    Catch::Contains("AZURE_CLIENT_SECRET"));
  CHECK(r.error().message.find("a-wrong-secret") == std::string::npos);
}

TEST_CASE("azure managed identity: an IMDS host with a password in it is refused before any request") {
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  SourceSettings source;
  source.name = "managed identity (IMDS, AZURE_POD_IDENTITY_AUTHORITY_HOST)";
  // Nothing listens on port 1: a request would end in a transport error, not this one.
  source.managed = ManagedIdentitySettings{"http://user:hunter2secret@127.0.0.1:1", ""};
  auto r = run(io, make_fetcher(source, client, io.get_executor())->fetch());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "InvalidImdsEndpoint");
  CHECK_THAT(r.error().message, Catch::Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST has a user name or password"));
  CHECK(r.error().message.find("hunter2secret") == std::string::npos);
}

TEST_CASE("azure managed identity: IMDS with Metadata: true and the client id, and a silent IMDS times out") {
  testing::TempDir dir;
  test_support::AzureTokenServer imds(dir.path(), {"imds", {}, {}, 3600});
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  SourceSettings source;
  source.name = "managed identity (IMDS, AZURE_POD_IDENTITY_AUTHORITY_HOST)";
  source.managed = ManagedIdentitySettings{imds.url(), ""};
  auto system = run(io, make_fetcher(source, client, io.get_executor())->fetch());
  INFO((system.ok() ? std::string() : system.error().message));
  REQUIRE(system.ok());
  source.managed->client_id = imds.client_id();
  REQUIRE(run(io, make_fetcher(source, client, io.get_executor())->fetch()).ok());
  source.managed->client_id = "not-assigned-here";
  auto unknown = run(io, make_fetcher(source, client, io.get_executor())->fetch());
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message, Catch::Contains("Identity not found") && Catch::Contains("assign a managed identity"));
  CHECK(imds.exchanges() == 2);
  CHECK(imds.refused() == 1);

  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  boost::asio::ip::tcp::socket held(io);
  silent.async_accept(held, [](boost::system::error_code) {});
  source.managed = ManagedIdentitySettings{"http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()), ""};
  CachingTokenProvider provider(source.name, make_fetcher(source, client, io.get_executor()));
  const auto started = std::chrono::steady_clock::now();
  auto r = run(io, provider.token());
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().transient);
  CHECK_THAT(r.error().message, Catch::Contains("managed identity (IMDS") && Catch::Contains("workload identity"));
  CHECK(took >= kImdsTimeout);
  CHECK(took < kImdsTimeout + std::chrono::seconds(5));
}

// ---- Bearer requests against Azurite with OAuth on ----

TEST_CASE("azure bearer: Azurite (--oauth basic, HTTPS) accepts the token, 100 storages share one exchange, "
          "4-second tokens are refreshed before use") {
  testing::TempDir dir;
  test_support::AzuriteServer azurite(/*tls=*/true, /*oauth=*/true);
  azurite.create_container("bearer");
  const auto token_file = dir.path() / "azure-identity-token";
  testing::write_file(token_file, "eyJhbGciOi.federated.sig");
  test_support::AzureTokenServer entra(dir.path(), {"entra", token_file, {}, 4});

  boost::asio::io_context io;
  boost::asio::thread_pool files(1);
  http::Client client(io.get_executor());
  SourceSettings source;
  source.name = "workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)";
  source.client = ClientCredentialSettings{entra.url(), entra.tenant(), entra.client_id(), "", token_file.string()};
  auto provider = std::make_shared<CachingTokenProvider>(source.name, make_fetcher(source, client, files.get_executor()));
  auto options = [&](const std::string& prefix) {
    AzureOptions o;
    o.storage_account = azurite.account();
    o.endpoint = "https://127.0.0.1:" + std::to_string(azurite.port()) + "/{account}";
    o.container = "bearer";
    o.prefix = prefix;
    o.tls = azurite.tls();
    o.retry.max_attempts = 1;
    o.token_provider = provider;
    return o;
  };

  SECTION("without a token Azurite refuses: the Bearer header is what authorizes") {
    AzureOptions anonymous = options("anonymous");
    anonymous.token_provider = nullptr;
    AzureBackend backend(client, anonymous);
    auto r = run(io, backend.create_metadata(render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"})));
    REQUIRE_FALSE(r.ok());
    CHECK(entra.exchanges() == 0);
  }
  SECTION("metadata.yaml written and read with the token; 100 storages, one exchange; refreshed at half-life") {
    AzureBackend first(client, options("first"));
    CHECK(first.endpoint() == "https://127.0.0.1:" + std::to_string(azurite.port()) + "/devstoreaccount1");
    auto created = run(io, first.create_metadata(render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"})));
    INFO((created.ok() ? std::string() : created.error().message) << "\n" << testing::read_file(entra.log()));
    REQUIRE(created.ok());
    CHECK(azurite.get_blob("bearer", "first/metadata.yaml").first == 200);
    REQUIRE(run(io, first.check_access()).ok());
    CHECK(entra.exchanges() == 1);

    std::this_thread::sleep_for(std::chrono::milliseconds(2200));  // past half of the 4 s
    std::vector<std::unique_ptr<AzureBackend>> storages;
    for (int i = 0; i < 100; ++i) storages.push_back(std::make_unique<AzureBackend>(client, options("s" + std::to_string(i))));
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
    CHECK(entra.exchanges() == 2);  // one refresh for the hundred
    // 4.5 s after the first token: it has expired, and Azurite would refuse it ("The token is
    // expired"); the cache refreshed at half-life, so every request still carries a valid one.
    std::this_thread::sleep_for(std::chrono::milliseconds(2300));
    CHECK(read_all() == 100);
    CHECK(entra.exchanges() == 3);
    CHECK(provider->fetches() == 3);
  }
}

TEST_CASE("azure bearer: a token Azurite refuses is named by source, dropped, and fetched again") {
  test_support::AzuriteServer azurite(/*tls=*/true, /*oauth=*/true);
  azurite.create_container("refused");
  auto f = std::make_unique<FakeFetcher>();
  f->answer = [](int n) -> Fetched {
    // Azurite decodes the JWT: the first has another audience, the second is right (it does not check signatures).
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(WallClock::now().time_since_epoch()).count();
    std::string claims = std::string("{\"aud\":\"") + (n == 1 ? "https://management.azure.com" : "https://storage.azure.com") +
                         "\",\"iss\":\"https://sts.windows.net/t/\",\"iat\":" + std::to_string(now) +
                         ",\"nbf\":" + std::to_string(now - 60) + ",\"exp\":" + std::to_string(now + 3600) + "}";
    return AccessToken{"eyJhbGciOiJub25lIn0." + crypto_base64url(claims) + ".c2ln", WallClock::now() + std::chrono::hours(1)};
  };
  auto calls = f->calls;
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  AzureOptions o;
  o.storage_account = azurite.account();
  o.endpoint = "https://127.0.0.1:" + std::to_string(azurite.port()) + "/{account}";
  o.container = "refused";
  o.tls = azurite.tls();
  o.retry.max_attempts = 1;
  o.token_provider = std::make_shared<CachingTokenProvider>("managed identity (IMDS)", std::move(f));
  AzureBackend backend(client, o);
  auto first = run(io, backend.read_metadata());
  REQUIRE_FALSE(first.ok());
  CHECK_THAT(first.error().message, Catch::Contains("token from managed identity (IMDS) refused") &&
                                        Catch::Contains("fetched again"));
  CHECK(first.error().message.find("eyJ") == std::string::npos);
  auto second = run(io, backend.read_metadata());
  INFO((second.ok() ? std::string() : second.error().message));
  REQUIRE(second.ok());
  CHECK(*calls == 2);
}
