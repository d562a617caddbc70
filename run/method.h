// Training methods by the recipe's `method:` key. A method checks that the recipe's sections fit
// it and builds the step the one training loop runs; data, model, loop, checkpoints and exports
// are the same for all. Adding a method: one file pair (run/method_<name>.{h,cpp}) and one line
// in training_methods() (run/method.cpp).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "run/builders.h"
#include "train/step.h"

namespace retort::run {

// What a method's step draws on, built before it.
struct MethodContext {
  const Recipe& recipe;
  const RunData& data;
  TrainedModel& trained;
  const Info& info;
};

struct MethodStep {
  std::unique_ptr<TrainingStep> step;
  std::shared_ptr<void> resources;  // what the step points into and must outlive it (a teacher)
};

struct TrainingMethod {
  std::string name;     // the value of `method:`
  std::string summary;  // one line for help and errors
  // Refuses a recipe whose sections say otherwise, naming both keys.
  std::function<void(const Recipe&)> check;
  std::function<MethodStep(const MethodContext&)> build_step;
};

// Every method, in the order help lists them.
const std::vector<TrainingMethod>& training_methods();

// The recipe's method: `method:` when given (bad_input naming the key when unknown), else what
// today's recipes mean without it (distill.teacher_cache: kd_offline; distill.teacher: kd; sft).
// Runs the method's check.
const TrainingMethod& resolve_method(const Recipe& recipe);

}  // namespace retort::run
