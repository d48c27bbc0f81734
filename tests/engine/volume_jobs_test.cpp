// VolumeJobs — the volume Jobs' lifecycle against the in-process FakeApi (tests/support/fake_api.hpp):
// a Job created once per storage, a finished Job's outcome read, a 409 on create, a cleaner Job of an
// earlier storage of the same name or a long-failed one retired with its uid as a precondition, and the
// Job informer's events (a retired Job's late events never stand in for its successor).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "engine/volume_jobs.hpp"
#include "kube/api.hpp"
#include "support/fake_api.hpp"
#include "support/run_awaitable.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

constexpr const char* kJobs = "/apis/batch/v1/namespaces/demo/jobs";
const std::string kCleaner = std::string(kJobs) + "/cleanup-s1";

kube::BackupStorage storage(const std::string& uid, const std::string& name = "s1") {
  json::value object = json::object{
      {"apiVersion", "storage.kubestash.com/v1alpha1"},
      {"kind", "BackupStorage"},
      {"metadata", {{"name", name}, {"namespace", "demo"}, {"uid", uid}, {"generation", 1}}},
      {"spec",
       {{"storage", {{"provider", "local"}, {"local", {{"mountPath", "/safe/data"}, {"hostPath", {{"path", "/data"}}}}}}},
        {"deletionPolicy", "WipeOut"}}}};
  auto parsed = kube::parse_backup_storage(object);
  REQUIRE(parsed.ok());
  return parsed.value();
}

// The Job build_volume_job makes for `s`, with `status` (as the Job controller writes it).
json::value job_for(const kube::BackupStorage& s, VolumeJobKind kind, json::value status = nullptr) {
  VolumeJobSettings settings;
  settings.image = "stowage:test";
  auto built = build_volume_job(s, kind, settings);
  REQUIRE(built.ok());
  json::value job = built.value().job;
  if (!status.is_null()) job.as_object()["status"] = std::move(status);
  return job;
}

json::value failed_status(const std::string& at) {
  return json::object{{"failed", 4},
                      {"conditions", json::array{{{"type", "Failed"},
                                                  {"status", "True"},
                                                  {"reason", "BackoffLimitExceeded"},
                                                  {"message", "Job has reached the specified backoff limit"},
                                                  {"lastTransitionTime", at}}}}};
}

std::string uid_of(const json::value& object) { return std::string(object.at("metadata").at("uid").as_string()); }

struct Rig {
  boost::asio::io_context io;
  test_support::FakeApi api{io.get_executor()};
  WallClock::time_point now = WallClock::time_point(std::chrono::seconds(1'800'000'000));
  std::vector<std::pair<ObjectKey, std::string>> changes;  // what on_change was told
  VolumeJobs jobs{api, options(), [this](const ObjectKey& s, const std::string& why) { changes.emplace_back(s, why); }};

  VolumeJobsOptions options() {
    VolumeJobsOptions o;
    o.settings.image = "stowage:test";
    o.failed_cleanup_retry = std::chrono::minutes(10);
    o.now = [this] { return now; };
    return o;
  }

  template <class T>
  T run(boost::asio::awaitable<T> work) {
    return test_support::run_awaitable(io, std::move(work));
  }

  TargetResult<JobOutcome> run_job(const kube::BackupStorage& s, VolumeJobKind kind, std::vector<std::string> keep = {}) {
    return run(jobs.run(s, kind, std::move(keep)));
  }
};

}  // namespace

TEST_CASE("VolumeJobs creates a storage's Job once, and reads its outcome from the Job the informer delivers") {
  Rig rig;
  auto s1 = storage("uid-1");
  auto first = rig.run_job(s1, VolumeJobKind::Cleanup, {"other"});
  REQUIRE(first.ok());
  CHECK(first.value().state == JobOutcome::Running);
  REQUIRE(rig.api.count("create", kJobs) == 1);
  const json::value* created = rig.api.object(kCleaner);
  REQUIRE(created);
  CHECK(json::serialize(created->at("spec")).find("--keep") != std::string::npos);  // `keep` reached the Job

  // Run again before any watch event: the Job created is known, not created again.
  REQUIRE(rig.run_job(s1, VolumeJobKind::Cleanup).ok());
  CHECK(rig.api.count("create", kJobs) == 1);

  // The informer brings the finished Job: its outcome is read, nothing else is asked.
  json::value done = *created;
  done.as_object()["status"] = json::object{
      {"succeeded", 1}, {"conditions", json::array{{{"type", "Complete"}, {"status", "True"}}}}};
  rig.jobs.job_upserted(done);
  CHECK(rig.changes == std::vector<std::pair<ObjectKey, std::string>>{{{"demo", "s1"}, "job demo/cleanup-s1 changed"}});
  auto finished = rig.run_job(s1, VolumeJobKind::Cleanup);
  REQUIRE(finished.ok());
  CHECK(finished.value().state == JobOutcome::Succeeded);
  CHECK(rig.api.count("create", kJobs) == 1);
  CHECK(rig.api.count("delete") == 0);
}

TEST_CASE("VolumeJobs: a failed Job's outcome carries its pods' termination message") {
  Rig rig;
  auto s1 = storage("uid-1");
  rig.jobs.job_upserted(rig.api.put(kJobs, job_for(s1, VolumeJobKind::Initialize, failed_status("2027-01-15T08:00:00Z"))));
  rig.api.put("/api/v1/namespaces/demo/pods",
              json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","namespace":"demo",
                  "labels":{"batch.kubernetes.io/job-name":")" + volume_job_name(s1, VolumeJobKind::Initialize) + R"("}},
                  "status":{"phase":"Failed","containerStatuses":[{"name":"stowage",
                  "state":{"terminated":{"exitCode":2,"message":"metadata.yaml is not valid"}}}]}})"));
  auto outcome = rig.run_job(s1, VolumeJobKind::Initialize);
  REQUIRE(outcome.ok());
  CHECK(outcome.value().state == JobOutcome::Failed);
  CHECK(outcome.value().reason == "BackoffLimitExceeded");
  CHECK(outcome.value().message == "metadata.yaml is not valid");
  CHECK(rig.api.count("create", kJobs) == 0);

  SECTION("pods that cannot be listed leave the Job's own reason") {
    rig.api.fail_next("list", "/api/v1/namespaces/demo/pods", test_support::FakeApi::status_error(403, "forbidden"));
    auto again = rig.run_job(s1, VolumeJobKind::Initialize);
    REQUIRE(again.ok());
    CHECK(again.value().state == JobOutcome::Failed);
    CHECK(again.value().message == "Job has reached the specified backoff limit");
  }
}

