// Azure Shared Key, SAS and connection strings, without a server: the two vectors Azurite 3.37
// accepts (path-style and host-style), the string to sign field by field, query canonicalization,
// an account SAS checked against Azurite's own signer, and connection-string parsing and errors.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "storage/azure_auth.hpp"

using namespace stowage::storage;
namespace http = stowage::http;
using namespace stowage::storage::azure;

namespace {

http::Request vector_request(std::string target) {
  http::Request r;
  r.method = "PUT";
  r.target = std::move(target);
  r.headers = {{"x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"},
               {"x-ms-version", "2021-12-02"},
               {"x-ms-blob-type", "BlockBlob"},
               {"Content-Type", "application/yaml"}};
  r.body = "apiVersion: v1\n";
  return r;
}

SharedKey dev_key() {
  auto key = SharedKey::make(std::string(kDevelopmentAccount), kDevelopmentKey);
  REQUIRE(key.ok());
  return key.value();
}

std::string authorization_of(const http::Request& r) {
  for (const auto& [k, v] : r.headers)
    if (k == "Authorization") return v;
  return {};
}

}  // namespace

TEST_CASE("azure shared key: path-style vector accepted by Azurite (account twice in the resource)") {
  auto r = vector_request("/devstoreaccount1/metadata/vector/metadata.yaml");
  std::string sts = shared_key_string_to_sign(r, kDevelopmentAccount);
  CHECK(sts ==
        "PUT\n\n\n15\n\napplication/yaml\n\n\n\n\n\n\n"
        "x-ms-blob-type:BlockBlob\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2021-12-02\n"
        "/devstoreaccount1/devstoreaccount1/metadata/vector/metadata.yaml");
  CHECK(dev_key().signature(sts) == "lFwvcX6CLYBf9FTepymrFuv17tZEfABS/sLOXWMTEMs=");
  dev_key().sign(r);
  CHECK(authorization_of(r) == "SharedKey devstoreaccount1:lFwvcX6CLYBf9FTepymrFuv17tZEfABS/sLOXWMTEMs=");
}

TEST_CASE("azure shared key: host-style vector accepted by Azurite") {
  auto r = vector_request("/metadata/vector/metadata.yaml");
  r.headers.emplace_back("Host", "devstoreaccount1.blob.localhost:10000");  // not signed
  dev_key().sign(r);
  CHECK(authorization_of(r) == "SharedKey devstoreaccount1:CFdEkYkUam3qqdfa26QOA5TTknOrMcFZWCMOeQqP0xw=");
}

TEST_CASE("azure shared key: Content-Length empty when zero, Date empty when x-ms-date is sent") {
  http::Request r;
  r.method = "GET";
  r.target = "/c/b";
  r.headers = {{"Date", "Tue, 02 Jan 2024 00:00:00 GMT"}, {"x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"}};
  auto sts = shared_key_string_to_sign(r, "acct");
  CHECK(sts == "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\n/acct/c/b");

  r.headers = {{"Date", "Tue, 02 Jan 2024 00:00:00 GMT"}, {"Content-Length", "0"}};
  CHECK(shared_key_string_to_sign(r, "acct") == "GET\n\n\n\n\n\nTue, 02 Jan 2024 00:00:00 GMT\n\n\n\n\n\n/acct/c/b");
  // An explicit Content-Length header wins over the body size.
  r.headers = {{"content-length", "42"}};
  CHECK(shared_key_string_to_sign(r, "acct").starts_with("GET\n\n\n42\n"));
}

TEST_CASE("azure shared key: every standard header in its place, names case-insensitive") {
  http::Request r;
  r.method = "PUT";
  r.target = "/c/b";
  r.body = "abc";
  r.headers = {{"content-encoding", "gzip"},        {"Content-Language", "en"},
               {"Content-MD5", "md5"},              {"CONTENT-TYPE", "text/plain"},
               {"If-Modified-Since", "ims"},        {"If-Match", "\"e1\""},
               {"If-None-Match", "*"},              {"If-Unmodified-Since", "ius"},
               {"Range", "bytes=0-1"},              {"x-ms-version", "2021-12-02"}};
  CHECK(shared_key_string_to_sign(r, "acct") ==
        "PUT\ngzip\nen\n3\nmd5\ntext/plain\n\nims\n\"e1\"\n*\nius\nbytes=0-1\nx-ms-version:2021-12-02\n/acct/c/b");
}

TEST_CASE("azure shared key: x-ms-* headers lower-cased, sorted, trimmed, whitespace collapsed") {
  http::Request r;
  r.method = "GET";
  r.target = "/";
  r.headers = {{"X-MS-Version", " 2021-12-02 "},
               {"x-ms-meta-b", "two   words"},
               {"x-ms-meta-a", "1"},
               {"x-msnot", "ignored"},
               {"Host", "acct.blob.core.windows.net"}};
  CHECK(canonicalized_headers(r) == "x-ms-meta-a:1\nx-ms-meta-b:two words\nx-ms-version:2021-12-02\n");
}

