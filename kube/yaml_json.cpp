// YAML <-> JSON as kubectl does it (sigs.k8s.io/yaml on go-yaml v2).
// Guarantees: read_yaml_documents and parse_yaml_documents never throw; plain scalars are typed by
// go-yaml v2's resolve rules (YAML 1.1 booleans, Go integer syntax, "010" octal, '_' separators),
// quoted or !!str scalars stay strings, mapping keys become strings the way sigs.k8s.io/yaml
// converts them ("on" -> "true"), "<<" merge keys are applied, aliases are expanded. What a read
// may cost is bounded: the JSON is built from yaml-cpp's parser events (never a yaml-cpp node tree,
// which costs ~10x the text), one document at a time; alias expansion is counted in bytes against
// YamlLimits::max_alias_bytes before each copy is made (a node count would let 4 million copies of
// a 1 KB string through); nesting is limited to kMaxDepth, through aliases too; a self-referencing
// anchor is an error. to_yaml writes block YAML that reads back to the same value.
#include "kube/yaml_json.hpp"

#include <locale.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <istream>
#include <limits>
#include <map>
#include <optional>
#include <streambuf>

namespace stowage::kube {
namespace {

namespace json = boost::json;

constexpr int kMaxDepth = 256;

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

// A scalar's value by its tag: "?" plain, "!" quoted or block, or an explicit tag.
json::value resolve_scalar(const std::string& tag, const std::string& text) {
  static const std::string kCore = "tag:yaml.org,2002:";
  bool typed_core = tag.rfind(kCore, 0) == 0 &&
                    (tag == kCore + "int" || tag == kCore + "float" || tag == kCore + "bool" || tag == kCore + "null");
  if (tag == "?" || tag.empty() || typed_core) return resolve_plain(text);
  return json::string(text);  // "!" (quoted, literal, folded), !!str, !!binary, custom tags
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

// ---------------------------------------------------------------------------------------------
// Parser events -> JSON, one document at a time, with the budgets.

constexpr std::uint64_t kValueBytes = 16;  // what one value counts for in the alias budget, beyond its text
constexpr const char* kBadKey = "unsupported map key: keys must be strings, numbers or booleans";

// A budget ran out; carries which one.
struct BudgetExceeded : YAML::Exception {
  BudgetExceeded(const YAML::Mark& mark, const std::string& message, YamlBudget which)
      : YAML::Exception(mark, message), budget(which) {}
  YamlBudget budget;
};

// A finished node: its value, what a copy of it counts for in the alias budget, how deep it is.
struct Built {
  json::value value;
  std::uint64_t bytes = kValueBytes;
  int height = 0;             // 0 for a scalar; a sequence or mapping is one more than its deepest child
  bool merge_marker = false;  // the plain scalar "<<": a merge key when it stands in a key's place
  YAML::Mark mark;
};

// A sequence or mapping being filled.
struct Frame {
  Built node;
  YAML::anchor_t anchor = YAML::NullAnchor;
  bool key_next = true;  // mappings: the next node is a key
  std::string key;       // mappings: the key whose value comes next
  bool merge = false;    // mappings: that key is "<<"
};

// Builds each document's JSON straight from the parser's events: no node tree in between, so a
// document costs about its JSON. Anchored values are kept by anchor id; an alias copies one and
// the copy is charged to the alias budget before it is made.
class DocumentBuilder final : public YAML::EventHandler {
 public:
  // `max_nodes`: more nodes than the text can hold. yaml-cpp 0.7 loops forever on some malformed
  // texts (`"a""[b",-]` yields nodes without end and without reading further): that stops it.
  DocumentBuilder(const YamlLimits& limits, YamlUsage& usage, std::uint64_t max_nodes)
      : limits_(limits), usage_(usage), max_nodes_(max_nodes) {}

  // The document just read, if it was not empty.
  std::optional<YamlDocument> take() {
    if (!root_ || root_->value.is_null()) return std::nullopt;
    return YamlDocument{std::move(root_->value), root_->mark.line + 1};
  }

  void OnDocumentStart(const YAML::Mark&) override {
    stack_.clear();
    anchors_.clear();
    names_.clear();
    root_.reset();
  }
  void OnDocumentEnd() override {}

  void OnAnchor(const YAML::Mark&, const std::string& name) override { pending_name_ = name; }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    begin_node(mark, anchor, false);
    complete(Built{nullptr, kValueBytes, 0, false, mark}, anchor);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    begin_node(mark, anchor, false);
    bool merge_marker = tag == "?" && value == "<<";
    complete(Built{resolve_scalar(tag, value), kValueBytes + value.size(), 0, merge_marker, mark}, anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    begin_node(mark, YAML::NullAnchor, false);
    auto it = anchors_.find(anchor);
    if (it == anchors_.end())
      throw YAML::RepresentationException(mark, "alias *" + name_of(anchor) +
                                                    " refers to the node that contains it (a recursive alias)");
    charge(it->second.bytes, mark, anchor);
    Built copy = it->second;  // the expansion itself, paid for above
    copy.mark = mark;
    copy.merge_marker = false;  // go-yaml: an alias is never a merge key
    complete(std::move(copy), YAML::NullAnchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor, json::array());
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor, json::object());
  }
  void OnMapEnd() override { close(); }

 private:
  bool key_expected() const {
    return !stack_.empty() && stack_.back().node.value.is_object() && stack_.back().key_next;
  }

  // Every node: its anchor gets the name just announced; a sequence or mapping as a key is refused
  // before it is built.
  void begin_node(const YAML::Mark& mark, YAML::anchor_t anchor, bool collection) {
    if (++nodes_ > max_nodes_)
      throw YAML::ParserException(mark, "the YAML parser is stuck on this text (more nodes than it can hold)");
    if (anchor != YAML::NullAnchor) names_[anchor] = pending_name_;
    if (collection && key_expected()) throw YAML::RepresentationException(mark, kBadKey);
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, json::value empty) {
    begin_node(mark, anchor, true);
    if (stack_.empty()) count_document(mark);
    if (stack_.size() >= kMaxDepth) throw YAML::RepresentationException(mark, "document nested too deeply");
    Frame frame;
    frame.node = Built{std::move(empty), kValueBytes, 1, false, mark};
    frame.anchor = anchor;
    stack_.push_back(std::move(frame));
  }

  void close() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    complete(std::move(frame.node), frame.anchor);
  }

