#pragma once
// Compact holders for the typed objects the caches keep by the ten thousand (kube/model.hpp):
//
// - Boxed<T>: an optional T kept on the heap, 8 bytes when empty. A BackupStorage names one provider;
//   four inline std::optional sections cost ~600 bytes per object whatever the provider.
// - StringMap: labels or annotations as one allocation (length-prefixed keys and values, sorted by
//   key) instead of a std::map node and up to two strings per entry (~150 bytes an entry).
// - Shared<T>: an immutable JSON value (json::value or json::object) interned: every holder of an
//   equal value shares one copy. runtimeSettings, usagePolicy and the local volume source repeat
//   across the storages of a team or namespace.
//
// Guarantees: value semantics (copies compare equal, a copy never changes when the original does);
// Shared<T>'s pool holds its values weakly (a value no object holds any more is freed) and is safe
// to use from several threads.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace stowage::kube {

template <class T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(std::nullopt_t) {}
  Boxed(T value) : p_(std::make_unique<T>(std::move(value))) {}
  Boxed(const Boxed& other) : p_(other.p_ ? std::make_unique<T>(*other.p_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& other) {
    if (this != &other) p_ = other.p_ ? std::make_unique<T>(*other.p_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  Boxed& operator=(T value) {
    p_ = std::make_unique<T>(std::move(value));
    return *this;
  }
  Boxed& operator=(std::nullopt_t) {
    p_.reset();
    return *this;
  }

  bool has_value() const { return p_ != nullptr; }
  explicit operator bool() const { return has_value(); }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T& value() {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  const T& value() const {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  template <class... Args>
  T& emplace(Args&&... args) {
    p_ = std::make_unique<T>(std::forward<Args>(args)...);
    return *p_;
  }
  void reset() { p_.reset(); }

 private:
  std::unique_ptr<T> p_;
};

// Labels or annotations: string keys to string values, iterated in key order as std::map was.
class StringMap {
 public:
  using Entry = std::pair<std::string_view, std::string_view>;

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Entry;
    using difference_type = std::ptrdiff_t;
    using pointer = const Entry*;
    using reference = const Entry&;
    const_iterator() = default;
    const_iterator(const char* at, const char* end) : at_(at), end_(end) { load(); }
    const Entry& operator*() const { return entry_; }
    const Entry* operator->() const { return &entry_; }
    const_iterator& operator++() {
      at_ = next_;
      load();
      return *this;
    }
    const_iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const const_iterator& o) const { return at_ == o.at_; }

   private:
    void load();
    const char* at_ = nullptr;
    const char* end_ = nullptr;
    const char* next_ = nullptr;
    Entry entry_;
  };

  StringMap() = default;

  // Sets key to value (replacing what it had).
  void set(std::string_view key, std::string_view value);
  // Replaces the whole map with `entries` (any order; of equal keys the last wins) in one
  // allocation: what reading labels from JSON does, instead of one set() per entry.
  void assign(std::vector<Entry>& entries);
  bool erase(std::string_view key);
  // The value, or nullopt when the key is absent.
  std::optional<std::string_view> find(std::string_view key) const;
  // The value, or "" when the key is absent.
  std::string_view get(std::string_view key) const { return find(key).value_or(std::string_view()); }
  bool contains(std::string_view key) const { return find(key).has_value(); }
  std::size_t size() const;
  bool empty() const { return blob_.empty(); }
  void clear() { blob_.clear(); }
  // The heap the map holds (0 while short enough for the string's inline buffer).
  std::size_t capacity() const { return blob_.capacity(); }

  const_iterator begin() const { return {blob_.data(), blob_.data() + blob_.size()}; }
  const_iterator end() const { return {blob_.data() + blob_.size(), blob_.data() + blob_.size()}; }

  bool operator==(const StringMap&) const = default;

 private:
  std::string blob_;  // entries sorted by key: varint key length, key, varint value length, value
};

namespace detail {
// The pooled copy of `value` (made with the default memory resource): equal values share one.
std::shared_ptr<const boost::json::value> intern(const boost::json::value& value);
std::shared_ptr<const boost::json::object> intern(const boost::json::object& value);
const boost::json::value& null_value();
const boost::json::object& empty_object();
}  // namespace detail

// An interned, immutable JSON value (T = boost::json::value or boost::json::object); empty holds
// null (or the empty object). Reads go through the conversion, `get()` or `->`.
template <class T>
class Shared {
 public:
  Shared() = default;
  Shared(const T& value) : p_(detail::intern(value)) {}

  const T& get() const {
    if (p_) return *p_;
    if constexpr (std::is_same_v<T, boost::json::object>)
      return detail::empty_object();
    else
      return detail::null_value();
  }
  operator const T&() const { return get(); }
  const T* operator->() const { return &get(); }

  // The reads the engine uses, forwarded.
  bool is_null() const { return get().is_null(); }
  bool is_object() const { return get().is_object(); }
  const boost::json::object* if_object() const { return get().if_object(); }
  const boost::json::object& as_object() const { return get().as_object(); }
  const boost::json::value& at(std::string_view key) const { return get().at(key); }
  const boost::json::value* if_contains(std::string_view key) const { return get().if_contains(key); }
  bool contains(std::string_view key) const { return get().contains(key); }
  bool empty() const
    requires std::is_same_v<T, boost::json::object>
  {
    return get().empty();
  }
  std::size_t size() const
    requires std::is_same_v<T, boost::json::object>
  {
    return get().size();
  }
  auto begin() const
    requires std::is_same_v<T, boost::json::object>
  {
    return get().begin();
  }
  auto end() const
    requires std::is_same_v<T, boost::json::object>
  {
    return get().end();
  }

  friend bool operator==(const Shared& a, const Shared& b) { return a.p_ == b.p_ || a.get() == b.get(); }
  friend bool operator==(const Shared& a, const T& b) { return a.get() == b; }

 private:
  std::shared_ptr<const T> p_;
};

using SharedJson = Shared<boost::json::value>;
using SharedObject = Shared<boost::json::object>;

}  // namespace stowage::kube
