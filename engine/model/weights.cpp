#include "engine/model/weights.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <utility>

#include "engine/model/gguf_reader.h"
#include "engine/model/hf_config.h"
#include "engine/model/safetensors.h"

namespace sluice {

// Propagates the error of a Status/Result expression.
#define SLUICE_TRY(expr)                           \
  do {                                             \
    auto st_ = (expr);                             \
    if (!st_) return fail(std::move(st_.error())); \
  } while (0)

namespace {

ModelError tensor_error(const std::string& source, std::string_view tensor, std::string_view what) {
  return ModelError{fmt::format("{}: tensor \"{}\" {}", source, tensor, what)};
}

}  // namespace

ModelWeights::ModelWeights() = default;
ModelWeights::~ModelWeights() = default;

const float* ModelWeights::keep(std::vector<float> v) {
  owned_.push_back(std::move(v));
  return owned_.back().data();
}

std::uint64_t ModelWeights::matrix_bytes() const {
  const auto bytes = [](const kernels::WeightView& w) { return std::uint64_t{w.rows} * w.row_bytes; };
  std::uint64_t total = bytes(token_embedding_);
  if (lm_head_.data != token_embedding_.data) total += bytes(lm_head_);
  for (const auto& l : layers_) {
    total += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo) + bytes(l.gate) + bytes(l.up) + bytes(l.down);
  }
  return total;
}

// ---- GGUF ----

class ModelWeights::GgufLoader {
 public:
  explicit GgufLoader(ModelWeights& m) : m_(m), f_(*m.gguf_), src_(f_.path()) {}

  // A [rows][cols] matrix (GGUF dims = {cols, rows}).
  Status<ModelError> matrix(const std::string& name, std::uint32_t rows, std::uint32_t cols, kernels::WeightView& out) {
    const gguf::TensorInfo* t = f_.tensor(name);
    if (t == nullptr) return fail(tensor_error(src_, name, "is missing"));
    out.rows = rows;
    out.cols = cols;
    switch (t->type) {
      case gguf::TensorType::F32:
        out.type = kernels::WeightType::f32;
        break;
      case gguf::TensorType::Q4_0:
        out.type = kernels::WeightType::q4_0;
        break;
      case gguf::TensorType::Q4_1:
        out.type = kernels::WeightType::q4_1;
        break;
      case gguf::TensorType::Q8_0:
        out.type = kernels::WeightType::q8_0;
        break;
      case gguf::TensorType::F16:
      case gguf::TensorType::BF16:
        out.type = kernels::WeightType::f32;  // converted below
        break;
      default:
        return fail(tensor_error(src_, name,
                                 fmt::format("has type {}; this engine reads F32, F16, BF16, Q4_0, Q4_1, Q8_0",
                                             gguf::tensor_type_name(t->type))));
    }
    if (t->dims.size() != 2 || t->dims[0] != cols || t->dims[1] != rows) {
      return fail(tensor_error(
          src_, name,
          fmt::format("has shape {}, expected [{}, {}] (GGUF order)", fmt::join(t->dims, "x"), cols, rows)));
    }
    if (t->type == gguf::TensorType::F16 || t->type == gguf::TensorType::BF16) {
      std::vector<float> v(static_cast<std::size_t>(t->n_elements));
      auto st = gguf::dequantize_row(*t, 0, t->n_elements, v.data());
      if (!st) return fail(ModelError{st.error().message});
      out.data = reinterpret_cast<const std::byte*>(m_.keep(std::move(v)));
      out.row_bytes = std::size_t{cols} * sizeof(float);
      return Ok{};
    }
    out.row_bytes = kernels::row_bytes_for(out.type, cols);
    if (out.row_bytes == 0 || out.row_bytes * rows != t->n_bytes) {
      return fail(tensor_error(src_, name, "byte size does not match its shape"));
    }
    out.data = t->data;
    return Ok{};
  }

  // A vector of `n` elements converted to fp32; `required` false lets it be absent (nullptr).
  Status<ModelError> vector(const std::string& name, std::uint32_t n, const float*& out, bool required = true) {
    const gguf::TensorInfo* t = f_.tensor(name);
    if (t == nullptr) {
      if (!required) {
        out = nullptr;
        return Ok{};
      }
      return fail(tensor_error(src_, name, "is missing"));
    }
    if (t->n_elements != n || t->dims.size() != 1) {
      return fail(tensor_error(src_, name, fmt::format("has {} elements, expected {}", t->n_elements, n)));
    }
    std::vector<float> v(n);
    auto st = gguf::dequantize_row(*t, 0, n, v.data());
    if (!st) return fail(ModelError{st.error().message});
    out = m_.keep(std::move(v));
    return Ok{};
  }

