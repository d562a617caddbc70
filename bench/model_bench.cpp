// Model-core benchmark: load time, prefill (forward) tokens/s and batch-1 greedy decode
// tokens/s with the KV cache, printed as one JSON object. Driven by bench/compare_model.py,
// which runs transformers on the same CPU, threads and config for the ratio.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "io/error.h"
#include "models/generate.h"
#include "models/loader.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: retort_bench_model MODEL [prefill_tokens=256] [decode_tokens=64] [threads=0]\n");
    return 2;
  }
  try {
    const std::string path = argv[1];
    const int64_t prefill = argc > 2 ? std::stoll(argv[2]) : 256;
    const int64_t decode = argc > 3 ? std::stoll(argv[3]) : 64;
    if (argc > 4 && std::stoi(argv[4]) > 0) at::set_num_threads(std::stoi(argv[4]));
    auto start = std::chrono::steady_clock::now();
    const retort::LoadedModel loaded = retort::load_model(path);
    const double load_s = seconds_since(start);
    retort::CausalLM& model = *loaded.model;
    const int64_t vocab = model.config().vocab_size;
    at::manual_seed(0);
    const at::Tensor ids = at::randint(3, vocab, {1, prefill}, at::kLong);
    double forward_s = 1e9;
    {
      c10::InferenceMode inference;
      model.forward_logits(ids);  // warm-up
      for (int repeat = 0; repeat < 3; ++repeat) {
        start = std::chrono::steady_clock::now();
        model.forward_logits(ids);
        forward_s = std::min(forward_s, seconds_since(start));
      }
    }
    retort::SamplingOptions options;
    options.max_new_tokens = decode;
    const std::vector<int64_t> prompt(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + 16);
    retort::generate(model, {prompt}, options);  // warm-up
    double decode_s = 1e9;
    for (int repeat = 0; repeat < 3; ++repeat) {
      start = std::chrono::steady_clock::now();
      const auto result = retort::generate(model, {prompt}, options);
      decode_s = std::min(decode_s, seconds_since(start));
      if (static_cast<int64_t>(result.new_tokens[0].size()) != decode) throw std::runtime_error("short generation");
    }
    int64_t parameters = 0;
    for (const auto& p : model.parameters()) parameters += p.numel();
    nlohmann::json report = {{"model", path},
                             {"parameters", parameters},
                             {"threads", at::get_num_threads()},
                             {"load_s", load_s},
                             {"prefill_tokens", prefill},
                             {"forward_s", forward_s},
                             {"forward_tokens_per_s", prefill / forward_s},
                             {"decode_tokens", decode},
                             {"decode_s", decode_s},
                             {"decode_tokens_per_s", decode / decode_s}};
    std::printf("%s\n", report.dump().c_str());
    return 0;
  } catch (...) {
    const retort::ExitReport report = retort::exit_report_for_current_exception();
    std::fprintf(stderr, "retort_bench_model: error: %s\n", report.message.c_str());
    return report.code;
  }
}
