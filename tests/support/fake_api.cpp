#include "support/fake_api.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>

#include "common/time_format.hpp"

namespace test_support {

namespace asio = boost::asio;
namespace json = boost::json;
using stowage::Err;
using stowage::kube::ApiError;
using stowage::kube::WatchEvent;
using stowage::kube::WatchEventType;

namespace {

std::string_view without_query(std::string_view path) { return path.substr(0, path.find('?')); }

std::string text_at(const json::value& object, std::initializer_list<std::string_view> keys) {
  const json::value* v = &object;
  for (auto k : keys) {
    const auto* o = v->if_object();
    if (!o) return "";
    v = o->if_contains(k);
    if (!v) return "";
  }
  return v->is_string() ? std::string(v->get_string()) : std::string();
}

json::object& metadata_of(json::value& object) {
  json::value& m = object.as_object()["metadata"];
  if (!m.is_object()) m = json::object();
  return m.as_object();
}

const char* reason_for(int status) {
  switch (status) {
    case 400: return "BadRequest";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    default: return "";
  }
}

// --- patches, as the API server applies them (tests/apiserver/patches.py is the same in Python) ---

// A patch the server refuses: 422 for a failed `test` or a missing path, 400 for a malformed patch.
struct PatchRefused {
  int status;
  std::string message;
};

json::value merge_patch(json::value target, const json::value& patch) {
  if (!patch.is_object()) return patch;
  json::object result = target.is_object() ? std::move(target.as_object()) : json::object();
  for (const auto& [key, value] : patch.as_object()) {
    if (value.is_null()) {
      result.erase(key);
    } else {
      json::value current = result.contains(key) ? result.at(key) : json::value();
      result[key] = merge_patch(std::move(current), value);
    }
  }
  return result;
}

std::vector<std::string> pointer_tokens(const json::value& path) {
  if (!path.is_string()) throw PatchRefused{400, "a JSON patch path must be a string"};
  std::string_view p = path.get_string();
  if (p.empty()) return {};
  if (p.front() != '/') throw PatchRefused{400, "invalid JSON pointer \"" + std::string(p) + "\""};
  std::vector<std::string> tokens;
  std::size_t at = 1;
  for (;;) {
    std::size_t slash = p.find('/', at);
    std::string token(p.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at));
    for (std::size_t i = 0; (i = token.find("~1", i)) != std::string::npos; ++i) token.replace(i, 2, "/");
    for (std::size_t i = 0; (i = token.find("~0", i)) != std::string::npos; ++i) token.replace(i, 2, "~");
    tokens.push_back(std::move(token));
    if (slash == std::string_view::npos) break;
    at = slash + 1;
  }
  return tokens;
}

// The array index a token names; nullopt when it is not one (or, without allow_end, is past the last element).
std::optional<std::size_t> array_index(const json::array& a, const std::string& token, bool allow_end) {
  if (token == "-") return allow_end ? std::optional<std::size_t>(a.size()) : std::nullopt;
  if (token.empty() || token.size() > 9 || !std::all_of(token.begin(), token.end(), ::isdigit) ||
      (token.size() > 1 && token[0] == '0'))
    return std::nullopt;
  std::size_t i = std::stoul(token);
  if (i > a.size() || (i == a.size() && !allow_end)) return std::nullopt;
  return i;
}

// The value a pointer names, or nullptr when any step is missing.
json::value* find(json::value& doc, const std::vector<std::string>& tokens, std::size_t depth) {
  json::value* node = &doc;
  for (std::size_t i = 0; i < depth; ++i) {
    if (auto* o = node->if_object()) {
      node = o->if_contains(tokens[i]);
      if (!node) return nullptr;
    } else if (auto* a = node->if_array()) {
      auto index = array_index(*a, tokens[i], false);
      if (!index) return nullptr;
      node = &(*a)[*index];
    } else {
      return nullptr;
    }
  }
  return node;
}

json::value& parent_of(json::value& doc, const std::vector<std::string>& tokens, std::string_view path) {
  json::value* parent = find(doc, tokens, tokens.size() - 1);
  if (!parent || !(parent->is_object() || parent->is_array()))
    throw PatchRefused{422, "doc is missing path: " + std::string(path)};
  return *parent;
}

void add(json::value& doc, const std::vector<std::string>& tokens, std::string_view path, json::value value) {
  if (tokens.empty()) {
    doc = std::move(value);
    return;
  }
  json::value& parent = parent_of(doc, tokens, path);
  if (auto* o = parent.if_object()) {
    (*o)[tokens.back()] = std::move(value);
    return;
  }
  auto& a = parent.as_array();
  auto index = array_index(a, tokens.back(), true);
  if (!index) throw PatchRefused{422, "array index out of bounds in " + std::string(path)};
  a.insert(a.begin() + static_cast<std::ptrdiff_t>(*index), std::move(value));
}

void remove_at(json::value& doc, const std::vector<std::string>& tokens, std::string_view path) {
  if (tokens.empty()) throw PatchRefused{422, "cannot remove the whole document"};
  json::value& parent = parent_of(doc, tokens, path);
  if (auto* o = parent.if_object()) {
    if (!o->erase(tokens.back()))
      throw PatchRefused{422, "unable to remove nonexistent key: " + tokens.back() + ": missing value"};
    return;
  }
  auto& a = parent.as_array();
  auto index = array_index(a, tokens.back(), false);
  if (!index) throw PatchRefused{422, "array index out of bounds in " + std::string(path)};
  a.erase(a.begin() + static_cast<std::ptrdiff_t>(*index));
}

json::value json_patch(json::value doc, const json::value& operations) {
  if (!operations.is_array()) throw PatchRefused{400, "a JSON patch must be a list of operations"};
  for (const auto& op_value : operations.as_array()) {
    const auto* op = op_value.if_object();
    if (!op || !op->contains("op") || !op->contains("path") || !op->at("op").is_string())
      throw PatchRefused{400, "invalid JSON patch operation " + json::serialize(op_value)};
    std::string kind(op->at("op").as_string());
    const json::value& path_value = op->at("path");
    auto tokens = pointer_tokens(path_value);
    std::string path(path_value.as_string());
    const json::value* value = op->if_contains("value");
    if ((kind == "add" || kind == "replace" || kind == "test") && !value)
      throw PatchRefused{400, "operation " + kind + " on " + path + " has no value"};
    if (kind == "add") {
      add(doc, tokens, path, *value);
    } else if (kind == "remove") {
      remove_at(doc, tokens, path);
    } else if (kind == "replace") {
      json::value* target = find(doc, tokens, tokens.size());
      if (!target) throw PatchRefused{422, "replace operation does not apply: doc is missing key: " + path};
      *target = *value;
    } else if (kind == "test") {
      // As the API server's json-patch (evanphx v4): testing a missing member for null passes.
      const json::value* actual = find(doc, tokens, tokens.size());
      bool same = actual ? *actual == *value : value->is_null();
      if (!same) throw PatchRefused{422, "testing value " + path + " failed: test failed"};
    } else {
      // move and copy are valid RFC 6902 but unused by stowage: refused loudly rather than misapplied.
      throw PatchRefused{400, "FakeApi does not implement the JSON patch operation \"" + kind + "\""};
    }
  }
  return doc;
}

// --- label selectors: the equality and existence forms ("a=b,c!=d,e,!f") ---

struct Requirement {
  std::string key, value;
  enum Op { Equals, NotEquals, Exists, NotExists } op = Equals;
};

std::optional<std::vector<Requirement>> parse_selector(std::string_view text) {
  std::vector<Requirement> out;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (part.find_first_of("() ") != std::string_view::npos) return std::nullopt;  // set-based: not supported
    Requirement r;
    if (auto at = part.find("!="); at != std::string_view::npos) {
      r = {std::string(part.substr(0, at)), std::string(part.substr(at + 2)), Requirement::NotEquals};
    } else if (auto eq = part.find("=="); eq != std::string_view::npos) {
      r = {std::string(part.substr(0, eq)), std::string(part.substr(eq + 2)), Requirement::Equals};
    } else if (auto one = part.find('='); one != std::string_view::npos) {
      r = {std::string(part.substr(0, one)), std::string(part.substr(one + 1)), Requirement::Equals};
    } else if (!part.empty() && part.front() == '!') {
      r = {std::string(part.substr(1)), "", Requirement::NotExists};
    } else {
      r = {std::string(part), "", Requirement::Exists};
    }
    if (r.key.empty()) return std::nullopt;
    out.push_back(std::move(r));
  }
  return out;
}

