// LocalBackend: the coroutine face of local_fs. Each operation runs its blocking step on the I/O
// thread pool and resumes the caller on the caller's own executor (co_spawn's completion is
// dispatched to the awaiting coroutine's executor). An exception from a step (allocation, the
// CSPRNG) becomes a transient IOError value: nothing is thrown across the module seam.
#include "storage/local_backend.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include "storage/local_fs.hpp"
#include "storage/metadata.hpp"

namespace stowage::storage {
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace {

// Absolute, lexically normal, without a trailing slash: "/data/x/./" -> "/data/x".
fs::path normalized(const fs::path& dir) {
  std::error_code ec;
  fs::path abs = fs::absolute(dir, ec);
  if (ec) abs = dir;
  abs = abs.lexically_normal();
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();
  return abs;
}

template <class R, class Work>
R guarded(Work& work) {
  try {
    return work();
  } catch (const std::exception& e) {
    return Err(BackendError{true, "IOError", std::string("local backend: ") + e.what(), std::nullopt});
  }
}

// Runs `work` on `pool` and resumes the awaiting coroutine on its own executor. The result travels
// in an optional because co_spawn needs a default-constructible value type (Result has none);
// `guarded` catches everything, so it is always set.
//
// Lambdas are named locals, never temporaries inside a co_await expression: GCC 12 destroys such
// temporaries twice (GCC PR 101367 and relatives).
template <class R, class Work>
asio::awaitable<R> on_pool(asio::thread_pool& pool, Work work) {
  auto task = [work = std::move(work)]() mutable -> asio::awaitable<std::optional<R>> {
    co_return guarded<R>(work);
  };
  // No cancellation reaches the task on the pool: Asio 1.26's co_spawn then throws from its own
  // entry point on the pool thread (std::terminate). A cancelled caller waits for the step to end
  // (local wipes end at once once the stop flag is up) and is cancelled at its next await.
  auto unforwarded = asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable);
  std::optional<R> result = co_await asio::co_spawn(pool, std::move(task), std::move(unforwarded));
  co_return std::move(*result);
}

}  // namespace

LocalBackend::LocalBackend(asio::thread_pool& io_pool, LocalBackendOptions options)
    : pool_(io_pool), options_(std::move(options)) {
  options_.directory = normalized(options_.directory);
  options_.root = normalized(options_.root);
}

std::string LocalBackend::identity() const { return "local:" + options_.directory.string(); }

std::string LocalBackend::metadata_location() const { return (options_.directory / kMetadataFile).string(); }

// A read that finds metadata.yaml also clears stale temp files: the storage is initialized, so no
// write (which would clear them) comes again, and a temp left by a kill -9 would stay forever.
asio::awaitable<BackendResult<MetadataState>> LocalBackend::read_metadata() {
  auto work = [options = options_] {
    auto state = local_fs::read_metadata(options);
    if (state && state.value().exists) local_fs::remove_stale_temps(options);
    return state;
  };
  co_return co_await on_pool<BackendResult<MetadataState>>(pool_, std::move(work));
}

asio::awaitable<BackendResult<CreateOutcome>> LocalBackend::create_metadata(std::string body) {
  auto work = [options = options_, body = std::move(body)] { return local_fs::create_metadata(options, body); };
  co_return co_await on_pool<BackendResult<CreateOutcome>>(pool_, std::move(work));
}

// One step at a time on the pool (each about options_.wipe_step long), the progress hook awaited on the
// caller's executor in between. The steps run one after another, so the Wipe is never touched by
// two threads at once.
asio::awaitable<WipeReport> LocalBackend::wipe(WipePlan plan) {
  auto job = std::make_shared<local_fs::Wipe>(options_, std::move(plan));
  for (;;) {
    auto step = [job, budget = options_.wipe_step] { return BackendResult<bool>(job->step(budget)); };
    auto finished = co_await on_pool<BackendResult<bool>>(pool_, std::move(step));
    if (!finished.ok()) {  // an exception (allocation) inside the step: stop where it was
      WipeReport report = job->report();
      report.error = std::move(finished.error());
      co_return report;
    }
    if (finished.value()) co_return job->report();
    if (delete_progress_) co_await delete_progress_(job->report().removed);
  }
}

asio::awaitable<BackendResult<Ok>> LocalBackend::check_access() {
  auto work = [options = options_] { return local_fs::check_access(options); };
  co_return co_await on_pool<BackendResult<Ok>>(pool_, std::move(work));
}

}  // namespace stowage::storage
