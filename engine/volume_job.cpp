// The helper Jobs of a local-volume BackupStorage and how to read their outcome (see volume_job.hpp).
// The JSON is built in the order a reader checks it: name, labels, owner, Job spec, pod, container.
#include "engine/volume_job.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>

#include "common/crypto.hpp"
#include "engine/volume_commands.hpp"
#include "kube/json_path.hpp"

namespace stowage::engine {
namespace json = boost::json;
namespace {

constexpr std::size_t kMaxNameLength = 63;  // the pods' job-name label value
constexpr std::size_t kHashLength = 10;     // hex digits: 40 bits, plenty for one storage's generations

// ------------------------------------------------------------------------------------------- names

std::string short_hash(const std::string& text) { return crypto::hex(crypto::sha256(text)).substr(0, kHashLength); }

// A storage name (a DNS-1123 subdomain) as a DNS-1123 label: '.' becomes '-', cut to `budget`
// characters, never ending in '-'. Sets `changed` when the result differs from the name.
std::string label_safe(std::string_view name, std::size_t budget, bool& changed) {
  std::string out;
  for (char c : name.substr(0, std::min(name.size(), budget))) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    out += ok ? c : '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  changed = out != name;
  return out;
}

std::string init_job_name(const kube::BackupStorage& s) {
  const std::string prefix = "init-";
  const std::string hash = short_hash(s.metadata.namespace_ + "/" + s.metadata.name + "/" + s.metadata.uid + "/" +
                                      std::to_string(s.metadata.generation));
  bool changed = false;
  const std::string base = label_safe(s.metadata.name, kMaxNameLength - prefix.size() - 1 - kHashLength, changed);
  return prefix + base + "-" + hash;
}

std::string cleanup_job_name(const kube::BackupStorage& s) {
  const std::string prefix = "cleanup-";
  bool changed = false;
  std::string base = label_safe(s.metadata.name, kMaxNameLength - prefix.size(), changed);
  if (!changed) return prefix + base;  // KubeStash's name
  // Cut or rewritten: a hash of the uid keeps two such storages apart.
  base = label_safe(s.metadata.name, kMaxNameLength - prefix.size() - 1 - kHashLength, changed);
  return prefix + base + "-" + short_hash(s.metadata.namespace_ + "/" + s.metadata.name + "/" + s.metadata.uid);
}

// ------------------------------------------------------------------------------ runtimeSettings

// The JSON type offshoot-api gives a field, checked before the value is copied into the pod.
enum class Shape { String, Bool, Int, Object, StringMap, ObjectList, Ignored };

struct Field {
  std::string_view name;
  Shape shape;
};

constexpr std::array kPodFields = {
    Field{"podLabels", Shape::StringMap},
    Field{"podAnnotations", Shape::StringMap},
    Field{"nodeSelector", Shape::StringMap},
    Field{"serviceAccountName", Shape::String},
    Field{"serviceAccountAnnotations", Shape::Ignored},
    Field{"automountServiceAccountToken", Shape::Bool},
    Field{"nodeName", Shape::String},
    Field{"securityContext", Shape::Object},
    Field{"imagePullSecrets", Shape::ObjectList},
    Field{"affinity", Shape::Object},
    Field{"schedulerName", Shape::String},
    Field{"tolerations", Shape::ObjectList},
    Field{"priorityClassName", Shape::String},
    Field{"priority", Shape::Int},
    Field{"readinessGates", Shape::ObjectList},
    Field{"runtimeClassName", Shape::String},
    Field{"enableServiceLinks", Shape::Bool},
    Field{"topologySpreadConstraints", Shape::ObjectList},
};

constexpr std::array kContainerFields = {
    Field{"resources", Shape::Object},       Field{"securityContext", Shape::Object},
    Field{"env", Shape::ObjectList},         Field{"envFrom", Shape::ObjectList},
    Field{"livenessProbe", Shape::Ignored},  Field{"readinessProbe", Shape::Ignored},
    Field{"lifecycle", Shape::Ignored},      Field{"nice", Shape::Ignored},
    Field{"ionice", Shape::Ignored},
};

const char* shape_name(Shape shape) {
  switch (shape) {
    case Shape::String: return "a string";
    case Shape::Bool: return "a boolean";
    case Shape::Int: return "an integer";
    case Shape::Object: return "an object";
    case Shape::StringMap: return "an object of strings";
    case Shape::ObjectList: return "a list of objects";
    case Shape::Ignored: break;
  }
  return "anything";
}

bool has_shape(const json::value& v, Shape shape) {
  switch (shape) {
    case Shape::String: return v.is_string();
    case Shape::Bool: return v.is_bool();
    case Shape::Int: return v.is_int64() || v.is_uint64();
    case Shape::Object: return v.is_object();
    case Shape::StringMap:
      return v.is_object() && std::all_of(v.get_object().begin(), v.get_object().end(),
                                          [](const json::key_value_pair& kv) { return kv.value().is_string(); });
    case Shape::ObjectList:
      return v.is_array() && std::all_of(v.get_array().begin(), v.get_array().end(),
                                         [](const json::value& e) { return e.is_object(); });
    case Shape::Ignored: return true;
  }
  return false;
}

// One section (pod or container) of runtimeSettings, its fields checked against `fields`. Null
// values count as absent. Fields to ignore and unknown fields are listed in `ignored`.
template <std::size_t N>
Result<json::object, VolumeJobError> read_section(const json::value& settings, std::string_view section,
                                                  const std::array<Field, N>& fields,
                                                  std::vector<std::string>& ignored) {
  const std::string path = "spec.runtimeSettings." + std::string(section);
  json::object out;
  const json::value* v = settings.is_object() ? settings.get_object().if_contains(section) : nullptr;
  if (!v || v->is_null()) return out;
  if (!v->is_object()) return Err(VolumeJobError{path, "expected an object"});
  for (const auto& kv : v->get_object()) {
    if (kv.value().is_null()) continue;
    const std::string field_path = path + "." + std::string(kv.key());
    auto field = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == kv.key(); });
    if (field == fields.end() || field->shape == Shape::Ignored) {
      ignored.push_back(field_path);
      continue;
    }
    if (!has_shape(kv.value(), field->shape))
      return Err(VolumeJobError{field_path, std::string("expected ") + shape_name(field->shape)});
    out[kv.key()] = kv.value();
  }
  return out;
}