bool selected(const json::value& object, const std::vector<Requirement>& selector) {
  const json::value* labels = nullptr;
  if (const auto* o = object.if_object())
    if (const auto* m = o->if_contains("metadata"); m && m->is_object()) labels = m->as_object().if_contains("labels");
  for (const auto& r : selector) {
    const json::value* v = labels && labels->is_object() ? labels->as_object().if_contains(r.key) : nullptr;
    std::string value = v && v->is_string() ? std::string(v->as_string()) : std::string();
    bool ok = r.op == Requirement::Exists      ? v != nullptr
              : r.op == Requirement::NotExists ? v == nullptr
              : r.op == Requirement::Equals    ? v && value == r.value
                                               : !v || value != r.value;
    if (!ok) return false;
  }
  return true;
}

bool metadata_only(std::string_view accept) { return accept.find("as=PartialObjectMetadata") != std::string_view::npos; }

json::value partial_metadata(const json::value& object) {
  json::object out{{"apiVersion", "meta.k8s.io/v1"}, {"kind", "PartialObjectMetadata"}};
  if (const auto* m = object.as_object().if_contains("metadata")) out["metadata"] = *m;
  return out;
}

}  // namespace

std::string FakeApi::Ref::item_path() const {
  return prefix + (namespace_.empty() ? "" : "/namespaces/" + namespace_) + "/" + resource + "/" + name;
}

