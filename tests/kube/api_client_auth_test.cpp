// Credentials other than a bearer token, end to end: a kubeconfig with basic auth or a client
// certificate (files and -data forms) is loaded the way `stowage run --kubeconfig` loads it
// (kube::load_client_config), and the ApiClient built from it talks to the test API server, which
// authenticates it (--basic-auth, --client-ca). A SelfSubjectReview (what `kubectl auth whoami` asks)
// proves who the server took the caller for. The real kubectl uses the same kubeconfigs.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "common/crypto.hpp"
#include "common/http_client.hpp"
#include "kube/api_client.hpp"
#include "kube/client_config.hpp"
#include "support/api_server.hpp"
#include "support/http_test_server.hpp"

using namespace stowage;
namespace fs = std::filesystem;
namespace json = boost::json;
using kube::ApiClient;
using kube::ApiError;
using test_support::run;

namespace {

const std::string kSecrets = "/api/v1/namespaces/default/secrets";
const std::string kReviews = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

// TestApiServer creates its CA at work_dir/certs/ca.pem before the server starts (make_certificates),
// so --client-ca can name it in the server's arguments.
fs::path server_ca_path(const fs::path& work_dir) { return work_dir / "certs" / "ca.pem"; }

// The ClientConfig `stowage run --kubeconfig FILE` would use: loading must succeed.
kube::ClientConfig load(const fs::path& kubeconfig) {
  kube::LoadOptions options;
  options.kubeconfig = kubeconfig.string();
  auto loaded = kube::load_client_config(options, kube::Environment{});
  INFO((loaded.ok() ? std::string() : loaded.error().to_string()));
  REQUIRE(loaded.ok());
  CHECK(loaded.value().bearer_token.empty());  // nothing but the credential under test is sent
  return loaded.value();
}

// Who the server says the caller is (SelfSubjectReview), or the error.
Result<std::string, ApiError> whoami(boost::asio::io_context& io, ApiClient& api) {
  json::value review{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}};
  auto created = run(io, api.create(kReviews, review));
  if (!created.ok()) return Err(created.error());
  return std::string(created.value().at("status").at("userInfo").at("username").as_string());
}

// What the server answers this client for a list of Secrets: "" when it worked, else the message.
std::string list_secrets(boost::asio::io_context& io, ApiClient& api) {
  auto listed = run(io, api.list(kSecrets));
  if (listed.ok()) return "";
  return listed.error().message;
}

}  // namespace

TEST_CASE("a kubeconfig with username and password reaches the API server with basic auth") {
  auto dir = test_support::fresh_temp_dir("auth-basic");
  const std::string password = "pw-Correct-7f3a";
  test_support::TestApiServer server(dir, "admin-token", {"--basic-auth", "alice:" + password});
  boost::asio::io_context io;
  http::Client http(io.get_executor());

  auto good = server.write_kubeconfig_for_user("alice.kubeconfig", {{"username", "alice"}, {"password", password}});
  auto config = load(good);
  CHECK(config.username == "alice");
  ApiClient api(http, config);
  auto who = whoami(io, api);
  REQUIRE(who.ok());
  CHECK(who.value() == "alice");
  CHECK(list_secrets(io, api).empty());

  SECTION("a wrong password is a 401 naming the user, never the password") {
    const std::string wrong = "pw-Wrong-91c2";
    auto bad = server.write_kubeconfig_for_user("wrong.kubeconfig", {{"username", "alice"}, {"password", wrong}});
    ApiClient refused(http, load(bad));
    auto listed = run(io, refused.list(kSecrets));
    REQUIRE_FALSE(listed.ok());
    const ApiError& e = listed.error();
    CHECK(e.http_status == 401);
    CHECK(e.kind == ApiError::Kind::Status);
    CHECK_FALSE(e.transient());
    CHECK(e.message.find("list " + kSecrets) != std::string::npos);
    CHECK(e.message.find("refused the basic-auth credentials of user \"alice\"") != std::string::npos);
    CHECK(e.message.find(wrong) == std::string::npos);
    CHECK(e.message.find(password) == std::string::npos);
    CHECK(server.stats().at("unauthorized").to_number<int>() >= 1);

    auto [status, out] = server.kubectl_with(bad, "get secrets -n default");
    INFO(out);
    CHECK(status != 0);
    // kubectl's words for a 401: "You must be logged in to the server (the server has asked for the
    // client to provide credentials)" or "Unauthorized".
    CHECK_THAT(out, Catch::Contains("provide credentials") || Catch::Contains("Unauthorized"));
    CHECK(out.find(wrong) == std::string::npos);
  }

  SECTION("kubectl with the same kubeconfig") {
    auto [status, out] = server.kubectl_with(good, "get secrets -n default");
    INFO(out);
    CHECK(status == 0);
    auto [who_status, name] = server.kubectl_with(good, "auth whoami -o jsonpath={.status.userInfo.username}");
    INFO(name);
    CHECK(who_status == 0);
    CHECK(name == "alice");
  }
}

