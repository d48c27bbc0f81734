#include "kube/json_fields.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <limits>

namespace stowage::kube::fields {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxShownChars = 60;

std::string format_number(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

std::optional<std::int64_t> as_int64(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return static_cast<std::int64_t>(v.get_uint64());
  if (v.is_double()) {  // YAML "10.0" arrives as a double; an integral value is accepted (as kubectl does)
    double d = v.get_double();
    if (std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18) return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string indexed(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::string quoted_excerpt(std::string_view s) {
  if (s.size() <= kMaxShownChars) return json::serialize(json::string(s));
  std::size_t cut = kMaxShownChars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return json::serialize(json::string(s.substr(0, cut))) + "...";
}

std::string describe(const json::value& v, bool show_value) {
  auto with = [&](std::string what, const std::string& shown) { return show_value ? what + " (" + shown + ")" : what; };
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return with("a boolean", v.get_bool() ? "true" : "false");
    case json::kind::int64:
      return with("a number", std::to_string(v.get_int64()));
    case json::kind::uint64:
      return with("a number", std::to_string(v.get_uint64()));
    case json::kind::double_:
      return with("a number", format_number(v.get_double()));
    case json::kind::string:
      return with("a string", quoted_excerpt(v.get_string()));
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

ParseError type_error(const std::string& path, std::string_view expected, const json::value& got, bool show_value) {
  return ParseError{path, "expected " + std::string(expected) + ", got " + describe(got, show_value)};
}

const json::value* member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() || it->value().is_null() ? nullptr : &it->value();
}

MaybeError read_string(const json::object& o, std::string_view key, const std::string& path, std::string& out) {
  const json::value* v = member(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) return type_error(join(path, key), "a string", *v);
  out = std::string(v->get_string());
  return std::nullopt;
}

MaybeError read_strings(const json::object& o, const std::string& path, std::initializer_list<StringField> fields) {
  for (const auto& [key, field] : fields)
    if (auto e = read_string(o, key, path, *field)) return e;
  return std::nullopt;
}

MaybeError read_int(const json::object& o, std::string_view key, const std::string& path, std::int64_t& out) {
  const json::value* v = member(o, key);
  if (!v) return std::nullopt;
  auto i = as_int64(*v);
  if (!i) return type_error(join(path, key), "an integer", *v);
  out = *i;
  return std::nullopt;
}

MaybeError read_bool(const json::object& o, std::string_view key, const std::string& path, bool& out) {
  const json::value* v = member(o, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) return type_error(join(path, key), "a boolean", *v);
  out = v->get_bool();
  return std::nullopt;
}

Result<const json::object*, ParseError> read_object(const json::object& o, std::string_view key,
                                                    const std::string& path) {
  const json::value* v = member(o, key);
  if (!v) return static_cast<const json::object*>(nullptr);
  if (!v->is_object()) return Err(type_error(join(path, key), "an object", *v));
  return &v->get_object();
}

MaybeError read_string_list(const json::object& o, std::string_view key, const std::string& path,
                            std::vector<std::string>& out) {
  const json::value* v = member(o, key);
  if (!v) return std::nullopt;
  if (!v->is_array()) return type_error(join(path, key), "an array of strings", *v);
  const auto& items = v->get_array();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string()) return type_error(indexed(join(path, key), i), "a string", items[i]);
    out.emplace_back(items[i].get_string());
  }
  return std::nullopt;
}

}  // namespace stowage::kube::fields
