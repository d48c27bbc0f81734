#pragma once
// Reading manifests: multi-document YAML (or JSON) files holding BackupStorage and Secret
// objects in their exact Kubernetes shapes, `kind: List` included. Every problem becomes a
// message that names the file and line and says how to fix it. A file with any problem at all
// (not readable, not YAML, empty, a document that is not a mapping, has no kind or a kind not
// read here, or does not parse as its kind) is `unreadable`: the manifest source keeps the
// objects it held before (a half-saved or truncated file never deletes storages), and
// `stowage init` exits 1. The objects that did parse are still listed.
//
// Budgets bound what untrusted files may cost (ManifestBudgets; each is a setting, and every
// message that reports one names the setting that raises it): a file larger than max_file_size is
// not read (stat first, then a read capped at the budget, so a file that grows meanwhile is capped
// too); a file's documents beyond max_documents_per_file are not read; the objects of all files
// together beyond max_objects are not loaded, nor are documents whose YAML aliases would take the
// expansion of all files together beyond max_alias_expansion. A file stopped by a budget is
// unreadable like any other failing file (`budget_exceeded` says why), so it never makes the
// manifest source delete anything. Each file reports at most kMaxProblemsPerFile problems.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/object_cache.hpp"
#include "kube/model.hpp"

namespace stowage::config {
struct Config;
}

namespace stowage::engine {

// What reading manifests may cost. The defaults are config.hpp's (a test checks they agree).
struct ManifestBudgets {
  std::uint64_t max_file_size = 4u << 20;        // manifests.max-file-size: bytes of one file
  std::size_t max_documents_per_file = 1000;     // manifests.max-documents-per-file
  std::size_t max_objects = 10000;               // manifests.max-objects: BackupStorages + Secrets, all files
  std::uint64_t max_alias_expansion = 4u << 20;  // yaml.max-alias-expansion: bytes, all files together
};
ManifestBudgets budgets_from(const config::Config& config);

// What one file may still take of the budgets that all files of a folder (or of `stowage init`)
// share, after the files before it.
struct Allowance {
  std::size_t objects = 0;
  std::uint64_t alias_bytes = 0;
};

inline constexpr std::size_t kMaxProblemsPerFile = 20;  // then one line says how many more there are

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
  bool budget_exceeded = false;       // a budget stopped the read (a problem says which)
  // The budget that stopped it is shared with the files before it, which left less than all of it:
  // the file may read in full once they shrink, so it is worth reading again at every scan.
  bool limited_by_other_files = false;
  std::uint64_t alias_bytes = 0;  // what its YAML aliases expanded to (see kube::YamlLimits)
  std::size_t object_count() const { return storages.size() + secrets.size(); }
};

// Without an allowance, the file has the shared budgets to itself.
FileContents parse_manifest_text(const std::string& file, const std::string& text,
                                 const ManifestBudgets& budgets = {}, std::optional<Allowance> allowance = {});
FileContents read_manifest_file(const std::filesystem::path& file, const ManifestBudgets& budgets = {},
                                std::optional<Allowance> allowance = {});

// Reads `files` in order, each with what the files before it left of the shared budgets.
std::vector<FileContents> read_manifest_files(const std::vector<std::filesystem::path>& files,
                                              const ManifestBudgets& budgets);

// All objects of a folder (or a list of files), duplicates resolved: the first in path order wins
// and the later one is reported.
struct Snapshot {
  std::map<ObjectKey, ManifestStorage> storages;
  std::map<ObjectKey, ManifestSecret> secrets;
  std::vector<std::string> problems;
};

void add_to_snapshot(Snapshot& snapshot, const FileContents& contents);

// The manifest files under a folder, recursively: sorted; hidden entries (".*", e.g. the "..data"
// of a mounted ConfigMap) are skipped; symbolic links to folders are followed, but a folder is
// entered once only, known by its device and inode, so links that loop back (`a -> .`) end at once.
struct ManifestListing {
  std::vector<std::filesystem::path> files;
  std::vector<std::filesystem::path> dirs;  // every folder entered, the top one first
  std::string error;                        // the folder is missing or cannot be listed: nothing else counts
  std::vector<std::string> problems;        // links to a folder already entered, each skipped
};
ManifestListing list_manifest_files(const std::filesystem::path& dir);

}  // namespace stowage::engine