struct RuntimeSettings {
  json::object pod, container;
};

// Environment variables the volume Jobs refuse. Whoever writes a BackupStorage also writes its
// volume, so a variable that makes the process load code from a file it names would run that
// writer's code in the Job's pod, under any service account of the namespace.
struct RefusedVariable {
  std::string_view name;
  bool prefix;          // every name that starts with `name`
  std::string_view why;
};

constexpr std::array kRefusedVariables = {
    RefusedVariable{"LD_", true,
                    "the dynamic loader would run code from a file it names, which may lie on the storage's own "
                    "volume"},
    RefusedVariable{"STOWAGE_", true, "STOWAGE_* variables are stowage's own settings, which the controller alone sets"},
    RefusedVariable{"GCONV_PATH", false, "glibc would load character-set modules (code) from the directory it names"},
    RefusedVariable{"OPENSSL_CONF", false, "OpenSSL would read a configuration that can load modules (code)"},
    RefusedVariable{"OPENSSL_MODULES", false, "OpenSSL would load providers (code) from the directory it names"},
    RefusedVariable{"OPENSSL_ENGINES", false, "OpenSSL would load engines (code) from the directory it names"},
};

const RefusedVariable* refused_variable(std::string_view name) {
  for (const auto& refused : kRefusedVariables)
    if (refused.prefix ? name.starts_with(refused.name) : name == refused.name) return &refused;
  return nullptr;
}