  void count_document(const YAML::Mark& mark) {
    if (++usage_.documents > limits_.max_documents)
      throw BudgetExceeded(mark,
                           "more than " + std::to_string(limits_.max_documents) + " documents (the document budget)",
                           YamlBudget::documents);
  }

  // The copy an alias will be made from. It is charged like an expansion: without that, anchors
  // nested in each other (no alias at all) would keep a copy of the innermost content per level.
  void keep_for_aliases(const Built& node, YAML::anchor_t anchor) {
    if (node.height > 0) charge(node.bytes, node.mark, anchor);
    anchors_[anchor] = node;
  }

  void charge(std::uint64_t bytes, const YAML::Mark& mark, YAML::anchor_t anchor) {
    usage_.alias_bytes += bytes;
    if (usage_.alias_bytes > limits_.max_alias_bytes)
      throw BudgetExceeded(mark,
                           "aliases expand to more than " + size_text(limits_.max_alias_bytes) +
                               " (the alias budget; *" + name_of(anchor) + " went over it: an alias bomb?)",
                           YamlBudget::alias_expansion);
  }

  // A node is finished: remember it under its anchor, then put it where it belongs.
  void complete(Built node, YAML::anchor_t anchor) {
    if (stack_.size() + static_cast<std::size_t>(node.height) > kMaxDepth)
      throw YAML::RepresentationException(node.mark, "document nested too deeply");
    if (anchor != YAML::NullAnchor) keep_for_aliases(node, anchor);
    if (stack_.empty()) {
      if (!node.value.is_null() && node.height == 0) count_document(node.mark);  // collections counted at open()
      root_ = std::move(node);
      return;
    }
    Frame& parent = stack_.back();
    parent.node.height = std::max(parent.node.height, node.height + 1);
    if (parent.node.value.is_array()) {
      parent.node.bytes += node.bytes;
      parent.node.value.get_array().push_back(std::move(node.value));
      return;
    }
    if (parent.key_next) {
      parent.key_next = false;
      parent.merge = node.merge_marker;
      parent.key = parent.merge ? std::string() : key_string(node);
      parent.node.bytes += parent.key.size();
      return;
    }
    parent.key_next = true;
    parent.node.bytes += node.bytes;
    if (parent.merge)
      merge(parent.node.value.get_object(), std::move(node));
    else
      parent.node.value.get_object()[parent.key] = std::move(node.value);
  }

