#include "engine/manifest_source.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <set>
#include <type_traits>

#include "common/crypto.hpp"
#include "config/config.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {

using Clock = std::chrono::steady_clock;

// Appended to every problem of a file that fails: what the source does about it.
constexpr const char* kKeptWhileFailing = " (the objects this file held are kept until it is fixed)";

// What identifies one version of a file's contents.
struct FileVersion {
  std::int64_t mtime_ns = 0;
  std::int64_t size = 0;
  std::uint64_t inode = 0;
  bool operator==(const FileVersion&) const = default;
};

std::optional<FileVersion> version_of(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;
  return FileVersion{std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, st.st_size, st.st_ino};
}

// A BackupStorage as the source keeps it between scans: not the parsed object (whose `raw` copy
// of the object as given is the largest part of it; the sink holds the parsed one), but the object
// as given in compact JSON, and a digest of that text. The digest is how a rescan tells a change;
// the text is what a file that fails later still stands for (parsed again only if it has to be
// delivered: when the copy that won a duplicate goes while this file fails).
using Digest = std::array<char, 16>;  // the first 16 bytes of the text's SHA-256 (no allocation)

struct KeptStorage {
  ObjectKey key;
  int line = 0;
  std::string json;
  Digest digest;
};

Digest digest_of(std::string_view json) {
  auto sha = crypto::sha256(json);
  Digest d{};
  std::copy_n(sha.begin(), d.size(), d.begin());
  return d;
}

struct CachedFile {
  FileVersion version;
  // What the file stands for now: while it fails, its kept objects included.
  std::vector<KeptStorage> storages;
  std::vector<ManifestSecret> secrets;
  std::vector<std::string> problems;
  bool unreadable = false, budget_exceeded = false, limited_by_other_files = false;  // as in FileContents
  std::uint64_t alias_bytes = 0;
  bool read_cleanly = false;  // at least once since start(): held_* are known
  std::set<ObjectKey> held_storages, held_secrets;  // what it held at its last good read
  // During the scan that read the file only: `storages` as parsed, by index (empty for kept ones),
  // so that a new or changed object is delivered without being parsed again. Dropped after the scan.
  std::vector<std::optional<kube::BackupStorage>> fresh;
  std::size_t object_count() const { return storages.size() + secrets.size(); }
};

// The entry for a file just read. A good read is taken as it is. A failing one keeps, besides the
// objects that parse now, every object the file held at its last good read, as last seen (so a
// fixed object that breaks again is not turned back to an older version).
CachedFile entry_for_read(FileContents read, FileVersion version, const CachedFile* before) {
  CachedFile entry;
  entry.version = version;
  entry.problems = std::move(read.problems);
  entry.unreadable = read.unreadable;
  entry.budget_exceeded = read.budget_exceeded;
  entry.limited_by_other_files = read.limited_by_other_files;
  entry.alias_bytes = read.alias_bytes;
  entry.secrets = std::move(read.secrets);
  entry.storages.reserve(read.storages.size());
  entry.fresh.reserve(read.storages.size());
  for (auto& s : read.storages) {
    auto json = boost::json::serialize(s.object.raw);
    auto digest = digest_of(json);
    entry.storages.push_back({key_of(s.object.metadata), s.at.line, std::move(json), std::move(digest)});
    entry.fresh.emplace_back(std::move(s.object));
  }
  read.storages.clear();
  if (!entry.unreadable) {
    entry.read_cleanly = true;
    for (const auto& s : entry.storages) entry.held_storages.insert(s.key);
    for (const auto& s : entry.secrets) entry.held_secrets.insert(key_of(s.object.metadata));
    return entry;
  }
  for (auto& p : entry.problems) p += kKeptWhileFailing;
  if (!before) return entry;  // never read cleanly: whatever parses is simply new
  entry.read_cleanly = before->read_cleanly;
  entry.held_storages = before->held_storages;
  entry.held_secrets = before->held_secrets;
  auto keep = [](const auto& held, const auto& previous, auto& current, auto key) {
    std::set<ObjectKey> parsed;
    for (const auto& o : current) parsed.insert(key(o));
    for (const auto& o : previous)
      if (held.count(key(o)) && !parsed.count(key(o))) current.push_back(o);
  };
  std::size_t parsed = entry.object_count();
  keep(entry.held_storages, before->storages, entry.storages, [](const KeptStorage& s) { return s.key; });
  entry.fresh.resize(entry.storages.size());  // the kept ones are not fresh
  keep(entry.held_secrets, before->secrets, entry.secrets,
       [](const ManifestSecret& s) { return key_of(s.object.metadata); });
  // What the kept objects' aliases expanded to is not known one by one: count the whole previous read.
  if (entry.object_count() > parsed) entry.alias_bytes += before->alias_bytes;
  return entry;
}

