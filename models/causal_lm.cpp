#include "models/causal_lm.h"

namespace retort {

at::ScalarType CausalLM::dtype() const { return output_weight().scalar_type(); }
at::Device CausalLM::device() const { return output_weight().device(); }

}  // namespace retort
