// Models named by Hugging Face id ("google/gemma-3-270m") and found offline in the local Hugging
// Face cache, the layout huggingface_hub writes (docs/formats.md §7):
//   $HF_HUB_CACHE (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
//   ~/.cache/huggingface/hub) / models--ORG--NAME / refs/REVISION (a commit hash)
//                                                 / snapshots/COMMIT/<the repository's files>
// Nothing is downloaded: a model that is not cached is a clear error listing what is.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace retort {

// The folder of the Hugging Face cache this process reads.
std::filesystem::path hub_cache_dir();

// "ORG/NAME" ids of every cached model (sorted), for messages.
std::vector<std::string> cached_hub_models(const std::filesystem::path& cache);

// A model path as given in a recipe or on the command line: "~/" expanded; an existing file or
// folder as it is; an id "ORG/NAME", "ORG/NAME@REVISION" (branch, tag or commit) or
// "ORG/NAME/FILE" (a file in the repository, e.g. a .gguf) resolved in the cache; anything else
// as it is (the loader then says what is missing). `key` names the setting in errors.
std::string resolve_model_path(const std::string& given, const std::string& key);

}  // namespace retort
