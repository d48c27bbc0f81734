// The watch-body splitter: a byte scanner that tracks string state, escapes and a stack of expected
// closers to find where each top-level object ends, then Boost.JSON for the object itself.
// The scanner only finds boundaries; Boost.JSON validates. When Boost.JSON refuses an event, the
// event's text is parsed again one byte at a time to find the offending byte (only on that error
// path, so the normal path parses each event once).
#include "kube/watch_stream.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <utility>

namespace stowage::kube {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxShownChars = 60;

json::parse_options event_parse_options() {
  json::parse_options options;
  options.max_depth = kMaxEventNesting;
  return options;
}

bool is_json_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Which bytes end a plain run: bit 1 inside a string ('"' and '\\'), bit 2 outside one ('"' and the
// four brackets). One table lookup a byte: the scan is a pass over every byte of every event.
constexpr std::array<unsigned char, 256> kRunEnds = [] {
  std::array<unsigned char, 256> t{};
  t[static_cast<unsigned char>('"')] = 1 | 2;
  t[static_cast<unsigned char>('\\')] = 1;
  for (char c : {'{', '}', '[', ']'}) t[static_cast<unsigned char>(c)] = 2;
  return t;
}();
constexpr unsigned char kEndsStringRun = 1, kEndsStructureRun = 2;

// The end of the run of bytes from `pos` that `mask` does not stop.
std::size_t run_end(std::string_view bytes, std::size_t pos, unsigned char mask) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  while (pos < bytes.size() && !(kRunEnds[p[pos]] & mask)) ++pos;
  return pos;
}

// 'x' for printable ASCII, else 0xNN.
std::string show_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[u >> 4] + digits[u & 15];
}

std::string excerpt(std::string_view s) {
  if (s.size() <= kMaxShownChars) return json::serialize(json::string(s));
  return json::serialize(json::string(s.substr(0, kMaxShownChars))) + "...";
}

std::string why_not_an_event_start(char c) {
  if (c == '}' || c == ']') return "unbalanced " + show_byte(c) + " between events";
  return "expected '{' to start an event, got " + show_byte(c);
}

struct SyntaxError {
  std::size_t index;  // of the offending byte within the text
  std::string message;
};

// The first byte at which Boost.JSON rejects `text` (an event from its '{'); nullopt when every byte
// is accepted. Boost.JSON does not report where an error is, so: find the failing block, then feed
// that block one byte at a time. (Each write costs O(nesting depth) to suspend and resume, so
// byte-wise over the whole text could take minutes on a deep 16 MiB event.)
std::optional<SyntaxError> first_syntax_error(std::string_view text) {
  constexpr std::size_t kBlock = 4096;
  std::size_t good = 0;  // bytes before the failing block
  {
    json::stream_parser parser({}, event_parse_options());
    json::error_code ec;
    while (good < text.size()) {
      const std::size_t n = std::min(kBlock, text.size() - good);
      parser.write_some(text.data() + good, n, ec);
      if (ec) break;
      good += n;
    }
    if (!ec) return std::nullopt;
  }
  json::stream_parser parser({}, event_parse_options());
  json::error_code ec;
  if (good > 0) parser.write_some(text.data(), good, ec);
  for (std::size_t i = good; !ec && i < text.size(); ++i) {
    parser.write_some(text.data() + i, 1, ec);
    if (ec) return SyntaxError{i, ec.message()};
  }
  return SyntaxError{good, ec ? ec.message() : "syntax error"};  // not reached: the block failed before
}

const json::value* member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() || it->value().is_null() ? nullptr : &it->value();
}

std::string string_member(const json::object& o, std::string_view key) {
  const json::value* v = member(o, key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t integer_member(const json::object& o, std::string_view key) {
  const json::value* v = member(o, key);
  if (!v) return 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), INT64_MAX));
  return 0;
}

std::optional<WatchEventType> event_type_from(std::string_view s) {
  if (s == "ADDED") return WatchEventType::Added;
  if (s == "MODIFIED") return WatchEventType::Modified;
  if (s == "DELETED") return WatchEventType::Deleted;
  if (s == "BOOKMARK") return WatchEventType::Bookmark;
  if (s == "ERROR") return WatchEventType::Error;
  return std::nullopt;
}

}  // namespace

std::string_view to_string(WatchEventType type) {
  switch (type) {
    case WatchEventType::Added:
      return "ADDED";
    case WatchEventType::Modified:
      return "MODIFIED";
    case WatchEventType::Deleted:
      return "DELETED";
    case WatchEventType::Bookmark:
      return "BOOKMARK";
    case WatchEventType::Error:
      return "ERROR";
  }
  return "UNKNOWN";
}

