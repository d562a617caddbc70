// retort::Error: message formatting with context and the exit-code mapping.
#include <gtest/gtest.h>

#include <c10/util/Exception.h>

#include <new>

#include "io/error.h"
#include "io/text.h"

namespace retort {
namespace {

TEST(Error, FormatsEveryContextPart) {
  const Error error = bad_input("shape [3, 4] does not match config [4, 4]")
                          .file("model.safetensors")
                          .line(12)
                          .key("hidden_size")
                          .tensor("model.embed_tokens.weight");
  EXPECT_STREQ(error.what(),
               "model.safetensors:12: key 'hidden_size': tensor 'model.embed_tokens.weight': "
               "shape [3, 4] does not match config [4, 4]");
  EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
  EXPECT_EQ(error.context().line, 12);
}

TEST(Error, LeavesOutUnknownParts) {
  EXPECT_STREQ(bad_input("no such file").file("a.yaml").what(), "a.yaml: no such file");
  EXPECT_STREQ(bad_input("unknown key").key("lora.rnk").what(), "key 'lora.rnk': unknown key");
  EXPECT_STREQ(bad_input("bad").line(3).what(), "line 3: bad");
  EXPECT_STREQ(internal_error("plain").what(), "plain");
}

TEST(Error, WithDefaultsKeepsInnerContext) {
  const Error inner = bad_input("truncated").tensor("w");
  const Error merged = inner.with_defaults(ErrorContext{"outer.safetensors", -1, "", "other"});
  EXPECT_STREQ(merged.what(), "outer.safetensors: tensor 'w': truncated");
}

TEST(ExitCodes, BadInputIsTwoInternalIsOne) {
  EXPECT_EQ(exit_report_for(bad_input("x")).code, kExitBadInput);
  EXPECT_EQ(kExitBadInput, 2);
  EXPECT_EQ(exit_report_for(internal_error("x")).code, kExitInternal);
  EXPECT_EQ(kExitInternal, 1);
  EXPECT_EQ(exit_report_for(std::runtime_error("boom")).code, kExitInternal);
  EXPECT_EQ(exit_report_for(std::bad_alloc()).message, "out of memory");
}

TEST(ExitCodes, LibTorchErrorsAreInternalWithoutBacktrace) {
  try {
    TORCH_CHECK(false, "shapes cannot be multiplied");
    FAIL() << "TORCH_CHECK did not throw";
  } catch (const std::exception& error) {
    const ExitReport report = exit_report_for(error);
    EXPECT_EQ(report.code, kExitInternal);
    EXPECT_NE(report.message.find("shapes cannot be multiplied"), std::string::npos);
    EXPECT_EQ(report.message.find('\n'), std::string::npos) << report.message;
  }
}

TEST(ExitCodes, CurrentExceptionMapping) {
  try {
    throw bad_input("bad recipe").file("r.yaml").line(4);
  } catch (...) {
    const ExitReport report = exit_report_for_current_exception();
    EXPECT_EQ(report.code, 2);
    EXPECT_EQ(report.message, "r.yaml:4: bad recipe");
  }
  try {
    throw 42;
  } catch (...) {
    EXPECT_EQ(exit_report_for_current_exception().code, 1);
  }
}

TEST(Text, EditDistanceAndNearestMatch) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
  EXPECT_EQ(nearest_match("genrate", {"generate", "chat", "eval"}), "generate");
  EXPECT_EQ(nearest_match("zzzzzzzz", {"generate", "chat", "eval"}), "");
}

}  // namespace
}  // namespace retort
