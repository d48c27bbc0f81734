#pragma once
// The body of a Kubernetes watch response, split into events without any I/O.
//
// A watch answers with a chunked stream of JSON objects, {"type":"ADDED","object":{...}}, usually one
// per line. One HTTP chunk is not one event: an event may span chunks and one chunk may carry several.
// WatchStreamSplitter is fed the body's bytes as they arrive, with any chunk boundaries, and hands
// back each event as soon as its closing brace has arrived.
//
// Guarantees:
// - Never throws on input. Garbage is a WatchStreamError that says what is wrong and at which byte
//   of the stream (0-based, counted over every byte fed), and it is sticky: the stream is broken,
//   later feeds return the same error, and the caller gives the connection up (the reflector relists).
// - Events completed before the garbage in the same feed are still returned, in order.
// - Memory is bounded by the per-event limit (16 MiB by default) plus the parsed events.
//
// Assumptions: the HTTP layer has already removed the chunked transfer encoding (and any
// Content-Encoding). Between events only JSON whitespace is allowed (space, tab, CR, LF).
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace stowage::kube {

inline constexpr std::size_t kDefaultMaxEventBytes = std::size_t{16} * 1024 * 1024;
// Deeper nesting is refused (and Boost.JSON's own default of 32 is too shallow for CRD schemas).
inline constexpr std::size_t kMaxEventNesting = 512;

enum class WatchEventType { Added, Modified, Deleted, Bookmark, Error };

// "ADDED", "MODIFIED", ...: the spelling on the wire.
std::string_view to_string(WatchEventType type);

// The fields of a metav1.Status a client acts on: the body of a failed request, or the object of a
// watch ERROR event.
struct ApiStatus {
  std::int64_t code = 0;  // HTTP status code the Status stands for (0 when absent)
  std::string status;     // "Failure" | "Success"
  std::string reason;     // "Expired", "Gone", "Timeout", "TooManyRequests", ...
  std::string message;
  std::vector<std::string> cause_types;  // details.causes[].reason, e.g. "ResourceVersionTooLarge"
  std::int64_t retry_after_seconds = 0;  // details.retryAfterSeconds (0 when absent)

  bool operator==(const ApiStatus&) const = default;
};

// Reads whatever Status fields are present; anything missing or of the wrong type stays empty.
ApiStatus parse_api_status(const boost::json::value& status);

// What a reflector must do about a Status.
enum class StatusKind {
  Expired,   // 410, or reason Expired/Gone: the resourceVersion is compacted away, list again from scratch
  TooLarge,  // cause ResourceVersionTooLarge (or a 504 "Too large resource version"): the server is behind
  Other,
};
StatusKind classify_status(const ApiStatus& status);
std::string_view to_string(StatusKind kind);  // "expired" | "too large" | "other"

struct WatchEvent {
  WatchEventType type = WatchEventType::Added;
  boost::json::value object;     // the event's "object", whole
  std::string resource_version;  // object.metadata.resourceVersion ("" when absent, and for ERROR)
  ApiStatus status;              // ERROR only: the Status the object holds

  bool operator==(const WatchEvent&) const = default;
};

// One event object, already parsed: checks "type" and "object" and extracts the fields above.
// The error text names the problem ("unknown event type \"FOO\"").
Result<WatchEvent, std::string> parse_watch_event(boost::json::value event);

struct WatchStreamError {
  std::uint64_t offset = 0;       // byte of the stream at which the problem was found
  std::string message;            // what was wrong
  std::string to_string() const;  // "byte 17: unexpected 'x' between events"

  bool operator==(const WatchStreamError&) const = default;
};

struct WatchStreamFeed {
  std::vector<WatchEvent> events;         // completed by this feed, in stream order
  std::optional<WatchStreamError> error;  // set once the stream is broken
};

class WatchStreamSplitter {
 public:
  explicit WatchStreamSplitter(std::size_t max_event_bytes = kDefaultMaxEventBytes);

  // Consumes `bytes` (any length, including zero).
  WatchStreamFeed feed(std::string_view bytes);

  // The body has ended. An error when it ended inside an event (a truncated stream) or when the
  // stream was already broken; nothing when it ended between events (a clean end).
  std::optional<WatchStreamError> finish();

  bool broken() const { return error_.has_value(); }
  bool inside_event() const { return !closers_.empty(); }
  std::uint64_t bytes_fed() const { return offset_; }

 private:
  // Skips whitespace between events; true when `pos` is at the '{' of a new event.
  bool skip_to_event_start(std::string_view bytes, std::size_t& pos);
  // Scans the current event from `pos` to its end or the end of `bytes`.
  void scan_event(std::string_view bytes, std::size_t& pos, WatchStreamFeed& out);
  // The event's whole text has arrived: parse it into `out`, or break the stream.
  void complete(std::string_view text, WatchStreamFeed& out);
  // Breaks the stream at the byte just scanned (the last of `text`, the event so far) because of
  // `why`, unless `text` holds an earlier JSON syntax error, which is then the one reported.
  void fail_inside_event(std::string_view text, std::string why);
  void fail_event_too_large(std::uint64_t at);
  void fail(std::uint64_t at, std::string why);

  std::size_t max_event_bytes_;
  std::uint64_t offset_ = 0;       // stream offset of the next byte to scan
  std::uint64_t event_start_ = 0;  // stream offset of the current event's '{'
  std::string closers_;            // the closer each open brace/bracket expects, innermost last
  bool in_string_ = false;
  bool escaped_ = false;
  std::string partial_;  // the current event's bytes when it spans feeds
  std::optional<WatchStreamError> error_;
};

}  // namespace stowage::kube
