// stowage-cloud-bench: metadata.yaml uploads per second against the real test servers on loopback
// (S3 on moto with authentication on, Azure on Azurite, GCS on the project's GCS test server), each
// figure beside the same server's capacity measured by a plain client in the same run:
//  (a) the whole engine at its default settings (16 workers): N BackupStorages, each with its own
//      Secret and its own prefix in one bucket/container, from a manifest folder to Ready, with the
//      reactor's longest stall and p99 lag;
//  (b) a plain loop of the project's own backend create_metadata() on fresh prefixes, 16 at once on
//      one io_context, without the engine; then the same loop doing read_metadata() first, as the
//      reconciler does (the engine's requests without the engine); for S3 also boto3 (16 threads)
//      as an independent client.
// The HTTP requests per upload, and the CPU seconds of this process and of the server (its process
// group) are printed per phase, to show which side is the bottleneck; the load average too, as the
// servers share the machine's cores with the bench and with anything else running.
// Usage: stowage-cloud-bench [N per provider, default 300]
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "common/crypto.hpp"
#include "engine/lag_monitor.hpp"
#include "engine/manifest_source.hpp"
#include "engine/runtime.hpp"
#include "kube/conditions.hpp"
#include "storage/azure_backend.hpp"
#include "storage/gcs_backend.hpp"
#include "storage/metadata.hpp"
#include "storage/s3_backend.hpp"
#include "support/azurite_server.hpp"
#include "support/gcs_server.hpp"
#include "support/moto_server.hpp"
#include <spdlog/spdlog.h>

namespace fs = std::filesystem;
namespace asio = boost::asio;

using Clock = std::chrono::steady_clock;
using namespace stowage;

