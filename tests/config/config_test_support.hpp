#pragma once
// Helpers for the config tests: a temporary directory that cleans up after itself, and a loader
// run through a real CLI::App with an argv and an explicit environment (never the process's).
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace stowage::config::testing {

using Env = std::map<std::string, std::string>;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "stowage-config-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` to a file in the directory and returns its full path as a string.
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
    return (path_ / name).string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Parses `args` (without the program name) on a fresh App, then loads with `env`.
inline Config load_with(const std::vector<std::string>& args, const Env& env = {}) {
  CLI::App app{"stowage"};
  Loader loader(app);
  std::vector<const char*> argv{"stowage"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return loader.load(env);
}

// The ConfigError message load_with() throws, or "" if it does not throw.
inline std::string load_error(const std::vector<std::string>& args, const Env& env = {}) {
  try {
    load_with(args, env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace stowage::config::testing
