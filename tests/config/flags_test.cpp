// Flags: registered on a real CLI::App, parsed from argv, with help text from the table.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace stowage::config;
using namespace stowage::config::testing;
using std::chrono::milliseconds;

TEST_CASE("every setting is a flag parsed from argv") {
  CLI::App app{"stowage"};
  Loader loader(app);
  const char* argv[] = {"stowage", "--workers",    "8",     "--retry-base=2s", "--log-level",
                        "debug",   "--local-root", "/host", "--workers",       "9"};
  app.parse(static_cast<int>(std::size(argv)), argv);
  const Config c = loader.load({});
  CHECK(c.workers == 9);  // the last of a repeated flag wins
  CHECK(c.retry_base == milliseconds(2000));
  CHECK(c.log_level == "debug");
  CHECK(c.local_root == "/host");
  CHECK(c.log_format == "text");  // flags not given leave the lower layers alone
}

TEST_CASE("the loader works on a subcommand") {
  CLI::App app{"stowage"};
  CLI::App* run = app.add_subcommand("run", "Run the controller");
  Loader loader(*run);
  const char* argv[] = {"stowage", "run", "--log-format", "json"};
  app.parse(static_cast<int>(std::size(argv)), argv);
  CHECK(loader.load({}).log_format == "json");
}

TEST_CASE("help shows each flag with its description, default and environment variable") {
  CLI::App app{"stowage"};
  Loader loader(app);
  const std::string help = app.help();
  INFO(help);
  for (const auto& setting : settings()) {
    CHECK(help.find(setting.flag) != std::string::npos);
    CHECK(help.find(setting.description) != std::string::npos);
    CHECK(help.find("[env: " + setting.env + "]") != std::string::npos);
    if (!setting.default_value.empty())
      CHECK((help.find("=" + setting.default_value) != std::string::npos ||
             help.find("[default: " + setting.default_value + "]") != std::string::npos));
  }
  CHECK(help.find("--config FILE") != std::string::npos);
  CHECK(help.find("--log-format text|json=text") != std::string::npos);
  CHECK(help.find("--workers INT=16") != std::string::npos);
}

TEST_CASE("an unknown flag is CLI11's error, not the loader's") {
  CLI::App app{"stowage"};
  Loader loader(app);
  const char* argv[] = {"stowage", "--wrokers", "3"};
  CHECK_THROWS_AS(app.parse(static_cast<int>(std::size(argv)), argv), CLI::ParseError);
}