Allowance cost_of(const CachedFile& entry) { return {entry.object_count(), entry.alias_bytes}; }

// The budgets the folder's files share (manifests.max-objects, yaml.max-alias-expansion), spent in
// path order. Before any file is read again, every file already read reserves what it holds: the
// objects already loaded keep their place, and a file read now gets what is left. So a scan never
// holds more than the budgets, or than the previous scan held, whichever is larger.
class SharedBudget {
 public:
  explicit SharedBudget(const ManifestBudgets& budgets)
      : total_{budgets.max_objects, budgets.max_alias_expansion} {}
  void spend(const Allowance& cost) {
    used_.objects += cost.objects;
    used_.alias_bytes += cost.alias_bytes;
  }
  void refund(const Allowance& cost) {
    used_.objects -= cost.objects;
    used_.alias_bytes -= cost.alias_bytes;
  }
  Allowance left() const {
    return {total_.objects - std::min(total_.objects, used_.objects),
            total_.alias_bytes - std::min(total_.alias_bytes, used_.alias_bytes)};
  }

 private:
  Allowance total_, used_;
};

bool same_object(const kube::Secret& a, const kube::Secret& b) {
  return a.data == b.data && a.invalid_keys == b.invalid_keys && a.type == b.type;
}

// What one kind of object changed in one scan.
template <class Object>
struct KindChanges {
  std::vector<Object> upserted;
  std::vector<ObjectKey> removed;
  std::vector<ObjectKey> going;  // newly absent: removed after the grace unless they come back
  std::vector<ObjectKey> back;   // were going, present again: not removed
};

// What the sink was given of one kind (by key: what tells a change) and when each absent one was
// first missed.
template <class Held>
struct Tracked {
  std::map<ObjectKey, Held> delivered;  // what the sink holds, absent objects in their grace included
  std::map<ObjectKey, Clock::time_point> absent_since;
};

struct ScanClock {
  Clock::time_point at;  // when the scan started
  bool stable = true;    // no file changed while it was read: absences count
  std::chrono::milliseconds grace{0};
};

// The objects of the folder in one scan, duplicates resolved: the first in path order wins and the
// later one is reported (as add_to_snapshot does for `stowage init`). Storages point into the
// scan's file entries.
struct SnapshotStorage {
  KeptStorage* kept;
  std::optional<kube::BackupStorage>* fresh;  // null, or empty, when the file was not read in this scan
  const fs::path* file;
};
struct ScanSnapshot {
  std::map<ObjectKey, SnapshotStorage> storages;
  std::map<ObjectKey, ManifestSecret> secrets;
  std::vector<std::string> problems;
};

std::string where(const fs::path& file, int line) { return file.string() + ":" + std::to_string(line); }

void add_to_snapshot(ScanSnapshot& snap, const fs::path& file, CachedFile& entry) {
  for (const auto& p : entry.problems) snap.problems.push_back(p);
  for (std::size_t i = 0; i < entry.storages.size(); ++i) {
    auto& s = entry.storages[i];
    auto* fresh = i < entry.fresh.size() ? &entry.fresh[i] : nullptr;  // none in an entry from an earlier scan
    auto [it, inserted] = snap.storages.try_emplace(s.key, SnapshotStorage{&s, fresh, &file});
    if (!inserted)
      snap.problems.push_back(where(file, s.line) + ": BackupStorage " + s.key.str() + " is already defined at " +
                              where(*it->second.file, it->second.kept->line) +
                              "; this copy is ignored: rename or remove one of them");
  }
  for (const auto& s : entry.secrets) {
    auto key = key_of(s.object.metadata);
    auto [it, inserted] = snap.secrets.try_emplace(key, s);
    if (!inserted)
      snap.problems.push_back(s.at.where() + ": Secret " + key.str() + " is already defined at " +
                              it->second.at.where() + "; this copy is ignored: rename or remove one of them");
  }
}