TEST_CASE("a kubeconfig client certificate, as files or as -data, authenticates as its CN") {
  auto dir = test_support::fresh_temp_dir("auth-cert");
  test_support::TestApiServer server(dir, "admin-token", {"--client-ca", server_ca_path(dir).string()});
  auto [cert_pem, key_pem] = server.certs.client_cert_and_key();  // CN=stowage-client, same CA as the server
  boost::asio::io_context io;
  http::Client http(io.get_executor());

  auto files = server.write_kubeconfig_for_user(
      "files.kubeconfig", {{"client-certificate", (server.certs.dir / "client.pem").string()},
                           {"client-key", (server.certs.dir / "client-key.pem").string()}});
  auto data = server.write_kubeconfig_for_user(
      "data.kubeconfig",
      {{"client-certificate-data", crypto::base64_encode(cert_pem)}, {"client-key-data", crypto::base64_encode(key_pem)}});

  for (const auto& kubeconfig : {files, data}) {
    INFO(kubeconfig.string());
    auto config = load(kubeconfig);
    CHECK(config.client_certificate_pem == cert_pem);
    ApiClient api(http, config);
    auto who = whoami(io, api);
    REQUIRE(who.ok());
    CHECK(who.value() == "stowage-client");
    CHECK(list_secrets(io, api).empty());

    auto [status, out] = server.kubectl_with(kubeconfig, "get secrets -n default");
    INFO(out);
    CHECK(status == 0);
    auto [who_status, name] = server.kubectl_with(kubeconfig, "auth whoami -o jsonpath={.status.userInfo.username}");
    INFO(name);
    CHECK(who_status == 0);
    CHECK(name == "stowage-client");
  }

  SECTION("without a certificate or token the same server answers 401") {
    auto anonymous = server.write_kubeconfig_for_user("anonymous.kubeconfig", {});
    kube::LoadOptions options;
    options.kubeconfig = anonymous.string();
    auto config = kube::load_client_config(options, kube::Environment{});
    REQUIRE(config.ok());
    ApiClient api(http, config.value());
    auto listed = run(io, api.list(kSecrets));
    REQUIRE_FALSE(listed.ok());
    CHECK(listed.error().http_status == 401);
    CHECK(listed.error().message.find("anonymous request") != std::string::npos);
  }
}

TEST_CASE("a client certificate from another CA is refused") {
  auto dir = test_support::fresh_temp_dir("auth-foreign-cert");
  test_support::TestApiServer server(dir, "admin-token", {"--client-ca", server_ca_path(dir).string()});
  auto foreign_ca = test_support::make_certificates(dir / "foreign");
  auto [cert_pem, key_pem] = foreign_ca.client_cert_and_key();  // CN=stowage-client too, but another CA
  boost::asio::io_context io;
  http::Client http(io.get_executor());

  auto kubeconfig = server.write_kubeconfig_for_user(
      "foreign.kubeconfig",
      {{"client-certificate-data", crypto::base64_encode(cert_pem)}, {"client-key-data", crypto::base64_encode(key_pem)}});
  ApiClient api(http, load(kubeconfig));
  auto listed = run(io, api.list(kSecrets));
  REQUIRE_FALSE(listed.ok());
  // The test server verifies client certificates in the TLS handshake (a real one answers 401 after
  // it): either way no request succeeds, and nothing of the key appears in the message.
  INFO(listed.error().message);
  CHECK((listed.error().kind == ApiError::Kind::Transport || listed.error().http_status == 401));
  CHECK(listed.error().message.find("list " + kSecrets) != std::string::npos);
  CHECK(listed.error().message.find("PRIVATE KEY") == std::string::npos);
  CHECK(server.stats().at("requests_by_verb").as_object().if_contains("list") == nullptr);

  auto [status, out] = server.kubectl_with(kubeconfig, "get secrets -n default");
  INFO(out);
  CHECK(status != 0);
}