// container.env names no refused variable, and container.envFrom is not used at all: a ConfigMap or
// Secret could set any name, unseen when the Job is made, and change before its pod starts.
std::optional<VolumeJobError> check_environment(const json::object& container) {
  const std::string path = "spec.runtimeSettings.container.";
  if (container.contains("envFrom"))
    return VolumeJobError{path + "envFrom",
                          "not allowed in volume Jobs: a ConfigMap or Secret could set LD_* or STOWAGE_* variables, "
                          "which cannot be checked when the Job is made; list the variables under env instead"};
  const auto* env = container.if_contains("env");
  if (!env) return std::nullopt;
  const auto& entries = env->get_array();  // read_section() checked: a list of objects
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string field = path + "env[" + std::to_string(i) + "].name";
    const auto* name = entries[i].get_object().if_contains("name");
    if (!name || !name->is_string()) return VolumeJobError{field, "expected a string"};
    const std::string_view text = name->get_string();
    if (const auto* refused = refused_variable(text)) {
      constexpr std::size_t kShown = 100;  // the name goes into the status: a huge one is cut
      std::string shown(text.substr(0, kShown));
      if (text.size() > kShown) shown += "...";
      return VolumeJobError{field, shown + " is not allowed in volume Jobs (" + std::string(refused->why) +
                                       "): remove it"};
    }
  }
  return std::nullopt;
}

Result<RuntimeSettings, VolumeJobError> read_runtime_settings(const json::value& settings,
                                                              std::vector<std::string>& ignored) {
  if (!settings.is_null() && !settings.is_object())
    return Err(VolumeJobError{"spec.runtimeSettings", "expected an object"});
  auto pod = read_section(settings, "pod", kPodFields, ignored);
  if (!pod) return Err(pod.error());
  auto container = read_section(settings, "container", kContainerFields, ignored);
  if (!container) return Err(container.error());
  if (auto refused = check_environment(container.value())) return Err(*refused);
  if (settings.is_object())
    for (const auto& kv : settings.get_object())
      if (kv.key() != "pod" && kv.key() != "container" && !kv.value().is_null())
        ignored.push_back("spec.runtimeSettings." + std::string(kv.key()));
  return RuntimeSettings{std::move(pod.value()), std::move(container.value())};
}

// ------------------------------------------------------------------------------------- the volume

bool has_dot_dot(std::string_view path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (path.substr(start, slash - start) == "..") return true;
    start = slash + 1;
  }
  return false;
}

Result<const kube::LocalSpec*, VolumeJobError> checked_local(const kube::BackupStorage& s) {
  const auto& local = s.spec.storage.local;
  const std::string path = "spec.storage.local";
  if (!local) return Err(VolumeJobError{path, "missing: a local-volume storage needs a VolumeSource and a mountPath"});
  if (local->volume_source.empty())
    return Err(VolumeJobError{path, "no volume source given: add one, e.g. hostPath, persistentVolumeClaim or nfs"});
  if (local->volume_source.size() > 1) {
    std::string names;
    for (const auto& kv : local->volume_source) names += (names.empty() ? "" : ", ") + std::string(kv.key());
    return Err(VolumeJobError{path, "more than one volume source given (" + names + "): give exactly one"});
  }
  if (local->mount_path.empty() || local->mount_path.front() != '/')
    return Err(VolumeJobError{path + ".mountPath", "must be an absolute path, e.g. /safe/data"});
  if (!local->sub_path.empty() && (local->sub_path.front() == '/' || has_dot_dot(local->sub_path)))
    return Err(VolumeJobError{path + ".subPath", "must be a relative path without \"..\""});
  return &*local;
}

// -------------------------------------------------------------------------------------- the Job

json::object labels_for(const kube::BackupStorage& s, VolumeJobKind kind) {
  json::object labels;
  for (const auto& [k, v] : s.metadata.labels) labels[k] = v;  // KubeStash's offshoot labels start from these
  labels[kLabelManagedBy] = kManagedByKubeStash;
  labels[kLabelInvokerKind] = kube::kBackupStorageKind;
  labels[kLabelInvokerName] = s.metadata.name;
  labels[kLabelInvokerNamespace] = s.metadata.namespace_;
  labels[kLabelComponent] = kind == VolumeJobKind::Initialize ? kComponentInitializer : kComponentCleaner;
  labels[kLabelStorageUid] = s.metadata.uid;
  labels[kLabelStorageGeneration] = std::to_string(s.metadata.generation);
  return labels;
}

