// storage/metadata: an existing metadata.yaml in a bucket, container or volume (written by anyone
// with access to it) read as KubeStash's BackendMeta. Never throws; a refusal says why.
#include "fuzz/fuzz_support.hpp"
#include "storage/metadata.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string reason;
  auto meta = parse_metadata(stowage::fuzz::text_of(data, size), reason);
  stowage::fuzz::require(meta.has_value() || !reason.empty(), "an invalid metadata.yaml without a reason");
  if (meta) {
    std::string again_reason;
    auto again = parse_metadata(render_metadata(*meta), again_reason);
    stowage::fuzz::require(again.has_value(), "render_metadata of a valid BackendMeta does not parse");
  }
  return 0;
}
