// kube.namespace (--namespace): the namespaces `stowage run` serves, a comma list and/or the flag given
// once per namespace, each name checked with a message naming it and how to fix it; empty = all.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace stowage::config;
using namespace stowage::config::testing;
using Names = std::vector<std::string>;

TEST_CASE("kube.namespace (--namespace): empty by default (all namespaces), a comma list, the flag repeated, or both") {
  CHECK(load_with({}).kube_namespaces.empty());
  CHECK(load_with({"--namespace", "demo"}).kube_namespaces == Names{"demo"});
  CHECK(load_with({"--namespace=team-a,team-b"}).kube_namespaces == Names{"team-a", "team-b"});
  CHECK(load_with({"--namespace", "team-a", "--namespace", "team-b"}).kube_namespaces == Names{"team-a", "team-b"});
  CHECK(load_with({"--namespace", "team-a,team-b", "--namespace=team-c"}).kube_namespaces ==
        Names{"team-a", "team-b", "team-c"});
  CHECK(load_with({"--namespace", "team-a,team-a"}).kube_namespaces == Names{"team-a"});  // once each
  CHECK(load_with({}, {{"STOWAGE_KUBE_NAMESPACE", "x, y"}}).kube_namespaces == Names{"x", "y"});
  TempDir dir;
  const std::string file = dir.write("ns.yaml", "kube:\n  namespace: \"team-a,team-b\"\n");
  CHECK(load_with({"--config", file}).kube_namespaces == Names{"team-a", "team-b"});
  // The flag replaces the file's list as a whole; given empty, it means all namespaces again.
  CHECK(load_with({"--config", file, "--namespace", "other"}).kube_namespaces == Names{"other"});
  CHECK(load_with({"--config", file, "--namespace="}).kube_namespaces.empty());
}

TEST_CASE("kube.namespace (--namespace): a bad name is refused, named, with how to fix it, and * is not a name (empty means all)") {
  CHECK(load_error({"--namespace", "team-a,Team_B"}) ==
        "flag --namespace: \"Team_B\" is not a namespace name (lower-case letters, digits and '-', at most 63 "
        "characters, starting and ending with a letter or digit); give names separated by commas");
  CHECK(load_error({"--namespace", "team-a", "--namespace=-b"}) ==
        "flag --namespace: \"-b\" is not a namespace name (lower-case letters, digits and '-', at most 63 "
        "characters, starting and ending with a letter or digit); give names separated by commas");
  CHECK(load_error({"--namespace", "*"}) ==
        "flag --namespace: \"*\" is not a namespace name: leave the setting empty for every namespace, or give names "
        "separated by commas, got \"*\"");
  CHECK(load_error({"--namespace", "a,,b"}) ==
        "flag --namespace: expected namespace names separated by commas, got an empty name in \"a,,b\"");
  CHECK_THAT(load_error({}, {{"STOWAGE_KUBE_NAMESPACE", std::string(64, 'a')}}),
             Catch::StartsWith("environment STOWAGE_KUBE_NAMESPACE: \"" + std::string(64, 'a') +
                               "\" is not a namespace name"));
}

TEST_CASE("kube.namespace (--namespace): printed as one comma list that reads back") {
  const Config config = load_with({"--namespace", "team-a", "--namespace", "team-b"});
  TempDir dir;
  const std::string yaml = to_yaml(config);
  CHECK_THAT(yaml, Catch::Contains("namespace: team-a,team-b"));
  const Config again = load_with({"--config", dir.write("printed.yaml", yaml)});
  CHECK(again.kube_namespaces == config.kube_namespaces);
}
