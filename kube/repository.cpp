// Parsing of KubeStash Repository objects, and KubeStash's size strings.
// Guarantees: never throws; the first problem found is returned as a ParseError naming the field's
// JSON path and what was expected. parse_size reads the number with std::from_chars (correctly
// rounded, no locale, as Go's ParseFloat) and multiplies and truncates in double precision as Go
// does, so the bytes match KubeStash's for its own strings.
#include "kube/repository.hpp"

#include <boost/json.hpp>
#include <charconv>

#include "kube/json_fields.hpp"

namespace stowage::kube {
namespace {

namespace json = boost::json;
using namespace fields;

MaybeError read_optional_bool(const json::object& o, std::string_view key, const std::string& path,
                              std::optional<bool>& out) {
  if (!member(o, key)) return std::nullopt;
  bool b = false;
  if (auto e = read_bool(o, key, path, b)) return e;
  out = b;
  return std::nullopt;
}

MaybeError read_optional_int(const json::object& o, std::string_view key, const std::string& path,
                             std::optional<std::int64_t>& out) {
  if (!member(o, key)) return std::nullopt;
  std::int64_t i = 0;
  if (auto e = read_int(o, key, path, i)) return e;
  out = i;
  return std::nullopt;
}

// Calls parse(object, path) for the member when it is present.
template <class F>
MaybeError with_object(const json::object& o, std::string_view key, const std::string& path, F parse) {
  auto obj = read_object(o, key, path);
  if (!obj) return obj.error();
  if (!obj.value()) return std::nullopt;
  return parse(*obj.value(), join(path, key));
}

MaybeError read_conditions(const json::object& o, const std::string& path, std::vector<Condition>& out) {
  const json::value* v = member(o, "conditions");
  if (!v) return std::nullopt;
  const std::string list_path = join(path, "conditions");
  if (!v->is_array()) return type_error(list_path, "an array", *v);
  const auto& items = v->get_array();
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string item_path = indexed(list_path, i);
    if (!items[i].is_object()) return type_error(item_path, "an object", items[i]);
    const auto& c = items[i].get_object();
    Condition cond;
    if (auto e = read_strings(c, item_path,
                              {{"type", &cond.type},
                               {"status", &cond.status},
                               {"reason", &cond.reason},
                               {"message", &cond.message},
                               {"severity", &cond.severity},
                               {"lastTransitionTime", &cond.last_transition_time}}))
      return e;
    std::optional<std::int64_t> generation;
    if (auto e = read_optional_int(c, "observedGeneration", item_path, generation)) return e;
    cond.observed_generation = generation.value_or(0);
    out.push_back(std::move(cond));
  }
  return std::nullopt;
}

MaybeError read_reference(const json::object& o, const std::string& path, NamespacedReference& out) {
  return read_strings(o, path, {{"name", &out.name}, {"namespace", &out.namespace_}});
}

MaybeError parse_spec(const json::object& o, const std::string& path, RepositorySpec& s) {
  if (auto e = with_object(o, "appRef", path, [&](const json::object& r, const std::string& p) {
        return read_strings(r, p,
                            {{"apiGroup", &s.app_ref.api_group},
                             {"kind", &s.app_ref.kind},
                             {"name", &s.app_ref.name},
                             {"namespace", &s.app_ref.namespace_}});
      }))
    return e;
  if (auto e = with_object(o, "storageRef", path, [&](const json::object& r, const std::string& p) {
        return read_reference(r, p, s.storage_ref);
      }))
    return e;
  if (auto e = with_object(o, "encryptionSecret", path, [&](const json::object& r, const std::string& p) {
        s.encryption_secret.emplace();
        return read_reference(r, p, *s.encryption_secret);
      }))
    return e;
  if (auto e = read_strings(o, path, {{"path", &s.path}, {"deletionPolicy", &s.deletion_policy}})) return e;
  if (s.deletion_policy.empty()) s.deletion_policy = "Delete";
  return read_bool(o, "paused", path, s.paused);
}

MaybeError parse_status(const json::object& o, const std::string& path, RepositoryObjectStatus& s) {
  if (auto e = read_strings(o, path, {{"phase", &s.phase}, {"lastBackupTime", &s.last_backup_time}, {"size", &s.size}}))
    return e;
  if (auto e = read_optional_bool(o, "integrity", path, s.integrity)) return e;
  if (auto e = read_optional_int(o, "snapshotCount", path, s.snapshot_count)) return e;
  if (auto e = read_conditions(o, path, s.conditions)) return e;
  return read_string_list(o, "componentPaths", path, s.component_paths);
}

// kind first (another object is the likelier mistake), then apiVersion.
MaybeError check_type(const json::value& object) {
  if (!object.is_object()) return type_error("", "an object (a Repository)", object);
  std::string kind, version;
  if (auto e = read_strings(object.get_object(), "", {{"kind", &kind}, {"apiVersion", &version}})) return e;
  if (kind != kRepositoryKind)
    return ParseError{"kind", "expected \"Repository\", got " + (kind.empty() ? std::string("none") : quoted_excerpt(kind))};
  if (version != kRepositoryApiVersion)
    return ParseError{"apiVersion",
                      (version.empty() ? std::string("apiVersion is missing")
                                       : "apiVersion " + quoted_excerpt(version) + " is not served for Repository") +
                          "; use " + kRepositoryApiVersion};
  return std::nullopt;
}

struct Unit {
  std::string_view name;
  std::uint64_t bytes;
};
constexpr Unit kUnits[] = {{"TiB", std::uint64_t{1} << 40},
                           {"GiB", std::uint64_t{1} << 30},
                           {"MiB", std::uint64_t{1} << 20},
                           {"KiB", std::uint64_t{1} << 10},
                           {"B", 1}};

ParseError size_error(std::string_view text, const std::string& why) {
  return ParseError{"", quoted_excerpt(text) + " is not a size: " + why +
                            " (KubeStash writes sizes as \"<number> <unit>\" with unit TiB, GiB, MiB, KiB or B, "
                            "e.g. \"1.134 MiB\")"};
}

}  // namespace

