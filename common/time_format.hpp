#pragma once
// Wall-clock time as Kubernetes writes it (RFC 3339, UTC, second precision: "2025-04-21T12:29:15Z").
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stowage {

using WallClock = std::chrono::system_clock;

std::string rfc3339(WallClock::time_point t);
std::optional<WallClock::time_point> parse_rfc3339(std::string_view text);
std::int64_t unix_millis(WallClock::time_point t);

// kubectl's HumanDuration ("5s", "3m20s", "4h", "12d", ...), used for the AGE column.
std::string human_duration(std::chrono::seconds d);

}  // namespace stowage