TEST_CASE("VolumeJobs: a 409 on create reads the Job that is there, and a cleaner of an earlier storage is not taken for ours") {
  Rig rig;
  auto s1 = storage("uid-1");
  SECTION("our own Job, created by an earlier run the cache has not heard of") {
    rig.api.put(kJobs, job_for(s1, VolumeJobKind::Cleanup, json::object{{"succeeded", 1}}));
    auto outcome = rig.run_job(s1, VolumeJobKind::Cleanup);
    REQUIRE(outcome.ok());
    CHECK(outcome.value().state == JobOutcome::Succeeded);
    CHECK(rig.api.count("create", kJobs) == 1);
    CHECK(rig.api.count("get", kCleaner) == 1);
    REQUIRE(rig.jobs.cached({"demo", "cleanup-s1"}));
  }
  SECTION("an earlier storage's cleaner, not yet known: a transient error, nothing deleted") {
    rig.api.put(kJobs, job_for(storage("uid-0"), VolumeJobKind::Cleanup));
    auto outcome = rig.run_job(s1, VolumeJobKind::Cleanup);
    REQUIRE_FALSE(outcome.ok());
    CHECK(outcome.error().transient);
    CHECK_THAT(outcome.error().message, Catch::Contains("of an earlier storage of the same name is still being deleted"));
    CHECK(rig.api.count("delete") == 0);
  }
  SECTION("other failures say whether to retry") {
    rig.api.fail_next("create", kJobs, test_support::FakeApi::status_error(403, "forbidden"));
    auto forbidden = rig.run_job(s1, VolumeJobKind::Cleanup);
    REQUIRE_FALSE(forbidden.ok());
    CHECK_FALSE(forbidden.error().transient);
    rig.api.fail_next("create", kJobs, test_support::FakeApi::status_error(503, "unavailable"));
    auto unavailable = rig.run_job(s1, VolumeJobKind::Cleanup);
    REQUIRE_FALSE(unavailable.ok());
    CHECK(unavailable.error().transient);
    CHECK(rig.api.object(kCleaner) == nullptr);
  }
}

