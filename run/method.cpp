#include "run/method.h"

#include "io/error.h"
#include "run/method_kd.h"
#include "run/method_sft.h"

namespace retort::run {

const std::vector<TrainingMethod>& training_methods() {
  static const std::vector<TrainingMethod> methods = {
      sft_method(),
      kd_method(),
      kd_offline_method(),
  };
  return methods;
}

namespace {

std::string implied_method(const Recipe& recipe) {
  if (!recipe.distill.teacher_cache.empty()) return "kd_offline";
  if (!recipe.distill.teacher.empty()) return "kd";
  return "sft";
}

}  // namespace

const TrainingMethod& resolve_method(const Recipe& recipe) {
  const std::string name = recipe.method.empty() ? implied_method(recipe) : recipe.method;
  for (const TrainingMethod& method : training_methods()) {
    if (method.name != name) continue;
    method.check(recipe);
    return method;
  }
  std::string known;
  for (const TrainingMethod& method : training_methods()) known += (known.empty() ? "" : ", ") + method.name;
  throw bad_input("unknown method '" + name + "' (known: " + known + ")").key("method");
}

}  // namespace retort::run