FakeApi::FakeApi(asio::any_io_executor executor)
    : executor_(std::move(executor)) {}

ApiError FakeApi::status_error(int http_status, std::string message) {
  ApiError e;
  e.kind = ApiError::Kind::Status;
  e.http_status = http_status;
  e.status.code = http_status;
  e.status.status = "Failure";
  e.status.reason = reason_for(http_status);
  e.status.message = message;
  e.message = message.empty() ? std::to_string(http_status) + " " + e.status.reason : std::move(message);
  return e;
}

std::optional<FakeApi::Ref> FakeApi::parse(std::string_view path) const {
  path = without_query(path);
  std::vector<std::string> parts;
  for (std::size_t at = 0; at < path.size();) {
    std::size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > at) parts.emplace_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  Ref ref;
  std::size_t next;
  if (parts.size() >= 2 && parts[0] == "api") {
    ref.prefix = "/api/" + parts[1];
    next = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    ref.prefix = "/apis/" + parts[1] + "/" + parts[2];
    next = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(next), parts.end());
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    ref.namespace_ = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.empty() || rest.size() > 3) return std::nullopt;
  ref.resource = rest[0];
  if (rest.size() > 1) ref.name = rest[1];
  if (rest.size() > 2) ref.subresource = rest[2];
  return ref;
}

std::optional<ApiError> FakeApi::begin(const char* verb, const std::string& path, json::value body,
                                       std::string content_type, std::string resource_version) {
  requests_.push_back(Request{verb, path, std::move(content_type), std::move(body), std::move(resource_version)});
  auto queued = failures_.find({verb, std::string(without_query(path))});
  if (queued == failures_.end() || queued->second.empty()) return std::nullopt;
  ApiError e = std::move(queued->second.front());
  queued->second.pop_front();
  e.message = std::string(verb) + " " + path + ": " + e.message;
  return e;
}

// A request to a server takes at least a turn of the reactor; so does each one here.
asio::awaitable<void> FakeApi::turn() {
  auto executor = co_await asio::this_coro::executor;
  co_await asio::post(executor, asio::use_awaitable);
}

void FakeApi::fail_next(std::string verb, std::string_view path, ApiError error) {
  failures_[{std::move(verb), std::string(without_query(path))}].push_back(std::move(error));
}

std::size_t FakeApi::count(std::string_view verb, std::string_view path) const {
  return std::count_if(requests_.begin(), requests_.end(), [&](const Request& r) {
    return r.verb == verb && (path.empty() || without_query(r.path) == path);
  });
}

std::size_t FakeApi::count_under(std::string_view verb, std::string_view prefix) const {
  return std::count_if(requests_.begin(), requests_.end(),
                       [&](const Request& r) { return r.verb == verb && r.path.starts_with(prefix); });
}

