// The watch-body splitter: every chunking of a tricky stream gives the same events, garbage is
// reported with its byte offset whatever the chunking, the per-event size limit, and Status
// classification.
#include "kube/watch_stream.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

using namespace stowage::kube;
namespace json = boost::json;

namespace {

struct Outcome {
  std::vector<WatchEvent> events;
  std::optional<WatchStreamError> error;
};

// Feeds `chunks` in order, then finishes the stream.
Outcome feed_chunks(const std::vector<std::string>& chunks, std::size_t limit = kDefaultMaxEventBytes) {
  WatchStreamSplitter splitter(limit);
  Outcome out;
  for (const std::string& chunk : chunks) {
    WatchStreamFeed fed = splitter.feed(chunk);
    for (WatchEvent& e : fed.events) out.events.push_back(std::move(e));
    if (fed.error) {
      out.error = fed.error;
      return out;
    }
  }
  out.error = splitter.finish();
  return out;
}

Outcome feed_whole(const std::string& stream, std::size_t limit = kDefaultMaxEventBytes) {
  return feed_chunks({stream}, limit);
}

Outcome feed_bytewise(const std::string& stream, std::size_t limit = kDefaultMaxEventBytes) {
  std::vector<std::string> chunks;
  for (char c : stream) chunks.emplace_back(1, c);
  return feed_chunks(chunks, limit);
}

// A stream meant to trip a naive splitter: braces, brackets and quotes inside strings, escaped
// quotes and backslashes, unicode escapes (one of them a '}'), nested arrays, no separator between
// two events, CRLF and tabs between others.
const std::vector<std::string> kTrickyEvents = {
    R"({"type":"ADDED","object":{"kind":"BackupStorage","metadata":{"name":"a","resourceVersion":"101"},)"
    R"("spec":{"note":"{ not a brace } [ nor a bracket ]","q":"say \"}\" twice: \"}}\"","bs":"C:\\dir\\"}}})",
    R"({"type":"MODIFIED","object":{"metadata":{"name":"b","resourceVersion":"102"},)"
    R"("data":{"u":"\u007b\u007d \u00e9 \ud83d\ude00","nested":[[1,[2,[3,{"x":[]}]]],[],{}],"e":"\\\""}}})",
    R"({"type":"BOOKMARK","object":{"kind":"BackupStorage","metadata":{"resourceVersion":"150"}}})",
    R"({ "type" : "DELETED" , "object" : { "metadata" : { "name" : "a" , "resourceVersion" : "151" } } })",
    R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
    R"j("message":"too old resource version: 1 (151)","reason":"Expired","code":410}})j",
};

std::string tricky_stream() {
  const std::vector<std::string> separators = {"\n", "", "\r\n", "\n\t  \n", "\n"};
  std::string s;
  for (std::size_t i = 0; i < kTrickyEvents.size(); ++i) s += kTrickyEvents[i] + separators[i];
  return s;
}

void check_tricky_events(const Outcome& out) {
  INFO((out.error ? out.error->to_string() : std::string("no error")));
  REQUIRE_FALSE(out.error);
  REQUIRE(out.events.size() == 5);
  CHECK(out.events[0].type == WatchEventType::Added);
  CHECK(out.events[0].resource_version == "101");
  CHECK(out.events[0].object.at("spec").at("note") == "{ not a brace } [ nor a bracket ]");
  CHECK(out.events[0].object.at("spec").at("q") == "say \"}\" twice: \"}}\"");
  CHECK(out.events[0].object.at("spec").at("bs") == "C:\\dir\\");
  CHECK(out.events[1].type == WatchEventType::Modified);
  CHECK(out.events[1].resource_version == "102");
  CHECK(out.events[1].object.at("data").at("u") == "{} \xc3\xa9 \xf0\x9f\x98\x80");
  CHECK(out.events[1].object.at("data").at("e") == "\\\"");
  CHECK(json::serialize(out.events[1].object.at("data").at("nested")) == R"([[1,[2,[3,{"x":[]}]]],[],{}])");
  CHECK(out.events[2].type == WatchEventType::Bookmark);
  CHECK(out.events[2].resource_version == "150");
  CHECK(out.events[3].type == WatchEventType::Deleted);
  CHECK(out.events[3].resource_version == "151");
  CHECK(out.events[4].type == WatchEventType::Error);
  CHECK(out.events[4].resource_version.empty());
  CHECK(out.events[4].status.code == 410);
  CHECK(out.events[4].status.reason == "Expired");
  CHECK(out.events[4].status.message == "too old resource version: 1 (151)");
  CHECK(classify_status(out.events[4].status) == StatusKind::Expired);
}

