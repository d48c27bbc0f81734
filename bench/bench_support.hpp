#pragma once
// What every benchmark in bench/ reads off the machine: elapsed and CPU time (its own and other
// processes'), memory from /proc, the CPU model and load average for the report, and zero-padded
// object names. Header-only; Linux /proc.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// utime + stime of this process (RUSAGE_SELF) or of its reaped children (RUSAGE_CHILDREN).
inline double cpu_seconds(int who = RUSAGE_SELF) {
  struct rusage ru {};
  ::getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The fields of /proc/.../stat after the command name: [0] is field 3 (state), [1] the parent pid,
// [2] the process group, [11] and [12] utime and stime in clock ticks. Empty when unreadable.
inline std::vector<std::string> stat_fields(const std::string& stat_file) {
  std::ifstream in(stat_file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> fields;
  auto close = text.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(text.substr(close + 2));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// utime + stime of another process (all its threads); 0 when it is gone.
inline double process_cpu_seconds(pid_t pid) {
  auto f = stat_fields("/proc/" + std::to_string(pid) + "/stat");
  if (f.size() < 13) return 0;
  return static_cast<double>(std::stol(f[11]) + std::stol(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A "Field: N kB" line of a /proc file (".../status" or "/proc/meminfo") in KiB; 0 when absent.
inline long kib_field(const std::string& file, const char* field) {
  std::ifstream in(file);
  std::string line, prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::atol(line.c_str() + prefix.size());
  return 0;
}
// "VmRSS", "VmHWM", ... of a process (pid 0: this one) in KiB.
inline long status_kib(const char* field, pid_t pid = 0) {
  return kib_field(pid == 0 ? std::string("/proc/self/status") : "/proc/" + std::to_string(pid) + "/status", field);
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown CPU";
}

inline std::string load_average() {
  double load[3] = {};
  if (::getloadavg(load, 3) != 3) return "unknown";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return buf;
}

inline std::string padded(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05d", i);
  return buf;
}

}  // namespace bench
