#pragma once
// Captures what spdlog's default logger writes, at debug and above, for the life of the object
// ("<level> <message>" per line, the last 1,000 lines). One at a time: it swaps the default logger.
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace test_support {

struct LogCapture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

  LogCapture() {
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() const { return sink->last_formatted(); }
  std::string all() const {
    std::string out;
    for (const auto& line : lines()) out += line + "\n";
    return out;
  }
  // Lines of `level` ("info", "warning", ...) holding `text`.
  int count(const std::string& level, const std::string& text) const {
    int n = 0;
    for (const auto& line : lines())
      if (line.rfind(level + " ", 0) == 0 && line.find(text) != std::string::npos) ++n;
    return n;
  }
  // A line of `level` holding `a` and, after it, `b`.
  bool has(const std::string& level, const std::string& a, const std::string& b) const {
    for (const auto& line : lines()) {
      auto at = line.find(a);
      if (line.rfind(level + " ", 0) == 0 && at != std::string::npos && line.find(b, at) != std::string::npos)
        return true;
    }
    return false;
  }
  bool mentions(const std::string& text) const {
    auto all = lines();
    return std::any_of(all.begin(), all.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }
};

}  // namespace test_support