void FakeApi::hold_watches(bool hold) {
  held_ = hold;
  if (!hold) wake();
}

void FakeApi::end_watches() {
  ++watch_epoch_;
  wake();
}

void FakeApi::bookmark() {
  ++bookmark_epoch_;
  wake();
}

void FakeApi::compact() { compacted_ = resource_version_; }  // open watches keep their place in the log

void FakeApi::stall_watches() {
  ++stall_epoch_;
  wake();
}

void FakeApi::wake() {
  for (auto* timer : sleeping_) timer->cancel();
}

const json::value* FakeApi::object(std::string_view path) const {
  auto ref = parse(path);
  if (!ref) return nullptr;
  auto it = objects_.find(ref->item_path());
  return it == objects_.end() ? nullptr : &it->second;
}

void FakeApi::log(const Ref& ref, WatchEventType type, const json::value& object) {
  log_.push_back(Logged{ref, type, object, resource_version_});
  wake();
}

json::value FakeApi::store(const Ref& ref, const json::value* old, json::value next) {
  auto& meta = metadata_of(next);
  meta["name"] = ref.name;
  if (!ref.namespace_.empty()) meta["namespace"] = ref.namespace_;
  else meta.erase("namespace");
  if (old) {
    const auto& was = old->as_object().at("metadata").as_object();
    for (const char* kept : {"uid", "creationTimestamp", "resourceVersion", "generation"})
      if (const auto* v = was.if_contains(kept)) meta[kept] = *v;
    if (const auto* d = was.if_contains("deletionTimestamp")) meta["deletionTimestamp"] = *d;
    if (next == *old) return next;  // nothing changed: no new resourceVersion, no event
    const json::value* old_spec = old->as_object().if_contains("spec");
    const json::value* new_spec = next.as_object().if_contains("spec");
    bool spec_changed = (old_spec == nullptr) != (new_spec == nullptr) || (old_spec && *old_spec != *new_spec);
    std::int64_t generation = was.contains("generation") ? was.at("generation").to_number<std::int64_t>() : 1;
    meta["generation"] = spec_changed ? generation + 1 : generation;
  } else {
    if (text_at(next, {"metadata", "uid"}).empty()) meta["uid"] = "uid-" + std::to_string(++uids_);
    if (text_at(next, {"metadata", "creationTimestamp"}).empty())
      meta["creationTimestamp"] = stowage::rfc3339(stowage::WallClock::now());
    meta["generation"] = 1;
  }
  meta["resourceVersion"] = std::to_string(++resource_version_);
  // The last finalizer of an object being deleted is gone: the object goes.
  const auto* finalizers = meta.if_contains("finalizers");
  bool held = finalizers && finalizers->is_array() && !finalizers->as_array().empty();
  if (meta.contains("deletionTimestamp") && !held) {
    std::string path = ref.item_path();
    objects_.erase(path);
    refs_.erase(path);
    log(ref, WatchEventType::Deleted, next);
    return next;
  }
  std::string path = ref.item_path();
  objects_[path] = next;
  refs_[path] = ref;
  log(ref, old ? WatchEventType::Modified : WatchEventType::Added, next);
  return next;
}

void FakeApi::drop(const Ref& ref, json::value last) {
  metadata_of(last)["resourceVersion"] = std::to_string(++resource_version_);
  objects_.erase(ref.item_path());
  refs_.erase(ref.item_path());
  log(ref, WatchEventType::Deleted, last);
}

json::value FakeApi::put(std::string_view collection_path, json::value object) {
  auto ref = parse(collection_path);
  if (!ref || !ref->name.empty() || !object.is_object())
    throw std::invalid_argument("FakeApi::put: not a collection path or not an object");
  ref->name = text_at(object, {"metadata", "name"});
  if (ref->namespace_.empty()) ref->namespace_ = text_at(object, {"metadata", "namespace"});
  auto it = objects_.find(ref->item_path());
  if (it == objects_.end()) return store(*ref, nullptr, std::move(object));
  json::value old = it->second;
  // Another client's update: uid and creationTimestamp stay unless it names others (a new object).
  std::string uid = text_at(object, {"metadata", "uid"});
  if (!uid.empty() && uid != text_at(old, {"metadata", "uid"})) {
    drop(*ref, old);
    return store(*ref, nullptr, std::move(object));
  }
  return store(*ref, &old, std::move(object));
}