std::string added(const std::string& name, const std::string& rv) {
  return R"({"type":"ADDED","object":{"metadata":{"name":")" + name + R"(","resourceVersion":")" + rv + R"("}}})";
}

// The error for `stream` fed whole, one byte at a time, and split at every point: all must agree.
WatchStreamError error_of(const std::string& stream, std::size_t limit = kDefaultMaxEventBytes) {
  Outcome whole = feed_whole(stream, limit);
  REQUIRE(whole.error);
  Outcome bytewise = feed_bytewise(stream, limit);
  REQUIRE(bytewise.error);
  CHECK(bytewise.error->offset == whole.error->offset);
  CHECK(bytewise.error->message == whole.error->message);
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    Outcome split = feed_chunks({stream.substr(0, cut), stream.substr(cut)}, limit);
    REQUIRE(split.error);
    INFO("cut at " << cut);
    CHECK(split.error->offset == whole.error->offset);
    CHECK(split.error->message == whole.error->message);
  }
  return *whole.error;
}

}  // namespace

TEST_CASE("watch stream: one event whole, with its fields") {
  Outcome out = feed_whole(added("st", "42") + "\n");
  REQUIRE_FALSE(out.error);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == WatchEventType::Added);
  CHECK(out.events[0].resource_version == "42");
  CHECK(out.events[0].object.at("metadata").at("name") == "st");
  CHECK(out.events[0].status == ApiStatus{});
}

TEST_CASE("watch stream: the tricky stream fed whole and one byte at a time") {
  check_tricky_events(feed_whole(tricky_stream()));
  check_tricky_events(feed_bytewise(tricky_stream()));
}

TEST_CASE("watch stream: the tricky stream split at every point") {
  const std::string s = tricky_stream();
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut at " << cut);
    check_tricky_events(feed_chunks({s.substr(0, cut), s.substr(cut)}));
  }
}

TEST_CASE("watch stream: the tricky stream split at many pairs of points") {
  const std::string s = tricky_stream();
  // Every pair in a window that covers the escapes, plus a stride over the whole stream.
  for (std::size_t a = 0; a <= s.size(); a += 7) {
    for (std::size_t b = a; b <= s.size(); b += 5) {
      INFO("cuts at " << a << " and " << b);
      check_tricky_events(feed_chunks({s.substr(0, a), s.substr(a, b - a), s.substr(b)}));
    }
  }
}

TEST_CASE("watch stream: random chunkings, empty chunks included") {
  const std::string s = tricky_stream();
  std::mt19937_64 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<std::string> chunks;
    std::size_t pos = 0;
    while (pos < s.size()) {
      std::size_t n = rng() % 40;  // 0..39, so some chunks are empty
      chunks.push_back(s.substr(pos, n));
      pos += n;
    }
    INFO("round " << round);
    check_tricky_events(feed_chunks(chunks));
  }
}

TEST_CASE("watch stream: an event is yielded as soon as its closing brace arrives") {
  WatchStreamSplitter splitter;
  const std::string event = added("a", "1");
  WatchStreamFeed first = splitter.feed(event.substr(0, event.size() - 1));
  CHECK(first.events.empty());
  CHECK(splitter.inside_event());
  WatchStreamFeed last = splitter.feed(event.substr(event.size() - 1));
  REQUIRE(last.events.size() == 1);
  CHECK_FALSE(splitter.inside_event());
  CHECK(splitter.bytes_fed() == event.size());
  CHECK(splitter.feed("").events.empty());
  CHECK_FALSE(splitter.finish());
}

