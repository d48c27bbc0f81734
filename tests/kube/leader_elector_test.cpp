// LeaderElector against the test API server over TLS (real Leases, real 409s): a fresh lease as
// kubectl sees it, takeover after a crash and after a release, loss at the renew deadline when
// renewals fail or hang, no two leaders under racing writes, validity by local observation time,
// the 403 log policy, a leader in another process killed with SIGKILL, and the option rules.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <regex>
#include <signal.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "common/http_client.hpp"
#include "common/time_format.hpp"
#include "kube/api_client.hpp"
#include "kube/leader_elector.hpp"
#include "support/api_server.hpp"

using namespace stowage;
using namespace std::chrono_literals;
namespace json = boost::json;
using test_support::TestApiServer;
using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

const std::string kNamespace = "ns1";
const std::string kLeases = "/apis/coordination.k8s.io/v1/namespaces/ns1/leases";

// Short durations (client-go's ratios): lease 2 s, renew deadline 1.5 s, retry 0.3 s.
kube::LeaderElectionOptions fast_options(const std::string& identity, const std::string& name = "stowage-leader") {
  kube::LeaderElectionOptions o;
  o.namespace_ = kNamespace;
  o.name = name;
  o.identity = identity;
  o.lease_duration = 2000ms;
  o.renew_deadline = 1500ms;
  o.retry_period = 300ms;
  o.seed = std::hash<std::string>{}(identity) | 1;
  return o;
}

long long ms(Steady::duration d) { return std::chrono::duration_cast<milliseconds>(d).count(); }

std::string text_at(const json::value& v, std::initializer_list<const char*> keys) {
  const json::value* cur = &v;
  for (const char* k : keys) {
    const auto* o = cur->if_object();
    cur = o ? o->if_contains(k) : nullptr;
    if (!cur) return "";
  }
  return cur->is_string() ? std::string(cur->get_string()) : "";
}

std::int64_t int_at(const json::value& v, const char* field) {
  const auto* spec = v.as_object().at("spec").if_object();
  const auto* f = spec ? spec->if_contains(field) : nullptr;
  return f && f->is_int64() ? f->get_int64() : -1;
}

// One candidate: its own ApiClient (as another process would have) and what its callbacks saw.
struct Candidate {
  Candidate(http::Client& http, const kube::ClientConfig& config) : api(http, config) {}
  kube::ApiClient api;
  int started = 0;
  int stopped = 0;
  std::vector<std::string> new_leaders;
  std::unique_ptr<kube::LeaderElector> elector;
  bool leading() const { return elector && elector->is_leader(); }
};

struct Harness {
  TestApiServer server;
  boost::asio::io_context io;
  http::Client http{io.get_executor()};
  kube::ApiClient api;  // the test's own reads and writes
  std::vector<std::unique_ptr<Candidate>> candidates;
  int in_office = 0;          // on_started_leading minus on_stopped_leading, over all candidates
  int max_in_office = 0;
  int max_leading_seen = 0;   // the most candidates whose is_leader() held at one sample

  explicit Harness(const std::string& name)
      : server(test_support::fresh_temp_dir("leader-" + name), "tok"), api(http, client_config()) {}

  ~Harness() {
    for (auto& c : candidates) c->elector.reset();
    io.restart();
    io.run_for(5s);  // lets requests in flight end while their ApiClients still exist
  }

  kube::ClientConfig client_config() const { return server.client_config(); }

  Candidate& add(kube::LeaderElectionOptions options, kube::LeaderElectionClocks clocks = {}) {
    candidates.push_back(std::make_unique<Candidate>(http, client_config()));
    Candidate& c = *candidates.back();
    kube::LeaderCallbacks callbacks;
    callbacks.on_started_leading = [this, &c] {
      ++c.started;
      max_in_office = std::max(max_in_office, ++in_office);
    };
    callbacks.on_stopped_leading = [this, &c] {
      ++c.stopped;
      --in_office;
    };
    callbacks.on_new_leader = [&c](const std::string& identity) { c.new_leaders.push_back(identity); };
    c.elector = std::make_unique<kube::LeaderElector>(io.get_executor(), c.api, std::move(options),
                                                      std::move(callbacks), std::move(clocks));
    return c;
  }

