#include "engine/model/gguf_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace sluice::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr std::uint64_t kHeaderBytes = 24;  // magic, version, tensor count, metadata count
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint64_t kMaxKeyBytes = 65535;  // GGUF: keys are at most 2^16 - 1 bytes
constexpr std::uint64_t kMaxTensorNameBytes = 64;
constexpr std::uint32_t kMaxDims = 4;
constexpr std::uint64_t kMaxElements = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
// Smallest encodings, used to bound counts by the bytes left before anything is allocated.
constexpr std::uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;            // key length, 1-byte key, type, u8
constexpr std::uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name, n_dims, one dim, type, offset

constexpr std::string_view kValueTypeNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                "int32",  "float32", "bool",   "string", "array",
                                                "uint64", "int64",   "float64"};
constexpr std::uint32_t kValueTypeCount = 13;

std::uint64_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::uint8:
    case ValueType::int8:
    case ValueType::bool_:
      return 1;
    case ValueType::uint16:
    case ValueType::int16:
      return 2;
    case ValueType::uint32:
    case ValueType::int32:
    case ValueType::float32:
      return 4;
    case ValueType::uint64:
    case ValueType::int64:
    case ValueType::float64:
      return 8;
    default:
      return 0;  // string, array: variable length
  }
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else
      return false;
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    i += len;
  }
  return true;
}

bool has_control_char(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7F;
  });
}

// A validated name, shortened for messages at a character boundary.
std::string quoted(std::string_view name) {
  constexpr std::size_t kMax = 96;
  if (name.size() <= kMax) return fmt::format("'{}'", name);
  std::size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("'{}...'", name.substr(0, cut));
}

}  // namespace

std::string_view value_type_name(ValueType type) {
  const auto i = static_cast<std::uint32_t>(type);
  return i < kValueTypeCount ? kValueTypeNames[i] : std::string_view("unknown");
}

std::size_t Array::size() const {
  return std::visit([](const auto& v) { return v.size(); }, items);
}

std::optional<std::uint64_t> Value::as_u64() const {
  return std::visit(
      [](const auto& v) -> std::optional<std::uint64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_signed_v<T>) {
            if (v < 0) return std::nullopt;
          }
          return static_cast<std::uint64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      data);
}

std::optional<std::int64_t> Value::as_i64() const {
  return std::visit(
      [](const auto& v) -> std::optional<std::int64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_unsigned_v<T>) {
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
          }
          return static_cast<std::int64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      data);
}

std::optional<double> Value::as_f64() const {
  if (const auto* f = std::get_if<float>(&data)) return static_cast<double>(*f);
  if (const auto* d = std::get_if<double>(&data)) return *d;
  return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
  if (const auto* b = std::get_if<bool>(&data)) return *b;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------------------
// Storage: either a private read-only map of the file or a buffer handed in by the caller.

struct GgufFile::Storage {
  std::vector<std::byte> buffer;
  void* map = nullptr;
  std::size_t map_size = 0;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (map != nullptr) ::munmap(map, map_size);
  }
  std::span<const std::byte> bytes() const {
    if (map != nullptr) return {static_cast<const std::byte*>(map), map_size};
    return {buffer.data(), buffer.size()};
  }
};

// ---------------------------------------------------------------------------------------------------------
// Parser: a cursor over the file bytes. Every read checks the bytes left first; the first failure is kept
// in error_ and the read returns false, which unwinds the parse.

