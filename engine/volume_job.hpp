#pragma once
// The helper Jobs (batch/v1) of a local-volume BackupStorage, as pure functions: no I/O here.
//
// In a cluster the controller cannot mount a storage's volume, so, as KubeStash does, it runs a Job in
// the storage's namespace that mounts spec.storage.local's VolumeSource at mountPath (with subPath) and
// runs stowage's own image with a subcommand (engine/volume_commands.hpp):
//   Initialize  `init-volume --path <mountPath> --operator-version <v>`: metadata.yaml, create-only.
//   Cleanup     `wipe-volume --path <mountPath>`: everything under the mount (WipeOut).
//
// Guarantees:
//  - build_volume_job() is deterministic: the same storage (uid, generation, spec) and settings give
//    the same JSON, so a Job that already exists under the name is the one this function would make.
//  - Names are DNS-1123 labels of at most 63 characters (a Job's name is copied into its pods'
//    `job-name` label, whose values are limited to 63): `init-<name>-<hash of uid and generation>`
//    (a new generation gets a new Job), `cleanup-<name>` as KubeStash names it (with a uid hash
//    appended only when the name is too long to fit).
//  - Every Job carries KubeStash's offshoot labels plus the storage's uid and generation
//    (kLabelStorageUid, kLabelStorageGeneration), so a watch with kVolumeJobSelector maps any Job
//    back to its storage and the generation it was made for.
//  - The init Job is owned by the storage (controller ownerReference, blockOwnerDeletion): deleting
//    the storage garbage-collects it. The cleanup Job has no ownerReference on purpose: it runs while
//    the storage is being deleted, and a foreground deletion would otherwise collect it mid-run;
//    ttlSecondsAfterFinished removes it.
//  - Retries are for failures that may pass: backoffLimit counts them, while the command's exit codes 2
//    (kVolumeExitPermanent: invalid metadata.yaml, permission denied, ...) and 3 (kVolumeExitRefused:
//    wipe-volume deleted nothing by rule) fail the Job at once through its podFailurePolicy, and a pod
//    lost to a disruption (drain, preemption) is not counted.
//  - A cleanup Job passes the other storages' locations inside the volume as `--keep` arguments
//    (VolumeJobSettings::wipe_keep).
//  - A bad spec.storage.local or runtimeSettings (wrong JSON types, a relative mountPath, a subPath
//    with "..", two volume sources) is an error value naming the field, never a Job the API server
//    would reject with a less helpful message. Deeper validation is left to the API server.
//  - Whoever writes the BackupStorage writes its volume too, so nothing in runtimeSettings may make the
//    pod load code from a file: env names LD_*, STOWAGE_*, GCONV_PATH and OPENSSL_CONF/_MODULES/_ENGINES
//    are refused (an error naming env[i].name), and envFrom is refused altogether (a ConfigMap or Secret
//    could set those names unseen).
//  - Pod Security "restricted" by default: pod runAsNonRoot true and seccompProfile RuntimeDefault,
//    container allowPrivilegeEscalation false and capabilities drop [ALL]. runtimeSettings' securityContext
//    keys win one by one (null removes ours). runAsNonRoot is left out when the container is told to run
//    as root (runAsUser 0, KubeStash's advice for hostPath), and allowPrivilegeEscalation when it is
//    privileged or adds CAP_SYS_ADMIN (the API server refuses either beside it), unless given explicitly.
//
// runtimeSettings (kmodules offshoot-api RuntimeSettings) applied to the Job's pod:
//   pod:       podLabels, podAnnotations, nodeSelector, serviceAccountName, automountServiceAccountToken,
//              nodeName, securityContext (merged over the defaults: runAsUser 65534, runAsNonRoot,
//              seccompProfile), imagePullSecrets, affinity, schedulerName, tolerations,
//              priorityClassName, priority, readinessGates, runtimeClassName, enableServiceLinks,
//              topologySpreadConstraints
//   container: resources, securityContext (merged over the defaults), env (refused names above)
//   refused:   container.envFrom
//   ignored (listed in VolumeJob::ignored_settings):
//     pod.serviceAccountAnnotations (stowage creates no ServiceAccount for the Job),
//     container.livenessProbe/readinessProbe/lifecycle (meaningless for a run-to-completion command),
//     container.nice/ionice (KubeStash's binary reads them from its environment; stowage's does not),
//     and any field offshoot-api does not define.
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "kube/model.hpp"

