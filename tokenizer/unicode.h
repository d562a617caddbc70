// UTF-8 helpers, the GPT-2 byte<->unicode table (docs/formats.md §6.4) and NFC (through ICU) used by
// the tokenizers. Invalid UTF-8 is never fatal here: it is replaced the way Rust's
// String::from_utf8_lossy does (HF tokenizers' ByteLevel decoder), one U+FFFD per maximal subpart.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace retort::tok {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not one
// (bad lead byte, truncated, overlong, surrogate, above U+10FFFF).
size_t utf8_valid_length(std::string_view s, size_t i);

// Bytes of the longest prefix of s that ends on a complete UTF-8 character, counting an
// invalid byte sequence as complete (it can never become valid by appending).
size_t utf8_complete_prefix(std::string_view s);

// s with every invalid sequence replaced by U+FFFD (from_utf8_lossy rules).
std::string utf8_lossy(std::string_view s);

// Appends code point cp as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

// GPT-2's reversible byte -> printable code point mapping.
const std::array<uint32_t, 256>& byte_to_unicode();
// The UTF-8 of byte_to_unicode()[b] for every byte of `bytes`.
std::string bytes_to_byte_level(std::string_view bytes);
// The inverse: returns false (out unspecified) when a character is not in the table.
bool byte_level_to_bytes(std::string_view text, std::string& out);

// Unicode NFC of valid UTF-8 text (invalid sequences are first replaced, as HF does on input
// it receives as a Rust String).
std::string nfc(std::string_view text);

}  // namespace retort::tok
