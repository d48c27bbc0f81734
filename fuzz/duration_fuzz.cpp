// config/duration: Go-style durations from flags, the environment, the settings file and
// `stowage init --timeout`. Bad text is a ConfigError; what format_duration writes reads back to the
// same value.
#include "config/config.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  std::string text(fuzz::text_of(data, size));
  config::Millis parsed;
  try {
    parsed = config::parse_duration(text);
  } catch (const config::ConfigError&) {
    return 0;
  }
  std::string written = config::format_duration(parsed);
  config::Millis again{};
  try {
    again = config::parse_duration(written);
  } catch (const config::ConfigError&) {
    fuzz::require(false, "parse_duration refuses what format_duration wrote");
  }
  fuzz::require(again == parsed, "format_duration does not read back to the same duration");
  return 0;
}
