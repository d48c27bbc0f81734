// The metrics registry: the text exposition format 0.0.4 byte for byte, escaping, cumulative
// histogram buckets, number formatting as client_golang's, misuse caught, updates from threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/metrics.hpp"

using namespace stowage;

TEST_CASE("exposition of a small registry matches the text format byte for byte") {
  metrics::Registry r;
  auto& requests = r.counter("app_requests_total", "Requests served.", {"code", "method"});
  auto& temperature = r.gauge("app_temperature_celsius", "Temperature.");
  auto& latency = r.histogram("app_latency_seconds", "Latency.", {"path"}, {0.1, 0.5, 1});
  r.counter("app_unused_total", "Never used, so never shown.", {"kind"});
  requests.inc({"500", "POST"});
  requests.inc({"200", "GET"});
  requests.inc({"200", "GET"}, 2);
  temperature.set(-3.5);
  latency.observe({"/b"}, 0.0625);
  latency.observe({"/a"}, 0.0625);
  latency.observe({"/a"}, 0.5);
  latency.observe({"/a"}, 3);

  const char* expected =
      "# HELP app_latency_seconds Latency.\n"
      "# TYPE app_latency_seconds histogram\n"
      "app_latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 1\n"
      "app_latency_seconds_bucket{path=\"/a\",le=\"0.5\"} 2\n"
      "app_latency_seconds_bucket{path=\"/a\",le=\"1\"} 2\n"
      "app_latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 3\n"
      "app_latency_seconds_sum{path=\"/a\"} 3.5625\n"
      "app_latency_seconds_count{path=\"/a\"} 3\n"
      "app_latency_seconds_bucket{path=\"/b\",le=\"0.1\"} 1\n"
      "app_latency_seconds_bucket{path=\"/b\",le=\"0.5\"} 1\n"
      "app_latency_seconds_bucket{path=\"/b\",le=\"1\"} 1\n"
      "app_latency_seconds_bucket{path=\"/b\",le=\"+Inf\"} 1\n"
      "app_latency_seconds_sum{path=\"/b\"} 0.0625\n"
      "app_latency_seconds_count{path=\"/b\"} 1\n"
      "# HELP app_requests_total Requests served.\n"
      "# TYPE app_requests_total counter\n"
      "app_requests_total{code=\"200\",method=\"GET\"} 3\n"
      "app_requests_total{code=\"500\",method=\"POST\"} 1\n"
      "# HELP app_temperature_celsius Temperature.\n"
      "# TYPE app_temperature_celsius gauge\n"
      "app_temperature_celsius -3.5\n";
  CHECK(r.expose() == expected);
  CHECK(r.expose() == expected);  // stable
  CHECK(metrics::Registry::kContentType == "text/plain; version=0.0.4; charset=utf-8");
}

