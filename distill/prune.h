// Student initialisation by pruning a teacher (Minitron, Muralidharan et al. 2024): keep a chosen
// subset of decoder layers (depth) and optionally narrow every kept MLP to its most important
// neurons (width), the importance of a neuron being its mean absolute activation (the input of
// down_proj, silu(gate x) * up x) over calibration tokens. The result is an ordinary model of the
// same family and tokenizer, written as an HF checkpoint.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace retort {

struct PruneOptions {
  std::vector<int64_t> keep_layers;  // ascending source layer indices; empty: every layer
  int64_t mlp_width = 0;             // neurons kept per MLP; 0: unchanged
};

// "0-5,9,11" -> {0, 1, 2, 3, 4, 5, 9, 11}; bad_input for indices outside [0, layers), repeats or disorder.
std::vector<int64_t> parse_layer_list(const std::string& spec, int64_t layers);

// Block importance of every decoder layer (ShortGPT, Men et al. 2024): 1 - cos(input, output) of
// its residual stream, averaged over the calibration tokens. A layer that barely turns the stream
// matters least.
std::vector<double> layer_importance(CausalLM& model, const std::vector<std::vector<int64_t>>& calibration);

// The `depth` layers of highest importance, in model order.
std::vector<int64_t> most_important_layers(const std::vector<double>& importance, int64_t depth);

// Per source layer, the importance of each MLP neuron [intermediate] over the calibration sequences.
std::vector<at::Tensor> mlp_neuron_importance(CausalLM& model, const std::vector<std::vector<int64_t>>& calibration);

// The pruned model (float32, CPU): the kept layers renumbered in order, their MLPs cut to the
// `mlp_width` neurons of highest `importance` (kept in their original order).
std::shared_ptr<CausalLM> prune_model(CausalLM& source, const PruneOptions& options,
                                      const std::vector<at::Tensor>& importance);

}  // namespace retort
