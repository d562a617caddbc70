#include "distill/losses.h"

#include <ATen/ATen.h>

#include <cmath>

#include "io/error.h"

namespace retort {
namespace {

// A log-probability standing in for "no mass" where -inf would poison gradients (a logsumexp over
// nothing but -inf has a NaN gradient); exp() of it is exactly 0 in float32.
constexpr double kNoMass = -1e30;
// A rest bucket's mass is floored at about FLT_MIN on both sides (the student's is exactly 0 only
// when k is the whole vocabulary), so every term stays finite and two empty tails cancel.
constexpr double kLogTinyMass = -87.0;
constexpr double kTailFloor = 1e-6;

// sum_i p_i (log p_i - log q_i) over the last dimension, 0 where p_i = 0.
at::Tensor kl(const at::Tensor& log_p, const at::Tensor& log_q) {
  const at::Tensor terms = at::exp(log_p) * (log_p - log_q);
  return at::where(log_p > kNoMass, terms, at::zeros_like(terms)).sum(-1);
}

// The divergence between two distributions given as log-probabilities over the same buckets.
at::Tensor divergence(const at::Tensor& log_p, const at::Tensor& log_q, const KdOptions& options) {
  switch (options.divergence) {
    case Divergence::kForwardKl: return kl(log_p, log_q);
    case Divergence::kReverseKl: return kl(log_q, log_p);
    case Divergence::kJsd: {
      const double beta = options.beta;
      const at::Tensor log_m = at::logsumexp(at::stack({log_p + std::log(beta), log_q + std::log(1 - beta)}), 0);
      return beta * kl(log_p, log_m) + (1 - beta) * kl(log_q, log_m);
    }
    case Divergence::kTotalVariation: return 0.5 * (at::exp(log_p) - at::exp(log_q)).abs().sum(-1);
  }
  throw internal_error("unhandled divergence");
}

void check(const KdOptions& options) {
  if (!(options.temperature > 0)) throw bad_input("the distillation temperature must be positive").key("distill.temperature");
  if (options.divergence == Divergence::kJsd && !(options.beta > 0 && options.beta < 1)) {
    throw bad_input("JSD needs 0 < beta < 1 (beta 0 and 1 are the two KL divergences)").key("distill.beta");
  }
}

}  // namespace

Divergence parse_divergence(const std::string& name) {
  if (name == "forward_kl") return Divergence::kForwardKl;
  if (name == "reverse_kl") return Divergence::kReverseKl;
  if (name == "jsd") return Divergence::kJsd;
  if (name == "tv") return Divergence::kTotalVariation;
  throw bad_input("unknown divergence '" + name + "'; valid: forward_kl, reverse_kl, jsd, tv").key("distill.loss");
}

TailMode parse_tail_mode(const std::string& name) {
  if (name == "rest_bucket") return TailMode::kRestBucket;
  if (name == "renormalize") return TailMode::kRenormalize;
  throw bad_input("unknown tail mode '" + name + "'; valid: rest_bucket, renormalize").key("distill.tail");
}

at::Tensor token_divergence(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                            const KdOptions& options) {
  check(options);
  const double t = options.temperature;
  const at::Tensor log_q = at::log_softmax(student_logits.to(at::kFloat) / t, -1);
  const at::Tensor log_p = at::log_softmax(teacher_logits.to(at::kFloat) / t, -1);
  return divergence(log_p, log_q, options) * (t * t);
}

at::Tensor token_divergence_topk(const at::Tensor& student_logits, const at::Tensor& topk_ids,
                                 const at::Tensor& topk_log_probs, const KdOptions& options,
                                 const at::Tensor& rest_log_mass) {
  check(options);
  const double t = options.temperature;
  const at::Tensor scaled = student_logits.to(at::kFloat) / t;  // [n, V]
  const at::Tensor teacher = topk_log_probs.to(at::kFloat);      // [n, k]
  at::Tensor log_p, log_q;
  if (options.tail == TailMode::kRenormalize) {
    log_p = at::log_softmax(teacher / t, -1);
    log_q = at::log_softmax(scaled.gather(1, topk_ids), -1);
  } else {
    // Teacher: k buckets and the rest, renormalised after the temperature.
    // 1 - sum p carries float32 rounding (~1e-7 when the top k hold everything): tails under
    // kTailFloor count as empty.
    at::Tensor rest_log;  // [n, 1]
    if (rest_log_mass.defined()) {
      rest_log = at::clamp_min(rest_log_mass.to(at::kFloat).unsqueeze(1), kLogTinyMass);
    } else {
      const at::Tensor rest = 1 - at::exp(teacher.to(at::kDouble)).sum(-1, true).to(at::kFloat);
      rest_log = at::where(rest > kTailFloor, at::log(rest), at::full_like(rest, kLogTinyMass));
    }
    log_p = at::log_softmax(at::cat({teacher, rest_log}, 1) / t, -1);
    // Student: its probabilities on the teacher's ids, and its mass everywhere else.
    const at::Tensor log_student = at::log_softmax(scaled, -1);
    const at::Tensor outside = log_student.scatter(1, topk_ids, kNoMass);
    log_q = at::cat({log_student.gather(1, topk_ids), at::clamp_min(at::logsumexp(outside, -1, true), kLogTinyMass)}, 1);
  }
  return divergence(log_p, log_q, options) * (t * t);
}

TokenLoss kd_loss(const at::Tensor& inputs, const Projection& head, const TeacherChunkSource& teacher,
                  const KdOptions& options, int64_t chunk_tokens) {
  return distillation_loss(inputs, head, at::Tensor(), teacher, options, 1.0, head.out_features(), chunk_tokens);
}

TokenLoss distillation_loss(const at::Tensor& inputs, const Projection& head, const at::Tensor& targets,
                            const TeacherChunkSource& teacher, const KdOptions& options, double alpha,
                            int64_t shared_vocab, int64_t chunk_tokens) {
  check(options);
  TokenLoss loss;
  loss.tokens = inputs.size(0);
  // The parts as logged: the KD divergence and the cross-entropy, each unweighted.
  at::Tensor kd_sum = at::zeros({}, inputs.options().dtype(at::kFloat));
  at::Tensor ce_sum = at::zeros({}, inputs.options().dtype(at::kFloat));
  loss.sum = chunked_linear_loss(
      inputs, head,
      [&](const at::Tensor& logits, int64_t start) {
        const int64_t rows = logits.size(0);
        at::Tensor total = at::zeros({}, logits.options().dtype(at::kFloat));
        if (alpha > 0) {
          const TeacherChunk chunk = teacher(start, rows);
          const at::Tensor shared = logits.narrow(1, 0, shared_vocab);
          const at::Tensor kd = chunk.logits.defined()   // dense (online) or top-k (cache)
                                    ? token_divergence(shared, chunk.logits, options)
                                    : token_divergence_topk(shared, chunk.topk_ids, chunk.topk_log_probs, options,
                                                            chunk.rest_log_mass);
          const at::Tensor kd_total = kd.sum();
          total = total + alpha * kd_total;
          kd_sum = kd_sum + kd_total.detach();
        }
        if (alpha < 1) {
          const at::Tensor ce = at::cross_entropy_loss(logits.to(at::kFloat), targets.narrow(0, start, rows), {},
                                                       at::Reduction::Sum);
          total = total + (1 - alpha) * ce;
          ce_sum = ce_sum + ce.detach();
        }
        return total;
      },
      chunk_tokens);
  if (alpha > 0) loss.parts.emplace_back("kd", kd_sum);
  if (alpha < 1) loss.parts.emplace_back("ce", ce_sum);
  return loss;
}

}  // namespace retort
