// Builds GGUF files in memory for the reader's tests: a little-endian byte writer and a builder that lays out
// a well-formed file (header, metadata, tensor infos, padding, data), with hooks that let a test break any
// one field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::gguf::testing {

class Bytes {
 public:
  template <class T>
  Bytes& put(T v) {
    const std::size_t at = data_.size();
    data_.resize(at + sizeof(T));
    std::memcpy(data_.data() + at, &v, sizeof(T));
    return *this;
  }
  Bytes& u8(std::uint8_t v) { return put(v); }
  Bytes& u16(std::uint16_t v) { return put(v); }
  Bytes& u32(std::uint32_t v) { return put(v); }
  Bytes& u64(std::uint64_t v) { return put(v); }
  Bytes& i32(std::int32_t v) { return put(v); }
  Bytes& f32(float v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    return raw(s);
  }
  Bytes& raw(std::string_view s) {
    for (char c : s) data_.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes& raw(const std::vector<std::byte>& b) {
    data_.insert(data_.end(), b.begin(), b.end());
    return *this;
  }
  Bytes& zeros(std::size_t n) {
    data_.resize(data_.size() + n);
    return *this;
  }
  Bytes& pad_to(std::uint64_t alignment) {
    while (data_.size() % alignment != 0) data_.push_back(std::byte{0});
    return *this;
  }
  std::size_t size() const { return data_.size(); }
  const std::vector<std::byte>& data() const { return data_; }
  std::vector<std::byte> take() { return std::move(data_); }

 private:
  std::vector<std::byte> data_;
};

// GGUF value type numbers, spelled out so the tests do not depend on the reader's enum.
namespace vt {
constexpr std::uint32_t u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
                        array = 9, u64 = 10, i64 = 11, f64 = 12;
}

struct TensorSpec {
  TensorSpec(std::string name_in, std::vector<std::uint64_t> dims_in, std::uint32_t type_in,
             std::vector<std::byte> payload_in)
      : name(std::move(name_in)), dims(std::move(dims_in)), type(type_in), payload(std::move(payload_in)) {}

  std::string name;
  std::vector<std::uint64_t> dims;
  std::uint32_t type = 0;
  std::vector<std::byte> payload;       // the tensor's bytes in the data section
  std::optional<std::uint64_t> offset;  // overrides the laid-out data offset
  std::optional<std::uint32_t> n_dims;  // overrides the written dimension count
};

class GgufBuilder {
 public:
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;  // the padding used; write general.alignment yourself to change the file's
  std::optional<std::uint64_t> tensor_count;  // overrides the header's counts
  std::optional<std::uint64_t> kv_count;
  bool pad_data = true;  // false: the file ends right after the tensor infos' data, without padding

  // One key/value pair; `value` is the encoded value after the type field.
  GgufBuilder& kv(std::string_view key, std::uint32_t type, const Bytes& value) {
    kvs_.str(key).u32(type).raw(value.data());
    ++n_kv_;
    return *this;
  }
  GgufBuilder& kv_u32(std::string_view key, std::uint32_t v) { return kv(key, vt::u32, Bytes().u32(v)); }
  GgufBuilder& kv_f32(std::string_view key, float v) { return kv(key, vt::f32, Bytes().f32(v)); }
  GgufBuilder& kv_bool(std::string_view key, bool v) { return kv(key, vt::boolean, Bytes().u8(v ? 1 : 0)); }
  GgufBuilder& kv_str(std::string_view key, std::string_view v) {
    return kv(key, vt::string, Bytes().str(v));
  }
  GgufBuilder& kv_str_array(std::string_view key, const std::vector<std::string>& v) {
    Bytes b;
    b.u32(vt::string).u64(v.size());
    for (const auto& s : v) b.str(s);
    return kv(key, vt::array, b);
  }
  GgufBuilder& kv_raw(const Bytes& encoded_pair) {
    kvs_.raw(encoded_pair.data());
    ++n_kv_;
    return *this;
  }

  GgufBuilder& tensor(TensorSpec t) {
    tensors_.push_back(std::move(t));
    return *this;
  }

  std::vector<std::byte> build() const {
    Bytes out;
    out.raw("GGUF").u32(version);
    out.u64(tensor_count.value_or(tensors_.size()));
    out.u64(kv_count.value_or(n_kv_));
    out.raw(kvs_.data());
    std::uint64_t next = 0;
    std::vector<std::uint64_t> offsets;
    for (const auto& t : tensors_) {
      const std::uint64_t laid = next;
      next = (laid + t.payload.size() + alignment - 1) / alignment * alignment;
      offsets.push_back(t.offset.value_or(laid));
      out.str(t.name).u32(t.n_dims.value_or(static_cast<std::uint32_t>(t.dims.size())));
      for (auto d : t.dims) out.u64(d);
      out.u32(t.type).u64(offsets.back());
    }
    if (!pad_data) return out.take();
    out.pad_to(alignment);
    std::vector<std::byte> bytes = out.take();
    const std::size_t data_start = bytes.size();
    bytes.resize(data_start + static_cast<std::size_t>(next));  // padding after each tensor, as writers do
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      if (offsets[i] > (std::uint64_t{1} << 30)) continue;  // a deliberately wild offset: no data written
      const std::size_t at = data_start + static_cast<std::size_t>(offsets[i]);
      const auto& p = tensors_[i].payload;
      if (bytes.size() < at + p.size()) bytes.resize(at + p.size());
      if (!p.empty()) std::memcpy(bytes.data() + at, p.data(), p.size());
    }
    return bytes;
  }

 private:
  Bytes kvs_;
  std::uint64_t n_kv_ = 0;
  std::vector<TensorSpec> tensors_;
};

inline std::vector<std::byte> f32_payload(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace sluice::gguf::testing