  Status<ModelError> run() {
    const ModelSpec& s = m_.spec_;
    SLUICE_TRY(matrix("token_embd.weight", s.vocab, s.hidden, m_.token_embedding_));
    if (s.tied_embeddings) {
      m_.lm_head_ = m_.token_embedding_;
    } else {
      SLUICE_TRY(matrix("output.weight", s.vocab, s.hidden, m_.lm_head_));
    }
    SLUICE_TRY(vector("output_norm.weight", s.hidden, m_.final_norm_));
    m_.layers_.resize(s.layers);
    for (std::uint32_t i = 0; i < s.layers; ++i) {
      LayerWeights& l = m_.layers_[i];
      const std::string p = fmt::format("blk.{}.", i);
      SLUICE_TRY(matrix(p + "attn_q.weight", s.q_dim(), s.hidden, l.wq));
      SLUICE_TRY(matrix(p + "attn_k.weight", s.kv_dim(), s.hidden, l.wk));
      SLUICE_TRY(matrix(p + "attn_v.weight", s.kv_dim(), s.hidden, l.wv));
      SLUICE_TRY(matrix(p + "attn_output.weight", s.hidden, s.q_dim(), l.wo));
      SLUICE_TRY(matrix(p + "ffn_gate.weight", s.ffn, s.hidden, l.gate));
      SLUICE_TRY(matrix(p + "ffn_up.weight", s.ffn, s.hidden, l.up));
      SLUICE_TRY(matrix(p + "ffn_down.weight", s.hidden, s.ffn, l.down));
      SLUICE_TRY(vector(p + "attn_norm.weight", s.hidden, l.attn_norm));
      SLUICE_TRY(vector(p + "ffn_norm.weight", s.hidden, l.ffn_norm));
      if (s.qkv_bias) {
        SLUICE_TRY(vector(p + "attn_q.bias", s.q_dim(), l.bq));
        SLUICE_TRY(vector(p + "attn_k.bias", s.kv_dim(), l.bk));
        SLUICE_TRY(vector(p + "attn_v.bias", s.kv_dim(), l.bv));
      }
      if (s.output_bias) SLUICE_TRY(vector(p + "attn_output.bias", s.hidden, l.bo));
    }
    return Ok{};
  }

 private:
  ModelWeights& m_;
  const gguf::GgufFile& f_;
  const std::string& src_;
};

Result<std::unique_ptr<ModelWeights>, ModelError> ModelWeights::from_gguf(gguf::GgufFile file) {
  std::unique_ptr<ModelWeights> m(new ModelWeights());
  m->gguf_ = std::make_unique<gguf::GgufFile>(std::move(file));
  auto spec = spec_from_gguf(*m->gguf_);
  if (!spec) return fail(std::move(spec.error()));
  m->spec_ = std::move(*spec);
  m->format_ = "gguf";
  GgufLoader loader(*m);
  SLUICE_TRY(loader.run());
  return m;
}

Result<std::unique_ptr<ModelWeights>, ModelError> ModelWeights::load_gguf(const std::string& path) {
  auto f = gguf::GgufFile::open(path);
  if (!f) return fail(ModelError{f.error().message});
  return from_gguf(std::move(*f));
}

// ---- Hugging Face directory ----

class ModelWeights::HfLoader {
 public:
  HfLoader(ModelWeights& m, const safetensors::Checkpoint& ckpt, const std::string& dir)
      : m_(m), ckpt_(ckpt), dir_(dir) {}

  // Converts a tensor of the expected shape to fp32; `required` false lets it be absent (nullptr).
  Status<ModelError> load(const std::string& name, std::uint32_t rows, std::uint32_t cols, const float*& out,
                          bool required = true) {
    const safetensors::TensorView* t = ckpt_.tensor(name);
    if (t == nullptr) {
      if (!required) {
        out = nullptr;
        return Ok{};
      }
      return fail(tensor_error(dir_, name, "is missing"));
    }
    const bool vector_ok = rows == 0 && t->shape.size() == 1 && t->shape[0] == cols;
    const bool matrix_ok = rows != 0 && t->shape.size() == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (!vector_ok && !matrix_ok) {
      return fail(tensor_error(dir_, name,
                               fmt::format("has shape [{}], expected [{}{}]", fmt::join(t->shape, ", "),
                                           rows == 0 ? "" : fmt::format("{}, ", rows), cols)));
    }
    std::vector<float> v(static_cast<std::size_t>(t->n_elements));
    auto st = safetensors::to_f32(*t, v);
    if (!st) return fail(ModelError{fmt::format("{}: {}", dir_, st.error().message)});
    out = m_.keep(std::move(v));
    return Ok{};
  }

