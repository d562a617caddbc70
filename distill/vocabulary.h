// Teacher and student must speak the same tokenizer for logit distillation: the id -> token
// tables are compared, and embeddings padded past the tokenizer (Qwen2.5-7B's 152064 rows against
// 0.5B's 151936) are sliced to the shared size.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace retort {

// The number of vocabulary rows the two models share: the tokenizer size, when both embeddings
// have at least that many rows. bad_input naming the first id whose token differs, or a model
// whose embedding is smaller than its tokenizer.
int64_t shared_vocabulary_size(const Tokenizer& teacher, int64_t teacher_rows, const Tokenizer& student,
                               int64_t student_rows);

}  // namespace retort