void FakeApi::erase(std::string_view path) {
  auto ref = parse(path);
  if (!ref) return;
  auto it = objects_.find(ref->item_path());
  if (it != objects_.end()) drop(*ref, it->second);
}

FakeApi::Awaitable<json::value> FakeApi::get(std::string path) {
  auto failed = begin("get", path, nullptr);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(path);
  if (!ref || ref->name.empty())
    co_return Err(status_error(404, "get " + path + ": the server could not find the requested resource"));
  auto it = objects_.find(ref->item_path());
  if (it == objects_.end())
    co_return Err(status_error(404, "get " + path + ": " + ref->resource + " \"" + ref->name + "\" not found"));
  co_return it->second;
}

FakeApi::Awaitable<json::value> FakeApi::list(std::string path, stowage::kube::ListOptions options) {
  auto failed = begin("list", path, nullptr, "", options.resource_version);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(path);
  if (!ref || !ref->name.empty()) co_return Err(status_error(404, "list " + path + ": not a collection"));
  auto selector = parse_selector(options.label_selector);
  if (!selector)
    co_return Err(
        status_error(400, "list " + path + ": FakeApi does not support the selector " + options.label_selector));
  if (!options.field_selector.empty())
    co_return Err(status_error(400, "list " + path + ": FakeApi does not support field selectors"));
  std::vector<const json::value*> matching;
  for (const auto& [item, object] : objects_) {
    const Ref& r = refs_.at(item);
    if (r.prefix == ref->prefix && r.resource == ref->resource &&
        (ref->namespace_.empty() || r.namespace_ == ref->namespace_) && selected(object, *selector))
      matching.push_back(&object);
  }
  std::size_t from = options.continue_token.empty() ? 0 : std::stoul(options.continue_token);
  std::size_t to = options.limit > 0 ? std::min(matching.size(), from + static_cast<std::size_t>(options.limit))
                                     : matching.size();
  json::array items;
  for (std::size_t i = from; i < to; ++i)
    items.push_back(metadata_only(options.accept) ? partial_metadata(*matching[i]) : *matching[i]);
  json::object meta{{"resourceVersion", std::to_string(resource_version_)}};
  if (to < matching.size()) meta["continue"] = std::to_string(to);
  co_return json::value(
      json::object{{"kind", "List"}, {"apiVersion", "v1"}, {"metadata", std::move(meta)}, {"items", std::move(items)}});
}

FakeApi::Awaitable<json::value> FakeApi::create(std::string collection_path, json::value object) {
  auto failed = begin("create", collection_path, object);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(collection_path);
  if (!ref || !ref->name.empty() || !object.is_object())
    co_return Err(status_error(400, "create " + collection_path + ": not a collection, or the body is not an object"));
  ref->name = text_at(object, {"metadata", "name"});
  if (ref->name.empty()) {
    std::string generate = text_at(object, {"metadata", "generateName"});
    if (generate.empty())
      co_return Err(status_error(422, "create " + collection_path + ": metadata.name: Required value"));
    ref->name = generate + std::to_string(++uids_);
  }
  std::string body_ns = text_at(object, {"metadata", "namespace"});
  if (!body_ns.empty() && body_ns != ref->namespace_)
    co_return Err(
        status_error(400, "create " + collection_path + ": the namespace of the object does not match the path"));
  if (objects_.count(ref->item_path()))
    co_return Err(status_error(
        409, "create " + collection_path + ": " + ref->resource + " \"" + ref->name + "\" already exists"));
  object.as_object().erase("status");  // the status subresource is written on its own
  for (const char* server_set : {"uid", "resourceVersion", "generation", "deletionTimestamp"})
    metadata_of(object).erase(server_set);
  co_return store(*ref, nullptr, std::move(object));
}

