// `retort run`: resolves a recipe (file + overrides) and fine-tunes; progress on a terminal is
// one updating line (step, loss, lr, tokens/s, ETA), otherwise a plain line every
// logging.every_steps steps.
#include "cli/run_command.h"

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "run/memory_plan.h"
#include "run/run.h"
#include "io/error.h"
#include "io/stop_signal.h"
#include "recipe/recipe.h"

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
    line_open_ = terminal_ && !(m.val_loss || m.step == total);
  }

  // The last progress line: why the run stopped early.
  void stopped(const std::string& reason, int64_t step, int64_t total) {
    std::fprintf(stderr, "%sstep %lld/%lld  stopped by %s\n", line_open_ ? "\n" : "", static_cast<long long>(step),
                 static_cast<long long>(total), reason.c_str());
    std::fflush(stderr);
    line_open_ = false;
  }

 private:
  bool line_open_ = false;
  bool terminal_;
  int64_t every_;
  double step_seconds_ = 0;
  int64_t steps_seen_ = 0;
};

// The command line again, quoted for a POSIX shell where needed.
std::string shell_command(const std::string& command, const std::vector<std::string>& words) {
  std::string out = command;
  for (const std::string& word : words) {
    const bool plain = !word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                               "0123456789_-./=:,+@%") == std::string::npos;
    if (plain) {
      out += " " + word;
      continue;
    }
    std::string quoted = "'";
    for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += " " + quoted + "'";
  }
  return out;
}

void report_signal_stop(const ParsedArgs& args, const run::RunOutcome& outcome) {
  std::cout << "stopped by " << signal_name(outcome.stop_signal) << " after step " << outcome.steps << " of "
            << outcome.total_steps << "\n";
  if (!outcome.checkpoint_dir.empty()) {
    std::cout << "checkpoint: " << outcome.checkpoint_dir << "\n";
  } else {
    std::cout << "no step had finished: nothing to checkpoint, a rerun starts afresh\n";
  }
  std::cout << "resume with: " << shell_command("retort run", args.positionals) << "\n";
  if (outcome.stop_signal == SIGUSR1) {
    std::cout << "exit status " << exit_status_for_signal(SIGUSR1)
              << " asks a Slurm job to requeue itself (docs/data-and-training.md)\n";
  }
}

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
  if (args.has("plan")) {
    run::report_memory_plan(recipe, std::cout);
    return 0;
  }
  // On a GPU the plan is checked against its free memory before anything is loaded.
  if (const auto fits = run::check_gpu_memory(recipe)) std::fprintf(stderr, "%s\n", fits->c_str());
  Progress progress(::isatty(2) != 0, recipe.logging.every_steps);
  run::RunEvents events;
  events.info = [](const std::string& line) {
    std::fprintf(stderr, "%s%s", line.c_str(), !line.empty() && line.back() == '\n' ? "" : "\n");
  };
  events.on_step = [&](const StepMetrics& metrics, int64_t total) { progress.step(metrics, total); };
  const run::RunOutcome outcome = run::run_recipe(recipe, recipe_to_yaml(recipe), events);
  if (outcome.stop_signal != 0) {
    progress.stopped(signal_name(outcome.stop_signal), outcome.steps, outcome.total_steps);
    report_signal_stop(args, outcome);
    return exit_status_for_signal(outcome.stop_signal);
  }
  const char* why = outcome.stop_reason == StopReason::kTime   ? " (stopped by training.max_minutes)"
                    : outcome.stop_reason == StopReason::kData ? " (the data ran out)"
                                                               : "";
  std::cout << "trained " << outcome.steps << " of " << outcome.total_steps << " steps" << why << "\n"
            << "checkpoints and metrics.jsonl: " << outcome.output_dir << "\n";
  if (!outcome.adapter_dir.empty()) std::cout << "PEFT adapter: " << outcome.adapter_dir << "\n";
  return 0;
}

