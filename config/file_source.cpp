// Reads the settings file. Nested maps follow the dots of the keys (log: {format: json}); a dotted
// key written out in full ("log.format: json") means the same. Guarantees: the file is read
// whole or not at all (a file over 1 MiB not at all); a YAML syntax error, an unknown key (with
// the closest known one suggested), a key set twice, or a map/list where one value belongs throws
// ConfigError that starts with "<file>:<line>:<column>:". Relative paths are taken as given (from the working
// directory) and shown as given.
#include "config/file_source.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string_view>

namespace stowage::config::detail {
namespace {

// A settings file is a few dozen lines. A file larger than this is not one (a wrong path, a device,
// a log file) and is refused before it is read into memory.
constexpr std::size_t kMaxSettingsFileSize = 1u << 20;

ConfigError too_large(const std::filesystem::path& file) {
  return ConfigError("config file " + file.string() + ": larger than 1 MiB, which no settings file is: check --config");
}

std::string read_whole_file(const std::filesystem::path& file) {
  auto fail = [&](int error) {
    return ConfigError("config file " + file.string() + ": cannot read: " + std::strerror(error));
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> stream(std::fopen(file.c_str(), "rb"), &std::fclose);
  if (!stream) throw fail(errno);
  struct stat st {};
  if (::fstat(::fileno(stream.get()), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::uint64_t>(st.st_size) > kMaxSettingsFileSize)
    throw too_large(file);
  std::string text;
  char buffer[8192];
  size_t count = 0;
  while ((count = std::fread(buffer, 1, sizeof buffer, stream.get())) > 0) {
    text.append(buffer, count);
    if (text.size() > kMaxSettingsFileSize) throw too_large(file);  // it grew, or is not a regular file
  }
  if (std::ferror(stream.get())) throw fail(errno);
  return text;
}

std::string position(const std::filesystem::path& file, const YAML::Mark& mark) {
  return file.string() + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string kind_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    default: return "the value \"" + node.Scalar() + "\"";
  }
}

const Setting* find_setting(const std::string& key) {
  for (const auto& row : table()) {
    if (row.key == key) return &row;
  }
  return nullptr;
}

// The keys directly under section `prefix` ("log" -> format, level, file).
std::vector<std::string> children_of(const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& row : table()) {
    std::string_view key = row.key;
    if (key.size() > prefix.size() + 1 && key.starts_with(prefix) && key[prefix.size()] == '.') {
      names.emplace_back(key.substr(prefix.size() + 1, key.find('.', prefix.size() + 1) - prefix.size() - 1));
    }
  }
  names.erase(std::unique(names.begin(), names.end()), names.end());  // a section's rows are adjacent
  return names;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Optimal string alignment distance: edits, counting a swap of neighbours as one.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::vector<std::string> keys_and_sections() {
  std::vector<std::string> names;
  for (const auto& row : table()) {
    std::string key(row.key);
    names.push_back(key);
    for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
      names.push_back(key.substr(0, dot));
    }
  }
  return names;
}

// The closest known key or section to `key`, or "" if none is near (for "did you mean").
std::string closest_known(const std::string& key) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& name : keys_and_sections()) {
    const size_t distance = edit_distance(key, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  const bool near = best_distance <= 2 || best_distance * 4 <= key.size();
  return near ? best : "";
}

ConfigError unknown_setting(const std::string& key, const std::string& where) {
  const auto dot = key.rfind('.');
  const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
  std::vector<std::string> known;
  if (!section.empty() && !children_of(section).empty()) {
    known = children_of(section);
    for (auto& name : known) name = section + "." + name;
  } else {
    for (const auto& row : table()) known.emplace_back(row.key);
  }
  const std::string near = closest_known(key);
  return ConfigError(where + ": unknown setting \"" + key + "\"" +
                     (near.empty() ? "" : ", did you mean \"" + near + "\"?") + " (known: " + join(known) + ")");
}

class Walker {
 public:
  explicit Walker(const std::filesystem::path& file) : file_(file) {}

  void walk_map(const YAML::Node& map, const std::string& prefix) {
    for (const auto& entry : map) visit(entry.first, entry.second, prefix);
  }

  std::vector<FileValue> take() { return std::move(values_); }

 private:
  void visit(const YAML::Node& key_node, const YAML::Node& value, const std::string& prefix) {
    const std::string key_at = position(file_, key_node.Mark());
    if (!key_node.IsScalar()) throw ConfigError(key_at + ": expected a setting name, got " + kind_name(key_node));
    const std::string key = prefix.empty() ? key_node.Scalar() : prefix + "." + key_node.Scalar();
    if (const Setting* setting = find_setting(key)) return take_value(*setting, key_node, value);
    if (children_of(key).empty()) throw unknown_setting(key, key_at);
    if (value.IsNull()) return;  // "log:" with nothing under it sets nothing
    if (!value.IsMap()) {
      throw ConfigError(position(file_, value.Mark()) + ": " + key + ": expected a map of settings (" +
                        join(children_of(key)) + "), got " + kind_name(value));
    }
    walk_map(value, key);
  }

  void take_value(const Setting& setting, const YAML::Node& key_node, const YAML::Node& value) {
    const std::string key(setting.key);
    // yaml-cpp puts an empty value at the start of the next line; point at the key instead.
    const std::string where = position(file_, value.IsNull() ? key_node.Mark() : value.Mark());
    if (value.IsMap() || value.IsSequence()) {
      throw ConfigError(where + ": " + key + ": expected a single value, got " + kind_name(value));
    }
    if (auto [first, inserted] = first_seen_.emplace(key, where); !inserted) {
      throw ConfigError(where + ": " + key + ": set twice (first at " + first->second + ")");
    }
    values_.push_back({&setting, value.IsNull() ? "" : value.Scalar(), where});
  }

  const std::filesystem::path& file_;
  std::map<std::string, std::string> first_seen_;
  std::vector<FileValue> values_;
};

YAML::Node parse_yaml(const std::filesystem::path& file, const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(position(file, e.mark) + ": invalid YAML: " + e.msg);
  }
}

}  // namespace

std::vector<FileValue> read_settings_file(const std::filesystem::path& file) {
  const YAML::Node root = parse_yaml(file, read_whole_file(file));
  if (root.IsNull()) return {};  // an empty file sets nothing
  if (!root.IsMap()) {
    throw ConfigError(position(file, root.Mark()) + ": expected a map of settings at the top level, got " +
                      kind_name(root));
  }
  Walker walker(file);
  walker.walk_map(root, "");
  return walker.take();
}

}  // namespace stowage::config::detail
