#pragma once
// The BackupStorage the informer benchmarks (stowage-watch-bench, stowage-event-bench) serve: about
// 1.2 KB of JSON shaped like a tenant's object (labels, an annotation, the finalizer, a local
// provider, a selector usage policy, runtime settings). Header-only.
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <string>

namespace bench {

inline constexpr const char* kRoundLabel = "bench.stowage.dev/round";

// Object number i in namespace ns; `round` is the value of kRoundLabel (a bench's mutations bump it).
inline boost::json::value backup_storage_object(const std::string& ns, const std::string& name, int i,
                                                const std::string& round) {
  const std::string team = "team-" + std::to_string(i % 17);
  return boost::json::value{
      {"apiVersion", "storage.kubestash.com/v1alpha1"},
      {"kind", "BackupStorage"},
      {"metadata",
       {{"name", name},
        {"namespace", ns},
        {"labels",
         {{"app.kubernetes.io/name", "backupstorage"},
          {"app.kubernetes.io/instance", name},
          {"app.kubernetes.io/managed-by", "stowage-watch-bench"},
          {"app.kubernetes.io/part-of", "kubestash"},
          {"team", team},
          {"tier", i % 3 == 0 ? "gold" : "silver"},
          {kRoundLabel, round}}},
        {"annotations", {{"kubestash.com/description", "nightly backups of " + ns + " for " + team}}},
        {"finalizers", boost::json::array{"kubestash.com/cleanup"}}}},
      {"spec",
       {{"storage",
         {{"provider", "local"},
          {"local",
           {{"mountPath", "/safe/data"},
            {"subPath", ns + "/" + name},
            {"hostPath", {{"path", "/var/lib/stowage-bench/" + ns}, {"type", "DirectoryOrCreate"}}}}}}},
        {"usagePolicy",
         {{"allowedNamespaces",
           {{"from", "Selector"}, {"selector", {{"matchLabels", {{"kubernetes.io/metadata.name", ns}}}}}}}}},
        {"default", false},
        {"deletionPolicy", i % 2 == 0 ? "Delete" : "WipeOut"},
        {"runtimeSettings",
         {{"pod",
           {{"securityContext", {{"runAsUser", 65534}, {"runAsGroup", 65534}, {"fsGroup", 65534}}},
            {"nodeSelector", {{"kubernetes.io/os", "linux"}}},
            {"tolerations",
             boost::json::array{
                 {{"key", "dedicated"}, {"operator", "Equal"}, {"value", "backup"}, {"effect", "NoSchedule"}}}}}}}}}}};
}

// An Opaque Secret with ~200 bytes of data (three keys), labelled.

}  // namespace bench
