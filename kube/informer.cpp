// The informer's run loop: performs the reflector machine's actions with the API client.
#include "kube/informer.hpp"
#include "kube/json_path.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "kube/api.hpp"

namespace stowage::kube {

namespace json = boost::json;

namespace {

// The longest a first list's hand-over runs before it lets the reactor turn.
constexpr auto kFillSlice = std::chrono::milliseconds(1);

}  // namespace

// Lets the reactor turn once the current slice of work has run for kFillSlice.
class Informer::Pacer {
 public:
  explicit Pacer(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  bool due() const { return std::chrono::steady_clock::now() - slice_start_ >= kFillSlice; }
  // Lets the reactor turn and starts a new slice; false when the informer is gone or stopping
  // meanwhile (the caller returns).
  boost::asio::awaitable<bool> yield(const State& st);

 private:
  boost::asio::any_io_executor executor_;
  std::chrono::steady_clock::time_point slice_start_ = std::chrono::steady_clock::now();
};

namespace {

std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

RequestFailure failure_of(const ApiError& e) {
  RequestFailure f;
  f.http_status = e.http_status;
  f.retry_after = e.retry_after;
  f.status = e.status;
  if (e.http_status == 0) f.transport_error = e.message;
  f.message = e.message;
  return f;
}

}  // namespace

struct Informer::State {
  explicit State(boost::asio::any_io_executor ex, ReflectorOptions options)
      : timer(ex), machine(std::move(options), [] { return std::chrono::steady_clock::now(); }) {}
  boost::asio::steady_timer timer;
  boost::asio::cancellation_signal cancel;  // stop(): aborts the request in flight (an idle watch)
  ReflectorMachine machine;
  bool alive = true;     // false once the informer is destroyed
  bool stopping = false;
  bool started = false;
  bool dead = false;       // the loop ended outside stop(): synced() is false from then on
  std::string ended_because;  // why the loop returned by itself, for the liveness report
};

boost::asio::awaitable<bool> Informer::Pacer::yield(const State& st) {
  co_await boost::asio::post(executor_, boost::asio::use_awaitable);
  slice_start_ = std::chrono::steady_clock::now();
  co_return st.alive && !st.stopping;
}

Informer::Informer(boost::asio::any_io_executor executor, Api& api, InformerOptions options,
                   InformerHandlers handlers)
    : executor_(executor),
      api_(api),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      state_(std::make_shared<State>(executor, options_.reflector)) {}

Informer::~Informer() {
  state_->alive = false;
  stop();
}

void Informer::seed(const std::string& namespace_, const std::string& name, const std::string& resource_version) {
  index_[key_of(namespace_, name)] = resource_version;
}

const std::string* Informer::find(const std::string& namespace_, const std::string& name) const {
  auto it = index_.find(key_of(namespace_, name));
  return it == index_.end() ? nullptr : &it->second;
}

bool Informer::synced() const { return state_->machine.synced() && !state_->dead; }

const std::string& Informer::resource_version() const { return state_->machine.resource_version(); }

void Informer::stop() {
  if (state_->stopping) return;
  state_->stopping = true;
  state_->timer.cancel();
  if (state_->started) state_->cancel.emit(boost::asio::cancellation_type::terminal);
}

// Applies one store action but a ReplaceStore (the run loop hands that over in slices); false for
// the request or wait the caller performs next.
bool Informer::apply(ReflectorAction& action) {
  if (auto* e = std::get_if<ApplyEvent>(&action)) {
    apply_event(*e);
  } else if (std::holds_alternative<Synced>(action)) {
    spdlog::info("{}: synced ({} objects)", options_.name, index_.size());
    if (handlers_.synced) handlers_.synced();
  } else if (auto* c = std::get_if<Checkpoint>(&action)) {
    if (handlers_.checkpoint) handlers_.checkpoint(c->resource_version);
  } else {
    return false;
  }
  return true;
}

// A relist: the differences against the index are found first, off to the side; then the new index
// is swapped in and every difference, upserts and removals alike, goes to the handlers, in slices of
// about a millisecond with a turn of the reactor between two (as a first fill's pages do). A relist
// after a 410 may change every object: 10,000 handed over in one turn stalled the reactor for
// 120 ms or more. The price: while a relist is handed over, the handlers' store holds some objects
// in their new state and some in their old one (as client-go's store does while its DeltaFIFO
// drains a Replace); each object is always whole, and no watch event is applied before the
// relist's last difference.
boost::asio::awaitable<void> Informer::replace(ReplaceStore& replace, std::shared_ptr<State> st) {
  if (had_full_list_) ++stats_.relists;
  had_full_list_ = true;
  Pacer pacer(executor_);
  std::unordered_map<std::string, std::string> fresh;
  fresh.reserve(replace.items.size());
  std::vector<json::value*> changed;
  for (auto& item : replace.items) {
    std::string key = key_of(metadata_text(item, "namespace"), metadata_text(item, "name"));
    std::string rv = metadata_text(item, "resourceVersion");
    auto old = index_.find(key);
    if (old == index_.end() || old->second != rv || rv.empty()) changed.push_back(&item);
    fresh[std::move(key)] = std::move(rv);
    if (pacer.due() && !co_await pacer.yield(*st)) co_return;
  }
  std::vector<std::string> gone;
  for (const auto& [key, rv] : index_)
    if (!fresh.count(key)) gone.push_back(key);
  index_ = std::move(fresh);
  for (json::value* item : changed) {
    ++stats_.upserts;
    if (handlers_.upserted) handlers_.upserted(std::move(*item));
    if (pacer.due() && !co_await pacer.yield(*st)) co_return;
  }
  for (const auto& key : gone) {
    auto slash = key.find('/');
    ++stats_.removals;
    if (handlers_.removed) handlers_.removed(key.substr(0, slash), key.substr(slash + 1), json::value());
    if (pacer.due() && !co_await pacer.yield(*st)) co_return;
  }
}

bool Informer::first_fill() const {
  return !had_full_list_ && index_.empty() && options_.reflector.resume_resource_version.empty();
}

// The first list of an informer that does not resume replaces nothing (the store is empty), and no
// one may take the store as complete before the Synced that follows it. So each page's items go to
// the handlers as the page arrives (the list is never held whole: 10,000 parsed objects waiting
// for the last page were most of the peak memory), in slices of about a millisecond with a turn of
// the reactor between two (10,000 objects handed over in one go stalled everything else for 120
// to 350 ms). Slicing by time, not by count: a slow handler gets as many turns as it needs.
boost::asio::awaitable<void> Informer::fill(std::vector<boost::json::value>& items, std::shared_ptr<State> st) {
  Pacer pacer(executor_);
  for (auto& item : items) {
    index_[key_of(metadata_text(item, "namespace"), metadata_text(item, "name"))] =
        metadata_text(item, "resourceVersion");
    ++stats_.upserts;
    if (handlers_.upserted) handlers_.upserted(std::move(item));
    if (pacer.due() && !co_await pacer.yield(*st)) co_return;
  }
}

void Informer::apply_event(ApplyEvent& event) {
  std::string ns = metadata_text(event.object, "namespace"), name = metadata_text(event.object, "name");
  std::string key = key_of(ns, name);
  if (event.type == WatchEventType::Deleted) {
    index_.erase(key);
    ++stats_.removals;
    if (handlers_.removed) handlers_.removed(ns, name, std::move(event.object));
    return;
  }
  index_[key] = event.resource_version;
  ++stats_.upserts;
  if (handlers_.upserted) handlers_.upserted(std::move(event.object));
}

void Informer::start() {
  if (state_->started) return;
  state_->started = true;
  auto st = state_;
  auto run = [this, st]() -> boost::asio::awaitable<void> {
    ReflectorActions actions = st->machine.start();
    for (;;) {
      if (!st->alive || st->stopping) co_return;
      ReflectorAction* next = nullptr;
      // Store actions are applied in this turn, but lists: a relist goes over in slices, a first
      // list in slices page by page, as it arrives (its end then only marks the list complete).
      for (auto& action : actions) {
        if (auto* r = std::get_if<ReplaceStore>(&action)) {
          if (filling_ || first_fill()) {
            filling_ = false;
            had_full_list_ = true;
            co_await fill(r->items, st);
          } else {
            co_await replace(*r, st);
          }
        } else if (!apply(action)) {
          next = &action;
        }
        if (!st->alive) co_return;
      }
      if (!st->alive || st->stopping) co_return;
      if (!next) {
        st->ended_because = "the reflector has nothing to do next (a bug)";
        co_return;
      }
      ReflectorAction action = std::move(*next);

      if (auto* list = std::get_if<ListRequest>(&action)) {
        ++stats_.lists;
        // A list from its first page: a first fill when the store is empty (after a first list that
        // failed part-way, the objects already handed over make the next one a relist).
        if (list->continue_token.empty()) filling_ = first_fill();
        ListOptions lo;
        lo.limit = list->limit;
        lo.continue_token = list->continue_token;
        lo.resource_version = list->resource_version;
        lo.label_selector = options_.label_selector;
        lo.field_selector = options_.field_selector;
        lo.accept = options_.list_accept;
        auto result = co_await api_.list(options_.path, std::move(lo));
        if (!st->alive) co_return;
        if (!result.ok()) {
          actions = st->machine.on_list_failed(failure_of(result.error()));
          continue;
        }
        auto page = parse_list_page(std::move(result.value()));
        if (!page.ok()) {
          RequestFailure f;
          f.transport_error = "the list answer is not a list: " + page.error().to_string();
          actions = st->machine.on_list_failed(f);
          continue;
        }
        last_error_.clear();
        if (filling_) {
          std::vector<json::value> items = std::move(page.value().items);
          page.value().items.clear();
          co_await fill(items, st);
          if (!st->alive || st->stopping) co_return;
        }
        actions = st->machine.on_list_page(std::move(page.value()));
      } else if (auto* watch = std::get_if<WatchRequest>(&action)) {
        ++stats_.watches;
        WatchOptions wo;
        wo.resource_version = watch->resource_version;
        wo.timeout_seconds = watch->timeout_seconds;
        wo.allow_bookmarks = watch->allow_watch_bookmarks;
        wo.label_selector = options_.label_selector;
        wo.field_selector = options_.field_selector;
        wo.accept = options_.watch_accept;
        wo.idle_timeout = watch->idle_timeout;
        ReflectorActions pending;
        bool superseded = false;
        std::function<bool(WatchEvent)> on_event = [&, st](WatchEvent event) -> bool {
          if (!st->alive || st->stopping) return false;
          ++stats_.events;
          last_error_.clear();
          ReflectorActions produced = st->machine.on_watch_event(std::move(event));
          for (auto& action : produced) {
            bool applied = apply(action);
            if (!st->alive) return false;
            if (!applied) {  // a Wait, List or Watch: this watch is over
              pending.clear();
              pending.push_back(std::move(action));
              superseded = true;
              return false;
            }
          }
          return !st->stopping;
        };
        auto result = co_await api_.watch(options_.path, std::move(wo), on_event);
        if (!st->alive) co_return;
        if (superseded) {
          actions = std::move(pending);
        } else if (st->stopping) {
          co_return;
        } else if (result.ok()) {
          actions = st->machine.on_watch_ended();
        } else if (result.error().watch_idle) {
          ++stats_.idle_timeouts;
          actions = st->machine.on_idle_timeout();
        } else if (result.error().kind == ApiError::Kind::Stream) {
          actions = st->machine.on_watch_stream_error(WatchStreamError{0, result.error().message});
        } else {
          actions = st->machine.on_watch_failed(failure_of(result.error()));
        }
      } else if (auto* wait = std::get_if<Wait>(&action)) {
        ++stats_.failures;
        last_error_ = wait->reason;
        spdlog::log(wait->routine ? spdlog::level::info : spdlog::level::warn, "{}: {}; next attempt in {} ms",
                    options_.name, wait->reason, wait->duration.count());
        st->timer.expires_after(wait->duration);
        auto [ec] = co_await st->timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        (void)ec;
        if (!st->alive || st->stopping) co_return;
        actions = st->machine.on_timer();
      } else {
        st->ended_because = "an unexpected reflector action (a bug)";
        co_return;
      }
    }
  };
  // Whatever ends the loop, an exception from a handler included, is caught here, in one place.
  auto stopped = [st] { return !st->alive || st->stopping; };
  auto report = common::loop_completion(options_.name + " informer", stopped, options_.liveness,
                                        [st] { return st->ended_because; });
  auto done = [st, stopped, report = std::move(report)](std::exception_ptr ep) {
    st->dead = !stopped();
    report(ep);
  };
  boost::asio::co_spawn(executor_, run, boost::asio::bind_cancellation_slot(state_->cancel.slot(), done));
}

}  // namespace stowage::kube