TEST_CASE("azure shared key: canonicalized resource sorts and decodes query parameters") {
  CHECK(canonicalized_resource("", "acct") == "/acct/");
  CHECK(canonicalized_resource("/", "acct") == "/acct/");
  CHECK(canonicalized_resource("/c?restype=container", "acct") == "/acct/c\nrestype:container");
  CHECK(canonicalized_resource("/c?restype=container&comp=list&prefix=backup%2Fdemo%2F&marker=&maxresults=2",
                               "acct") ==
        "/acct/c\ncomp:list\nmarker:\nmaxresults:2\nprefix:backup/demo/\nrestype:container");
  // Names lower-cased, repeated names' values sorted and joined with commas, '+' is a space.
  CHECK(canonicalized_resource("/c?Z=1&a=b&A=a&q=x+y", "acct") == "/acct/c\na:a,b\nq:x y\nz:1");
  // The path is signed exactly as sent (encoded).
  CHECK(canonicalized_resource("/c/a%20b/metadata.yaml", "acct") == "/acct/c/a%20b/metadata.yaml");
}

TEST_CASE("azure shared key: the signature changes with the resource and the key") {
  auto a = vector_request("/devstoreaccount1/metadata/vector/metadata.yaml");
  auto b = vector_request("/devstoreaccount1/metadata/vector/metadata.yaml?comp=x");
  auto key = dev_key();
  CHECK(key.signature(shared_key_string_to_sign(a, key.account())) !=
        key.signature(shared_key_string_to_sign(b, key.account())));
  auto other = SharedKey::make("devstoreaccount1", "AAAAAAAAAAAAAAAAAAAAAA==");
  REQUIRE(other.ok());
  CHECK(other.value().signature("x") != key.signature("x"));
}

TEST_CASE("azure shared key: a bad key is refused without echoing it") {
  auto bad = SharedKey::make("acct", "not base64!!");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("not valid Base64") != std::string::npos);
  CHECK(bad.error().find("not base64!!") == std::string::npos);
  CHECK_FALSE(SharedKey::make("acct", "").ok());
  CHECK_FALSE(SharedKey::make("", kDevelopmentKey).ok());
  CHECK(SharedKey::make("acct", "  " + std::string(kDevelopmentKey) + "\n").ok());  // pasted with a newline
}

TEST_CASE("azure SAS: the token's query string is appended, with or without '?', and no Authorization") {
  http::Request r;
  r.method = "GET";
  r.target = "/c/b";
  apply_sas(r, "?sv=2021-12-02&sig=abc%2B");
  CHECK(r.target == "/c/b?sv=2021-12-02&sig=abc%2B");
  CHECK(r.headers.empty());

  r.target = "/c?restype=container&comp=list";
  apply_sas(r, "sv=2021-12-02&sig=abc");
  CHECK(r.target == "/c?restype=container&comp=list&sv=2021-12-02&sig=abc");

  r.target = "/c";
  apply_sas(r, "");
  CHECK(r.target == "/c");
}

TEST_CASE("azure SAS: tokens are normalized and checked without being echoed") {
  CHECK(normalize_sas_token(" ?sv=1&sig=x \n").value().query == "sv=1&sig=x");
  CHECK(normalize_sas_token("sv=1&SIG=x").ok());
  auto none = normalize_sas_token("sv=2021-12-02&se=secretish");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().find("sig=") != std::string::npos);
  CHECK(none.error().find("secretish") == std::string::npos);
  CHECK_FALSE(normalize_sas_token("").ok());
  CHECK_FALSE(normalize_sas_token("sv=1&sig=").ok());
  CHECK_FALSE(normalize_sas_token("sv=1&sig=a b").ok());
}

TEST_CASE("azure SAS: an account SAS matches Azurite's own signer") {
  // Reference: Azurite 3.37's generateAccountSASSignature20201206 with the same values.
  AccountSasParams p;
  p.permissions = "rwdlc";
  p.services = "b";
  p.resource_types = "sco";
  p.expiry = "2030-01-01T00:00:00Z";
  p.protocol = "https,http";
  p.version = "2021-12-02";
  CHECK(account_sas_string_to_sign("devstoreaccount1", p) ==
        "devstoreaccount1\nrwdlc\nb\nsco\n\n2030-01-01T00:00:00Z\n\nhttps,http\n2021-12-02\n\n");
  std::string token = account_sas_token(dev_key(), p);
  CHECK(token ==
        "sv=2021-12-02&ss=b&srt=sco&sp=rwdlc&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp"
        "&sig=BiRxCTItZlduab9mR0otV%2FDQBjTp8UzMZr%2F7deXPRpk%3D");
  CHECK(normalize_sas_token(token).ok());
}