json::array owner_references(const kube::BackupStorage& s) {
  return json::array{json::object{{"apiVersion", kube::kBackupStorageApiVersion},
                                  {"kind", kube::kBackupStorageKind},
                                  {"name", s.metadata.name},
                                  {"uid", s.metadata.uid},
                                  {"controller", true},
                                  {"blockOwnerDeletion", true}}};
}

json::array container_args(const kube::LocalSpec& local, VolumeJobKind kind, const VolumeJobSettings& settings) {
  if (kind == VolumeJobKind::Cleanup) {
    json::array args{"wipe-volume", "--path", local.mount_path};
    for (const auto& keep : settings.wipe_keep) {
      args.emplace_back("--keep");
      args.emplace_back(keep);
    }
    return args;
  }
  json::array args{"init-volume", "--path", local.mount_path};
  if (!settings.operator_version.empty()) {
    args.emplace_back("--operator-version");
    args.emplace_back(settings.operator_version);
  }
  return args;
}

// `defaults` with the keys of runtimeSettings' securityContext in `section` laid over them one by one:
// a given key wins, a null removes ours.
json::object merged_security_context(json::object defaults, const json::object& section) {
  if (const auto* given = section.if_contains("securityContext"))
    for (const auto& kv : given->get_object()) {
      if (kv.value().is_null())
        defaults.erase(kv.key());
      else
        defaults[kv.key()] = kv.value();
    }
  return defaults;
}

bool given_security_key(const json::object& section, std::string_view key) {
  const auto* given = section.if_contains("securityContext");
  return given && given->get_object().contains(key);
}

bool is_zero(const json::value* v) {
  return v && ((v->is_int64() && v->get_int64() == 0) || (v->is_uint64() && v->get_uint64() == 0));
}

// Pod Security "restricted" for the container: no privilege escalation, every capability dropped.
// The API server refuses allowPrivilegeEscalation false beside privileged: true or an added
// CAP_SYS_ADMIN, so a securityContext that asks for either does not get that default.
json::object container_security_context(const json::object& runtime_container) {
  json::object sc{{"allowPrivilegeEscalation", false}, {"capabilities", json::object{{"drop", json::array{"ALL"}}}}};
  sc = merged_security_context(std::move(sc), runtime_container);
  if (given_security_key(runtime_container, "allowPrivilegeEscalation")) return sc;
  bool privileged = false, sys_admin = false;
  if (const auto* p = sc.if_contains("privileged")) privileged = p->is_bool() && p->get_bool();
  const auto* capabilities = sc.if_contains("capabilities");
  const auto* add = capabilities && capabilities->is_object() ? capabilities->get_object().if_contains("add") : nullptr;
  if (add && add->is_array())
    for (const auto& cap : add->get_array()) sys_admin |= cap.is_string() && cap.get_string() == "CAP_SYS_ADMIN";
  if (privileged || sys_admin) sc.erase("allowPrivilegeEscalation");
  return sc;
}

// KubeStash runs the helper as user 65534, and Pod Security "restricted" asks for runAsNonRoot and the
// RuntimeDefault seccomp profile; runtimeSettings.pod.securityContext's keys win one by one (fsGroup
// alone keeps the default user). runAsNonRoot is not added when the container is told to run as root
// (runAsUser 0 in the container's securityContext, or in the pod's without a container one: KubeStash's
// advice for hostPath volumes): the kubelet would never start it.
json::object pod_security_context(const json::object& runtime_pod, const json::object& container_sc) {
  json::object sc{{"runAsUser", kDefaultRunAsUser},
                  {"runAsNonRoot", true},
                  {"seccompProfile", json::object{{"type", "RuntimeDefault"}}}};
  sc = merged_security_context(std::move(sc), runtime_pod);
  if (given_security_key(runtime_pod, "runAsNonRoot")) return sc;
  const json::value* user = container_sc.if_contains("runAsUser");
  if (!user || user->is_null()) user = sc.if_contains("runAsUser");
  if (is_zero(user)) sc.erase("runAsNonRoot");
  return sc;
}

