#pragma once
// The subcommands behind `stowage`: run, init, get, config print, version.
#include <filesystem>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace stowage::engine {

int run_command(const config::Config& config);
int init_command(const config::Config& config, const std::vector<std::filesystem::path>& files,
                 std::chrono::milliseconds timeout);

struct GetOptions {
  std::string resource;
  std::string name;
  std::string namespace_ = "default";
  bool all_namespaces = false;
  std::string output;  // "" (table) | wide | yaml | json | name
};
int get_command(const config::Config& config, const GetOptions& options);

// The CLI entry point (main calls this).
int main_entry(int argc, char** argv);

}  // namespace stowage::engine