class GgufFile::Parser {
 public:
  Parser(std::span<const std::byte> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  std::optional<GgufError> run(GgufFile& f) {
    if (!read_header(f) || !read_metadata(f) || !read_alignment(f) || !read_tensor_infos(f) ||
        !place_tensors(f)) {
      return std::move(error_);
    }
    return std::nullopt;
  }

 private:
  bool fail(std::uint64_t at, std::string what) {
    error_ = GgufError{fmt::format("{}: byte {}: {}", name_, at, what)};
    return false;
  }
  std::uint64_t size() const { return bytes_.size(); }
  std::uint64_t remaining() const { return size() - pos_; }

  bool need(std::uint64_t n, std::string_view what) {
    if (n <= remaining()) return true;
    return fail(
        pos_, fmt::format("{} needs {} bytes but the file ends after {} (truncated?)", what, n, remaining()));
  }

  template <class T>
  bool read_raw(T& v, std::string_view what) {
    if (!need(sizeof(T), what)) return false;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  // `element` names an array element in messages; the text is built only when the read fails, since
  // vocabularies hold tens of thousands of strings.
  bool read_string(std::string& out, std::string_view what, std::optional<std::uint64_t> element = {}) {
    const auto describe = [&] {
      return element ? fmt::format("{} element {}", what, *element) : std::string(what);
    };
    std::uint64_t len = 0;
    const std::uint64_t at = pos_;
    if (remaining() < sizeof len) return need(sizeof len, describe());
    std::memcpy(&len, bytes_.data() + pos_, sizeof len);
    pos_ += sizeof len;
    if (len > remaining()) {
      return fail(at, fmt::format("{} claims {} bytes but only {} remain", describe(), len, remaining()));
    }
    out.assign(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(len));
    pos_ += len;
    return true;
  }

  // Keys and tensor names: non-empty, bounded, UTF-8 without control characters.
  bool read_name(std::string& out, std::string_view what, std::uint64_t max_len) {
    const std::uint64_t at = pos_;
    if (!read_string(out, what)) return false;
    if (out.empty()) return fail(at, fmt::format("{} is empty", what));
    if (out.size() > max_len) {
      return fail(at, fmt::format("{} is {} bytes long (at most {} allowed)", what, out.size(), max_len));
    }
    if (!valid_utf8(out)) return fail(at, fmt::format("{} is not valid UTF-8", what));
    if (has_control_char(out)) return fail(at, fmt::format("{} contains a control character", what));
    return true;
  }

  bool read_header(GgufFile& f) {
    if (size() < kHeaderBytes) {
      return fail(
          0, fmt::format("file is {} bytes, too small for a GGUF header ({} bytes)", size(), kHeaderBytes));
    }
    const auto* b = reinterpret_cast<const unsigned char*>(bytes_.data());
    if (b[0] != 'G' || b[1] != 'G' || b[2] != 'U' || b[3] != 'F') {
      return fail(0, fmt::format("not a GGUF file: magic is {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\"",
                                 b[0], b[1], b[2], b[3]));
    }
    pos_ = 4;
    std::uint32_t version = 0;
    if (!read_raw(version, "version")) return false;
    const std::uint32_t swapped = __builtin_bswap32(version);
    if (version == 1) {
      return fail(4,
                  "GGUF version 1 is not supported (it used 32-bit counts); convert the model again "
                  "with a current llama.cpp");
    }
    if (swapped >= 1 && swapped <= 3) {
      return fail(4, fmt::format("big-endian GGUF (version reads as {}); only little-endian files are "
                                 "supported",
                                 version));
    }
    if (version != 2 && version != 3) {
      return fail(4, fmt::format("unsupported GGUF version {} (supported: 2 and 3)", version));
    }
    f.version_ = version;
    if (!read_raw(n_tensors_, "tensor count") || !read_raw(n_kv_, "metadata count")) return false;
    // Each entry needs a minimum number of bytes, so counts beyond what the rest could hold are corrupt;
    // rejecting them here keeps every later reserve() proportional to the file size.
    if (n_kv_ > remaining() / kMinKeyValueBytes) {
      return fail(
          16, fmt::format("metadata count {} cannot fit in the {} bytes that follow", n_kv_, remaining()));
    }
    if (n_tensors_ > (remaining() - n_kv_ * kMinKeyValueBytes) / kMinTensorInfoBytes) {
      return fail(
          8, fmt::format("tensor count {} cannot fit in the {} bytes that follow", n_tensors_, remaining()));
    }
    return true;
  }

  bool read_metadata(GgufFile& f) {
    f.metadata_.reserve(static_cast<std::size_t>(n_kv_));
    for (std::uint64_t i = 0; i < n_kv_; ++i) {
      KeyValue kv;
      kv.file_offset = pos_;
      if (!read_name(kv.key, fmt::format("metadata key #{}", i), kMaxKeyBytes)) return false;
      const std::string label = fmt::format("metadata key {}", quoted(kv.key));
      if (f.key_index_.count(kv.key) != 0) return fail(kv.file_offset, fmt::format("duplicate {}", label));
      std::uint32_t type = 0;
      const std::uint64_t type_at = pos_;
      if (!read_raw(type, label + " type")) return false;
      if (type >= kValueTypeCount) {
        return fail(type_at, fmt::format("{} has unknown value type {}", label, type));
      }
      if (!read_value(static_cast<ValueType>(type), kv.value, label)) return false;
      f.key_index_.emplace(kv.key, f.metadata_.size());
      f.metadata_.push_back(std::move(kv));
    }
    return true;
  }

  template <class T>
  bool read_scalar(Value& out, std::string_view label) {
    T v{};
    if (!read_raw(v, label)) return false;
    out.data = v;
    return true;
  }

  bool read_value(ValueType type, Value& out, const std::string& label) {
    switch (type) {
      case ValueType::uint8:
        return read_scalar<std::uint8_t>(out, label);
      case ValueType::int8:
        return read_scalar<std::int8_t>(out, label);
      case ValueType::uint16:
        return read_scalar<std::uint16_t>(out, label);
      case ValueType::int16:
        return read_scalar<std::int16_t>(out, label);
      case ValueType::uint32:
        return read_scalar<std::uint32_t>(out, label);
      case ValueType::int32:
        return read_scalar<std::int32_t>(out, label);
      case ValueType::float32:
        return read_scalar<float>(out, label);
      case ValueType::uint64:
        return read_scalar<std::uint64_t>(out, label);
      case ValueType::int64:
        return read_scalar<std::int64_t>(out, label);
      case ValueType::float64:
        return read_scalar<double>(out, label);
      case ValueType::bool_: {
        const std::uint64_t at = pos_;
        std::uint8_t b = 0;
        if (!read_raw(b, label)) return false;
        if (b > 1) return fail(at, fmt::format("{} is a bool holding {} (must be 0 or 1)", label, b));
        out.data = b == 1;
        return true;
      }
      case ValueType::string: {
        std::string s;
        if (!read_string(s, label)) return false;
        out.data = std::move(s);
        return true;
      }
      case ValueType::array: {
        Array a;
        if (!read_array(a, label)) return false;
        out.data = std::move(a);
        return true;
      }
    }
    return fail(pos_, fmt::format("{} has unknown value type {}", label, static_cast<std::uint32_t>(type)));
  }

  template <class T>
  bool fill_vector(Array& a, std::uint64_t n) {
    std::vector<T> v(static_cast<std::size_t>(n));
    if (n != 0) std::memcpy(v.data(), bytes_.data() + pos_, static_cast<std::size_t>(n) * sizeof(T));
    pos_ += n * sizeof(T);
    a.items = std::move(v);
    return true;
  }

  bool read_array(Array& a, const std::string& label) {
    const std::uint64_t type_at = pos_;
    std::uint32_t elem = 0;
    if (!read_raw(elem, label + " element type")) return false;
    if (elem == static_cast<std::uint32_t>(ValueType::array)) {
      return fail(type_at, fmt::format("{} is an array of arrays, which is not supported", label));
    }
    if (elem >= kValueTypeCount) {
      return fail(type_at, fmt::format("{} has unknown array element type {}", label, elem));
    }
    const auto et = static_cast<ValueType>(elem);
    a.element_type = et;
    const std::uint64_t count_at = pos_;
    std::uint64_t n = 0;
    if (!read_raw(n, label + " array length")) return false;
    const std::uint64_t min_elem = et == ValueType::string ? 8 : scalar_size(et);
    if (n > remaining() / min_elem) {
      return fail(count_at, fmt::format("{} claims {} {} elements but only {} bytes remain", label, n,
                                        value_type_name(et), remaining()));
    }
    switch (et) {
      case ValueType::uint8:
        return fill_vector<std::uint8_t>(a, n);
      case ValueType::int8:
        return fill_vector<std::int8_t>(a, n);
      case ValueType::uint16:
        return fill_vector<std::uint16_t>(a, n);
      case ValueType::int16:
        return fill_vector<std::int16_t>(a, n);
      case ValueType::uint32:
        return fill_vector<std::uint32_t>(a, n);
      case ValueType::int32:
        return fill_vector<std::int32_t>(a, n);
      case ValueType::float32:
        return fill_vector<float>(a, n);
      case ValueType::uint64:
        return fill_vector<std::uint64_t>(a, n);
      case ValueType::int64:
        return fill_vector<std::int64_t>(a, n);
      case ValueType::float64:
        return fill_vector<double>(a, n);
      case ValueType::bool_: {
        const std::uint64_t at = pos_;
        fill_vector<std::uint8_t>(a, n);
        const auto& v = std::get<std::vector<std::uint8_t>>(a.items);
        const auto bad = std::find_if(v.begin(), v.end(), [](std::uint8_t b) { return b > 1; });
        if (bad != v.end()) {
          const auto idx = static_cast<std::uint64_t>(bad - v.begin());
          return fail(at + idx,
                      fmt::format("{} element {} is a bool holding {} (must be 0 or 1)", label, idx, *bad));
        }
        return true;
      }
      case ValueType::string: {
        std::vector<std::string> v;
        v.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t i = 0; i < n; ++i) {
          std::string s;
          if (!read_string(s, label, i)) return false;
          v.push_back(std::move(s));
        }
        a.items = std::move(v);
        return true;
      }
      case ValueType::array:
        break;
    }
    return fail(type_at, fmt::format("{} has unknown array element type {}", label, elem));
  }

  bool read_alignment(GgufFile& f) {
    f.alignment_ = kDefaultAlignment;
    const auto it = f.key_index_.find(std::string_view("general.alignment"));
    if (it == f.key_index_.end()) return true;
    const KeyValue& kv = f.metadata_[it->second];
    const auto* a = std::get_if<std::uint32_t>(&kv.value.data);
    if (a == nullptr) {
      return fail(kv.file_offset, fmt::format("general.alignment has type {} (must be uint32)",
                                              value_type_name(kv.value.type())));
    }
    if (*a == 0 || !std::has_single_bit(*a)) {
      return fail(kv.file_offset, fmt::format("general.alignment is {} (must be a power of two)", *a));
    }
    f.alignment_ = *a;
    return true;
  }

  bool read_tensor_infos(GgufFile& f) {
    f.tensors_.reserve(static_cast<std::size_t>(n_tensors_));
    info_offsets_.reserve(static_cast<std::size_t>(n_tensors_));
    for (std::uint64_t i = 0; i < n_tensors_; ++i) {
      TensorInfo t;
      const std::uint64_t at = pos_;
      if (!read_name(t.name, fmt::format("tensor #{} name", i), kMaxTensorNameBytes)) return false;
      const std::string label = fmt::format("tensor {}", quoted(t.name));
      if (f.tensor_index_.count(t.name) != 0) return fail(at, fmt::format("duplicate {}", label));

      std::uint32_t n_dims = 0;
      const std::uint64_t dims_at = pos_;
      if (!read_raw(n_dims, label + " dimension count")) return false;
      if (n_dims < 1 || n_dims > kMaxDims) {
        return fail(dims_at, fmt::format("{} has {} dimensions (1 to {} allowed)", label, n_dims, kMaxDims));
      }
      t.dims.resize(n_dims);
      std::uint64_t elements = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const std::uint64_t dim_at = pos_;
        if (!read_raw(t.dims[d], label + " dimension")) return false;
        if (t.dims[d] == 0) return fail(dim_at, fmt::format("{} dimension {} is 0", label, d));
        if (__builtin_mul_overflow(elements, t.dims[d], &elements) || elements > kMaxElements) {
          return fail(dim_at,
                      fmt::format("{} element count overflows (dimension {} is {})", label, d, t.dims[d]));
        }
      }
      t.n_elements = elements;

      std::uint32_t type_id = 0;
      const std::uint64_t type_at = pos_;
      if (!read_raw(type_id, label + " type")) return false;
      const TensorTypeTraits* traits = find_tensor_type(type_id);
      if (traits == nullptr)
        return fail(type_at, fmt::format("{} has unknown tensor type {}", label, type_id));
      t.type = traits->type;
      if (t.dims[0] % traits->block_size != 0) {
        return fail(dims_at, fmt::format("{} first dimension {} is not a multiple of the {} block size {}",
                                         label, t.dims[0], traits->name, traits->block_size));
      }
      if (__builtin_mul_overflow(t.n_elements / traits->block_size, std::uint64_t{traits->block_bytes},
                                 &t.n_bytes)) {
        return fail(dims_at, fmt::format("{} byte size overflows", label));
      }

      const std::uint64_t offset_at = pos_;
      if (!read_raw(t.offset, label + " offset")) return false;
      if (t.offset % f.alignment_ != 0) {
        return fail(offset_at, fmt::format("{} offset {} is not a multiple of the alignment {}", label,
                                           t.offset, f.alignment_));
      }
      f.tensor_index_.emplace(t.name, f.tensors_.size());
      f.tensors_.push_back(std::move(t));
      info_offsets_.push_back(at);
    }
    return true;
  }

