// engine/volume_job: job_outcome reads a helper Job and its pods as the API server returns them (the
// pods' termination messages are written by whatever ran in the tenant's pod). Input: a JSON object
// {"job": ..., "pods": ...}, or any JSON value used as both the Job and a pod.
#include "engine/volume_job.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  auto json = fuzz::json_of(fuzz::text_of(data, size));
  if (!json) return 0;
  const boost::json::value* job = json.operator->();
  const boost::json::value* pods = nullptr;
  if (json->is_object()) {
    if (const auto* j = json->as_object().if_contains("job")) job = j;
    pods = json->as_object().if_contains("pods");
  }
  engine::JobOutcome outcome = pods ? engine::job_outcome(*job, *pods) : engine::job_outcome(*job);
  fuzz::require(outcome.state != engine::JobOutcome::Succeeded || !outcome.reason.empty(),
                "a succeeded Job without a reason");
  (void)engine::termination_message(*json);
  return 0;
}