TEST_CASE("watch stream: many events in one chunk, with and without separators") {
  std::string stream;
  for (int i = 0; i < 1000; ++i) stream += added("o" + std::to_string(i), std::to_string(i)) + (i % 3 ? "\n" : "");
  Outcome out = feed_whole(stream);
  REQUIRE_FALSE(out.error);
  REQUIRE(out.events.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(out.events[i].resource_version == std::to_string(i));
}

TEST_CASE("watch stream: an empty body and a body of whitespace end cleanly") {
  CHECK_FALSE(feed_whole("").error);
  Outcome ws = feed_whole(" \n\r\n\t ");
  CHECK_FALSE(ws.error);
  CHECK(ws.events.empty());
}

TEST_CASE("watch stream: all five types and the fields of an ERROR") {
  Outcome out =
      feed_whole(R"({"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Timeout","code":504,)"
                 R"("message":"Too large resource version: 20, current: 10",)"
                 R"("details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],)"
                 R"("retryAfterSeconds":1}}})");
  REQUIRE_FALSE(out.error);
  REQUIRE(out.events.size() == 1);
  const ApiStatus& s = out.events[0].status;
  CHECK(s.code == 504);
  CHECK(s.status == "Failure");
  CHECK(s.reason == "Timeout");
  CHECK(s.cause_types == std::vector<std::string>{"ResourceVersionTooLarge"});
  CHECK(s.retry_after_seconds == 1);
  CHECK(classify_status(s) == StatusKind::TooLarge);
  CHECK(to_string(WatchEventType::Added) == "ADDED");
  CHECK(to_string(WatchEventType::Modified) == "MODIFIED");
  CHECK(to_string(WatchEventType::Deleted) == "DELETED");
  CHECK(to_string(WatchEventType::Bookmark) == "BOOKMARK");
  CHECK(to_string(WatchEventType::Error) == "ERROR");
}

TEST_CASE("watch stream: an object without metadata.resourceVersion gives an empty one") {
  Outcome out = feed_whole(R"({"type":"MODIFIED","object":{"metadata":{"name":"x"}}}{"type":"ADDED","object":{}})");
  REQUIRE_FALSE(out.error);
  REQUIRE(out.events.size() == 2);
  CHECK(out.events[0].resource_version.empty());
  CHECK(out.events[1].resource_version.empty());
}

TEST_CASE("watch stream: garbage between events, with its offset") {
  const std::string ev = added("a", "1");
  SECTION("a letter before the first event") {
    WatchStreamError e = error_of("x" + ev);
    CHECK(e.offset == 0);
    CHECK(e.message == "expected '{' to start an event, got 'x'");
  }
  SECTION("a letter after whitespace between events") {
    WatchStreamError e = error_of(ev + "\n  x" + ev);
    CHECK(e.offset == ev.size() + 3);
    CHECK(e.message == "expected '{' to start an event, got 'x'");
  }
  SECTION("an unbalanced closing brace") {
    WatchStreamError e = error_of(ev + "}\n");
    CHECK(e.offset == ev.size());
    CHECK(e.message == "unbalanced '}' between events");
  }
  SECTION("an unbalanced closing bracket") {
    WatchStreamError e = error_of("\n]");
    CHECK(e.offset == 1);
    CHECK(e.message == "unbalanced ']' between events");
  }
  SECTION("a top-level array") {
    WatchStreamError e = error_of("[" + ev + "]");
    CHECK(e.offset == 0);
    CHECK(e.message == "expected '{' to start an event, got '['");
  }
  SECTION("a string at top level") { CHECK(error_of(ev + "\"ADDED\"").offset == ev.size()); }
  SECTION("a non-printable byte is shown in hex") {
    WatchStreamError e = error_of(ev + "\x01");
    CHECK(e.offset == ev.size());
    CHECK(e.message == "expected '{' to start an event, got 0x01");
  }
  SECTION("a NUL byte") { CHECK(error_of(std::string("\0", 1)).message == "expected '{' to start an event, got 0x00"); }
}

