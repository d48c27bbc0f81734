#include "common/metrics.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace stowage::metrics {

namespace {

bool valid_name(std::string_view s, bool colons) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void check_metric_name(const std::string& name) {
  if (!valid_name(name, true))
    throw std::invalid_argument("metric name \"" + name + "\" is not valid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*");
}

void check_label_names(const std::string& metric, const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& n = names[i];
    if (!valid_name(n, false) || n.starts_with("__"))
      throw std::invalid_argument("label name \"" + n + "\" of metric " + metric +
                                  " is not valid: it must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __");
    for (std::size_t j = 0; j < i; ++j)
      if (names[j] == n) throw std::invalid_argument("metric " + metric + " names the label \"" + n + "\" twice");
  }
}

}  // namespace

// ---- buckets and formatting --------------------------------------------------------------------

std::vector<double> linear_buckets(double start, double width, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start += width) out.push_back(start);
  return out;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  // Repeated multiplication, as client_golang's ExponentialBuckets does: the same doubles, so the
  // same `le` texts (1e-08, 1e-07, 1e-06, 9.999999999999999e-06, ...) as a Go controller shows.
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

std::vector<double> reconcile_time_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
          1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60};
}

std::vector<double> workqueue_buckets() { return exponential_buckets(10e-9, 10, 12); }

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Go's 'g' with the shortest precision: scientific when the exponent is < -4 or >= 6 (Go fixes
  // the precision at 6 for this choice when printing the shortest form), else fixed.
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view text(buf, static_cast<std::size_t>(sci.ptr - buf));
  auto e = text.find('e');
  int exponent = 0;
  std::string_view digits = text.substr(e + 2);  // after "e+" or "e-"
  std::from_chars(digits.data(), digits.data() + digits.size(), exponent);
  if (text[e + 1] == '-') exponent = -exponent;
  if (exponent < -4 || exponent >= 6) return std::string(text);
  auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, static_cast<std::size_t>(fixed.ptr - buf));
}