// How diff_kind treats one kind: Secrets are kept whole and compared field by field; storages
// are compared by digest and delivered as parsed (or parsed again from their text, for one that a
// failing file kept).
struct SecretOps {
  static bool changed(const ManifestSecret& delivered, const ManifestSecret& now) {
    return !same_object(delivered.object, now.object);
  }
  static std::optional<kube::Secret> take(ManifestSecret& now) { return now.object; }
  static ManifestSecret hold(ManifestSecret&& now) { return std::move(now); }
};
struct StorageOps {
  static bool changed(const Digest& delivered, const SnapshotStorage& now) { return delivered != now.kept->digest; }
  static std::optional<kube::BackupStorage> take(SnapshotStorage& now) {
    if (now.fresh && *now.fresh) return std::move(**now.fresh);
    boost::system::error_code ec;
    auto json = boost::json::parse(now.kept->json, ec);
    if (ec) return std::nullopt;  // cannot be: it is the text of an object that parsed
    auto parsed = kube::parse_backup_storage(json);
    if (!parsed.ok()) return std::nullopt;
    return std::move(parsed.value());
  }
  static Digest hold(SnapshotStorage&& now) { return now.kept->digest; }
};

// Compares a scan with what was delivered. Present objects are upserted when new or changed and
// end any grace; absent ones start theirs (stable scans only) and are removed once it is over.
template <class Ops, class Entry, class Held, class Object>
void diff_kind(std::map<ObjectKey, Entry> now, Tracked<Held>& tracked, const ScanClock& scan, KindChanges<Object>& out,
               std::optional<Clock::time_point>& next_due) {
  std::map<ObjectKey, Held> delivered;
  for (auto& [key, entry] : now) {
    if (tracked.absent_since.erase(key)) out.back.push_back(key);
    auto it = tracked.delivered.find(key);
    if (it == tracked.delivered.end() || Ops::changed(it->second, entry))
      if (auto object = Ops::take(entry)) out.upserted.push_back(std::move(*object));
    delivered.emplace_hint(delivered.end(), key, Ops::hold(std::move(entry)));
  }
  for (auto& [key, held] : tracked.delivered) {
    if (now.count(key)) continue;
    if (scan.stable && tracked.absent_since.try_emplace(key, scan.at).second && scan.grace.count() > 0)
      out.going.push_back(key);
    delivered.emplace(key, std::move(held));  // still the sink's until it is removed
  }
  for (auto it = tracked.absent_since.begin(); it != tracked.absent_since.end();) {
    auto due = it->second + scan.grace;
    if (scan.stable && scan.at >= due) {
      out.removed.push_back(it->first);
      delivered.erase(it->first);
      it = tracked.absent_since.erase(it);
      continue;
    }
    if (!next_due || due < *next_due) next_due = due;
    ++it;
  }
  tracked.delivered = std::move(delivered);
}

// The changes one scan found, computed off the reactor.
struct Delta {
  KindChanges<kube::Secret> secrets;
  KindChanges<kube::BackupStorage> storages;
  std::vector<std::string> new_problems;
  std::vector<fs::path> dirs;
  std::string folder_error;
  std::size_t storage_count = 0;
  std::vector<ObjectKey> known_waiting;  // recorded storages not in the folder, kept while...
  std::string failing_unknown;           // ...this file, never read cleanly since the start, fails
  bool stable = true;
  std::optional<Clock::time_point> next_removal;  // when the next pending removal falls due
};

// "demo/a, demo/b and 3 more": a log line stays readable when a whole folder goes.
std::string some_keys(const std::vector<ObjectKey>& keys) {
  constexpr std::size_t kNamed = 5;
  std::string out;
  for (std::size_t i = 0; i < keys.size() && i < kNamed; ++i) out += (i ? ", " : "") + keys[i].str();
  if (keys.size() > kNamed) out += " and " + std::to_string(keys.size() - kNamed) + " more";
  return out;
}

}  // namespace