FakeApi::Awaitable<json::value> FakeApi::replace(std::string path, json::value object) {
  auto failed = begin("update", path, object);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(path);
  if (!ref || ref->name.empty() || !object.is_object())
    co_return Err(status_error(400, "update " + path + ": bad request"));
  auto it = objects_.find(ref->item_path());
  if (it == objects_.end()) co_return Err(status_error(404, "update " + path + ": not found"));
  json::value old = it->second;
  std::string rv = text_at(object, {"metadata", "resourceVersion"});
  if (!rv.empty() && rv != text_at(old, {"metadata", "resourceVersion"}))
    co_return Err(status_error(
        409, "update " + path +
                 ": the object has been modified; please apply your changes to the latest version and try again"));
  json::value next = old;
  if (ref->subresource == "status") {
    if (const auto* s = object.as_object().if_contains("status")) next.as_object()["status"] = *s;
    else next.as_object().erase("status");
  } else {
    next = std::move(object);
    if (const auto* s = old.as_object().if_contains("status")) next.as_object()["status"] = *s;
    else next.as_object().erase("status");
  }
  co_return store(*ref, &old, std::move(next));
}

FakeApi::Awaitable<json::value> FakeApi::patch(std::string path, std::string content_type, json::value body) {
  auto failed = begin("patch", path, body, content_type);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(path);
  if (!ref || ref->name.empty()) co_return Err(status_error(400, "patch " + path + ": bad request"));
  auto it = objects_.find(ref->item_path());
  if (it == objects_.end())
    co_return Err(status_error(404, "patch " + path + ": " + ref->resource + " \"" + ref->name + "\" not found"));
  json::value old = it->second;
  json::value patched;
  try {
    if (content_type == stowage::kube::kMergePatch || content_type == "application/strategic-merge-patch+json")
      patched = merge_patch(old, body);
    else if (content_type == stowage::kube::kJsonPatch)
      patched = json_patch(old, body);
    else
      co_return Err(status_error(415, "patch " + path + ": unsupported content type " + content_type));
  } catch (const PatchRefused& refused) {
    co_return Err(status_error(refused.status, "patch " + path + ": " + refused.message));
  }
  if (!patched.is_object()) co_return Err(status_error(422, "patch " + path + ": the result is not an object"));
  std::string rv = text_at(patched, {"metadata", "resourceVersion"});
  if (rv != text_at(old, {"metadata", "resourceVersion"}))
    co_return Err(status_error(
        409, "patch " + path +
                 ": the object has been modified; please apply your changes to the latest version and try again"));
  json::value next = old;
  if (ref->subresource == "status") {
    if (const auto* s = patched.as_object().if_contains("status")) next.as_object()["status"] = *s;
    else next.as_object().erase("status");
  } else {
    next = std::move(patched);
    if (const auto* s = old.as_object().if_contains("status")) next.as_object()["status"] = *s;
    else next.as_object().erase("status");
  }
  co_return store(*ref, &old, std::move(next));
}

FakeApi::Awaitable<json::value> FakeApi::remove(std::string path, json::value delete_options) {
  auto failed = begin("delete", path, delete_options);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(path);
  if (!ref || ref->name.empty()) co_return Err(status_error(400, "delete " + path + ": bad request"));
  auto it = objects_.find(ref->item_path());
  if (it == objects_.end())
    co_return Err(status_error(404, "delete " + path + ": " + ref->resource + " \"" + ref->name + "\" not found"));
  json::value old = it->second;
  for (const char* field : {"uid", "resourceVersion"}) {
    std::string wanted = text_at(delete_options, {"preconditions", field});
    std::string actual = text_at(old, {"metadata", field});
    if (!wanted.empty() && wanted != actual)
      co_return Err(status_error(409, "delete " + path + ": Precondition failed: " + field +
                                          " in precondition: " + wanted + ", " + field + " in object meta: " + actual));
  }
  const auto* finalizers = old.as_object().at("metadata").as_object().if_contains("finalizers");
  if (finalizers && finalizers->is_array() && !finalizers->as_array().empty()) {
    if (!text_at(old, {"metadata", "deletionTimestamp"}).empty()) co_return old;
    json::value next = old;
    metadata_of(next)["deletionTimestamp"] = stowage::rfc3339(stowage::WallClock::now());
    metadata_of(next)["deletionGracePeriodSeconds"] = 0;
    co_return store(*ref, &old, std::move(next));
  }
  drop(*ref, old);
  co_return old;
}