  int leaders() const {
    int n = 0;
    for (const auto& c : candidates) n += c->leading() ? 1 : 0;
    return n;
  }

  // Runs the reactor in 10 ms slices until done() holds or `limit` passes, sampling the leaders
  // after every slice (and handing each sample to `sample`).
  bool run_until(const std::function<bool()>& done, Steady::duration limit,
                 const std::function<void(int)>& sample = {}) {
    auto deadline = Steady::now() + limit;
    for (;;) {
      int n = leaders();
      max_leading_seen = std::max(max_leading_seen, n);
      if (sample) sample(n);
      if (done()) return true;
      if (Steady::now() > deadline) return false;
      io.restart();
      io.run_for(10ms);
    }
  }
  void run_for(Steady::duration d, const std::function<void(int)>& sample = {}) {
    run_until([] { return false; }, d, sample);
  }

  template <class T>
  T await(boost::asio::awaitable<T> op) {
    auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
    REQUIRE(run_until([&] { return f.wait_for(0s) == std::future_status::ready; }, 20s));
    return f.get();
  }

  json::value lease(const std::string& name = "stowage-leader") {
    auto got = await(api.get(kLeases + "/" + name));
    INFO((got.ok() ? std::string() : got.error().message));
    REQUIRE(got.ok());
    return got.value();
  }

  // The Lease as the real kubectl reads it.
  json::value kubectl_lease(const std::string& name = "stowage-leader") {
    auto [status, out] = server.kubectl("get lease " + name + " -n " + kNamespace + " -o json");
    INFO(out);
    REQUIRE(status == 0);
    return json::parse(out);
  }

  void create_lease(const std::string& name, const std::string& holder, int seconds, const std::string& renew_time,
                    int transitions) {
    json::value lease = {{"apiVersion", "coordination.k8s.io/v1"},
                         {"kind", "Lease"},
                         {"metadata", {{"name", name}, {"namespace", kNamespace}}},
                         {"spec",
                          {{"holderIdentity", holder},
                           {"leaseDurationSeconds", seconds},
                           {"acquireTime", renew_time},
                           {"renewTime", renew_time},
                           {"leaseTransitions", transitions}}}};
    auto made = await(api.create(kLeases, lease));
    REQUIRE(made.ok());
  }

  Candidate* leader() {
    for (auto& c : candidates)
      if (c->leading()) return c.get();
    return nullptr;
  }
};

const std::regex kMicroTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");

}  // namespace

TEST_CASE("one elector creates a fresh lease, renews it and releases it, as kubectl sees it") {
  Harness h("fresh");
  h.server.write_kubeconfig(kNamespace);
  WallClock::time_point wall = *parse_rfc3339("2026-11-26T17:00:00Z") + std::chrono::microseconds(123456);
  kube::LeaderElectionOptions options;  // client-go's defaults: 15 s, 10 s, 2 s
  options.namespace_ = kNamespace;
  kube::LeaderElectionClocks clocks;
  clocks.wall = [&wall] { return wall; };
  Candidate& c = h.add(options, clocks);
  const std::string me = c.elector->identity();
  CHECK(std::regex_match(me, std::regex(R"(.+_[0-9a-f]{16})")));
  CHECK(c.elector->options().name == "stowage-leader");
  CHECK(c.elector->master_status() == 0);

  c.elector->start();
  REQUIRE(h.run_until([&] { return c.leading(); }, 10s));
  CHECK(c.started == 1);
  CHECK(c.new_leaders == std::vector<std::string>{me});
  CHECK(c.elector->master_status() == 1);
  CHECK(c.elector->leader_identity() == me);
  CHECK(c.elector->status().acquisitions == 1);

  json::value lease = h.kubectl_lease();
  CHECK(text_at(lease, {"kind"}) == "Lease");
  CHECK(text_at(lease, {"spec", "holderIdentity"}) == me);
  CHECK(int_at(lease, "leaseDurationSeconds") == 15);
  CHECK(text_at(lease, {"spec", "acquireTime"}) == "2026-11-26T17:00:00.123456Z");
  CHECK(text_at(lease, {"spec", "renewTime"}) == "2026-11-26T17:00:00.123456Z");
  CHECK(std::regex_match(text_at(lease, {"spec", "renewTime"}), kMicroTime));
  CHECK(int_at(lease, "leaseTransitions") == 0);

  // The next renewal (retry period 2 s) moves renewTime only.
  wall += 5s;
  REQUIRE(h.run_until([&] { return c.elector->status().attempts >= 2; }, 5s));
  h.run_for(200ms);
  lease = h.kubectl_lease();
  CHECK(text_at(lease, {"spec", "holderIdentity"}) == me);
  CHECK(text_at(lease, {"spec", "acquireTime"}) == "2026-11-26T17:00:00.123456Z");
  CHECK(text_at(lease, {"spec", "renewTime"}) == "2026-11-26T17:00:05.123456Z");
  CHECK(int_at(lease, "leaseTransitions") == 0);
  CHECK(c.leading());
  CHECK(c.started == 1);

  auto released = h.await(c.elector->async_release());
  INFO((released.ok() ? std::string() : released.error().message));
  CHECK(released.ok());
  CHECK(c.stopped == 1);
  CHECK_FALSE(c.leading());
  CHECK(c.elector->master_status() == 0);
  CHECK(c.elector->leader_identity().empty());
  lease = h.kubectl_lease();
  CHECK(text_at(lease, {"spec", "holderIdentity"}).empty());
  CHECK(int_at(lease, "leaseDurationSeconds") == 1);
  CHECK(text_at(lease, {"spec", "renewTime"}) == "2026-11-26T17:00:05.123456Z");
  CHECK(int_at(lease, "leaseTransitions") == 0);
}

