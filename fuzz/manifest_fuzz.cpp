// engine/manifests: parse_manifest_text reads every file of the manifest folder (YAML or JSON,
// several documents, kind: List) into BackupStorages and Secrets. It never throws; a file with any
// problem is marked unreadable and says why.
#include "engine/manifests.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  std::string text(fuzz::text_of(data, size));
  engine::FileContents contents = engine::parse_manifest_text("fuzz.yaml", text);
  fuzz::require(!contents.problems.empty() || !contents.unreadable, "an unreadable file names no problem");
  engine::Snapshot snapshot;
  engine::add_to_snapshot(snapshot, contents);
  return 0;
}
