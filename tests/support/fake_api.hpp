#pragma once
// FakeApi — an in-process kube::Api for unit tests: an API server's object store and its write rules,
// without HTTP.
//
// What it keeps as the API server does:
// - Objects by path (namespaced "/apis/g/v/namespaces/ns/plural/name", cluster-wide "/apis/g/v/plural/name",
//   core "/api/v1/..."), each with metadata.uid, metadata.resourceVersion (one counter for all objects),
//   metadata.generation (1 at creation, +1 when spec changes) and creationTimestamp. A write that changes
//   nothing keeps the resourceVersion and sends no watch event.
// - create (409 AlreadyExists), get/list (404; list by collection, all namespaces or one, equality and
//   existence label selectors), update (409 on a stale metadata.resourceVersion), delete (preconditions
//   uid/resourceVersion: 409; an object with finalizers only gets a deletionTimestamp and goes when the
//   last finalizer is removed).
// - patch: JSON merge patch (RFC 7386) and JSON patch (RFC 6902: test, add, remove, replace, "-" for the
//   end of an array). A failed `test` or a missing path is a 422, a malformed patch a 400; `test` with a
//   null value passes on a missing member (as the API server's json-patch does, which the finalizer
//   code relies on).
// - Every resource has a status subresource: ".../status" writes change only `status`, writes of the
//   object itself leave `status` as it was, and create drops it.
// - watch: events of the collection after the given resourceVersion, in order, from a log of every
//   change; it waits for more until the callback returns false, end_watches() is called, or the
//   awaiting coroutine is cancelled (then it ends with Ok). bookmark() sends a BOOKMARK (only
//   metadata.resourceVersion) to the watches that asked for them. After compact(), a watch from a
//   resourceVersion older than the compaction is answered as the API server does: HTTP 200 and one
//   ERROR event holding a 410 Expired Status ("too old resource version: X (Y)"), then the end.
//   Like ApiClient, a watch that delivers nothing (event or bookmark) for WatchOptions::idle_timeout
//   (when not 0) ends with a Transport error with watch_idle set; stall_watches() makes the watches
//   open now go silent with their connection open (a hung server or load balancer). No timeoutSeconds.
// For tests: every request is recorded (verb as ApiClient names it: get, list, create, update, patch,
// delete, watch; the path as asked; the body; the resourceVersion a list or watch asked for); fail_next() makes the next request of a verb on a path
// fail with a given ApiError; hold_watches() keeps changes from reaching watchers (a watch event still
// on its way) until released; put() and erase() change objects as another client would, unrecorded.
//
// Assumes: one thread; the FakeApi outlives the coroutines that use it. Each request takes one turn of
// the executor it is awaited on, as a request to a server would.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube/api.hpp"

namespace test_support {

class FakeApi final : public stowage::kube::Api {
 public:
  struct Request {
    std::string verb;          // get, list, create, update, patch, delete, watch
    std::string path;          // as asked, query included
    std::string content_type;  // patch only
    boost::json::value body;   // create, update and patch: the body; delete: the options; else null
    std::string resource_version;  // list and watch: the resourceVersion asked for ("" = the latest)
  };

  explicit FakeApi(boost::asio::any_io_executor executor);

  // Stores `object` in the collection as another client's create or update would (no request is
  // recorded, status kept): uid, resourceVersion, generation and creationTimestamp are filled in
  // unless given. Returns the stored object.
  boost::json::value put(std::string_view collection_path, boost::json::value object);
  // Deletes the object at `path` at once (finalizers ignored), as a watch would see it go.
  void erase(std::string_view path);
  // The object stored at `path` (query ignored), or nullptr.
  const boost::json::value* object(std::string_view path) const;

  // The next request of `verb` (as in Request) on `path` (query ignored) fails with `error` and does
  // nothing else; several queued for one verb and path fail requests in turn.
  void fail_next(std::string verb, std::string_view path, stowage::kube::ApiError error);
  // The error ApiClient makes of a non-2xx answer: kind Status, `http_status`, and a Status with its reason.
  static stowage::kube::ApiError status_error(int http_status, std::string message = "");

