// Tokenize-and-pack throughput and peak memory of the data pipeline streaming a JSONL file:
// the scan (every example encoded once, in worker threads) and one packed epoch through the
// loader. Prints one JSON object. Usage:
//   retort_bench_data --tokenizer DIR --template NAME --data FILE [--threads N] [--row 2048] [--batch 8]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "io/error.h"

namespace {

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace retort;
  std::string tokenizer_path, template_name = "chatml", data_path;
  int threads = 0;
  int64_t row = 2048, batch_size = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--tokenizer") tokenizer_path = value;
    else if (flag == "--template") template_name = value;
    else if (flag == "--data") data_path = value;
    else if (flag == "--threads") threads = std::stoi(value);
    else if (flag == "--row") row = std::stoll(value);
    else if (flag == "--batch") batch_size = std::stoll(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    const auto tokenizer = load_tokenizer(tokenizer_path);
    const chat::ChatTemplate chat_template = chat::ChatTemplate::by_name(template_name);
    data::EncodeOptions encode;
    encode.max_seq_len = row;
    const data::ExampleEncoder encoder(*tokenizer, &chat_template, encode);
    const data::DataPipeline pipeline({}, encoder);
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const auto source = data::ExampleSource::open(data_path);
    const auto t1 = clock::now();
    const data::ScanResult scan = data::scan_dataset(*source, pipeline, {}, false, threads);
    const auto t2 = clock::now();
    const double rss_after_scan = peak_rss_mb();
    data::LoaderOptions options;
    options.batch_size = batch_size;
    options.packing = true;
    options.row_length = row;
    options.pad_id = 0;
    data::DataLoader loader(source, pipeline, scan.sequences, options);
    int64_t batches = 0, tokens = 0;
    while (auto batch = loader.next()) {
      ++batches;
      tokens += batch->attention_mask.sum().item<int64_t>();
    }
    const auto t3 = clock::now();
    auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    struct stat_size { double mb; } size{0};
    if (FILE* f = std::fopen(data_path.c_str(), "rb")) {
      std::fseek(f, 0, SEEK_END);
      size.mb = static_cast<double>(std::ftell(f)) / (1 << 20);
      std::fclose(f);
    }
    const nlohmann::json report = {
        {"file_mb", size.mb},
        {"examples", scan.stats.examples},
        {"tokens", scan.stats.tokens},
        {"index_s", seconds(t0, t1)},
        {"scan_s", seconds(t1, t2)},
        {"scan_mb_per_s", size.mb / seconds(t1, t2)},
        {"scan_tokens_per_s", static_cast<double>(scan.stats.tokens) / seconds(t1, t2)},
        {"epoch_s", seconds(t2, t3)},
        {"epoch_tokens_per_s", static_cast<double>(tokens) / seconds(t2, t3)},
        {"packed_batches", batches},
        {"peak_rss_mb_after_scan", rss_after_scan},
        {"peak_rss_mb", peak_rss_mb()},
        {"threads", threads}};
    std::cout << report.dump() << "\n";
  } catch (const Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 2;
  }
  return 0;
}
