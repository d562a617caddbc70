// Tokenizer benchmark: encode throughput (MB/s, single thread) of a JSON list of documents,
// printed as JSON. Driven by bench/compare_tokenizer.py, which measures HF tokenizers (Rust)
// on the same documents and vocabulary.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "io/atomic_file.h"
#include "io/error.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: retort_bench_tokenizer TOKENIZER DOCS.json [repeats=3]\n");
    return 2;
  }
  try {
    const auto tokenizer = retort::load_tokenizer(argv[1]);
    const auto docs = nlohmann::json::parse(retort::read_text_file(argv[2])).get<std::vector<std::string>>();
    const int repeats = argc > 3 ? std::stoi(argv[3]) : 3;
    size_t bytes = 0, tokens = 0;
    for (const auto& doc : docs) bytes += doc.size();
    double best = 1e9;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      tokens = 0;
      for (const auto& doc : docs) tokens += tokenizer->encode(doc, false).size();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("%s\n", nlohmann::json{{"bytes", bytes}, {"tokens", tokens}, {"seconds", best},
                                       {"mb_per_s", bytes / best / 1e6}}.dump().c_str());
    return 0;
  } catch (...) {
    const auto report = retort::exit_report_for_current_exception();
    std::fprintf(stderr, "retort_bench_tokenizer: error: %s\n", report.message.c_str());
    return report.code;
  }
}
