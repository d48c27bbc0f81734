// KubeStash's status rules: condition transition times, severity, the phase table, the size format.
#include "kube/conditions.hpp"

#include <catch2/catch.hpp>

using namespace stowage::kube;

namespace {

Condition make(std::string_view type, const std::string& status, const std::string& reason = "r") {
  Condition c;
  c.type = std::string(type);
  c.status = status;
  c.reason = reason;
  return c;
}

}  // namespace

TEST_CASE("lastTransitionTime changes only when the status does") {
  std::vector<Condition> conditions;
  set_condition(conditions, make(kConditionBackendInitialized, "False", "first"), "T1");
  REQUIRE(conditions.size() == 1);
  CHECK(conditions[0].last_transition_time == "T1");

  auto same = make(kConditionBackendInitialized, "False", "second");
  same.message = "still failing";
  same.observed_generation = 2;
  same.last_transition_time = "ignored";
  set_condition(conditions, same, "T2");
  REQUIRE(conditions.size() == 1);
  CHECK(conditions[0].last_transition_time == "T1");
  CHECK(conditions[0].reason == "second");
  CHECK(conditions[0].message == "still failing");
  CHECK(conditions[0].observed_generation == 2);

  set_condition(conditions, make(kConditionBackendInitialized, "True"), "T3");
  CHECK(conditions[0].last_transition_time == "T3");

  set_condition(conditions, make(kConditionBackendSecretFound, "True"), "T4");
  REQUIRE(conditions.size() == 2);
  CHECK(conditions[1].last_transition_time == "T4");
  CHECK(conditions[0].last_transition_time == "T3");
}

TEST_CASE("a condition read without a transition time gets one") {
  std::vector<Condition> conditions = {make(kConditionBackendInitialized, "True")};
  set_condition(conditions, make(kConditionBackendInitialized, "True"), "T9");
  CHECK(conditions[0].last_transition_time == "T9");
}

TEST_CASE("severity follows kmodules' convention") {
  std::vector<Condition> conditions;
  set_condition(conditions, make(kConditionBackendInitialized, "False"), "T");
  CHECK(conditions[0].severity == "Error");
  auto warning = make(kConditionBackendSecretFound, "False");
  warning.severity = "Warning";
  set_condition(conditions, warning, "T");
  CHECK(find_condition(conditions, kConditionBackendSecretFound)->severity == "Warning");
  auto ok = make(kConditionBackendInitialized, "True");
  ok.severity = "Error";
  set_condition(conditions, ok, "T");
  CHECK(find_condition(conditions, kConditionBackendInitialized)->severity.empty());
  set_condition(conditions, make("Other", "Unknown"), "T");
  CHECK(find_condition(conditions, "Other")->severity.empty());
}

TEST_CASE("find and remove conditions") {
  std::vector<Condition> conditions;
  CHECK(find_condition(conditions, kConditionBackendInitialized) == nullptr);
  set_condition(conditions, make(kConditionBackendInitialized, "True"), "T");
  set_condition(conditions, make(kConditionBackendSecretFound, "True"), "T");
  REQUIRE(find_condition(conditions, kConditionBackendSecretFound) != nullptr);
  remove_condition(conditions, kConditionBackendSecretFound);
  CHECK(find_condition(conditions, kConditionBackendSecretFound) == nullptr);
  CHECK(conditions.size() == 1);
  remove_condition(conditions, "Missing");
  CHECK(conditions.size() == 1);
}

TEST_CASE("phase rule table") {
  struct Row {
    const char* initialized;  // "" = absent
    const char* secret;       // "" = absent
    std::string_view phase;
  };
  const Row rows[] = {
      {"", "", kPhaseNotReady},          {"True", "", kPhaseReady},           {"True", "True", kPhaseReady},
      {"True", "False", kPhaseNotReady}, {"True", "Unknown", kPhaseNotReady}, {"False", "", kPhaseNotReady},
      {"False", "True", kPhaseNotReady}, {"Unknown", "True", kPhaseNotReady}, {"", "True", kPhaseNotReady},
  };
  for (const auto& row : rows) {
    INFO("BackendInitialized=" << row.initialized << " BackendSecretFound=" << row.secret);
    std::vector<Condition> conditions;
    if (*row.initialized) conditions.push_back(make(kConditionBackendInitialized, row.initialized));
    if (*row.secret) conditions.push_back(make(kConditionBackendSecretFound, row.secret));
    CHECK(calculate_phase(conditions) == row.phase);
  }
}

TEST_CASE("size format boundaries") {
  constexpr std::uint64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024, TiB = GiB * 1024;
  CHECK(format_size(0) == "0 B");
  CHECK(format_size(1) == "1 B");
  CHECK(format_size(1023) == "1023 B");
  CHECK(format_size(1024) == "1024 B");
  CHECK(format_size(1025) == "1.001 KiB");
  CHECK(format_size(1536) == "1.500 KiB");
  CHECK(format_size(MiB) == "1024.000 KiB");
  CHECK(format_size(MiB + 1) == "1.000 MiB");
  CHECK(format_size(1189085) == "1.134 MiB");
  CHECK(format_size(GiB) == "1024.000 MiB");
  CHECK(format_size(GiB + 1) == "1.000 GiB");
  CHECK(format_size(TiB) == "1024.000 GiB");
  CHECK(format_size(TiB + 1) == "1.000 TiB");
  CHECK(format_size(5 * TiB) == "5.000 TiB");
  CHECK(format_size(2048 * TiB) == "2048.000 TiB");
}
