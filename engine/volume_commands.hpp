#pragma once
// The commands a helper Job runs inside the mounted volume (engine/volume_job.hpp builds the Jobs):
//   init_volume: <path>/metadata.yaml with KubeStash's BackendMeta, create-only. A valid existing one
//                is kept untouched; an invalid one is never overwritten: the command fails and says so.
//   wipe_volume: WipeOut of <path> under the local backend's rules (storage/local_fs.hpp), with the
//                pod's / as the root and no protected paths besides the never-wipe set: nothing is
//                deleted unless <path> holds a valid metadata.yaml and is not /, a system directory
//                or inside one of /proc, /sys, /dev; <path> itself stays (it is the mount point);
//                symlinks are unlinked, never followed; other filesystems, sub-directories holding
//                another storage's metadata.yaml and each `keep` location (relative to <path>) are
//                left in place and reported; metadata.yaml goes last.
// Both reach <path> from / without following a symlink on the way (a symlink is a permanent failure).
// They block on the disk: they run in their own process (the Job's pod), never on the reactor.
//
// Reporting: one line says what happened. On success it goes to stdout; on failure or refusal to
// stderr. Either way it is also written to the termination log (the kubelet's /dev/termination-log,
// capped at 4 KiB as the kubelet reads it) when that file exists and is writable, so the controller
// reads it from the pod's status.containerStatuses[].state.terminated.message. The wipe's lines:
//   done:    "removed <N> files under <path>", then, when something was left,
//            "; left <M>: <path>: <why>; <path>: <why>..." (at most 20 listed, then "; and <K> more")
//   refused: "refused: <why>, and how to fix it" (nothing was deleted)
//   failed:  "<what failed, where, why>", then, when files were already removed,
//            " (removed <N> files under <path> before stopping; metadata.yaml is kept for a retry)"
//
// Exit codes: 0 done; 1 a failure worth retrying (I/O error, no space); 2 a failure only a change can
// fix (invalid metadata.yaml, permission denied, read-only volume, nothing mounted, a symlink on the
// way, a busy mount); 3 refused by rule, nothing deleted (no valid metadata.yaml shows the storage owns
// <path>, or <path> is protected). The Job's podFailurePolicy fails the Job at once on 2 and 3 instead
// of retrying it.
#include <filesystem>
#include <string>
#include <vector>

namespace stowage::engine {

inline constexpr int kVolumeExitOk = 0;
inline constexpr int kVolumeExitTransient = 1;
inline constexpr int kVolumeExitPermanent = 2;
inline constexpr int kVolumeExitRefused = 3;

struct VolumeCommandOptions {
  std::filesystem::path termination_log = "/dev/termination-log";  // not created when missing
};

int init_volume(const std::filesystem::path& path, const std::string& operator_version,
                const VolumeCommandOptions& options = {});
int wipe_volume(const std::filesystem::path& path, const std::vector<std::string>& keep = {},
                const VolumeCommandOptions& options = {});

}  // namespace stowage::engine
