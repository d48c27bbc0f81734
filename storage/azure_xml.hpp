#pragma once
// The XML bodies the Blob service answers with, read with pugixml:
//  - errors: <Error><Code>BlobNotFound</Code><Message>...</Message>...</Error>. Only Code and the
//    first line of Message are kept; AuthenticationErrorDetail (which can quote the string the
//    server signed and the signature it was sent) is never read.
//  - List Blobs: <EnumerationResults><Blobs><Blob><Name>..</Name>..</Blob>..</Blobs>
//    <NextMarker>..</NextMarker></EnumerationResults>.
// The request id is not in the body: it comes from the x-ms-request-id header.
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace stowage::storage::azure {

struct ErrorBody {
  std::string code;     // "" when the body is empty or not an Azure error document
  std::string message;  // first line, at most 200 characters
};
ErrorBody parse_error_body(std::string_view xml);

struct BlobList {
  std::vector<std::string> names;
  std::string next_marker;  // "" on the last page
};
Result<BlobList, std::string> parse_blob_list(std::string_view xml);

}  // namespace stowage::storage::azure