namespace {

constexpr int kPlainConcurrency = 16;  // the engine's default reconcile.workers
constexpr auto kEngineLimit = std::chrono::seconds(150);

using bench::cpu_seconds;
using bench::load_average;
using bench::seconds_since;

fs::path scratch(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("stowage-cloud-bench-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}


// CPU seconds used so far by the servers this process started: every process whose process group
// is led by one of our direct children (the harnesses start each server in its own group).
double server_cpu_seconds() {
  std::set<long> groups;
  std::vector<std::vector<std::string>> all;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto f = bench::stat_fields((entry.path() / "stat").string());
    if (f.size() < 13) continue;
    f.push_back(name);
    if (std::stol(f[1]) == ::getpid() && std::stol(f[2]) == std::stol(name)) groups.insert(std::stol(name));
    all.push_back(std::move(f));
  }
  long ticks = 0;
  for (const auto& f : all)
    if (groups.count(std::stol(f[2]))) ticks += std::stol(f[11]) + std::stol(f[12]);  // utime + stime
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct CpuMark {
  double self = cpu_seconds(), server = server_cpu_seconds();
  std::string since() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "cpu: bench %.1f s, server %.1f s", cpu_seconds() - self,
                  server_cpu_seconds() - server);
    return buf;
  }
};


std::string b64(const std::string& s) { return crypto::base64_encode(s); }

// One provider under test: how to write its manifests and how to make a backend for the plain loop.
struct Provider {
  std::string gcs_endpoint;
  // Secret "creds-<i>" and BackupStorage "s<i>" (namespace bench) with prefix `prefix`.
  std::function<std::string(int i, const std::string& prefix)> manifest;
  std::function<std::unique_ptr<storage::Backend>(http::Client&, const std::string& prefix)> backend;
};

std::string secret_yaml(int i, const std::vector<std::pair<std::string, std::string>>& data) {
  std::string out = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds-" + std::to_string(i) +
                    ", namespace: bench}\ndata:\n";
  for (const auto& [k, v] : data) out += "  " + k + ": " + b64(v) + "\n";
  return out + "---\n";
}

std::string storage_yaml(int i, const std::string& provider, const std::string& section) {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: s" + std::to_string(i) +
         ", namespace: bench}\nspec:\n  storage:\n    provider: " + provider + "\n    " + provider + ": " + section +
         "\n  deletionPolicy: Delete\n---\n";
}

struct EngineResult {
  bool complete = false;
  double secs = 0, load_secs = 0, rate = 0;
  double stall_ms = 0, p99_ms = 0;
  std::uint64_t requests = 0, connections = 0;
};

// (a) manifests -> store -> queue -> controller -> reconciler -> cloud backend -> status, until all
// N are Ready.
EngineResult engine_run(const Provider& p, int n, const std::string& tag) {
  auto dir = scratch(tag);
  fs::create_directories(dir / "manifests");
  {
    std::ofstream out(dir / "manifests" / "storages.yaml");
    for (int i = 0; i < n; ++i) out << p.manifest(i, "engine/s" + std::to_string(i));
  }
  config::Config cfg;
  cfg.log_level = "warn";
  cfg.state_dir = dir / "state";
  cfg.local_root = dir / "root";
  std::filesystem::create_directories(cfg.local_root);
  cfg.manifests = dir / "manifests";
  cfg.gcs_endpoint = p.gcs_endpoint;

  EngineResult r;
  CpuMark cpu;
  auto t0 = Clock::now();
  engine::Runtime rt(cfg, engine::OfflineSource{cfg.manifests.string(), true});
  engine::ManifestSource source(rt.io().get_executor(), rt.pool(),
                                {cfg.manifests, cfg.manifests_debounce, cfg.manifests_poll_interval, false}, rt.world());
  std::set<std::string> ready;
  std::uint64_t failures = 0;
  std::string first_error;
  asio::steady_timer limit(rt.io(), kEngineLimit);
  auto finish = [&] {
    limit.cancel();
    source.stop();
    rt.controller().stop();
    rt.lag().stop();
    rt.store().when_durable([&] { rt.io().stop(); });
  };
  rt.controller().on_outcome([&](const persistence::QueueKey& k, const engine::Outcome& o) {
    if (auto found = rt.world().get({k.namespace_, k.name}); found && found->object.status.phase == kube::kPhaseReady) {
      ready.insert(k.str());
    } else {
      ++failures;
      if (first_error.empty()) first_error = k.str() + ": " + o.error;
    }
    if (static_cast<int>(ready.size()) == n) {
      r.complete = true;
      finish();
    }
  });
  limit.async_wait([&](boost::system::error_code ec) {
    if (!ec) finish();
  });
  source.start([&] {
    r.load_secs = seconds_since(t0);
    rt.controller().start();
  });
  rt.lag().start();
  rt.io().run();
  r.secs = seconds_since(t0);
  r.rate = n / r.secs;
  r.stall_ms = rt.lag().longest().count() / 1000.0;
  r.p99_ms = rt.lag().percentile(99).count() / 1000.0;
  auto stats = rt.http().stats();
  r.requests = stats.requests;
  r.connections = stats.connections_opened;
  if (!r.complete)
    std::printf("  engine: INCOMPLETE, %zu of %d Ready after %.1f s\n", ready.size(), n, r.secs);
  std::printf("  engine (16 workers): %d storages Ready in %.2f s = %.1f uploads/s; reactor longest stall %.1f ms, "
              "p99 lag %.1f ms\n",
              static_cast<int>(ready.size()), r.secs, r.rate, r.stall_ms, r.p99_ms);
  std::printf("    manifests (%d Secrets + %d BackupStorages) loaded after %.2f s; %.1f uploads/s from then on\n", n, n,
              r.load_secs, n / (r.secs - r.load_secs));
  std::printf("    %.2f HTTP requests per upload (%llu requests, %llu connections); %s\n",
              static_cast<double>(r.requests) / n, static_cast<unsigned long long>(r.requests),
              static_cast<unsigned long long>(r.connections), cpu.since().c_str());
  if (failures > 0)
    std::printf("    %llu reconciles not Ready on the way (retried); first: %s\n",
                static_cast<unsigned long long>(failures), first_error.c_str());
  return r;
}

struct PlainResult {
  double secs = 0, rate = 0;
  int created = 0, failed = 0;
};

// (b) the project's backend without the engine: `concurrency` coroutines on one io_context, each
// taking the next fresh prefix and calling create_metadata() on a backend made for it.
// With `with_read`, each upload first reads metadata.yaml (absent) as the reconciler does, so the
// requests are the engine's and only the engine's own costs differ.
PlainResult plain_run(const Provider& p, int n, const std::string& prefix_root, bool with_read, bool quiet = false) {
  asio::io_context io{1};
  http::Client client(io.get_executor());
  const std::string body = storage::render_metadata({"2026-01-01T00:00:00Z", "v0.1.0"});
  PlainResult r;
  int next = 0;
  std::string first_error;
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < n) {
      int i = next++;
      auto backend = p.backend(client, prefix_root + "/s" + std::to_string(i));
      if (with_read) {
        auto state = co_await backend->read_metadata();
        if (!state.ok() || state.value().exists) {
          ++r.failed;
          if (first_error.empty())
            first_error = state.ok() ? "metadata.yaml already exists" : state.error().message;
          continue;
        }
      }
      auto created = co_await backend->create_metadata(body);
      if (!created.ok()) {
        ++r.failed;
        if (first_error.empty()) first_error = created.error().message;
      } else if (created.value() == storage::CreateOutcome::Created) {
        ++r.created;
      }
    }
  };
  CpuMark cpu;
  auto t0 = Clock::now();
  for (int w = 0; w < kPlainConcurrency; ++w) asio::co_spawn(io, worker(), asio::detached);
  io.run();
  r.secs = seconds_since(t0);
  r.rate = n / r.secs;
  if (quiet) return r;
  auto stats = client.stats();
  std::printf("  plain %s loop (16 at once): %d uploads in %.2f s = %.1f uploads/s\n",
              with_read ? "read_metadata + create_metadata" : "create_metadata", n, r.secs, r.rate);
  std::printf("    %.2f HTTP requests per upload (%llu requests, %llu connections); %s\n",
              static_cast<double>(stats.requests) / n, static_cast<unsigned long long>(stats.requests),
              static_cast<unsigned long long>(stats.connections_opened), cpu.since().c_str());
  if (r.failed > 0 || r.created != n)
    std::printf("    %d created, %d failed; first error: %s\n", r.created, r.failed, first_error.c_str());
  return r;
}

