// `retort cache-teacher`, assembled from the same builders as `retort run` (run/builders.h).
#include <filesystem>

#include "distill/vocabulary.h"
#include "io/hub_cache.h"
#include "io/error.h"
#include "io/text.h"
#include "run/builders.h"
#include "run/run.h"

namespace retort::run {

CacheOutcome run_cache_teacher(const Recipe& recipe, const CacheEvents& events) {
  const Info info = [&](const std::string& line) {
    if (events.info) events.info(line);
  };
  const std::string teacher_path = resolve_model_path(recipe.distill.teacher, "distill.teacher");
  TeacherCacheJob job;
  job.dir = expand_home(recipe.distill.teacher_cache);
  if (teacher_path.empty()) throw bad_input("cache-teacher needs the teacher model").key("distill.teacher");
  if (job.dir.empty()) throw bad_input("cache-teacher needs a directory to write").key("distill.teacher_cache");

  const RunData data(recipe);
  info(data::describe_stats(data.prepared.train.scan.stats, data.prepared.train.scan.sequences,
                            recipe.data.max_seq_len));
  LoadedModel teacher = load_recipe_teacher(recipe);
  job.vocab = shared_vocabulary_size(*load_tokenizer(teacher_path), teacher.model->config().vocab_size,
                                     data.tokenizer(), static_cast<int64_t>(data.tokenizer().vocab_size()));
  job.identity = teacher_cache_identity(recipe, teacher.model->config(), data.text, data.prepared);
  job.format = cache_format(recipe.distill);
  job.batch_size = recipe.training.micro_batch_size;
  job.row_length = recipe.data.max_seq_len;
  job.pad_id = data.pad_id();
  job.stop_on_signal = recipe.checkpoint.on_signal;
  info("teacher: " + teacher_path + " (" + teacher.model->config().summary() + ")");
  info("caching top-" + std::to_string(job.format.top_k) + " " + log_prob_encoding_name(job.format.encoding) +
       " log-probs into " + job.dir);
  return write_teacher_cache(*teacher.model, data.pipeline, data.prepared, job, events);
}

}  // namespace retort::run
