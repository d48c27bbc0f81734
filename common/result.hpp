#pragma once
// A small value-or-error type (std::expected is C++23). Errors are values at module seams:
// no exceptions cross from storage/, persistence/ or kube/ into engine/.
//
// Shaped like std::expected: a value converts implicitly (`return path;`), an error only through Err
// (`return Err("no such file");`, `co_return Err(std::move(error));`). Anything else that converts to
// the error type is refused, so a Result<std::filesystem::path, std::string> made from a std::string or
// a literal does not compile, rather than quietly becoming a path (a value of type T itself is fine).
#include <type_traits>
#include <utility>
#include <variant>

namespace stowage {

struct Ok {};

// The error side of a Result, like std::unexpected. Err("literal") deduces const char*, which
// converts to whatever error type the Result holds.
template <class E>
struct Err {
  // A constructor, not an aggregate: clang 14 (the fuzz build) has no Err(x) for aggregates (P0960).
  explicit Err(E e) : error(std::move(e)) {}
  E error;
};
template <class E>
Err(E) -> Err<E>;

template <class T, class E>
class Result {
 public:
  // Asio's co_spawn needs a default-constructible value type; a default Result is an empty error.
  Result() requires std::is_default_constructible_v<E> : v_(std::in_place_index<1>) {}
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  template <class U>
    requires(std::is_convertible_v<U&&, E> && !std::is_same_v<std::remove_cvref_t<U>, T>)
  Result(U&&) = delete;  // not a T but converts to E: wrap an error in Err, convert a value to T first
  // Convertible, not merely constructible: an aggregate error type is constructible from its first
  // member (C++20 parenthesized init), so Err(true) would otherwise make a BackendError.
  template <class G>
    requires std::is_convertible_v<G&&, E>
  Result(Err<G> e) : v_(std::in_place_index<1>, std::move(e.error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  E& error() { return std::get<1>(v_); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

}  // namespace stowage
