// The one error type of Retort. It carries where the problem is (file, line, key,
// tensor) so the CLI can print one clear message and pick the exit code:
// bad input -> 2, internal failure -> 1 (see cli/main.cpp).
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

namespace retort {

enum class ErrorKind {
  kBadInput,  // the user's files, flags or recipe are wrong: exit code 2
  kInternal,  // a bug or an environment failure (out of memory, I/O error): exit code 1
};

struct ErrorContext {
  std::string file;
  int64_t line = -1;  // 1-based; -1 when unknown
  std::string key;     // recipe key, JSON field, metadata key
  std::string tensor;  // tensor name
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, ErrorContext context = {});

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const ErrorContext& context() const { return context_; }

  // Context setters for `throw bad_input("...").file(path).tensor(name);`
  Error file(std::string value) &&;
  Error line(int64_t value) &&;
  Error key(std::string value) &&;
  Error tensor(std::string value) &&;

  // Keeps the context already set and fills only what is missing: used when a
  // lower layer knows the tensor and a higher one knows the file.
  Error with_defaults(const ErrorContext& outer) const;

 private:
  void refresh_what();

  ErrorKind kind_;
  std::string message_;
  ErrorContext context_;
  std::string what_;
 public:
  const char* what() const noexcept override { return what_.c_str(); }
};

// Builders for the two kinds.
Error bad_input(std::string message);
Error internal_error(std::string message);

// "path:12: key 'a.b': tensor 'w': message" (parts that are unknown are left out).
std::string format_error(const std::string& message, const ErrorContext& context);

// Exit codes used by the CLI.
inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitBadInput = 2;

// Maps any exception to the CLI's exit code and the one-line message to print.
struct ExitReport {
  int code;
  std::string message;
};
ExitReport exit_report_for(const std::exception& error);
ExitReport exit_report_for_current_exception();

}  // namespace retort
