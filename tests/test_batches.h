// A BatchSource over batches held in memory, resumable by position.
#pragma once

#include <string>
#include <vector>

#include "data/batch.h"

namespace retort::test {

class VectorSource : public BatchSource {
 public:
  explicit VectorSource(std::vector<Batch> batches) : batches_(std::move(batches)) {}
  std::optional<Batch> next() override {
    if (index_ >= batches_.size()) return std::nullopt;
    return batches_[index_++];
  }
  std::string state() const override { return std::to_string(index_); }
  void restore(const std::string& state) override { index_ = std::stoul(state); }

 private:
  std::vector<Batch> batches_;
  size_t index_ = 0;
};

}  // namespace retort::test
