// kube/model and engine/volume_job: a BackupStorage or Secret from any namespace (API server or
// manifest) parsed into the typed model, written back (to_json, status_to_json), and, for local
// volumes, turned into the helper Jobs (spec.storage.local and runtimeSettings are the tenant's).
#include "engine/volume_job.hpp"
#include "fuzz/fuzz_support.hpp"
#include "kube/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  auto json = fuzz::json_of(fuzz::text_of(data, size));
  if (!json) return 0;
  (void)kube::parse_secret(*json);
  if (json->is_object())
    if (const auto* status = json->as_object().if_contains("status")) (void)kube::parse_status(*status);
  auto storage = kube::parse_backup_storage(*json);
  if (!storage) return 0;
  boost::json::value back = kube::to_json(storage.value());
  auto reparsed = kube::parse_backup_storage(back);
  fuzz::require(reparsed.ok(), "to_json of a parsed BackupStorage does not parse");
  engine::VolumeJobSettings settings;
  settings.image = "stowage:fuzz";
  settings.operator_version = "v0.1.0";
  settings.wipe_keep = {"nested/a"};
  for (auto kind : {engine::VolumeJobKind::Initialize, engine::VolumeJobKind::Cleanup}) {
    auto job = engine::build_volume_job(storage.value(), kind, settings);
    if (job) fuzz::require(job.value().name.size() <= 63, "a Job name longer than 63 characters");
  }
  return 0;
}
