// YAML <-> JSON as kubectl does it (sigs.k8s.io/yaml on go-yaml v2).
// Guarantees: parse_yaml_documents never throws; plain scalars are typed by go-yaml v2's resolve
// rules (YAML 1.1 booleans, Go integer syntax, "010" octal, '_' separators), quoted or !!str scalars
// stay strings, mapping keys become strings the way sigs.k8s.io/yaml converts them ("on" -> "true"),
// "<<" merge keys are applied, aliases are expanded (with a depth and size limit against alias
// bombs and self-referencing anchors). to_yaml writes block YAML that reads back to the same value.
#include "kube/yaml_json.hpp"

#include <locale.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>

namespace stowage::kube {
namespace {

namespace json = boost::json;

constexpr int kMaxDepth = 256;
constexpr std::size_t kMaxNodes = 4'000'000;

// ---------------------------------------------------------------------------------------------
// Scalar resolution: go-yaml v2 resolve() for plain scalars.

bool is_null_word(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

std::optional<bool> bool_word(std::string_view s) {
  static constexpr std::array<std::string_view, 11> kTrue = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                                             "True", "TRUE", "on",  "On",  "ON"};
  static constexpr std::array<std::string_view, 11> kFalse = {"n",     "N",     "no",  "No",  "NO", "false",
                                                              "False", "FALSE", "off", "Off", "OFF"};
  for (auto w : kTrue)
    if (s == w) return true;
  for (auto w : kFalse)
    if (s == w) return false;
  return std::nullopt;
}

std::optional<double> special_float(std::string_view s) {
  for (auto w : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"})
    if (s == w) return std::numeric_limits<double>::infinity();
  for (auto w : {"-.inf", "-.Inf", "-.INF"})
    if (s == w) return -std::numeric_limits<double>::infinity();
  for (auto w : {".nan", ".NaN", ".NAN"})
    if (s == w) return std::numeric_limits<double>::quiet_NaN();
  return std::nullopt;
}

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

// strconv.ParseUint(s, 0, 64): "0x"/"0o"/"0b" prefixes, a leading "0" means octal.
std::optional<std::uint64_t> parse_go_uint(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int base = 10;
  if (s[0] == '0') {
    char p = s.size() >= 3 ? static_cast<char>(s[1] | 0x20) : '\0';
    base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 8;
    s.remove_prefix(p == 'x' || p == 'o' || p == 'b' ? 2 : 1);
  }
  const auto b = static_cast<std::uint64_t>(base);
  std::uint64_t n = 0;
  for (char c : s) {
    int d = digit_value(c);
    if (d >= base) return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(d);
    if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / b) return std::nullopt;  // overflow
    n = n * b + digit;
  }
  return n;
}

// strconv.ParseInt(s, 0, 64).
std::optional<std::int64_t> parse_go_int(std::string_view s) {
  bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  auto magnitude = parse_go_uint(s);
  if (!magnitude) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!negative)
    return *magnitude <= kMax ? std::optional<std::int64_t>(static_cast<std::int64_t>(*magnitude)) : std::nullopt;
  if (*magnitude > kMax + 1) return std::nullopt;
  return *magnitude == kMax + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(*magnitude);
}

std::size_t skip_digits(std::string_view s, std::size_t i) {
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i;
}

// go-yaml's yamlStyleFloat: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
bool is_yaml_style_float(std::string_view s) {
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i < s.size() && s[i] == '.') {
    std::size_t j = skip_digits(s, i + 1);
    if (j == i + 1) return false;
    i = j;
  } else {
    std::size_t j = skip_digits(s, i);
    if (j == i) return false;
    i = j;
    if (i < s.size() && s[i] == '.') i = skip_digits(s, i + 1);
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t j = skip_digits(s, i);
    if (j == i) return false;
    i = j;
  }
  return i == s.size();
}

// strconv.ParseFloat on text already known to be decimal-float shaped: overflow is an error
// (the scalar then stays a string, as in go-yaml), underflow gives 0 or a subnormal.
std::optional<double> parse_float(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && end == s.data() + s.size()) return v;
  if (ec != std::errc::result_out_of_range) return std::nullopt;
  static locale_t c_locale = newlocale(LC_ALL_MASK, "C", nullptr);
  std::string text(s);
  v = strtod_l(text.c_str(), nullptr, c_locale);
  if (std::isinf(v)) return std::nullopt;
  return v;
}

std::string without_underscores(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_') out += c;
  return out;
}