  const std::vector<Request>& requests() const { return requests_; }
  // Requests of `verb` whose path (query ignored) is `path`; "" counts every path.
  std::size_t count(std::string_view verb, std::string_view path = "") const;
  // Requests of `verb` whose path starts with `prefix`.
  std::size_t count_under(std::string_view verb, std::string_view prefix) const;

  // While held, changes are logged but not delivered to watchers; release delivers them in order.
  void hold_watches(bool hold);
  // Ends every open watch with Ok (its owner watches again from its last resourceVersion).
  void end_watches();
  std::size_t open_watches() const { return open_watches_; }
  // Sends a BOOKMARK at the current resourceVersion to every open watch that asked for bookmarks and
  // is neither held nor stalled (the API server sends one about every minute).
  void bookmark();
  // Forgets the change log up to now, as etcd's compaction does: a watch from an older
  // resourceVersion is then answered with 410 Expired. A list is answered as before.
  void compact();
  // The watches open now send nothing more and never end by themselves (no event, no bookmark, not
  // even end_watches()): only their idle timeout or a cancellation ends them. Later watches work.
  void stall_watches();

  Awaitable<boost::json::value> get(std::string path) override;
  Awaitable<boost::json::value> list(std::string path, stowage::kube::ListOptions options = {}) override;
  Awaitable<boost::json::value> create(std::string collection_path, boost::json::value object) override;
  Awaitable<boost::json::value> replace(std::string path, boost::json::value object) override;
  Awaitable<boost::json::value> patch(std::string path, std::string content_type, boost::json::value body) override;
  Awaitable<boost::json::value> remove(std::string path, boost::json::value delete_options = nullptr) override;
  Awaitable<stowage::Ok> watch(std::string path, stowage::kube::WatchOptions options,
                               std::function<bool(stowage::kube::WatchEvent)> on_event) override;

  // A path split as the API server routes it: "/apis/g/v" (or "/api/v1"), namespace, plural, name,
  // subresource.
  struct Ref {
    std::string prefix, namespace_, resource, name, subresource;
    std::string item_path() const;  // prefix[/namespaces/ns]/resource/name
  };

 private:
  using Error = stowage::kube::ApiError;
  struct Logged {
    Ref ref;
    stowage::kube::WatchEventType type;
    boost::json::value object;
    std::uint64_t resource_version;
  };

  // Records the request; returns the error injected for it, if any.
  std::optional<Error> begin(const char* verb, const std::string& path, boost::json::value body,
                             std::string content_type = "", std::string resource_version = "");
  // Wakes every waiting watch (a change, a release, end_watches(), a bookmark, a stall).
  void wake();
  static boost::asio::awaitable<void> turn();
  std::optional<Ref> parse(std::string_view path) const;
  // Stores `next` at ref (a new object when `old` is null): bumps resourceVersion and generation,
  // logs the change; a change that changes nothing is not stored again.
  boost::json::value store(const Ref& ref, const boost::json::value* old, boost::json::value next);
  void drop(const Ref& ref, boost::json::value last);
  void log(const Ref& ref, stowage::kube::WatchEventType type, const boost::json::value& object);

  boost::asio::any_io_executor executor_;
  std::set<boost::asio::steady_timer*> sleeping_;  // each waiting watch's timer: cancel() wakes it
  std::map<std::string, boost::json::value> objects_;  // by item path
  std::map<std::string, Ref> refs_;                     // item path -> its parts
  std::vector<Logged> log_;
  std::uint64_t resource_version_ = 1000;
  std::uint64_t uids_ = 0;
  std::map<std::pair<std::string, std::string>, std::deque<Error>> failures_;
  std::vector<Request> requests_;
  bool held_ = false;
  std::uint64_t compacted_ = 0;  // watches from an older resourceVersion get 410
  std::uint64_t watch_epoch_ = 0, bookmark_epoch_ = 0, stall_epoch_ = 0;
  std::size_t open_watches_ = 0;
};

}  // namespace test_support
