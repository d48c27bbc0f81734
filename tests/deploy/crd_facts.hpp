#pragma once
// A CustomResourceDefinition reduced to the facts a drop-in replacement for KubeStash's must match, in
// exactly the form of tests/data/kubestash-crds.json (a copy of KubeStash's CRDs reduced the same way):
//
//   { "<plural>.<group>": { "group", "scope", "names": {kind, listKind, plural, singular, shortNames
//     (null when absent), categories}, "versions": { "<name>": { "served", "storage", "subresources"
//     (sorted names), "columns": [[name, jsonPath, type], ...], "properties": { "<schema path>":
//     {type, enum, default, format, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
//     required: true} } } } } }
//
// A schema path is "." for the root, ".spec.storage.s3.bucket" for a property, "[]" appended for an
// array's items and "{}" for additionalProperties. `required` is set on a property its parent lists.
// Everything else (descriptions, anyOf, pattern, printer column priorities) is left out, as in the
// reference. `compare_crd_facts` names every difference; `structural_problems` checks what the real
// API server would refuse in a schema, since the test API server only stores CRDs.
#include <boost/json.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace deploy_test {

namespace json = boost::json;

using Problems = std::vector<std::string>;

inline constexpr const char* kReducedAttributes[] = {"type",
                                                     "enum",
                                                     "default",
                                                     "format",
                                                     "x-kubernetes-int-or-string",
                                                     "x-kubernetes-preserve-unknown-fields"};

inline const json::object* object_at(const json::object& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_object() ? &it->value().get_object() : nullptr;
}

// Whether the schema node `schema` lists `name` in its `required`.
inline bool lists_required(const json::object& schema, const std::string& name) {
  auto it = schema.find("required");
  if (it == schema.end() || !it->value().is_array()) return false;
  const auto& required = it->value().get_array();
  return std::find(required.begin(), required.end(), json::value(name)) != required.end();
}

inline void reduce_schema(const json::object& schema, const std::string& path, bool required,
                          json::object& properties, Problems& problems) {
  json::object facts;
  for (const char* key : kReducedAttributes)
    if (auto it = schema.find(key); it != schema.end()) facts[key] = it->value();
  if (required) facts["required"] = true;
  properties[path] = std::move(facts);
  const std::string prefix = path == "." ? "" : path;
  if (auto it = schema.find("properties"); it != schema.end()) {
    if (!it->value().is_object()) problems.push_back(path + ": properties is not a mapping");
    else
      for (const auto& [name, child] : it->value().get_object()) {
        std::string child_path = prefix + "." + std::string(name);
        if (!child.is_object()) problems.push_back(child_path + ": the schema is not a mapping");
        else reduce_schema(child.get_object(), child_path, lists_required(schema, name), properties, problems);
      }
  }
  if (auto it = schema.find("items"); it != schema.end()) {
    if (!it->value().is_object()) problems.push_back(path + ": items is not one schema");
    else reduce_schema(it->value().get_object(), prefix + "[]", false, properties, problems);
  }
  if (const auto* additional = object_at(schema, "additionalProperties"))
    reduce_schema(*additional, prefix + "{}", false, properties, problems);
}

