#pragma once
// The commands a helper Job runs inside the mounted volume (engine/volume_job.hpp builds the Jobs):
//   init_volume: <path>/metadata.yaml with KubeStash's BackendMeta, create-only. A valid existing one
//                is kept untouched; an invalid one is never overwritten: the command fails and says so.
//   wipe_volume: removes everything under <path>, never <path> itself (it is the mount point), never
//                following a symlink out of it.
// They block on the disk: they run in their own process (the Job's pod), never on the reactor.
//
// Reporting: one line says what happened. On success it goes to stdout; on failure to stderr. Either
// way it is also written to the termination log (the kubelet's /dev/termination-log, capped at 4 KiB
// as the kubelet reads it) when that file exists and is writable, so the controller reads it from the
// pod's status.containerStatuses[].state.terminated.message.
//
// Exit codes: 0 done; 1 a failure worth retrying (I/O error, no space); 2 a failure only a change can
// fix (invalid metadata.yaml, permission denied, read-only volume, nothing mounted). The Job's
// podFailurePolicy fails the Job at once on 2 instead of retrying it.
#include <filesystem>
#include <string>

namespace stowage::engine {

inline constexpr int kVolumeExitOk = 0;
inline constexpr int kVolumeExitTransient = 1;
inline constexpr int kVolumeExitPermanent = 2;

struct VolumeCommandOptions {
  std::filesystem::path termination_log = "/dev/termination-log";  // not created when missing
};

int init_volume(const std::filesystem::path& path, const std::string& operator_version,
                const VolumeCommandOptions& options = {});
int wipe_volume(const std::filesystem::path& path, const VolumeCommandOptions& options = {});

}  // namespace stowage::engine
