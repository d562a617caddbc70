#include "distill/cache_run.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <limits>

#include "distill/vocabulary.h"
#include "io/hub_cache.h"
#include "io/error.h"
#include "io/stop_signal.h"
#include "io/hash.h"
#include "io/text.h"
#include "models/loader.h"
#include "train/device_info.h"
#include "train/losses.h"
#include "train/step.h"

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
TopkBlock teacher_targets(const at::Tensor& rows, const Projection& head, int64_t k, int64_t chunk) {
  std::vector<at::Tensor> ids, log_probs, rest;
  for (int64_t start = 0; start < rows.size(0); start += chunk) {
    const int64_t n = std::min(chunk, rows.size(0) - start);
    const at::Tensor log_p = at::log_softmax(head.forward_base(rows.narrow(0, start, n)).to(at::kFloat), -1);
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
  const std::string path = resolve_model_path(recipe.distill.teacher, "distill.teacher");
  if (path.empty()) throw bad_input("no teacher model").key("distill.teacher");
  if (!fs::exists(path)) throw bad_input("the teacher model does not exist").file(path).key("distill.teacher");
  TeacherLoadOptions options;
  options.dtype = parse_dtype(recipe.distill.teacher_dtype);
  options.quantize = parse_base_quantization(recipe.distill.teacher_quantize, "distill.teacher_quantize");
  options.devices.clear();
  for (const std::string& device : recipe.distill.teacher_devices) options.devices.push_back(parse_device(device));
  if (options.devices.empty()) options.devices.push_back(parse_device(recipe.model.device));
  return load_teacher(path, options);  // frozen: load_teacher turns requires_grad off
}

namespace {

// The teacher's targets for one batch of packed rows: every sequence's counted positions,
// flattened so the output projection runs over all of them in equal chunks (one product shape,
// not one per sequence length), then cut back into sequences and encoded. `next_id`: the number
// the batch's first sequence must carry.
std::vector<EncodedSequence> batch_targets(CausalLM& teacher, const Batch& batch, const Projection& head,
                                           const TeacherCacheFormat& format, int64_t next_id) {
  at::NoGradGuard no_grad;
  const at::Tensor hidden =
      teacher.forward_hidden(batch.input_ids, batch_forward_options(batch)).to(head.storage().device());  // [B, T, H]
  const int64_t width = batch.labels.size(1);
  std::vector<at::Tensor> positions;
  std::vector<int64_t> counts;
  for (int64_t row = 0; row < hidden.size(0); ++row) {
    // Position t predicts label t + 1; it belongs to the sequence of token t + 1.
    const at::Tensor row_counted = next_token_targets(batch.labels[row].unsqueeze(0)).counted[0];
    const at::Tensor next_segments = batch.segment_ids[row].narrow(0, 1, width - 1);
    const auto& ids = batch.sequence_ids[static_cast<size_t>(row)];
    for (size_t j = 0; j < ids.size(); ++j) {
      if (ids[j] != next_id + static_cast<int64_t>(counts.size())) throw internal_error("cache sequences out of order");
      const at::Tensor counted = (row_counted & (next_segments == static_cast<int64_t>(j))).nonzero().squeeze(1);
      positions.push_back(counted + row * hidden.size(1));
      counts.push_back(counted.size(0));
    }
  }
  std::vector<EncodedSequence> encoded;
  if (counts.empty()) return encoded;
  const at::Tensor flat_positions = at::cat(positions).to(hidden.device());
  const at::Tensor rows = hidden.reshape({-1, hidden.size(-1)}).index_select(0, flat_positions);
  const TopkBlock all = teacher_targets(rows, head, format.top_k, 1024);
  int64_t offset = 0;
  for (const int64_t n : counts) {
    const TopkBlock block{all.ids.narrow(0, offset, n), all.log_probs.narrow(0, offset, n),
                          all.rest_log_mass.narrow(0, offset, n)};
    offset += n;
    const std::string raw = encode_topk_block(block, format.encoding);
    encoded.push_back({zstd_compress(raw, format.zstd_level), static_cast<uint32_t>(raw.size()),
                       static_cast<uint32_t>(block.tokens())});
  }
  return encoded;
}

// Train then validation sequences, numbered as the student's loaders number them, with the
// source each range comes from.
struct NumberedSequences {
  std::vector<data::SequenceRef> all;
  std::vector<std::pair<std::shared_ptr<const data::ExampleSource>, int64_t>> source_of;  // (source, first id)
  int64_t total() const { return static_cast<int64_t>(all.size()); }
};

NumberedSequences number_sequences(const data::PreparedData& prepared) {
  NumberedSequences numbered;
  numbered.all = prepared.train.scan.sequences;
  numbered.source_of.emplace_back(prepared.train.source, 0);
  if (prepared.validation) {
    numbered.source_of.emplace_back(prepared.validation->source, numbered.total());
    numbered.all.insert(numbered.all.end(), prepared.validation->scan.sequences.begin(),
                        prepared.validation->scan.sequences.end());
  }
  return numbered;
}

// Writes the shards one after the other; a finished shard found from an earlier run is kept.
class ShardWriter {
 public:
  ShardWriter(CausalLM& teacher, const data::DataPipeline& pipeline, const data::PreparedData& prepared,
              const TeacherCacheJob& job, const CacheEvents& events)
      : teacher_(teacher), pipeline_(pipeline), job_(job), events_(events), numbered_(number_sequences(prepared)),
        head_(teacher.output_head().first_outputs(job.vocab)),
        identity_hash_(cache_identity_hash(job.identity, job.format)) {
    progress_.sequences_total = numbered_.total();
  }

  CacheOutcome run() {
    const TeacherCacheFormat& format = job_.format;
    const int64_t total = numbered_.total();
    const int64_t shard_count = (total + format.shard_sequences - 1) / format.shard_sequences;
    // A signal abandons the shard being computed (shards are the resume unit) and skips the manifest.
    if (job_.stop_on_signal) stop_signals_.emplace();
    for (int64_t shard = 0; shard < shard_count && !stopping(); ++shard) write_shard(shard);
    outcome_.dir = job_.dir;
    outcome_.tokens_written = progress_.tokens_done;
    outcome_.seconds = progress_.seconds;
    if (stopping()) {
      outcome_.stop_signal = StopSignals::pending();
      return outcome_;
    }
    // A rerun that found everything done keeps the manifest (and its teacher time) as it was.
    if (outcome_.shards_written > 0 || !fs::exists(fs::path(job_.dir) / "cache.json")) {
      write_cache_manifest(job_.dir, job_.identity, format, shards_, progress_.seconds);
    }
    for (const CacheShardInfo& shard : shards_) {
      outcome_.tokens += shard.tokens;
      outcome_.bytes += shard.bytes;
    }
    if (const at::Device device = head_->storage().device(); device.is_cuda()) {
      if (const auto peak = peak_gpu_memory_bytes(device.has_index() ? device.index() : 0)) {
        outcome_.peak_gpu_mb = static_cast<double>(*peak) / (1 << 20);
      }
    }
    return outcome_;
  }

 private:
  bool stopping() const { return stop_signals_ && StopSignals::pending() != 0; }

  void write_shard(int64_t shard) {
    const std::string path = (fs::path(job_.dir) / shard_file_name(shard)).string();
    const int64_t first = shard * job_.format.shard_sequences;
    const int64_t count = std::min(job_.format.shard_sequences, numbered_.total() - first);
    if (auto existing = read_cache_shard_info(path, identity_hash_); existing && existing->sequences == count) {
      shards_.push_back(*existing);
      ++outcome_.shards_kept;
      progress_.sequences_done += count;
      return;
    }
    // A shard may hold train and validation sequences: each source's part gets its own loader.
    std::vector<EncodedSequence> encoded;
    for (size_t s = 0; s < numbered_.source_of.size() && !stopping(); ++s) {
      const int64_t begin = std::max(first, numbered_.source_of[s].second);
      const int64_t end = std::min(first + count, s + 1 < numbered_.source_of.size() ? numbered_.source_of[s + 1].second
                                                                                     : numbered_.total());
      if (begin < end) encode_range(s, begin, end, first, encoded);
    }
    if (stopping() && static_cast<int64_t>(encoded.size()) != count) return;  // a finished shard is still kept
    write_cache_shard(path, identity_hash_, job_.format, first, encoded);
    const auto written = read_cache_shard_info(path, identity_hash_);
    if (!written) throw internal_error("the shard just written does not read back").file(path);
    shards_.push_back(*written);
    ++outcome_.shards_written;
  }

  // Sequences [begin, end) of source `s`, packed into rows of max_seq_len in order (less padding
  // than a row each), each attending only to itself.
  void encode_range(size_t s, int64_t begin, int64_t end, int64_t shard_first, std::vector<EncodedSequence>& encoded) {
    data::LoaderOptions options;
    options.batch_size = job_.batch_size;
    options.shuffle = false;
    options.epochs = 1;
    options.pad_id = job_.pad_id;
    options.packing = true;
    options.row_length = job_.row_length;
    options.first_sequence_id = begin;
    data::DataLoader loader(numbered_.source_of[s].first, pipeline_,
                            std::vector<data::SequenceRef>(numbered_.all.begin() + begin, numbered_.all.begin() + end),
                            options);
    while (!stopping()) {
      std::optional<Batch> batch = loader.next();
      if (!batch) break;
      const auto started = std::chrono::steady_clock::now();
      const int64_t next_id = shard_first + static_cast<int64_t>(encoded.size());
      for (EncodedSequence& sequence : batch_targets(teacher_, *batch, *head_, job_.format, next_id)) {
        progress_.tokens_done += sequence.tokens;
        ++progress_.sequences_done;
        encoded.push_back(std::move(sequence));
      }
      progress_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (events_.on_batch) events_.on_batch(progress_);
    }
  }

  CausalLM& teacher_;
  const data::DataPipeline& pipeline_;
  const TeacherCacheJob& job_;
  const CacheEvents& events_;
  const NumberedSequences numbered_;
  const std::shared_ptr<Projection> head_;  // the shared vocabulary's rows of the teacher's head
  const uint64_t identity_hash_;
  std::optional<StopSignals> stop_signals_;
  CacheProgress progress_;
  CacheOutcome outcome_;
  std::vector<CacheShardInfo> shards_;
};

}  // namespace

TeacherCacheIdentity teacher_cache_identity(const Recipe& recipe, const ModelConfig& teacher_config,
                                            const data::RecipeText& text, const data::PreparedData& prepared) {
  TeacherCacheIdentity identity = data_identity(recipe, text, prepared);
  identity.teacher = recipe.distill.teacher;
  identity.teacher_fingerprint = teacher_fingerprint(resolve_model_path(recipe.distill.teacher, "distill.teacher"), teacher_config);
  identity.teacher_dtype = recipe.distill.teacher_dtype +
                           (recipe.distill.teacher_quantize == "none" ? "" : " " + recipe.distill.teacher_quantize);
  return identity;
}

CacheOutcome write_teacher_cache(CausalLM& teacher, const data::DataPipeline& pipeline,
                                 const data::PreparedData& prepared, const TeacherCacheJob& job,
                                 const CacheEvents& events) {
  if (job.format.top_k > job.vocab) {
    throw bad_input("top_k " + std::to_string(job.format.top_k) + " exceeds the vocabulary (" +
                    std::to_string(job.vocab) + ")")
        .key("distill.cache_top_k");
  }
  std::error_code ec;
  fs::create_directories(job.dir, ec);
  if (ec) throw bad_input("cannot create the cache directory: " + ec.message()).file(job.dir).key("distill.teacher_cache");
  return ShardWriter(teacher, pipeline, prepared, job, events).run();
}

}  // namespace retort