  // sigs.k8s.io/yaml turns go-yaml's typed keys into strings.
  static std::string key_string(const Built& key) {
    const json::value& v = key.value;
    if (v.is_string()) return std::string(v.get_string());
    if (v.is_bool()) return v.get_bool() ? "true" : "false";
    if (v.is_int64()) return std::to_string(v.get_int64());
    if (v.is_uint64()) return std::to_string(v.get_uint64());
    if (v.is_double()) return go_format_float32(v.get_double());
    throw YAML::RepresentationException(key.mark, kBadKey);
  }

  // go-yaml v2: merged entries are assigned in place; in a sequence, earlier maps win.
  static void merge(json::object& out, Built value) {
    auto fail = [&] {
      throw YAML::RepresentationException(value.mark, "map merge requires map or sequence of maps as the value");
    };
    if (value.value.is_object()) {
      for (auto& kv : value.value.get_object()) out[kv.key()] = std::move(kv.value());
      return;
    }
    if (!value.value.is_array()) fail();
    auto& sources = value.value.get_array();
    for (auto it = sources.rbegin(); it != sources.rend(); ++it) {
      if (!it->is_object()) fail();
      for (auto& kv : it->get_object()) out[kv.key()] = std::move(kv.value());
    }
  }

  std::string name_of(YAML::anchor_t anchor) const {
    auto it = names_.find(anchor);
    return it == names_.end() ? "?" : it->second;
  }

  const YamlLimits& limits_;
  YamlUsage& usage_;
  const std::uint64_t max_nodes_;
  std::uint64_t nodes_ = 0;  // over the whole text
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, Built> anchors_;
  std::map<YAML::anchor_t, std::string> names_;
  std::string pending_name_;
  std::optional<Built> root_;
};

// An istream over `text` without copying it.
class ViewBuffer : public std::streambuf {
 public:
  explicit ViewBuffer(std::string_view text) {
    char* begin = const_cast<char*>(text.data());  // read only: the get area is never written
    setg(begin, begin, begin + text.size());
  }
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
        // YAML allows an implicit ("key: value") key of at most 1024 characters; a longer one is
        // written as an explicit "? key" entry. Quoting writes at most 4 bytes per byte of the key.
        std::string key(kv.key());
        std::size_t written = needs_quotes(key) ? 4 * key.size() + 2 : key.size();
        out << (written > 1000 ? YAML::LongKey : YAML::Auto);  // the setting stays for the map otherwise
        out << YAML::Key;
        emit_string(out, key, true);
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

std::string size_text(std::uint64_t bytes) {
  for (auto [shift, unit] : {std::pair{30, "Gi"}, std::pair{20, "Mi"}, std::pair{10, "Ki"}})
    if (bytes >= (std::uint64_t{1} << shift) && bytes % (std::uint64_t{1} << shift) == 0)
      return std::to_string(bytes >> shift) + unit;
  return std::to_string(bytes);
}

std::optional<YamlError> read_yaml_documents(std::string_view text, const YamlLimits& limits,
                                             const YamlDocumentSink& on_document, YamlUsage& usage) {
  try {
    ViewBuffer buffer(text);
    std::istream in(&buffer);
    YAML::Parser parser(in);
    // No YAML text holds more than a few nodes per byte (an empty value takes at least a "-", ","
    // or ":"; an alias counts as one node here, its expansion is the alias budget's).
    DocumentBuilder builder(limits, usage, 4 * std::uint64_t{text.size()} + 64);
    while (parser.HandleNextDocument(builder)) {
      auto doc = builder.take();
      if (doc && !on_document(std::move(*doc))) break;
    }
    return std::nullopt;
  } catch (const BudgetExceeded& e) {
    YamlError err = to_error(e);
    err.budget = e.budget;
    return err;
  } catch (const YAML::Exception& e) {
    return to_error(e);
  } catch (const std::exception& e) {
    return YamlError{0, 0, e.what()};
  }
}

Result<std::vector<YamlDocument>, YamlError> parse_yaml_documents(std::string_view text, const YamlLimits& limits) {
  std::vector<YamlDocument> docs;
  YamlUsage usage;
  auto keep = [&](YamlDocument&& doc) {
    docs.push_back(std::move(doc));
    return true;
  };
  if (auto error = read_yaml_documents(text, limits, keep, usage)) return Err(std::move(*error));
  return docs;
}

std::string to_yaml(const boost::json::value& value) {
  YAML::Emitter out;
  emit(out, value);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace stowage::kube