std::string escape_label_value(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// ---- families ----------------------------------------------------------------------------------

namespace detail {

FamilyBase::FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  check_metric_name(name_);
  check_label_names(name_, label_names_);
}

void FamilyBase::check_arity(LabelValues values) const {
  if (values.size() == label_names_.size()) return;
  std::string names;
  for (const auto& n : label_names_) names += (names.empty() ? "" : ", ") + n;
  throw std::invalid_argument("metric " + name_ + " takes " + std::to_string(label_names_.size()) +
                              " label values (" + names + "), got " + std::to_string(values.size()));
}

void FamilyBase::header(std::string& out, std::string_view type) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  out += escape_help(help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type;
  out += '\n';
}

void FamilyBase::sample_name(std::string& out, std::string_view suffix, const std::vector<std::string>& values,
                             std::string_view extra) const {
  out += name_;
  out += suffix;
  if (values.empty() && extra.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!values.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

void FamilyBase::sample_name(std::string& out, LabelValues values) const {
  out += name_;
  if (values.size() == 0) return;
  out += '{';
  std::size_t i = 0;
  for (std::string_view v : values) {
    if (i > 0) out += ',';
    out += label_names_[i++];
    out += "=\"";
    if (v.find_first_of("\\\"\n") == std::string_view::npos)
      out += v;
    else
      out += escape_label_value(v);
    out += '"';
  }
  out += '}';
}

template <class Child>
Child& Family<Child>::with(LabelValues values) {
  check_arity(values);
  std::lock_guard lock(mutex_);
  auto it = children_.find(values);
  if (it == children_.end())
    it = children_.emplace(std::vector<std::string>(values.begin(), values.end()), make_child()).first;
  return *it->second;
}

template <class Child>
const Child* Family<Child>::find(LabelValues values) const {
  check_arity(values);
  std::lock_guard lock(mutex_);
  auto it = children_.find(values);
  return it == children_.end() ? nullptr : it->second.get();
}

template <class Child>
bool Family<Child>::remove(LabelValues values) {
  check_arity(values);
  std::lock_guard lock(mutex_);
  auto it = children_.find(values);
  if (it == children_.end()) return false;
  children_.erase(it);
  return true;
}

template class Family<CounterChild>;
template class Family<GaugeChild>;
template class Family<HistogramChild>;

}  // namespace detail

namespace {

void append_sample_value(std::string& out, double v) {
  out += ' ';
  out += format_value(v);
  out += '\n';
}

}  // namespace

void CounterChild::inc(double by) {
  if (!(by >= 0)) throw std::invalid_argument("a counter cannot go down (inc by " + format_value(by) + ")");
  value_.fetch_add(by, std::memory_order_relaxed);
}

Counter::Counter(std::string name, std::string help, std::vector<std::string> label_names)
    : Family(std::move(name), std::move(help), std::move(label_names)) {
  if (label_names_.empty()) with({});
}

void Counter::expose(std::string& out) const {
  std::lock_guard lock(mutex_);
  if (children_.empty()) return;
  header(out, "counter");
  for (const auto& [values, child] : children_) {
    sample_name(out, "", values);
    append_sample_value(out, child->value());
  }
}

void GaugeChild::set_max(double v) {
  double current = value_.load(std::memory_order_relaxed);
  while (current < v && !value_.compare_exchange_weak(current, v, std::memory_order_relaxed)) {
  }
}

Gauge::Gauge(std::string name, std::string help, std::vector<std::string> label_names)
    : Family(std::move(name), std::move(help), std::move(label_names)) {
  if (label_names_.empty()) with({});
}

void Gauge::expose(std::string& out) const {
  std::lock_guard lock(mutex_);
  if (children_.empty()) return;
  header(out, "gauge");
  for (const auto& [values, child] : children_) {
    sample_name(out, "", values);
    append_sample_value(out, child->value());
  }
}

HistogramChild::HistogramChild(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void HistogramChild::observe(double v) {
  // The first bucket whose upper bound is >= v; NaN (and anything above the last bound) is +Inf's.
  std::size_t i = std::isnan(v) ? bounds_.size()
                                : static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                                           bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

HistogramChild::Snapshot HistogramChild::snapshot() const {
  // The count is the sum of the buckets read here, so `+Inf` and `_count` always agree even while
  // other threads observe.
  Snapshot s;
  s.cumulative.reserve(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    s.count += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(s.count);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : Family(std::move(name), std::move(help), std::move(label_names)), bounds_(std::move(bounds)) {
  for (const auto& n : label_names_)
    if (n == "le") throw std::invalid_argument("histogram " + name_ + " may not use the label name \"le\"");
  if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();  // implicit
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i - 1] < bounds_[i])))
      throw std::invalid_argument("histogram " + name_ + ": bucket bounds must be finite and strictly increasing");
    formatted_bounds_.push_back("le=\"" + format_value(bounds_[i]) + "\"");
  }
  formatted_bounds_.push_back("le=\"+Inf\"");
  if (label_names_.empty()) with({});
}

HistogramChild::Snapshot Histogram::snapshot(LabelValues values) const {
  const auto* child = find(values);
  return child ? child->snapshot() : HistogramChild::Snapshot{};
}

void Histogram::expose(std::string& out) const {
  std::lock_guard lock(mutex_);
  if (children_.empty()) return;
  header(out, "histogram");
  for (const auto& [values, child] : children_) {
    auto snap = child->snapshot();
    for (std::size_t i = 0; i < snap.cumulative.size(); ++i) {
      sample_name(out, "_bucket", values, formatted_bounds_[i]);
      append_sample_value(out, static_cast<double>(snap.cumulative[i]));
    }
    sample_name(out, "_sum", values);
    append_sample_value(out, snap.sum);
    sample_name(out, "_count", values);
    append_sample_value(out, static_cast<double>(snap.count));
  }
}

// ---- registry ----------------------------------------------------------------------------------

void Registry::reserve(const std::vector<std::string>& sample_names) {
  for (const auto& n : sample_names)
    if (sample_names_.count(n))
      throw std::invalid_argument("metric name " + n + " is already registered (or produced by a histogram)");
  sample_names_.insert(sample_names.begin(), sample_names.end());
}

Counter& Registry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  auto family = std::make_unique<Counter>(std::move(name), std::move(help), std::move(label_names));
  auto& ref = *family;
  std::lock_guard lock(mutex_);
  reserve({ref.name()});
  families_.emplace(ref.name(), std::move(family));
  return ref;
}

Gauge& Registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  auto family = std::make_unique<Gauge>(std::move(name), std::move(help), std::move(label_names));
  auto& ref = *family;
  std::lock_guard lock(mutex_);
  reserve({ref.name()});
  families_.emplace(ref.name(), std::move(family));
  return ref;
}

Histogram& Registry::histogram(std::string name, std::string help, std::vector<std::string> label_names,
                               std::vector<double> bounds) {
  auto family =
      std::make_unique<Histogram>(std::move(name), std::move(help), std::move(label_names), std::move(bounds));
  auto& ref = *family;
  std::lock_guard lock(mutex_);
  reserve({ref.name(), ref.name() + "_bucket", ref.name() + "_sum", ref.name() + "_count"});
  families_.emplace(ref.name(), std::move(family));
  return ref;
}

void Registry::add_family(std::unique_ptr<detail::FamilyBase> family) {
  std::lock_guard lock(mutex_);
  reserve({family->name()});
  const std::string name = family->name();
  families_.emplace(name, std::move(family));
}

std::string Registry::expose() const {
  std::string out;
  std::lock_guard lock(mutex_);
  std::size_t expected = 0;
  for (const auto& [name, family] : families_) expected += family->expected_size();
  out.reserve(std::max(last_size_ + last_size_ / 16, expected + expected / 16) + 4096);
  for (const auto& [name, family] : families_) family->expose(out);
  last_size_ = out.size();
  return out;
}

}  // namespace stowage::metrics
