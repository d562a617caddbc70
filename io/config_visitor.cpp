// YAML binding for ConfigVisitor descriptions (yaml-cpp).
#include "io/config_visitor.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "io/error.h"
#include "io/text.h"

namespace retort {
namespace {

std::string joined(const std::string& prefix, const std::string& key) { return prefix.empty() ? key : prefix + "." + key; }

class KeyCollector : public ConfigVisitor {
 public:
  explicit KeyCollector(std::string prefix = "") : prefix_(std::move(prefix)) {}
  std::vector<std::string> keys;
  void field(const std::string& key, bool&, const std::string&) override { add(key); }
  void field(const std::string& key, int64_t&, const std::string&) override { add(key); }
  void field(const std::string& key, double&, const std::string&) override { add(key); }
  void field(const std::string& key, std::string&, const std::string&) override { add(key); }
  void field(const std::string& key, std::vector<std::string>&, const std::string&) override { add(key); }
  void choice(const std::string& key, std::string&, const std::vector<std::string>&, const std::string&) override {
    add(key);
  }
  void section(const std::string& key, const std::function<void(ConfigVisitor&)>& body) override {
    KeyCollector inner(joined(prefix_, key));
    body(inner);
    keys.insert(keys.end(), inner.keys.begin(), inner.keys.end());
  }

 private:
  void add(const std::string& key) { keys.push_back(joined(prefix_, key)); }
  std::string prefix_;
};

class YamlReader : public ConfigVisitor {
 public:
  YamlReader(const YAML::Node& node, std::string source, std::string prefix, const std::vector<std::string>& all_keys)
      : node_(node), source_(std::move(source)), prefix_(std::move(prefix)), all_keys_(all_keys) {}

  void field(const std::string& key, bool& value, const std::string&) override { read(key, value, "true or false"); }
  void field(const std::string& key, int64_t& value, const std::string&) override { read(key, value, "an integer"); }
  void field(const std::string& key, double& value, const std::string&) override { read(key, value, "a number"); }
  void field(const std::string& key, std::string& value, const std::string&) override { read(key, value, "a string"); }
  void field(const std::string& key, std::vector<std::string>& value, const std::string&) override {
    const std::optional<YAML::Node> child = take(key);
    if (!child) return;
    if (!child->IsSequence()) throw error(*child, key, "expected a list of strings");
    value.clear();
    for (const auto& item : *child) {
      if (!item.IsScalar()) throw error(item, key, "expected a list of strings");
      value.push_back(item.as<std::string>());
    }
  }
  void choice(const std::string& key, std::string& value, const std::vector<std::string>& choices,
              const std::string& help) override {
    const YAML::Node& node = node_;
    const YAML::Node child = node[key];
    field(key, value, help);
    if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
      std::string message = "'" + value + "' is not one of: " + join(choices, ", ");
      const std::string suggestion = nearest_match(value, choices);
      if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
      throw error(child.IsDefined() ? child : node_, key, message);
    }
  }
  void section(const std::string& key, const std::function<void(ConfigVisitor&)>& body) override {
    const std::optional<YAML::Node> child = take(key);
    if (child && !child->IsMap()) throw error(*child, key, "expected a mapping (a section of keys)");
    YamlReader inner(child ? *child : YAML::Node(YAML::NodeType::Map), source_, joined(prefix_, key), all_keys_);
    body(inner);
    inner.reject_unknown();
  }

  // The valid dotted names one level below prefix_: fields and section names.
  std::vector<std::string> keys_at_this_level() const {
    std::set<std::string> names;
    const std::string start = prefix_.empty() ? "" : prefix_ + ".";
    for (const std::string& key : all_keys_) {
      if (key.rfind(start, 0) != 0) continue;
      const std::string rest = key.substr(start.size());
      names.insert(start + rest.substr(0, rest.find('.')));
    }
    return {names.begin(), names.end()};
  }

  void reject_unknown() const {
    for (const auto& item : node_) {
      const std::string key = item.first.as<std::string>();
      if (seen_.count(key)) continue;
      const std::string dotted = joined(prefix_, key);
      std::string message = "unknown key";
      const std::string suggestion = nearest_match(dotted, keys_at_this_level());
      if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
      throw error(item.first, key, message);
    }
  }

