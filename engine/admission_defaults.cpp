#include "engine/admission_defaults.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

namespace stowage::engine {

namespace json = boost::json;

namespace {

json::object same_namespace_policy() { return json::object{{"allowedNamespaces", json::object{{"from", "Same"}}}}; }

json::object op(std::string_view verb, std::string_view path, json::value value) {
  return json::object{{"op", verb}, {"path", path}, {"value", std::move(value)}};
}

// Replaces the section's fields that end in '/' with their value without the trailing slashes.
void trim_trailing_slashes(const json::object& storage, std::string_view section,
                           std::initializer_list<std::string_view> fields, json::array& patch) {
  const json::value* member = storage.if_contains(section);
  if (!member || !member->is_object()) return;
  for (auto field : fields) {
    const json::value* value = member->get_object().if_contains(field);
    if (!value || !value->is_string()) continue;
    std::string_view text = value->get_string();
    if (!text.ends_with('/')) continue;
    while (text.ends_with('/')) text.remove_suffix(1);
    patch.push_back(op("replace", "/spec/storage/" + std::string(section) + "/" + std::string(field), json::string(text)));
  }
}

}  // namespace

json::array backup_storage_defaults(const json::value& object) {
  json::array patch;
  if (!object.is_object()) return patch;
  const json::value* spec = object.get_object().if_contains("spec");
  if (!spec || spec->is_null()) {
    patch.push_back(op("add", "/spec", json::object{{"usagePolicy", same_namespace_policy()}}));
    return patch;
  }
  if (!spec->is_object()) return patch;
  const json::value* usage = spec->get_object().if_contains("usagePolicy");
  if (!usage || usage->is_null()) patch.push_back(op("add", "/spec/usagePolicy", same_namespace_policy()));
  const json::value* storage = spec->get_object().if_contains("storage");
  if (storage && storage->is_object()) {
    trim_trailing_slashes(storage->get_object(), "s3", {"bucket", "endpoint", "prefix"}, patch);
    trim_trailing_slashes(storage->get_object(), "gcs", {"bucket", "prefix"}, patch);
    trim_trailing_slashes(storage->get_object(), "azure", {"prefix"}, patch);
  }
  return patch;
}

}  // namespace stowage::engine
