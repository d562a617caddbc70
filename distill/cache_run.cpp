#include "distill/cache_run.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <limits>

#include "distill/kd_step.h"
#include "distill/vocabulary.h"
#include "io/error.h"
#include "io/stop_signal.h"
#include "io/hash.h"
#include "io/text.h"
#include "models/loader.h"
#include "models/gemm.h"
#include "train/device_info.h"
#include "train/losses.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::string teacher_fingerprint(const std::string& path, const ModelConfig& config) {
  ContentHash hash;
  hash.update(config.summary());
  const fs::path config_json = fs::path(path) / "config.json";
  if (fs::is_directory(path) && fs::exists(config_json)) hash.update(hash_file(config_json.string()));
  if (fs::is_regular_file(path)) hash.update_value(static_cast<uint64_t>(fs::file_size(path)));
  return config.architecture + " " + std::to_string(config.num_hidden_layers) + "x" +
         std::to_string(config.hidden_size) + " " + hash.hex();
}

// One sequence's targets: the teacher's hidden states at the positions that predict a trained
// label [n, H] -> top-k of log_softmax over the shared vocabulary, ids ascending, plus the log of
// the mass outside them; `chunk` rows of float32 logits at a time.
TopkBlock teacher_targets(const at::Tensor& rows, const at::Tensor& weight, int64_t k, int64_t chunk) {
  std::vector<at::Tensor> ids, log_probs, rest;
  for (int64_t start = 0; start < rows.size(0); start += chunk) {
    const int64_t n = std::min(chunk, rows.size(0) - start);
    const at::Tensor log_p = at::log_softmax(gemm_linear(rows.narrow(0, start, n), weight).to(at::kFloat), -1);
    const auto [values, indices] = log_p.topk(k, -1);
    const auto [sorted_ids, order] = indices.sort(-1);
    ids.push_back(sorted_ids.cpu());
    log_probs.push_back(values.gather(1, order).cpu());
    rest.push_back(at::logsumexp(log_p.scatter(1, indices, -std::numeric_limits<float>::infinity()), -1).cpu());
  }
  if (ids.empty()) {
    return {at::empty({0, k}, at::kLong), at::empty({0, k}, at::kFloat), at::empty({0}, at::kFloat)};
  }
  return {at::cat(ids), at::cat(log_probs), at::cat(rest)};
}

}  // namespace

TeacherCacheIdentity data_identity(const Recipe& recipe, const data::RecipeText& text, const data::PreparedData& prepared) {
  TeacherCacheIdentity identity;
  identity.tokenizer_hash = tokenizer_hash(*text.tokenizer);
  identity.vocab_size = static_cast<int64_t>(text.tokenizer->vocab_size());
  const std::vector<data::SequenceRef> none;
  const auto& validation = prepared.validation ? prepared.validation->scan.sequences : none;
  identity.data_hash = sequences_hash(prepared.train.scan.sequences, validation);
  identity.chat_template = text.chat_template ? text.chat_template->name() : "";
  identity.max_seq_len = recipe.data.max_seq_len;
  identity.train_sequences = static_cast<int64_t>(prepared.train.scan.sequences.size());
  identity.validation_sequences = static_cast<int64_t>(validation.size());
  return identity;
}

TeacherCacheFormat cache_format(const DistillSection& distill) {
  TeacherCacheFormat format;
  format.top_k = distill.cache_top_k;
  format.encoding = parse_log_prob_encoding(distill.cache_log_probs);
  format.shard_sequences = distill.cache_shard_sequences;
  return format;
}

LoadedModel load_recipe_teacher(const Recipe& recipe) {
  const std::string path = expand_home(recipe.distill.teacher);
  if (path.empty()) throw bad_input("no teacher model").key("distill.teacher");
  if (!fs::exists(path)) throw bad_input("the teacher model does not exist").file(path).key("distill.teacher");
  TeacherLoadOptions options;
  options.dtype = parse_dtype(recipe.distill.teacher_dtype);
  options.int8 = parse_teacher_quantize(recipe.distill.teacher_quantize);
  options.devices.clear();
  for (const std::string& device : recipe.distill.teacher_devices) options.devices.push_back(parse_device(device));
  if (options.devices.empty()) options.devices.push_back(parse_device(recipe.model.device));
  return load_teacher(path, options);  // frozen: load_teacher turns requires_grad off
}

