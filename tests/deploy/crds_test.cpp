// deploy/base/crds holds KubeStash's three storage.kubestash.com CRDs, schema for schema: each file is
// read with stowage's own YAML reader, reduced to the form of tests/data/kubestash-crds.json (KubeStash's
// CRDs reduced the same way; see crd_facts.hpp) and compared: no path missing or added, no type, enum,
// default, format or required flag different, the same names, scope, subresources and printer columns.
// The comparison itself is tested on altered copies, and the schemas are checked for what the real API
// server refuses (the test API server stores CRDs without looking at them).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "deploy/crd_facts.hpp"
#include "kube/yaml_json.hpp"

using namespace deploy_test;

namespace {

const std::string kSourceDir = STOWAGE_SOURCE_DIR;
const char* const kCrdFiles[] = {"backupstorages.yaml", "repositories.yaml", "snapshots.yaml"};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  INFO("reading " << path);
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The one document of deploy/base/crds/<file>, as kubectl would read it.
json::object crd_document(const std::string& file) {
  auto docs = stowage::kube::parse_yaml_documents(read_text(kSourceDir + "/deploy/base/crds/" + file));
  INFO(file << ": " << (docs.ok() ? "" : docs.error().message));
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  const auto& crd = docs.value()[0].value.as_object();
  CHECK(crd.at("apiVersion") == "apiextensions.k8s.io/v1");
  CHECK(crd.at("kind") == "CustomResourceDefinition");
  return crd;
}

// Reduced CRDs by metadata.name, as in the reference file.
json::object reduce_all(const std::vector<json::object>& crds) {
  json::object reduced;
  for (const auto& crd : crds) {
    Problems problems;
    auto facts = reduce_crd(crd, problems);
    INFO(crd.at("metadata").at("name") << ": " << problems.size() << " unreadable parts, first: "
                                       << (problems.empty() ? "" : problems.front()));
    REQUIRE(problems.empty());
    reduced[crd.at("metadata").at("name").as_string()] = std::move(facts);
  }
  return reduced;
}

std::vector<json::object> project_crds() {
  std::vector<json::object> crds;
  for (const char* file : kCrdFiles) crds.push_back(crd_document(file));
  return crds;
}

json::object kubestash_facts() {
  return json::parse(read_text(kSourceDir + "/tests/data/kubestash-crds.json")).as_object();
}

std::string joined(const Problems& problems) {
  std::string text;
  for (const auto& p : problems) text += "\n  " + p;
  return text;
}

json::object& schema_at(json::object& crd, std::initializer_list<const char*> properties) {
  json::object* node = &crd["spec"].as_object()["versions"].as_array()[0].as_object()["schema"].as_object()
                            ["openAPIV3Schema"].as_object();
  for (const char* name : properties) node = &(*node)["properties"].as_object()[name].as_object();
  return *node;
}

}  // namespace

TEST_CASE("crds: the three CRDs reduce to exactly KubeStash's facts") {
  auto problems = compare_crd_facts(kubestash_facts(), reduce_all(project_crds()));
  INFO(problems.size() << " differences from KubeStash's CRDs:" << joined(problems));
  CHECK(problems.empty());
}

TEST_CASE("crds: BackupStorage has no short names and the categories KubeStash gives it") {
  const auto crd = crd_document("backupstorages.yaml");
  const auto& names = crd.at("spec").at("names").as_object();
  CHECK_FALSE(names.contains("shortNames"));
  CHECK(names.at("categories") == json::array{"kubestash", "appscode", "all"});
  CHECK(crd.at("spec").at("scope") == "Namespaced");
}

TEST_CASE("crds: the comparison names each difference: a path missing or added, enum, default, required, short names") {
  auto crds = project_crds();
  auto& storage = crds[0];
  REQUIRE(storage.at("metadata").at("name") == "backupstorages.storage.kubestash.com");
  schema_at(storage, {"spec", "storage", "s3"})["properties"].as_object().erase("region");
  schema_at(storage, {"spec", "storage", "s3"})["properties"].as_object()["sessionToken"] = {{"type", "string"}};
  schema_at(storage, {"spec", "deletionPolicy"})["enum"] = json::array{"Delete"};
  schema_at(storage, {"spec", "usagePolicy", "allowedNamespaces", "from"})["default"] = "All";
  storage["spec"].as_object()["names"].as_object()["shortNames"] = json::array{"bs"};
  auto& repository = crds[1];
  schema_at(repository, {"spec", "storageRef"})["required"] = json::array{};

  auto problems = compare_crd_facts(kubestash_facts(), reduce_all(crds));
  INFO(joined(problems));
  const std::string bs = "backupstorages.storage.kubestash.com";
  const Problems expected{
      bs + ": names.shortNames is [\"bs\"] here, KubeStash's is null",
      bs + " v1alpha1: schema path .spec.deletionPolicy: enum is [\"Delete\"] here, KubeStash's is "
           "[\"Delete\",\"WipeOut\"]",
      bs + " v1alpha1: schema path .spec.storage.s3.region is missing (KubeStash's: {\"type\":\"string\"})",
      bs + " v1alpha1: schema path .spec.storage.s3.sessionToken is added (KubeStash's CRD has no such path)",
      bs + " v1alpha1: schema path .spec.usagePolicy.allowedNamespaces.from: default is \"All\" here, KubeStash's "
           "is \"Same\"",
      "repositories.storage.kubestash.com v1alpha1: schema path .spec.storageRef.name: required is absent here, "
      "KubeStash's is true",
  };
  CHECK(problems == expected);
}

TEST_CASE("crds: a CRD missing or a printer column changed is named") {
  auto crds = project_crds();
  crds.pop_back();  // snapshots
  crds[1]["spec"].as_object()["versions"].as_array()[0].as_object()["additionalPrinterColumns"].as_array().pop_back();
  auto problems = compare_crd_facts(kubestash_facts(), reduce_all(crds));
  INFO(joined(problems));
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].rfind("repositories.storage.kubestash.com v1alpha1: columns is [", 0) == 0);
  CHECK(problems[1] == "snapshots.storage.kubestash.com: the CRD is missing");
}

TEST_CASE("crds: the schemas are structural as the API server requires") {
  for (const auto& crd : project_crds()) {
    Problems problems;
    for (const auto& version : crd.at("spec").at("versions").as_array())
      structural_problems(version.at("schema").at("openAPIV3Schema").as_object(), ".", problems);
    INFO(crd.at("metadata").at("name") << ":" << joined(problems));
    CHECK(problems.empty());
  }
  // The check sees what it claims to see.
  auto crds = project_crds();
  schema_at(crds[0], {"spec", "deletionPolicy"})["default"] = "Keep";
  schema_at(crds[0], {"spec", "storage", "s3"})["required"] = json::array{"bucket", "key"};
  schema_at(crds[0], {"spec", "storage", "s3", "bucket"}).erase("type");
  Problems problems;
  structural_problems(schema_at(crds[0], {}), ".", problems);
  const Problems expected{".spec.deletionPolicy: default \"Keep\" is not in the enum",
                          ".spec.storage.s3: required names \"key\", which is no property",
                          ".spec.storage.s3.bucket: no type"};
  CHECK(problems == expected);
}
