#pragma once
// What the Kubernetes-mode e2e tests share: the test API server in a fresh folder, kubectl as its
// administrator (failing the test on a non-zero exit), and `stowage run` against it with the flags
// every such test wants (its own state dir and local root, trace logs, quick retries).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "support.hpp"
#include "support/api_server.hpp"

namespace kube_e2e {

struct KubeCluster {
  test::fs::path dir;
  test_support::TestApiServer server;
  test::fs::path state, root;

  KubeCluster(const std::string& dir_name, const std::string& admin_token, std::vector<std::string> server_args)
      : dir(test::temp_dir(dir_name)),
        server(dir / "apiserver", admin_token, std::move(server_args)),
        state(dir / "state"),
        root(dir / "root") {
    test::fs::create_directories(root);  // local.root must exist
  }

  // kubectl as the administrator; fails the test unless it exits 0.
  std::string kubectl(const std::string& args) const {
    auto [code, out] = server.kubectl(args);
    INFO("kubectl " << args << "\n" << out);
    REQUIRE(code == 0);
    return out;
  }
  void apply(const std::string& name, const std::string& yaml) const {
    auto file = dir / (name + ".yaml");
    test::write_file(file, yaml);
    kubectl("apply -f '" + file.string() + "'");
  }
  boost::json::value get(const std::string& what) const {
    return boost::json::parse(kubectl("get " + what + " -o json"));
  }
  // The storage's status.phase in namespace demo ("" when it has none or cannot be read).
  std::string phase(const std::string& bs) const {
    auto [code, out] = server.kubectl("get bs " + bs + " -n demo -o jsonpath={.status.phase}");
    return code == 0 ? out : "";
  }

  // `stowage run --kubeconfig FILE` with this cluster's state dir and local root, logging to
  // dir/<log_name>.log. Local volumes are written directly under that root unless `extra` picks a mode.
  test::Child run(const test::fs::path& kubeconfig, const std::string& log_name, const std::string& log_level,
                  std::vector<std::string> extra) const {
    std::vector<std::string> args{"run",          "--kubeconfig", kubeconfig.string(), "--state-dir", state.string(),
                                  "--local-root", root.string(),  "--log-level",       log_level,     "--retry-base",
                                  "200ms",        "--retry-cap",  "2s"};
    if (std::find(extra.begin(), extra.end(), "--local-volume-mode") == extra.end())
      args.insert(args.end(), {"--local-volume-mode", "direct"});
    args.insert(args.end(), extra.begin(), extra.end());
    return test::Child::spawn(args, dir / (log_name + ".out"), dir / (log_name + ".log"));
  }
  std::string log(const std::string& log_name) const { return test::read_file(dir / (log_name + ".log")); }
};

}  // namespace kube_e2e
