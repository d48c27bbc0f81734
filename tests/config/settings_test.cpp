// The settings table: names derived as documented, nothing duplicated, defaults matching Config.
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "config/config.hpp"

using namespace stowage::config;

TEST_CASE("the table lists every setting once, with its flag, variable and default") {
  const auto& all = settings();
  REQUIRE(!all.empty());
  std::set<std::string> keys, flags, envs;
  for (const auto& s : all) {
    INFO(s.key);
    CHECK(keys.insert(s.key).second);
    CHECK(flags.insert(s.flag).second);
    CHECK(envs.insert(s.env).second);
    CHECK(s.flag.starts_with("--"));
    CHECK(!s.description.empty());
  }
  CHECK(flags.count("--config") == 0);
  CHECK(envs.count("STOWAGE_CONFIG") == 0);
}

TEST_CASE("environment names are STOWAGE_ and the key with '.' and '-' as '_'") {
  const auto find = [](const std::string& key) {
    for (const auto& s : settings()) {
      if (s.key == key) return s;
    }
    FAIL("no setting " << key);
    return SettingInfo{};
  };
  CHECK(find("reconcile.retry-base").env == "STOWAGE_RECONCILE_RETRY_BASE");
  CHECK(find("state-dir").env == "STOWAGE_STATE_DIR");
  CHECK(find("reconcile.workers").flag == "--workers");
  CHECK(find("manifests.dir").flag == "--manifests");
  CHECK(find("store.commit-interval").default_value == "5ms");
  CHECK(find("reconcile.retry-cap").default_value == "5m");
  CHECK(find("state-dir").default_value == "./var/stowage");
  CHECK(find("log.file").default_value.empty());
}

TEST_CASE("the README's configuration table documents every setting with its flag, variable and default") {
  std::ifstream in(std::string(STOWAGE_SOURCE_DIR) + "/README.md");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string readme = ss.str();
  for (const auto& s : settings()) {
    INFO(s.key);
    auto row = readme.find("| `" + s.key + "` | `" + s.flag + "` | `" + s.env + "` | ");
    REQUIRE(row != std::string::npos);
    auto line = readme.substr(row, readme.find('\n', row) - row);
    if (!s.default_value.empty()) CHECK_THAT(line, Catch::Contains("`" + s.default_value + "`"));
  }
}