TEST_CASE("watch stream: invalid JSON inside an event, at the offending byte") {
  SECTION("a mismatched closer") {
    WatchStreamError e = error_of(R"({"a":[1})");
    CHECK(e.offset == 7);
    CHECK(e.message == "mismatched '}', expected ']'");
  }
  SECTION("a mismatched closer in the second event") {
    const std::string ev = added("a", "1");
    WatchStreamError e = error_of(ev + "\n" + R"({"a":{"b":[}]})");
    CHECK(e.offset == ev.size() + 1 + 11);
    CHECK(e.message == "mismatched '}', expected ']'");
  }
  SECTION("an earlier syntax error wins over a later mismatched closer") {
    WatchStreamError e = error_of(R"({"a" 1])");
    CHECK(e.offset == 5);
    CHECK(e.message.rfind("invalid JSON in an event: ", 0) == 0);
  }
  SECTION("a missing colon") {
    WatchStreamError e = error_of(R"({"type" "ADDED"})");
    CHECK(e.offset == 8);
    CHECK(e.message.rfind("invalid JSON in an event: ", 0) == 0);
  }
  SECTION("a bad literal") { CHECK(error_of(R"({"a":tru})").offset == 8); }
  SECTION("a trailing comma") { CHECK(error_of(R"({"a":1,})").offset == 7); }
  SECTION("an invalid escape") { CHECK(error_of(R"({"a":"\q"})").offset == 7); }
  SECTION("a raw newline inside a string") { CHECK(error_of("{\"a\":\"x\ny\"}").offset == 7); }
  SECTION("invalid UTF-8 inside a string") { CHECK(error_of("{\"a\":\"\xff\"}").offset == 6); }
  SECTION("events before the garbage in the same feed are still returned") {
    const std::string ev = added("a", "1");
    WatchStreamSplitter splitter;
    WatchStreamFeed fed = splitter.feed(ev + ev + "\n{\"a\":nul}" + ev);
    CHECK(fed.events.size() == 2);
    REQUIRE(fed.error);
    CHECK(fed.error->offset == 2 * ev.size() + 1 + 8);
    CHECK(splitter.broken());
  }
}

TEST_CASE("watch stream: an error far into a large, deep event is located exactly") {
  // Past several of the locator's 4 KiB blocks, inside 400 levels of nesting.
  const std::string head =
      R"({"type":"ADDED","object":{"a":")" + std::string(9000, 'x') + R"(","b":)" + std::string(400, '[') + "1 2";
  const std::string text = head + std::string(400, ']') + "}}";
  WatchStreamError e = feed_whole(text).error.value();
  CHECK(e.offset == head.size() - 1);
  CHECK(e.message.rfind("invalid JSON in an event: ", 0) == 0);
  CHECK(feed_bytewise(text).error.value() == e);
}

TEST_CASE("watch stream: events that parse but are not watch events") {
  SECTION("an unknown type") {
    const std::string ev = added("a", "1");
    WatchStreamError e = error_of(ev + "\n" + R"({"type":"RENAMED","object":{}})");
    CHECK(e.offset == ev.size() + 1);
    const std::size_t start = ev.size() + 1;  // the event is 30 bytes
    CHECK(e.message == "unknown event type \"RENAMED\" (the event at bytes " + std::to_string(start) + "-" +
                           std::to_string(start + 29) + ")");
  }
  SECTION("a missing object") {
    WatchStreamError e = error_of(R"({"type":"ADDED"})");
    CHECK(e.offset == 0);
    CHECK(e.message == "the ADDED event has no \"object\" (the event at bytes 0-15)");
  }
  SECTION("a null object") {
    CHECK(error_of(R"({"type":"DELETED","object":null})").message.find("has no \"object\"") != std::string::npos);
  }
  SECTION("an object that is not an object") {
    CHECK(
        error_of(R"({"type":"ADDED","object":[1]})").message.rfind("the event's \"object\" is not a JSON object", 0) ==
        0);
  }
  SECTION("a missing type") { CHECK(error_of(R"({"object":{}})").message.rfind("the event has no \"type\"", 0) == 0); }
  SECTION("a type that is not a string") {
    CHECK(error_of(R"({"type":1,"object":{}})").message.rfind("the event's \"type\" is not a string", 0) == 0);
  }
  SECTION("a lower-case type") {
    CHECK(error_of(R"({"type":"added","object":{}})").message.rfind("unknown event type \"added\"", 0) == 0);
  }
}