json::object container(const kube::LocalSpec& local, VolumeJobKind kind, const VolumeJobSettings& settings,
                       const json::object& runtime) {
  json::object mount{{"name", kVolumeName}, {"mountPath", local.mount_path}};
  if (!local.sub_path.empty()) mount["subPath"] = local.sub_path;
  json::object c{{"name", kVolumeJobContainer},
                 {"image", settings.image},
                 {"imagePullPolicy", settings.image_pull_policy}};
  if (!settings.command.empty()) c["command"] = json::value_from(settings.command);
  c["args"] = container_args(local, kind, settings);
  c["volumeMounts"] = json::array{std::move(mount)};
  c["terminationMessagePath"] = kTerminationLogPath;
  c["terminationMessagePolicy"] = "FallbackToLogsOnError";
  c["securityContext"] = container_security_context(runtime);
  for (const auto& kv : runtime)
    if (kv.key() != "securityContext") c[kv.key()] = kv.value();
  return c;
}

json::object pod_template(const kube::BackupStorage& s, const kube::LocalSpec& local, VolumeJobKind kind,
                          const VolumeJobSettings& settings, const RuntimeSettings& runtime) {
  json::object labels;
  if (const auto* given = runtime.pod.if_contains("podLabels")) labels = given->get_object();
  for (const auto& kv : labels_for(s, kind)) labels[kv.key()] = kv.value();  // ours win: watches depend on them
  json::object metadata{{"labels", std::move(labels)}};
  if (const auto* given = runtime.pod.if_contains("podAnnotations")) metadata["annotations"] = *given;

  json::object volume{{"name", kVolumeName}};
  for (const auto& kv : local.volume_source) volume[kv.key()] = kv.value();

  json::object spec{{"restartPolicy", "Never"}};
  // The commands never talk to the API server: no token unless the user asks for one.
  spec["automountServiceAccountToken"] = false;
  if (!settings.service_account.empty()) spec["serviceAccountName"] = settings.service_account;
  for (const auto& kv : runtime.pod) {
    if (kv.key() == "podLabels" || kv.key() == "podAnnotations" || kv.key() == "securityContext") continue;
    spec[kv.key()] = kv.value();
  }
  json::object the_container = container(local, kind, settings, runtime.container);
  spec["securityContext"] = pod_security_context(runtime.pod, the_container.at("securityContext").get_object());
  spec["containers"] = json::array{std::move(the_container)};
  spec["volumes"] = json::array{std::move(volume)};
  return json::object{{"metadata", std::move(metadata)}, {"spec", std::move(spec)}};
}

// Exit codes 2 (kVolumeExitPermanent) and 3 (kVolumeExitRefused: nothing deleted, by rule) mean
// retrying cannot help: fail the Job at once. A pod lost to a disruption (preemption, node drain) does
// not count against backoffLimit.
json::object pod_failure_policy() {
  json::array never_retried{kVolumeExitPermanent, kVolumeExitRefused};
  json::object fail_job{{"action", "FailJob"},
                        {"onExitCodes", json::object{{"containerName", kVolumeJobContainer},
                                                     {"operator", "In"},
                                                     {"values", std::move(never_retried)}}}};
  json::object ignore_disruption{
      {"action", "Ignore"},
      {"onPodConditions", json::array{json::object{{"type", "DisruptionTarget"}, {"status", "True"}}}}};
  return json::object{{"rules", json::array{std::move(fail_job), std::move(ignore_disruption)}}};
}

// ---------------------------------------------------------------------------------- the outcome

using kube::int_at;
using kube::string_at;

const json::array* array_at(const json::value& v, std::string_view a, std::string_view b) {
  const auto* at = kube::value_at(v, {a, b});
  return at ? at->if_array() : nullptr;
}

std::string trimmed(std::string s) {
  auto space = [](unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && space(s.back())) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && space(s[start])) ++start;
  return s.substr(start);
}

// The container statuses of a pod, the stowage container first.
std::vector<const json::value*> container_statuses(const json::value& pod) {
  std::vector<const json::value*> out;
  if (const auto* list = array_at(pod, "status", "containerStatuses"))
    for (const auto& cs : *list) out.push_back(&cs);
  std::stable_partition(out.begin(), out.end(),
                        [](const json::value* cs) { return string_at(*cs, {"name"}) == kVolumeJobContainer; });
  return out;
}

