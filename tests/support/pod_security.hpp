#pragma once
// Pod Security Standards "restricted" (which includes "baseline"), as the PodSecurity admission plugin
// of Kubernetes 1.32 checks a pod: https://kubernetes.io/docs/concepts/security/pod-security-standards/
// restricted_violations() takes a pod spec (and its metadata, for the AppArmor annotations) and returns
// one line per broken rule, empty when the pod would be admitted to a namespace labelled
// `pod-security.kubernetes.io/enforce: restricted`. Linux pods only (spec.os.name windows is exempt
// from some rules there; nothing here makes Windows pods).
//
// Baseline: no hostProcess; hostNetwork, hostPID, hostIPC unset or false; no privileged container;
// capabilities added only from the baseline set; no hostPath volume; hostPort unset or 0; AppArmor
// RuntimeDefault or Localhost; SELinux type among container_t, container_init_t, container_kvm_t,
// container_engine_t, no user or role; procMount Default; seccomp not Unconfined; only safe sysctls.
// Restricted adds: volumes only configMap, csi, downwardAPI, emptyDir, ephemeral,
// persistentVolumeClaim, projected, secret; allowPrivilegeEscalation false in every container;
// runAsNonRoot true (pod, or every container) and never false; runAsUser never 0; seccompProfile
// RuntimeDefault or Localhost (pod, or every container); capabilities drop ALL and add at most
// NET_BIND_SERVICE.
#include <boost/json.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace test_support {

namespace pod_security_detail {
namespace json = boost::json;

inline const json::object* object_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

inline std::string text_at(const json::object* o, std::string_view key) {
  if (!o) return "";
  const auto* v = o->if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : "";
}

inline bool is_true(const json::object* o, std::string_view key) {
  const auto* v = o ? o->if_contains(key) : nullptr;
  return v && v->is_bool() && v->get_bool();
}

inline bool is_false(const json::object* o, std::string_view key) {
  const auto* v = o ? o->if_contains(key) : nullptr;
  return v && v->is_bool() && !v->get_bool();
}

inline bool is_zero(const json::object* o, std::string_view key) {
  const auto* v = o ? o->if_contains(key) : nullptr;
  return v && ((v->is_int64() && v->get_int64() == 0) || (v->is_uint64() && v->get_uint64() == 0));
}

inline std::vector<std::string> strings_at(const json::object* o, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = o ? o->if_contains(key) : nullptr;
  if (v && v->is_array())
    for (const auto& e : v->get_array()) out.push_back(e.is_string() ? std::string(e.get_string()) : json::serialize(e));
  return out;
}

// Checks shared by the pod's and each container's securityContext.
inline void check_security_context(const json::object* sc, const std::string& who, std::vector<std::string>& out) {
  if (!sc) return;
  if (is_true(object_at(*sc, "windowsOptions"), "hostProcess")) out.push_back(who + ": windowsOptions.hostProcess");
  if (const auto* se = object_at(*sc, "seLinuxOptions")) {
    static const std::set<std::string> kTypes{"", "container_t", "container_init_t", "container_kvm_t",
                                              "container_engine_t"};
    if (!kTypes.count(text_at(se, "type"))) out.push_back(who + ": seLinuxOptions.type " + text_at(se, "type"));
    if (!text_at(se, "user").empty() || !text_at(se, "role").empty())
      out.push_back(who + ": seLinuxOptions.user/role set");
  }
  if (const auto* aa = object_at(*sc, "appArmorProfile"); aa && text_at(aa, "type") != "RuntimeDefault" &&
                                                          text_at(aa, "type") != "Localhost")
    out.push_back(who + ": appArmorProfile.type " + text_at(aa, "type"));
  if (const auto* sp = object_at(*sc, "seccompProfile"); sp && text_at(sp, "type") != "RuntimeDefault" &&
                                                         text_at(sp, "type") != "Localhost")
    out.push_back(who + ": seccompProfile.type " + text_at(sp, "type") + " (RuntimeDefault or Localhost)");
  if (is_false(sc, "runAsNonRoot")) out.push_back(who + ": runAsNonRoot false");
  if (is_zero(sc, "runAsUser")) out.push_back(who + ": runAsUser 0");
}

}  // namespace pod_security_detail

