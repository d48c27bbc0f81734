#pragma once
// KubeStash's Repository (storage.kubestash.com/v1alpha1, namespaced, status subresource) as stowage
// reads it, and KubeStash's size strings ("12.222 MiB") used by Repository.status.size and by
// BackupStorage.status.repositories[].size / status.totalSize.
//
// Guarantees:
// - parse_repository never throws. A field of an unexpected type gives a ParseError naming its JSON
//   path ("spec.storageRef.name: expected a string, got a number"); JSON null counts as absent;
//   unknown fields are ignored here and kept in `raw`.
// - parse_size is the inverse of format_size (kube/conditions.hpp, KubeStash's FormatBytes): it reads
//   what KubeStash's ConvertSizeToByte reads (KubeStash's own output always), truncates the same way,
//   and returns an error value for anything else: it never throws.
//
// What was confirmed, and from where (the stored public copies; nothing was copied, only read):
// - The Repository type: kubestash/apimachinery apis/storage/v1alpha1/repository_types.go and
//   crds/storage.kubestash.com_repositories.yaml. spec: appRef (TypedObjectReference: apiGroup, kind,
//   name, namespace), storageRef (kmodules ObjectReference: name required, namespace), path (relative to the
//   storage's own path), deletionPolicy (Delete|WipeOut, default Delete), encryptionSecret {name,
//   namespace}, paused (bool). status: phase (Ready|NotReady), lastBackupTime, integrity (*bool),
//   snapshotCount (*int32), size (string), recentSnapshots[], conditions[] (RepositoryInitialized),
//   componentPaths[]. Plural `repositories`, short name `repo`. Repository.CalculatePhase (in
//   repository_helpers.go): Ready iff RepositoryInitialized is True.
// - Sizes: apis/storage/v1alpha1/types_helpers.go. FormatBytes(c uint64): "%.3f TiB" when c > 1<<40,
//   else GiB/MiB/KiB likewise (strictly greater), else "%d B". ConvertSizeToByte takes the string split
//   on " " ([number, unit]), ParseFloat(number) times 1<<40/30/20/10/1 for TiB/GiB/MiB/KiB/B, then
//   uint64(...) (truncation); any other unit is an error. Its callers (snapshot_helpers.go) reject a
//   string with fewer than two parts.
// Where stowage is stricter than Go, on strings KubeStash never writes: the number must be plain
// decimal digits with an optional fraction (Go's ParseFloat also takes "1e3", "0x1p4", "Inf", "NaN",
// "-1", "+1"), exactly one space must separate it from the unit and nothing may
// follow (Go ignores a third part), and a value beyond 2^64-1 bytes is an error (Go's conversion is
// implementation-defined there).
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kube/conditions.hpp"  // format_size
#include "kube/model.hpp"

namespace stowage::kube {

inline constexpr const char* kRepositoryApiVersion = "storage.kubestash.com/v1alpha1";
inline constexpr const char* kRepositoryKind = "Repository";
inline constexpr const char* kRepositoryPlural = "repositories";
inline constexpr const char* kConditionRepositoryInitialized = "RepositoryInitialized";

struct NamespacedReference {  // kmodules ObjectReference (name, namespace)
  std::string name, namespace_;
};

struct TypedObjectReference {  // kmodules TypedObjectReference
  std::string api_group, kind, name, namespace_;
};

struct RepositorySpec {
  TypedObjectReference app_ref;
  NamespacedReference storage_ref;  // namespace as written ("" when left out)
  std::string path;
  std::string deletion_policy = "Delete";
  std::optional<NamespacedReference> encryption_secret;
  bool paused = false;
};

struct RepositoryObjectStatus {
  std::string phase;             // "Ready" | "NotReady" | "" (not reconciled yet)
  std::string last_backup_time;  // RFC 3339, "" when none
  std::optional<bool> integrity;
  std::optional<std::int64_t> snapshot_count;
  std::string size;  // KubeStash's size string ("12.222 MiB"), "" before the first backup
  std::vector<Condition> conditions;
  std::vector<std::string> component_paths;
};

struct Repository {
  ObjectMeta metadata;
  RepositorySpec spec;
  RepositoryObjectStatus status;
  boost::json::value raw;  // the whole object as received, unknown fields included

  // The BackupStorage this Repository stores its data in: spec.storageRef, whose namespace defaults
  // to the Repository's own (a decision: KubeStash always writes it, the schema does not require it).
  NamespacedReference storage() const;
};

ParseResult<Repository> parse_repository(const boost::json::value& object);

// The inverse of format_size ("0 B", "1024 B", "1.001 KiB", "1024.000 KiB", "1.000 MiB", ...), as
// KubeStash's ConvertSizeToByte (truncating: "1.083 KiB" -> 1108). The error's
// path is empty; its message quotes the string and says what is wrong. One exception: format_size
// rounds the sizes within 0.0005 TiB of 2^64 (a saturated totalSize among them) up to
// "16777216.000 TiB", which is 2^64 bytes and so refused here.
ParseResult<std::uint64_t> parse_size(std::string_view text);

}  // namespace stowage::kube