TEST_CASE("two electors: one leads at a time, the other takes over after a crash and after a release") {
  Harness h("takeover");
  // Without release_on_cancel, stop() only ends the loops: a crash, as far as the lease can tell.
  auto alpha = fast_options("alpha");
  auto bravo = fast_options("bravo");
  alpha.release_on_cancel = false;
  bravo.release_on_cancel = false;
  Candidate& a = h.add(alpha);
  Candidate& b = h.add(bravo);
  a.elector->start();
  b.elector->start();
  REQUIRE(h.run_until([&] { return h.leaders() == 1; }, 5s));

  // Steady state: exactly one leader at every sample for 3 s (10 renewals).
  int samples = 0, bad = 0;
  h.run_for(3s, [&](int n) {
    ++samples;
    bad += n != 1 ? 1 : 0;
  });
  CHECK(samples > 100);
  CHECK(bad == 0);
  Candidate* first = h.leader();
  REQUIRE(first != nullptr);
  Candidate* second = first == &a ? &b : &a;
  CHECK(first->started == 1);
  CHECK(second->started == 0);
  CHECK(second->elector->leader_identity() == first->elector->identity());
  CHECK(int_at(h.lease(), "leaseTransitions") == 0);

  // The leader "crashes": its loops end, the lease is left as it was.
  auto crashed_at = Steady::now();
  first->elector->stop();
  REQUIRE(h.run_until([&] { return second->leading(); }, 6s));
  auto crash_takeover = Steady::now() - crashed_at;
  std::printf("takeover after a crash: %lld ms (lease 2000 ms, retry 300 ms)\n", ms(crash_takeover));
  CHECK(crash_takeover >= 1400ms);  // the survivor waited for the lease to expire...
  CHECK(crash_takeover <= 2000ms + 660ms + 700ms);  // ...and no longer than lease + one jittered retry (+ slack)
  json::value lease = h.lease();
  CHECK(text_at(lease, {"spec", "holderIdentity"}) == second->elector->identity());
  CHECK(int_at(lease, "leaseTransitions") == 1);
  CHECK(second->new_leaders.back() == second->elector->identity());

  // A third candidate (the crashed one restarted, with a new identity) waits while the lease is renewed.
  Candidate& c = h.add(fast_options("charlie"));
  c.elector->start();
  h.run_for(2500ms, [&](int n) { bad += n != 1 ? 1 : 0; });
  CHECK(bad == 0);
  CHECK(second->leading());
  CHECK(c.started == 0);

  // A clean release hands over at the candidate's next attempt, long before the lease would expire.
  auto released_at = Steady::now();
  auto released = h.await(second->elector->async_release());
  CHECK(released.ok());
  REQUIRE(h.run_until([&] { return c.leading(); }, 3s));
  auto release_takeover = Steady::now() - released_at;
  std::printf("takeover after a release: %lld ms\n", ms(release_takeover));
  CHECK(release_takeover <= 660ms + 700ms);  // one jittered retry, not a lease
  lease = h.lease();
  CHECK(text_at(lease, {"spec", "holderIdentity"}) == "charlie");
  CHECK(int_at(lease, "leaseDurationSeconds") == 2);
  CHECK(int_at(lease, "leaseTransitions") == 2);
  CHECK(h.max_in_office == 1);
  CHECK(h.max_leading_seen == 1);
  CHECK(a.stopped == a.started);
  CHECK(b.stopped == b.started);
}