TEST_CASE("watch stream: errors are sticky") {
  WatchStreamSplitter splitter;
  WatchStreamFeed bad = splitter.feed("}");
  REQUIRE(bad.error);
  WatchStreamFeed after = splitter.feed(added("a", "1"));
  CHECK(after.events.empty());
  REQUIRE(after.error);
  CHECK(*after.error == *bad.error);
  REQUIRE(splitter.finish());
  CHECK(*splitter.finish() == *bad.error);
}

TEST_CASE("watch stream: a body that ends inside an event is truncated") {
  const std::string ev = added("a", "1");
  Outcome out = feed_whole(ev + "\n" + ev.substr(0, 20));
  CHECK(out.events.size() == 1);
  REQUIRE(out.error);
  CHECK(out.error->offset == ev.size() + 21);
  const std::string started = std::to_string(ev.size() + 1);
  CHECK(out.error->message == "the stream ended inside the event that started at byte " + started);
  CHECK(out.error->to_string() == "byte " + std::to_string(ev.size() + 21) +
                                      ": the stream ended inside the event that started at byte " + started);
}

TEST_CASE("watch stream: nesting is limited") {
  std::string deep = R"({"type":"ADDED","object":)";
  // The event is depth 1 and `object` depth 2; arrays fill up to exactly the limit, then one more.
  std::string okobj =
      deep + "{\"a\":" + std::string(kMaxEventNesting - 2, '[') + std::string(kMaxEventNesting - 2, ']') + "}}";
  Outcome fine_obj = feed_whole(okobj);
  INFO((fine_obj.error ? fine_obj.error->to_string() : ""));
  CHECK_FALSE(fine_obj.error);
  REQUIRE(fine_obj.events.size() == 1);

  std::string too_deep =
      deep + "{\"a\":" + std::string(kMaxEventNesting - 1, '[') + std::string(kMaxEventNesting - 1, ']') + "}}";
  WatchStreamError e = error_of(too_deep);
  CHECK(e.offset == deep.size() + 5 + kMaxEventNesting - 2);
  CHECK(e.message == "nesting deeper than 512 levels");
}

TEST_CASE("watch stream: the per-event size limit") {
  const std::string ev = added("a", "1");
  SECTION("an event of exactly the limit passes, one byte more fails at the first byte over") {
    CHECK_FALSE(feed_whole(ev + ev, ev.size()).error);
    CHECK(feed_whole(ev + ev, ev.size()).events.size() == 2);
    WatchStreamError e = error_of(ev + "\n" + ev, ev.size() - 1);
    CHECK(e.offset == ev.size() - 1);
    CHECK(e.message ==
          "the event that started at byte 0 is larger than the limit of " + std::to_string(ev.size() - 1) + " bytes");
  }
  SECTION("a long string inside an event is counted too") {
    const std::string big = R"({"type":"ADDED","object":{"data":")" + std::string(5000, 'x') + R"("}})";
    WatchStreamError e = error_of(ev + big, 1000);
    CHECK(e.offset == ev.size() + 1000);
    CHECK(e.message ==
          "the event that started at byte " + std::to_string(ev.size()) + " is larger than the limit of 1000 bytes");
  }
  SECTION("the limit is per event, not per stream") {
    std::string stream;
    for (int i = 0; i < 100; ++i) stream += ev;
    Outcome out = feed_whole(stream, 100);
    CHECK_FALSE(out.error);
    CHECK(out.events.size() == 100);
  }
  SECTION("a 16 MiB limit by default") {
    const std::string big =
        R"({"type":"ADDED","object":{"data":")" + std::string(kDefaultMaxEventBytes, 'x') + R"("}})";
    WatchStreamSplitter splitter;
    WatchStreamFeed fed;
    for (std::size_t pos = 0; pos < big.size() && !fed.error; pos += 65536)
      fed = splitter.feed(std::string_view(big).substr(pos, 65536));
    REQUIRE(fed.error);
    CHECK(fed.error->offset == kDefaultMaxEventBytes);
  }
}

