// KubeStash's status rules. Guarantees: one condition per type; lastTransitionTime changes only
// when a condition's status does (or it is new); the phase is derived from the conditions alone;
// sizes are formatted exactly as KubeStash does ("%.3f <unit>" above a unit, "<n> B" otherwise).
#include "kube/conditions.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

namespace stowage::kube {

void set_condition(std::vector<Condition>& conditions, Condition condition, const std::string& now) {
  if (condition.severity.empty() && condition.status == "False") condition.severity = "Error";
  if (condition.status == "True") condition.severity.clear();
  auto it =
      std::find_if(conditions.begin(), conditions.end(), [&](const Condition& c) { return c.type == condition.type; });
  bool unchanged = it != conditions.end() && it->status == condition.status && !it->last_transition_time.empty();
  condition.last_transition_time = unchanged ? it->last_transition_time : now;
  if (it == conditions.end())
    conditions.push_back(std::move(condition));
  else
    *it = std::move(condition);
}

void remove_condition(std::vector<Condition>& conditions, std::string_view type) {
  std::erase_if(conditions, [&](const Condition& c) { return c.type == type; });
}

const Condition* find_condition(const std::vector<Condition>& conditions, std::string_view type) {
  auto it = std::find_if(conditions.begin(), conditions.end(), [&](const Condition& c) { return c.type == type; });
  return it == conditions.end() ? nullptr : &*it;
}

std::string calculate_phase(const std::vector<Condition>& conditions) {
  const Condition* initialized = find_condition(conditions, kConditionBackendInitialized);
  const Condition* secret = find_condition(conditions, kConditionBackendSecretFound);
  bool ready = initialized && initialized->status == "True" && (!secret || secret->status == "True");
  return std::string(ready ? kPhaseReady : kPhaseNotReady);
}

std::string format_size(std::uint64_t bytes) {
  struct Unit {
    std::uint64_t size;
    const char* name;
  };
  static constexpr std::array<Unit, 4> kUnits = {Unit{1ULL << 40, "TiB"}, Unit{1ULL << 30, "GiB"},
                                                 Unit{1ULL << 20, "MiB"}, Unit{1ULL << 10, "KiB"}};
  for (const auto& unit : kUnits) {
    if (bytes > unit.size) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3f %s", static_cast<double>(bytes) / static_cast<double>(unit.size), unit.name);
      return buf;
    }
  }
  return std::to_string(bytes) + " B";
}

}  // namespace stowage::kube