// boto3, 16 threads sharing one client. mode "create": HEAD then PUT with If-None-Match: * (the
// requests create_metadata makes); mode "put": a bare PutObject. Timed inside Python, client made first.
const char* kBotoScript = R"PY(
import os, sys, time
for v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(v, None)
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, key_id, secret, bucket, prefix, n, workers, mode = sys.argv[1:9]
n, workers = int(n), int(workers)
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                  aws_secret_access_key=secret,
                  config=Config(max_pool_connections=workers, retries={"max_attempts": 3, "mode": "standard"}))
body = open(sys.argv[9], "rb").read()
def one(i):
    key = "%s/s%d/metadata.yaml" % (prefix, i)
    if mode == "create":
        try:
            s3.head_object(Bucket=bucket, Key=key)
            return
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/yaml", IfNoneMatch="*")
    else:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/yaml")
t0 = time.monotonic()
with ThreadPoolExecutor(workers) as pool:
    list(pool.map(one, range(n)))
print("%.4f" % (time.monotonic() - t0))
)PY";

double boto3_run(const test_support::MotoServer& moto, const std::string& bucket, int n, const std::string& mode,
                 const fs::path& dir) {
  auto script = dir / "boto_loop.py", body = dir / "metadata.yaml";
  if (!fs::exists(script)) {
    std::ofstream(script) << kBotoScript;
    std::ofstream(body) << storage::render_metadata({"2026-01-01T00:00:00Z", "v0.1.0"});
  }
  using test_support::shell_quote;
  const auto& c = moto.credentials();
  std::string cmd = "python3 " + shell_quote(script.string()) + " " + shell_quote(moto.endpoint()) + " " +
                    shell_quote(c.access_key_id) + " " + shell_quote(c.secret_access_key) + " " + shell_quote(bucket) +
                    " boto-" + mode + " " + std::to_string(n) + " " + std::to_string(kPlainConcurrency) + " " + mode +
                    " " + shell_quote(body.string()) + " 2>" + shell_quote((dir / ("boto-" + mode + ".err")).string());
  CpuMark cpu;
  double python_cpu = cpu_seconds(RUSAGE_CHILDREN);
  auto [out, code] = test_support::run_command(cmd);
  python_cpu = cpu_seconds(RUSAGE_CHILDREN) - python_cpu;
  if (code != 0) {
    std::printf("  boto3 %s loop FAILED (exit %d): %s\n", mode.c_str(), code,
                test_support::read_text(dir / ("boto-" + mode + ".err")).c_str());
    return 0;
  }
  double secs = std::stod(out);
  std::printf("  boto3 loop, %s (16 threads): %d uploads in %.2f s = %.1f uploads/s\n",
              mode == "create" ? "HEAD + PUT If-None-Match" : "PUT only", n, secs, n / secs);
  std::printf("    %s; python (whole process, start-up included) %.1f s\n", cpu.since().c_str(), python_cpu);
  return n / secs;
}

