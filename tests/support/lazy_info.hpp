#pragma once
// LAZY_INFO(expr): like Catch's INFO, but `expr` is evaluated when an assertion in its scope fails,
// not where the macro stands. For a controller's log: `INFO(cluster.log("run"))` right after the
// start captures a log that is still empty; `LAZY_INFO(cluster.log("run"))` shows the log as it was
// at the failure. The listener in tests/test_main.cpp appends each live LAZY_INFO's text to the
// failed assertion's messages, innermost last, as Catch prints INFO messages.
#include <catch2/catch.hpp>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace test {

class LazyInfo {
 public:
  LazyInfo(Catch::SourceLineInfo where, std::function<std::string()> text) : where_(where), text_(std::move(text)) {
    live().push_back(this);
  }
  ~LazyInfo() { std::erase(live(), this); }
  LazyInfo(const LazyInfo&) = delete;
  LazyInfo& operator=(const LazyInfo&) = delete;

  Catch::MessageInfo message() const {
    Catch::MessageInfo m("LAZY_INFO", where_, Catch::ResultWas::Info);
    try {
      m.message = text_();
    } catch (const std::exception& e) {
      m.message = std::string("(LAZY_INFO threw: ") + e.what() + ")";
    }
    return m;
  }

  // The LAZY_INFOs in scope on this thread, outermost first.
  static std::vector<const LazyInfo*>& live() {
    thread_local std::vector<const LazyInfo*> all;
    return all;
  }

 private:
  Catch::SourceLineInfo where_;
  std::function<std::string()> text_;
};

}  // namespace test

#define STOWAGE_LAZY_INFO_NAME2(line) stowage_lazy_info_##line
#define STOWAGE_LAZY_INFO_NAME(line) STOWAGE_LAZY_INFO_NAME2(line)
#define LAZY_INFO(expr)                                                                            \
  const ::test::LazyInfo STOWAGE_LAZY_INFO_NAME(__LINE__)(CATCH_INTERNAL_LINEINFO, [&]() -> std::string { \
    std::ostringstream lazy_info_text;                                                             \
    lazy_info_text << expr;                                                                        \
    return lazy_info_text.str();                                                                   \
  })