TEST_CASE("watch stream: parse_api_status reads what is there") {
  ApiStatus s = parse_api_status(
      json::parse(R"({"kind":"Status","status":"Failure","reason":"TooManyRequests","code":429,"message":"slow down",)"
                  R"("details":{"retryAfterSeconds":3,"causes":[{"reason":"A"},{"message":"no reason"},7]}})"));
  CHECK(s.code == 429);
  CHECK(s.reason == "TooManyRequests");
  CHECK(s.message == "slow down");
  CHECK(s.retry_after_seconds == 3);
  CHECK(s.cause_types == std::vector<std::string>{"A", ""});
  CHECK(parse_api_status(json::parse(R"({"code":"410","reason":5})")) == ApiStatus{});
  CHECK(parse_api_status(json::parse("[]")) == ApiStatus{});
}

TEST_CASE("watch stream: classify_status") {
  auto status = [](std::int64_t code, std::string reason, std::string message = "",
                   std::vector<std::string> causes = {}) {
    ApiStatus s;
    s.code = code;
    s.reason = std::move(reason);
    s.message = std::move(message);
    s.cause_types = std::move(causes);
    return s;
  };
  CHECK(classify_status(status(410, "Expired")) == StatusKind::Expired);
  CHECK(classify_status(status(410, "Gone")) == StatusKind::Expired);
  CHECK(classify_status(status(410, "")) == StatusKind::Expired);
  CHECK(classify_status(status(0, "Expired")) == StatusKind::Expired);
  CHECK(classify_status(status(500, "Gone")) == StatusKind::Expired);
  CHECK(classify_status(status(504, "Timeout", "", {"ResourceVersionTooLarge"})) == StatusKind::TooLarge);
  CHECK(classify_status(status(504, "Timeout", "Too large resource version: 9, current: 5")) == StatusKind::TooLarge);
  CHECK(classify_status(status(504, "Timeout", "request timed out")) == StatusKind::Other);
  CHECK(classify_status(status(500, "InternalError")) == StatusKind::Other);
  CHECK(classify_status(status(429, "TooManyRequests")) == StatusKind::Other);
  CHECK(classify_status(status(403, "Forbidden")) == StatusKind::Other);
  CHECK(to_string(StatusKind::Expired) == "expired");
  CHECK(to_string(StatusKind::TooLarge) == "too large");
  CHECK(to_string(StatusKind::Other) == "other");
}

TEST_CASE("watch stream: parse_watch_event on its own") {
  auto ok = parse_watch_event(json::parse(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})"));
  REQUIRE(ok.ok());
  CHECK(ok.value().type == WatchEventType::Bookmark);
  CHECK(ok.value().resource_version == "9");
  auto bad = parse_watch_event(json::parse("[1]"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "an event must be a JSON object");
  auto long_type = parse_watch_event(json::parse("{\"type\":\"" + std::string(100, 'Z') + "\",\"object\":{}}"));
  REQUIRE_FALSE(long_type.ok());
  CHECK(long_type.error() == "unknown event type \"" + std::string(60, 'Z') + "\"...");
}