 private:
  // The value under `key`, or nullopt when absent or null (the default stays).
  std::optional<YAML::Node> take(const std::string& key) {
    seen_.insert(key);
    const YAML::Node& node = node_;  // const access: never inserts the key
    const YAML::Node child = node[key];
    if (!child.IsDefined() || child.IsNull()) return std::nullopt;
    return child;
  }
  template <class T>
  void read(const std::string& key, T& value, const char* expected) {
    const std::optional<YAML::Node> child = take(key);
    if (!child) return;
    if (!child->IsScalar()) throw error(*child, key, std::string("expected ") + expected);
    try {
      value = child->as<T>();
    } catch (const YAML::Exception&) {
      throw error(*child, key, std::string("expected ") + expected + ", got '" + child->Scalar() + "'");
    }
  }
  Error error(const YAML::Node& at, const std::string& key, const std::string& message) const {
    const int64_t line = at.Mark().is_null() ? -1 : at.Mark().line + 1;
    return bad_input(message).file(source_).line(line).key(joined(prefix_, key));
  }

  YAML::Node node_;
  std::string source_;
  std::string prefix_;
  const std::vector<std::string>& all_keys_;
  std::set<std::string> seen_;
};

class YamlWriter : public ConfigVisitor {
 public:
  explicit YamlWriter(YAML::Emitter& out) : out_(out) {}
  void field(const std::string& key, bool& value, const std::string&) override { out_ << YAML::Key << key << YAML::Value << value; }
  void field(const std::string& key, int64_t& value, const std::string&) override { out_ << YAML::Key << key << YAML::Value << value; }
  void field(const std::string& key, double& value, const std::string&) override { out_ << YAML::Key << key << YAML::Value << value; }
  void field(const std::string& key, std::string& value, const std::string&) override {
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
  }
  void field(const std::string& key, std::vector<std::string>& value, const std::string&) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << value;
  }
  void choice(const std::string& key, std::string& value, const std::vector<std::string>&, const std::string&) override {
    out_ << YAML::Key << key << YAML::Value << value;
  }
  void section(const std::string& key, const std::function<void(ConfigVisitor&)>& body) override {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    body(*this);
    out_ << YAML::EndMap;
  }

 private:
  YAML::Emitter& out_;
};

void apply_override(YAML::Node root, const std::string& text, const std::vector<std::string>& keys) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw bad_input("override '" + text + "' is not of the form key.path=value");
  const std::string dotted = text.substr(0, eq);
  if (std::find(keys.begin(), keys.end(), dotted) == keys.end()) {
    std::string message = "unknown key in override '" + text + "'";
    const std::string suggestion = nearest_match(dotted, keys);
    if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
    throw bad_input(message).key(dotted);
  }
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw bad_input("override value is not valid YAML: " + e.msg).key(dotted);
  }
  std::vector<std::string> parts;
  std::stringstream stream(dotted);
  for (std::string part; std::getline(stream, part, '.');) parts.push_back(part);
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsDefined() || !next.IsMap()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

}  // namespace

std::vector<std::string> config_keys(const std::function<void(ConfigVisitor&)>& describe) {
  KeyCollector collector;
  describe(collector);
  return collector.keys;
}

void read_yaml_config(const std::string& yaml_text, const std::string& source,
                      const std::vector<std::string>& overrides,
                      const std::function<void(ConfigVisitor&)>& describe) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw bad_input("invalid YAML: " + e.msg).file(source).line(e.mark.is_null() ? -1 : e.mark.line + 1);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw bad_input("a recipe is a mapping of sections").file(source).line(1);
  const std::vector<std::string> keys = config_keys(describe);
  for (const std::string& text : overrides) apply_override(root, text, keys);
  YamlReader reader(root, source, "", keys);
  describe(reader);
  reader.reject_unknown();
}

std::string write_yaml_config(const std::function<void(ConfigVisitor&)>& describe) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlWriter writer(out);
  describe(writer);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace retort