TEST_CASE("VolumeJobs retires an earlier storage's cleaner with its uid as a precondition, and ignores its late events") {
  Rig rig;
  json::value old_job = rig.api.put(kJobs, job_for(storage("uid-0"), VolumeJobKind::Cleanup));
  rig.jobs.job_upserted(old_job);
  auto s1 = storage("uid-1");

  auto outcome = rig.run_job(s1, VolumeJobKind::Cleanup);
  REQUIRE(outcome.ok());
  CHECK(outcome.value().state == JobOutcome::Running);
  REQUIRE(rig.api.count("delete", kCleaner) == 1);
  const auto& removal = *std::find_if(rig.api.requests().begin(), rig.api.requests().end(),
                                      [](const auto& r) { return r.verb == "delete"; });
  CHECK(removal.path == kCleaner + "?propagationPolicy=Background");
  CHECK(removal.body == json::value{{"preconditions", {{"uid", uid_of(old_job)}}}});
  REQUIRE(rig.api.count("create", kJobs) == 1);
  json::value new_job = *rig.api.object(kCleaner);
  REQUIRE(uid_of(new_job) != uid_of(old_job));

  // The old Job's MODIFIED event, on its way when it was deleted, does not replace the new one...
  rig.jobs.job_upserted(old_job);
  REQUIRE(rig.jobs.cached({"demo", "cleanup-s1"}));
  CHECK(uid_of(*rig.jobs.cached({"demo", "cleanup-s1"})) == uid_of(new_job));
  // ...and its DELETED event does not take the new one out of the cache.
  rig.jobs.job_removed("demo", "cleanup-s1", old_job);
  REQUIRE(rig.jobs.cached({"demo", "cleanup-s1"}));
  CHECK(uid_of(*rig.jobs.cached({"demo", "cleanup-s1"})) == uid_of(new_job));
  REQUIRE(rig.run_job(s1, VolumeJobKind::Cleanup).ok());
  CHECK(rig.api.count("create", kJobs) == 1);
  CHECK(rig.api.count("delete") == 1);

  // The new Job's own DELETED event (with its uid) forgets it; one without an object (a relist) too.
  rig.jobs.job_removed("demo", "cleanup-s1", new_job);
  CHECK_FALSE(rig.jobs.cached({"demo", "cleanup-s1"}));
  CHECK(rig.changes.back() == std::pair<ObjectKey, std::string>{{"demo", "s1"}, "job demo/cleanup-s1 deleted"});
  rig.jobs.job_upserted(new_job);
  rig.jobs.job_removed("demo", "cleanup-s1", nullptr);
  CHECK_FALSE(rig.jobs.cached({"demo", "cleanup-s1"}));
}

TEST_CASE("VolumeJobs: retiring takes 404 and 409 as gone, and another failure stops before a new Job is created") {
  Rig rig;
  json::value old_job = rig.api.put(kJobs, job_for(storage("uid-0"), VolumeJobKind::Cleanup));
  rig.jobs.job_upserted(old_job);
  auto s1 = storage("uid-1");
  SECTION("409: the name holds another object already") {
    rig.api.erase(kCleaner);
    rig.api.put(kJobs, job_for(s1, VolumeJobKind::Cleanup));  // ours, created meanwhile by another run
    auto outcome = rig.run_job(s1, VolumeJobKind::Cleanup);
    REQUIRE(outcome.ok());
    CHECK(rig.api.count("delete", kCleaner) == 1);
    CHECK(rig.api.object(kCleaner));  // the precondition kept the newer Job
    CHECK(rig.api.count("get", kCleaner) == 1);  // create said 409: the Job there was read, and it is ours
  }
  SECTION("404") {
    rig.api.erase(kCleaner);
    REQUIRE(rig.run_job(s1, VolumeJobKind::Cleanup).ok());
    CHECK(rig.api.count("create", kJobs) == 1);
    CHECK(rig.api.object(kCleaner));
  }
  SECTION("500") {
    rig.api.fail_next("delete", kCleaner, test_support::FakeApi::status_error(500, "etcd timeout"));
    auto outcome = rig.run_job(s1, VolumeJobKind::Cleanup);
    REQUIRE_FALSE(outcome.ok());
    CHECK(outcome.error().transient);
    CHECK_THAT(outcome.error().message, Catch::Contains("deleting the volume Job demo/cleanup-s1"));
    CHECK(rig.api.count("create", kJobs) == 0);
    CHECK(uid_of(*rig.jobs.cached({"demo", "cleanup-s1"})) == uid_of(old_job));
  }
}

TEST_CASE("VolumeJobs runs a failed cleaner again once it has been failed for the retry period, not before") {
  Rig rig;
  auto s1 = storage("uid-1");
  rig.now = *parse_rfc3339("2027-01-15T08:09:59Z");
  json::value failed = rig.api.put(kJobs, job_for(s1, VolumeJobKind::Cleanup, failed_status("2027-01-15T08:00:00Z")));
  rig.jobs.job_upserted(failed);

  auto early = rig.run_job(s1, VolumeJobKind::Cleanup);
  REQUIRE(early.ok());
  CHECK(early.value().state == JobOutcome::Failed);
  CHECK(rig.api.count("delete") == 0);

  rig.now = *parse_rfc3339("2027-01-15T08:10:00Z");
  auto retried = rig.run_job(s1, VolumeJobKind::Cleanup);
  REQUIRE(retried.ok());
  CHECK(retried.value().state == JobOutcome::Running);
  CHECK(rig.api.count("delete", kCleaner) == 1);
  CHECK(rig.api.count("create", kJobs) == 1);
  CHECK(uid_of(*rig.api.object(kCleaner)) != uid_of(failed));
}

TEST_CASE("VolumeJobs: a Job that cannot be built is a permanent error, and no request is made") {
  Rig rig;
  auto no_uid = storage("");
  auto outcome = rig.run_job(no_uid, VolumeJobKind::Initialize);
  REQUIRE_FALSE(outcome.ok());
  CHECK_FALSE(outcome.error().transient);
  CHECK_THAT(outcome.error().message, Catch::Contains("the volume Job cannot be built: metadata.uid"));
  CHECK(rig.api.requests().empty());
}
