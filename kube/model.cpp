// Parsing of BackupStorage and Secret objects from JSON, and the status/object writers.
// Guarantees: never throws; the first problem found is returned as a ParseError naming the field's
// JSON path and what was expected. JSON null counts as absent (as Go's encoding/json treats it).
// Secret values are never copied into an error message.
#include "kube/model.hpp"

#include <boost/json.hpp>

#include "common/crypto.hpp"
#include "kube/json_fields.hpp"

namespace stowage::kube {
namespace {

namespace json = boost::json;
using namespace fields;

// kubectl apply's copy of the whole object: never kept (it is as large as the object).
constexpr std::string_view kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";

MaybeError read_string_map(const json::object& o, std::string_view key, const std::string& path, StringMap& out) {
  auto obj = read_object(o, key, path);
  if (!obj) return obj.error();
  if (!obj.value()) return std::nullopt;
  std::vector<StringMap::Entry> entries;
  entries.reserve(obj.value()->size());
  for (const auto& kv : *obj.value()) {
    if (!kv.value().is_string()) return type_error(join(join(path, key), kv.key()), "a string", kv.value());
    if (kv.key() == kLastApplied) continue;
    entries.emplace_back(kv.key(), kv.value().get_string());
  }
  out.assign(entries);
  return std::nullopt;
}

// Reads a list of objects with `parse_item(object, path)`.
template <class T, class F>
MaybeError read_object_list(const json::object& o, std::string_view key, const std::string& path, std::vector<T>& out,
                            F parse_item) {
  const json::value* v = member(o, key);
  if (!v) return std::nullopt;
  if (!v->is_array()) return type_error(join(path, key), "an array", *v);
  const auto& items = v->get_array();
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::string item_path = indexed(join(path, key), i);
    if (!items[i].is_object()) return type_error(item_path, "an object", items[i]);
    auto item = parse_item(items[i].get_object(), item_path);
    if (!item) return item.error();
    out.push_back(std::move(item.value()));
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Names.

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool is_label_shaped(std::string_view s) {
  if (s.empty()) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : s)
    if (!alnum(c) && c != '-') return false;
  return alnum(s.front()) && alnum(s.back());
}

bool is_dns1123_label(std::string_view s) { return s.size() <= 63 && is_label_shaped(s); }

bool is_dns1123_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (std::size_t start = 0;;) {
    std::size_t dot = s.find('.', start);
    if (!is_label_shaped(s.substr(start, dot == s.npos ? s.npos : dot - start))) return false;
    if (dot == s.npos) return true;
    start = dot + 1;
  }
}

MaybeError validate_identity(const ObjectMeta& meta) {
  if (meta.name.empty()) return ParseError{"metadata.name", "a name is required"};
  if (!is_dns1123_subdomain(meta.name))
    return ParseError{"metadata.name",
                      quoted_excerpt(meta.name) +
                          " is not a valid name: a lowercase RFC 1123 subdomain must consist of lower case "
                          "alphanumeric characters, '-' or '.', must start and end with an alphanumeric character "
                          "(e.g. 'example.com') and be at most 253 characters"};
  if (!is_dns1123_label(meta.namespace_))
    return ParseError{"metadata.namespace",
                      quoted_excerpt(meta.namespace_) +
                          " is not a valid namespace: a lowercase RFC 1123 label must consist of lower case "
                          "alphanumeric characters or '-', must start and end with an alphanumeric character "
                          "(e.g. 'my-name') and be at most 63 characters"};
  return std::nullopt;
}

// kind first (a different object is the likelier mistake), then apiVersion.
MaybeError check_type(const json::value& object, std::string_view kind, std::string_view api_version) {
  if (!object.is_object()) return type_error("", "an object (a " + std::string(kind) + " manifest)", object);
  std::string got_kind, got_version;
  if (auto e = read_string(object.get_object(), "kind", "", got_kind)) return e;
  if (auto e = read_string(object.get_object(), "apiVersion", "", got_version)) return e;
  const std::string want_kind(kind), want_version(api_version);
  if (got_kind != kind) {
    std::string got = got_kind.empty() ? "none" : quoted_excerpt(got_kind);
    return ParseError{"kind", "expected \"" + want_kind + "\", got " + got};
  }
  if (got_version.empty()) return ParseError{"apiVersion", "apiVersion is missing; use " + want_version};
  if (got_version != api_version) {
    std::string got = quoted_excerpt(got_version);
    return ParseError{"apiVersion", "apiVersion " + got + " is not served for " + want_kind + "; use " + want_version};
  }
  return std::nullopt;
}

ParseResult<ObjectMeta> parse_metadata_member(const json::object& object) {
  // Not `cond ? json::value(nullptr) : it->value()`: that copies the whole metadata into a temporary.
  static const json::value kAbsent;
  auto it = object.find("metadata");
  return parse_object_meta(it == object.end() ? kAbsent : it->value());
}

// ---------------------------------------------------------------------------------------------
// spec.storage.

ParseResult<S3Spec> parse_s3(const json::object& o, const std::string& path) {
  S3Spec s;
  if (auto e = read_strings(o, path,
                            {{"endpoint", &s.endpoint},
                             {"bucket", &s.bucket},
                             {"prefix", &s.prefix},
                             {"region", &s.region},
                             {"secretName", &s.secret_name}}))
    return Err(*e);
  if (auto e = read_int(o, "maxConnections", path, s.max_connections)) return Err(*e);
  if (auto e = read_bool(o, "insecureTLS", path, s.insecure_tls)) return Err(*e);
  return s;
}

ParseResult<GcsSpec> parse_gcs(const json::object& o, const std::string& path) {
  GcsSpec s;
  if (auto e = read_strings(o, path, {{"bucket", &s.bucket}, {"prefix", &s.prefix}, {"secretName", &s.secret_name}}))
    return Err(*e);
  if (auto e = read_int(o, "maxConnections", path, s.max_connections)) return Err(*e);
  return s;
}

ParseResult<AzureSpec> parse_azure(const json::object& o, const std::string& path) {
  AzureSpec s;
  if (auto e = read_strings(o, path,
                            {{"storageAccount", &s.storage_account},
                             {"container", &s.container},
                             {"prefix", &s.prefix},
                             {"secretName", &s.secret_name}}))
    return Err(*e);
  if (auto e = read_int(o, "maxConnections", path, s.max_connections)) return Err(*e);
  return s;
}

// mountPath/subPath/maxConnections are LocalSpec's own; every other member is the inline VolumeSource.
ParseResult<LocalSpec> parse_local(const json::object& o, const std::string& path) {
  LocalSpec s;
  if (auto e = read_string(o, "mountPath", path, s.mount_path)) return Err(*e);
  if (auto e = read_string(o, "subPath", path, s.sub_path)) return Err(*e);
  if (auto e = read_int(o, "maxConnections", path, s.max_connections)) return Err(*e);
  json::object volume_source;
  for (const auto& kv : o) {
    if (kv.key() == "mountPath" || kv.key() == "subPath" || kv.key() == "maxConnections" || kv.value().is_null())
      continue;
    if (!kv.value().is_object())
      return Err(type_error(join(path, kv.key()), "an object (a volume source)", kv.value()));
    if (s.volume_type.empty()) s.volume_type = std::string(kv.key());
    volume_source[kv.key()] = kv.value();
  }
  if (s.volume_type == "hostPath")
    if (auto e = read_string(volume_source["hostPath"].get_object(), "path", join(path, "hostPath"), s.host_path))
      return Err(*e);
  s.volume_source = SharedObject(volume_source);
  return s;
}

template <class T, class F>
MaybeError read_section(const json::object& o, std::string_view key, const std::string& path, Boxed<T>& out,
                        F parse) {
  auto obj = read_object(o, key, path);
  if (!obj) return obj.error();
  if (!obj.value()) return std::nullopt;
  auto parsed = parse(*obj.value(), join(path, key));
  if (!parsed) return parsed.error();
  out = std::move(parsed.value());
  return std::nullopt;
}

ParseResult<StorageSpec> parse_storage(const json::object& o, const std::string& path) {
  StorageSpec s;
  if (auto e = read_string(o, "provider", path, s.provider)) return Err(*e);
  if (auto e = read_section(o, "s3", path, s.s3, parse_s3)) return Err(*e);
  if (auto e = read_section(o, "gcs", path, s.gcs, parse_gcs)) return Err(*e);
  if (auto e = read_section(o, "azure", path, s.azure, parse_azure)) return Err(*e);
  if (auto e = read_section(o, "local", path, s.local, parse_local)) return Err(*e);
  return s;
}

// ---------------------------------------------------------------------------------------------
// spec.

MaybeError check_enum(const std::string& value, const std::string& path,
                      std::initializer_list<std::string_view> allowed) {
  std::string list;
  for (auto a : allowed) {
    if (value == a) return std::nullopt;
    list += (list.empty() ? "\"" : ", \"") + std::string(a) + "\"";
  }
  return ParseError{path, "unsupported value " + quoted_excerpt(value) + ": supported values: " + list};
}

MaybeError read_usage_policy(const json::object& spec, BackupStorageSpec& out) {
  auto policy = read_object(spec, "usagePolicy", "spec");
  if (!policy) return policy.error();
  if (!policy.value()) return std::nullopt;
  out.usage_policy = SharedJson(*member(spec, "usagePolicy"));  // the member itself: no copy to intern
  auto allowed = read_object(*policy.value(), "allowedNamespaces", "spec.usagePolicy");
  if (!allowed) return allowed.error();
  if (!allowed.value()) return std::nullopt;
  const std::string path = "spec.usagePolicy.allowedNamespaces";
  bool present = member(*allowed.value(), "from") != nullptr;
  if (auto e = read_string(*allowed.value(), "from", path, out.usage_from)) return e;
  return present ? check_enum(out.usage_from, path + ".from", {"All", "Selector", "Same"}) : std::nullopt;
}

ParseResult<BackupStorageSpec> parse_spec(const json::object& o) {
  BackupStorageSpec s;
  auto storage = read_object(o, "storage", "spec");
  if (!storage) return Err(storage.error());
  if (storage.value()) {
    auto parsed = parse_storage(*storage.value(), "spec.storage");
    if (!parsed) return Err(parsed.error());
    s.storage = std::move(parsed.value());
  }
  if (auto e = read_bool(o, "default", "spec", s.is_default)) return Err(*e);
  bool has_policy = member(o, "deletionPolicy") != nullptr;
  if (auto e = read_string(o, "deletionPolicy", "spec", s.deletion_policy)) return Err(*e);
  if (has_policy)
    if (auto e = check_enum(s.deletion_policy, "spec.deletionPolicy", {"Delete", "WipeOut"})) return Err(*e);
  if (auto e = read_usage_policy(o, s)) return Err(*e);
  auto runtime = read_object(o, "runtimeSettings", "spec");
  if (!runtime) return Err(runtime.error());
  if (runtime.value()) s.runtime_settings = SharedJson(*member(o, "runtimeSettings"));
  return s;
}

// ---------------------------------------------------------------------------------------------
// status.

ParseResult<RepositoryStatus> parse_repository(const json::object& o, const std::string& path) {
  RepositoryStatus r;
  if (auto e = read_strings(
          o, path,
          {{"name", &r.name}, {"namespace", &r.namespace_}, {"path", &r.path}, {"size", &r.size}, {"error", &r.error}}))
    return Err(*e);
  if (auto e = read_bool(o, "synced", path, r.synced)) return Err(*e);
  return r;
}

ParseResult<Condition> parse_condition(const json::object& o, const std::string& path) {
  Condition c;
  if (auto e = read_strings(o, path,
                            {{"type", &c.type},
                             {"status", &c.status},
                             {"reason", &c.reason},
                             {"message", &c.message},
                             {"severity", &c.severity},
                             {"lastTransitionTime", &c.last_transition_time}}))
    return Err(*e);
  if (auto e = read_int(o, "observedGeneration", path, c.observed_generation)) return Err(*e);
  return c;
}

void put_if(json::object& o, std::string_view key, const std::string& value) {
  if (!value.empty()) o[key] = value;
}

json::object repository_to_json(const RepositoryStatus& r) {
  json::object o;
  put_if(o, "name", r.name);
  put_if(o, "namespace", r.namespace_);
  put_if(o, "path", r.path);
  put_if(o, "size", r.size);
  o["synced"] = r.synced;  // KubeStash's field is a *bool: written even when false
  put_if(o, "error", r.error);
  return o;
}

// kmodules' Condition: type, status and lastTransitionTime (metav1.Time: null when zero) always written.
json::object condition_to_json(const Condition& c) {
  json::object o;
  o["type"] = c.type;
  o["status"] = c.status;
  if (c.observed_generation != 0) o["observedGeneration"] = c.observed_generation;
  put_if(o, "severity", c.severity);
  if (c.last_transition_time.empty())
    o["lastTransitionTime"] = nullptr;
  else
    o["lastTransitionTime"] = c.last_transition_time;
  put_if(o, "reason", c.reason);
  put_if(o, "message", c.message);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Secret data.

MaybeError read_secret_data(const json::object& o, Secret& s) {
  auto data = read_object(o, "data", "");
  if (!data) return data.error();
  if (data.value())
    for (const auto& kv : *data.value()) {
      if (kv.value().is_null()) continue;
      if (!kv.value().is_string()) return type_error(join("data", kv.key()), "a Base64 string", kv.value(), false);
      if (auto decoded = crypto::base64_decode(kv.value().get_string()))
        s.data[std::string(kv.key())] = *decoded;
      else
        s.invalid_keys.emplace_back(kv.key());
    }
  auto string_data = read_object(o, "stringData", "");
  if (!string_data) return string_data.error();
  if (string_data.value())
    for (const auto& kv : *string_data.value()) {
      if (kv.value().is_null()) continue;
      if (!kv.value().is_string()) return type_error(join("stringData", kv.key()), "a string", kv.value(), false);
      s.data[std::string(kv.key())] = std::string(kv.value().get_string());
      std::erase(s.invalid_keys, std::string(kv.key()));
    }
  return std::nullopt;
}

}  // namespace

std::string StorageSpec::secret_name() const {
  if (provider == "s3" && s3) return s3->secret_name;
  if (provider == "gcs" && gcs) return gcs->secret_name;
  if (provider == "azure" && azure) return azure->secret_name;
  return "";
}

ParseResult<ObjectMeta> parse_object_meta(const boost::json::value& metadata) {
  ObjectMeta m;
  m.namespace_ = "default";
  if (metadata.is_null()) return m;
  if (!metadata.is_object()) return Err(type_error("metadata", "an object", metadata));
  const auto& o = metadata.get_object();
  const std::string p = "metadata";
  if (auto e = read_strings(o, p,
                            {{"name", &m.name},
                             {"namespace", &m.namespace_},
                             {"uid", &m.uid},
                             {"resourceVersion", &m.resource_version},
                             {"creationTimestamp", &m.creation_timestamp},
                             {"deletionTimestamp", &m.deletion_timestamp}}))
    return Err(*e);
  if (m.namespace_.empty()) m.namespace_ = "default";
  if (auto e = read_int(o, "generation", p, m.generation)) return Err(*e);
  if (auto e = read_string_map(o, "labels", p, m.labels)) return Err(*e);
  if (auto e = read_string_map(o, "annotations", p, m.annotations)) return Err(*e);
  if (auto e = read_string_list(o, "finalizers", p, m.finalizers)) return Err(*e);
  return m;
}

ParseResult<BackupStorage> parse_backup_storage(const boost::json::value& object, Unknown unknown) {
  if (auto e = check_type(object, kBackupStorageKind, kBackupStorageApiVersion)) return Err(*e);
  const auto& o = object.get_object();
  BackupStorage bs;
  if (unknown == Unknown::Keep) bs.raw = object;
  auto meta = parse_metadata_member(o);
  if (!meta) return Err(meta.error());
  bs.metadata = std::move(meta.value());
  if (auto e = validate_identity(bs.metadata)) return Err(*e);
  auto spec_object = read_object(o, "spec", "");
  if (!spec_object) return Err(spec_object.error());
  if (spec_object.value()) {
    auto spec = parse_spec(*spec_object.value());
    if (!spec) return Err(spec.error());
    bs.spec = std::move(spec.value());
  }
  if (const json::value* status = member(o, "status")) {
    auto parsed = parse_status(*status);
    if (!parsed) return Err(parsed.error());
    bs.status = std::move(parsed.value());
  }
  return bs;
}

ParseResult<Secret> parse_secret(const boost::json::value& object) {
  if (auto e = check_type(object, "Secret", "v1")) return Err(*e);
  const auto& o = object.get_object();
  Secret s;
  auto meta = parse_metadata_member(o);
  if (!meta) return Err(meta.error());
  s.metadata = std::move(meta.value());
  if (auto e = validate_identity(s.metadata)) return Err(*e);
  if (auto e = read_string(o, "type", "", s.type)) return Err(*e);
  if (s.type.empty()) s.type = "Opaque";
  if (auto e = read_secret_data(o, s)) return Err(*e);
  return s;
}

ParseResult<BackupStorageStatus> parse_status(const boost::json::value& status) {
  BackupStorageStatus s;
  if (status.is_null()) return s;
  if (!status.is_object()) return Err(type_error("status", "an object", status));
  const auto& o = status.get_object();
  if (auto e = read_string(o, "phase", "status", s.phase)) return Err(*e);
  if (auto e = read_string(o, "totalSize", "status", s.total_size)) return Err(*e);
  if (auto e = read_object_list(o, "repositories", "status", s.repositories, parse_repository)) return Err(*e);
  if (auto e = read_object_list(o, "conditions", "status", s.conditions, parse_condition)) return Err(*e);
  for (const auto& kv : o)
    if (kv.key() != "phase" && kv.key() != "totalSize" && kv.key() != "repositories" && kv.key() != "conditions")
      s.other_fields.emplace_back(kv.key());
  return s;
}

boost::json::value status_to_json(const BackupStorageStatus& status) {
  json::object o;
  put_if(o, "phase", status.phase);
  put_if(o, "totalSize", status.total_size);
  if (!status.repositories.empty()) {
    json::array repos;
    for (const auto& r : status.repositories) repos.push_back(repository_to_json(r));
    o["repositories"] = std::move(repos);
  }
  if (!status.conditions.empty()) {
    json::array conditions;
    for (const auto& c : status.conditions) conditions.push_back(condition_to_json(c));
    o["conditions"] = std::move(conditions);
  }
  return o;
}

// Typed metadata wins over `raw`; finalizers are written as they are now (an emptied list removes
// the field, so a removed finalizer is not resurrected from `raw`).
boost::json::value to_json(const BackupStorage& object) {
  json::object out = object.raw.is_object() ? object.raw.get_object() : json::object{};
  if (!out.contains("apiVersion")) out["apiVersion"] = kBackupStorageApiVersion;
  if (!out.contains("kind")) out["kind"] = kBackupStorageKind;
  if (!out["metadata"].is_object()) out["metadata"] = json::object{};
  json::object& meta = out["metadata"].get_object();
  const ObjectMeta& m = object.metadata;
  put_if(meta, "name", m.name);
  put_if(meta, "namespace", m.namespace_);
  put_if(meta, "uid", m.uid);
  put_if(meta, "resourceVersion", m.resource_version);
  if (m.generation != 0) meta["generation"] = m.generation;
  put_if(meta, "creationTimestamp", m.creation_timestamp);
  if (m.finalizers.empty())
    meta.erase("finalizers");
  else
    meta["finalizers"] = json::value_from(m.finalizers);
  out["status"] = status_to_json(object.status);
  return out;
}

}  // namespace stowage::kube
