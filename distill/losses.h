// Knowledge-distillation losses as pure functions: per-token divergences between a teacher's and
// a student's next-token distributions at a temperature, dense (full vocabulary: online KD) or
// sparse (the teacher's top-k log-probs: the offline cache), and a chunked loss over the student's
// output projection so the float32 [tokens x vocab] logits of teacher and student are never both
// held for a whole batch. References: Hinton et al. 2015 (temperature, T^2), GKD (Agarwal et al.
// 2024; TRL's generalized_jsd_loss), DistillKit's sparse KD.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "train/losses.h"

namespace retort {

// With p the teacher's and q the student's distribution at temperature T:
//   forward KL  sum p (log p - log q)            (mode-covering; the classic KD loss)
//   reverse KL  sum q (log q - log p)            (mode-seeking)
//   JSD(beta)   beta KL(p || m) + (1 - beta) KL(q || m),  m = beta p + (1 - beta) q,  0 < beta < 1
//   TV          1/2 sum |p - q|
// Every divergence is multiplied by T^2, so its gradients keep their size as T changes.
enum class Divergence { kForwardKl, kReverseKl, kJsd, kTotalVariation };

// "forward_kl" | "reverse_kl" | "jsd" | "tv"; bad_input listing them otherwise.
Divergence parse_divergence(const std::string& name);

// How the sparse loss treats the teacher's mass outside its top k:
//   kRestBucket   one more bucket holding the tail mass (1 - sum of the top-k probabilities) on
//                 both sides: the student's tail is its mass outside the teacher's top-k ids.
//                 Exact for the probability mass; equals the dense loss when k = vocabulary.
//                 A teacher tail under 1e-6 (float32 rounding of 1 - sum p) counts as none.
//   kRenormalize  the teacher's top k renormalised to sum to 1, the student's probabilities on
//                 the same ids likewise (the tail is ignored on both sides).
enum class TailMode { kRestBucket, kRenormalize };
TailMode parse_tail_mode(const std::string& name);  // "rest_bucket" | "renormalize"

struct KdOptions {
  Divergence divergence = Divergence::kForwardKl;
  double temperature = 1.0;
  double beta = 0.5;  // JSD only
  TailMode tail = TailMode::kRestBucket;  // sparse only
};

// Per-token divergence [n] float32 (times T^2) between student logits [n, V] and teacher logits
// [n, V]. Differentiable in the student's logits.
at::Tensor token_divergence(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                            const KdOptions& options);

// The same against a sparse teacher: `topk_ids` [n, k] int64 and `topk_log_probs` [n, k], the
// teacher's log-probabilities at temperature 1 over its full vocabulary. The temperature is
// applied to the teacher's k log-probs and to the rest bucket's log-mass alike (the tail taken as
// one pseudo-token); at T = 1 the rest bucket is exact. `rest_log_mass` [n] (optional): the
// teacher's tail log-mass as the cache stored it, instead of log(1 - sum of the k probabilities),
// which quantised log-probs would make inexact.
at::Tensor token_divergence_topk(const at::Tensor& student_logits, const at::Tensor& topk_ids,
                                 const at::Tensor& topk_log_probs, const KdOptions& options,
                                 const at::Tensor& rest_log_mass = {});

// The teacher's view of a chunk of counted tokens [start, start + n): dense logits [n, V], or
// top-k ids and log-probs (and, from the cache, the tail's log-mass [n]).
struct TeacherChunk {
  at::Tensor logits;
  at::Tensor topk_ids;
  at::Tensor topk_log_probs;
  at::Tensor rest_log_mass;
};
using TeacherChunkSource = std::function<TeacherChunk(int64_t start, int64_t rows)>;

// Summed divergence over N counted tokens: the student's hidden states `inputs` [N, H] go through
// its output projection `head` [V, H] `chunk_tokens` rows at a time, and each chunk meets the
// teacher's chunk from `teacher` (dense or sparse). Gradients flow to inputs and a trainable head.
// (distillation_loss with alpha 1.)
TokenLoss kd_loss(const at::Tensor& inputs, const Projection& head, const TeacherChunkSource& teacher,
                  const KdOptions& options, int64_t chunk_tokens = 1024);

// The distillation objective in one pass through the student's output projection:
// alpha * (summed divergence) + (1 - alpha) * (summed cross-entropy with `targets` [N]) over N
// counted tokens. The divergence compares the first `shared_vocab` logits (the rows both models'
// tokenizer has); the cross-entropy uses all of the student's rows, as causal_lm_loss does.
TokenLoss distillation_loss(const at::Tensor& inputs, const Projection& head, const at::Tensor& targets,
                            const TeacherChunkSource& teacher, const KdOptions& options, double alpha,
                            int64_t shared_vocab, int64_t chunk_tokens = 1024);

}  // namespace retort
