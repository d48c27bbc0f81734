// Azure Blob XML bodies: error documents (Code, first line of Message, never the authentication
// detail) and List Blobs pages (names, NextMarker, encoded names, malformed answers).
#include <catch2/catch.hpp>

#include "storage/azure_xml.hpp"

using namespace stowage::storage::azure;

TEST_CASE("azure xml: error code and the first line of the message") {
  auto e = parse_error_body(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ContainerNotFound</Code>"
      "<Message>The specified container does not exist.\nRequestId:0f3c\nTime:2024-01-01T00:00:00.0000000Z</Message>"
      "</Error>");
  CHECK(e.code == "ContainerNotFound");
  CHECK(e.message == "The specified container does not exist.");
}

TEST_CASE("azure xml: the authentication detail (which can quote the signature) is never kept") {
  auto e = parse_error_body(
      "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>"
      "<Message>Server failed to authenticate the request.\nRequestId:1</Message>"
      "<AuthenticationErrorDetail>The MAC signature found in the HTTP request 'c2VjcmV0' is not the same"
      "</AuthenticationErrorDetail></Error>");
  CHECK(e.code == "AuthenticationFailed");
  CHECK(e.message == "Server failed to authenticate the request.");
  CHECK(e.message.find("c2VjcmV0") == std::string::npos);
}

TEST_CASE("azure xml: empty, HTML and non-error bodies give an empty code, and long messages are cut") {
  CHECK(parse_error_body("").code.empty());
  CHECK(parse_error_body("<html><body>Bad gateway</body></html>").code.empty());
  CHECK(parse_error_body("not xml at all <").code.empty());
  auto e = parse_error_body("<Error><Code>X</Code><Message>" + std::string(500, 'm') + "</Message></Error>");
  CHECK(e.message.size() == 203);
  CHECK(e.message.ends_with("..."));
}

TEST_CASE("azure xml: a List Blobs page with a NextMarker") {
  auto list = parse_blob_list(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
      "<EnumerationResults ServiceEndpoint=\"http://127.0.0.1:10000/devstoreaccount1\" ContainerName=\"c\">"
      "<Prefix>backup/demo/</Prefix><MaxResults>2</MaxResults><Blobs>"
      "<Blob><Name>backup/demo/metadata.yaml</Name><Properties><Content-Length>15</Content-Length></Properties></Blob>"
      "<Blob><Name>backup/demo/repo/a &amp; b</Name><Properties/></Blob>"
      "</Blobs><NextMarker>2!84!MDAwMDE5IWJhY2t1cC9kZW1vL3JlcG8vYyE-</NextMarker></EnumerationResults>");
  REQUIRE(list.ok());
  CHECK(list.value().names == std::vector<std::string>{"backup/demo/metadata.yaml", "backup/demo/repo/a & b"});
  CHECK(list.value().next_marker == "2!84!MDAwMDE5IWJhY2t1cC9kZW1vL3JlcG8vYyE-");
}

TEST_CASE("azure xml: the last page, an empty page, and encoded names") {
  auto last = parse_blob_list("<EnumerationResults><Blobs><Blob><Name>x</Name></Blob></Blobs><NextMarker/></EnumerationResults>");
  REQUIRE(last.ok());
  CHECK(last.value().names == std::vector<std::string>{"x"});
  CHECK(last.value().next_marker.empty());

  auto empty = parse_blob_list("<EnumerationResults><Blobs/></EnumerationResults>");
  REQUIRE(empty.ok());
  CHECK(empty.value().names.empty());

  auto encoded = parse_blob_list(
      "<EnumerationResults><Blobs><Blob><Name Encoded=\"true\">a%01b%2Fc</Name></Blob></Blobs></EnumerationResults>");
  REQUIRE(encoded.ok());
  CHECK(encoded.value().names == std::vector<std::string>{std::string("a\x01" "b/c")});
}

TEST_CASE("azure xml: malformed List Blobs answers are errors") {
  CHECK_FALSE(parse_blob_list("").ok());
  CHECK_FALSE(parse_blob_list("<html/>").ok());
  CHECK_FALSE(parse_blob_list("<EnumerationResults><Blobs><Blob/></Blobs></EnumerationResults>").ok());
}