TEST_CASE("a leader whose renewals fail loses leadership at the renew deadline and leads again after") {
  Harness h("failing");
  Candidate& c = h.add(fast_options("fragile"));
  c.elector->start();
  REQUIRE(h.run_until([&] { return c.leading(); }, 5s));
  h.run_for(500ms);

  h.server.control({{"action", "fail"}, {"code", 500}, {"path", "/leases/stowage-leader"}, {"count", -1}});
  auto failing_since = Steady::now();
  REQUIRE(h.run_until([&] { return c.stopped == 1; }, 5s));
  auto lost_after = Steady::now() - failing_since;
  std::printf("leadership lost %lld ms after renewals started failing (renew deadline 1500 ms)\n", ms(lost_after));
  CHECK(lost_after >= 1000ms);
  CHECK(lost_after <= 1500ms + 500ms);
  CHECK_FALSE(c.leading());
  CHECK(c.elector->status().losses == 1);
  CHECK(c.elector->status().last_error.find("HTTP 500") != std::string::npos);
  CHECK(c.elector->status().last_error.find("/leases/stowage-leader") != std::string::npos);

  // The elector keeps trying; once the server answers again it leads again.
  h.run_for(600ms);
  CHECK(c.started == 1);
  h.server.control({{"action", "clear_faults"}});
  REQUIRE(h.run_until([&] { return c.leading(); }, 3s));
  CHECK(c.started == 2);
  CHECK(c.elector->status().last_error.empty());
  CHECK(int_at(h.lease(), "leaseTransitions") == 0);  // it held the lease throughout
}

TEST_CASE("a renewal that hangs past the renew deadline ends leadership while it is still in flight") {
  Harness h("hanging");
  Candidate& c = h.add(fast_options("stuck"));
  c.elector->start();
  REQUIRE(h.run_until([&] { return c.leading(); }, 5s));

  h.server.control({{"action", "delay"}, {"ms", 4000}, {"verb", "update"}, {"path", "/leases/"}});
  auto hung_since = Steady::now();
  REQUIRE(h.run_until([&] { return c.stopped == 1; }, 5s));
  auto lost_after = Steady::now() - hung_since;
  std::printf("leadership lost %lld ms after a renewal hung (renew deadline 1500 ms)\n", ms(lost_after));
  CHECK(lost_after <= 1500ms + 500ms);
  CHECK(h.server.stats().at("faults").at("served").at("delay").to_number<int>() == 1);

  // The late write lands (the lease still names us), the next attempt renews it and leads again.
  REQUIRE(h.run_until([&] { return c.leading(); }, 8s));
  CHECK(Steady::now() - hung_since >= 4s);
  CHECK(c.started == 2);
}

