#pragma once
// Internal to config/: reads the YAML settings file into (setting, text, position) triples.
// Guarantees: every key in the file is a known setting or a map of them, each set at most once
// and holding a single value; anything else throws ConfigError naming file:line:column. Values
// are not checked here (the caller checks them against the table, so the message can name the
// setting and its position).
#include <filesystem>
#include <string>
#include <vector>

#include "config/settings.hpp"

namespace stowage::config::detail {

struct FileValue {
  const Setting* setting;
  std::string text;   // the scalar as written; "" for an empty value
  std::string where;  // "config.yaml:4:12", 1-based, as editors count
};

std::vector<FileValue> read_settings_file(const std::filesystem::path& file);

}  // namespace stowage::config::detail