json::value resolve_number(std::string_view in) {
  if (in[0] == '.') {  // go-yaml calls ParseFloat directly: ".5", ".5e3"
    if (auto f = is_yaml_style_float(in) ? parse_float(in) : std::nullopt) return *f;
    return json::string(in);
  }
  std::string plain = without_underscores(in);
  if (auto i = parse_go_int(plain)) return *i;
  if (auto u = parse_go_uint(plain)) return *u;
  if (is_yaml_style_float(plain))
    if (auto f = parse_float(plain)) return *f;
  return json::string(in);
}

// The JSON value a plain (unquoted, untagged) scalar stands for.
json::value resolve_plain(std::string_view in) {
  if (is_null_word(in)) return nullptr;
  if (auto b = bool_word(in)) return *b;
  if (auto f = special_float(in)) return *f;
  char c = in[0];
  if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') return resolve_number(in);
  return json::string(in);
}

json::value resolve_scalar(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  static const std::string kCore = "tag:yaml.org,2002:";
  bool typed_core = tag.rfind(kCore, 0) == 0 &&
                    (tag == kCore + "int" || tag == kCore + "float" || tag == kCore + "bool" || tag == kCore + "null");
  if (tag == "?" || tag.empty() || typed_core) return resolve_plain(node.Scalar());
  return json::string(node.Scalar());  // "!" (quoted, literal, folded), !!str, !!binary, custom tags
}

// ---------------------------------------------------------------------------------------------
// Key strings, as sigs.k8s.io/yaml converts go-yaml's typed keys.

// strconv.FormatFloat(f, 'g', -1, 32).
std::string go_format_float32(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buf[64];
  auto f = static_cast<float>(value);
  auto r = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // "-d.ddde+XX"
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  auto e = sci.find('e');
  std::string digits = sci.substr(0, 1) + (e > 1 ? sci.substr(2, e - 2) : "");
  int exp = std::stoi(sci.substr(e + 1));
  std::string out = negative ? "-" : "";
  if (exp < -4 || exp >= 6) {
    std::snprintf(buf, sizeof buf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "") + buf;
  }
  if (exp < 0) return out + "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
  auto point = static_cast<std::size_t>(exp) + 1;
  if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0');
  return out + digits.substr(0, point) + "." + digits.substr(point);
}

std::string key_string(const YAML::Node& key) {
  if (!key.IsScalar())
    throw YAML::RepresentationException(key.Mark(), "unsupported map key: keys must be strings, numbers or booleans");
  json::value v = resolve_scalar(key);
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_bool()) return v.get_bool() ? "true" : "false";
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  if (v.is_double()) return go_format_float32(v.get_double());
  throw YAML::RepresentationException(key.Mark(), "unsupported map key: null");
}

// ---------------------------------------------------------------------------------------------
// yaml-cpp node -> JSON.

class Converter {
 public:
  json::value convert(const YAML::Node& node, int depth) {
    if (depth > kMaxDepth)
      throw YAML::RepresentationException(node.Mark(), "document nested too deeply (recursive alias?)");
    if (++nodes_ > kMaxNodes)
      throw YAML::RepresentationException(node.Mark(), "document too large after expanding aliases");
    switch (node.Type()) {
      case YAML::NodeType::Scalar:
        return resolve_scalar(node);
      case YAML::NodeType::Sequence:
        return convert_sequence(node, depth);
      case YAML::NodeType::Map:
        return convert_map(node, depth);
      default:
        return nullptr;
    }
  }

 private:
  json::value convert_sequence(const YAML::Node& node, int depth) {
    json::array out;
    for (const auto& item : node) out.push_back(convert(item, depth + 1));
    return out;
  }

  json::value convert_map(const YAML::Node& node, int depth) {
    json::object out;
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && kv.first.Tag() == "?" && kv.first.Scalar() == "<<") {
        merge(out, kv.second, depth);
        continue;
      }
      std::string key = key_string(kv.first);
      out[key] = convert(kv.second, depth + 1);
    }
    return out;
  }

  // go-yaml v2: merged entries are assigned in place; in a sequence, earlier maps win.
  void merge(json::object& out, const YAML::Node& value, int depth) {
    auto fail = [&] {
      throw YAML::RepresentationException(value.Mark(), "map merge requires map or sequence of maps as the value");
    };
    std::vector<YAML::Node> sources;
    if (value.IsMap())
      sources.push_back(value);
    else if (value.IsSequence())
      for (const auto& item : value) sources.insert(sources.begin(), item);
    else
      fail();
    for (const auto& source : sources) {
      if (!source.IsMap()) fail();
      json::value merged = convert(source, depth + 1);
      for (auto& kv : merged.get_object()) out[kv.key()] = kv.value();
    }
  }

  std::size_t nodes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// JSON -> YAML.

