#pragma once
// Lenient readers of a field deep in a Kubernetes object as the API server sent it, for code that
// only looks (caches, event handlers, Job outcomes): a missing member, a non-object on the way or a
// value of another type gives the fallback, never an error or an exception. Typed parsing with
// messages that name the field is kube/model.hpp's job.
//   string_at(job, {"metadata", "labels", "app"}); int_at(job, {"status", "failed"}, 0)
#include <boost/json/value.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace stowage::kube {

// The value at `path`, or nullptr.
const boost::json::value* value_at(const boost::json::value& v, std::initializer_list<std::string_view> path);
// The string at `path`, or "".
std::string string_at(const boost::json::value& v, std::initializer_list<std::string_view> path);
// The integer at `path`, or `fallback`.
std::int64_t int_at(const boost::json::value& v, std::initializer_list<std::string_view> path, std::int64_t fallback);
// metadata.<field> as a string ("name", "namespace", "uid", "resourceVersion"), or "".
inline std::string metadata_text(const boost::json::value& object, std::string_view field) {
  return string_at(object, {"metadata", field});
}

}  // namespace stowage::kube
