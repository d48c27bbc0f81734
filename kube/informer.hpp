#pragma once
// Informer — one resource's reflector running on the reactor: ReflectorMachine (the rules) +
// Api (list pages and the watch: ApiClient in the process, a fake in tests) + a timer, feeding handlers.
//
// Guarantees:
// - Handlers run on the reactor, in the order the server produced the changes, one at a time:
//   `upserted` for an object that is new or whose resourceVersion moved; `removed` for one that is
//   gone (a DELETED event carries the last state; an object found missing by a relist comes with
//   null); `synced` once, when a complete state has been delivered; `checkpoint` with each
//   resourceVersion worth persisting for a resume.
// - A relist delivers only differences: objects whose resourceVersion did not change are not handed
//   over again, and objects that vanished while the watch was down come as `removed`. The
//   informer's own index is swapped first; then the differences, upserts and removals, go to the
//   handlers in slices of about 1 ms of handler time with a turn of the reactor between two (a
//   relist after a 410 may change all 10,000 objects: in one turn that stalled the reactor for
//   120 ms or more). While a relist is handed over, the handlers' store holds some objects in their
//   new state and some in their old (as client-go's does while its DeltaFIFO drains a Replace);
//   no watch event comes before the relist's last difference. A first list of an informer that
//   does not resume replaces nothing and comes before `synced`, so each page's items go over as
//   the page arrives (the list is never held whole), in the same slices. Should that list fail
//   part-way, the next one is a relist. List pages themselves are parsed in ~1 ms slices by
//   ApiClient (kube/json_slices.hpp).
// - Every failure is logged (warn) with what failed and when the next attempt is, then waited out
//   as the machine says (client-go's backoff, Retry-After); the informer never gives up before
//   stop(). A garbage or truncated watch body makes it relist; nothing crashes.
// - Should its loop end anyway outside stop() (an exception from a handler, a reflector bug), the
//   end is reported to options.liveness ("<name> informer"; null: the process's registry), which
//   makes the process unhealthy; synced() turns false then.
// - A watch that sends no byte for options.reflector.watch_idle_timeout (a stalled, half-open
//   connection: a bookmark would have come) is closed and opened again from the last
//   resourceVersion, logged at info with how long it was silent and counted in stats().idle_timeouts.
// - Memory: the informer keeps one key and one resourceVersion per object; the objects themselves
//   live in the handlers' store (the engine's cache), so each is held once.
//
// Assumes: the Api outlives the informer's requests; destroying the informer (or stop())
// makes its coroutine end at its next step without touching the informer again.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/liveness.hpp"
#include "kube/reflector_machine.hpp"

namespace stowage::kube {

class Api;

inline constexpr const char* kAcceptPartialMetadataList =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
inline constexpr const char* kAcceptPartialMetadata = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

struct InformerOptions {
  std::string name;         // for logs: "backupstorages", "secrets (metadata)"
  std::string path;         // the collection: "/api/v1/secrets" or "/api/v1/namespaces/ns/secrets"
  std::string list_accept;  // "" = application/json; kAcceptPartialMetadataList for metadata only
  std::string watch_accept; // "" = application/json; kAcceptPartialMetadata for metadata only
  std::string label_selector;
  std::string field_selector;
  ReflectorOptions reflector;
  common::Liveness* liveness = nullptr;  // where the loop's end is reported; null: Liveness::process()
};

struct InformerHandlers {
  std::function<void(boost::json::value object)> upserted;
  // namespace, name, and the object as the DELETED event carried it (null after a relist).
  std::function<void(const std::string& namespace_, const std::string& name, boost::json::value last)> removed;
  std::function<void()> synced;
  std::function<void(const std::string& resource_version)> checkpoint;
};

struct InformerStats {
  std::uint64_t lists = 0;         // list requests (pages)
  std::uint64_t relists = 0;       // complete lists after the first
  std::uint64_t watches = 0;       // watch requests
  std::uint64_t events = 0;        // watch events received (bookmarks included)
  std::uint64_t failures = 0;      // Waits
  std::uint64_t idle_timeouts = 0; // watches given up after no byte for the idle timeout
  std::uint64_t upserts = 0, removals = 0;
};

class Informer {
 public:
  Informer(boost::asio::any_io_executor executor, Api& api, InformerOptions options, InformerHandlers handlers);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Restores the keys and resourceVersions a previous run left (for a resume with
  // options.reflector.resume_resource_version): later relists then report what vanished meanwhile.
  void seed(const std::string& namespace_, const std::string& name, const std::string& resource_version);

  void start();
  void stop();

  bool synced() const;
  std::size_t size() const { return index_.size(); }
  // The resourceVersion last delivered for an object; nullptr when the informer does not know it.
  const std::string* find(const std::string& namespace_, const std::string& name) const;
  const InformerStats& stats() const { return stats_; }
  // The last failure ("" once a list or watch has succeeded since): for readiness and logs.
  const std::string& last_error() const { return last_error_; }
  const std::string& resource_version() const;

 private:
  struct State;
  class Pacer;
  bool apply(ReflectorAction& action);
  boost::asio::awaitable<void> replace(ReplaceStore& replace, std::shared_ptr<State> st);
  bool first_fill() const;
  boost::asio::awaitable<void> fill(std::vector<boost::json::value>& items, std::shared_ptr<State> st);
  void apply_event(ApplyEvent& event);

  boost::asio::any_io_executor executor_;
  Api& api_;
  InformerOptions options_;
  InformerHandlers handlers_;
  std::shared_ptr<State> state_;
  std::unordered_map<std::string, std::string> index_;  // "ns/name" -> resourceVersion
  InformerStats stats_;
  std::string last_error_;
  bool had_full_list_ = false;
  bool filling_ = false;  // the list in flight is a first fill: its pages go to the handlers as they come
};

}  // namespace stowage::kube
