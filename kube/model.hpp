#pragma once
// Typed models of the Kubernetes objects stowage reads and writes: BackupStorage
// (storage.kubestash.com/v1alpha1) and Secret (v1), parsed from Boost.JSON values (the manifest
// source converts YAML to JSON first; the API server speaks JSON). Parsing never throws: a field
// with an unexpected type gives a ParseError naming its path ("spec.storage.s3.bucket: expected a
// string, got a number"). With Unknown::Keep, the object as given is kept in `raw` so it can be
// written back whole (the manifest source does); the informers' caches keep only the typed form
// (Unknown::Drop): compact holders (kube/compact.hpp), repeated JSON interned, no managedFields and
// no last-applied-configuration annotation.
#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "kube/compact.hpp"

namespace stowage::kube {

struct ParseError {
  std::string path;     // JSON path of the offending field, e.g. "spec.storage.provider"
  std::string message;  // what is wrong and how to fix it
  std::string to_string() const { return path.empty() ? message : path + ": " + message; }
};

template <class T>
using ParseResult = Result<T, ParseError>;

struct ObjectMeta {
  std::string name;
  std::string namespace_;  // "default" when absent (as kubectl does)
  std::string uid;
  std::string resource_version;
  std::int64_t generation = 0;
  std::string creation_timestamp;
  std::string deletion_timestamp;
  StringMap labels;
  StringMap annotations;  // never kubectl.kubernetes.io/last-applied-configuration (a copy of the object)
  std::vector<std::string> finalizers;
};

struct S3Spec {
  std::string endpoint, bucket, prefix, region, secret_name;
  std::int64_t max_connections = 0;
  bool insecure_tls = false;
};

struct GcsSpec {
  std::string bucket, prefix, secret_name;
  std::int64_t max_connections = 0;
};

struct AzureSpec {
  std::string storage_account, container, prefix, secret_name;
  std::int64_t max_connections = 0;
};

// spec.storage.local: an inline VolumeSource plus mountPath/subPath/maxConnections.
struct LocalSpec {
  std::string mount_path, sub_path;
  std::int64_t max_connections = 0;
  std::string volume_type;               // the VolumeSource member present: "hostPath", "persistentVolumeClaim", "nfs", ...
  std::string host_path;                 // hostPath.path when volume_type == "hostPath"
  SharedObject volume_source;            // the VolumeSource member(s) as given
};

struct StorageSpec {
  std::string provider;  // "local" | "s3" | "gcs" | "azure" | anything else (reported NotReady)
  Boxed<S3Spec> s3;
  Boxed<GcsSpec> gcs;
  Boxed<AzureSpec> azure;
  Boxed<LocalSpec> local;

  // The secret this provider needs (empty when none is named or the provider is local).
  std::string secret_name() const;
};

struct BackupStorageSpec {
  StorageSpec storage;
  bool is_default = false;                   // spec.default
  std::string deletion_policy = "Delete";    // "Delete" | "WipeOut"
  std::string usage_from = "Same";           // spec.usagePolicy.allowedNamespaces.from
  SharedJson usage_policy;                   // as given (null when absent)
  SharedJson runtime_settings;               // as given (null when absent)
};

struct Condition {
  std::string type, status, reason, message, severity;
  std::string last_transition_time;  // RFC 3339
  std::int64_t observed_generation = 0;
};

struct RepositoryStatus {
  std::string name, namespace_, path, size, error;
  bool synced = false;
};

struct BackupStorageStatus {
  std::string phase;       // "Ready" | "NotReady" | "" (never reconciled)
  std::string total_size;
  std::vector<RepositoryStatus> repositories;
  std::vector<Condition> conditions;  // each carries the observedGeneration it was computed for
  // The members of the status as read that this model does not know (a status write nulls them).
  std::vector<std::string> other_fields;
};

struct BackupStorage {
  ObjectMeta metadata;
  BackupStorageSpec spec;
  BackupStorageStatus status;
  boost::json::value raw;  // the whole object as received (Unknown::Keep only; null otherwise)
};

struct Secret {
  ObjectMeta metadata;
  std::string type;
  // Decoded values of `data` (Base64) merged with `stringData` (which wins, as the API server does).
  std::map<std::string, std::string> data;
  // Keys whose `data` value is not valid Base64 (the values are never kept or printed).
  std::vector<std::string> invalid_keys;
};

inline constexpr const char* kBackupStorageApiVersion = "storage.kubestash.com/v1alpha1";
inline constexpr const char* kBackupStorageKind = "BackupStorage";

ParseResult<ObjectMeta> parse_object_meta(const boost::json::value& metadata);
// Whether a parsed BackupStorage keeps the object as given in `raw`.
enum class Unknown { Keep, Drop };
ParseResult<BackupStorage> parse_backup_storage(const boost::json::value& object, Unknown unknown = Unknown::Keep);
ParseResult<Secret> parse_secret(const boost::json::value& object);
ParseResult<BackupStorageStatus> parse_status(const boost::json::value& status);

// The status as the API server would store it (camelCase keys; empty fields omitted as Go's
// omitempty does, `phase` always present once reconciled).
boost::json::value status_to_json(const BackupStorageStatus& status);

// The whole object with `status` replaced by `status_to_json(object.status)` and the typed
// metadata fields (uid, generation, creationTimestamp, namespace) written over `raw`.
boost::json::value to_json(const BackupStorage& object);

}  // namespace stowage::kube