NamespacedReference Repository::storage() const {
  NamespacedReference ref = spec.storage_ref;
  if (ref.namespace_.empty()) ref.namespace_ = metadata.namespace_;
  return ref;
}

ParseResult<Repository> parse_repository(const boost::json::value& object) {
  if (auto e = check_type(object)) return Err(*e);
  const auto& o = object.get_object();
  Repository r;
  r.raw = object;
  auto meta_it = o.find("metadata");
  static const json::value kAbsent;  // not `? json::value(nullptr) :`, which copies the metadata
  auto meta = parse_object_meta(meta_it == o.end() ? kAbsent : meta_it->value());
  if (!meta) return Err(meta.error());
  r.metadata = std::move(meta.value());
  if (r.metadata.name.empty()) return Err(ParseError{"metadata.name", "a name is required"});
  if (auto e = with_object(o, "spec", "",
                           [&](const json::object& s, const std::string& p) { return parse_spec(s, p, r.spec); }))
    return Err(*e);
  if (auto e = with_object(o, "status", "",
                           [&](const json::object& s, const std::string& p) { return parse_status(s, p, r.status); }))
    return Err(*e);
  return r;
}

ParseResult<std::uint64_t> parse_size(std::string_view text) {
  std::size_t space = text.find(' ');
  if (space == std::string_view::npos) return Err(size_error(text, "a number, one space and a unit are expected"));
  std::string_view number = text.substr(0, space), unit_name = text.substr(space + 1);
  // Plain decimal: digits, optionally "." and more digits (at least one digit in all).
  std::size_t digits = 0, dots = 0;
  for (char c : number) {
    if (c >= '0' && c <= '9')
      ++digits;
    else if (c == '.')
      ++dots;
    else
      return Err(size_error(text, "the number must be plain decimal digits"));
  }
  if (digits == 0 || dots > 1) return Err(size_error(text, "the number must be plain decimal digits"));
  const Unit* unit = nullptr;
  for (const auto& u : kUnits)
    if (u.name == unit_name) unit = &u;
  if (!unit) return Err(size_error(text, "unknown unit " + quoted_excerpt(unit_name)));
  double value = 0;
  auto r = std::from_chars(number.data(), number.data() + number.size(), value, std::chars_format::fixed);
  if (r.ec == std::errc::result_out_of_range) return Err(size_error(text, "the number is too large"));
  if (r.ec != std::errc() || r.ptr != number.data() + number.size())
    return Err(size_error(text, "the number must be plain decimal digits"));
  double bytes = value * static_cast<double>(unit->bytes);
  // 2^64 itself is not representable in uint64: anything at or above it is out of range.
  if (!(bytes < 18446744073709551616.0)) return Err(size_error(text, "more than 2^64-1 bytes"));
  return static_cast<std::uint64_t>(bytes);
}

}  // namespace stowage::kube
