#pragma once
// Reading manifests: multi-document YAML (or JSON) files holding BackupStorage and Secret
// objects in their exact Kubernetes shapes, `kind: List` included. Every problem becomes a
// message that names the file and line and says how to fix it. A file with any problem at all
// (not readable, not YAML, empty, a document that is not a mapping, has no kind or a kind not
// read here, or does not parse as its kind) is `unreadable`: the manifest source keeps the
// objects it held before (a half-saved or truncated file never deletes storages), and
// `stowage init` exits 1. The objects that did parse are still listed.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/object_cache.hpp"
#include "kube/model.hpp"

namespace stowage::engine {

struct Located {
  std::string file;
  int line = 0;
  std::string where() const { return file + ":" + std::to_string(line); }
};

struct ManifestStorage {
  kube::BackupStorage object;
  Located at;
};
struct ManifestSecret {
  kube::Secret object;
  Located at;
};

// What one file holds.
struct FileContents {
  std::vector<ManifestStorage> storages;
  std::vector<ManifestSecret> secrets;
  std::vector<std::string> problems;  // what is wrong, each naming the file and line
  bool unreadable = false;            // any problem: the file does not say for sure what it holds
};

FileContents parse_manifest_text(const std::string& file, const std::string& text);
FileContents read_manifest_file(const std::filesystem::path& file);

// All objects of a folder (or a list of files), duplicates resolved: the first in path order wins
// and the later one is reported.
struct Snapshot {
  std::map<ObjectKey, ManifestStorage> storages;
  std::map<ObjectKey, ManifestSecret> secrets;
  std::vector<std::string> problems;
};

void add_to_snapshot(Snapshot& snapshot, const FileContents& contents);

// Manifest files under a folder, recursively, sorted; hidden entries (".*", e.g. the "..data" of a
// mounted ConfigMap) are skipped. Errors (missing folder) go to `error`.
std::vector<std::filesystem::path> list_manifest_files(const std::filesystem::path& dir, std::string& error,
                                                       std::vector<std::filesystem::path>* dirs = nullptr);

}  // namespace stowage::engine
