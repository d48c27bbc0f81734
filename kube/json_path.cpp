#include "kube/json_path.hpp"

#include <boost/json/object.hpp>

namespace stowage::kube {

const boost::json::value* value_at(const boost::json::value& v, std::initializer_list<std::string_view> path) {
  const boost::json::value* cur = &v;
  for (auto key : path) {
    const auto* o = cur->if_object();
    cur = o ? o->if_contains(key) : nullptr;
    if (!cur) return nullptr;
  }
  return cur;
}

std::string string_at(const boost::json::value& v, std::initializer_list<std::string_view> path) {
  const auto* at = value_at(v, path);
  return at && at->is_string() ? std::string(at->get_string()) : std::string();
}

std::int64_t int_at(const boost::json::value& v, std::initializer_list<std::string_view> path, std::int64_t fallback) {
  const auto* at = value_at(v, path);
  if (at && at->is_int64()) return at->get_int64();
  if (at && at->is_uint64()) return static_cast<std::int64_t>(at->get_uint64());
  return fallback;
}

}  // namespace stowage::kube