namespace stowage::engine {

enum class VolumeJobKind { Initialize, Cleanup };

// Label keys and values on every helper Job and its pods. The first four are KubeStash's.
inline constexpr std::string_view kLabelManagedBy = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByKubeStash = "kubestash.com";
inline constexpr std::string_view kLabelInvokerKind = "kubestash.com/invoker-kind";
inline constexpr std::string_view kLabelInvokerName = "kubestash.com/invoker-name";
inline constexpr std::string_view kLabelInvokerNamespace = "kubestash.com/invoker-namespace";
// KubeStash's component names ("kubestash-initializer", "kubestash-cleaner") under the standard key.
inline constexpr std::string_view kLabelComponent = "app.kubernetes.io/component";
inline constexpr std::string_view kComponentInitializer = "kubestash-initializer";
inline constexpr std::string_view kComponentCleaner = "kubestash-cleaner";
// stowage's own: which storage object (uid) and which generation of its spec a Job was made for.
inline constexpr std::string_view kLabelStorageUid = "stowage.dev/storage-uid";
inline constexpr std::string_view kLabelStorageGeneration = "stowage.dev/storage-generation";
// The label selector for watching (or listing) every helper Job stowage made for a BackupStorage.
inline constexpr std::string_view kVolumeJobSelector =
    "app.kubernetes.io/managed-by=kubestash.com,kubestash.com/invoker-kind=BackupStorage,stowage.dev/storage-uid";

inline constexpr std::string_view kVolumeJobContainer = "stowage";
inline constexpr std::string_view kVolumeName = "storage";
inline constexpr std::string_view kTerminationLogPath = "/dev/termination-log";
inline constexpr std::int64_t kDefaultRunAsUser = 65534;  // KubeStash's default user for the initializer

struct VolumeJobSettings {
  std::string image;                              // stowage's own image (required)
  // Cleanup Jobs only: other storages' locations inside this one's volume, relative to it, that
  // wipe-volume must leave alone (`--keep REL`, one per entry).
  std::vector<std::string> wipe_keep;
  std::string image_pull_policy = "IfNotPresent";
  std::vector<std::string> command;               // empty: the image's entrypoint runs the arguments
  std::string service_account;                    // "" = the namespace's default; runtimeSettings wins
  std::string operator_version;                   // written into metadata.yaml by init-volume
  std::int64_t backoff_limit = 3;
  std::int64_t active_deadline_seconds = 600;
  std::int64_t ttl_seconds_after_finished = 3600;
};

struct VolumeJob {
  std::string name;
  std::string namespace_;
  boost::json::value job;                     // the batch/v1 Job, ready to POST
  std::vector<std::string> ignored_settings;  // runtimeSettings paths that were not applied
};

struct VolumeJobError {
  std::string path;     // the offending field, e.g. "spec.runtimeSettings.pod.nodeSelector"
  std::string message;  // what is wrong and how to fix it
  std::string to_string() const { return path.empty() ? message : path + ": " + message; }
};

Result<VolumeJob, VolumeJobError> build_volume_job(const kube::BackupStorage& storage, VolumeJobKind kind,
                                                   const VolumeJobSettings& settings);

// The Job names alone (what build_volume_job() uses), to GET a Job without building it.
std::string volume_job_name(const kube::BackupStorage& storage, VolumeJobKind kind);

// What a helper Job says about its run.
struct JobOutcome {
  enum State { Running, Succeeded, Failed };
  State state = Running;
  std::string reason;   // Succeeded: "Completed"; Failed: the Job condition's reason ("BackoffLimitExceeded",
                        // "DeadlineExceeded", "PodFailurePolicy", ...); Running: ""
  std::string message;  // Succeeded: the command's report; Failed: why (the pod's termination message first);
                        // Running: why it is not progressing, when a pod says (image pull, scheduling,
                        // a failed attempt)
  std::int64_t failed_pods = 0;
  std::string finished_at;  // Failed: when the Job's Failed condition turned True (RFC 3339), when it says
};

// From the Job's status conditions (Complete / SuccessCriteriaMet, Failed / FailureTarget), its
// counters against spec.backoffLimit, and, when given, its pods (a JSON array or a PodList) for the
// command's own termination message.
JobOutcome job_outcome(const boost::json::value& job, const boost::json::value& pods = nullptr);

// status.containerStatuses[].state.terminated.message of a pod (the stowage container first, then any
// other; lastState when the state holds none), trimmed; "" when there is none.
std::string termination_message(const boost::json::value& pod);

}  // namespace stowage::engine
