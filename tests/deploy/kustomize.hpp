#pragma once
// What the deploy tests share: a command's output, a kustomization rendered by the real
// `kubectl kustomize`, and what `kubectl apply --server-side` prints for an object.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "kube/yaml_json.hpp"

namespace deploy_test {

namespace json = boost::json;

inline const std::string kDeploy = std::string(STOWAGE_SOURCE_DIR) + "/deploy";
inline const std::string kBase = kDeploy + "/base";

struct Output {
  int code = -1;
  std::string out, err;
};

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `command` through the shell, its standard output and error kept apart.
inline Output run(const std::string& command, const std::filesystem::path& err_file) {
  Output result;
  FILE* pipe = ::popen((command + " 2>'" + err_file.string() + "'").c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.out.append(buf, n);
  int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.err = read_text(err_file);
  return result;
}

struct Rendered {
  std::string text;
  std::vector<json::object> objects;
};

inline std::vector<json::object> parse_objects(const std::string& yaml) {
  auto docs = stowage::kube::parse_yaml_documents(yaml);
  INFO((docs.ok() ? "" : docs.error().message));
  REQUIRE(docs.ok());
  std::vector<json::object> objects;
  for (auto& doc : docs.value()) objects.push_back(doc.value.as_object());
  return objects;
}

// `kubectl kustomize kustomization_dir`, which must succeed without a warning.
inline Rendered render(const std::filesystem::path& kustomization_dir, const std::filesystem::path& work_dir) {
  auto result = run("kubectl kustomize '" + kustomization_dir.string() + "'", work_dir / "kustomize.err");
  INFO("kubectl kustomize " << kustomization_dir << " exited " << result.code << "\n" << result.err);
  REQUIRE(result.code == 0);
  CHECK(result.err.empty());
  return Rendered{result.out, parse_objects(result.out)};
}

inline std::string text_of(const json::value& v) { return v.is_string() ? std::string(v.get_string()) : ""; }

inline std::string kind_and_name(const json::object& o) {
  return text_of(o.at("kind")) + "/" + text_of(o.at("metadata").at("name"));
}

// What `kubectl apply --server-side` prints for `o`: "deployment.apps/stowage serverside-applied".
inline std::string applied_line(const json::object& o) {
  std::string kind = text_of(o.at("kind")), api_version = text_of(o.at("apiVersion"));
  for (auto& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto slash = api_version.find('/');
  std::string group = slash == std::string::npos ? "" : "." + api_version.substr(0, slash);
  return kind + group + "/" + text_of(o.at("metadata").at("name")) + " serverside-applied";
}

}  // namespace deploy_test