struct ManifestSource::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, asio::thread_pool& p, ManifestSourceOptions o, SourceSink& s)
      : executor(ex), pool(p), options(std::move(o)), sink(s), debounce(ex), poll(ex), removal(ex), inotify(ex) {}

  asio::any_io_executor executor;
  asio::thread_pool& pool;
  ManifestSourceOptions options;
  SourceSink& sink;
  asio::steady_timer debounce;
  asio::steady_timer poll;
  asio::steady_timer removal;  // rescans when the next pending removal falls due
  asio::posix::stream_descriptor inotify;
  std::function<void()> on_synced;
  bool stopped = false;
  // stop()'s word to a scan running on the pool: it ends between files, and its result is dropped.
  std::atomic<bool> stop_scan{false};
  bool synced = false;
  bool scanning = false;
  bool rescan_wanted = false;
  bool debounce_armed = false;
  std::uint64_t scans = 0;
  std::set<std::string> watched_dirs;
  Clock::time_point started_at;

  // Owned by the scan (which never overlaps itself): the file cache, what was delivered.
  std::map<fs::path, CachedFile> files;
  Tracked<Digest> storages;
  Tracked<ManifestSecret> secrets;
  bool known_registered = false;
  std::set<ObjectKey> known_waiting;  // see register_known_storages
  bool known_wait_logged = false;
  std::set<std::string> reported;

  Delta scan_folder() {
    Delta d;
    auto listing = list_manifest_files(options.dir);
    d.dirs = std::move(listing.dirs);
    if (!listing.error.empty()) {
      d.folder_error = listing.error;
      return d;  // nothing read: no absence counts, nothing falls due
    }
    ScanClock clock{Clock::now(), true, options.delete_grace};
    std::map<fs::path, CachedFile> next;
    ScanSnapshot snap;
    snap.problems = std::move(listing.problems);
    SharedBudget budget(options.budgets);
    for (const auto& p : listing.files)
      if (auto it = files.find(p); it != files.end()) budget.spend(cost_of(it->second));
    std::string over_budget;  // the first file a budget stopped
    for (const auto& p : listing.files) {
      if (stop_scan.load(std::memory_order_relaxed)) return d;  // stopping: nothing of it is applied
      auto entry = entry_for(p, clock.stable, budget);
      if (!entry) continue;
      auto& [file, kept] = *next.emplace(p, std::move(*entry)).first;  // a map node: stays where it is
      add_to_snapshot(snap, file, kept);
      if (kept.unreadable && !kept.read_cleanly && d.failing_unknown.empty()) d.failing_unknown = p.string();
      if (kept.budget_exceeded && over_budget.empty()) over_budget = p.string();
    }
    files = std::move(next);
    d.stable = clock.stable;
    if (!over_budget.empty()) {
      clock.stable = false;  // absences do not count, but the read is not repeated for it
      snap.problems.push_back("nothing is deleted from " + options.dir.string() + " while " + over_budget +
                              " is over a budget (see above); objects missing from the folder are kept");
    }
    d.storage_count = snap.storages.size();
    register_known_storages(snap, clock, d);
    diff_kind<SecretOps>(std::move(snap.secrets), secrets, clock, d.secrets, d.next_removal);
    diff_kind<StorageOps>(std::move(snap.storages), storages, clock, d.storages, d.next_removal);
    for (auto& [path, file] : files) std::vector<std::optional<kube::BackupStorage>>().swap(file.fresh);  // not needed now
    std::set<std::string> current(snap.problems.begin(), snap.problems.end());
    for (const auto& p : snap.problems)
      if (!reported.count(p)) d.new_problems.push_back(p);
    reported = std::move(current);
    return d;
  }

  // The file's entry for this scan: the cached one when the file is unchanged, else a fresh read.
  // A file that vanishes or changes while it is read is not taken (its previous entry stands, if
  // any) and makes the scan unstable.
  // A file a shared budget stopped short is read again, unchanged or not: the files before it may
  // have shrunk. What the previous entry holds is already reserved in `budget`; a fresh read gives
  // that back, reads with what is left, and takes what the new entry holds.
  std::optional<CachedFile> entry_for(const fs::path& p, bool& stable, SharedBudget& budget) {
    auto old = files.find(p);
    CachedFile* before = old == files.end() ? nullptr : &old->second;
    auto version = version_of(p);
    if (version && before && before->version == *version && !before->limited_by_other_files)
      return std::move(*before);
    Allowance reserved = before ? cost_of(*before) : Allowance{};
    budget.refund(reserved);
    FileContents contents;
    if (version) contents = read_manifest_file(p, options.budgets, budget.left());
    if (!version || version_of(p) != version) {
      stable = false;
      budget.spend(reserved);
      if (!before) return std::nullopt;
      return std::move(*before);
    }
    auto entry = entry_for_read(std::move(contents), *version, before);
    budget.spend(cost_of(entry));
    return entry;
  }

  // Storages an earlier run recorded from this folder that its first scan does not hold. Their
  // grace runs from start(); but while a file that has not been read cleanly since then fails,
  // any of them may be in it, so they wait (kept, no clock) until no such file is left.
  void register_known_storages(const ScanSnapshot& snap, const ScanClock& clock, Delta& d) {
    bool first = !known_registered;
    if (first) {
      known_registered = true;
      known_waiting.insert(options.known_storages.begin(), options.known_storages.end());
    }
    std::erase_if(known_waiting, [&](const ObjectKey& key) { return snap.storages.count(key) > 0; });
    if (known_waiting.empty()) return;
    bool may_be_in_failing_file = !d.failing_unknown.empty();
    if (may_be_in_failing_file || !clock.stable) {
      if (may_be_in_failing_file && !known_wait_logged) {
        known_wait_logged = true;
        d.known_waiting.assign(known_waiting.begin(), known_waiting.end());
      }
      return;
    }
    for (const auto& key : known_waiting) {
      storages.absent_since.try_emplace(key, first ? started_at : clock.at);
      if (options.delete_grace.count() > 0) d.storages.going.push_back(key);
    }
    known_waiting.clear();
  }

  // Every scan's co_spawn ends here: an exception (from a scan, or from the sink) ends the source's
  // watching; it is reported, and the process exits by the liveness policy instead of std::terminate.
  std::function<void(std::exception_ptr)> completion() {
    auto report = common::loop_completion("manifest source " + options.dir.string(),
                                          [self = shared_from_this()] { return self->stopped; }, options.liveness);
    return [report = std::move(report)](std::exception_ptr ep) {
      if (ep) report(ep);  // a scan that returns is one round of the loop, not its end
    };
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
    if (rescan_wanted) {
      rescan_wanted = false;
      request_rescan();
    }
  }

  // Delivers one scan: upserts, then (after the first scan) synced(), then removals.
  asio::awaitable<void> apply(Delta d) {
    if (!d.folder_error.empty()) {
      if (!reported.count(d.folder_error))
        spdlog::error("{}; nothing is deleted while it is missing. Create it or fix --manifests", d.folder_error);
      reported = {d.folder_error};
    } else {
      report(d);
      watch(d.dirs);
    }
    std::size_t n = 0;
    auto breathe = [&]() -> asio::awaitable<void> {
      if (++n % 256 == 0) co_await asio::post(executor, asio::use_awaitable);  // let other work run
    };
    for (auto& s : d.secrets.upserted) {
      sink.secret_upserted(std::move(s));
      co_await breathe();
    }
    for (auto& s : d.storages.upserted) {
      sink.storage_upserted(std::move(s));
      co_await breathe();
    }
    if (!synced) {
      synced = true;
      sink.synced();
      if (on_synced) on_synced();
    }
    for (const auto& k : d.secrets.removed) sink.secret_removed(k);
    for (const auto& k : d.storages.removed) sink.storage_removed(k);
    if (!d.stable) request_rescan();  // read again once the files have settled
    arm_removal_timer(d.next_removal);
  }

  void report(const Delta& d) {
    for (const auto& p : d.new_problems) spdlog::error("{}", p);
    if (!synced && d.storage_count == 0)
      spdlog::warn("no BackupStorage manifests in {} yet: add YAML files there (see examples/local); watching it",
                   options.dir.string());
    auto grace = config::format_duration(options.delete_grace);
    if (!d.storages.going.empty())
      spdlog::warn("BackupStorage {} no longer in {}: deleted in {} unless it comes back", some_keys(d.storages.going),
                   options.dir.string(), grace);
    if (!d.secrets.going.empty())
      spdlog::warn("Secret {} no longer in {}: removed in {} unless it comes back", some_keys(d.secrets.going),
                   options.dir.string(), grace);
    if (!d.known_waiting.empty())
      spdlog::warn("BackupStorage {} recorded from {} not in it, but {} has not been read cleanly since the start: "
                   "kept until it is", some_keys(d.known_waiting), options.dir.string(), d.failing_unknown);
    if (!d.storages.back.empty())
      spdlog::info("BackupStorage {} back in {}: not deleted", some_keys(d.storages.back), options.dir.string());
    if (!d.secrets.back.empty())
      spdlog::info("Secret {} back in {}: not removed", some_keys(d.secrets.back), options.dir.string());
  }

  void arm_removal_timer(std::optional<Clock::time_point> due) {
    if (!due) {
      removal.cancel();
      return;
    }
    removal.expires_at(*due);
    removal.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->request_rescan();
    });
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
      asio::co_spawn(self->executor, self->scan_and_apply(), self->completion());
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
  impl_->started_at = Clock::now();
  impl_->start_inotify();
  asio::co_spawn(impl_->executor, impl_->scan_and_apply(), impl_->completion());
}

void ManifestSource::stop() {
  impl_->stopped = true;
  impl_->stop_scan = true;
  impl_->debounce.cancel();
  impl_->poll.cancel();
  impl_->removal.cancel();
  boost::system::error_code ec;
  impl_->inotify.close(ec);
}

std::uint64_t ManifestSource::scans() const { return impl_->scans; }

}  // namespace stowage::engine
