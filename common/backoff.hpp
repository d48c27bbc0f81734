#pragma once
// Retry delays. One policy object, injected with its random source so tests can fix the seed.
#include <chrono>
#include <cstdint>
#include <random>

namespace stowage {

using Millis = std::chrono::milliseconds;

// "Full jitter" exponential backoff (AWS Architecture blog): a uniform draw from
// [0, min(cap, base * 2^attempt)], never below `floor` so a failing item cannot spin.
class FullJitterBackoff {
 public:
  FullJitterBackoff(Millis base, Millis cap, Millis floor = Millis(10), std::uint64_t seed = std::random_device{}())
      : base_(base), cap_(cap), floor_(floor), rng_(seed) {}

  // Upper bound of the draw for a given attempt (0-based): min(cap, base * 2^attempt).
  Millis ceiling(int attempt) const;
  Millis next(int attempt);

 private:
  Millis base_, cap_, floor_;
  std::mt19937_64 rng_;
};

}  // namespace stowage
