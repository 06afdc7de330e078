// Reader for GGUF model files (versions 2 and 3, little-endian): metadata key/values, tensor infos, and a
// view of each tensor's bytes inside a read-only private memory map.
//
// Every size, count, offset and string in the file is treated as hostile: open() checks each against the
// bytes that remain before reading or allocating, so a truncated, corrupt or crafted file yields a GgufError
// naming the file, the problem and its byte offset, never an out-of-bounds read, an exception or an
// allocation larger than a small multiple of the file size. After open() succeeds every TensorInfo's bytes
// lie inside the file, are aligned to general.alignment (relative to the data section) and do not overlap.
//
// A GgufFile is immutable once opened; any number of threads may read it concurrently. The file must not be
// truncated by another process while it is mapped (the kernel would fault the reader).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/model/tensor_types.h"
#include "engine/util/result.h"

namespace sluice::gguf {

// The metadata value types of GGUF v3, with the file's numbering.
enum class ValueType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  bool_ = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

std::string_view value_type_name(ValueType type);

// A metadata array. Arrays of arrays are rejected by the reader, so elements are scalars or strings.
struct Array {
  ValueType element_type = ValueType::uint8;
  // Bool elements are stored in the uint8_t vector as 0 or 1; element_type tells them apart.
  std::variant<std::vector<std::uint8_t>, std::vector<std::int8_t>, std::vector<std::uint16_t>,
               std::vector<std::int16_t>, std::vector<std::uint32_t>, std::vector<std::int32_t>,
               std::vector<float>, std::vector<std::uint64_t>, std::vector<std::int64_t>, std::vector<double>,
               std::vector<std::string>>
      items;

  std::size_t size() const;
  template <class T>
  const std::vector<T>* as() const {
    return std::get_if<std::vector<T>>(&items);
  }
};

struct Value {
  // The alternative's index equals the ValueType number.
  using Storage =
      std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t, float,
                   bool, std::string, Array, std::uint64_t, std::int64_t, double>;
  Storage data;

  ValueType type() const { return static_cast<ValueType>(data.index()); }
  // Any integer type whose value is representable in the result; nullopt otherwise.
  std::optional<std::uint64_t> as_u64() const;
  std::optional<std::int64_t> as_i64() const;
  // float32 or float64.
  std::optional<double> as_f64() const;
  std::optional<bool> as_bool() const;
  const std::string* as_string() const { return std::get_if<std::string>(&data); }
  const Array* as_array() const { return std::get_if<Array>(&data); }
};

struct KeyValue {
  std::string key;
  Value value;
  std::uint64_t file_offset = 0;  // where the key starts in the file, for error messages
};

struct TensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims;  // dims[0] varies fastest (one row has dims[0] elements); 1..4 dims
  TensorType type = TensorType::F32;
  std::uint64_t offset = 0;         // relative to the data section
  std::uint64_t n_elements = 0;     // product of dims
  std::uint64_t n_bytes = 0;        // n_elements / block_size * block_bytes
  const std::byte* data = nullptr;  // into the owning GgufFile's bytes; valid while that file lives

  std::uint64_t row_length() const { return dims.empty() ? 0 : dims[0]; }
  std::uint64_t n_rows() const { return dims.empty() || dims[0] == 0 ? 0 : n_elements / dims[0]; }
};

struct GgufError {
  std::string message;  // "<file>: byte <offset>: <what was wrong>" (offset omitted where none applies)
};

class GgufFile {
 public:
  // Maps `path` (MAP_PRIVATE, PROT_READ) and validates all of it.
  static Result<GgufFile, GgufError> open(const std::string& path);
  // Same checks over bytes held in memory; `name` stands for the file in messages.
  static Result<GgufFile, GgufError> from_buffer(std::vector<std::byte> bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  const std::string& path() const { return path_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  std::uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  std::span<const std::byte> bytes() const;                   // the whole file

  // Metadata in file order.
  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. They fail (naming the file and key) when the key is missing, has another type, or its
  // value does not fit; integer getters accept any integer type whose value fits, get_f32 accepts
  // float32 and float64. Views stay valid while this file lives.
  Result<std::uint64_t, GgufError> get_u64(std::string_view key) const;
  Result<std::uint32_t, GgufError> get_u32(std::string_view key) const;
  Result<std::int64_t, GgufError> get_i64(std::string_view key) const;
  Result<float, GgufError> get_f32(std::string_view key) const;
  Result<bool, GgufError> get_bool(std::string_view key) const;
  Result<std::string_view, GgufError> get_string(std::string_view key) const;
  Result<std::span<const std::string>, GgufError> get_string_array(std::string_view key) const;
  Result<std::span<const float>, GgufError> get_f32_array(std::string_view key) const;
  Result<std::span<const std::int32_t>, GgufError> get_i32_array(std::string_view key) const;

  const TensorInfo* tensor(std::string_view name) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

 private:
  struct Storage;
  class Parser;

  GgufFile();
  static Result<GgufFile, GgufError> parse(std::unique_ptr<Storage> storage, std::string name);
  GgufError key_error(std::string_view key, std::string_view what) const;
  Result<const Value*, GgufError> require(std::string_view key) const;

  std::unique_ptr<Storage> storage_;  // heap-held so TensorInfo::data survives moves of the GgufFile
  std::string path_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::map<std::string, std::size_t, std::less<>> key_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

// Converts `n` consecutive elements of `t`, starting at flat element index `first`, into out[0..n).
// For quantized types `first` and `n` must be multiples of the block size. Fails (writing nothing) when the
// range is outside the tensor, misaligned, or the type is not one the engine converts. `t` must come from a
// GgufFile that is still alive.
Status<GgufError> dequantize_row(const TensorInfo& t, std::uint64_t first, std::uint64_t n, float* out);

}  // namespace sluice::gguf
