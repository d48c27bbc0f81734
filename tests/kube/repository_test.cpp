// Repository parsing (KubeStash's documented example, defaults, every type mismatch naming its field)
// and KubeStash's size strings: FormatBytes' exact output at and around each unit boundary, the
// inverse with ConvertSizeToByte's truncation, round trips, and the strings stowage refuses.
#include "kube/repository.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>

#include "kube/yaml_json.hpp"

using namespace stowage::kube;
namespace json = boost::json;

namespace {

json::value yaml(const std::string& text) {
  auto docs = parse_yaml_documents(text);
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  return docs.value()[0].value;
}

// KubeStash's docs (docs/concepts/crds/repository/index.md).
const char* kDocsRepository = R"(
apiVersion: storage.kubestash.com/v1alpha1
kind: Repository
metadata:
  name: gcs-demo-repo
  namespace: demo
spec:
  appRef:
    apiGroup: apps
    kind: StatefulSet
    name: sample-sts
    namespace: demo
  deletionPolicy: Delete
  encryptionSecret:
    name: encry-secret
    namespace: demo
  path: /demo/data
  storageRef:
    name: gcs-storage
    namespace: demo
status:
  componentPaths:
  - repository/v1/demo-session/pod-0
  - repository/v1/demo-session/pod-1
  conditions:
  - lastTransitionTime: "2023-12-07T06:37:40Z"
    message: Successfully initialized repository
    reason: RepositoryInitializationSucceeded
    status: "True"
    type: RepositoryInitialized
  integrity: true
  lastBackupTime: "2023-12-07T06:38:00Z"
  phase: Ready
  recentSnapshots:
  - name: gcs-demo-repo-sample-backup-sts-demo-session-1701940920
    phase: Succeeded
    size: 12.222 MiB
  size: 12.222 MiB
  snapshotCount: 1
)";

json::value minimal() {
  return json::parse(R"({"apiVersion":"storage.kubestash.com/v1alpha1","kind":"Repository",
                         "metadata":{"name":"r","namespace":"apps"}})");
}

std::string error_of(const json::value& object) {
  auto parsed = parse_repository(object);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().to_string();
}

std::uint64_t bytes_of(const std::string& text) {
  auto parsed = parse_size(text);
  INFO(text << ": " << (parsed.ok() ? std::string() : parsed.error().message));
  REQUIRE(parsed.ok());
  return parsed.value();
}

}  // namespace

TEST_CASE("repository: KubeStash's documented Repository parses field by field") {
  auto parsed = parse_repository(yaml(kDocsRepository));
  INFO((parsed.ok() ? std::string() : parsed.error().to_string()));
  REQUIRE(parsed.ok());
  const Repository& r = parsed.value();
  CHECK(r.metadata.name == "gcs-demo-repo");
  CHECK(r.metadata.namespace_ == "demo");
  CHECK(r.spec.app_ref.api_group == "apps");
  CHECK(r.spec.app_ref.kind == "StatefulSet");
  CHECK(r.spec.app_ref.name == "sample-sts");
  CHECK(r.spec.app_ref.namespace_ == "demo");
  CHECK(r.spec.storage_ref.name == "gcs-storage");
  CHECK(r.spec.storage_ref.namespace_ == "demo");
  CHECK(r.spec.path == "/demo/data");
  CHECK(r.spec.deletion_policy == "Delete");
  REQUIRE(r.spec.encryption_secret);
  CHECK(r.spec.encryption_secret->name == "encry-secret");
  CHECK_FALSE(r.spec.paused);
  CHECK(r.status.phase == "Ready");
  CHECK(r.status.size == "12.222 MiB");
  CHECK(r.status.integrity == std::optional<bool>(true));
  CHECK(r.status.snapshot_count == std::optional<std::int64_t>(1));
  CHECK(r.status.last_backup_time == "2023-12-07T06:38:00Z");
  REQUIRE(r.status.conditions.size() == 1);
  CHECK(r.status.conditions[0].type == kConditionRepositoryInitialized);
  CHECK(r.status.conditions[0].status == "True");
  CHECK(r.status.component_paths.size() == 2);
  CHECK(r.raw.at("status").at("recentSnapshots").as_array().size() == 1);  // kept whole in raw
  CHECK(r.storage().name == "gcs-storage");
  CHECK(r.storage().namespace_ == "demo");
}

TEST_CASE("repository: defaults for a bare object and a storageRef without namespace") {
  auto parsed = parse_repository(minimal());
  REQUIRE(parsed.ok());
  const Repository& r = parsed.value();
  CHECK(r.spec.deletion_policy == "Delete");
  CHECK(r.spec.path.empty());
  CHECK_FALSE(r.status.integrity);
  CHECK_FALSE(r.status.snapshot_count);
  CHECK(r.status.size.empty());
  CHECK(r.storage().name.empty());

  json::value o = minimal();
  o.as_object()["spec"] = json::parse(R"({"storageRef":{"name":"st"},"path":"p","paused":true,"deletionPolicy":null})");
  o.as_object()["status"] = json::parse(R"({"snapshotCount":3.0,"integrity":null})");
  auto with_ref = parse_repository(o);
  REQUIRE(with_ref.ok());
  CHECK(with_ref.value().storage().namespace_ == "apps");  // the Repository's own namespace
  CHECK(with_ref.value().spec.storage_ref.namespace_.empty());
  CHECK(with_ref.value().spec.paused);
  CHECK(with_ref.value().spec.deletion_policy == "Delete");
  CHECK(with_ref.value().status.snapshot_count == std::optional<std::int64_t>(3));
  CHECK_FALSE(with_ref.value().status.integrity);

  json::value no_ns = minimal();
  no_ns.as_object()["metadata"].as_object().erase("namespace");
  auto defaulted = parse_repository(no_ns);
  REQUIRE(defaulted.ok());
  CHECK(defaulted.value().metadata.namespace_ == "default");
}

