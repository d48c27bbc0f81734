// storage/credential_endpoint: the one rule for where a credential exchange sends its request.
#include "storage/credential_endpoint.hpp"

#include <catch2/catch.hpp>

using stowage::storage::credential_endpoint;

TEST_CASE("credential endpoint: origin and target, the query kept, the path defaulted") {
  auto sts = credential_endpoint("https://sts.eu-west-1.amazonaws.com");
  REQUIRE(sts.ok());
  CHECK(sts.value().origin.origin() == "https://sts.eu-west-1.amazonaws.com:443");
  CHECK(sts.value().target == "/");

  auto imds = credential_endpoint("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01");
  REQUIRE(imds.ok());
  CHECK(imds.value().origin.scheme == "http");
  CHECK(imds.value().origin.port == "80");
  CHECK(imds.value().origin.path == "/metadata/identity/oauth2/token");
  CHECK(imds.value().target == "/metadata/identity/oauth2/token?api-version=2018-02-01");

  auto v6 = credential_endpoint("http://[fd00:ec2::254]:8080/latest");
  REQUIRE(v6.ok());
  CHECK(v6.value().origin.host == "fd00:ec2::254");
  CHECK(v6.value().origin.port == "8080");
}

TEST_CASE("credential endpoint: other schemes, credentials before '@' and fragments are refused, unquoted") {
  CHECK(credential_endpoint("ftp://example.com/token").error() == "is not an http(s) URL");
  auto userinfo = credential_endpoint("https://alice:s3cr3t-value@login.example.com/token");
  REQUIRE_FALSE(userinfo.ok());
  CHECK(userinfo.error() == "has a user name or password before '@'");
  auto fragment = credential_endpoint("https://login.example.com/token#frag-s3cr3t");
  REQUIRE_FALSE(fragment.ok());
  CHECK(fragment.error() == "has a fragment ('#')");
  CHECK(fragment.error().find("s3cr3t") == std::string::npos);
  CHECK_FALSE(credential_endpoint("").ok());
  CHECK_FALSE(credential_endpoint("login.example.com/token").ok());  // no scheme: refused, not guessed
}