FakeApi::Awaitable<stowage::Ok> FakeApi::watch(std::string path, stowage::kube::WatchOptions options,
                                              std::function<bool(WatchEvent)> on_event) {
  auto failed = begin("watch", path, nullptr, "", options.resource_version);
  co_await turn();
  if (failed) co_return Err(*failed);
  auto ref = parse(path);
  if (!ref || !ref->name.empty()) co_return Err(status_error(404, "watch " + path + ": not a collection"));
  auto selector = parse_selector(options.label_selector);
  if (!selector)
    co_return Err(
        status_error(400, "watch " + path + ": FakeApi does not support the selector " + options.label_selector));
  if (!options.field_selector.empty())
    co_return Err(status_error(400, "watch " + path + ": FakeApi does not support field selectors"));
  std::uint64_t after = options.resource_version.empty() ? resource_version_ : std::stoull(options.resource_version);
  if (after < compacted_) {
    // As the API server answers: HTTP 200, then one ERROR event holding the Status, then the end.
    std::string message = "too old resource version: " + std::to_string(after) + " (" + std::to_string(compacted_) + ")";
    json::value status = json::object{{"kind", "Status"},       {"apiVersion", "v1"},  {"metadata", json::object()},
                                      {"status", "Failure"},    {"message", message}, {"reason", "Expired"},
                                      {"code", 410}};
    WatchEvent event;
    event.type = WatchEventType::Error;
    event.status = stowage::kube::parse_api_status(status);
    event.object = std::move(status);
    on_event(std::move(event));
    co_return stowage::Ok{};
  }
  std::size_t cursor = 0;
  while (cursor < log_.size() && log_[cursor].resource_version <= after) ++cursor;
  const std::uint64_t epoch = watch_epoch_, stall_epoch = stall_epoch_;
  std::uint64_t bookmarks_seen = bookmark_epoch_;
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  ++open_watches_;
  sleeping_.insert(&sleep);
  struct Closing {
    FakeApi& api;
    asio::steady_timer* sleep;
    ~Closing() {
      --api.open_watches_;
      api.sleeping_.erase(sleep);
    }
  } closing{*this, &sleep};
  auto last_byte = std::chrono::steady_clock::now();
  for (;;) {
    bool stalled = stall_epoch != stall_epoch_;
    while (!stalled && !held_ && cursor < log_.size()) {
      Logged change = log_[cursor++];
      const Ref& r = change.ref;
      if (r.prefix != ref->prefix || r.resource != ref->resource ||
          (!ref->namespace_.empty() && r.namespace_ != ref->namespace_) || !selected(change.object, *selector))
        continue;
      WatchEvent event;
      event.type = change.type;
      event.resource_version = std::to_string(change.resource_version);
      event.object = metadata_only(options.accept) ? partial_metadata(change.object) : std::move(change.object);
      last_byte = std::chrono::steady_clock::now();
      if (!on_event(std::move(event))) co_return stowage::Ok{};
    }
    if (!stalled && !held_ && bookmarks_seen != bookmark_epoch_) {
      bookmarks_seen = bookmark_epoch_;
      if (options.allow_bookmarks) {
        WatchEvent event;
        event.type = WatchEventType::Bookmark;
        event.resource_version = std::to_string(resource_version_);
        event.object = json::object{{"metadata", {{"resourceVersion", event.resource_version}}}};
        last_byte = std::chrono::steady_clock::now();
        if (!on_event(std::move(event))) co_return stowage::Ok{};
      }
    }
    if (!stalled && epoch != watch_epoch_) co_return stowage::Ok{};
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) co_return stowage::Ok{};
    auto deadline = std::chrono::steady_clock::time_point::max();
    if (options.idle_timeout > std::chrono::milliseconds(0)) {
      deadline = last_byte + options.idle_timeout;
      if (std::chrono::steady_clock::now() >= deadline) {
        // As ApiClient ends a watch whose connection went silent.
        ApiError idle;
        idle.kind = ApiError::Kind::Transport;
        idle.transport_transient = true;
        idle.watch_idle = true;
        idle.message = "watch " + path + ": no byte for " + std::to_string(options.idle_timeout.count()) +
                       " ms (idle timeout); the connection was closed";
        co_return Err(idle);
      }
    }
    sleep.expires_at(deadline);
    auto [ec] = co_await sleep.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;  // woken by a change, a release, end_watches(), a bookmark, the deadline or a cancellation
  }
}

}  // namespace test_support