TEST_CASE("repository: wrong types name the field") {
  struct Case {
    const char* section;
    const char* json;
    const char* expected;
  };
  const Case cases[] = {
      {"spec", R"({"storageRef":{"name":7}})", "spec.storageRef.name: expected a string, got a number (7)"},
      {"spec", R"({"storageRef":"st"})", "spec.storageRef: expected an object, got a string (\"st\")"},
      {"spec", R"({"storageRef":{"namespace":true}})",
       "spec.storageRef.namespace: expected a string, got a boolean (true)"},
      {"spec", R"({"path":["a"]})", "spec.path: expected a string, got an array"},
      {"spec", R"({"appRef":{"kind":1}})", "spec.appRef.kind: expected a string, got a number (1)"},
      {"spec", R"({"encryptionSecret":{"name":{}}})", "spec.encryptionSecret.name: expected a string, got an object"},
      {"spec", R"({"paused":"yes"})", "spec.paused: expected a boolean, got a string (\"yes\")"},
      {"status", R"({"size":1024})", "status.size: expected a string, got a number (1024)"},
      {"status", R"({"phase":false})", "status.phase: expected a string, got a boolean (false)"},
      {"status", R"({"integrity":"true"})", "status.integrity: expected a boolean, got a string (\"true\")"},
      {"status", R"({"snapshotCount":1.5})", "status.snapshotCount: expected an integer, got a number (1.5)"},
      {"status", R"({"conditions":{}})", "status.conditions: expected an array, got an object"},
      {"status", R"({"conditions":[{"type":"A"},"B"]})",
       "status.conditions[1]: expected an object, got a string (\"B\")"},
      {"status", R"({"conditions":[{"status":true}]})",
       "status.conditions[0].status: expected a string, got a boolean (true)"},
      {"status", R"({"componentPaths":["a",2]})", "status.componentPaths[1]: expected a string, got a number (2)"},
  };
  for (const auto& c : cases) {
    json::value o = minimal();
    o.as_object()[c.section] = json::parse(c.json);
    CAPTURE(c.json);
    CHECK(error_of(o) == c.expected);
  }
  json::value spec_string = minimal();
  spec_string.as_object()["spec"] = "x";
  CHECK(error_of(spec_string) == "spec: expected an object, got a string (\"x\")");
  json::value meta_bad = minimal();
  meta_bad.as_object()["metadata"].as_object()["name"] = 5;
  CHECK(error_of(meta_bad) == "metadata.name: expected a string, got a number (5)");
}

TEST_CASE("repository: kind and apiVersion and name are checked first") {
  json::value o = minimal();
  o.as_object()["kind"] = "BackupStorage";
  CHECK(error_of(o) == "kind: expected \"Repository\", got \"BackupStorage\"");
  o = minimal();
  o.as_object().erase("kind");
  CHECK(error_of(o) == "kind: expected \"Repository\", got none");
  o = minimal();
  o.as_object()["apiVersion"] = "stash.appscode.com/v1alpha1";
  CHECK(error_of(o) ==
        "apiVersion: apiVersion \"stash.appscode.com/v1alpha1\" is not served for Repository; use "
        "storage.kubestash.com/v1alpha1");
  o = minimal();
  o.as_object()["metadata"].as_object().erase("name");
  CHECK(error_of(o) == "metadata.name: a name is required");
  CHECK(error_of(json::value(3)) == "expected an object (a Repository), got a number (3)");
}

TEST_CASE("repository: size format gives KubeStash's exact strings at and around each unit") {
  CHECK(format_size(0) == "0 B");
  CHECK(format_size(1) == "1 B");
  CHECK(format_size(1023) == "1023 B");
  CHECK(format_size(1024) == "1024 B");  // strictly greater than the unit
  CHECK(format_size(1025) == "1.001 KiB");
  CHECK(format_size(1536) == "1.500 KiB");
  CHECK(format_size(std::uint64_t{1} << 20) == "1024.000 KiB");
  CHECK(format_size((std::uint64_t{1} << 20) + 1) == "1.000 MiB");
  CHECK(format_size(1189085) == "1.134 MiB");  // the reference's example
  CHECK(format_size(12815696) == "12.222 MiB");
  CHECK(format_size(std::uint64_t{1} << 30) == "1024.000 MiB");
  CHECK(format_size((std::uint64_t{1} << 30) + 1) == "1.000 GiB");
  CHECK(format_size(std::uint64_t{5} << 30) == "5.000 GiB");
  CHECK(format_size(std::uint64_t{1} << 40) == "1024.000 GiB");
  CHECK(format_size((std::uint64_t{1} << 40) + 1) == "1.000 TiB");
  CHECK(format_size(std::uint64_t{3} << 50) == "3072.000 TiB");  // no unit above TiB
  CHECK(format_size(UINT64_MAX) == "16777216.000 TiB");
  CHECK(format_size(2047) == "1.999 KiB");  // 1.99902...
  CHECK(format_size(2048) == "2.000 KiB");
  CHECK(format_size(1024 * 1023 + 1023) == "1023.999 KiB");
}

