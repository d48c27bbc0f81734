// Durations as Go's time.ParseDuration reads them ("300ms", "1.5h", "2h45m", "0"; units ns, us,
// µs, ms, s, m, h), held as milliseconds. Guarantees: parse_duration accepts exactly Go's syntax
// minus negative values, rounds to the nearest millisecond, and throws ConfigError with one
// message that shows the accepted form; format_duration writes the shortest natural form
// ("100ms", "1.5s", "1h30m") and parse_duration(format_duration(d)) == d for every d >= 0.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace stowage::config {
namespace {

constexpr std::uint64_t kMaxNanos = INT64_MAX;  // about 2562047h, as in Go

struct Unit {
  std::string_view name;
  std::uint64_t nanos;
};
constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // µs, micro sign
    {"\xCE\xBCs", 1'000},  // μs, Greek mu
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
};

ConfigError bad_duration(std::string_view text) {
  return ConfigError("bad duration \"" + std::string(text) +
                     "\": use a number with a unit ns, us, ms, s, m or h, e.g. 500ms or 1m30s");
}

ConfigError too_large(std::string_view text) {
  return ConfigError("bad duration \"" + std::string(text) + "\": too large (at most 2562047h)");
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads leading digits into `value`; false on overflow.
bool read_integer(std::string_view& s, std::uint64_t& value) {
  while (!s.empty() && is_digit(s.front())) {
    if (value > kMaxNanos / 10) return false;
    value = value * 10 + static_cast<std::uint64_t>(s.front() - '0');
    if (value > kMaxNanos) return false;
    s.remove_prefix(1);
  }
  return true;
}

// Reads the digits after a '.'; digits beyond what a uint64 holds are dropped, as Go does.
void read_fraction(std::string_view& s, std::uint64_t& value, double& scale) {
  bool overflow = false;
  while (!s.empty() && is_digit(s.front())) {
    if (!overflow && value <= kMaxNanos / 10) {
      value = value * 10 + static_cast<std::uint64_t>(s.front() - '0');
      scale *= 10;
    } else {
      overflow = true;
    }
    s.remove_prefix(1);
  }
}

const Unit* read_unit(std::string_view& s) {
  size_t length = 0;
  while (length < s.size() && s[length] != '.' && !is_digit(s[length])) ++length;
  for (const auto& unit : kUnits) {
    if (s.substr(0, length) == unit.name) {
      s.remove_prefix(length);
      return &unit;
    }
  }
  return nullptr;
}

// One "<number><unit>" component, in nanoseconds.
std::uint64_t read_component(std::string_view& s, std::string_view text) {
  const size_t before = s.size();
  std::uint64_t whole = 0;
  if (!read_integer(s, whole)) throw too_large(text);
  const bool has_whole = s.size() != before;
  std::uint64_t fraction = 0;
  double scale = 1;
  bool has_fraction = false;
  if (!s.empty() && s.front() == '.') {
    s.remove_prefix(1);
    const size_t after_dot = s.size();
    read_fraction(s, fraction, scale);
    has_fraction = s.size() != after_dot;
  }
  if (!has_whole && !has_fraction) throw bad_duration(text);
  const Unit* unit = read_unit(s);
  if (unit == nullptr) throw bad_duration(text);
  if (whole > kMaxNanos / unit->nanos) throw too_large(text);
  std::uint64_t nanos = whole * unit->nanos;
  nanos += static_cast<std::uint64_t>(static_cast<double>(fraction) * (static_cast<double>(unit->nanos) / scale));
  if (nanos > kMaxNanos) throw too_large(text);
  return nanos;
}

std::string fraction_digits(std::int64_t millis) {  // 500 -> "5", 20 -> "02", 1 -> "001"
  std::string digits = std::to_string(1000 + millis).substr(1);
  while (digits.back() == '0') digits.pop_back();
  return digits;
}

}  // namespace

Millis parse_duration(const std::string& text) {
  std::string_view s = text;
  if (!s.empty() && s.front() == '-') {
    throw ConfigError("bad duration \"" + text + "\": must not be negative");
  }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s == "0") return Millis{0};
  if (s.empty()) throw bad_duration(text);
  std::uint64_t total = 0;
  while (!s.empty()) {
    const std::uint64_t component = read_component(s, text);
    if (component > kMaxNanos - total) throw too_large(text);
    total += component;
  }
  // Rounded to the nearest millisecond, but never above the largest whole millisecond within range:
  // 9223372036854775807ns would round up to a value that format_duration writes as "too large".
  const std::uint64_t millis = std::min((total + 500'000) / 1'000'000, kMaxNanos / 1'000'000);
  return Millis{static_cast<std::int64_t>(millis)};
}

std::string format_duration(Millis d) {
  if (d.count() < 0) return "-" + format_duration(-d);
  if (d.count() == 0) return "0s";
  std::int64_t ms = d.count();
  const std::int64_t hours = ms / 3'600'000;
  const std::int64_t minutes = ms / 60'000 % 60;
  const std::int64_t seconds = ms / 1000 % 60;
  ms %= 1000;
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (minutes > 0) out += std::to_string(minutes) + "m";
  if (seconds > 0 && ms > 0) out += std::to_string(seconds) + "." + fraction_digits(ms) + "s";
  if (seconds > 0 && ms == 0) out += std::to_string(seconds) + "s";
  if (seconds == 0 && ms > 0) out += std::to_string(ms) + "ms";
  return out;
}

}  // namespace stowage::config
