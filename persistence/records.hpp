#pragma once
// The rows the state store keeps. None of them ever holds credential material: secrets appear
// only as a keyed fingerprint (see fingerprint.hpp).
#include <compare>
#include <cstdint>
#include <string>

namespace stowage::persistence {

// A work item's identity: (kind, namespace, name). Typed from day one (client-go paid for untyped keys).
struct QueueKey {
  std::string kind;  // "BackupStorage"
  std::string namespace_;
  std::string name;

  auto operator<=>(const QueueKey&) const = default;
  std::string str() const { return kind + ":" + namespace_ + "/" + name; }
  std::string object_name() const { return namespace_ + "/" + name; }
};

enum class ItemState { Pending, Processing };

struct QueueRow {
  QueueKey key;
  std::string reason;           // why it was queued last ("added", "secret changed", "retry", ...)
  int attempts = 0;             // failed or interrupted attempts since the last success
  std::int64_t next_attempt_ms = 0;  // wall clock, Unix milliseconds
  std::string last_error;       // secret-free message of the last failure
  ItemState state = ItemState::Pending;
  int interrupted = 0;          // consecutive attempts cut short by the process's end (crash, kill -9)
};

// "This storage was initialized at T for (uid, generation, backend identity, credential fingerprint)":
// when all four still match, a restart does not touch the backend again.
struct InitFact {
  std::string namespace_, name;
  std::string uid;
  std::int64_t generation = 0;
  std::string backend_identity;
  std::string credential_fingerprint;
  std::int64_t initialized_ms = 0;
};

// An object as the offline (manifest) mode keeps it, standing in for the API server's record:
// a stable uid, a generation that moves when the spec changes, its creation time, the last
// object (spec, no secrets) and its status.
struct ObjectRecord {
  std::string namespace_, name;
  std::string uid;
  std::int64_t generation = 1;
  std::string spec_hash;
  std::string source;             // which manifest folder it came from
  std::string creation_timestamp;
  std::string object_json;        // the BackupStorage as last seen (status excluded)
  std::string status_json;        // its status
  bool deleting = false;
};

// The Kubernetes mode's informer caches, kept so a quick restart resumes its watches instead of
// listing everything again: one row per object (the object JSON for BackupStorages; only the
// resourceVersion for metadata-only Secrets, never their data), and per resource the
// resourceVersion the rows are consistent with. `scope` names the API server and namespace the
// rows came from; rows of another scope are never resumed from.
struct KubeObjectRecord {
  std::string resource;  // "backupstorages", "secrets"
  std::string namespace_, name;
  std::string resource_version;
  std::string object_json;  // "" for metadata-only resources
};

struct KubeCheckpoint {
  std::string resource;
  std::string scope;
  std::string resource_version;
};

}  // namespace stowage::persistence