// One CRD document reduced; a CRD whose shape cannot be read adds to `problems`.
inline json::object reduce_crd(const json::object& crd, Problems& problems) {
  json::object reduced;
  const auto* spec = object_at(crd, "spec");
  if (!spec) {
    problems.push_back("the CRD has no spec");
    return reduced;
  }
  for (const char* key : {"group", "scope"})
    if (auto it = spec->find(key); it != spec->end()) reduced[key] = it->value();
  json::object names = object_at(*spec, "names") ? *object_at(*spec, "names") : json::object{};
  if (!names.contains("shortNames")) names["shortNames"] = nullptr;
  reduced["names"] = std::move(names);
  json::object versions;
  auto versions_it = spec->find("versions");
  if (versions_it == spec->end() || !versions_it->value().is_array()) problems.push_back("spec.versions is not a list");
  else
    for (const auto& v : versions_it->value().get_array()) {
      if (!v.is_object() || !v.get_object().contains("name")) {
        problems.push_back("a version without a name");
        continue;
      }
      const auto& version = v.get_object();
      json::object out;
      for (const char* key : {"served", "storage"})
        if (auto it = version.find(key); it != version.end()) out[key] = it->value();
      json::array subresources;
      if (const auto* s = object_at(version, "subresources"))
        for (const auto& kv : *s) subresources.emplace_back(kv.key());
      std::sort(subresources.begin(), subresources.end(),
                [](const json::value& a, const json::value& b) { return a.get_string() < b.get_string(); });
      out["subresources"] = std::move(subresources);
      json::array columns;
      if (auto it = version.find("additionalPrinterColumns"); it != version.end() && it->value().is_array())
        for (const auto& c : it->value().get_array()) {
          const auto& column = c.as_object();
          columns.push_back(json::array{column.at("name"), column.at("jsonPath"), column.at("type")});
        }
      out["columns"] = std::move(columns);
      json::object properties;
      const auto* schema = object_at(version, "schema");
      const auto* root = schema ? object_at(*schema, "openAPIV3Schema") : nullptr;
      if (!root) problems.push_back("version " + std::string(version.at("name").as_string()) + " has no schema");
      else reduce_schema(*root, ".", false, properties, problems);
      out["properties"] = std::move(properties);
      versions[version.at("name").as_string()] = std::move(out);
    }
  reduced["versions"] = std::move(versions);
  return reduced;
}

inline std::string shown(const json::value* v) { return v ? json::serialize(*v) : "absent"; }

