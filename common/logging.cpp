#include "common/logging.hpp"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

namespace stowage::logging {

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

namespace {

// One JSON object per line: {"ts":"...","level":"info","msg":"..."}.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto secs = std::chrono::system_clock::to_time_t(msg.time);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char ts[96];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = std::string("{\"ts\":\"") + ts + "\",\"level\":\"" + std::string(level.data(), level.size()) +
                       "\",\"msg\":\"" + json_escape(std::string_view(msg.payload.data(), msg.payload.size())) +
                       "\"}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// spdlog's file sink opens with fopen("ab"): mode 0666 less the umask (0666 under umask 000). So
// the file is opened here first with mode 0600: a file that does not exist yet is created 0600
// whatever the umask (O_EXCL | O_NOFOLLOW, then fchmod). A name that exists is the admin's choice
// and is followed (a symlink on purpose, /dev/stdout); were it a dangling symlink, the file it names
// is created with 0600 less the umask, never wider. A regular file that group or others may read is
// reported: its mode, for a warning once the logger is up.
std::optional<mode_t> prepare_log_file(const std::string& file) {
  int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::fchmod(fd, 0600);  // a umask such as 0277 would leave it unwritable
    ::close(fd);
    return std::nullopt;
  }
  if (errno != EEXIST) return std::nullopt;  // spdlog reports it when it opens the file
  fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  const bool wide = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0;
  ::close(fd);
  if (wide) return st.st_mode;
  return std::nullopt;
}

}  // namespace

void setup(Format format, const std::string& level, const std::string& file) {
  std::shared_ptr<spdlog::logger> logger;
  std::optional<mode_t> wide_mode;
  if (file.empty()) {
    logger = spdlog::stderr_color_mt("stowage");
  } else {
    wide_mode = prepare_log_file(file);
    logger = spdlog::basic_logger_mt("stowage", file);
  }
  if (format == Format::Json)
    logger->set_formatter(std::make_unique<JsonFormatter>());
  else
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  if (wide_mode) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(*wide_mode & 07777));
    spdlog::warn("the log file {} has mode {}: group or others may read it; run chmod 600 {}", file, mode, file);
  }
}

}  // namespace stowage::logging