CacheOutcome run_cache_teacher(const Recipe& recipe, const CacheEvents& events) {
  auto info = [&](const std::string& line) {
    if (events.info) events.info(line);
  };
  const std::string teacher_path = expand_home(recipe.distill.teacher);
  const std::string dir = expand_home(recipe.distill.teacher_cache);
  if (teacher_path.empty()) throw bad_input("cache-teacher needs the teacher model").key("distill.teacher");
  if (dir.empty()) throw bad_input("cache-teacher needs a directory to write").key("distill.teacher_cache");

  const data::RecipeText text = data::load_recipe_text(recipe);
  const data::ExampleEncoder encoder(*text.tokenizer, text.template_or_null(), data::encode_options(recipe.data));
  const data::DataPipeline pipeline(data::format_options(recipe.data), encoder);
  const data::PreparedData prepared = data::prepare_data(recipe.data, pipeline, static_cast<uint64_t>(recipe.training.seed));
  info(data::describe_stats(prepared.train.scan.stats, prepared.train.scan.sequences, recipe.data.max_seq_len));

  LoadedModel teacher = load_recipe_teacher(recipe);
  const int64_t vocab = shared_vocabulary_size(*load_tokenizer(teacher_path), teacher.model->config().vocab_size,
                                               *text.tokenizer, static_cast<int64_t>(text.tokenizer->vocab_size()));
  TeacherCacheIdentity identity = data_identity(recipe, text, prepared);
  identity.teacher = recipe.distill.teacher;
  identity.teacher_fingerprint = teacher_fingerprint(teacher_path, teacher.model->config());
  identity.teacher_dtype = recipe.distill.teacher_dtype +
                           (recipe.distill.teacher_quantize == "none" ? "" : " " + recipe.distill.teacher_quantize);
  const TeacherCacheFormat format = cache_format(recipe.distill);
  if (format.top_k > vocab) {
    throw bad_input("top_k " + std::to_string(format.top_k) + " exceeds the vocabulary (" + std::to_string(vocab) + ")")
        .key("distill.cache_top_k");
  }
  const uint64_t identity_hash = cache_identity_hash(identity, format);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw bad_input("cannot create the cache directory: " + ec.message()).file(dir).key("distill.teacher_cache");
  info("teacher: " + teacher_path + " (" + teacher.model->config().summary() + ")");
  info("caching top-" + std::to_string(format.top_k) + " " + log_prob_encoding_name(format.encoding) +
       " log-probs into " + dir);

  // Train then validation sequences, numbered as the student's loaders number them.
  std::vector<data::SequenceRef> all = prepared.train.scan.sequences;
  std::vector<std::pair<std::shared_ptr<const data::ExampleSource>, int64_t>> source_of;  // (source, first id)
  source_of.emplace_back(prepared.train.source, 0);
  if (prepared.validation) {
    source_of.emplace_back(prepared.validation->source, static_cast<int64_t>(all.size()));
    all.insert(all.end(), prepared.validation->scan.sequences.begin(), prepared.validation->scan.sequences.end());
  }
  const int64_t total = static_cast<int64_t>(all.size());
  const int64_t shard_count = (total + format.shard_sequences - 1) / format.shard_sequences;
  const at::Tensor weight = teacher.model->output_weight().narrow(0, 0, vocab);
  const int64_t batch_size = recipe.training.micro_batch_size;
  const TokenId pad = text.tokenizer->pad_id().value_or(text.tokenizer->eos_id().value_or(0));

  CacheOutcome outcome;
  outcome.dir = dir;
  CacheProgress progress;
  progress.sequences_total = total;
  std::vector<CacheShardInfo> shards;
  // A signal abandons the shard being computed (shards are the resume unit) and skips the manifest.
  std::optional<StopSignals> stop_signals;
  if (recipe.checkpoint.on_signal) stop_signals.emplace();
  const auto stopping = [&] { return stop_signals && StopSignals::pending() != 0; };
  for (int64_t shard = 0; shard < shard_count && !stopping(); ++shard) {
    const std::string path = (fs::path(dir) / shard_file_name(shard)).string();
    const int64_t first = shard * format.shard_sequences;
    const int64_t count = std::min(format.shard_sequences, total - first);
    if (auto existing = read_cache_shard_info(path, identity_hash); existing && existing->sequences == count) {
      shards.push_back(*existing);
      ++outcome.shards_kept;
      progress.sequences_done += count;
      continue;
    }
    // A shard may hold train and validation sequences: each source's part gets its own loader.
    std::vector<EncodedSequence> encoded;
    for (size_t s = 0; s < source_of.size() && !stopping(); ++s) {
      const int64_t begin = std::max(first, source_of[s].second);
      const int64_t end = std::min(first + count, s + 1 < source_of.size() ? source_of[s + 1].second : total);
      if (begin >= end) continue;
      // Sequences packed into rows of max_seq_len in order (less padding than a row each), each
      // attending only to itself; the targets are then cut back into sequences.
      data::LoaderOptions options;
      options.batch_size = batch_size;
      options.shuffle = false;
      options.epochs = 1;
      options.pad_id = pad;
      options.packing = true;
      options.row_length = recipe.data.max_seq_len;
      options.first_sequence_id = begin;
      data::DataLoader loader(source_of[s].first, pipeline,
                              std::vector<data::SequenceRef>(all.begin() + begin, all.begin() + end), options);
      while (!stopping()) {
        std::optional<Batch> batch = loader.next();
        if (!batch) break;
        const auto started = std::chrono::steady_clock::now();
        at::NoGradGuard no_grad;
        const at::Tensor hidden = teacher.model->forward_hidden(batch->input_ids, batch_forward_options(*batch))
                                      .to(weight.device());  // [B, T, H]
        const int64_t width = batch->labels.size(1);
        // Every sequence's counted positions in the batch, flattened: the output projection then
        // runs over all of them in equal chunks (one product shape, not one per sequence length).
        std::vector<at::Tensor> positions;
        std::vector<int64_t> counts;
        for (int64_t row = 0; row < hidden.size(0); ++row) {
          // Position t predicts label t + 1; it belongs to the sequence of token t + 1.
          const at::Tensor next_labels = batch->labels[row].narrow(0, 1, width - 1);
          const at::Tensor next_segments = batch->segment_ids[row].narrow(0, 1, width - 1);
          const auto& ids = batch->sequence_ids[static_cast<size_t>(row)];
          for (size_t j = 0; j < ids.size(); ++j) {
            const int64_t expected = first + static_cast<int64_t>(encoded.size() + counts.size());
            if (ids[j] != expected) throw internal_error("cache sequences out of order");
            const at::Tensor counted =
                ((next_labels != kIgnoreIndex) & (next_segments == static_cast<int64_t>(j))).nonzero().squeeze(1);
            positions.push_back(counted + row * hidden.size(1));
            counts.push_back(counted.size(0));
          }
        }
        if (!counts.empty()) {
          const at::Tensor flat_positions = at::cat(positions).to(hidden.device());
          const at::Tensor rows = hidden.reshape({-1, hidden.size(-1)}).index_select(0, flat_positions);
          const TopkBlock all = teacher_targets(rows, weight, format.top_k, 1024);
          int64_t offset = 0;
          for (const int64_t n : counts) {
            const TopkBlock block{all.ids.narrow(0, offset, n), all.log_probs.narrow(0, offset, n),
                                  all.rest_log_mass.narrow(0, offset, n)};
            offset += n;
            const std::string raw = encode_topk_block(block, format.encoding);
            encoded.push_back({zstd_compress(raw, format.zstd_level), static_cast<uint32_t>(raw.size()),
                               static_cast<uint32_t>(block.tokens())});
            progress.tokens_done += block.tokens();
            ++progress.sequences_done;
          }
        }
        progress.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (events.on_batch) events.on_batch(progress);
      }
    }
    if (stopping() && static_cast<int64_t>(encoded.size()) != count) break;  // a finished shard is still kept
    write_cache_shard(path, identity_hash, format, first, encoded);
    const auto written = read_cache_shard_info(path, identity_hash);
    if (!written) throw internal_error("the shard just written does not read back").file(path);
    shards.push_back(*written);
    ++outcome.shards_written;
  }
  outcome.tokens_written = progress.tokens_done;
  outcome.seconds = progress.seconds;
  if (stopping()) {
    outcome.stop_signal = StopSignals::pending();
    return outcome;
  }
  // A rerun that found everything done keeps the manifest (and its teacher time) as it was.
  if (outcome.shards_written > 0 || !fs::exists(fs::path(dir) / "cache.json")) {
    write_cache_manifest(dir, identity, format, shards, progress.seconds);
  }
  for (const CacheShardInfo& shard : shards) {
    outcome.tokens += shard.tokens;
    outcome.bytes += shard.bytes;
  }
  if (weight.device().is_cuda()) {
    if (const auto peak = peak_gpu_memory_bytes(weight.device().has_index() ? weight.device().index() : 0)) {
      outcome.peak_gpu_mb = static_cast<double>(*peak) / (1 << 20);
    }
  }
  return outcome;
}

}  // namespace retort