inline std::vector<std::string> restricted_violations(const boost::json::object& pod_spec,
                                                      const boost::json::object& pod_metadata = {}) {
  namespace d = pod_security_detail;
  namespace json = boost::json;
  std::vector<std::string> out;
  for (auto key : {"hostNetwork", "hostPID", "hostIPC"})
    if (d::is_true(&pod_spec, key)) out.push_back(std::string("pod: ") + key + " true");

  const auto* pod_sc = d::object_at(pod_spec, "securityContext");
  d::check_security_context(pod_sc, "pod securityContext", out);
  if (pod_sc) {
    static const std::set<std::string> kSafeSysctls{
        "kernel.shm_rmid_forced",      "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",     "net.ipv4.ping_group_range",    "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",     "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes"};
    if (const auto* sysctls = pod_sc->if_contains("sysctls"); sysctls && sysctls->is_array())
      for (const auto& s : sysctls->get_array())
        if (s.is_object() && !kSafeSysctls.count(d::text_at(&s.get_object(), "name")))
          out.push_back("pod: sysctl " + d::text_at(&s.get_object(), "name") + " is not a safe sysctl");
  }
  const bool pod_non_root = d::is_true(pod_sc, "runAsNonRoot");
  const auto* pod_seccomp = pod_sc ? d::object_at(*pod_sc, "seccompProfile") : nullptr;
  const bool pod_seccomp_set = pod_seccomp && !d::text_at(pod_seccomp, "type").empty();

  static const std::set<std::string> kVolumeTypes{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                                  "persistentVolumeClaim", "projected", "secret"};
  if (const auto* volumes = pod_spec.if_contains("volumes"); volumes && volumes->is_array())
    for (const auto& v : volumes->get_array()) {
      if (!v.is_object()) continue;
      for (const auto& kv : v.get_object())
        if (kv.key() != "name" && !kVolumeTypes.count(std::string(kv.key())))
          out.push_back("volume " + d::text_at(&v.get_object(), "name") + ": type " + std::string(kv.key()) +
                        " is not allowed");
    }

  if (const auto* annotations = d::object_at(pod_metadata, "annotations"))
    for (const auto& kv : *annotations) {
      std::string_view key = kv.key();
      if (key.rfind("container.apparmor.security.beta.kubernetes.io/", 0) != 0 || !kv.value().is_string()) continue;
      std::string value(kv.value().get_string());
      if (value != "runtime/default" && value.rfind("localhost/", 0) != 0)
        out.push_back("annotation " + std::string(key) + ": " + value);
    }

  static const std::set<std::string> kBaselineCapabilities{
      "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
      "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"};
  for (auto list : {"initContainers", "containers", "ephemeralContainers"}) {
    const auto* containers = pod_spec.if_contains(list);
    if (!containers || !containers->is_array()) continue;
    for (const auto& c : containers->get_array()) {
      if (!c.is_object()) continue;
      const std::string who = "container " + d::text_at(&c.get_object(), "name");
      const auto* sc = d::object_at(c.get_object(), "securityContext");
      d::check_security_context(sc, who, out);
      if (d::is_true(sc, "privileged")) out.push_back(who + ": privileged");
      if (!d::is_false(sc, "allowPrivilegeEscalation")) out.push_back(who + ": allowPrivilegeEscalation is not false");
      if (!pod_non_root && !d::is_true(sc, "runAsNonRoot"))
        out.push_back(who + ": runAsNonRoot is not true (in the pod or the container)");
      const auto* seccomp = sc ? d::object_at(*sc, "seccompProfile") : nullptr;
      if (!pod_seccomp_set && (!seccomp || d::text_at(seccomp, "type").empty()))
        out.push_back(who + ": no seccompProfile (RuntimeDefault or Localhost, in the pod or the container)");
      if (sc && !d::text_at(sc, "procMount").empty() && d::text_at(sc, "procMount") != "Default")
        out.push_back(who + ": procMount " + d::text_at(sc, "procMount"));
      const auto* caps = sc ? d::object_at(*sc, "capabilities") : nullptr;
      auto drop = d::strings_at(caps, "drop");
      if (std::find(drop.begin(), drop.end(), "ALL") == drop.end())
        out.push_back(who + ": capabilities.drop does not include ALL");
      for (const auto& cap : d::strings_at(caps, "add")) {
        if (cap != "NET_BIND_SERVICE") out.push_back(who + ": capabilities.add " + cap);
        if (!kBaselineCapabilities.count(cap)) out.push_back(who + ": capabilities.add " + cap + " (not even baseline)");
      }
      if (const auto* ports = c.get_object().if_contains("ports"); ports && ports->is_array())
        for (const auto& p : ports->get_array())
          if (p.is_object() && p.get_object().contains("hostPort") && !d::is_zero(&p.get_object(), "hostPort"))
            out.push_back(who + ": hostPort " + json::serialize(p.get_object().at("hostPort")));
    }
  }
  return out;
}

}  // namespace test_support