  // Binds each tensor to its bytes once the data section's start is known (after the infos, padded).
  bool place_tensors(GgufFile& f) {
    const std::uint64_t pad = (f.alignment_ - pos_ % f.alignment_) % f.alignment_;
    f.data_offset_ = pos_ + pad;  // pos_ <= size() and alignment < 2^32: no wrap
    if (f.tensors_.empty()) return true;
    if (f.data_offset_ > size()) {
      return fail(pos_, fmt::format("the data section would start at byte {}, past the end of the file "
                                    "({} bytes)",
                                    f.data_offset_, size()));
    }
    const std::uint64_t data_size = size() - f.data_offset_;
    for (std::size_t i = 0; i < f.tensors_.size(); ++i) {
      TensorInfo& t = f.tensors_[i];
      if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
        return fail(info_offsets_[i],
                    fmt::format("tensor {} ({}, {} bytes at data offset {}) extends past the end of the "
                                "file (the data section holds {} bytes; truncated?)",
                                quoted(t.name), tensor_type_name(t.type), t.n_bytes, t.offset, data_size));
      }
      t.data = bytes_.data() + f.data_offset_ + t.offset;
    }
    std::vector<std::size_t> order(f.tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& prev = f.tensors_[order[k - 1]];
      const TensorInfo& cur = f.tensors_[order[k]];
      if (prev.offset + prev.n_bytes > cur.offset) {
        return fail(info_offsets_[order[k]],
                    fmt::format("tensor {} overlaps tensor {}", quoted(cur.name), quoted(prev.name)));
      }
    }
    return true;
  }

  std::span<const std::byte> bytes_;
  const std::string& name_;
  std::uint64_t pos_ = 0;
  std::uint64_t n_tensors_ = 0;
  std::uint64_t n_kv_ = 0;
  std::vector<std::uint64_t> info_offsets_;
  std::optional<GgufError> error_;
};

