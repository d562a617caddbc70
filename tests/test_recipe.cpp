// Recipes: typed sections with defaults, errors with file:line and key (with suggestions),
// overrides, and a printed config that reads back to the same recipe.
#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "io/error.h"
#include "tests/test_support.h"
#include "recipe/recipe.h"

namespace retort {
namespace {

const char* kRecipe = R"(name: persona
model:
  path: models/smollm2
  dtype: bfloat16
lora:
  rank: 8
  target_modules: [q_proj, v_proj]
optimizer:
  lr: 1.0e-4
training:
  micro_batch_size: 2
)";

TEST(Recipe, ParsesSectionsAndKeepsDefaults) {
  const Recipe recipe = parse_recipe(kRecipe, "r.yaml");
  EXPECT_EQ(recipe.name, "persona");
  EXPECT_EQ(recipe.model.dtype, "bfloat16");
  EXPECT_EQ(recipe.lora.rank, 8);
  EXPECT_EQ(recipe.lora.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_DOUBLE_EQ(recipe.optimizer.lr, 1e-4);
  EXPECT_DOUBLE_EQ(recipe.lora.alpha, 32.0);  // default
  EXPECT_EQ(recipe.training.micro_batch_size, 2);
  EXPECT_EQ(recipe.scheduler.name, "cosine");
}

void expect_error(const std::string& yaml, const std::vector<std::string>& overrides, const std::string& fragment) {
  try {
    parse_recipe(yaml, "r.yaml", overrides);
    FAIL() << "accepted; expected " << fragment;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(Recipe, ErrorsNameLineAndKeyWithSuggestions) {
  expect_error("optimizer:\n  lr: 1e-4\n  weight_decy: 0.1\n", {},
               "r.yaml:3: key 'optimizer.weight_decy': unknown key; did you mean 'optimizer.weight_decay'?");
  expect_error("trainig:\n  seed: 1\n", {}, "r.yaml:1: key 'trainig': unknown key; did you mean 'training'?");
  expect_error("training:\n  micro_batch_size: two\n", {},
               "r.yaml:2: key 'training.micro_batch_size': expected an integer, got 'two'");
  expect_error("scheduler:\n  name: cosin\n", {}, "'cosin' is not one of: constant, linear, cosine; did you mean 'cosine'?");
  expect_error("lora: [1, 2]\n", {}, "r.yaml:1: key 'lora': expected a mapping");
  expect_error("model:\n  path: [unclosed\n", {}, "r.yaml:");
  expect_error("training:\n  micro_batch_size: 0\n", {}, "key 'training.micro_batch_size': must be positive");
  expect_error(kRecipe, {"optimizer.lrate=0.1"}, "unknown key in override 'optimizer.lrate=0.1'; did you mean 'optimizer.lr'?");
  expect_error(kRecipe, {"lora.rank=big"}, "key 'lora.rank': expected an integer");
  expect_error(kRecipe, {"no-equals-sign"}, "not of the form key.path=value");
  expect_error(kRecipe, {"model.quantize=nf4", "lora.enabled=false"},
               "key 'model.quantize': a quantized base is frozen: quantize nf4 trains LoRA adapters only");
  expect_error(kRecipe, {"model.quantize=q4"}, "'q4' is not one of: none, int8, nf4, keep");
}

TEST(Recipe, OverridesApplyAfterTheFile) {
  const Recipe recipe = parse_recipe(kRecipe, "r.yaml", {"lora.rank=32", "training.seed=7", "export.formats=[hf, gguf]"});
  EXPECT_EQ(recipe.lora.rank, 32);
  EXPECT_EQ(recipe.training.seed, 7);
  EXPECT_EQ(recipe.exports.formats, (std::vector<std::string>{"hf", "gguf"}));
}

TEST(Recipe, PrintedConfigReadsBackToTheSameRecipe) {
  const Recipe recipe = parse_recipe(kRecipe, "r.yaml", {"data.system_prompt=You are Chef Ana."});
  const std::string printed = recipe_to_yaml(recipe);
  EXPECT_EQ(recipe_to_yaml(parse_recipe(printed, "printed.yaml")), printed);
  EXPECT_NE(printed.find("weight_decay"), std::string::npos);
  EXPECT_GE(recipe_keys().size(), 40u);
}

TEST(Recipe, CliPrintsConfigAndMapsErrorsToExitTwo) {
  test::TempDir temp;
  const std::string path = (temp.path() / "r.yaml").string();
  write_file_atomic(path, kRecipe);
  auto result = test::run_retort({"run", path, "lora.rank=4", "--print-config"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("rank: 4"), std::string::npos) << result.out;
  result = test::run_retort({"run", path, "lora.rnk=4", "--print-config"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("did you mean 'lora.rank'?"), std::string::npos) << result.err;
  result = test::run_retort({"run", (temp.path() / "missing.yaml").string(), "--validate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("missing.yaml"), std::string::npos) << result.err;
}

TEST(Recipe, EveryShippedRecipeValidates) {
  const std::filesystem::path recipes = std::filesystem::path(test::env_or_empty("RETORT_SOURCE_DIR")) / "recipes";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(recipes)) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_recipe(entry.path().string())) << entry.path();
    const auto result = test::run_retort({"run", entry.path().string(), "--validate"});
    EXPECT_EQ(result.exit_code, 0) << entry.path() << result.err;
    ++count;
  }
  EXPECT_GE(count, 9);
}

}  // namespace
}  // namespace retort