  Status<ModelError> matrix(const std::string& name, std::uint32_t rows, std::uint32_t cols, kernels::WeightView& out) {
    const float* data = nullptr;
    SLUICE_TRY(load(name, rows, cols, data));
    out.type = kernels::WeightType::f32;
    out.rows = rows;
    out.cols = cols;
    out.row_bytes = std::size_t{cols} * sizeof(float);
    out.data = reinterpret_cast<const std::byte*>(data);
    return Ok{};
  }

  Status<ModelError> vector(const std::string& name, std::uint32_t n, const float*& out) {
    return load(name, 0, n, out);
  }

  Status<ModelError> run() {
    const ModelSpec& s = m_.spec_;
    SLUICE_TRY(matrix("model.embed_tokens.weight", s.vocab, s.hidden, m_.token_embedding_));
    if (s.tied_embeddings) {
      m_.lm_head_ = m_.token_embedding_;
    } else {
      SLUICE_TRY(matrix("lm_head.weight", s.vocab, s.hidden, m_.lm_head_));
    }
    SLUICE_TRY(vector("model.norm.weight", s.hidden, m_.final_norm_));
    m_.layers_.resize(s.layers);
    for (std::uint32_t i = 0; i < s.layers; ++i) {
      LayerWeights& l = m_.layers_[i];
      const std::string p = fmt::format("model.layers.{}.", i);
      SLUICE_TRY(matrix(p + "self_attn.q_proj.weight", s.q_dim(), s.hidden, l.wq));
      SLUICE_TRY(matrix(p + "self_attn.k_proj.weight", s.kv_dim(), s.hidden, l.wk));
      SLUICE_TRY(matrix(p + "self_attn.v_proj.weight", s.kv_dim(), s.hidden, l.wv));
      SLUICE_TRY(matrix(p + "self_attn.o_proj.weight", s.hidden, s.q_dim(), l.wo));
      SLUICE_TRY(matrix(p + "mlp.gate_proj.weight", s.ffn, s.hidden, l.gate));
      SLUICE_TRY(matrix(p + "mlp.up_proj.weight", s.ffn, s.hidden, l.up));
      SLUICE_TRY(matrix(p + "mlp.down_proj.weight", s.hidden, s.ffn, l.down));
      SLUICE_TRY(vector(p + "input_layernorm.weight", s.hidden, l.attn_norm));
      SLUICE_TRY(vector(p + "post_attention_layernorm.weight", s.hidden, l.ffn_norm));
      if (s.qkv_bias) {
        SLUICE_TRY(vector(p + "self_attn.q_proj.bias", s.q_dim(), l.bq));
        SLUICE_TRY(vector(p + "self_attn.k_proj.bias", s.kv_dim(), l.bk));
        SLUICE_TRY(vector(p + "self_attn.v_proj.bias", s.kv_dim(), l.bv));
      }
      if (s.output_bias) SLUICE_TRY(vector(p + "self_attn.o_proj.bias", s.hidden, l.bo));
    }
    return Ok{};
  }

 private:
  ModelWeights& m_;
  const safetensors::Checkpoint& ckpt_;
  const std::string& dir_;
};

Result<std::unique_ptr<ModelWeights>, ModelError> ModelWeights::load_hf_dir(const std::string& dir) {
  auto spec = load_hf_config(dir);
  if (!spec) return fail(std::move(spec.error()));
  auto ckpt = safetensors::Checkpoint::open_dir(dir);
  if (!ckpt) return fail(ModelError{ckpt.error().message});
  std::unique_ptr<ModelWeights> m(new ModelWeights());
  m->spec_ = std::move(*spec);
  m->format_ = "safetensors";
  HfLoader loader(*m, *ckpt, dir);
  SLUICE_TRY(loader.run());
  return m;  // the checkpoint's mappings close here: every tensor was copied
}

#undef SLUICE_TRY

Result<std::unique_ptr<ModelWeights>, ModelError> ModelWeights::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail(ModelError{fmt::format("{}: no such file or directory", path)});
  if (S_ISDIR(st.st_mode)) return load_hf_dir(path);
  return load_gguf(path);
}

}  // namespace sluice
