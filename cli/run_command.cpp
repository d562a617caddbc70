// `retort run`: resolves a recipe (file + overrides) and fine-tunes; progress on a terminal is
// one updating line (step, loss, lr, tokens/s, ETA), otherwise a plain line every
// logging.every_steps steps.
#include "cli/run_command.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "finetune/sft_run.h"
#include "io/error.h"
#include "train/recipe.h"

namespace retort::cli {
namespace {

std::string duration_text(double seconds) {
  const long total = std::lround(std::max(0.0, seconds));
  char text[32];
  if (total >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", total / 3600, total / 60 % 60);
  else std::snprintf(text, sizeof text, "%ldm%02lds", total / 60, total % 60);
  return text;
}

class Progress {
 public:
  Progress(bool terminal, int64_t every) : terminal_(terminal), every_(std::max<int64_t>(1, every)) {}

  void step(const StepMetrics& m, int64_t total) {
    // Steps of this process only (a resumed run starts at its checkpoint's step).
    step_seconds_ += m.seconds;
    ++steps_seen_;
    const double per_step = step_seconds_ / static_cast<double>(steps_seen_);
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  ETA %s",
                  static_cast<long long>(m.step), static_cast<long long>(total), m.loss, m.lr, m.grad_norm,
                  static_cast<double>(m.tokens) / std::max(m.seconds, 1e-9),
                  duration_text(per_step * static_cast<double>(total - m.step)).c_str());
    std::string text = line;
    if (m.val_loss) {
      std::snprintf(line, sizeof line, "  val_loss %.4f  val_ppl %.2f", *m.val_loss, std::exp(*m.val_loss));
      text += line;
    }
    if (terminal_) {
      std::fprintf(stderr, "\r\x1b[2K%s", text.c_str());
      if (m.val_loss || m.step == total) std::fputc('\n', stderr);
    } else if (m.step % every_ == 0 || m.step == total || m.val_loss) {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
    std::fflush(stderr);
  }

 private:
  bool terminal_;
  int64_t every_;
  double step_seconds_ = 0;
  int64_t steps_seen_ = 0;
};

int run_recipe(const ParsedArgs& args) {
  const std::string& path = args.positionals.front();
  const std::vector<std::string> overrides(args.positionals.begin() + 1, args.positionals.end());
  const Recipe recipe = load_recipe(path, overrides);
  if (args.has("print-config")) {
    std::cout << recipe_to_yaml(recipe);
    return 0;
  }
  if (args.has("validate")) {
    std::cout << path << ": valid recipe\n";
    return 0;
  }
  Progress progress(::isatty(2) != 0, recipe.logging.every_steps);
  RunEvents events;
  events.info = [](const std::string& line) {
    std::fprintf(stderr, "%s%s", line.c_str(), !line.empty() && line.back() == '\n' ? "" : "\n");
  };
  events.on_step = [&](const StepMetrics& metrics, int64_t total) { progress.step(metrics, total); };
  const RunOutcome outcome = run_finetune(recipe, recipe_to_yaml(recipe), events);
  const char* why = outcome.stop_reason == "time"   ? " (stopped by training.max_minutes)"
                    : outcome.stop_reason == "data" ? " (the data ran out)"
                                                    : "";
  std::cout << "trained " << outcome.steps << " of " << outcome.total_steps << " steps" << why << "\n"
            << "checkpoints and metrics.jsonl: " << outcome.output_dir << "\n";
  if (!outcome.adapter_dir.empty()) std::cout << "PEFT adapter: " << outcome.adapter_dir << "\n";
  return 0;
}

}  // namespace

CommandSpec run_command() {
  return {"run",
          "Run a recipe: fine-tune (LoRA or full), resuming from the output directory's checkpoints.",
          "retort run RECIPE.yaml [key.path=value ...] [--print-config | --validate]",
          {{"print-config", "", "print the resolved recipe (defaults and overrides applied) and exit"},
           {"validate", "", "check the recipe and exit"}},
          1,
          -1,
          run_recipe};
}

}  // namespace retort::cli
