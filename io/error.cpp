// Formatting and exit-code mapping for retort::Error.
#include "io/error.h"

#include <c10/util/Exception.h>

#include <new>
#include <system_error>

namespace retort {

std::string format_error(const std::string& message, const ErrorContext& context) {
  std::string out;
  if (!context.file.empty()) {
    out += context.file;
    if (context.line >= 0) out += ":" + std::to_string(context.line);
    out += ": ";
  } else if (context.line >= 0) {
    out += "line " + std::to_string(context.line) + ": ";
  }
  if (!context.key.empty()) out += "key '" + context.key + "': ";
  if (!context.tensor.empty()) out += "tensor '" + context.tensor + "': ";
  out += message;
  return out;
}

Error::Error(ErrorKind kind, std::string message, ErrorContext context)
    : std::runtime_error(message), kind_(kind), message_(std::move(message)),
      context_(std::move(context)) {
  refresh_what();
}

void Error::refresh_what() { what_ = format_error(message_, context_); }

Error Error::file(std::string value) && {
  context_.file = std::move(value);
  refresh_what();
  return std::move(*this);
}
Error Error::line(int64_t value) && {
  context_.line = value;
  refresh_what();
  return std::move(*this);
}
Error Error::key(std::string value) && {
  context_.key = std::move(value);
  refresh_what();
  return std::move(*this);
}
Error Error::tensor(std::string value) && {
  context_.tensor = std::move(value);
  refresh_what();
  return std::move(*this);
}

Error Error::with_defaults(const ErrorContext& outer) const {
  ErrorContext merged = context_;
  if (merged.file.empty()) merged.file = outer.file;
  if (merged.line < 0) merged.line = outer.line;
  if (merged.key.empty()) merged.key = outer.key;
  if (merged.tensor.empty()) merged.tensor = outer.tensor;
  return Error(kind_, message_, merged);
}

Error bad_input(std::string message) { return Error(ErrorKind::kBadInput, std::move(message)); }
Error internal_error(std::string message) { return Error(ErrorKind::kInternal, std::move(message)); }

ExitReport exit_report_for(const std::exception& error) {
  if (const auto* retort_error = dynamic_cast<const Error*>(&error)) {
    const int code = retort_error->kind() == ErrorKind::kBadInput ? kExitBadInput : kExitInternal;
    return {code, retort_error->what()};
  }
  if (dynamic_cast<const std::bad_alloc*>(&error)) {
    return {kExitInternal, "out of memory"};
  }
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    // LibTorch's message without its C++ backtrace.
    return {kExitInternal, "internal error (LibTorch): " + torch_error->msg()};
  }
  if (const auto* system_error = dynamic_cast<const std::system_error*>(&error)) {
    return {kExitInternal, std::string("system error: ") + system_error->what()};
  }
  return {kExitInternal, std::string("internal error: ") + error.what()};
}

ExitReport exit_report_for_current_exception() {
  try {
    throw;
  } catch (const std::exception& error) {
    return exit_report_for(error);
  } catch (...) {
    return {kExitInternal, "internal error: unknown exception"};
  }
}

}  // namespace retort
