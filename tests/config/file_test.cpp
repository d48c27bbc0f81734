// The YAML file: nesting, and each kind of mistake reported at its file:line:column.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace stowage::config;
using namespace stowage::config::testing;
using std::chrono::milliseconds;

namespace {

// Loads `yaml` as the config file; returns the error message, with the file's path shortened
// to "config.yaml" so expectations read as a user would see them after `--config config.yaml`.
std::string file_error(const std::string& yaml) {
  TempDir dir;
  const std::string file = dir.write("config.yaml", yaml);
  std::string message = load_error({"--config", file});
  for (auto at = message.find(file); at != std::string::npos; at = message.find(file)) {
    message.replace(at, file.size(), "config.yaml");
  }
  return message;
}

}  // namespace

TEST_CASE("the file nests settings by the dots of their keys") {
  TempDir dir;
  const std::string file = dir.write("config.yaml",
                                     "# comment\n"
                                     "state-dir: /var/lib/stowage\n"
                                     "operator-version: v1.2.3\n"
                                     "log: {format: json, level: warn, file: /tmp/s.log}\n"
                                     "manifests:\n  dir: /etc/stowage/manifests\n  debounce: 250ms\n"
                                     "store.commit-interval: 0\n"  // a dotted key written in full also works
                                     "shutdown:\n  grace-period: 1m30s\n"
                                     "local:\n");  // an empty section sets nothing
  const Config c = load_with({"--config", file});
  CHECK(c.state_dir == "/var/lib/stowage");
  CHECK(c.operator_version == "v1.2.3");
  CHECK(c.log_format == "json");
  CHECK(c.log_level == "warn");
  CHECK(c.log_file == "/tmp/s.log");
  CHECK(c.manifests == "/etc/stowage/manifests");
  CHECK(c.manifests_debounce == milliseconds(250));
  CHECK(c.commit_interval == milliseconds(0));
  CHECK(c.shutdown_grace == milliseconds(90'000));
  CHECK(c.local_root == "/");
}

TEST_CASE("an empty file sets nothing") {
  CHECK(file_error("") == "");
  CHECK(file_error("# only a comment\n") == "");
}

TEST_CASE("a bad value in the file names file:line:column, the setting and the value") {
  CHECK(file_error("log:\n  level: info\nreconcile:\n  workers:    many\n") ==
        "config.yaml:4:15: reconcile.workers: expected an integer between 1 and 1024, got \"many\"");
  CHECK(file_error("state-dir: x\nreconcile:\n  retry-base: 5 parsecs\n") ==
        "config.yaml:3:15: reconcile.retry-base: bad duration \"5 parsecs\": use a number with a unit ns, us, ms, "
        "s, m or h, e.g. 500ms or 1m30s");
  CHECK(file_error("log: {format: xml}\n") == "config.yaml:1:15: log.format: expected one of text, json, got \"xml\"");
  // An empty value is reported at its key (yaml-cpp places it at the start of the next line).
  CHECK(file_error("reconcile:\n  workers:\nlog: {}\n") ==
        "config.yaml:2:3: reconcile.workers: expected an integer between 1 and 1024, got \"\"");
}

// The keys of the settings table whose key starts with `prefix`, as the message lists them.
static std::string known_keys(const std::string& prefix = "") {
  std::string out;
  for (const auto& s : settings()) {
    if (!s.key.starts_with(prefix)) continue;
    out += (out.empty() ? "" : ", ") + s.key;
  }
  return out;
}

TEST_CASE("an unknown key is reported at its position, with the closest known key") {
  // Within a section, the section's keys are listed.
  CHECK(file_error("log:\n  level: info\nreconcile:\n  workers: 4\n\n\n  wrokers: 3\n") ==
        "config.yaml:7:3: unknown setting \"reconcile.wrokers\", did you mean \"reconcile.workers\"? (known: " +
            known_keys("reconcile.") + ")");
  CHECK(file_error("reconcle:\n  workers: 3\n")
            .starts_with("config.yaml:1:1: unknown setting \"reconcle\", did you mean \"reconcile\"? (known: "
                         "state-dir, log.format, "));
  CHECK(file_error("state_dir: /x\n")
            .starts_with(
                "config.yaml:1:1: unknown setting \"state_dir\", did you mean \"state-dir\"? (known: state-dir, "));
  // Nothing near: no suggestion, every key listed.
  CHECK(file_error("token: abc\n") == "config.yaml:1:1: unknown setting \"token\" (known: " + known_keys() + ")");
}

TEST_CASE("a value of the wrong YAML kind is reported at its position") {
  CHECK(file_error("log:\n  format:\n    text: yes\n") ==
        "config.yaml:3:5: log.format: expected a single value, got a map");
  CHECK(file_error("reconcile:\n  workers: [1, 2]\n") ==
        "config.yaml:2:12: reconcile.workers: expected a single value, got a list");
  CHECK(file_error("log: json\n") ==
        "config.yaml:1:6: log: expected a map of settings (format, level, file), got the value \"json\"");
  CHECK(file_error("- state-dir: /x\n") == "config.yaml:1:1: expected a map of settings at the top level, got a list");
  CHECK(file_error("just text\n") ==
        "config.yaml:1:1: expected a map of settings at the top level, got the value \"just text\"");
  CHECK(file_error("? [a, b]\n: 1\n") == "config.yaml:1:3: expected a setting name, got a list");
}

TEST_CASE("a setting given twice in the file is an error naming both places") {
  CHECK(file_error("log:\n  format: json\nlog.format: text\n") ==
        "config.yaml:3:13: log.format: set twice (first at config.yaml:2:11)");
}

TEST_CASE("YAML syntax errors carry line and column") {
  CHECK(file_error("log:\n  format: [json\nreconcile: {}\n") ==
        "config.yaml:3:10: invalid YAML: end of sequence flow not found");
  CHECK(file_error("log:\n  format: json: text\n") == "config.yaml:2:15: invalid YAML: illegal map value");
}

TEST_CASE("a config file over 1 MiB is refused, and one that says so by its size is not read") {
  TempDir dir;
  const std::string big = dir.write("big.yaml", "log:\n  level: info\n" + std::string(1u << 20, '#'));
  CHECK(load_error({"--config", big}) ==
        "config file " + big + ": larger than 1 MiB, which no settings file is: check --config");
  const std::string huge = dir.write("huge.yaml", "");
  std::filesystem::resize_file(huge, std::uintmax_t{8} << 30);  // sparse: reading it whole would take 8 GiB
  CHECK(load_error({"--config", huge}) ==
        "config file " + huge + ": larger than 1 MiB, which no settings file is: check --config");
  // A character device never says its size: the read stops at the cap.
  CHECK(load_error({"--config", "/dev/zero"}) ==
        "config file /dev/zero: larger than 1 MiB, which no settings file is: check --config");
}

TEST_CASE("a config file that cannot be read is named with the reason") {
  CHECK(load_error({"--config", "/nonexistent/x/y.yaml"}) ==
        "config file /nonexistent/x/y.yaml: cannot read: No such file or directory");
  TempDir dir;
  CHECK(load_error({}, {{"STOWAGE_CONFIG", dir.path().string()}}) ==
        "config file " + dir.path().string() + ": cannot read: Is a directory");
}
