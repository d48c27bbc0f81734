#pragma once
// metrics — a small Prometheus metrics registry (no external library): counters, gauges and
// histograms in families with fixed label names, rendered in the text exposition format 0.0.4.
//
// Guarantees:
//  - Output is stable: families sorted by name, samples by their label values; histogram buckets
//    are cumulative, `le` is the last label, `+Inf` is always present and equals `_count`.
//  - Numbers print as Go's strconv.FormatFloat(v, 'g', -1, 64) does (what client_golang emits):
//    "1", "0.005", "1e-08", "1.5e+06", "+Inf", "-Inf", "NaN".
//  - Label values and help texts are escaped as the format requires (\\, \" and \n).
//  - Updates are safe from any thread: a child's value is atomic, and a family's mutex is held only
//    to find or create the child for a label set. `with()` returns a reference that stays valid for
//    the registry's life (unless `remove()` deletes that label set), for hot paths that want to skip
//    the lookup.
//  - A family with label names shows no samples until a label set is first used (as client_golang's
//    *Vec types); a family without labels shows its one sample (0) from the start.
// Programming errors (a bad metric or label name, a name registered twice, the wrong number of
// label values, a counter decreased) throw std::invalid_argument: they are bugs, not conditions.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::metrics {

// The label values of one sample, in the order of the family's label names: {"backupstorage", "success"}.
using LabelValues = std::initializer_list<std::string_view>;

// Bucket upper bounds (the implicit +Inf is never listed).
std::vector<double> linear_buckets(double start, double width, int count);
std::vector<double> exponential_buckets(double start, double factor, int count);  // as client_golang computes them
// controller-runtime's controller_runtime_reconcile_time_seconds buckets: 0.005 .. 60.
std::vector<double> reconcile_time_buckets();
// client-go workqueue's (as controller-runtime registers them): ExponentialBuckets(10e-9, 10, 12), 1e-8 .. 1000.
std::vector<double> workqueue_buckets();

// Number formatting of the exposition format (Go's 'g' with the shortest precision).
std::string format_value(double v);
// Escaping of a label value (\ " newline) and of a help text (\ newline).
std::string escape_label_value(std::string_view s);
std::string escape_help(std::string_view s);

namespace detail {

// Orders label sets lexicographically; transparent, so a lookup by LabelValues allocates nothing.
struct LabelsLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends this family's HELP, TYPE and samples (nothing when it has no samples yet).
  virtual void expose(std::string& out) const = 0;
  // About how many bytes expose() appends, when that is cheap to tell (0: unknown). The registry
  // reserves the text at once from it, rather than doubling its way to megabytes.
  virtual std::size_t expected_size() const { return 0; }

 protected:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names);
  void check_arity(LabelValues values) const;
  // `name{a="x",b="y"` plus `extra` (a pre-escaped `le="..."`) and the closing brace, or just the
  // name when there are no labels at all.
  void sample_name(std::string& out, std::string_view suffix, const std::vector<std::string>& values,
                   std::string_view extra = {}) const;
  // The same for a sample without a suffix or extra label, from views (families that render their
  // samples from data of their own).
  void sample_name(std::string& out, LabelValues values) const;
  void header(std::string& out, std::string_view type) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
};

template <class Child>
class Family : public FamilyBase {
 public:
  // The child for these label values, created (at zero) on first use. The reference stays valid
  // for the registry's life.
  Child& with(LabelValues values);
  // The child for these label values if it was used, else null (never creates one).
  const Child* find(LabelValues values) const;
  // Deletes the series of these label values (client_golang's DeleteLabelValues), for families
  // whose label sets come and go (one per object): it is no longer exposed, and a later with()
  // starts it afresh at zero. True when it existed. A reference with() returned for that label set
  // must not be used afterwards.
  bool remove(LabelValues values);

 protected:
  using FamilyBase::FamilyBase;
  virtual std::unique_ptr<Child> make_child() const = 0;
  std::map<std::vector<std::string>, std::unique_ptr<Child>, LabelsLess> children_;
};

}  // namespace detail

