// storage/azure_xml: whatever a Blob endpoint (a tenant's connection string may name any) answers:
// error bodies and List Blobs pages. Never throws.
#include "fuzz/fuzz_support.hpp"
#include "storage/azure_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view xml = stowage::fuzz::text_of(data, size);
  (void)azure::parse_error_body(xml);
  (void)azure::parse_blob_list(xml);
  return 0;
}
