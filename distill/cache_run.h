// Writing a teacher cache (`retort cache-teacher`, assembled in run/): the teacher runs once over
// the train and validation data and every trained token's top-k targets go to the cache directory
// (distill/teacher_cache.h), shard by shard, so an interrupted run resumes at the shard it was in
// and reproduces the same bytes. Also the identity a student run checks a cache against.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "data/dataset.h"
#include "distill/teacher.h"
#include "distill/teacher_cache.h"
#include "recipe/recipe.h"

namespace retort {

// The data side of a cache's identity for this recipe's tokenizer, template and scanned data.
TeacherCacheIdentity data_identity(const Recipe& recipe, const data::RecipeText& text, const data::PreparedData& prepared);

TeacherCacheFormat cache_format(const DistillSection& distill);

// The recipe's teacher (distill.teacher with its dtype, quantisation and devices), frozen.
LoadedModel load_recipe_teacher(const Recipe& recipe);

struct CacheProgress {
  int64_t sequences_done = 0;
  int64_t sequences_total = 0;
  int64_t tokens_done = 0;  // counted tokens written by this process
  double seconds = 0;       // this process's teacher time
};

struct CacheEvents {
  std::function<void(const std::string&)> info;
  std::function<void(const CacheProgress&)> on_batch;
};

struct CacheOutcome {
  std::string dir;
  int64_t tokens = 0;  // in the whole cache
  int64_t bytes = 0;
  int64_t shards_written = 0;
  int64_t shards_kept = 0;  // found finished from an earlier run
  int64_t tokens_written = 0;
  double seconds = 0;  // teacher time of this process
  std::optional<double> peak_gpu_mb;  // the teacher's output device, when a GPU
  int stop_signal = 0;  // a signal stopped it: finished shards kept, no manifest yet (rerun to finish)
};

// The whole identity of the cache this recipe's teacher writes over its data.
TeacherCacheIdentity teacher_cache_identity(const Recipe& recipe, const ModelConfig& teacher_config,
                                            const data::RecipeText& text, const data::PreparedData& prepared);

struct TeacherCacheJob {
  std::string dir;
  TeacherCacheIdentity identity;
  TeacherCacheFormat format;
  int64_t vocab = 0;       // the shared vocabulary: the teacher's output rows compared
  int64_t batch_size = 1;  // packed rows per teacher forward
  int64_t row_length = 0;  // data.max_seq_len
  TokenId pad_id = 0;
  bool stop_on_signal = true;  // SIGINT/SIGTERM/SIGUSR1 end it after the shard in progress is dropped
};

// Writes (or completes) the cache of `prepared` (train then validation sequences) into job.dir.
CacheOutcome write_teacher_cache(CausalLM& teacher, const data::DataPipeline& pipeline,
                                 const data::PreparedData& prepared, const TeacherCacheJob& job,
                                 const CacheEvents& events);

}  // namespace retort