ApiStatus parse_api_status(const json::value& status) {
  ApiStatus out;
  if (!status.is_object()) return out;
  const json::object& o = status.get_object();
  out.code = integer_member(o, "code");
  out.status = string_member(o, "status");
  out.reason = string_member(o, "reason");
  out.message = string_member(o, "message");
  const json::value* details = member(o, "details");
  if (details && details->is_object()) {
    out.retry_after_seconds = integer_member(details->get_object(), "retryAfterSeconds");
    const json::value* causes = member(details->get_object(), "causes");
    if (causes && causes->is_array()) {
      for (const json::value& cause : causes->get_array()) {
        if (cause.is_object()) out.cause_types.push_back(string_member(cause.get_object(), "reason"));
      }
    }
  }
  return out;
}

StatusKind classify_status(const ApiStatus& status) {
  // client-go's isTooLargeResourceVersionError: the cause, or (servers 1.17.0-1.18.5) the message of a Timeout.
  for (const std::string& cause : status.cause_types) {
    if (cause == "ResourceVersionTooLarge") return StatusKind::TooLarge;
  }
  if ((status.code == 504 || status.reason == "Timeout") &&
      status.message.find("Too large resource version") != std::string::npos) {
    return StatusKind::TooLarge;
  }
  // apierrors.IsResourceExpired || apierrors.IsGone (older servers say Gone).
  if (status.code == 410 || status.reason == "Expired" || status.reason == "Gone") return StatusKind::Expired;
  return StatusKind::Other;
}

std::string_view to_string(StatusKind kind) {
  switch (kind) {
    case StatusKind::Expired:
      return "expired";
    case StatusKind::TooLarge:
      return "too large";
    case StatusKind::Other:
      return "other";
  }
  return "other";
}

Result<WatchEvent, std::string> parse_watch_event(json::value event) {
  if (!event.is_object()) return Err("an event must be a JSON object");
  json::object& o = event.get_object();
  json::value* type = o.if_contains("type");
  if (!type || type->is_null()) return Err("the event has no \"type\"");
  if (!type->is_string()) return Err("the event's \"type\" is not a string");
  std::optional<WatchEventType> parsed_type = event_type_from(type->get_string());
  if (!parsed_type) return Err("unknown event type " + excerpt(type->get_string()));
  json::value* object = o.if_contains("object");
  if (!object || object->is_null())
    return Err(std::string("the ") + std::string(type->get_string()) + " event has no \"object\"");
  if (!object->is_object()) return Err("the event's \"object\" is not a JSON object");

  // Constructed from the object, not assigned: a move assignment between two memory resources
  // (the event's own and the default one) would copy the whole tree.
  WatchEvent out{*parsed_type, std::move(*object), {}, {}};
  if (out.type == WatchEventType::Error) {
    out.status = parse_api_status(out.object);
    return out;
  }
  const json::value* metadata = member(out.object.get_object(), "metadata");
  if (metadata && metadata->is_object())
    out.resource_version = string_member(metadata->get_object(), "resourceVersion");
  return out;
}

std::string WatchStreamError::to_string() const { return "byte " + std::to_string(offset) + ": " + message; }

WatchStreamSplitter::WatchStreamSplitter(std::size_t max_event_bytes)
    : max_event_bytes_(std::max<std::size_t>(max_event_bytes, 2)) {}

WatchStreamFeed WatchStreamSplitter::feed(std::string_view bytes) {
  WatchStreamFeed out;
  std::size_t pos = 0;
  while (!error_ && pos < bytes.size()) {
    if (closers_.empty() && !skip_to_event_start(bytes, pos)) continue;
    scan_event(bytes, pos, out);
  }
  out.error = error_;
  return out;
}

std::optional<WatchStreamError> WatchStreamSplitter::finish() {
  if (!error_ && !closers_.empty()) {
    fail(offset_, "the stream ended inside the event that started at byte " + std::to_string(event_start_));
  }
  return error_;
}

bool WatchStreamSplitter::skip_to_event_start(std::string_view bytes, std::size_t& pos) {
  while (pos < bytes.size() && is_json_whitespace(bytes[pos])) {
    ++pos;
    ++offset_;
  }
  if (pos == bytes.size()) return false;
  if (bytes[pos] != '{') {
    fail(offset_, why_not_an_event_start(bytes[pos]));
    return false;
  }
  event_start_ = offset_;
  in_string_ = escaped_ = false;
  partial_.clear();
  return true;
}

