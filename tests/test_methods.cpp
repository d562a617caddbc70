// The recipe's `method:` picks the training method; without it a recipe means what it always
// did; a distill section that contradicts the method is refused naming both keys.
#include <gtest/gtest.h>

#include "io/error.h"
#include "recipe/recipe.h"
#include "run/method.h"

namespace retort {
namespace {

std::string method_of(const std::string& yaml) {
  return run::resolve_method(parse_recipe(yaml, "recipe.yaml")).name;
}

std::string refusal_of(const std::string& yaml) {
  try {
    run::resolve_method(parse_recipe(yaml, "recipe.yaml"));
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(TrainingMethods, ExplicitOrImpliedByTheDistillSection) {
  EXPECT_EQ(method_of("name: a\n"), "sft");
  EXPECT_EQ(method_of("distill:\n  teacher: t.gguf\n"), "kd");
  EXPECT_EQ(method_of("distill:\n  teacher: t.gguf\n  teacher_cache: cache\n"), "kd_offline");
  EXPECT_EQ(method_of("method: kd\ndistill:\n  teacher: t.gguf\n"), "kd");
  EXPECT_EQ(method_of("method: kd_offline\ndistill:\n  teacher_cache: cache\n"), "kd_offline");
  std::vector<std::string> names;
  for (const run::TrainingMethod& method : run::training_methods()) names.push_back(method.name);
  EXPECT_EQ(names, (std::vector<std::string>{"sft", "kd", "kd_offline"}));
}

TEST(TrainingMethods, AContradictingDistillSectionNamesBothKeys) {
  const std::string sft_with_teacher = refusal_of("method: sft\ndistill:\n  teacher: t.gguf\n");
  EXPECT_NE(sft_with_teacher.find("method, distill.teacher"), std::string::npos) << sft_with_teacher;
  const std::string kd_without_teacher = refusal_of("method: kd\n");
  EXPECT_NE(kd_without_teacher.find("method, distill.teacher"), std::string::npos) << kd_without_teacher;
  const std::string kd_with_cache = refusal_of("method: kd\ndistill:\n  teacher: t\n  teacher_cache: c\n");
  EXPECT_NE(kd_with_cache.find("method, distill.teacher_cache"), std::string::npos) << kd_with_cache;
  const std::string offline_without_cache = refusal_of("method: kd_offline\ndistill:\n  teacher: t\n");
  EXPECT_NE(offline_without_cache.find("method, distill.teacher_cache"), std::string::npos) << offline_without_cache;
  const std::string unknown = refusal_of("method: dpo\n");
  EXPECT_NE(unknown.find("unknown method 'dpo' (known: sft, kd, kd_offline)"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("method"), std::string::npos);
}

}  // namespace
}  // namespace retort
