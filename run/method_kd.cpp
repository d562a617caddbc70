#include "run/method_kd.h"

#include "distill/cache_run.h"
#include "distill/kd_step.h"
#include "distill/vocabulary.h"
#include "io/hub_cache.h"
#include "io/error.h"
#include "io/text.h"

namespace retort::run {
namespace {

KdStepOptions kd_options(const DistillSection& distill) {
  KdStepOptions kd;
  kd.kd.divergence = parse_divergence(distill.loss);
  kd.kd.temperature = distill.temperature;
  kd.kd.beta = distill.beta;
  kd.kd.tail = parse_tail_mode(distill.tail);
  kd.alpha = distill.alpha;
  return kd;
}

std::string kd_summary(const DistillSection& distill) {
  return " (" + distill.loss + ", T " + std::to_string(distill.temperature) + ", alpha " +
         std::to_string(distill.alpha) + ")";
}

MethodStep online_step(const MethodContext& context) {
  const Recipe& recipe = context.recipe;
  const std::string teacher_path = resolve_model_path(recipe.distill.teacher, "distill.teacher");
  auto teacher = std::make_shared<LoadedModel>(load_recipe_teacher(recipe));
  if (recipe.distill.teacher_quantize != "none") {
    context.info("teacher weights: " + recipe.distill.teacher_quantize + ", " +
                 std::to_string(weight_bytes(*teacher->model) >> 20) + " MiB");
  }
  KdStepOptions kd = kd_options(recipe.distill);
  kd.shared_vocab = shared_vocabulary_size(*load_tokenizer(teacher_path), teacher->model->config().vocab_size,
                                           context.data.tokenizer(), context.trained.model().config().vocab_size);
  context.info("distilling from " + teacher_path + kd_summary(recipe.distill));
  return MethodStep{std::make_unique<KdStep>(context.trained.model(), *teacher->model, kd), teacher};
}

MethodStep offline_step(const MethodContext& context) {
  const Recipe& recipe = context.recipe;
  const std::string cache_dir = expand_home(recipe.distill.teacher_cache);
  auto cache = TeacherCache::open(cache_dir);
  cache->check_matches(data_identity(recipe, context.data.text, context.data.prepared));
  KdStepOptions kd = kd_options(recipe.distill);
  kd.shared_vocab = cache->identity().vocab_size;
  if (context.trained.model().config().vocab_size < kd.shared_vocab) {
    throw bad_input("the student's embedding has fewer rows than the cache's vocabulary").key("distill.teacher_cache");
  }
  context.info("distilling from the teacher cache " + cache_dir + " (" + cache->identity().teacher + ", top-" +
               std::to_string(cache->format().top_k) + ")" + kd_summary(recipe.distill));
  return MethodStep{std::make_unique<KdStep>(context.trained.model(), cache, kd), nullptr};
}

}  // namespace

TrainingMethod kd_method() {
  TrainingMethod method;
  method.name = "kd";
  method.summary = "logit distillation from distill.teacher, run alongside the student";
  method.check = [](const Recipe& recipe) {
    if (recipe.distill.teacher.empty()) {
      throw bad_input("method is kd, but distill.teacher is not set").key("method, distill.teacher");
    }
    if (!recipe.method.empty() && !recipe.distill.teacher_cache.empty()) {
      throw bad_input("method is kd (the teacher runs during training), but distill.teacher_cache is set; "
                      "method kd_offline trains from the cache")
          .key("method, distill.teacher_cache");
    }
  };
  method.build_step = online_step;
  return method;
}

TrainingMethod kd_offline_method() {
  TrainingMethod method;
  method.name = "kd_offline";
  method.summary = "logit distillation from the top-k targets in distill.teacher_cache (retort cache-teacher)";
  method.check = [](const Recipe& recipe) {
    if (recipe.distill.teacher_cache.empty()) {
      throw bad_input("method is kd_offline, but distill.teacher_cache is not set").key("method, distill.teacher_cache");
    }
  };
  method.build_step = offline_step;
  return method;
}

}  // namespace retort::run