TEST_CASE("azure: x-ms-date is RFC 1123 in GMT") {
  using namespace std::chrono;
  CHECK(rfc1123_date(system_clock::time_point(seconds(1704067200))) == "Mon, 01 Jan 2024 00:00:00 GMT");
  CHECK(rfc1123_date(system_clock::time_point(seconds(1709251199))) == "Thu, 29 Feb 2024 23:59:59 GMT");
}

TEST_CASE("azure connection string: account key form builds the public endpoint") {
  auto cs = parse_connection_string(
      "DefaultEndpointsProtocol=https;AccountName=kubestash;AccountKey=" + std::string(kDevelopmentKey) +
      ";EndpointSuffix=core.windows.net");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "https://kubestash.blob.core.windows.net");
  CHECK(cs.value().account_name == "kubestash");
  CHECK(cs.value().account_key == kDevelopmentKey);
  CHECK(cs.value().sas_token.empty());

  // Defaults: https and core.windows.net; sovereign clouds by suffix; names are case-insensitive;
  // a trailing ';' and other services' endpoints are fine.
  cs = parse_connection_string("accountname=a1;ACCOUNTKEY=" + std::string(kDevelopmentKey) +
                               ";QueueEndpoint=https://a1.queue.core.windows.net;");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "https://a1.blob.core.windows.net");
  cs = parse_connection_string("AccountName=a1;EndpointSuffix=core.chinacloudapi.cn;DefaultEndpointsProtocol=http");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "http://a1.blob.core.chinacloudapi.cn");
}

TEST_CASE("azure connection string: BlobEndpoint (Azurite path-style) and SAS forms") {
  auto cs = parse_connection_string(
      "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + std::string(kDevelopmentKey) +
      ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "http://127.0.0.1:10000/devstoreaccount1");
  CHECK(cs.value().account_name == "devstoreaccount1");

  cs = parse_connection_string("BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=?sv=2021-12-02&sig=x%3D");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "https://acct.blob.core.windows.net");
  CHECK(cs.value().account_name.empty());
  CHECK(cs.value().sas_token == "sv=2021-12-02&sig=x%3D");  // '=' inside the value is kept
}

TEST_CASE("azure connection string: UseDevelopmentStorage=true is Azurite's default account") {
  auto cs = parse_connection_string("UseDevelopmentStorage=true");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "http://127.0.0.1:10000/devstoreaccount1");
  CHECK(cs.value().account_name == "devstoreaccount1");
  CHECK(cs.value().account_key == kDevelopmentKey);
  cs = parse_connection_string("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://ipv4.fiddler");
  REQUIRE(cs.ok());
  CHECK(cs.value().blob_endpoint == "http://ipv4.fiddler:10000/devstoreaccount1");
}

TEST_CASE("azure connection string: errors name the bad part and never echo the key") {
  auto error_of = [](const std::string& text) {
    auto cs = parse_connection_string(text);
    REQUIRE_FALSE(cs.ok());
    return cs.error();
  };
  CHECK(error_of("").find("empty") != std::string::npos);
  CHECK(error_of("AccountName=a;garbage-secret") == "part 2 of AZURE_STORAGE_CONNECTION_STRING is not NAME=VALUE");
  CHECK(error_of("AccountName=a;AccountKy=abc").find("part 2 of AZURE_STORAGE_CONNECTION_STRING is not a setting") ==
        0);
  CHECK(error_of("AccountName=a;AccountKy=abc").find("AccountKy") == std::string::npos);  // unknown names unquoted
  CHECK(error_of("AccountName=a;accountname=b") ==
        "part 2 of AZURE_STORAGE_CONNECTION_STRING sets AccountName a second time: give it once");

  std::string bad_key = error_of("AccountName=a;AccountKey=s3cr3t-not-base64");
  CHECK(bad_key.find("AccountKey is not valid Base64") != std::string::npos);
  CHECK(bad_key.find("s3cr3t") == std::string::npos);

  CHECK(error_of("AccountKey=" + std::string(kDevelopmentKey)).find("no AccountName") != std::string::npos);
  CHECK(error_of("AccountName=a;AccountKey=" + std::string(kDevelopmentKey) + ";SharedAccessSignature=sv=1&sig=x")
            .find("both AccountKey and SharedAccessSignature") != std::string::npos);
  std::string bad_sas = error_of("BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&se=zzz");
  CHECK(bad_sas.find("SharedAccessSignature") != std::string::npos);
  CHECK(bad_sas.find("zzz") == std::string::npos);
  CHECK(error_of("DefaultEndpointsProtocol=ftp;AccountName=a").find("DefaultEndpointsProtocol") != std::string::npos);
  CHECK(error_of("BlobEndpoint=127.0.0.1:10000").find("BlobEndpoint must start with http") != std::string::npos);
  CHECK(error_of("BlobEndpoint=https://a.blob.core.windows.net?sv=1&sig=x").find("query string") !=
        std::string::npos);
  // BlobEndpoint is read by the endpoint parser: a port in range, a host, no credentials; none of it quoted.
  CHECK(error_of("BlobEndpoint=http://127.0.0.1:99999/acct") ==
        "AZURE_STORAGE_CONNECTION_STRING setting BlobEndpoint has the port \"99999\", which is not a number from 1 "
        "to 65535");
  CHECK(error_of("BlobEndpoint=https://:443/acct") ==
        "AZURE_STORAGE_CONNECTION_STRING setting BlobEndpoint has no host");
  std::string with_user = error_of("BlobEndpoint=https://acct:s3cr3t@acct.blob.core.windows.net");
  CHECK(with_user.find("must not carry a user name or password") != std::string::npos);
  CHECK(with_user.find("s3cr3t") == std::string::npos);
  CHECK(parse_connection_string("BlobEndpoint=HTTP://127.0.0.1:10000/acct;AccountName=acct;AccountKey=" +
                                std::string(kDevelopmentKey))
            .ok());
  CHECK(error_of("DefaultEndpointsProtocol=https").find("BlobEndpoint or AccountName") != std::string::npos);
  CHECK(error_of("UseDevelopmentStorage=false").find("must be `true`") != std::string::npos);
  CHECK(error_of("UseDevelopmentStorage=true;AccountName=x").find("cannot be combined") != std::string::npos);
}

