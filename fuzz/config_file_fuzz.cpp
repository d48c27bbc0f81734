// config/file_source and the loader: a settings file (--config / STOWAGE_CONFIG) read and checked
// against the settings table. Every problem must be a ConfigError; any other exception escaping is a
// bug (libFuzzer reports it as a crash).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.hpp"
#include "fuzz/fuzz_support.hpp"

namespace {

// The file each input is written to, removed when the process exits (libFuzzer ends with exit()).
// Never destroyed, so that the exit handler may still read it.
const std::string& settings_path() {
  static const std::string* path = [] {
    auto* p = new std::string("/tmp/stowage-fuzz-config-" + std::to_string(::getpid()) + ".yaml");
    std::atexit([] { std::remove(settings_path().c_str()); });
    return p;
  }();
  return *path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  {
    std::FILE* file = std::fopen(settings_path().c_str(), "wb");
    if (file == nullptr) return 0;
    std::fwrite(data, 1, size, file);
    std::fclose(file);
  }
  CLI::App app{"stowage"};
  config::Loader loader(app);
  const char* argv[] = {"stowage", "--config", settings_path().c_str()};
  app.parse(3, argv);
  try {
    config::Config config = loader.load(std::map<std::string, std::string>{});
    (void)config::to_yaml(config);
  } catch (const config::ConfigError&) {
  }
  return 0;
}
