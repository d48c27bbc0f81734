#include "common/backoff.hpp"

#include <algorithm>

namespace stowage {

Millis FullJitterBackoff::ceiling(int attempt) const {
  if (attempt < 0) attempt = 0;
  // Double without overflow: stop as soon as the cap is reached.
  Millis d = base_;
  for (int i = 0; i < attempt && d < cap_; ++i) d *= 2;
  return std::min(d, cap_);
}

Millis FullJitterBackoff::next(int attempt) {
  Millis hi = ceiling(attempt);
  std::uniform_int_distribution<Millis::rep> dist(0, hi.count());
  return std::max(Millis(dist(rng_)), std::min(floor_, hi));
}

}  // namespace stowage
