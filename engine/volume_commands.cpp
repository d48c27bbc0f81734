// init-volume and wipe-volume (see volume_commands.hpp): the local backend's blocking steps
// (storage/local_fs.hpp) run directly, in the Job's own process, confined beneath the pod's /, with
// the outcome reported as one line on stdout/stderr and in the termination log.
#include "engine/volume_commands.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>
#include <vector>

#include "common/time_format.hpp"
#include "storage/local_fs.hpp"
#include "storage/metadata.hpp"

namespace stowage::engine {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t kTerminationLogLimit = 4096;  // what the kubelet reads of the file

// Cuts `text` to at most `limit` bytes without splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

// Best effort: a missing or read-only termination log (outside a pod) is not an error.
void write_termination_log(const fs::path& log, std::string_view line) {
  if (log.empty()) return;
  int fd = ::open(log.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return;
  std::string_view rest = utf8_prefix(line, kTerminationLogLimit);
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  ::close(fd);
}

int succeed(const VolumeCommandOptions& options, const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
  write_termination_log(options.termination_log, line);
  return kVolumeExitOk;
}

int fail(const VolumeCommandOptions& options, const std::string& line, int code) {
  std::fprintf(stderr, "error: %s\n", line.c_str());
  std::fflush(stderr);
  write_termination_log(options.termination_log, line);
  return code;
}

int fail(const VolumeCommandOptions& options, const storage::BackendError& error) {
  return fail(options, error.message, error.transient ? kVolumeExitTransient : kVolumeExitPermanent);
}

int refuse(const VolumeCommandOptions& options, const storage::BackendError& why) {
  const std::string line = "refused: " + why.message;
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  write_termination_log(options.termination_log, line);
  return kVolumeExitRefused;
}

// The volume as the local backend sees it in the pod: beneath /, nothing protected but the never-wipe set.
storage::LocalBackendOptions volume_at(const fs::path& path) {
  storage::LocalBackendOptions backend;
  backend.directory = path;
  backend.create_directory = false;  // the mount must be there
  backend.root = "/";
  return backend;
}

std::string left_in_place(const std::vector<std::string>& left) {
  constexpr std::size_t kListed = 20;
  if (left.empty()) return "";
  std::string out = "; left " + std::to_string(left.size()) + ":";
  for (std::size_t i = 0; i < left.size() && i < kListed; ++i) out += (i == 0 ? " " : "; ") + left[i];
  if (left.size() > kListed) out += "; and " + std::to_string(left.size() - kListed) + " more";
  return out;
}

// metadata.yaml exists: keep it when it is a valid BackendMeta, refuse to touch it otherwise.
int keep_existing(const VolumeCommandOptions& options, const fs::path& file, const storage::MetadataState& state) {
  if (!state.meta)
    return fail(options,
                file.string() + " exists but is not a valid BackendMeta (" + state.invalid_reason +
                    "): stowage never overwrites it; fix or remove it",
                kVolumeExitPermanent);
  std::string version = state.meta->operator_version.empty() ? "" : " by " + state.meta->operator_version;
  return succeed(options, "kept " + file.string() + " (created " + state.meta->creation_timestamp + version + ")");
}

}  // namespace

int init_volume(const fs::path& path, const std::string& operator_version, const VolumeCommandOptions& options) {
  if (path.empty()) return fail(options, "no path given: pass the volume's mount path", kVolumeExitPermanent);
  const storage::LocalBackendOptions backend = volume_at(path);
  const fs::path file = path / storage::kMetadataFile;

  auto state = storage::local_fs::read_metadata(backend);
  if (!state) return fail(options, state.error());
  if (state.value().exists) {
    // Never written again: a temp file a kill -9 left behind would otherwise stay forever.
    storage::local_fs::remove_stale_temps(backend);
    return keep_existing(options, file, state.value());
  }

  const storage::BackendMeta meta{rfc3339(WallClock::now()), operator_version};
  auto created = storage::local_fs::create_metadata(backend, storage::render_metadata(meta));
  if (!created) return fail(options, created.error());
  if (created.value() == storage::CreateOutcome::Created)
    return succeed(options, "created " + file.string() + " (operatorVersion " + operator_version + ")");

  // Another writer created it between our read and our write: judge theirs like any existing file.
  auto theirs = storage::local_fs::read_metadata(backend);
  if (!theirs) return fail(options, theirs.error());
  return keep_existing(options, file, theirs.value());
}

int wipe_volume(const fs::path& path, const std::vector<std::string>& keep, const VolumeCommandOptions& options) {
  if (path.empty()) return fail(options, "no path given: pass the volume's mount path", kVolumeExitPermanent);
  const storage::WipeReport report = storage::local_fs::wipe(volume_at(path), storage::WipePlan{keep});
  if (report.refused) return refuse(options, *report.refused);
  if (report.error) {
    storage::BackendError error = *report.error;
    if (report.removed > 0)
      error.message += " (removed " + std::to_string(report.removed) + " files under " + path.string() +
                       " before stopping; metadata.yaml is kept for a retry)";
    return fail(options, error);
  }
  return succeed(options, "removed " + std::to_string(report.removed) + " files under " + path.string() +
                              left_in_place(report.left));
}

}  // namespace stowage::engine