// The case: a bare `<key>==` part (the key pasted without `AccountKey=`) parses as a
// setting named after most of the key. The error names the part by its position; neither the key
// nor any piece of it appears.
TEST_CASE("azure connection string: a bare key part is named by its position, never echoed") {
  const std::string key = "Zm9vYmFyLXNlY3JldC1hY2NvdW50LWtleS1mb3ItdGVzdHM" "==";
  const std::string key_body = key.substr(0, key.size() - 2);
  for (const std::string& text :
       {"DefaultEndpointsProtocol=https;AccountName=acct;" + key + ";EndpointSuffix=core.windows.net",
        "AccountName=acct;AccountKey=" + std::string(kDevelopmentKey) + ";" + key,
        "BlobEndpoint=http://127.0.0.1:10000/acct;AccountName=acct;" + key}) {
    auto cs = parse_connection_string(text);
    REQUIRE_FALSE(cs.ok());
    INFO(cs.error());
    CHECK(cs.error().find("of AZURE_STORAGE_CONNECTION_STRING is not a setting Azure storage knows") !=
          std::string::npos);
    CHECK(cs.error().find("part 3 ") == 0);
    CHECK(cs.error().find(key_body.substr(0, 12)) == std::string::npos);
    CHECK(cs.error().find(std::string(kDevelopmentKey).substr(0, 12)) == std::string::npos);
  }
}

TEST_CASE("azure credentials: control characters are refused by position, never echoed") {
  auto cs = parse_connection_string("AccountName=acct;AccountKey=" + std::string(kDevelopmentKey) +
                                    ";BlobEndpoint=http://127.0.0.1:10000/acct\r\nX-Injected: yes");
  REQUIRE_FALSE(cs.ok());
  CHECK(cs.error() == "part 3 of AZURE_STORAGE_CONNECTION_STRING contains a control character (at byte 157)");
  auto account = parse_connection_string("AccountName=ac\x01" "ct;AccountKey=" + std::string(kDevelopmentKey));
  REQUIRE_FALSE(account.ok());
  CHECK(account.error() == "part 1 of AZURE_STORAGE_CONNECTION_STRING contains a control character (at byte 14)");
  // Line breaks around parts are whitespace, as before: a connection string pasted over lines still works.
  CHECK(parse_connection_string("AccountName=acct;\nAccountKey=" + std::string(kDevelopmentKey) + "\n").ok());

  auto sas = normalize_sas_token("?sv=2021-12-02&sig=abc\x7f&se=2030");
  REQUIRE_FALSE(sas.ok());
  CHECK(sas.error() == "the SAS token contains a control character (at byte 22)");
  CHECK(normalize_sas_token("sv=1&sig=" + std::string(kMaxSasTokenBytes, 'a')).error() ==
        "the SAS token is longer than 8192 bytes");
  auto key = SharedKey::make("acct", "  abc\r\ndef==");
  REQUIRE_FALSE(key.ok());
  CHECK(key.error() == "the account key contains a control character (at byte 5)");
  auto name = SharedKey::make("acct\r\nX-Injected: yes", kDevelopmentKey);
  REQUIRE_FALSE(name.ok());
  CHECK(name.error() == "the storage account name contains a control character (at byte 4)");
}
