#include "engine/model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <system_error>
#include <utility>

#include "engine/model/tensor_types.h"
#include "engine/util/json_lite.h"

namespace sluice::safetensors {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;  // the format's own limit
constexpr std::size_t kMaxDims = 8;
constexpr std::uintmax_t kMaxIndexBytes = std::uintmax_t{64} << 20;

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  std::size_t bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::F64, "F64", 8}, {Dtype::F32, "F32", 4},   {Dtype::F16, "F16", 2},         {Dtype::BF16, "BF16", 2},
    {Dtype::I64, "I64", 8}, {Dtype::I32, "I32", 4},   {Dtype::I16, "I16", 2},         {Dtype::I8, "I8", 1},
    {Dtype::U8, "U8", 1},   {Dtype::BOOL, "BOOL", 1}, {Dtype::F8_E4M3, "F8_E4M3", 1}, {Dtype::F8_E5M2, "F8_E5M2", 1},
};

SafetensorsError err(const std::string& file, std::string_view what) {
  return SafetensorsError{fmt::format("{}: {}", file, what)};
}

}  // namespace

std::string_view dtype_name(Dtype d) {
  for (const auto& i : kDtypes) {
    if (i.dtype == d) return i.name;
  }
  return "unknown";
}

std::size_t dtype_bytes(Dtype d) {
  for (const auto& i : kDtypes) {
    if (i.dtype == d) return i.bytes;
  }
  return 0;
}

// Either a read-only mapping of a file or bytes held in memory.
struct SafetensorsFile::Storage {
  void* map = nullptr;
  std::size_t map_size = 0;
  std::vector<std::byte> buffer;

  std::span<const std::byte> bytes() const {
    if (map != nullptr) return {static_cast<const std::byte*>(map), map_size};
    return {buffer.data(), buffer.size()};
  }
  ~Storage() {
    if (map != nullptr) munmap(map, map_size);
  }
};

SafetensorsFile::SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

Result<SafetensorsFile, SafetensorsError> SafetensorsFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err(path, std::system_category().message(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(err(path, "not a regular file"));
  }
  auto storage = std::make_unique<Storage>();
  if (st.st_size > 0) {
    void* m = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return fail(err(path, fmt::format("mmap failed: {}", std::system_category().message(e))));
    }
    storage->map = m;
    storage->map_size = static_cast<std::size_t>(st.st_size);
  }
  ::close(fd);
  return parse(std::move(storage), path);
}

Result<SafetensorsFile, SafetensorsError> SafetensorsFile::from_buffer(std::vector<std::byte> bytes, std::string name) {
  auto storage = std::make_unique<Storage>();
  storage->buffer = std::move(bytes);
  return parse(std::move(storage), std::move(name));
}

Result<SafetensorsFile, SafetensorsError> SafetensorsFile::parse(std::unique_ptr<Storage> storage, std::string name) {
  const std::span<const std::byte> all = storage->bytes();
  if (all.size() < 8) return fail(err(name, "shorter than the 8-byte header length"));
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, all.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > all.size() - 8) {
    return fail(err(name, fmt::format("header length {} exceeds the file or the 100 MiB limit", header_len)));
  }
  const std::string_view header(reinterpret_cast<const char*>(all.data() + 8), header_len);
  auto doc = json::parse(header);
  if (!doc) return fail(err(name, fmt::format("header: {}", doc.error().message)));
  if (!doc->is_object()) return fail(err(name, "header is not a JSON object"));
  const std::span<const std::byte> data = all.subspan(8 + header_len);

  SafetensorsFile file;
  file.path_ = name;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::size_t i = 0; i < doc->size(); ++i) {
    const std::string& key = doc->keys()[i];
    const json::Value& entry = doc->items()[i];
    if (key == "__metadata__") {
      if (!entry.is_object()) return fail(err(name, "__metadata__ is not an object"));
      continue;
    }
    const auto bad = [&](std::string_view what) {
      return fail(err(name, fmt::format("tensor \"{}\": {}", key, what)));
    };
    if (!entry.is_object()) return bad("entry is not an object");
    const json::Value* dtype = entry.find("dtype");
    const json::Value* shape = entry.find("shape");
    const json::Value* offsets = entry.find("data_offsets");
    if (dtype == nullptr || dtype->as_string() == nullptr) return bad("missing string \"dtype\"");
    if (shape == nullptr || !shape->is_array()) return bad("missing array \"shape\"");
    if (offsets == nullptr || !offsets->is_array() || offsets->size() != 2) {
      return bad("\"data_offsets\" must be [begin, end]");
    }
    TensorView t;
    t.name = key;
    const DtypeInfo* info = nullptr;
    for (const auto& d : kDtypes) {
      if (d.name == *dtype->as_string()) info = &d;
    }
    if (info == nullptr) return bad(fmt::format("unknown dtype \"{}\"", *dtype->as_string()));
    t.dtype = info->dtype;
    if (shape->size() > kMaxDims) return bad("too many dimensions");
    std::uint64_t n = 1;
    for (const json::Value& d : shape->items()) {
      auto v = d.as_u64();
      if (!v) return bad("shape entries must be non-negative integers");
      if (*v != 0 && n > std::numeric_limits<std::uint64_t>::max() / *v) return bad("shape product overflows");
      n *= *v;
      t.shape.push_back(*v);
    }
    t.n_elements = n;
    auto begin = offsets->items()[0].as_u64();
    auto end = offsets->items()[1].as_u64();
    if (!begin || !end || *begin > *end || *end > data.size()) {
      return bad(fmt::format("data_offsets lie outside the {} data bytes", data.size()));
    }
    if (n > std::numeric_limits<std::uint64_t>::max() / info->bytes || n * info->bytes != *end - *begin) {
      return bad(fmt::format("byte range [{}, {}) does not match {} elements of {}", *begin, *end, n, info->name));
    }
    t.bytes = data.subspan(static_cast<std::size_t>(*begin), static_cast<std::size_t>(*end - *begin));
    if (*end > *begin) ranges.emplace_back(*begin, *end);
    file.index_.emplace(key, file.tensors_.size());
    file.tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return fail(err(name, "tensor byte ranges overlap"));
  }
  file.storage_ = std::move(storage);
  return file;
}

