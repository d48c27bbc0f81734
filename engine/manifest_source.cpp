#include "engine/manifest_source.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <set>

#include "engine/manifests.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {

struct CachedFile {
  std::int64_t mtime_ns = 0;
  std::int64_t size = 0;
  std::uint64_t inode = 0;
  FileContents contents;
};

// The changes one scan found, computed off the reactor.
struct Delta {
  std::vector<kube::Secret> secrets_upserted;
  std::vector<ObjectKey> secrets_removed;
  std::vector<kube::BackupStorage> storages_upserted;
  std::vector<ObjectKey> storages_removed;
  std::vector<std::string> new_problems;
  std::vector<fs::path> dirs;
  std::string folder_error;
  std::size_t storage_count = 0;
};

bool same_secret(const kube::Secret& a, const kube::Secret& b) {
  return a.data == b.data && a.invalid_keys == b.invalid_keys && a.type == b.type;
}

}  // namespace

struct ManifestSource::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, asio::thread_pool& p, ManifestSourceOptions o, SourceSink& s)
      : executor(ex), pool(p), options(std::move(o)), sink(s), debounce(ex), poll(ex), inotify(ex) {}

  asio::any_io_executor executor;
  asio::thread_pool& pool;
  ManifestSourceOptions options;
  SourceSink& sink;
  asio::steady_timer debounce;
  asio::steady_timer poll;
  asio::posix::stream_descriptor inotify;
  std::function<void()> on_synced;
  bool stopped = false;
  bool synced = false;
  bool scanning = false;
  bool rescan_wanted = false;
  bool debounce_armed = false;
  std::uint64_t scans = 0;
  std::set<std::string> watched_dirs;

  // Owned by the scan (which never overlaps itself): the file cache and the last snapshot.
  std::map<fs::path, CachedFile> files;
  Snapshot last;
  std::set<std::string> reported;

  Delta scan_folder() {
    Delta d;
    std::string error;
    auto paths = list_manifest_files(options.dir, error, &d.dirs);
    if (!error.empty()) {
      d.folder_error = error;
      return d;
    }
    std::map<fs::path, CachedFile> next;
    Snapshot snap;
    for (const auto& p : paths) {
      struct stat st {};
      if (::stat(p.c_str(), &st) != 0) continue;  // vanished between listing and stat
      std::int64_t mtime = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      auto old = files.find(p);
      CachedFile entry;
      if (old != files.end() && old->second.mtime_ns == mtime && old->second.size == st.st_size &&
          old->second.inode == st.st_ino) {
        entry = std::move(old->second);
      } else {
        entry = {mtime, st.st_size, st.st_ino, read_manifest_file(p)};
        if (entry.contents.unreadable && old != files.end()) {
          // Keep what the file held before; only the problem is new.
          auto problems = std::move(entry.contents.problems);
          entry.contents = std::move(old->second.contents);
          entry.contents.problems = std::move(problems);
          entry.contents.unreadable = true;
        }
      }
      add_to_snapshot(snap, entry.contents);
      next.emplace(p, std::move(entry));
    }
    files = std::move(next);
    diff(snap, d);
    last = std::move(snap);
    return d;
  }

  void diff(const Snapshot& now, Delta& d) {
    for (const auto& [key, s] : now.secrets) {
      auto it = last.secrets.find(key);
      if (it == last.secrets.end() || !same_secret(it->second.object, s.object)) d.secrets_upserted.push_back(s.object);
    }
    for (const auto& [key, _] : last.secrets)
      if (!now.secrets.count(key)) d.secrets_removed.push_back(key);
    for (const auto& [key, s] : now.storages) {
      auto it = last.storages.find(key);
      if (it == last.storages.end() ||
          boost::json::serialize(it->second.object.raw) != boost::json::serialize(s.object.raw))
        d.storages_upserted.push_back(s.object);
    }
    for (const auto& [key, _] : last.storages)
      if (!now.storages.count(key)) d.storages_removed.push_back(key);
    std::set<std::string> current(now.problems.begin(), now.problems.end());
    for (const auto& p : now.problems)
      if (!reported.count(p)) d.new_problems.push_back(p);
    reported = std::move(current);
    d.storage_count = now.storages.size();
  }

  asio::awaitable<void> scan_and_apply() {
    auto self = shared_from_this();
    scanning = true;
    // A named lambda: GCC 12 destroys a by-value-capturing lambda temporary in a co_await twice.
    auto scan = [self]() -> asio::awaitable<Delta> { co_return self->scan_folder(); };
    Delta d = co_await asio::co_spawn(pool, scan, asio::use_awaitable);
    ++scans;
    if (stopped) co_return;
    co_await apply(std::move(d));
    scanning = false;
    if (!synced) {
      synced = true;
      sink.synced();
      if (on_synced) on_synced();
    }
    if (rescan_wanted) {
      rescan_wanted = false;
      request_rescan();
    }
  }

  asio::awaitable<void> apply(Delta d) {
    if (!d.folder_error.empty()) {
      if (!reported.count(d.folder_error))
        spdlog::error("{}; nothing is deleted while it is missing. Create it or fix --manifests", d.folder_error);
      reported = {d.folder_error};
      co_return;
    }
    for (const auto& p : d.new_problems) spdlog::error("{}", p);
    if (!synced && d.storage_count == 0)
      spdlog::warn("no BackupStorage manifests in {} yet: add YAML files there (see examples/local); watching it",
                   options.dir.string());
    watch(d.dirs);
    std::size_t n = 0;
    auto breathe = [&]() -> asio::awaitable<void> {
      if (++n % 256 == 0) co_await asio::post(executor, asio::use_awaitable);  // let other work run
    };
    for (auto& s : d.secrets_upserted) {
      sink.secret_upserted(std::move(s));
      co_await breathe();
    }
    for (const auto& k : d.secrets_removed) sink.secret_removed(k);
    for (auto& s : d.storages_upserted) {
      sink.storage_upserted(std::move(s));
      co_await breathe();
    }
    for (const auto& k : d.storages_removed) sink.storage_removed(k);
  }

  void request_rescan() {
    if (stopped) return;
    if (scanning) {
      rescan_wanted = true;
      return;
    }
    if (debounce_armed) return;
    debounce_armed = true;
    debounce.expires_after(options.debounce);
    debounce.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      self->debounce_armed = false;
      if (ec || self->stopped) return;
      asio::co_spawn(self->executor, self->scan_and_apply(), [](std::exception_ptr ep) {
        if (ep) std::rethrow_exception(ep);
      });
    });
  }

  void watch(const std::vector<fs::path>& dirs) {
    if (!inotify.is_open()) return;
    for (const auto& d : dirs) {
      if (watched_dirs.count(d.string())) continue;
      constexpr std::uint32_t mask =
          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_DELETE_SELF | IN_MODIFY;
      if (inotify_add_watch(inotify.native_handle(), d.c_str(), mask) >= 0) watched_dirs.insert(d.string());
    }
  }

  void start_inotify() {
    int fd = options.force_poll ? -1 : inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      spdlog::info("watching {} by polling every {} ms", options.dir.string(), options.poll_interval.count());
      start_poll();
      return;
    }
    inotify.assign(fd);
    read_events();
  }

  void read_events() {
    auto buf = std::make_shared<std::array<char, 16384>>();
    inotify.async_read_some(asio::buffer(*buf), [self = shared_from_this(), buf](boost::system::error_code ec,
                                                                                 std::size_t) {
      if (ec || self->stopped) return;
      // Any event means "something changed": one debounced rescan covers them all (and overflows).
      self->watched_dirs.clear();  // re-add watches after the scan: new sub-folders, a re-created root
      self->request_rescan();
      self->read_events();
    });
  }

  void start_poll() {
    poll.expires_after(options.poll_interval);
    poll.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->request_rescan();
      self->start_poll();
    });
  }
};

ManifestSource::ManifestSource(asio::any_io_executor executor, asio::thread_pool& pool, ManifestSourceOptions options,
                               SourceSink& sink)
    : impl_(std::make_shared<Impl>(executor, pool, std::move(options), sink)) {}

ManifestSource::~ManifestSource() { stop(); }

void ManifestSource::start(std::function<void()> on_synced) {
  impl_->on_synced = std::move(on_synced);
  impl_->start_inotify();
  asio::co_spawn(impl_->executor, impl_->scan_and_apply(), [](std::exception_ptr ep) {
    if (ep) std::rethrow_exception(ep);
  });
}

void ManifestSource::stop() {
  impl_->stopped = true;
  impl_->debounce.cancel();
  impl_->poll.cancel();
  boost::system::error_code ec;
  impl_->inotify.close(ec);
}

std::uint64_t ManifestSource::scans() const { return impl_->scans; }

}  // namespace stowage::engine
