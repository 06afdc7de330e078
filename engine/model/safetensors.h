// Reader for safetensors files (an 8-byte little-endian header length, a JSON header mapping tensor names to
// dtype, shape and [begin, end) byte offsets into the data area that follows) and for Hugging Face checkpoint
// directories: `model.safetensors`, or shards listed in `model.safetensors.index.json` ("weight_map").
//
// The header is untrusted: its size, every shape product and every offset is checked against the file before
// use, tensors may not overlap, and shard names from an index must be plain file names inside the directory.
// Files are mapped read-only (MAP_PRIVATE); a SafetensorsFile is immutable and may be read by many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/util/result.h"

namespace sluice::safetensors {

enum class Dtype : std::uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

std::string_view dtype_name(Dtype d);
std::size_t dtype_bytes(Dtype d);

struct TensorView {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::uint64_t> shape;  // row-major: shape.back() varies fastest
  std::uint64_t n_elements = 0;
  std::span<const std::byte> bytes;  // into the owning file's mapping; no particular alignment
};

struct SafetensorsError {
  std::string message;  // names the file and the tensor or header field at fault
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile, SafetensorsError> open(const std::string& path);
  static Result<SafetensorsFile, SafetensorsError> from_buffer(std::vector<std::byte> bytes,
                                                               std::string name = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const TensorView* tensor(std::string_view name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  struct Storage;
  SafetensorsFile();
  static Result<SafetensorsFile, SafetensorsError> parse(std::unique_ptr<Storage> storage, std::string name);

  std::unique_ptr<Storage> storage_;  // heap-held so TensorView::bytes survive moves
  std::string path_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// A checkpoint directory: one file or the shards named by the index. Tensor views stay valid while it lives.
class Checkpoint {
 public:
  static Result<Checkpoint, SafetensorsError> open_dir(const std::string& dir);

  const TensorView* tensor(std::string_view name) const;
  std::size_t tensor_count() const { return by_name_.size(); }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// Converts an F32, F16 or BF16 tensor to float; `out` must hold n_elements floats.
Status<SafetensorsError> to_f32(const TensorView& t, std::span<float> out);

}  // namespace sluice::safetensors