const TensorView* SafetensorsFile::tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Result<std::string, SafetensorsError> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(err(path, "cannot open"));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<std::uintmax_t>(size) > kMaxIndexBytes) {
    return fail(err(path, "unreadable or larger than 64 MiB"));
  }
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<std::size_t>(size), '\0');
  if (!in.read(text.data(), size)) return fail(err(path, "read failed"));
  return text;
}

bool plain_file_name(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos && n.find('\0') == std::string::npos;
}

}  // namespace

Result<Checkpoint, SafetensorsError> Checkpoint::open_dir(const std::string& dir) {
  Checkpoint ckpt;
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string, std::less<>> weight_map;  // tensor -> shard
  if (::access(index_path.c_str(), F_OK) == 0) {
    auto text = read_small_file(index_path);
    if (!text) return fail(std::move(text.error()));
    auto doc = json::parse(*text);
    if (!doc) return fail(err(index_path, doc.error().message));
    const json::Value* map = doc->find("weight_map");
    if (map == nullptr || !map->is_object()) return fail(err(index_path, "missing object \"weight_map\""));
    std::set<std::string> shards;
    for (std::size_t i = 0; i < map->size(); ++i) {
      const std::string* shard = map->items()[i].as_string();
      if (shard == nullptr || !plain_file_name(*shard)) {
        return fail(err(index_path, fmt::format("tensor \"{}\" maps to an invalid shard name", map->keys()[i])));
      }
      weight_map.emplace(map->keys()[i], *shard);
      shards.insert(*shard);
    }
    shard_names.assign(shards.begin(), shards.end());
  } else {
    shard_names.push_back("model.safetensors");
  }
  ckpt.files_.reserve(shard_names.size());
  for (const std::string& shard : shard_names) {
    auto f = SafetensorsFile::open(dir + "/" + shard);
    if (!f) return fail(std::move(f.error()));
    ckpt.files_.push_back(std::move(*f));
  }
  for (std::size_t i = 0; i < ckpt.files_.size(); ++i) {
    for (const TensorView& t : ckpt.files_[i].tensors()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        // The index decides which shard owns a name; copies elsewhere are ignored.
        if (it == weight_map.end() || it->second != shard_names[i]) continue;
      }
      if (!ckpt.by_name_.emplace(t.name, &t).second) {
        return fail(err(dir, fmt::format("tensor \"{}\" appears in more than one file", t.name)));
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    if (!ckpt.by_name_.contains(name)) {
      return fail(err(dir + "/" + shard, fmt::format("tensor \"{}\" listed in the index is missing", name)));
    }
  }
  return ckpt;
}

const TensorView* Checkpoint::tensor(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Status<SafetensorsError> to_f32(const TensorView& t, std::span<float> out) {
  if (out.size() != t.n_elements) {
    return fail(SafetensorsError{
        fmt::format("tensor \"{}\": output holds {} floats, the tensor {}", t.name, out.size(), t.n_elements)});
  }
  const std::byte* src = t.bytes.data();
  switch (t.dtype) {
    case Dtype::F32:
      if (!out.empty()) std::memcpy(out.data(), src, out.size() * sizeof(float));
      return Ok{};
    case Dtype::F16:
    case Dtype::BF16:
      for (std::size_t i = 0; i < out.size(); ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        out[i] = t.dtype == Dtype::F16 ? gguf::f16_to_f32(bits) : gguf::bf16_to_f32(bits);
      }
      return Ok{};
    default:
      return fail(SafetensorsError{
          fmt::format("tensor \"{}\": dtype {} cannot be loaded (F32, F16, BF16 can)", t.name, dtype_name(t.dtype))});
  }
}

}  // namespace sluice::safetensors
