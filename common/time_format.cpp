#include "common/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace stowage {

std::string rfc3339(WallClock::time_point t) {
  std::time_t secs = WallClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<WallClock::time_point> parse_rfc3339(std::string_view text) {
  std::tm tm{};
  int consumed = 0;
  std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::string_view rest = text.substr(static_cast<std::size_t>(consumed));
  if (!rest.empty() && rest.front() == '.') {  // fractional seconds are accepted and dropped
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') rest.remove_prefix(1);
  }
  long offset = 0;
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int hh = 0, mm = 0;
    if (std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset = (hh * 3600L + mm * 60L) * (rest[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  std::time_t secs = timegm(&tm);
  if (secs == static_cast<std::time_t>(-1)) return std::nullopt;
  // WallClock counts nanoseconds: it holds the years 1678 to 2261, and converting a time outside them
  // would overflow (a metadata.yaml "created" in 9999 is not a time, it is an error).
  constexpr auto kLimit = std::chrono::duration_cast<std::chrono::seconds>(WallClock::duration::max()).count() - 1;
  if (secs - offset > kLimit || secs - offset < -kLimit) return std::nullopt;
  return WallClock::from_time_t(secs - offset);
}

std::int64_t unix_millis(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string human_duration(std::chrono::seconds d) {
  long long s = d.count();
  if (s < 0) s = 0;  // clock skew: kubectl prints "0s" too
  auto fmt = [](const char* f, long long a, long long b = 0) {
    char buf[48];
    std::snprintf(buf, sizeof buf, f, a, b);
    return std::string(buf);
  };
  if (s < 60 * 2) return fmt("%llds", s);
  long long m = s / 60;
  if (m < 10) return s % 60 == 0 ? fmt("%lldm", m) : fmt("%lldm%llds", m, s % 60);
  if (m < 60 * 3) return fmt("%lldm", m);
  long long h = s / 3600;
  if (h < 8) return m % 60 == 0 ? fmt("%lldh", h) : fmt("%lldh%lldm", h, m % 60);
  if (h < 48) return fmt("%lldh", h);
  if (h < 24 * 8) return h % 24 == 0 ? fmt("%lldd", h / 24) : fmt("%lldd%lldh", h / 24, h % 24);
  if (h < 24 * 365 * 2) return fmt("%lldd", h / 24);
  if (h < 24 * 365 * 8) {
    long long dy = (h / 24) % 365;
    return dy == 0 ? fmt("%lldy", h / 24 / 365) : fmt("%lldy%lldd", h / 24 / 365, dy);
  }
  return fmt("%lldy", h / 24 / 365);
}

}  // namespace stowage