// A value that only goes up (or resets when the process restarts): requests, errors, retries.
class CounterChild {
 public:
  void inc(double by = 1);  // by >= 0, else std::invalid_argument
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Counter : public detail::Family<CounterChild> {
 public:
  Counter(std::string name, std::string help, std::vector<std::string> label_names);
  void inc(LabelValues values = {}, double by = 1) { with(values).inc(by); }
  double value(LabelValues values = {}) const {  // 0 when the label set was never used
    const auto* child = find(values);
    return child ? child->value() : 0;
  }
  void expose(std::string& out) const override;

 private:
  std::unique_ptr<CounterChild> make_child() const override { return std::make_unique<CounterChild>(); }
};

// A value that goes up and down: queue depth, workers busy, leader or not.
class GaugeChild {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  void inc() { add(1); }
  void dec() { add(-1); }
  void set_max(double v);  // keeps the larger of the current value and v (a "longest so far")
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge : public detail::Family<GaugeChild> {
 public:
  Gauge(std::string name, std::string help, std::vector<std::string> label_names);
  void set(LabelValues values, double v) { with(values).set(v); }
  void set(double v) { with({}).set(v); }
  void add(LabelValues values, double by) { with(values).add(by); }
  void inc(LabelValues values = {}) { with(values).inc(); }
  void dec(LabelValues values = {}) { with(values).dec(); }
  double value(LabelValues values = {}) const {  // 0 when the label set was never used
    const auto* child = find(values);
    return child ? child->value() : 0;
  }
  void expose(std::string& out) const override;

 private:
  std::unique_ptr<GaugeChild> make_child() const override { return std::make_unique<GaugeChild>(); }
};

// A distribution of observations (durations in seconds) over fixed buckets.
class HistogramChild {
 public:
  explicit HistogramChild(const std::vector<double>& bounds);
  void observe(double v);
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) {
    observe(std::chrono::duration<double>(d).count());
  }

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (== count)
    std::uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;

  // Observes the time from its creation to its destruction (or to stop()), e.g. around a reconcile;
  // it may live across co_await.
  class Timer {
   public:
    explicit Timer(HistogramChild& child) : child_(&child), start_(std::chrono::steady_clock::now()) {}
    Timer(Timer&& o) noexcept : child_(o.child_), start_(o.start_) { o.child_ = nullptr; }
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    Timer& operator=(Timer&&) = delete;
    ~Timer() { stop(); }
    void stop() {
      if (child_) child_->observe(std::chrono::steady_clock::now() - start_);
      child_ = nullptr;
    }

   private:
    HistogramChild* child_;
    std::chrono::steady_clock::time_point start_;
  };
  Timer start_timer() { return Timer(*this); }

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // non-cumulative; the last is +Inf
  std::atomic<double> sum_{0};
};

class Histogram : public detail::Family<HistogramChild> {
 public:
  // Bounds must be finite and strictly increasing (else std::invalid_argument); +Inf is implicit.
  Histogram(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds);
  void observe(LabelValues values, double v) { with(values).observe(v); }
  void observe(double v) { with({}).observe(v); }
  template <class Rep, class Period>
  void observe(LabelValues values, std::chrono::duration<Rep, Period> d) {
    with(values).observe(d);
  }
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) {
    with({}).observe(d);
  }
  HistogramChild::Timer start_timer(LabelValues values = {}) { return with(values).start_timer(); }
  HistogramChild::Snapshot snapshot(LabelValues values = {}) const;  // empty when never used
  const std::vector<double>& bounds() const { return bounds_; }
  void expose(std::string& out) const override;

 private:
  std::unique_ptr<HistogramChild> make_child() const override { return std::make_unique<HistogramChild>(bounds_); }
  std::vector<double> bounds_;
  std::vector<std::string> formatted_bounds_;  // le="..." values, +Inf last
};

// Owns the families. Register them once at start-up (registration also locks, so late
// registration is safe, just not the intended use); update them from anywhere.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and not start
  // with "__"; a histogram may not use the label "le". A name (or a name a histogram's _bucket,
  // _sum, _count would produce) registered twice throws.
  Counter& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  Gauge& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  Histogram& histogram(std::string name, std::string help, std::vector<std::string> label_names,
                       std::vector<double> bounds);
  // A family of the caller's own kind (a FamilyBase whose expose() renders samples from data its
  // owner keeps anyway, with no child object per label set), registered and exposed like the others.
  template <class F>
  F& add(std::unique_ptr<F> family) {
    auto& ref = *family;
    add_family(std::move(family));
    return ref;
  }

  // The text exposition format 0.0.4, for Content-Type kContentType.
  std::string expose() const;
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void reserve(const std::vector<std::string>& sample_names);
  void add_family(std::unique_ptr<detail::FamilyBase> family);
  mutable std::mutex mutex_;
  // The size of the last exposition: the next one reserves a little more at once instead of
  // doubling its way there (which holds the old and the new buffer together, 1.5x the text).
  mutable std::size_t last_size_ = 0;
  std::map<std::string, std::unique_ptr<detail::FamilyBase>> families_;
  std::set<std::string> sample_names_;
};

}  // namespace stowage::metrics