TEST_CASE("label values and help texts are escaped") {
  CHECK(metrics::escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(metrics::escape_help("say \"hi\"\\\nbye") == "say \"hi\"\\\\\\nbye");  // quotes stay in help

  metrics::Registry r;
  auto& g = r.gauge("odd_gauge", "Two lines:\nand a \\ backslash.", {"path"});
  g.set({"C:\\dir \"x\"\n"}, 1);
  CHECK(r.expose() ==
        "# HELP odd_gauge Two lines:\\nand a \\\\ backslash.\n"
        "# TYPE odd_gauge gauge\n"
        "odd_gauge{path=\"C:\\\\dir \\\"x\\\"\\n\"} 1\n");
}

TEST_CASE("histogram buckets are cumulative, upper bounds inclusive, and +Inf equals the count") {
  metrics::Registry r;
  auto& h = r.histogram("wait_seconds", "Waits.", {}, {1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 100.0}) h.observe(v);
  h.observe(std::numeric_limits<double>::quiet_NaN());  // counted in +Inf only, as client_golang does
  auto s = h.snapshot();
  CHECK(s.cumulative == std::vector<std::uint64_t>{2, 4, 6, 9});
  CHECK(s.count == 9);
  CHECK(std::isnan(s.sum));
  auto text = r.expose();
  CHECK(text.find("wait_seconds_bucket{le=\"1\"} 2\n") != std::string::npos);
  CHECK(text.find("wait_seconds_bucket{le=\"4\"} 6\n") != std::string::npos);
  CHECK(text.find("wait_seconds_bucket{le=\"+Inf\"} 9\n") != std::string::npos);
  CHECK(text.find("wait_seconds_sum NaN\n") != std::string::npos);
  CHECK(text.find("wait_seconds_count 9\n") != std::string::npos);

  h.observe(std::chrono::milliseconds(1500));
  CHECK(h.snapshot().cumulative[1] == 5);
  {
    auto timer = h.start_timer();
  }
  CHECK(h.snapshot().cumulative[0] == 3);  // an instant is under 1 s
}

TEST_CASE("numbers print as Go's strconv.FormatFloat with g and shortest precision") {
  CHECK(metrics::format_value(0) == "0");
  CHECK(metrics::format_value(1) == "1");
  CHECK(metrics::format_value(-3.5) == "-3.5");
  CHECK(metrics::format_value(0.005) == "0.005");
  CHECK(metrics::format_value(0.0001) == "0.0001");
  CHECK(metrics::format_value(0.00001) == "1e-05");
  CHECK(metrics::format_value(1.5e-5) == "1.5e-05");
  CHECK(metrics::format_value(123456) == "123456");
  CHECK(metrics::format_value(100000) == "100000");
  CHECK(metrics::format_value(1e6) == "1e+06");
  CHECK(metrics::format_value(1234567) == "1.234567e+06");
  CHECK(metrics::format_value(1e21) == "1e+21");
  CHECK(metrics::format_value(0.1 + 0.2) == "0.30000000000000004");
  CHECK(metrics::format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(metrics::format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(metrics::format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("default buckets are controller-runtime's and client-go workqueue's") {
  auto reconcile = metrics::reconcile_time_buckets();
  REQUIRE(reconcile.size() == 40);
  CHECK(reconcile.front() == 0.005);
  CHECK(reconcile[17] == 1.0);
  CHECK(reconcile.back() == 60);

  // The same doubles Go's ExponentialBuckets(10e-9, 10, 12) computes, hence the same le texts.
  std::vector<std::string> le;
  for (double b : metrics::workqueue_buckets()) le.push_back(metrics::format_value(b));
  CHECK(le == std::vector<std::string>{"1e-08", "1e-07", "1e-06", "9.999999999999999e-06", "9.999999999999999e-05",
                                       "0.001", "0.01", "0.1", "1", "10", "100", "1000"});
  CHECK(metrics::linear_buckets(1, 2, 3) == std::vector<double>{1, 3, 5});
}

TEST_CASE("families without labels show zero at once, labelled ones once a label set is used") {
  metrics::Registry r;
  auto& plain = r.counter("plain_total", "No labels.");
  auto& by_kind = r.counter("by_kind_total", "Labelled.", {"kind"});
  CHECK(r.expose() == "# HELP plain_total No labels.\n# TYPE plain_total counter\nplain_total 0\n");
  by_kind.with({"x"});  // creating the series shows it at zero
  CHECK(r.expose().find("by_kind_total{kind=\"x\"} 0\n") != std::string::npos);
  plain.inc();
  CHECK(plain.value() == 1);
  CHECK(by_kind.value({"never"}) == 0);
  CHECK(r.expose().find("never") == std::string::npos);  // value() does not create a series
}

TEST_CASE("gauges go up, down, and keep a maximum") {
  metrics::Registry r;
  auto& g = r.gauge("workers", "Workers.", {"pool"});
  g.inc({"a"});
  g.inc({"a"});
  g.dec({"a"});
  g.add({"a"}, 2.5);
  CHECK(g.value({"a"}) == 3.5);
  auto& longest = g.with({"max"});
  longest.set_max(2);
  longest.set_max(1);
  CHECK(longest.value() == 2);
}

TEST_CASE("a removed series is no longer exposed, and an emptied family shows nothing") {
  metrics::Registry r;
  auto& ready = r.gauge("ready", "Per object.", {"namespace", "name"});
  ready.set({"demo", "a"}, 1);
  ready.set({"demo", "b"}, 0);
  CHECK(ready.remove({"demo", "a"}));
  CHECK_FALSE(ready.remove({"demo", "a"}));  // already gone
  CHECK_FALSE(ready.remove({"demo", "never"}));
  CHECK(r.expose() == "# HELP ready Per object.\n# TYPE ready gauge\nready{namespace=\"demo\",name=\"b\"} 0\n");
  CHECK(ready.remove({"demo", "b"}));
  CHECK(r.expose().empty());
  ready.set({"demo", "a"}, 1);  // comes back afresh
  CHECK(ready.value({"demo", "a"}) == 1);
  CHECK_THROWS_AS(ready.remove({"demo"}), std::invalid_argument);
  auto& total = r.counter("seen_total", "Counted.", {"name"});
  total.inc({"x"}, 3);
  CHECK(total.remove({"x"}));
  CHECK(total.value({"x"}) == 0);
}

TEST_CASE("misuse is a programming error and throws") {
  metrics::Registry r;
  CHECK_THROWS_AS(r.counter("bad-name", "x"), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("9lives", "x"), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "x", {"bad-label"}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "x", {"__reserved"}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "x", {"a", "a"}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "x", {"le"}, {1}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "x", {}, {2, 1}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "x", {}, {1, std::numeric_limits<double>::quiet_NaN()}),
                  std::invalid_argument);

  auto& c = r.counter("requests_total", "x", {"code"});
  CHECK_THROWS_AS(r.gauge("requests_total", "x"), std::invalid_argument);
  r.histogram("rpc_seconds", "x", {}, {1, std::numeric_limits<double>::infinity()});  // +Inf is implicit
  CHECK_THROWS_AS(r.counter("rpc_seconds_count", "x"), std::invalid_argument);
  CHECK_THROWS_AS(c.inc({"200", "GET"}), std::invalid_argument);
  CHECK_THROWS_AS(c.inc({}), std::invalid_argument);
  CHECK_THROWS_AS(c.inc({"200"}, -1), std::invalid_argument);
  try {
    c.inc({});
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "metric requests_total takes 1 label values (code), got 0");
  }
  CHECK(r.expose().find("rpc_seconds_bucket{le=\"+Inf\"} 0\n") != std::string::npos);
}

TEST_CASE("updates from several threads are all counted") {
  metrics::Registry r;
  auto& c = r.counter("events_total", "x", {"thread"});
  auto& h = r.histogram("work_seconds", "x", {}, {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        c.inc({"shared"});
        c.inc({t % 2 ? "odd" : "even"});
        h.observe(i % 2 ? 0.25 : 1.0);
        if (i % 1000 == 0) (void)r.expose();  // scrapes while others write
      }
    });
  for (auto& t : threads) t.join();
  CHECK(c.value({"shared"}) == 80000);
  CHECK(c.value({"odd"}) == 40000);
  CHECK(c.value({"even"}) == 40000);
  auto s = h.snapshot();
  CHECK(s.count == 80000);
  CHECK(s.cumulative[0] == 40000);
  CHECK(s.sum == 40000 * 0.25 + 40000 * 1.0);
}
