// The S3 XML documents: error bodies as AWS, moto and compatible stores send them, ListObjectsV2
// pages, and the DeleteObjects request and result.
#include <catch2/catch.hpp>

#include "storage/s3_signer.hpp"
#include "storage/s3_xml.hpp"

using namespace stowage::storage::s3;

TEST_CASE("parse_error reads Code, Message, RequestId and Region") {
  auto error = parse_error(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-nl-1'</Message><Region>eu-nl-1</Region><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>)");
  REQUIRE(error);
  CHECK(error->code == "AuthorizationHeaderMalformed");
  CHECK(error->message.find("expecting 'eu-nl-1'") != std::string::npos);
  CHECK(error->region == "eu-nl-1");
  CHECK(error->request_id == "4442587FB7D0A2F9");
  CHECK(error->endpoint.empty());
}

TEST_CASE("parse_error reads a PermanentRedirect's endpoint and a namespaced document") {
  auto redirect = parse_error(
      "<Error><Code>PermanentRedirect</Code><Message>use the endpoint</Message>"
      "<Endpoint>bucket.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>bucket</Bucket></Error>");
  REQUIRE(redirect);
  CHECK(redirect->code == "PermanentRedirect");
  CHECK(redirect->endpoint == "bucket.s3.eu-west-1.amazonaws.com");

  auto prefixed = parse_error(
      R"(<s3:Error xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Code>NoSuchBucket</s3:Code></s3:Error>)");
  REQUIRE(prefixed);
  CHECK(prefixed->code == "NoSuchBucket");
}

TEST_CASE("parse_error refuses what is not an S3 error document") {
  CHECK_FALSE(parse_error(""));
  CHECK_FALSE(parse_error("<html><body>502 Bad Gateway</body></html>"));
  CHECK_FALSE(parse_error("not xml at all <"));
  CHECK_FALSE(parse_error("<Error><Message>no code</Message></Error>"));
  CHECK_FALSE(parse_error(R"({"error": "json"})"));
}

TEST_CASE("parse_list_objects_v2 reads keys, truncation and the continuation token") {
  auto page = parse_list_objects_v2(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>backup/demo/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents><Key>backup/demo/a &amp; b.txt</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><Size>3</Size></Contents>
  <Contents><Key>backup/demo/metadata.yaml</Key><Size>120</Size></Contents>
</ListBucketResult>)");
  REQUIRE(page.ok());
  CHECK(page.value().keys == std::vector<std::string>{"backup/demo/a & b.txt", "backup/demo/metadata.yaml"});
  CHECK(page.value().truncated);
  CHECK(page.value().next_continuation_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
}

TEST_CASE("parse_list_objects_v2: the last page, an empty page, url-encoded keys, odd keys") {
  auto last = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key></Contents></ListBucketResult>");
  REQUIRE(last.ok());
  CHECK_FALSE(last.value().truncated);
  CHECK(last.value().keys == std::vector<std::string>{"k"});

  auto empty = parse_list_objects_v2("<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>");
  REQUIRE(empty.ok());
  CHECK(empty.value().keys.empty());
  CHECK_FALSE(empty.value().truncated);

  auto encoded = parse_list_objects_v2(
      "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%2Fb+c%0D</Key></Contents>"
      "</ListBucketResult>");
  REQUIRE(encoded.ok());
  CHECK(encoded.value().keys == std::vector<std::string>{"a/b c\r"});

  auto spaces = parse_list_objects_v2(
      "<ListBucketResult><Contents><Key>  </Key></Contents><Contents><Key> x\r\ny </Key></Contents>"
      "</ListBucketResult>");
  REQUIRE(spaces.ok());
  CHECK(spaces.value().keys == std::vector<std::string>{"  ", " x\r\ny "});
}

TEST_CASE("parse_list_objects_v2 refuses broken answers") {
  CHECK_FALSE(parse_list_objects_v2("").ok());
  CHECK_FALSE(parse_list_objects_v2("<Error><Code>AccessDenied</Code></Error>").ok());
  CHECK_FALSE(parse_list_objects_v2("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>").ok());
  auto loop = parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
  REQUIRE_FALSE(loop.ok());
  CHECK(loop.error().find("NextContinuationToken") != std::string::npos);
}

TEST_CASE("delete_objects_body lists every key, escaped, in quiet mode") {
  std::string body = delete_objects_body({"backup/a.txt", "backup/<b> & \"c\""});
  CHECK(body ==
        R"(<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)"
        "<Quiet>true</Quiet><Object><Key>backup/a.txt</Key></Object>"
        "<Object><Key>backup/&lt;b&gt; &amp; \"c\"</Key></Object></Delete>");
  CHECK(delete_objects_body({}, false).find("<Quiet>false</Quiet>") != std::string::npos);
  // The caller's Content-MD5 is over exactly these bytes.
  CHECK(content_md5(body).size() == 24);
}

TEST_CASE("parse_delete_result reads deleted keys and per-key errors") {
  auto result = parse_delete_result(R"(<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>a</Key></Deleted>
  <Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
  <Deleted><Key>c</Key><VersionId>v1</VersionId></Deleted>
</DeleteResult>)");
  REQUIRE(result.ok());
  CHECK(result.value().deleted == std::vector<std::string>{"a", "c"});
  REQUIRE(result.value().errors.size() == 1);
  CHECK(result.value().errors[0].key == "b");
  CHECK(result.value().errors[0].code == "AccessDenied");
  CHECK(result.value().errors[0].message == "Access Denied");

  auto quiet = parse_delete_result("<DeleteResult/>");
  REQUIRE(quiet.ok());
  CHECK(quiet.value().deleted.empty());
  CHECK(quiet.value().errors.empty());

  CHECK_FALSE(parse_delete_result("<Error><Code>NotImplemented</Code></Error>").ok());
  CHECK_FALSE(parse_delete_result("garbage").ok());
}