// One provider: warm the server up; then the plain loops before and after the engine (a server that
// speeds up as it warms, or slows down as it fills, moves both sides alike); prints the ratios.
void measure(const Provider& p, int n, const std::string& tag,
             const std::function<void(int)>& extra_baselines = {}) {
  plain_run(p, 48, "warmup", false, true);  // connections, token, the server's first-request costs
  auto plain = plain_run(p, n, "plain", false);
  auto same_before = plain_run(p, n, "plain-read-before", true);
  auto engine = engine_run(p, n, tag);
  auto same_after = plain_run(p, n, "plain-read-after", true);
  if (extra_baselines) extra_baselines(n);
  double same = (same_before.rate + same_after.rate) / 2;
  std::printf("  => engine / plain create_metadata loop = %.2f (%.1f vs %.1f uploads/s)%s\n", engine.rate / plain.rate,
              engine.rate, plain.rate, engine.complete ? "" : " [engine run incomplete]");
  std::printf("     engine / plain loop with the engine's requests (read + create, mean of before and after) = %.2f "
              "(vs %.1f uploads/s)\n",
              engine.rate / same, same);
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  int n = argc > 1 ? std::atoi(argv[1]) : 300;
  if (n <= 0) {
    std::fprintf(stderr, "usage: %s [storages per provider, default 300]\n", argv[0]);
    return 2;
  }
  char host[256] = {};
  ::gethostname(host, sizeof host);
  std::printf("stowage-cloud-bench on %s, %ld cores (load average %s); %d storages per provider, loopback servers\n",
              host, ::sysconf(_SC_NPROCESSORS_ONLN), load_average().c_str(), n);
  auto total = Clock::now();
  auto scratch_dir = scratch("boto");

  try {
    {
      std::printf("\n[S3] moto, signature checking on\n");
      auto started = Clock::now();
      test_support::MotoServer moto;
      const std::string bucket = "stowage-bench";
      moto.make_bucket(bucket);
      std::printf("  (server started and seeded in %.1f s)\n", seconds_since(started));
      const auto c = moto.credentials();
      const std::string endpoint = moto.endpoint();
      Provider p;
      p.manifest = [&](int i, const std::string& prefix) {
        return secret_yaml(i, {{"AWS_ACCESS_KEY_ID", c.access_key_id}, {"AWS_SECRET_ACCESS_KEY", c.secret_access_key}}) +
               storage_yaml(i, "s3",
                            "{endpoint: " + endpoint + ", bucket: " + bucket + ", region: us-east-1, prefix: " +
                                prefix + ", secretName: creds-" + std::to_string(i) + "}");
      };
      p.backend = [&](http::Client& client, const std::string& prefix) -> std::unique_ptr<storage::Backend> {
        storage::S3Options o;
        o.endpoint = endpoint;
        o.bucket = bucket;
        o.prefix = prefix;
        o.region = "us-east-1";
        o.access_key_id = c.access_key_id;
        o.secret_access_key = c.secret_access_key;
        o.max_connections = kPlainConcurrency;
        return std::make_unique<storage::S3Backend>(client, std::move(o));
      };
      measure(p, n, "s3", [&](int count) {
        boto3_run(moto, bucket, count, "create", scratch_dir);
        boto3_run(moto, bucket, count, "put", scratch_dir);
      });
    }
    {
      std::printf("\n[Azure] Azurite (blob), Shared Key from a connection string\n");
      auto started = Clock::now();
      test_support::AzuriteServer azurite;
      const std::string container = "stowage-bench";
      azurite.create_container(container);
      std::printf("  (server started in %.1f s)\n", seconds_since(started));
      const std::string connection = azurite.connection_string(), account = azurite.account();
      Provider p;
      p.manifest = [&](int i, const std::string& prefix) {
        return secret_yaml(i, {{"AZURE_STORAGE_CONNECTION_STRING", connection}}) +
               storage_yaml(i, "azure",
                            "{storageAccount: " + account + ", container: " + container + ", prefix: " + prefix +
                                ", secretName: creds-" + std::to_string(i) + "}");
      };
      p.backend = [&](http::Client& client, const std::string& prefix) -> std::unique_ptr<storage::Backend> {
        storage::AzureOptions o;
        o.storage_account = account;
        o.container = container;
        o.prefix = prefix;
        o.connection_string = connection;
        o.max_connections = kPlainConcurrency;
        return std::make_unique<storage::AzureBackend>(client, std::move(o));
      };
      measure(p, n, "azure");
    }
    {
      std::printf("\n[GCS] the project's GCS test server (tests/servers/gcs_server.py), service-account key\n");
      auto started = Clock::now();
      test_support::GcsServer gcs;
      std::printf("  (server started in %.1f s)\n", seconds_since(started));
      const std::string endpoint = gcs.endpoint(), key = gcs.key_json();
      Provider p;
      p.gcs_endpoint = endpoint;
      p.manifest = [&](int i, const std::string& prefix) {
        return secret_yaml(i, {{"GOOGLE_SERVICE_ACCOUNT_JSON_KEY", key}}) +
               storage_yaml(i, "gcs", "{bucket: stowage, prefix: " + prefix + ", secretName: creds-" +
                                          std::to_string(i) + "}");
      };
      p.backend = [&](http::Client& client, const std::string& prefix) -> std::unique_ptr<storage::Backend> {
        storage::GcsOptions o;
        o.bucket = "stowage";
        o.prefix = prefix;
        o.service_account_json = key;
        o.endpoint = endpoint;
        o.max_connections = kPlainConcurrency;
        return std::make_unique<storage::GcsBackend>(client, std::move(o));
      };
      measure(p, n, "gcs");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stowage-cloud-bench: %s\n", e.what());
    return 1;
  }

  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  std::printf("\ntotal %.1f s; peak RSS of this process %.0f MiB; load average now %s\n", seconds_since(total),
              ru.ru_maxrss / 1024.0, load_average().c_str());
  std::error_code ec;
  fs::remove_all(scratch_dir, ec);
  for (const char* tag : {"s3", "azure", "gcs"}) fs::remove_all(scratch_dir.parent_path() /
                                                                ("stowage-cloud-bench-" + std::to_string(::getpid()) +
                                                                 "-" + tag), ec);
  return 0;
}
