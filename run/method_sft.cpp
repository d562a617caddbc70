#include "run/method_sft.h"

#include "finetune/sft_step.h"
#include "io/error.h"

namespace retort::run {

TrainingMethod sft_method() {
  TrainingMethod method;
  method.name = "sft";
  method.summary = "supervised fine-tuning: cross-entropy on the trained tokens";
  method.check = [](const Recipe& recipe) {
    const char* key = !recipe.distill.teacher_cache.empty() ? "distill.teacher_cache"
                      : !recipe.distill.teacher.empty()     ? "distill.teacher"
                                                            : nullptr;
    if (key != nullptr) {
      throw bad_input(std::string("method is sft, but ") + key + " is set (it belongs to method kd or kd_offline)")
          .key(std::string("method, ") + key);
    }
  };
  method.build_step = [](const MethodContext& context) {
    return MethodStep{std::make_unique<SftStep>(context.trained.model()), nullptr};
  };
  return method;
}

}  // namespace retort::run