TEST_CASE("racing candidates never make two leaders and every handover adds one leaseTransition") {
  Harness h("race");
  // Writes sit 200 ms at the server, so candidates that saw the same record write together: all but
  // one get a 409 (AlreadyExists on create, Conflict on update).
  h.server.control({{"action", "delay"}, {"ms", 200}, {"verb", "create"}, {"path", "/leases"}, {"count", -1}});
  h.server.control({{"action", "delay"}, {"ms", 200}, {"verb", "update"}, {"path", "/leases"}, {"count", -1}});
  int next_id = 0;
  auto join = [&] {
    auto& c = h.add(fast_options("racer-" + std::to_string(next_id++)));
    c.elector->start();
  };
  for (int i = 0; i < 4; ++i) join();
  REQUIRE(h.run_until([&] { return h.leaders() == 1; }, 5s));

  const int rounds = 5;
  for (int round = 0; round < rounds; ++round) {
    h.run_for(700ms);
    Candidate* leader = h.leader();
    REQUIRE(leader != nullptr);
    leader->elector->stop();  // releases in the background
    join();                    // keep four in the race
    REQUIRE(h.run_until([&] { return h.leader() != nullptr; }, 4s));
    CHECK(h.leader() != leader);
  }
  h.run_for(500ms);
  CHECK(h.max_in_office == 1);
  CHECK(h.max_leading_seen == 1);
  CHECK(h.leaders() == 1);
  CHECK(int_at(h.lease(), "leaseTransitions") == rounds);
  auto codes = h.server.stats().at("responses_by_code").as_object();
  int conflicts = codes.contains("409") ? codes.at("409").to_number<int>() : 0;
  std::printf("racing candidates: %d conflicts (409) over %d handovers\n", conflicts, rounds);
  CHECK(conflicts >= 3);
}

TEST_CASE("a lease is judged by when this elector saw it change, not by the holder's renewTime") {
  Harness h("observed");
  // Renewed "in 2000" as far as the holder's clock says: still valid for 2 s from the first look.
  h.create_lease("ancient", "ghost", 2, "2000-01-01T00:00:00.000000Z", 7);
  Candidate& patient = h.add(fast_options("patient", "ancient"));
  auto started = Steady::now();
  patient.elector->start();
  REQUIRE(h.run_until([&] { return patient.leading(); }, 5s));
  auto waited = Steady::now() - started;
  std::printf("an unrenewed lease (2 s) taken over after %lld ms\n", ms(waited));
  CHECK(waited >= 1900ms);
  CHECK(waited <= 2000ms + 660ms + 700ms);
  CHECK(patient.new_leaders == std::vector<std::string>{"ghost", "patient"});
  json::value lease = h.lease("ancient");
  CHECK(int_at(lease, "leaseTransitions") == 8);
  CHECK(text_at(lease, {"spec", "acquireTime"}) != "2000-01-01T00:00:00.000000Z");

  // Renewed "in 2100", for an hour: only the injected local clock moving past the hour frees it.
  h.create_lease("future", "ghost", 3600, "2100-01-01T00:00:00.000000Z", 0);
  Steady::duration offset{0};
  kube::LeaderElectionClocks clocks;
  clocks.steady = [&offset] { return Steady::now() + offset; };
  Candidate& jumper = h.add(fast_options("jumper", "future"), clocks);
  jumper.elector->start();
  h.run_for(1s);
  CHECK_FALSE(jumper.leading());
  CHECK(jumper.elector->leader_identity() == "ghost");
  offset += 3601s;
  REQUIRE(h.run_until([&] { return jumper.leading(); }, 2s));
  CHECK(int_at(h.lease("future"), "leaseTransitions") == 1);
}

TEST_CASE("a 403 is logged at error once per episode with the RBAC rule to grant, and never stops the elector") {
  Harness h("forbidden");
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  sink->set_pattern("%l %v");
  auto previous = spdlog::default_logger();
  auto capture = std::make_shared<spdlog::logger>("capture", sink);
  capture->set_level(spdlog::level::debug);
  spdlog::set_default_logger(capture);
  struct Restore {
    std::shared_ptr<spdlog::logger> logger;
    ~Restore() { spdlog::set_default_logger(logger); }
  } restore{previous};
  auto error_lines = [&] {
    std::istringstream in(captured.str());
    int n = 0;
    for (std::string line; std::getline(in, line);)
      n += line.rfind("error ", 0) == 0 &&
                   line.find("grant get,create,update on leases.coordination.k8s.io in namespace ns1") !=
                       std::string::npos
               ? 1
               : 0;
    return n;
  };
  const std::string rbac = "leases.coordination.k8s.io \"stowage-leader\" is forbidden: User "
                           "\"system:serviceaccount:ns1:stowage\" cannot get resource \"leases\"";
  h.server.control({{"action", "fail"}, {"code", 403}, {"path", "/leases"}, {"count", -1}, {"message", rbac}});
  Candidate& c = h.add(fast_options("denied"));
  c.elector->start();
  h.run_for(1500ms);
  CHECK(c.elector->status().failures >= 3);
  CHECK(error_lines() == 1);
  CHECK(captured.str().find(rbac) != std::string::npos);
  CHECK(captured.str().find("Bearer") == std::string::npos);
  CHECK_FALSE(c.leading());

  h.server.control({{"action", "clear_faults"}});
  REQUIRE(h.run_until([&] { return c.leading(); }, 3s));

  // A new episode (renewals forbidden) is logged again, once, and ends leadership at the deadline.
  h.server.control({{"action", "fail"}, {"code", 403}, {"path", "/leases"}, {"count", -1}, {"message", rbac}});
  REQUIRE(h.run_until([&] { return c.stopped == 1; }, 4s));
  h.run_for(600ms);
  CHECK(error_lines() == 2);
  h.server.control({{"action", "clear_faults"}});
}