int cache_teacher(const ParsedArgs& args) {
  const std::string& path = args.positionals.front();
  const std::vector<std::string> overrides(args.positionals.begin() + 1, args.positionals.end());
  const Recipe recipe = load_recipe(path, overrides);
  const bool terminal = ::isatty(2) != 0;
  CacheEvents events;
  events.info = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  int64_t reported = -1;
  events.on_batch = [&](const CacheProgress& p) {
    const double rate = static_cast<double>(p.tokens_done) / std::max(p.seconds, 1e-9);
    const double per_sequence = p.seconds / std::max<double>(1, static_cast<double>(p.sequences_done));
    const int64_t percent = p.sequences_done * 100 / std::max<int64_t>(1, p.sequences_total);
    if (!terminal && percent / 10 == reported / 10 && p.sequences_done < p.sequences_total) return;
    reported = percent;
    std::fprintf(stderr, "%scache-teacher %lld/%lld sequences (%lld%%)  %lld tokens  %.0f tok/s  ETA %s%s",
                 terminal ? "\r\x1b[2K" : "", static_cast<long long>(p.sequences_done),
                 static_cast<long long>(p.sequences_total), static_cast<long long>(percent),
                 static_cast<long long>(p.tokens_done), rate,
                 duration_text(per_sequence * static_cast<double>(p.sequences_total - p.sequences_done)).c_str(),
                 terminal && p.sequences_done < p.sequences_total ? "" : "\n");
    std::fflush(stderr);
  };
  const CacheOutcome outcome = run::run_cache_teacher(recipe, events);
  if (outcome.stop_signal != 0) {
    std::fprintf(stderr, "%scache-teacher stopped by %s\n", terminal ? "\n" : "", signal_name(outcome.stop_signal).c_str());
    std::printf("teacher cache: %s: %lld shards written and %lld kept are final; the shard in progress was dropped\n"
                "resume with: %s\n",
                outcome.dir.c_str(), static_cast<long long>(outcome.shards_written),
                static_cast<long long>(outcome.shards_kept), shell_command("retort cache-teacher", args.positionals).c_str());
    return exit_status_for_signal(outcome.stop_signal);
  }
  std::printf("teacher cache: %s\n%lld tokens, %.1f MB, %.1f bytes/token; %lld shards written, %lld kept from an "
              "earlier run\n",
              outcome.dir.c_str(), static_cast<long long>(outcome.tokens), static_cast<double>(outcome.bytes) / 1e6,
              static_cast<double>(outcome.bytes) / std::max<double>(1, static_cast<double>(outcome.tokens)),
              static_cast<long long>(outcome.shards_written), static_cast<long long>(outcome.shards_kept));
  if (outcome.tokens_written > 0) {
    std::printf("teacher: %.0f tokens/s over %.1f s\n", static_cast<double>(outcome.tokens_written) / outcome.seconds,
                outcome.seconds);
  }
  if (outcome.peak_gpu_mb) std::printf("teacher peak GPU memory: %.0f MB\n", *outcome.peak_gpu_mb);
  return 0;
}

}  // namespace

CommandSpec cache_teacher_command() {
  return {"cache-teacher",
          "Run a recipe's teacher once over its data and store top-k log-probs for offline distillation.",
          "retort cache-teacher RECIPE.yaml [key.path=value ...]   (writes distill.teacher_cache)",
          {},
          1,
          -1,
          cache_teacher};
}

CommandSpec run_command() {
  return {"run",
          "Run a recipe: fine-tune (LoRA or full), resuming from the output directory's checkpoints.",
          "retort run RECIPE.yaml [key.path=value ...] [--print-config | --validate | --plan]",
          {{"print-config", "", "print the resolved recipe (defaults and overrides applied) and exit"},
           {"validate", "", "check the recipe and exit"},
           {"plan", "", "print the expected peak memory by component (nothing loaded) and exit"}},
          1,
          -1,
          run_recipe};
}

}  // namespace retort::cli