TEST_CASE("repository: size parsing truncates as ConvertSizeToByte does") {
  CHECK(bytes_of("0 B") == 0);
  CHECK(bytes_of("1023 B") == 1023);
  CHECK(bytes_of("1024 B") == 1024);
  CHECK(bytes_of("1.5 B") == 1);
  CHECK(bytes_of("1.001 KiB") == 1025);       // 1025.024
  CHECK(bytes_of("1.083 KiB") == 1108);       // 1108.992, truncated as Go's uint64() does
  CHECK(bytes_of("1.134 MiB") == 1189085);    // 1189085.184
  CHECK(bytes_of("12.222 MiB") == 12815695);  // 12815695.872
  CHECK(bytes_of("1.000 GiB") == std::uint64_t{1} << 30);
  CHECK(bytes_of("2 TiB") == std::uint64_t{2} << 40);
  CHECK(bytes_of("16777215.999 TiB") == static_cast<std::uint64_t>(16777215.999 * 1099511627776.0));
  CHECK(bytes_of(".5 KiB") == 512);
  CHECK(bytes_of("3. KiB") == 3072);
  CHECK(bytes_of("007 B") == 7);
}

TEST_CASE("repository: size strings KubeStash never writes are errors and not guesses") {
  for (const char* bad : {"",      "1",     "1MiB",      "1  MiB", " 1 MiB",  "1 MiB ",       "1 MiB x",
                          "1 mib", "1 MB",  "1 PiB",     "-1 B",   "+1 B",    "1e3 B",        "0x10 B",
                          "inf B", "NaN B", "1.2.3 KiB", ". KiB",  "1,5 KiB", "16777216 TiB", "99999999999999999999 B",
                          "1 B\n"}) {
    auto parsed = parse_size(bad);
    CAPTURE(bad);
    CHECK_FALSE(parsed.ok());
    if (!parsed.ok()) {
      CHECK(parsed.error().path.empty());
      CHECK(parsed.error().message.find("is not a size") != std::string::npos);
    }
  }
  CHECK(parse_size("1 PiB").error().message.find("unknown unit \"PiB\"") != std::string::npos);
  CHECK(parse_size("16777216 TiB").error().message.find("more than 2^64-1 bytes") != std::string::npos);
}

TEST_CASE("repository: size round trips") {
  // A formatted size reads back to within half a thousandth of its unit (the %.3f rounding) plus
  // one byte (the truncation); plain byte counts are exact.
  for (std::uint64_t b : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1023}, std::uint64_t{1024},
                          std::uint64_t{1025}, std::uint64_t{4096}, std::uint64_t{1048576}, std::uint64_t{1048577},
                          std::uint64_t{12815696}, std::uint64_t{1} << 35, (std::uint64_t{1} << 40) + 12345}) {
    std::string s = format_size(b);
    CAPTURE(b, s);
    std::uint64_t back = bytes_of(s);
    if (b <= 1024) CHECK(back == b);  // plain bytes are exact
    double unit = b > (std::uint64_t{1} << 40)   ? 1099511627776.0
                  : b > (std::uint64_t{1} << 30) ? 1073741824.0
                  : b > (std::uint64_t{1} << 20) ? 1048576.0
                  : b > 1024                     ? 1024.0
                                                 : 1.0;
    CHECK(std::fabs(static_cast<double>(back) - static_cast<double>(b)) <= unit * 0.0005 + 1.0);
  }
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t b = rng() >> (rng() % 64);
    std::string s = format_size(b);
    CAPTURE(b, s);
    std::uint64_t back = bytes_of(s);
    double unit = b > (std::uint64_t{1} << 40)   ? 1099511627776.0
                  : b > (std::uint64_t{1} << 30) ? 1073741824.0
                  : b > (std::uint64_t{1} << 20) ? 1048576.0
                  : b > 1024                     ? 1024.0
                                                 : 1.0;
    CHECK(std::fabs(static_cast<double>(back) - static_cast<double>(b)) <= unit * 0.0005 + 1.0);
  }
  // Truncation can cross a rounding boundary, exactly as in KubeStash: 1.083 KiB is 1108.992 bytes.
  CHECK(format_size(bytes_of("1.083 KiB")) == "1.082 KiB");
  CHECK(format_size(bytes_of("1.134 MiB")) == "1.134 MiB");
  CHECK(format_size(bytes_of("1.000 MiB")) == "1024.000 KiB");  // 1048576 is not above the unit
}