TEST_CASE("a leader in another process killed with SIGKILL is replaced within lease duration plus a retry") {
  Harness h("process");
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  std::fflush(nullptr);  // or the child repeats what is still buffered
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // the other process: its own reactor, client and elector; says "L" when it leads
    ::close(pipe_fds[0]);
    boost::asio::io_context io;
    http::Client http(io.get_executor());
    kube::ApiClient api(http, h.client_config());
    kube::LeaderCallbacks callbacks;
    callbacks.on_started_leading = [fd = pipe_fds[1]] { (void)!::write(fd, "L", 1); };
    kube::LeaderElector elector(io.get_executor(), api, fast_options("other-process"), callbacks);
    elector.start();
    io.run_for(60s);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  struct Reap {
    pid_t pid;
    int fd;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ::close(fd);
    }
  } reap{child, pipe_fds[0]};
  auto child_leads = [&] {
    char c = 0;
    return ::read(pipe_fds[0], &c, 1) == 1 && c == 'L';
  };
  REQUIRE(h.run_until(child_leads, 10s));

  Candidate& me = h.add(fast_options("this-process"));
  me.elector->start();
  h.run_for(2500ms);  // longer than the lease: the other process keeps renewing it
  CHECK_FALSE(me.leading());
  CHECK(me.elector->leader_identity() == "other-process");

  ::kill(child, SIGKILL);
  auto killed_at = Steady::now();
  REQUIRE(h.run_until([&] { return me.leading(); }, 6s));
  auto takeover = Steady::now() - killed_at;
  std::printf("takeover after SIGKILL of the leading process: %lld ms\n", ms(takeover));
  CHECK(takeover >= 1400ms);
  CHECK(takeover <= 2000ms + 660ms + 700ms);
  CHECK(int_at(h.lease(), "leaseTransitions") == 1);
}

TEST_CASE("options are checked with client-go's rules") {
  kube::LeaderElectionOptions o;
  o.namespace_ = "ns";
  CHECK_FALSE(kube::validate(o).has_value());  // the defaults: 15 s, 10 s, 2 s
  auto broken = [&](auto change) {
    kube::LeaderElectionOptions copy = o;
    change(copy);
    return kube::validate(copy).value_or("");
  };
  CHECK(broken([](auto& x) { x.namespace_.clear(); }).find("namespace") != std::string::npos);
  CHECK(broken([](auto& x) { x.name.clear(); }).find("name") != std::string::npos);
  CHECK(broken([](auto& x) { x.renew_deadline = 15s; }).find("greater than the renew deadline") != std::string::npos);
  CHECK(broken([](auto& x) { x.retry_period = 9s; }).find("1.2 x the retry period") != std::string::npos);
  CHECK(broken([](auto& x) { x.retry_period = 0s; }).find("positive") != std::string::npos);
  CHECK(broken([](auto& x) {
          x.lease_duration = 900ms;
          x.renew_deadline = 800ms;
          x.retry_period = 100ms;
        }).find("at least 1 s") != std::string::npos);

  boost::asio::io_context io;
  http::Client http(io.get_executor());
  kube::ClientConfig config;
  config.server = kube::parse_server_url("https://127.0.0.1:1", true).value();
  kube::ApiClient api(http, config);
  o.renew_deadline = 20s;
  CHECK_THROWS_AS(kube::LeaderElector(io.get_executor(), api, o, {}), std::invalid_argument);

  CHECK(kube::default_leader_identity() != kube::default_leader_identity());
}
