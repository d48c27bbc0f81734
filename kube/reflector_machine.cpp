// The reflector state machine. See the header for the rules; this file only applies them.
#include "kube/reflector_machine.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <utility>

namespace stowage::kube {
namespace {

namespace json = boost::json;

bool retriable_status(std::int64_t code) { return code == 429 || code >= 500; }

StatusKind kind_of(const RequestFailure& failure) {
  if (failure.http_status == 0) return StatusKind::Other;
  ApiStatus status = failure.status;
  if (status.code == 0) status.code = failure.http_status;
  return classify_status(status);
}

std::string describe(const ApiStatus& status) {
  std::string out = status.reason;
  if (!status.message.empty()) out += (out.empty() ? "" : ": ") + status.message;
  return out;
}

std::string describe(const RequestFailure& failure) {
  if (!failure.message.empty()) return failure.message;
  if (failure.http_status == 0) {
    return "transport error" + (failure.transport_error.empty() ? std::string() : ": " + failure.transport_error);
  }
  std::string out = "HTTP " + std::to_string(failure.http_status);
  std::string status = describe(failure.status);
  return status.empty() ? out : out + " (" + status + ")";
}

// "90 s", "2500 ms": how long a watch was silent, for the log.
std::string describe(Millis d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// A server's delay in seconds as Millis, capped at a day before the conversion so that a huge value
// (the Status's retryAfterSeconds is any int64 the server sends) cannot overflow; fail() caps it
// further at retry_after_cap.
Millis server_delay(std::int64_t seconds) { return Millis(std::min<std::int64_t>(seconds, 86'400) * 1000); }

std::optional<Millis> retry_after_of(const RequestFailure& failure) {
  if (failure.retry_after) return server_delay(failure.retry_after->count());
  if (failure.status.retry_after_seconds > 0) return server_delay(failure.status.retry_after_seconds);
  return std::nullopt;
}

// A list of one action. (Built in place: GCC 12 at -O2 reports a false maybe-uninitialized when a
// temporary variant is moved into the vector.)
template <class Action>
ReflectorActions one(Action action) {
  ReflectorActions actions;
  actions.emplace_back(std::in_place_type<Action>, std::move(action));
  return actions;
}

std::optional<Millis> retry_after_of(const ApiStatus& status) {
  if (status.retry_after_seconds > 0) return server_delay(status.retry_after_seconds);
  return std::nullopt;
}

}  // namespace

ParseResult<ListPage> parse_list_page(json::value body) {
  if (!body.is_object()) return Err(ParseError{"", "a list response must be a JSON object"});
  json::object& o = body.get_object();
  ListPage page;
  if (json::value* items = o.if_contains("items"); items && !items->is_null()) {
    if (!items->is_array()) return Err(ParseError{"items", "expected an array"});
    page.items.reserve(items->get_array().size());
    for (json::value& item : items->get_array()) page.items.push_back(std::move(item));
  }
  if (json::value* metadata = o.if_contains("metadata"); metadata && !metadata->is_null()) {
    if (!metadata->is_object()) return Err(ParseError{"metadata", "expected an object"});
    const std::pair<const char*, std::string*> fields[] = {{"resourceVersion", &page.resource_version},
                                                           {"continue", &page.continue_token}};
    for (auto [key, out] : fields) {
      json::value* v = metadata->get_object().if_contains(key);
      if (!v || v->is_null()) continue;
      if (!v->is_string()) return Err(ParseError{std::string("metadata.") + key, "expected a string"});
      *out = std::string(v->get_string());
    }
  }
  return page;
}

ReflectorMachine::ReflectorMachine(ReflectorOptions options, Clock clock)
    : options_(std::move(options)),
      clock_(std::move(clock)),
      rng_(options_.seed),
      backoff_base_(options_.backoff_initial) {
  // A zero base or timeout would divide by zero in the draws below.
  options_.backoff_initial = std::max(options_.backoff_initial, Millis(1));
  options_.backoff_cap = std::max(options_.backoff_cap, options_.backoff_initial);
  options_.min_watch_timeout = std::max(options_.min_watch_timeout, std::chrono::seconds(1));
  options_.page_size = std::max<std::int64_t>(options_.page_size, 0);
  backoff_base_ = options_.backoff_initial;
}

ReflectorActions ReflectorMachine::start() {
  if (phase_ != Phase::Idle) return ignore();
  if (!options_.resume_resource_version.empty()) {
    last_rv_ = options_.resume_resource_version;
    return watch();
  }
  return list_from_scratch();
}

ReflectorActions ReflectorMachine::on_list_page(ListPage page) {
  if (phase_ != Phase::Listing) return ignore();
  // Every page of one list carries the snapshot's resourceVersion; keep the first page's.
  if (list_request_.continue_token.empty()) list_rv_ = page.resource_version;
  if (list_items_.empty()) {
    list_items_ = std::move(page.items);
  } else {
    list_items_.insert(list_items_.end(), std::make_move_iterator(page.items.begin()),
                       std::make_move_iterator(page.items.end()));
  }
  if (!page.continue_token.empty()) {
    list_request_ = ListRequest{"", options_.page_size, std::move(page.continue_token)};
    return one(list_request_);
  }

  ReflectorActions actions;
  actions.emplace_back(std::in_place_type<ReplaceStore>, std::move(list_items_), list_rv_);
  list_items_.clear();
  rv_unavailable_ = false;
  list_fell_back_ = false;
  mark_synced(actions);
  if (!list_rv_.empty() && list_rv_ != last_rv_) actions.emplace_back(std::in_place_type<Checkpoint>, list_rv_);
  last_rv_ = list_rv_;
  ReflectorActions next = watch();
  actions.insert(actions.end(), std::make_move_iterator(next.begin()), std::make_move_iterator(next.end()));
  return actions;
}

ReflectorActions ReflectorMachine::on_list_failed(const RequestFailure& failure) {
  if (phase_ != Phase::Listing) return ignore();
  const std::string reason = "list failed: " + describe(failure);
  if (kind_of(failure) == StatusKind::Other) return fail(Next::Relist, retry_after_of(failure), reason);

  // Expired or TooLarge: the resourceVersion or continue token is unusable; list again with "".
  // client-go does this at once (the pager and the reflector each fall back once); a second time,
  // or when the failed request already was a quorum read from the first page, it waits.
  rv_unavailable_ = true;
  const bool was_from_scratch = list_request_.resource_version.empty() && list_request_.continue_token.empty();
  if (!list_fell_back_ && !was_from_scratch) {
    list_fell_back_ = true;
    return list_from_scratch();
  }
  return fail(Next::Relist, retry_after_of(failure), reason);
}

ReflectorActions ReflectorMachine::on_watch_opened() {
  if (phase_ != Phase::Watching) return ignore();
  watch_started_at_ = clock_();
  return {};
}

ReflectorActions ReflectorMachine::on_watch_event(WatchEvent event) {
  if (phase_ != Phase::Watching) return ignore();
  ++watch_events_;
  ReflectorActions actions;
  switch (event.type) {
    case WatchEventType::Error: {
      const std::string reason =
          "watch ERROR event: " + std::to_string(event.status.code) + " " + describe(event.status);
      if (classify_status(event.status) != StatusKind::Other) {
        rv_unavailable_ = true;
        return fail(Next::Relist, retry_after_of(event.status), reason);
      }
      return fail(retriable_status(event.status.code) ? Next::Rewatch : Next::Relist, retry_after_of(event.status),
                  reason);
    }
    case WatchEventType::Bookmark:
      break;
    case WatchEventType::Added:
    case WatchEventType::Modified:
    case WatchEventType::Deleted:
      actions.emplace_back(std::in_place_type<ApplyEvent>, event.type, std::move(event.object), event.resource_version);
      break;
  }
  mark_synced(actions);
  move_resource_version(event.resource_version, actions);
  return actions;
}

ReflectorActions ReflectorMachine::on_watch_ended() {
  if (phase_ != Phase::Watching) return ignore();
  const auto lasted = std::chrono::duration_cast<Millis>(clock_() - watch_started_at_);
  if (watch_events_ == 0 && lasted < options_.short_watch) {
    return fail(Next::Rewatch, std::nullopt,
                "the watch closed after " + std::to_string(lasted.count()) + " ms without any event");
  }
  ReflectorActions actions;
  mark_synced(actions);
  ReflectorActions next = watch();
  actions.insert(actions.end(), std::make_move_iterator(next.begin()), std::make_move_iterator(next.end()));
  return actions;
}

ReflectorActions ReflectorMachine::on_watch_failed(const RequestFailure& failure) {
  if (phase_ != Phase::Watching) return ignore();
  const std::string reason = "watch failed: " + describe(failure);
  if (kind_of(failure) != StatusKind::Other) {
    rv_unavailable_ = true;
    return fail(Next::Relist, retry_after_of(failure), reason);
  }
  const bool retriable = failure.http_status == 0 || retriable_status(failure.http_status);
  return fail(retriable ? Next::Rewatch : Next::Relist, retry_after_of(failure), reason);
}

ReflectorActions ReflectorMachine::on_watch_stream_error(const WatchStreamError& error) {
  if (phase_ != Phase::Watching) return ignore();
  return fail(Next::Relist, std::nullopt, "watch stream: " + error.to_string());
}

ReflectorActions ReflectorMachine::on_idle_timeout() {
  if (phase_ != Phase::Watching) return ignore();
  ReflectorActions actions =
      fail(Next::Rewatch, std::nullopt,
           "no byte on the watch for " + describe(watch_idle_) +
               " (no event, no bookmark: a stalled or half-open connection); watching again from resourceVersion " +
               (last_rv_.empty() ? std::string("\"\"") : last_rv_));
  std::get<Wait>(actions.front()).routine = true;
  return actions;
}

ReflectorActions ReflectorMachine::on_timer() {
  if (phase_ != Phase::Waiting) return ignore();
  return after_wait_ == Next::Relist ? list_from_scratch() : watch();
}

ReflectorActions ReflectorMachine::list_from_scratch() {
  phase_ = Phase::Listing;
  list_items_.clear();
  list_rv_.clear();
  list_request_ = ListRequest{relist_resource_version(), options_.page_size, ""};
  return one(list_request_);
}

ReflectorActions ReflectorMachine::watch() {
  phase_ = Phase::Watching;
  watch_started_at_ = clock_();
  watch_events_ = 0;
  const auto min = options_.min_watch_timeout.count();
  const std::int64_t timeout = min + static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(min));
  const Millis bound = std::chrono::seconds(timeout) + options_.idle_timeout_margin;
  const Millis idle = options_.watch_idle_timeout > Millis(0) ? std::min(options_.watch_idle_timeout, bound) : bound;
  watch_idle_ = idle;
  return one(WatchRequest{last_rv_, timeout, true, idle});
}

ReflectorActions ReflectorMachine::fail(Next next, std::optional<Millis> retry_after, std::string reason) {
  const Millis base = step_backoff();
  Millis delay;
  if (retry_after && *retry_after > Millis(0)) {
    delay = std::min(*retry_after, options_.retry_after_cap);
  } else {
    delay = base + Millis(static_cast<Millis::rep>(rng_() % static_cast<std::uint64_t>(base.count())));
  }
  phase_ = Phase::Waiting;
  after_wait_ = next;
  return one(Wait{delay, std::move(reason)});
}

Millis ReflectorMachine::step_backoff() {
  const auto now = clock_();
  if (!last_failure_at_ || now - *last_failure_at_ > options_.backoff_reset_after) {
    backoff_base_ = options_.backoff_initial;
  }
  last_failure_at_ = now;
  const Millis base = backoff_base_;
  backoff_base_ = std::min(backoff_base_ * 2, options_.backoff_cap);
  return base;
}

ReflectorActions ReflectorMachine::ignore() {
  ++ignored_;
  return {};
}

std::string ReflectorMachine::relist_resource_version() const {
  if (rv_unavailable_) return "";
  return last_rv_.empty() ? "0" : last_rv_;
}

void ReflectorMachine::move_resource_version(const std::string& rv, ReflectorActions& actions) {
  if (rv.empty() || rv == last_rv_) return;
  last_rv_ = rv;
  actions.emplace_back(std::in_place_type<Checkpoint>, rv);
}

void ReflectorMachine::mark_synced(ReflectorActions& actions) {
  if (synced_) return;
  synced_ = true;
  actions.emplace_back(std::in_place_type<Synced>);
}

}  // namespace stowage::kube
