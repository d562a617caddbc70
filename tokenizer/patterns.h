// Pre-tokenization regexes in the form HF tokenizer.json files spell them (docs/formats.md §6.3).
#pragma once

namespace retort::tok {

// GPT-2's regex, used by ByteLevel with use_regex true.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k-style), from Meta's tokenizer.py.
inline constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: Llama 3's regex with digits split one at a time.
inline constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// HF's Digits pre-tokenizer with individual_digits true / false.
inline constexpr const char* kDigitPattern = R"(\p{N})";
inline constexpr const char* kDigitRunPattern = R"(\p{N}+)";

}  // namespace retort::tok