// Why a finished pod failed: its termination message, else how its container ended, else the pod's reason.
std::string pod_failure(const json::value& pod) {
  if (auto message = termination_message(pod); !message.empty()) return message;
  for (const auto* cs : container_statuses(pod)) {
    for (auto state : {"state", "lastState"}) {
      const json::value* terminated = nullptr;
      if (const auto* st = cs->is_object() ? cs->get_object().if_contains(state) : nullptr; st && st->is_object())
        terminated = st->get_object().if_contains("terminated");
      if (!terminated) continue;
      std::string reason = string_at(*terminated, {"reason"});
      return "container " + string_at(*cs, {"name"}) + " exited with code " +
             std::to_string(int_at(*terminated, {"exitCode"}, -1)) + (reason.empty() ? "" : " (" + reason + ")");
    }
  }
  std::string reason = string_at(pod, {"status", "reason"}), message = string_at(pod, {"status", "message"});
  if (reason.empty() || message.empty()) return reason + message;
  return reason + ": " + message;
}

// Why a pod that has not finished is not making progress ("" when it is, or cannot tell).
std::string pod_stuck(const json::value& pod) {
  for (const auto* cs : container_statuses(pod)) {
    std::string reason = string_at(*cs, {"state", "waiting", "reason"});
    if (reason.empty() || reason == "ContainerCreating" || reason == "PodInitializing") continue;
    std::string message = string_at(*cs, {"state", "waiting", "message"});
    return message.empty() ? reason : reason + ": " + message;
  }
  if (const auto* conditions = array_at(pod, "status", "conditions"))
    for (const auto& c : *conditions)
      if (string_at(c, {"type"}) == "PodScheduled" && string_at(c, {"status"}) == "False") {
        std::string reason = string_at(c, {"reason"}), message = string_at(c, {"message"});
        return message.empty() ? reason : reason + ": " + message;
      }
  return "";
}

// When a pod finished (its container's finishedAt; RFC 3339 sorts as text), for "newest first".
std::string finished_at(const json::value& pod) {
  std::string latest;
  for (const auto* cs : container_statuses(pod))
    latest = std::max(latest, string_at(*cs, {"state", "terminated", "finishedAt"}));
  return latest;
}

std::vector<const json::value*> pod_list(const json::value& pods) {
  const json::array* items = nullptr;
  if (pods.is_array()) items = &pods.get_array();
  if (pods.is_object())
    if (const auto* v = pods.get_object().if_contains("items"); v && v->is_array()) items = &v->get_array();
  std::vector<const json::value*> out;
  if (items)
    for (const auto& p : *items) out.push_back(&p);
  return out;
}

// The newest pod in phase `phase`, or nullptr.
const json::value* newest_pod(const std::vector<const json::value*>& pods, std::string_view phase) {
  const json::value* best = nullptr;
  for (const auto* p : pods)
    if (string_at(*p, {"status", "phase"}) == phase && (!best || finished_at(*p) > finished_at(*best))) best = p;
  return best;
}

std::string stuck_reason(const std::vector<const json::value*>& pods) {
  for (const auto* p : pods) {
    std::string phase = string_at(*p, {"status", "phase"});
    if (phase == "Succeeded" || phase == "Failed") continue;
    if (auto why = pod_stuck(*p); !why.empty()) return why;
  }
  return "";
}

struct JobCondition {
  std::string type, reason, message, last_transition_time;
};

// The first True condition among `types`, in the order of `types`.
std::optional<JobCondition> true_condition(const json::value& job, std::initializer_list<std::string_view> types) {
  const auto* conditions = array_at(job, "status", "conditions");
  if (!conditions) return std::nullopt;
  for (auto type : types)
    for (const auto& c : *conditions)
      if (string_at(c, {"type"}) == type && string_at(c, {"status"}) == "True")
        return JobCondition{std::string(type), string_at(c, {"reason"}), string_at(c, {"message"}),
                            string_at(c, {"lastTransitionTime"})};
  return std::nullopt;
}

