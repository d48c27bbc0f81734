#pragma once
// KubeStash's status rules for BackupStorage: condition types and reasons, the transition-time
// rule, the phase rule and the size format.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kube/model.hpp"

namespace stowage::kube {

inline constexpr std::string_view kConditionBackendInitialized = "BackendInitialized";
inline constexpr std::string_view kConditionBackendSecretFound = "BackendSecretFound";
inline constexpr std::string_view kReasonBackendInitializationSucceeded = "BackendInitializationSucceeded";
inline constexpr std::string_view kReasonBackendInitializationFailed = "BackendInitializationFailed";
inline constexpr std::string_view kReasonBackendSecretAvailable = "BackendSecretAvailable";
inline constexpr std::string_view kReasonBackendSecretNotAvailable = "BackendSecretNotAvailable";
// stowage's own: a storage whose location equals or nests with an older storage's is never initialized.
inline constexpr std::string_view kReasonStorageLocationConflict = "StorageLocationConflict";
// stowage's own: a WipeOut's progress or failure while the object waits for its cleanup.
inline constexpr std::string_view kConditionWipeOut = "WipeOut";
inline constexpr std::string_view kReasonWipeOutInProgress = "WipeOutInProgress";
inline constexpr std::string_view kReasonWipeOutFailed = "WipeOutFailed";
inline constexpr std::string_view kReasonWipeOutRefused = "WipeOutRefused";
// stowage's own: a storage being deleted waits until its Repositories and their Snapshots are gone
// (KubeStash deletes them with the storage under both policies).
inline constexpr std::string_view kConditionRepositoriesDeleted = "RepositoriesDeleted";
inline constexpr std::string_view kReasonWaitingForRepositories = "WaitingForRepositories";
inline constexpr std::string_view kReasonRepositoryDeletionFailed = "RepositoryDeletionFailed";
inline constexpr std::string_view kMessageBackendInitialized = "Successfully initialized backend.";
inline constexpr std::string_view kMessageBackendSecretFound = "Backend secret exists.";
inline constexpr std::string_view kPhaseReady = "Ready";
inline constexpr std::string_view kPhaseNotReady = "NotReady";

// Sets (or replaces) the condition of the same type. lastTransitionTime is kept when the status
// does not change and set to `now` when it does or when the condition is new (Kubernetes rule).
// severity: "" for True conditions, "Error" for False ones (kmodules' convention).
void set_condition(std::vector<Condition>& conditions, Condition condition, const std::string& now);
void remove_condition(std::vector<Condition>& conditions, std::string_view type);
const Condition* find_condition(const std::vector<Condition>& conditions, std::string_view type);

// Ready when BackendInitialized is True and BackendSecretFound is absent or True; else NotReady.
std::string calculate_phase(const std::vector<Condition>& conditions);

// "%.3f TiB|GiB|MiB|KiB" when strictly greater than the unit, else "%d B".
std::string format_size(std::uint64_t bytes);

}  // namespace stowage::kube