void WatchStreamSplitter::scan_event(std::string_view bytes, std::size_t& pos, WatchStreamFeed& out) {
  const std::size_t begin = pos;                                // this feed's first byte of the event
  const std::uint64_t limit = event_start_ + max_event_bytes_;  // stream offset of the first byte too many
  auto text_so_far = [&] { return partial_ + std::string(bytes.substr(begin, pos - begin)); };

  while (pos < bytes.size()) {
    if (offset_ >= limit) return fail_event_too_large(limit);
    const char c = bytes[pos];
    if (in_string_ && !escaped_ && c != '"' && c != '\\') {
      // Skip the rest of a plain run inside a string in one step (find_first_of, used before, calls
      // memchr once per byte: a third of an event's cost).
      std::size_t stop = run_end(bytes, pos + 1, kEndsStringRun);
      offset_ += stop - pos;
      pos = stop;
      continue;
    }
    if (!in_string_ && !(kRunEnds[static_cast<unsigned char>(c)] & kEndsStructureRun)) {
      // A run of literals, numbers, separators and whitespace between strings and brackets.
      std::size_t stop = run_end(bytes, pos + 1, kEndsStructureRun);
      offset_ += stop - pos;
      pos = stop;
      continue;
    }
    ++pos;
    ++offset_;
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        break;
      case '{':
      case '[':
        if (closers_.size() >= kMaxEventNesting) {
          return fail_inside_event(text_so_far(),
                                   "nesting deeper than " + std::to_string(kMaxEventNesting) + " levels");
        }
        closers_.push_back(c == '{' ? '}' : ']');
        break;
      case '}':
      case ']':
        if (closers_.empty() || c != closers_.back()) {
          return fail_inside_event(text_so_far(),
                                   "mismatched " + show_byte(c) + ", expected " + show_byte(closers_.back()));
        }
        closers_.pop_back();
        if (closers_.empty()) {
          if (partial_.empty()) return complete(bytes.substr(begin, pos - begin), out);
          partial_.append(bytes.substr(begin, pos - begin));
          std::string text = std::move(partial_);
          partial_.clear();
          return complete(text, out);
        }
        break;
      default:
        break;
    }
  }
  if (offset_ > limit) return fail_event_too_large(limit);
  partial_.append(bytes.substr(begin, pos - begin));
}

void WatchStreamSplitter::complete(std::string_view text, WatchStreamFeed& out) {
  json::error_code ec;
  // One block for the whole event's tree instead of an allocation per member and string (freed
  // together once the last holder of the event's values lets go; a holder that keeps a value
  // assigns it into its own storage, which copies).
  json::storage_ptr storage = json::make_shared_resource<json::monotonic_resource>(2 * text.size() + 512);
  json::value value =
      json::parse(json::string_view(text.data(), text.size()), ec, std::move(storage), event_parse_options());
  if (ec) {
    std::optional<SyntaxError> located = first_syntax_error(text);
    if (located) return fail(event_start_ + located->index, "invalid JSON in an event: " + located->message);
    return fail(offset_ - 1, "invalid JSON in an event: " + ec.message());
  }
  Result<WatchEvent, std::string> event = parse_watch_event(std::move(value));
  if (!event.ok()) {
    return fail(event_start_, event.error() + " (the event at bytes " + std::to_string(event_start_) + "-" +
                                  std::to_string(offset_ - 1) + ")");
  }
  out.events.push_back(std::move(event.value()));
}

void WatchStreamSplitter::fail_inside_event(std::string_view text, std::string why) {
  const std::uint64_t at = offset_ - 1;  // the byte just scanned, the last of `text`
  std::optional<SyntaxError> earlier = first_syntax_error(text.substr(0, text.size() - 1));
  if (earlier) return fail(event_start_ + earlier->index, "invalid JSON in an event: " + earlier->message);
  fail(at, std::move(why));
}

void WatchStreamSplitter::fail_event_too_large(std::uint64_t at) {
  fail(at, "the event that started at byte " + std::to_string(event_start_) + " is larger than the limit of " +
               std::to_string(max_event_bytes_) + " bytes");
}

void WatchStreamSplitter::fail(std::uint64_t at, std::string why) {
  error_ = WatchStreamError{at, std::move(why)};
  partial_.clear();
  partial_.shrink_to_fit();
}

}  // namespace stowage::kube
