#include "distill/vocabulary.h"

#include "io/error.h"

namespace retort {

int64_t shared_vocabulary_size(const Tokenizer& teacher, int64_t teacher_rows, const Tokenizer& student,
                               int64_t student_rows) {
  const int64_t teacher_tokens = static_cast<int64_t>(teacher.vocab_size());
  const int64_t student_tokens = static_cast<int64_t>(student.vocab_size());
  if (teacher_tokens != student_tokens) {
    throw bad_input("teacher and student tokenizers differ in size (" + std::to_string(teacher_tokens) + " vs " +
                    std::to_string(student_tokens) + " tokens); logit distillation needs one tokenizer "
                    "(use synthetic-data distillation across tokenizers)")
        .key("distill.teacher");
  }
  for (int64_t id = 0; id < teacher_tokens; ++id) {
    const std::string a = teacher.id_to_token(static_cast<TokenId>(id));
    const std::string b = student.id_to_token(static_cast<TokenId>(id));
    if (a != b) {
      throw bad_input("teacher and student tokenizers differ at id " + std::to_string(id) + " ('" + a + "' vs '" + b +
                      "'); logit distillation needs one tokenizer")
          .key("distill.teacher");
    }
  }
  for (const auto& [rows, who] : {std::pair{teacher_rows, "teacher"}, std::pair{student_rows, "student"}}) {
    if (rows < teacher_tokens) {
      throw bad_input(std::string("the ") + who + "'s embedding has " + std::to_string(rows) + " rows for " +
                      std::to_string(teacher_tokens) + " tokens")
          .key("distill.teacher");
    }
  }
  return teacher_tokens;  // rows past the tokenizer are padding: never a target, sliced off
}

}  // namespace retort