inline const json::value* member(const json::object& o, const std::string& key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

// Every key of either object, each once.
inline std::set<std::string> keys_of(const json::object& a, const json::object& b) {
  std::set<std::string> keys;
  for (const auto& kv : a) keys.emplace(kv.key());
  for (const auto& kv : b) keys.emplace(kv.key());
  return keys;
}

inline void compare_values(const json::object& theirs, const json::object& ours, const std::string& where,
                           const std::string& label_prefix, Problems& out) {
  for (const auto& key : keys_of(theirs, ours)) {
    const auto *t = member(theirs, key), *o = member(ours, key);
    if (!t || !o || *t != *o)
      out.push_back(where + ": " + label_prefix + key + " is " + shown(o) + " here, KubeStash's is " + shown(t));
  }
}

inline void compare_properties(const json::object& theirs, const json::object& ours, const std::string& where,
                               Problems& out) {
  for (const auto& path : keys_of(theirs, ours)) {
    const auto *t = member(theirs, path), *o = member(ours, path);
    if (!o) out.push_back(where + ": schema path " + path + " is missing (KubeStash's: " + shown(t) + ")");
    else if (!t) out.push_back(where + ": schema path " + path + " is added (KubeStash's CRD has no such path)");
    else if (*t != *o) compare_values(t->as_object(), o->as_object(), where + ": schema path " + path, "", out);
  }
}

// Every difference between KubeStash's reduced CRDs (`theirs`) and ours, one line each, by name:
// a CRD, version or schema path missing or added, and each attribute that differs.
inline Problems compare_crd_facts(const json::object& theirs, const json::object& ours) {
  Problems out;
  for (const auto& name : keys_of(theirs, ours)) {
    const auto *t = member(theirs, name), *o = member(ours, name);
    if (!o || !t) {
      out.push_back(name + (o ? ": a CRD KubeStash does not have" : ": the CRD is missing"));
      continue;
    }
    const auto &tc = t->as_object(), &oc = o->as_object();
    for (const auto& key : keys_of(tc, oc)) {
      const auto *tv = member(tc, key), *ov = member(oc, key);
      if (key == "names" && tv && ov && tv->is_object() && ov->is_object())
        compare_values(tv->get_object(), ov->get_object(), name, "names.", out);
      else if (key != "versions" && (!tv || !ov || *tv != *ov))
        out.push_back(name + ": " + key + " is " + shown(ov) + " here, KubeStash's is " + shown(tv));
    }
    const auto &tvs = tc.at("versions").as_object(), &ovs = oc.at("versions").as_object();
    for (const auto& version : keys_of(tvs, ovs)) {
      const std::string where = name + " " + version;
      const auto *tv = member(tvs, version), *ov = member(ovs, version);
      if (!tv || !ov) {
        out.push_back(where + (ov ? ": a version KubeStash does not have" : ": the version is missing"));
        continue;
      }
      const auto &a = tv->as_object(), &b = ov->as_object();
      for (const auto& key : keys_of(a, b)) {
        const auto *x = member(a, key), *y = member(b, key);
        if (key == "properties" && x && y) compare_properties(x->as_object(), y->as_object(), where, out);
        else if (!x || !y || *x != *y)
          out.push_back(where + ": " + key + " is " + shown(y) + " here, KubeStash's is " + shown(x));
      }
    }
  }
  return out;
}

inline bool has_true(const json::object& schema, const char* key) {
  auto it = schema.find(key);
  return it != schema.end() && it->value().is_bool() && it->value().get_bool();
}

inline bool value_has_type(const json::value& v, const std::string& type) {
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_bool();
  if (type == "integer") return v.is_int64() || v.is_uint64();
  if (type == "number") return v.is_number();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  return false;
}

// What the API server refuses in a structural schema, checked on one node and below: a node without
// a type (unless int-or-string or preserve-unknown-fields), an int-or-string node with one, properties
// beside additionalProperties, properties on a non-object or items on a non-array, a default that is
// not of the node's type or not in its enum; and, our own rule, a `required` name that is no property.
inline void structural_problems(const json::object& schema, const std::string& path, Problems& out) {
  auto type_it = schema.find("type");
  const bool typed = type_it != schema.end() && type_it->value().is_string();
  const std::string type = typed ? std::string(type_it->value().get_string()) : "";
  bool int_or_string = has_true(schema, "x-kubernetes-int-or-string");
  if (int_or_string && !type.empty()) out.push_back(path + ": int-or-string with type " + type);
  if (!int_or_string && type.empty() && !has_true(schema, "x-kubernetes-preserve-unknown-fields"))
    out.push_back(path + ": no type");
  const auto* properties = object_at(schema, "properties");
  if (properties && schema.contains("additionalProperties"))
    out.push_back(path + ": properties and additionalProperties together");
  if (properties && type != "object") out.push_back(path + ": properties on type " + type);
  if (schema.contains("items") && type != "array") out.push_back(path + ": items on type " + type);
  if (auto it = schema.find("default"); it != schema.end()) {
    if (!type.empty() && !value_has_type(it->value(), type))
      out.push_back(path + ": default " + json::serialize(it->value()) + " is not a " + type);
    if (auto e = schema.find("enum"); e != schema.end() && e->value().is_array()) {
      const auto& values = e->value().get_array();
      if (std::find(values.begin(), values.end(), it->value()) == values.end())
        out.push_back(path + ": default " + json::serialize(it->value()) + " is not in the enum");
    }
  }
  if (auto it = schema.find("required"); it != schema.end())
    for (const auto& name : it->value().as_array())
      if (!properties || !properties->contains(name.as_string()))
        out.push_back(path + ": required names " + json::serialize(name) + ", which is no property");
  const std::string prefix = path == "." ? "" : path;
  if (properties)
    for (const auto& [name, child] : *properties)
      if (child.is_object()) structural_problems(child.get_object(), prefix + "." + std::string(name), out);
  if (const auto* items = object_at(schema, "items")) structural_problems(*items, prefix + "[]", out);
  if (const auto* additional = object_at(schema, "additionalProperties"))
    structural_problems(*additional, prefix + "{}", out);
}

}  // namespace deploy_test