bool has_control_chars(std::string_view s, bool allow_newline_tab) {
  for (unsigned char c : s) {
    if (allow_newline_tab && (c == '\n' || c == '\t')) continue;
    if (c < 0x20 || c == 0x7f) return true;
  }
  // NEL, LS and PS are line breaks to YAML 1.1 readers.
  return s.find("\xC2\x85") != s.npos || s.find("\xE2\x80\xA8") != s.npos || s.find("\xE2\x80\xA9") != s.npos ||
         s.find("\xEF\xBB\xBF") != s.npos;
}

// "2025-04-21", "2025-04-21T12:29:15Z", ...: go-yaml quotes these (kubectl prints
// creationTimestamp: "..."), since a YAML 1.1 reader resolves them to timestamps.
bool looks_like_timestamp(std::string_view s) {
  auto digits = [&](std::size_t from, std::size_t n) {
    if (s.size() < from + n) return false;
    for (std::size_t i = from; i < from + n; ++i)
      if (s[i] < '0' || s[i] > '9') return false;
    return true;
  };
  return digits(0, 4) && s.size() >= 8 && s[4] == '-' && (s[6] == '-' || s[7] == '-');
}

// A plain scalar would not read back as this same string.
bool needs_quotes(std::string_view s) {
  if (s.empty() || !resolve_plain(s).is_string()) return true;
  if (s.front() == ' ' || s.front() == '\t' || s.back() == ' ' || s.back() == '\t') return true;
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string_view::npos) return true;
  if (s == "<<" || s.rfind("...", 0) == 0 || s.back() == ':') return true;
  if (s.find(": ") != s.npos || s.find(" #") != s.npos || s.find('\t') != s.npos) return true;
  if (looks_like_timestamp(s)) return true;  // YAML 1.1 readers would take it for a !!timestamp
  return has_control_chars(s, false);
}

// yaml-cpp writes literal blocks with "clip" chomping and no indentation indicator, so only
// strings ending in exactly one newline whose first content line is not indented read back unchanged.
bool literal_safe(std::string_view s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n') return false;
  if (has_control_chars(s, true) || s.find('\r') != s.npos) return false;
  std::size_t first = s.find_first_not_of('\n');
  return first != s.npos && s[first] != ' ' && s[first] != '\t';
}

// Shortest text that reads back as the same double (and as a float, not an integer).
std::string format_double(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eE") == s.npos) s += ".0";
  return s;
}

void emit_string(YAML::Emitter& out, const std::string& s, bool is_key) {
  // "|" keeps exactly one final newline, so the block is written without it (no blank line after).
  if (!is_key && s.find('\n') != s.npos && literal_safe(s))
    out << YAML::Literal << s.substr(0, s.size() - 1);
  else if (needs_quotes(s))
    out << YAML::DoubleQuoted << s;
  else
    out << s;
}

void emit(YAML::Emitter& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out << YAML::Null;
      break;
    case json::kind::bool_:
      out << v.get_bool();
      break;
    case json::kind::int64:
      out << v.get_int64();
      break;
    case json::kind::uint64:
      out << v.get_uint64();
      break;
    case json::kind::double_:
      out << format_double(v.get_double());
      break;
    case json::kind::string:
      emit_string(out, std::string(v.get_string()), false);
      break;
    case json::kind::array:
      if (v.get_array().empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& item : v.get_array()) emit(out, item);
      out << YAML::EndSeq;
      break;
    case json::kind::object:
      if (v.get_object().empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto& kv : v.get_object()) {
        out << YAML::Key;
        emit_string(out, std::string(kv.key()), true);
        out << YAML::Value;
        emit(out, kv.value());
      }
      out << YAML::EndMap;
      break;
  }
}

YamlError to_error(const YAML::Exception& e) {
  YamlError err;
  err.message = e.msg.empty() ? e.what() : e.msg;
  if (!e.mark.is_null()) {
    err.line = e.mark.line + 1;
    err.column = e.mark.column + 1;
  }
  return err;
}

}  // namespace

Result<std::vector<YamlDocument>, YamlError> parse_yaml_documents(std::string_view text) {
  try {
    std::vector<YamlDocument> docs;
    for (const auto& node : YAML::LoadAll(std::string(text))) {
      if (!node.IsDefined() || node.IsNull()) continue;
      Converter converter;
      docs.push_back(YamlDocument{converter.convert(node, 0), node.Mark().line + 1});
    }
    return docs;
  } catch (const YAML::Exception& e) {
    return to_error(e);
  } catch (const std::exception& e) {
    return YamlError{0, 0, e.what()};
  }
}

std::string to_yaml(const boost::json::value& value) {
  YAML::Emitter out;
  emit(out, value);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace stowage::kube
