// The Informer's first list against FakeApi: each page reaches the handlers as it arrives (the
// list is never held whole), and the hand-over lets the reactor run other work every ~1 ms of
// handler time, however few the objects.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "kube/informer.hpp"
#include "support/fake_api.hpp"

using namespace stowage;
namespace json = boost::json;

namespace {

const std::string kConfigMaps = "/api/v1/namespaces/ns1/configmaps";

json::value config_map(int i) {
  return json::value{{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", "cm-" + std::to_string(i)}, {"namespace", "ns1"}}},
                     {"data", {{"k", std::to_string(i)}}}};
}

kube::InformerOptions options(std::int64_t page_size) {
  kube::InformerOptions o;
  o.name = "configmaps";
  o.path = kConfigMaps;
  o.reflector.page_size = page_size;
  o.reflector.seed = 7;
  return o;
}

void spin_for(std::chrono::microseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

}  // namespace

TEST_CASE("a first list hands each page over as it arrives, before the next page is asked for") {
  boost::asio::io_context io;
  test_support::FakeApi api(io.get_executor());
  for (int i = 0; i < 25; ++i) api.put(kConfigMaps, config_map(i));
  std::vector<std::size_t> lists_when_upserted;  // list requests made when each object was handed over
  kube::InformerHandlers h;
  h.upserted = [&](json::value) { lists_when_upserted.push_back(api.count("list")); };
  kube::Informer informer(io.get_executor(), api, options(10), std::move(h));
  informer.start();
  for (int i = 0; i < 200 && !informer.synced(); ++i) io.run_one();
  REQUIRE(informer.synced());
  REQUIRE(lists_when_upserted.size() == 25);
  CHECK(api.count("list") == 3);
  // The first page's 10 objects came while only one list request had been made, the next 10 after
  // the second: nothing waited for the last page.
  CHECK(lists_when_upserted.front() == 1);
  CHECK(lists_when_upserted[9] == 1);
  CHECK(lists_when_upserted[10] == 2);
  CHECK(lists_when_upserted.back() == 3);
  CHECK(informer.size() == 25);
}

TEST_CASE("a first list's hand-over yields to the reactor after about a millisecond of handler time") {
  boost::asio::io_context io;
  test_support::FakeApi api(io.get_executor());
  // 100 objects in one page, each taking the handler 200 us: 20 ms of work that must not run in one
  // turn. (Fewer than the 256 objects the hand-over used to yield after: by count it never did.)
  constexpr int kObjects = 100;
  for (int i = 0; i < kObjects; ++i) api.put(kConfigMaps, config_map(i));
  int handed = 0;
  int handed_when_other_work_ran = -1;
  kube::InformerHandlers h;
  h.upserted = [&](json::value) {
    ++handed;
    // Once the first object is in, other work is posted: it must run before the last one.
    if (handed == 1)
      boost::asio::post(io, [&] { handed_when_other_work_ran = handed; });
    spin_for(std::chrono::microseconds(200));
  };
  kube::Informer informer(io.get_executor(), api, options(500), std::move(h));
  informer.start();
  for (int i = 0; i < 1000 && !informer.synced(); ++i) io.run_one();
  REQUIRE(informer.synced());
  CHECK(handed == kObjects);
  INFO("objects handed over when the posted work ran: " << handed_when_other_work_ran);
  CHECK(handed_when_other_work_ran > 0);
  CHECK(handed_when_other_work_ran < kObjects);
}

TEST_CASE("a relist after a 410 hands its differences over in slices, removals included") {
  boost::asio::io_context io;
  test_support::FakeApi api(io.get_executor());
  constexpr int kObjects = 100;
  for (int i = 0; i < kObjects; ++i) api.put(kConfigMaps, config_map(i));
  bool relisting = false;
  int relist_upserts = 0, removals = 0;
  int handed_when_other_work_ran = -1;
  kube::InformerHandlers h;
  h.upserted = [&](json::value) {
    if (!relisting) return;
    ++relist_upserts;
    if (relist_upserts == 1)
      boost::asio::post(io, [&] { handed_when_other_work_ran = relist_upserts; });
    spin_for(std::chrono::microseconds(200));
  };
  h.removed = [&](const std::string&, const std::string& name, json::value) {
    if (name == "cm-0") ++removals;
  };
  kube::Informer informer(io.get_executor(), api, options(500), std::move(h));
  informer.start();
  for (int i = 0; i < 1000 && !informer.synced(); ++i) io.run_one();
  REQUIRE(informer.synced());
  for (int i = 0; i < 200 && api.open_watches() == 0; ++i) io.run_one();
  REQUIRE(api.open_watches() == 1);

  // Every object changes and one goes while the watch hears nothing; the history is compacted,
  // so the next watch gets a 410 and only a relist can tell: 99 upserts and a removal, 20 ms of
  // handler time that must not run in one turn.
  api.hold_watches(true);
  for (int i = 1; i < kObjects; ++i) {
    json::value changed = config_map(i);
    changed.at("data").at("k") = "changed";
    api.put(kConfigMaps, std::move(changed));
  }
  api.erase(kConfigMaps + "/cm-0");
  api.compact();
  relisting = true;
  api.end_watches();  // ends while held: the changes are not delivered to it
  for (int i = 0; i < 200 && api.open_watches() != 0; ++i) io.run_one();
  REQUIRE(api.open_watches() == 0);
  api.hold_watches(false);
  for (int i = 0; i < 5000 && removals == 0; ++i) io.run_one();
  REQUIRE(removals == 1);
  CHECK(relist_upserts == kObjects - 1);
  CHECK(informer.stats().relists == 1);
  CHECK(informer.size() == kObjects - 1);
  INFO("relisted objects handed over when the posted work ran: " << handed_when_other_work_ran);
  CHECK(handed_when_other_work_ran > 0);
  CHECK(handed_when_other_work_ran < kObjects - 1);
}
