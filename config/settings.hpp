#pragma once
// Internal to config/: the one table of settings. Each row names a setting's file key, its flag,
// its description, and a typed Value that knows which Config field it fills and how to check a
// value. Its environment variable is derived from the key; its default is read from Config{}, so
// the defaults have a single home (config.hpp). Adding a setting means adding a Config field and
// one row here; files, environment, flags, `config print` and the README all follow.
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace stowage::config::detail {

// A free-form value: a path or a string.
template <class T>
struct Text {
  T Config::*field;
  std::string_view type_name;  // "PATH", "TEXT"
  bool may_be_empty;
};

struct Choice {
  std::string Config::*field;
  std::vector<std::string_view> choices;
};

struct Integer {
  int Config::*field;
  int min;
  int max;
};

struct Duration {
  Millis Config::*field;
  Millis min;  // 1ms for "must be > 0", 0 where zero is allowed
};

// true/false; a flag given without a value (`--leader-elect`) means true.
struct Flag {
  bool Config::*field;
};

// A number of bytes, written as parse_size reads it ("4Mi").
struct Size {
  std::uint64_t Config::*field;
  std::uint64_t min;
  std::uint64_t max;
};

// A comma-separated list of namespace names (DNS-1123 labels); "" = none. With `star_means_all`, "*"
// alone stands for every namespace; without, "*" is refused (the setting's empty value means all).
// Its flag may be given several times: the lists add up (`--namespace a --namespace b,c`).
struct NamespaceList {
  std::vector<std::string> Config::*field;
  bool star_means_all = true;
};

using Value = std::variant<Text<std::filesystem::path>, Text<std::string>, Choice, Integer, Duration, Flag,
                           NamespaceList, Size>;

struct Setting {
  std::string_view key;   // "reconcile.workers": nested maps in the file, split at the dots
  std::string_view flag;  // "--workers"
  std::string_view description;
  Value value;
};

const std::vector<Setting>& table();

// "reconcile.retry-base" -> "STOWAGE_RECONCILE_RETRY_BASE".
std::string env_name(std::string_view key);

// Checks `text` and stores it in `config`. Throws ConfigError whose message says what was
// expected and what was given, without saying where it came from (the caller adds that).
void assign(const Setting& setting, Config& config, const std::string& text);

// The setting's value in `config`, written so that assign() reads it back unchanged.
std::string value_of(const Setting& setting, const Config& config);

// "PATH", "INT", "DURATION", "text|json": the placeholder shown in --help.
std::string type_name(const Setting& setting);

}  // namespace stowage::config::detail
