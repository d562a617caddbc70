#include "models/causal_lm.h"

#include "io/error.h"
#include "models/family.h"

namespace retort {

at::ScalarType CausalLM::dtype() const { return output_head().storage().compute_dtype(); }
at::Device CausalLM::device() const { return output_head().storage().device(); }

const ModelFamily& CausalLM::family() const {
  if (family_ == nullptr) throw internal_error("a model built outside create_model has no family");
  return *family_;
}

std::string CausalLM::gguf_tensor_name(const std::string& hf_name) const { return family().gguf_tensor_name(hf_name); }

std::optional<int64_t> CausalLM::gguf_permuted_heads(const std::string& hf_name) const {
  return family().gguf_permuted_heads(config(), hf_name);
}

const std::string& CausalLM::gguf_architecture() const {
  if (family().gguf_architecture.empty()) {
    throw bad_input("Retort has no GGUF form for " + config().architecture + " models yet; export hf or peft")
        .key("export.formats");
  }
  return family().gguf_architecture;
}

}  // namespace retort
