// kube/watch_stream: the body of a watch response, fed in chunks as they arrive. The first byte of
// the input picks the chunk sizes; the rest is the stream. Split anywhere, the stream must give the
// same events and the same error (at the same offset) as when fed whole.
#include "fuzz/fuzz_support.hpp"
#include "kube/watch_stream.hpp"

namespace {

using stowage::kube::WatchEvent;
using stowage::kube::WatchStreamError;
using stowage::kube::WatchStreamSplitter;

struct Outcome {
  std::vector<WatchEvent> events;
  std::optional<WatchStreamError> error;
  std::optional<WatchStreamError> at_end;
};

Outcome feed_in_chunks(std::string_view stream, std::size_t chunk, std::size_t max_event_bytes) {
  WatchStreamSplitter splitter(max_event_bytes);
  Outcome out;
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    auto fed = splitter.feed(stream.substr(at, chunk));
    for (auto& event : fed.events) out.events.push_back(std::move(event));
    if (fed.error && !out.error) out.error = fed.error;
  }
  out.at_end = splitter.finish();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 17;
  std::string_view stream = fuzz::text_of(data + 1, size - 1);
  // A small per-event limit, so that the limit's own path is reached too.
  const std::size_t max_event_bytes = data[0] & 0x80 ? 64 : kube::kDefaultMaxEventBytes;
  Outcome whole = feed_in_chunks(stream, stream.size() + 1, max_event_bytes);
  Outcome split = feed_in_chunks(stream, chunk, max_event_bytes);
  fuzz::require(whole.events == split.events, "the events depend on where the stream was split");
  fuzz::require(whole.error == split.error, "the error depends on where the stream was split");
  fuzz::require(whole.at_end == split.at_end, "the end of the stream depends on where it was split");
  for (const auto& event : whole.events) {
    if (event.type == kube::WatchEventType::Error) (void)kube::classify_status(event.status);
  }
  return 0;
}
