// The loader: layers defaults < YAML file < STOWAGE_* environment < flags, one setting at a time,
// remembering where each value came from. Guarantees: load() returns a Config in which every
// value passed its setting's check and retry-cap >= retry-base, or throws one ConfigError whose
// single line names the setting, the value and its source (file:line:column, environment
// variable or flag). Unknown STOWAGE_* variables are ignored (other tools may set some); unknown
// file keys are errors. An empty --config or STOWAGE_CONFIG means "no file".
#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <optional>

#include "config/file_source.hpp"
#include "config/settings.hpp"

namespace stowage::config {
namespace {

using detail::Setting;
using detail::table;
using Environment = std::map<std::string, std::string>;
constexpr std::string_view kConfigEnv = "STOWAGE_CONFIG";

// Where a setting's value came from.
struct Origin {
  enum class Kind { defaults, file, env, flag } kind = Kind::defaults;
  std::string where;  // "config.yaml:4:12", "environment STOWAGE_X", "flag --x"

  // The start of an error message about this value.
  std::string prefix(const Setting& setting) const {
    return kind == Kind::file ? where + ": " + std::string(setting.key) : where;
  }
  std::string describe() const { return kind == Kind::defaults ? "the default" : where; }
};

class Layers {
 public:
  Layers() : origins_(table().size()) {}

  void set(const Setting& setting, const std::string& text, Origin origin) {
    try {
      detail::assign(setting, config_, text);
    } catch (const ConfigError& e) {
      throw ConfigError(origin.prefix(setting) + ": " + e.what());
    }
    origins_[static_cast<size_t>(&setting - table().data())] = std::move(origin);
  }

  // Checks that need two settings; call after the last layer.
  void check_retry_order() const {
    if (config_.retry_cap >= config_.retry_base) return;
    throw ConfigError("reconcile.retry-cap (" + format_duration(config_.retry_cap) + ", from " +
                      origin_of(&Config::retry_cap).describe() + ") must be at least reconcile.retry-base (" +
                      format_duration(config_.retry_base) + ", from " + origin_of(&Config::retry_base).describe() +
                      "): raise reconcile.retry-cap or lower reconcile.retry-base");
  }

  Config& config() { return config_; }

 private:
  const Origin& origin_of(Millis Config::*field) const {
    for (size_t row = 0; row < table().size(); ++row) {
      const auto* duration = std::get_if<detail::Duration>(&table()[row].value);
      if (duration != nullptr && duration->field == field) return origins_[row];
    }
    throw std::logic_error("config: no setting for a Config field");
  }

  Config config_;
  std::vector<Origin> origins_;
};

void apply_file(Layers& layers, const std::filesystem::path& file) {
  for (const auto& value : detail::read_settings_file(file)) {
    layers.set(*value.setting, value.text, {Origin::Kind::file, value.where});
  }
}

void apply_env(Layers& layers, const Environment& env) {
  for (const auto& setting : table()) {
    const std::string name = detail::env_name(setting.key);
    if (auto it = env.find(name); it != env.end()) {
      layers.set(setting, it->second, {Origin::Kind::env, "environment " + name});
    }
  }
}

bool is_list(const Setting& setting) { return std::holds_alternative<detail::NamespaceList>(setting.value); }

void apply_flags(Layers& layers, const std::vector<std::optional<std::string>>& flags) {
  for (size_t row = 0; row < table().size(); ++row) {
    const Setting& setting = table()[row];
    if (!flags[row]) continue;
    std::string text = *flags[row];
    if (is_list(setting)) std::replace(text.begin(), text.end(), '\n', ',');  // a repeated flag's values
    layers.set(setting, text, {Origin::Kind::flag, "flag " + std::string(setting.flag)});
  }
}

std::filesystem::path choose_file(const std::optional<std::string>& flag, const Environment& env) {
  if (flag) return *flag;
  auto it = env.find(std::string(kConfigEnv));
  return it == env.end() ? std::filesystem::path() : std::filesystem::path(it->second);
}

bool may_be_empty(const Setting& setting) {
  Config scratch;
  try {
    detail::assign(setting, scratch, "");
    return true;
  } catch (const ConfigError&) {
    return false;
  }
}

void add_flag(CLI::App& app, const Setting& setting, std::optional<std::string>& slot) {
  bool is_flag = std::holds_alternative<detail::Flag>(setting.value);
  const std::string default_value = detail::value_of(setting, Config{});
  const std::string help = std::string(setting.description) +
                           (is_flag ? " [default: " + default_value + "]" : std::string()) + " [env: " +
                           detail::env_name(setting.key) + "]";
  CLI::Option* option = app.add_option(std::string(setting.flag), slot, help);
  option->type_name(detail::type_name(setting));
  option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // A list's flag given several times adds up: `--namespace a --namespace b` is `--namespace a,b`
  // (CLI11 joins the values with '\n', made commas in apply_flags; its own splitting at a delimiter
  // would drop empty names, which are refused instead).
  if (is_list(setting)) option->multi_option_policy(CLI::MultiOptionPolicy::Join);
  // A flag given bare (`--leader-elect`) takes its default string as its value in CLI11: keep none.
  if (!default_value.empty() && !is_flag) option->default_str(default_value);
  if (may_be_empty(setting)) option->expected(0, 1);  // "--log-file=" sets it to empty
}

Environment process_environment() {
  Environment env;
  auto copy = [&env](const std::string& name) {
    if (const char* value = std::getenv(name.c_str())) env[name] = value;
  };
  copy(std::string(kConfigEnv));
  for (const auto& setting : table()) copy(detail::env_name(setting.key));
  return env;
}

}  // namespace

struct Loader::Impl {
  std::optional<std::string> config_file;
  std::vector<std::optional<std::string>> flags;  // one per table row, in table order
};

Loader::Loader(CLI::App& app) : impl_(new Impl) {
  impl_->flags.resize(table().size());  // sized once: the options keep pointers into it
  app.add_option("--config", impl_->config_file, "YAML file of settings [env: " + std::string(kConfigEnv) + "]")
      ->type_name("FILE");
  for (size_t row = 0; row < table().size(); ++row) {
    // A subcommand's own option of the same name wins (`get -n/--namespace` filters what is shown).
    if (app.get_option_no_throw(std::string(table()[row].flag)) != nullptr) continue;
    add_flag(app, table()[row], impl_->flags[row]);
  }
}

Loader::~Loader() { delete impl_; }

Config Loader::load() const { return load(process_environment()); }

Config Loader::load(const std::map<std::string, std::string>& env) const {
  Layers layers;
  const std::filesystem::path file = choose_file(impl_->config_file, env);
  if (!file.empty()) apply_file(layers, file);
  apply_env(layers, env);
  apply_flags(layers, impl_->flags);
  layers.check_retry_order();
  layers.config().config_file = file;
  return layers.config();
}

std::string to_yaml(const Config& config) {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& setting : table()) {
    YAML::Node map = root;  // nested maps follow the dots of the key
    std::string_view key = setting.key;
    for (auto dot = key.find('.'); dot != std::string_view::npos; dot = key.find('.')) {
      YAML::Node child = map[std::string(key.substr(0, dot))];
      map.reset(child);
      key.remove_prefix(dot + 1);
    }
    map[std::string(key)] = detail::value_of(setting, config);
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace stowage::config
