#pragma once
// The few S3 XML documents the backend reads and writes, with pugixml:
//  - the error body every S3 operation may answer with (<Error><Code>..);
//  - a ListObjectsV2 page (<ListBucketResult>);
//  - the DeleteObjects request (<Delete>) and its result (<DeleteResult>).
//
// Parsers never throw and do not care about namespaces (AWS sends
// xmlns="http://s3.amazonaws.com/doc/2006-03-01/", some compatible stores do not). A body that is not
// the expected document is an error value naming what was missing, never a partial result.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace stowage::storage::s3 {

struct ErrorBody {
  std::string code;        // "NoSuchBucket", "SignatureDoesNotMatch", ...
  std::string message;     // S3's own sentence
  std::string request_id;  // <RequestId>, for support tickets
  std::string region;      // <Region> of AuthorizationHeaderMalformed / PermanentRedirect
  std::string endpoint;    // <Endpoint> of PermanentRedirect / TemporaryRedirect
};

// nullopt when `xml` is not an <Error> document (empty HEAD bodies, HTML from a proxy, ...).
std::optional<ErrorBody> parse_error(std::string_view xml);

struct ListPage {
  std::vector<std::string> keys;
  bool truncated = false;
  std::string next_continuation_token;  // set when truncated
};

// A ListObjectsV2 result. Keys are URL-decoded when the response says <EncodingType>url</EncodingType>.
// A truncated page without a continuation token is an error (following it would loop forever).
Result<ListPage, std::string> parse_list_objects_v2(std::string_view xml);

// <Delete><Quiet>true</Quiet><Object><Key>k</Key></Object>...</Delete>. The caller sends it with
// Content-MD5 (s3::content_md5) as S3 requires. At most 1000 keys per request.
inline constexpr std::size_t kMaxDeleteKeys = 1000;
std::string delete_objects_body(const std::vector<std::string>& keys, bool quiet = true);

struct DeleteFailure {
  std::string key;
  std::string code;
  std::string message;
};

struct DeleteResult {
  std::vector<std::string> deleted;  // empty in quiet mode
  std::vector<DeleteFailure> errors;
};

Result<DeleteResult, std::string> parse_delete_result(std::string_view xml);

}  // namespace stowage::storage::s3
