// ambient-credentials.namespaces: a comma list of namespace names or "*", from every layer, checked
// with a message naming the bad name and where it came from, printed so that it reads back.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace stowage::config;
using namespace stowage::config::testing;
using Names = std::vector<std::string>;

TEST_CASE("ambient-credentials.namespaces: none by default, a list or * from a flag, the environment or the file") {
  CHECK(load_with({}).ambient_credentials_namespaces.empty());
  CHECK(load_with({"--ambient-credentials-namespaces", "team-a,team-b"}).ambient_credentials_namespaces ==
        Names{"team-a", "team-b"});
  CHECK(load_with({"--ambient-credentials-namespaces", " backup , 0ps-2 "}).ambient_credentials_namespaces ==
        Names{"backup", "0ps-2"});
  CHECK(load_with({}, {{"STOWAGE_AMBIENT_CREDENTIALS_NAMESPACES", "*"}}).ambient_credentials_namespaces == Names{"*"});
  const std::string a63(63, 'a');
  CHECK(load_with({"--ambient-credentials-namespaces", a63}).ambient_credentials_namespaces == Names{a63});

  TempDir dir;
  const std::string listed = dir.write("listed.yaml", "ambient-credentials:\n  namespaces: \"demo, ops\"\n");
  CHECK(load_with({"--config", listed}).ambient_credentials_namespaces == Names{"demo", "ops"});
  const std::string all = dir.write("all.yaml", "ambient-credentials: {namespaces: \"*\"}\n");
  CHECK(load_with({"--config", all}).ambient_credentials_namespaces == Names{"*"});
  // The flag given empty takes back what a lower layer allowed.
  CHECK(load_with({"--config", all, "--ambient-credentials-namespaces="}).ambient_credentials_namespaces.empty());
  CHECK(load_with({}, {{"STOWAGE_AMBIENT_CREDENTIALS_NAMESPACES", " "}}).ambient_credentials_namespaces.empty());
}

TEST_CASE("ambient-credentials.namespaces: a name that is not a DNS-1123 label, an empty one, or * beside names") {
  const std::string flag = "flag --ambient-credentials-namespaces: ";
  for (const std::string& bad : std::vector<std::string>{"Team-A", "team_a", "-team", "team-", "a.b", std::string(64, 'a'),
                                                         "t*"}) {
    INFO(bad);
    CHECK(load_error({"--ambient-credentials-namespaces", "demo," + bad}) ==
          flag + "\"" + bad +
              "\" is not a namespace name (lower-case letters, digits and '-', at most 63 characters, starting "
              "and ending with a letter or digit); give names separated by commas, or \"*\" for every namespace");
  }
  CHECK(load_error({"--ambient-credentials-namespaces", "a,,b"}) ==
        flag + "expected namespace names separated by commas, got an empty name in \"a,,b\"");
  CHECK(load_error({"--ambient-credentials-namespaces", "demo,"}) ==
        flag + "expected namespace names separated by commas, got an empty name in \"demo,\"");
  CHECK(load_error({"--ambient-credentials-namespaces", "*,demo"}) ==
        flag + "\"*\" already means every namespace: give it alone, or only names, got \"*,demo\"");
  CHECK_THAT(load_error({}, {{"STOWAGE_AMBIENT_CREDENTIALS_NAMESPACES", "Demo"}}),
             Catch::StartsWith("environment STOWAGE_AMBIENT_CREDENTIALS_NAMESPACES: \"Demo\" is not a namespace name"));

  TempDir dir;
  const std::string file = dir.write("bad.yaml", "ambient-credentials:\n  namespaces: kube_system\n");
  CHECK_THAT(load_error({"--config", file}),
             Catch::StartsWith(file + ":2:15: ambient-credentials.namespaces: \"kube_system\" is not a namespace name"));
  // YAML has no list here (the flag and the variable could not say the same): commas, in one string.
  const std::string list = dir.write("list.yaml", "ambient-credentials:\n  namespaces: [a, b]\n");
  CHECK_THAT(load_error({"--config", list}), Catch::Contains("expected a single value, got a list"));
}

TEST_CASE("ambient-credentials.namespaces: printed as one comma list that reads back, * quoted for YAML") {
  for (const auto* value : {"*", "team-a,team-b", ""}) {
    INFO(value);
    const Config config = load_with({std::string("--ambient-credentials-namespaces=") + value});
    TempDir dir;
    const std::string yaml = to_yaml(config);
    const Config again = load_with({"--config", dir.write("printed.yaml", yaml)});
    CHECK(again.ambient_credentials_namespaces == config.ambient_credentials_namespaces);
    CHECK(to_yaml(again) == yaml);
  }
  Config all;
  all.ambient_credentials_namespaces = {"*"};
  CHECK_THAT(to_yaml(all), Catch::Contains("ambient-credentials:\n  namespaces: \"*\"\n"));
}