// ---------------------------------------------------------------------------------------------------------

GgufFile::GgufFile() = default;
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

std::span<const std::byte> GgufFile::bytes() const {
  return storage_ ? storage_->bytes() : std::span<const std::byte>{};
}

Result<GgufFile, GgufError> GgufFile::parse(std::unique_ptr<Storage> storage, std::string name) {
  try {
    GgufFile f;
    f.path_ = name;
    f.storage_ = std::move(storage);
    Parser parser(f.storage_->bytes(), f.path_);
    if (auto err = parser.run(f)) return fail(std::move(*err));
    return f;
  } catch (const std::bad_alloc&) {
    return fail(GgufError{fmt::format("{}: out of memory while reading the metadata", name)});
  } catch (const std::exception& e) {
    return fail(GgufError{fmt::format("{}: cannot read: {}", name, e.what())});
  }
}

Result<GgufFile, GgufError> GgufFile::open(const std::string& path) {
  const auto sys_error = [&](std::string_view what) {
    return GgufError{fmt::format("{}: {}: {}", path, what, std::system_category().message(errno))};
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(sys_error("cannot open"));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    GgufError e = sys_error("cannot stat");
    ::close(fd);
    return fail(std::move(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(GgufError{fmt::format("{}: not a regular file", path)});
  }
  std::unique_ptr<Storage> storage;
  try {
    storage = std::make_unique<Storage>();
  } catch (const std::bad_alloc&) {
    ::close(fd);
    return fail(GgufError{fmt::format("{}: out of memory", path)});
  }
  if (st.st_size > 0) {
    const auto size = static_cast<std::size_t>(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      GgufError e = sys_error("cannot map");
      ::close(fd);
      return fail(std::move(e));
    }
    storage->map = map;
    storage->map_size = size;
  }
  ::close(fd);  // the mapping keeps the file referenced
  return parse(std::move(storage), path);
}

Result<GgufFile, GgufError> GgufFile::from_buffer(std::vector<std::byte> bytes, std::string name) {
  std::unique_ptr<Storage> storage;
  try {
    storage = std::make_unique<Storage>();
  } catch (const std::bad_alloc&) {
    return fail(GgufError{fmt::format("{}: out of memory", name)});
  }
  storage->buffer = std::move(bytes);
  return parse(std::move(storage), std::move(name));
}

const Value* GgufFile::find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* GgufFile::tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

GgufError GgufFile::key_error(std::string_view key, std::string_view what) const {
  const auto it = key_index_.find(key);
  if (it == key_index_.end()) return GgufError{fmt::format("{}: metadata key '{}' {}", path_, key, what)};
  const KeyValue& kv = metadata_[it->second];
  return GgufError{fmt::format("{}: byte {}: metadata key '{}' {}", path_, kv.file_offset, key, what)};
}

Result<const Value*, GgufError> GgufFile::require(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return fail(key_error(key, "is missing"));
  return v;
}

namespace {
std::string type_mismatch(const Value& v, std::string_view expected) {
  std::string actual(value_type_name(v.type()));
  if (const Array* a = v.as_array()) actual = fmt::format("array of {}", value_type_name(a->element_type));
  return fmt::format("has type {}, expected {}", actual, expected);
}
}  // namespace

Result<std::uint64_t, GgufError> GgufFile::get_u64(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  if (auto u = (*v)->as_u64()) return *u;
  if ((*v)->as_i64()) return fail(key_error(key, "is negative, expected an unsigned integer"));
  return fail(key_error(key, type_mismatch(**v, "an unsigned integer")));
}

Result<std::uint32_t, GgufError> GgufFile::get_u32(std::string_view key) const {
  auto u = get_u64(key);
  if (!u) return fail(std::move(u.error()));
  if (*u > std::numeric_limits<std::uint32_t>::max()) {
    return fail(key_error(key, fmt::format("is {}, which does not fit in 32 bits", *u)));
  }
  return static_cast<std::uint32_t>(*u);
}

Result<std::int64_t, GgufError> GgufFile::get_i64(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  if (auto i = (*v)->as_i64()) return *i;
  if ((*v)->as_u64()) return fail(key_error(key, "does not fit in a signed 64-bit integer"));
  return fail(key_error(key, type_mismatch(**v, "an integer")));
}

Result<float, GgufError> GgufFile::get_f32(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  if (auto d = (*v)->as_f64()) return static_cast<float>(*d);
  return fail(key_error(key, type_mismatch(**v, "float32 or float64")));
}

Result<bool, GgufError> GgufFile::get_bool(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  if (auto b = (*v)->as_bool()) return *b;
  return fail(key_error(key, type_mismatch(**v, "bool")));
}

Result<std::string_view, GgufError> GgufFile::get_string(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  if (const std::string* s = (*v)->as_string()) return std::string_view(*s);
  return fail(key_error(key, type_mismatch(**v, "string")));
}

Result<std::span<const std::string>, GgufError> GgufFile::get_string_array(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  const Array* a = (*v)->as_array();
  if (a != nullptr && a->element_type == ValueType::string) {
    return std::span<const std::string>(*a->as<std::string>());
  }
  return fail(key_error(key, type_mismatch(**v, "array of string")));
}

Result<std::span<const float>, GgufError> GgufFile::get_f32_array(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  const Array* a = (*v)->as_array();
  if (a != nullptr && a->element_type == ValueType::float32) return std::span<const float>(*a->as<float>());
  return fail(key_error(key, type_mismatch(**v, "array of float32")));
}

Result<std::span<const std::int32_t>, GgufError> GgufFile::get_i32_array(std::string_view key) const {
  auto v = require(key);
  if (!v) return fail(std::move(v.error()));
  const Array* a = (*v)->as_array();
  if (a != nullptr && a->element_type == ValueType::int32) {
    return std::span<const std::int32_t>(*a->as<std::int32_t>());
  }
  return fail(key_error(key, type_mismatch(**v, "array of int32")));
}

Status<GgufError> dequantize_row(const TensorInfo& t, std::uint64_t first, std::uint64_t n, float* out) {
  const auto err = [&](std::string_view what) {
    return fail(GgufError{fmt::format("tensor {}: {}", quoted(t.name), what)});
  };
  const TensorTypeTraits* traits = find_tensor_type(static_cast<std::uint32_t>(t.type));
  if (traits == nullptr) return err("has an unknown tensor type");
  if (!traits->dequantizable) {
    return err(fmt::format("has type {}, which this engine cannot convert to float", traits->name));
  }
  if (first > t.n_elements || n > t.n_elements - first) {
    return err(fmt::format("elements [{}, +{}) are outside its {} elements", first, n, t.n_elements));
  }
  if (first % traits->block_size != 0 || n % traits->block_size != 0) {
    return err(fmt::format("elements [{}, +{}) do not start and end on {}-element {} blocks", first, n,
                           traits->block_size, traits->name));
  }
  if (t.n_elements % traits->block_size != 0 ||
      t.n_bytes != t.n_elements / traits->block_size * traits->block_bytes) {
    return err("byte size does not match its element count");
  }
  if (n == 0) return Ok{};
  if (t.data == nullptr || out == nullptr) return err("has no data to convert");
  const std::uint64_t src_offset = first / traits->block_size * traits->block_bytes;
  const std::uint64_t src_bytes = n / traits->block_size * traits->block_bytes;
  if (!dequantize(t.type, {t.data + src_offset, static_cast<std::size_t>(src_bytes)},
                  {out, static_cast<std::size_t>(n)})) {
    return err("conversion failed");
  }
  return Ok{};
}

}  // namespace sluice::gguf
