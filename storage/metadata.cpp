// metadata.yaml as KubeStash writes it.
//
// Guarantees: metadata_key() matches Go's trim(path.Join(prefix), "/") + "/metadata.yaml" (with the
// root case written without a leading slash); render_metadata() produces the exact bytes KubeStash's
// Go YAML marshaller would, quoting a value only where YAML would read it as something other than a
// string; parse_metadata() never throws and says in `reason` what is wrong.
#include "storage/metadata.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <regex>
#include <vector>

#include "common/time_format.hpp"

namespace stowage::storage {
namespace {

constexpr std::string_view kApiVersion = "config.kubestash.com/v1alpha1";
constexpr std::string_view kKind = "BackendMeta";

// Go's path.Clean on a slash path, without the leading slash (callers trim it anyway).
std::string clean_path(std::string_view p) {
  const bool rooted = !p.empty() && p.front() == '/';
  std::vector<std::string_view> parts;
  while (!p.empty()) {
    auto slash = p.find('/');
    auto part = p.substr(0, slash);
    p = slash == std::string_view::npos ? std::string_view{} : p.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part != "..") {
      parts.push_back(part);
    } else if (!parts.empty() && parts.back() != "..") {
      parts.pop_back();
    } else if (!rooted) {
      parts.push_back(part);  // a relative path keeps leading ".."; "/.." is "/"
    }
  }
  std::string out;
  for (auto part : parts) {
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

bool is_yaml11_keyword(std::string_view s) {
  static constexpr std::array<std::string_view, 11> kWords = {"true", "false", "yes", "no",  "y",   "n",
                                                              "on",   "off",   "null", "nil", "~"};
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(kWords.begin(), kWords.end(), lower) != kWords.end();
}

// Strings a YAML 1.1 or 1.2 reader would type as a number or a timestamp.
bool looks_numeric_or_time(std::string_view s) {
  static const std::regex kPattern(
      "[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+)"                      // int, other bases
      "|[-+]?(\\.[0-9]+|[0-9][0-9_]*(\\.[0-9_]*)?)([eE][-+]?[0-9]+)?"  // int, float
      "|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?");                    // timestamp
  return std::regex_match(s.begin(), s.end(), kPattern);
}

// True when a plain (unquoted) scalar reads back as this very string. Conservative: an alphanumeric
// first character (never an indicator, ".inf" or a sign) and only characters with no YAML meaning.
bool safe_as_plain(std::string_view s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s.front()))) return false;
  bool plain_chars = std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '+' || c == '/';
  });
  return plain_chars && !is_yaml11_keyword(s) && !looks_numeric_or_time(s);
}

std::string double_quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string scalar(std::string_view s) { return safe_as_plain(s) ? std::string(s) : double_quoted(s); }

// A string field of the top-level mapping: nullopt with `reason` set when absent or not a scalar.
std::optional<std::string> string_field(const YAML::Node& root, const char* key, std::string& reason) {
  const YAML::Node node = root[key];
  if (!node.IsDefined() || node.IsNull()) {
    reason = std::string(key) + " is missing";
    return std::nullopt;
  }
  if (!node.IsScalar()) {
    reason = std::string(key) + " is not a string";
    return std::nullopt;
  }
  return node.Scalar();
}

bool expect_field(const YAML::Node& root, const char* key, std::string_view want, std::string& reason) {
  auto value = string_field(root, key, reason);
  if (value && *value == want) return true;
  if (value) reason = std::string(key) + " is " + double_quoted(*value);
  reason += ", expected " + std::string(want);
  return false;
}

std::optional<YAML::Node> load_mapping(std::string_view yaml, std::string& reason) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsMap()) return root;
    reason = root.IsDefined() && !root.IsNull() ? "not a YAML mapping" : "empty document";
  } catch (const YAML::Exception& e) {
    reason = "not YAML: line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1) +
             ": " + e.msg;
  } catch (const std::exception& e) {
    reason = std::string("not YAML: ") + e.what();
  }
  return std::nullopt;
}

std::optional<BackendMeta> read_fields(const YAML::Node& root, std::string& reason) {
  if (!expect_field(root, "apiVersion", kApiVersion, reason) || !expect_field(root, "kind", kKind, reason))
    return std::nullopt;
  auto created = string_field(root, "creationTimestamp", reason);
  if (!created) return std::nullopt;
  if (!parse_rfc3339(*created)) {
    reason = "creationTimestamp " + double_quoted(*created) + " is not an RFC 3339 time";
    return std::nullopt;
  }
  BackendMeta meta{*created, ""};
  const YAML::Node version = root["operatorVersion"];
  if (version.IsDefined() && !version.IsNull()) {
    if (!version.IsScalar()) {
      reason = "operatorVersion is not a string";
      return std::nullopt;
    }
    meta.operator_version = version.Scalar();
  }
  return meta;
}

}  // namespace

std::string metadata_key(std::string_view prefix) {
  std::string dir = clean_path(prefix);
  if (dir.empty()) return std::string(kMetadataFile);
  return dir + "/" + std::string(kMetadataFile);
}

std::string render_metadata(const BackendMeta& meta) {
  std::string out;
  out += "apiVersion: " + std::string(kApiVersion) + "\n";
  out += "kind: " + std::string(kKind) + "\n";
  out += "creationTimestamp: " + double_quoted(meta.creation_timestamp) + "\n";
  out += "operatorVersion: " + scalar(meta.operator_version) + "\n";
  return out;
}

std::optional<BackendMeta> parse_metadata(std::string_view yaml, std::string& reason) {
  reason.clear();
  try {
    auto root = load_mapping(yaml, reason);
    if (!root) return std::nullopt;
    auto meta = read_fields(*root, reason);
    if (meta) reason.clear();
    return meta;
  } catch (const std::exception& e) {  // yaml-cpp node access may throw on odd documents
    reason = std::string("cannot read metadata: ") + e.what();
    return std::nullopt;
  }
}

}  // namespace stowage::storage
