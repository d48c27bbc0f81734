// storage/s3_xml: whatever an S3 endpoint (a tenant's own `endpoint`) answers: error bodies,
// ListObjectsV2 pages and DeleteObjects results. Never throws; a page that says it is truncated
// always carries the token to follow.
#include "fuzz/fuzz_support.hpp"
#include "storage/s3_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view xml = stowage::fuzz::text_of(data, size);
  (void)s3::parse_error(xml);
  auto page = s3::parse_list_objects_v2(xml);
  if (page && page.value().truncated)
    stowage::fuzz::require(!page.value().next_continuation_token.empty(), "a truncated page without a token");
  (void)s3::parse_delete_result(xml);
  return 0;
}
