#include "engine/locations.hpp"

#include <algorithm>
#include <cctype>

#include "common/url.hpp"
#include "engine/backends.hpp"
#include "kube/conditions.hpp"
#include "storage/metadata.hpp"

namespace stowage::engine {

namespace {

// A path cleaned as KubeStash cleans a prefix (Go's path.Clean, slashes trimmed): the directory of
// metadata_key(), which implements exactly that.
std::string cleaned(std::string_view path) {
  std::string key = storage::metadata_key(path);
  std::size_t dir = key.size() - storage::kMetadataFile.size();
  return dir == 0 ? std::string() : key.substr(0, dir - 1);
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string trim_slashes(std::string text) {
  while (!text.empty() && text.back() == '/') text.pop_back();
  while (!text.empty() && text.front() == '/') text.erase(0, 1);
  return text;
}

// The store an S3 endpoint names: "aws" for AWS (any region: bucket names are global there), else
// host[:port][/path] as common/url.hpp splits it (http::Url::parse reads endpoints the same way),
// the host in lower case. Neither the scheme nor a web port (80, 443) is compared: a server that
// answers http and https serves the same buckets, so "https://MinIO:443/", "http://minio" and
// "minio" are one store (wrongly calling two stores one only reports a conflict; the reverse could
// let a wipe delete another storage's backups). Nothing when the endpoint is unusable (the backend
// refuses it too, so that storage never holds data).
std::optional<std::string> s3_store(const std::string& endpoint) {
  if (endpoint.empty()) return "aws";
  auto parsed = url::parse(endpoint, "https");
  if (!parsed || parsed.value().has_userinfo || parsed.value().has_query || parsed.value().has_fragment)
    return std::nullopt;
  const url::Parts& u = parsed.value();
  const std::string host = lower(u.host);
  if (host == "amazonaws.com" || host.ends_with(".amazonaws.com")) return "aws";
  const bool web_port = u.port == 0 || u.port == 80 || u.port == 443;
  const std::string path = trim_slashes(u.path);
  return (u.ipv6 ? "[" + host + "]" : host) + (web_port ? "" : ":" + std::to_string(u.port)) +
         (path.empty() ? "" : "/" + path);
}

std::string text_at(const boost::json::object& volume, const char* source, const char* field) {
  const auto* member = volume.if_contains(source);
  const auto* object = member ? member->if_object() : nullptr;
  const auto* value = object ? object->if_contains(field) : nullptr;
  return value && value->is_string() ? std::string(value->get_string()) : std::string();
}

std::string joined(const std::string& a, const std::string& b) { return b.empty() ? a : a + "/" + b; }

std::optional<StorageLocation> local_location(const kube::BackupStorage& s, const LocationSettings& settings) {
  const kube::LocalSpec& local = *s.spec.storage.local;
  if (!settings.volume_jobs) {
    auto dir = local_directory(settings.local_root, local);
    if (!dir.ok()) return std::nullopt;
    return StorageLocation{"local", dir.value().relative_path().generic_string(),
                           "local directory " + dir.value().string()};
  }
  const std::string sub = cleaned(local.sub_path);
  if (local.volume_type == "hostPath") {
    std::string path = cleaned(joined(local.host_path, sub));
    return StorageLocation{"hostPath", path, "hostPath /" + path};
  }
  if (local.volume_type == "persistentVolumeClaim") {
    std::string claim = text_at(local.volume_source, "persistentVolumeClaim", "claimName");
    if (claim.empty()) return std::nullopt;
    std::string where = s.metadata.namespace_ + "/" + claim;
    return StorageLocation{"pvc:" + where, sub, "PersistentVolumeClaim " + where + (sub.empty() ? "" : " subPath " + sub)};
  }
  if (local.volume_type == "nfs") {
    std::string server = lower(text_at(local.volume_source, "nfs", "server"));
    if (server.empty()) return std::nullopt;
    std::string path = cleaned(joined(text_at(local.volume_source, "nfs", "path"), sub));
    return StorageLocation{"nfs:" + server, path, "NFS " + server + ":/" + path};
  }
  return std::nullopt;  // emptyDir and other per-pod or opaque volumes
}

bool same_place(const StorageLocation& a, const StorageLocation& b) { return a.space == b.space && a.path == b.path; }

// Whether `outer` holds `inner` (strictly inside it).
bool holds(const std::string& outer, const std::string& inner) {
  if (outer == inner) return false;
  if (outer.empty()) return true;
  return inner.size() > outer.size() && inner.starts_with(outer) && inner[outer.size()] == '/';
}

}  // namespace

std::optional<StorageLocation> location_of(const kube::BackupStorage& s, const LocationSettings& settings) {
  const auto& st = s.spec.storage;
  if (st.provider == "s3" && st.s3) {
    std::string bucket = trim_slashes(st.s3->bucket);
    if (bucket.empty()) return std::nullopt;
    std::optional<std::string> store = s3_store(st.s3->endpoint);
    if (!store) return std::nullopt;
    std::string path = cleaned(st.s3->prefix);
    std::string at = *store == "aws" ? "AWS" : trim_slashes(st.s3->endpoint);
    return StorageLocation{"s3:" + *store + "/" + bucket, path,
                           "S3 bucket `" + bucket + "` prefix `" + path + "` at " + at};
  }
  if (st.provider == "gcs" && st.gcs) {
    std::string bucket = trim_slashes(st.gcs->bucket);
    if (bucket.empty()) return std::nullopt;
    std::string path = cleaned(st.gcs->prefix);
    return StorageLocation{"gcs:" + bucket, path, "GCS bucket `" + bucket + "` prefix `" + path + "`"};
  }
  if (st.provider == "azure" && st.azure) {
    std::string container = trim_slashes(st.azure->container);
    if (container.empty()) return std::nullopt;
    std::string account = lower(st.azure->storage_account);
    std::string path = cleaned(st.azure->prefix);
    return StorageLocation{"azure:" + account + "/" + container, path,
                           "Azure container `" + container + "` of account `" + account + "` prefix `" + path + "`"};
  }
  if (st.provider == "local" && st.local) return local_location(s, settings);
  return std::nullopt;
}

std::string describe(Nesting nesting) {
  switch (nesting) {
    case Nesting::Same:
      return "is at the same location as";
    case Nesting::Inside:
      return "holds the location of";
    case Nesting::Holds:
      return "lies inside the location of";
  }
  return "overlaps";
}

std::string other_storage(const Overlap& overlap, std::string_view reader_namespace) {
  if (overlap.other.namespace_ != reader_namespace) return "a BackupStorage in another namespace";
  return "BackupStorage " + overlap.other.str() + " (" + overlap.other_label + ")";
}

LocationIndex::LocationIndex(LocationSettings settings) : settings_(std::move(settings)) {
  std::error_code ec;
  auto root = std::filesystem::absolute(settings_.local_root, ec);
  if (!ec) settings_.local_root = root.lexically_normal();
}

std::vector<ObjectKey> LocationIndex::overlapping(const StorageLocation& where, const ObjectKey& except) const {
  std::vector<ObjectKey> out;
  auto space = spaces_.find(where.space);
  if (space == spaces_.end()) return out;
  const Path& paths = space->second;
  auto add = [&](Path::const_iterator at) {
    for (const auto& key : at->second)
      if (key != except) out.push_back(key);
  };
  // The location itself and every location holding it: "", "a", "a/b" for "a/b/c".
  for (std::size_t end = 0;; ++end) {
    end = where.path.find('/', end);
    std::string ancestor = end == std::string::npos ? where.path : where.path.substr(0, end);
    if (auto at = paths.find(ancestor); at != paths.end()) add(at);
    if (end == std::string::npos) break;
  }
  if (!where.path.empty())
    if (auto root = paths.find(""); root != paths.end()) add(root);
  // Every location inside it: the keys that start with "a/b/c/" (all of them for the root).
  const std::string below = where.path.empty() ? "" : where.path + "/";
  for (auto at = paths.lower_bound(below); at != paths.end() && at->first.starts_with(below); ++at)
    if (at->first != where.path) add(at);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void LocationIndex::unlink(const ObjectKey& key, const Entry& entry) {
  auto space = spaces_.find(entry.where.space);
  if (space == spaces_.end()) return;
  auto path = space->second.find(entry.where.path);
  if (path == space->second.end()) return;
  path->second.erase(key);
  if (path->second.empty()) space->second.erase(path);
  if (space->second.empty()) spaces_.erase(space);
}

std::vector<ObjectKey> LocationIndex::put(const kube::BackupStorage& storage) {
  ObjectKey key{storage.metadata.namespace_, storage.metadata.name};
  std::optional<StorageLocation> where = location_of(storage, settings_);
  const auto* initialized = kube::find_condition(storage.status.conditions, kube::kConditionBackendInitialized);
  Age age{storage.metadata.creation_timestamp, !(initialized && initialized->status == "True"), storage.metadata.uid};
  std::vector<ObjectKey> affected;
  if (auto old = entries_.find(key); old != entries_.end()) {
    if (where && same_place(old->second.where, *where) && old->second.age == age) {
      old->second.where.label = where->label;
      return affected;  // nothing that decides an overlap changed
    }
    affected = overlapping(old->second.where, key);
    unlink(key, old->second);
    entries_.erase(old);
  }
  if (!where) return affected;
  auto now = overlapping(*where, key);
  affected.insert(affected.end(), now.begin(), now.end());
  spaces_[where->space][where->path].insert(key);
  entries_.emplace(key, Entry{std::move(*where), std::move(age)});
  std::sort(affected.begin(), affected.end());
  affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
  return affected;
}

std::vector<ObjectKey> LocationIndex::erase(const ObjectKey& key) {
  auto old = entries_.find(key);
  if (old == entries_.end()) return {};
  auto affected = overlapping(old->second.where, key);
  unlink(key, old->second);
  entries_.erase(old);
  return affected;
}

std::vector<Overlap> LocationIndex::overlaps(const ObjectKey& key) const {
  std::vector<Overlap> out;
  auto self = entries_.find(key);
  if (self == entries_.end()) return out;
  const Entry& me = self->second;
  for (const auto& other_key : overlapping(me.where, key)) {
    Overlap o = overlap(me.where, other_key);
    o.other_is_older = std::tie(entries_.at(other_key).age, other_key) < std::tie(me.age, key);
    out.push_back(std::move(o));
  }
  std::sort(out.begin(), out.end(), [&](const Overlap& a, const Overlap& b) {
    return std::tie(entries_.at(a.other).age, a.other) < std::tie(entries_.at(b.other).age, b.other);
  });
  return out;
}

Overlap LocationIndex::overlap(const StorageLocation& where, const ObjectKey& other_key) const {
  const Entry& other = entries_.at(other_key);
  Overlap o;
  o.other = other_key;
  o.nesting = other.where.path == where.path     ? Nesting::Same
              : holds(where.path, other.where.path) ? Nesting::Inside
                                                    : Nesting::Holds;
  o.other_label = other.where.label;
  return o;
}

std::vector<Overlap> LocationIndex::overlaps_with(const kube::BackupStorage& candidate) const {
  std::vector<Overlap> out;
  std::optional<StorageLocation> where = location_of(candidate, settings_);
  if (!where) return out;
  for (const auto& other_key : overlapping(*where, key_of(candidate))) {
    Overlap o = overlap(*where, other_key);
    o.other_is_older = true;
    out.push_back(std::move(o));
  }
  return out;
}

std::optional<Overlap> LocationIndex::conflict(const ObjectKey& key) const {
  for (auto& o : overlaps(key))
    if (o.other_is_older) return o;
  return std::nullopt;
}

const StorageLocation* LocationIndex::location(const ObjectKey& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second.where;
}

}  // namespace stowage::engine
