// kube/repository: KubeStash Repositories from the API server (any namespace) and their size strings
// ("12.222 MiB"), summed into BackupStorage.status.totalSize. Input starting with '{' is a
// Repository; anything else is a size string.
#include "fuzz/fuzz_support.hpp"
#include "kube/conditions.hpp"
#include "kube/repository.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  std::string_view text = fuzz::text_of(data, size);
  if (!text.empty() && text.front() == '{') {
    if (auto json = fuzz::json_of(text)) {
      auto repository = kube::parse_repository(*json);
      if (repository) (void)kube::parse_size(repository.value().status.size);
    }
    return 0;
  }
  auto bytes = kube::parse_size(text);
  // What format_size writes, parse_size reads, except "16777216.000 TiB" (2^64 bytes), what format_size
  // rounds the sizes within 0.0005 TiB of 2^64 up to (kube/repository.hpp).
  constexpr std::uint64_t kRoundsUpTo2Pow64 = ~std::uint64_t{0} - (std::uint64_t{1} << 40) / 2000;
  if (bytes && bytes.value() < kRoundsUpTo2Pow64) {
    auto again = kube::parse_size(kube::format_size(bytes.value()));
    fuzz::require(again.ok(), "parse_size refuses what format_size wrote");
  }
  return 0;
}