JobOutcome failed_outcome(std::string reason, const std::string& condition_message,
                          const std::vector<const json::value*>& pods, std::int64_t failed) {
  JobOutcome out{JobOutcome::Failed, std::move(reason), "", failed, ""};
  if (const auto* pod = newest_pod(pods, "Failed")) out.message = pod_failure(*pod);
  if (out.message.empty()) {
    out.message = condition_message;
    if (auto why = stuck_reason(pods); !why.empty()) out.message += (out.message.empty() ? "" : "; ") + why;
  }
  if (out.message.empty()) out.message = "the Job failed (" + out.reason + ")";
  return out;
}

}  // namespace

std::string volume_job_name(const kube::BackupStorage& storage, VolumeJobKind kind) {
  return kind == VolumeJobKind::Initialize ? init_job_name(storage) : cleanup_job_name(storage);
}

Result<VolumeJob, VolumeJobError> build_volume_job(const kube::BackupStorage& storage, VolumeJobKind kind,
                                                   const VolumeJobSettings& settings) {
  if (settings.image.empty()) return Err(VolumeJobError{"", "no image for the volume Job: configure stowage's image"});
  if (storage.metadata.uid.empty())  // an object read from a file, not from the API server
    return Err(VolumeJobError{"metadata.uid", "missing: a Job is owned by, and labelled with, the storage's uid"});
  auto local = checked_local(storage);
  if (!local) return Err(local.error());
  VolumeJob out;
  auto runtime = read_runtime_settings(storage.spec.runtime_settings, out.ignored_settings);
  if (!runtime) return Err(runtime.error());

  out.name = volume_job_name(storage, kind);
  out.namespace_ = storage.metadata.namespace_;
  json::object metadata{{"name", out.name}, {"namespace", out.namespace_}, {"labels", labels_for(storage, kind)}};
  if (kind == VolumeJobKind::Initialize) metadata["ownerReferences"] = owner_references(storage);

  json::object spec{{"backoffLimit", settings.backoff_limit},
                    {"activeDeadlineSeconds", settings.active_deadline_seconds},
                    {"ttlSecondsAfterFinished", settings.ttl_seconds_after_finished},
                    {"podFailurePolicy", pod_failure_policy()},
                    {"template", pod_template(storage, *local.value(), kind, settings, runtime.value())}};
  out.job = json::object{
      {"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", std::move(metadata)}, {"spec", std::move(spec)}};
  return out;
}

std::string termination_message(const json::value& pod) {
  for (const auto* cs : container_statuses(pod))
    for (auto state : {"state", "lastState"})
      if (auto message = trimmed(string_at(*cs, {state, "terminated", "message"})); !message.empty()) return message;
  return "";
}

JobOutcome job_outcome(const json::value& job, const json::value& pods) {
  const auto pod_items = pod_list(pods);
  const std::int64_t failed = int_at(job, {"status", "failed"}, 0);
  const std::int64_t succeeded = int_at(job, {"status", "succeeded"}, 0);
  const std::int64_t backoff_limit = int_at(job, {"spec", "backoffLimit"}, 6);  // the API server's default

  // FailureTarget/SuccessCriteriaMet come first on Kubernetes >= 1.31; Failed/Complete once pods are gone.
  if (auto c = true_condition(job, {"Failed", "FailureTarget"})) {
    JobOutcome out = failed_outcome(c->reason, c->message, pod_items, failed);
    out.finished_at = c->last_transition_time;
    return out;
  }
  if (true_condition(job, {"Complete", "SuccessCriteriaMet"}) || succeeded > 0) {
    JobOutcome out{JobOutcome::Succeeded, "Completed", "", failed, ""};
    if (const auto* pod = newest_pod(pod_items, "Succeeded")) out.message = termination_message(*pod);
    return out;
  }
  if (failed > backoff_limit)  // the Job controller has not written its condition yet
    return failed_outcome("BackoffLimitExceeded", "Job has reached the specified backoff limit", pod_items, failed);

  JobOutcome out{JobOutcome::Running, "", stuck_reason(pod_items), failed, ""};
  if (out.message.empty() && failed > 0)
    if (const auto* pod = newest_pod(pod_items, "Failed"))
      out.message = "attempt " + std::to_string(failed) + " of " + std::to_string(backoff_limit + 1) +
                    " failed: " + pod_failure(*pod);
  return out;
}

}  // namespace stowage::engine
