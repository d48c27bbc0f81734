#include "kube/compact.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace stowage::kube {

namespace {

void put_varint(std::string& out, std::size_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

std::size_t varint_size(std::size_t n) {
  std::size_t bytes = 1;
  for (; n >= 0x80; n >>= 7) ++bytes;
  return bytes;
}

std::size_t get_varint(const char*& at) {
  std::size_t n = 0;
  for (int shift = 0;; shift += 7) {
    auto byte = static_cast<unsigned char>(*at++);
    n |= static_cast<std::size_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return n;
  }
}

std::string_view get_text(const char*& at) {
  std::size_t n = get_varint(at);
  std::string_view s(at, n);
  at += n;
  return s;
}

// A pool of immutable values keyed by their serialization, held weakly. Expired entries are swept
// whenever the pool has doubled since the last sweep, so it stays within twice the live values.
template <class T>
class Pool {
 public:
  std::shared_ptr<const T> intern(const T& value) {
    std::string key = boost::json::serialize(value);
    std::lock_guard lock(mutex_);
    auto& slot = entries_[key];
    if (auto live = slot.lock()) return live;
    auto fresh = std::make_shared<const T>(T(value, boost::json::storage_ptr()));
    slot = fresh;
    if (entries_.size() >= 2 * swept_size_) sweep();
    return fresh;
  }

 private:
  void sweep() {
    std::erase_if(entries_, [](const auto& kv) { return kv.second.expired(); });
    swept_size_ = std::max<std::size_t>(entries_.size(), 64);
  }
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<const T>> entries_;
  std::size_t swept_size_ = 64;
};

}  // namespace

void StringMap::const_iterator::load() {
  if (at_ == end_) return;
  const char* p = at_;
  entry_.first = get_text(p);
  entry_.second = get_text(p);
  next_ = p;
}

std::optional<std::string_view> StringMap::find(std::string_view key) const {
  for (const auto& [k, v] : *this) {
    if (k == key) return v;
    if (k > key) break;
  }
  return std::nullopt;
}

std::size_t StringMap::size() const {
  std::size_t n = 0;
  for (auto it = begin(); it != end(); ++it) ++n;
  return n;
}

bool StringMap::erase(std::string_view key) {
  const char* base = blob_.data();
  for (const char* p = base; p != base + blob_.size();) {
    const char* start = p;
    std::string_view k = get_text(p);
    get_text(p);
    if (k == key) {
      blob_.erase(static_cast<std::size_t>(start - base), static_cast<std::size_t>(p - start));
      return true;
    }
  }
  return false;
}

void StringMap::set(std::string_view key, std::string_view value) {
  std::string entry;
  put_varint(entry, key.size());
  entry.append(key);
  put_varint(entry, value.size());
  entry.append(value);
  const char* base = blob_.data();
  std::size_t insert_at = blob_.size();
  for (const char* p = base; p != base + blob_.size();) {
    const char* start = p;
    std::string_view k = get_text(p);
    get_text(p);
    if (k == key) {
      blob_.replace(static_cast<std::size_t>(start - base), static_cast<std::size_t>(p - start), entry);
      return;
    }
    if (k > key) {
      insert_at = static_cast<std::size_t>(start - base);
      break;
    }
  }
  blob_.insert(insert_at, entry);
}

void StringMap::assign(std::vector<Entry>& entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.first < b.first; });
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i + 1 < entries.size() && entries[i + 1].first == entries[i].first) continue;
    bytes += varint_size(entries[i].first.size()) + entries[i].first.size() + varint_size(entries[i].second.size()) +
             entries[i].second.size();
  }
  std::string blob;
  blob.reserve(bytes);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i + 1 < entries.size() && entries[i + 1].first == entries[i].first) continue;  // the last one wins
    put_varint(blob, entries[i].first.size());
    blob.append(entries[i].first);
    put_varint(blob, entries[i].second.size());
    blob.append(entries[i].second);
  }
  blob_ = std::move(blob);
}

namespace detail {

std::shared_ptr<const boost::json::value> intern(const boost::json::value& value) {
  static Pool<boost::json::value> pool;
  return pool.intern(value);
}

std::shared_ptr<const boost::json::object> intern(const boost::json::object& value) {
  static Pool<boost::json::object> pool;
  return pool.intern(value);
}

const boost::json::value& null_value() {
  static const boost::json::value null;
  return null;
}

const boost::json::object& empty_object() {
  static const boost::json::object empty;
  return empty;
}

}  // namespace detail

}  // namespace stowage::kube
