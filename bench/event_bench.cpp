// stowage-event-bench: the client-side cost of one watch event and of one listed object, without a
// server or TLS: canned bytes (the test API server's compact JSON, BackupStorages as the watch bench
// writes them) go through the real kube::Informer (ApiClient's splitter and parser included, behind a
// canned kube::Api) into the handler the watch bench uses (kube::parse_backup_storage, ObjectCache).
// Run it under `valgrind --tool=callgrind` for instructions per object (repeatable on a shared,
// noisy machine); alone it prints nanoseconds per object and the longest reactor turn in thread CPU
// time (the stall the informer itself causes, whatever else the machine runs).
//
// Usage: stowage-event-bench [--objects N] [--rounds R]
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench_objects.hpp"
#include "engine/object_cache.hpp"
#include "kube/api.hpp"
#include "kube/informer.hpp"
#ifndef STOWAGE_EVENT_BENCH_BASELINE
#include "kube/json_slices.hpp"
#endif
#include "kube/model.hpp"

namespace json = boost::json;
namespace asio = boost::asio;
using namespace stowage;

namespace {

json::value storage_object(int i, int round) {
  json::value o = bench::backup_storage_object("ns-" + std::to_string(i % 100), "bs-" + std::to_string(100000 + i), i,
                                               std::to_string(round));
  json::object& m = o.at("metadata").as_object();
  m["uid"] = "0c9a3b5e-1f3c-4d2e-9a7b-" + std::to_string(100000000000 + i);
  m["resourceVersion"] = std::to_string(1000000 + round * 100000 + i);
  m["generation"] = 1;
  m["creationTimestamp"] = "2026-12-07T10:00:00Z";
  return o;
}

// A kube::Api that answers one list (the page's text parsed as ApiClient parses it) and one watch
// (canned bytes fed to the splitter in 16 KiB reads, as ApiClient feeds a body).
class CannedApi final : public kube::Api {
 public:
  std::vector<std::string> list_pages;  // 500 objects each, as the informer asks for them
  std::string watch_body;
  template <class T>
  static Awaitable<T> unused() {
    co_return Err(kube::ApiError{});
  }
  Awaitable<json::value> get(std::string) override { return unused<json::value>(); }
  Awaitable<json::value> list(std::string, kube::ListOptions options) override {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);  // a request takes a turn
    const std::string& list_body = list_pages.at(options.continue_token.empty() ? 0 : std::stoul(options.continue_token));
#ifdef STOWAGE_EVENT_BENCH_BASELINE  // ApiClient before kube/json_slices.hpp
    co_return json::parse(list_body);
#else
    kube::JsonSliceOptions parse;  // as ApiClient::list parses a page
    parse.storage = json::make_shared_resource<json::monotonic_resource>(3 * list_body.size());
    auto parsed = co_await kube::parse_json_in_slices(list_body, std::move(parse));
    if (!parsed.ok()) co_return Err(kube::ApiError{});
    co_return std::move(parsed.value());
#endif
  }
  Awaitable<json::value> create(std::string, json::value) override { return unused<json::value>(); }
  Awaitable<json::value> replace(std::string, json::value) override { return unused<json::value>(); }
  Awaitable<json::value> patch(std::string, std::string, json::value) override { return unused<json::value>(); }
  Awaitable<json::value> remove(std::string, json::value) override { return unused<json::value>(); }
  Awaitable<Ok> watch(std::string, kube::WatchOptions, std::function<bool(kube::WatchEvent)> on_event) override {
    kube::WatchStreamSplitter splitter;
    constexpr std::size_t kRead = 16 * 1024;
    for (std::size_t at = 0; at < watch_body.size(); at += kRead) {
      auto fed = splitter.feed(std::string_view(watch_body).substr(at, kRead));
      for (auto& e : fed.events)
        if (!on_event(std::move(e))) co_return Ok{};
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
    // The body is over: wait to be stopped, as a watch with nothing new does.
    for (;;) co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
};

}  // namespace

int main(int argc, char** argv) {
  int objects = 10000, rounds = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--objects")) objects = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
  }
  CannedApi api;
  constexpr int kPage = 500;
  for (int first = 0; first < objects; first += kPage) {
    json::array items;
    for (int i = first; i < std::min(objects, first + kPage); ++i) items.push_back(storage_object(i, 0));
    json::object metadata{{"resourceVersion", "1000000"}};
    if (first + kPage < objects) metadata["continue"] = std::to_string(api.list_pages.size() + 1);
    api.list_pages.push_back(json::serialize(json::value{{"apiVersion", "storage.kubestash.com/v1alpha1"},
                                                         {"kind", "BackupStorageList"},
                                                         {"metadata", std::move(metadata)},
                                                         {"items", std::move(items)}}));
  }
  for (int r = 1; r <= rounds; ++r)
    for (int i = 0; i < objects; ++i)
      api.watch_body += json::serialize(json::value{{"type", "MODIFIED"}, {"object", storage_object(i, r)}}) + "\n";

  asio::io_context io{1};
  engine::ObjectCache cache;
  int upserts = 0, invalid = 0;
  const int want = objects * (rounds + 1);
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), synced_at{};
  kube::Informer* informer_ptr = nullptr;
  kube::InformerHandlers h;
  h.upserted = [&](json::value o) {
    auto parsed = kube::parse_backup_storage(o, kube::Unknown::Drop);
    if (!parsed.ok()) {
      ++invalid;
      return;
    }
    cache.upsert(std::move(parsed.value()));
    if (++upserts == want) informer_ptr->stop();
  };
  h.synced = [&] { synced_at = Clock::now(); };
  kube::InformerOptions o;
  o.name = "backupstorages";
  o.path = "/apis/storage.kubestash.com/v1alpha1/backupstorages";
  kube::Informer informer(io.get_executor(), api, o, h);
  informer_ptr = &informer;
  // The longest turn of other work's absence, in this thread's CPU time (what the reactor did in
  // one go, whatever else the machine ran meanwhile): a ticker re-posts itself while the informer runs.
  auto thread_cpu = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::nanoseconds(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
  };
  std::chrono::nanoseconds last_tick = thread_cpu(), longest_list{0}, longest_watch{0};
  std::function<void()> tick = [&] {
    auto now = thread_cpu();
    auto& longest = synced_at == Clock::time_point{} ? longest_list : longest_watch;
    longest = std::max(longest, now - last_tick);
    last_tick = now;
    if (upserts < want) asio::post(io, tick);
  };
  asio::post(io, tick);
  informer.start();
  io.run();
  auto end = Clock::now();
  auto ns_per = [](Clock::duration d, int n) {
    return n ? std::chrono::duration<double, std::nano>(d).count() / n : 0.0;
  };
  auto ms = [](std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::printf(
      "objects=%d events=%d upserts=%d invalid=%d list_ns_per_object=%.0f event_ns_per_event=%.0f "
      "longest_turn_cpu_ms list=%.2f watch=%.2f\n",
      objects, objects * rounds, upserts, invalid, ns_per(synced_at - start, objects),
      ns_per(end - synced_at, objects * rounds), ms(longest_list), ms(longest_watch));
  return upserts == want && invalid == 0 ? 0 : 1;
}
