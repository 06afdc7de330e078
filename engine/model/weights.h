// ModelWeights: a Llama-family model's tensors in the form the CPU kernels read, plus its ModelSpec.
//
// From GGUF, Q4_0 / Q4_1 / Q8_0 and F32 matrices stay where they are in the read-only file mapping and are
// dequantized block by block inside the matmul (decode is memory-bound: 4.5-8.5 bits a weight read beats 32);
// F16 / BF16 matrices and all vectors (norms, biases) are converted to fp32 copies. llama-architecture GGUF
// files keep the converter's permuted attn_q / attn_k rows, so the spec says RopeStyle::interleaved.
// From a Hugging Face directory (config.json + safetensors, F32/F16/BF16), everything becomes fp32 and RoPE
// is rotate-half.
//
// Immutable after loading; any number of threads may read it. Views stay valid while the object lives.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/model_spec.h"
#include "engine/util/result.h"
#include "kernels/cpu/weight_view.h"

namespace sluice {

namespace gguf {
class GgufFile;
}

struct LayerWeights {
  kernels::WeightView wq;            // [q_dim][hidden]
  kernels::WeightView wk;            // [kv_dim][hidden]
  kernels::WeightView wv;            // [kv_dim][hidden]
  kernels::WeightView wo;            // [hidden][q_dim]
  kernels::WeightView gate;          // [ffn][hidden]
  kernels::WeightView up;            // [ffn][hidden]
  kernels::WeightView down;          // [hidden][ffn]
  const float* attn_norm = nullptr;  // hidden
  const float* ffn_norm = nullptr;   // hidden
  const float* bq = nullptr;         // q_dim, when spec.qkv_bias
  const float* bk = nullptr;         // kv_dim, when spec.qkv_bias
  const float* bv = nullptr;         // kv_dim, when spec.qkv_bias
  const float* bo = nullptr;         // hidden, when spec.output_bias
};

class ModelWeights {
 public:
  // A directory is read as a Hugging Face checkpoint, a file as GGUF.
  static Result<std::unique_ptr<ModelWeights>, ModelError> load(const std::string& path);
  static Result<std::unique_ptr<ModelWeights>, ModelError> load_gguf(const std::string& path);
  static Result<std::unique_ptr<ModelWeights>, ModelError> from_gguf(gguf::GgufFile file);
  static Result<std::unique_ptr<ModelWeights>, ModelError> load_hf_dir(const std::string& dir);

  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;
  ~ModelWeights();

  const ModelSpec& spec() const { return spec_; }
  const kernels::WeightView& token_embedding() const { return token_embedding_; }  // [vocab][hidden]
  const kernels::WeightView& lm_head() const { return lm_head_; }                  // [vocab][hidden]
  const float* final_norm() const { return final_norm_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  // "gguf" or "safetensors".
  std::string_view format() const { return format_; }
  // Bytes of all matrices as the kernels read them (what one decode step streams from memory).
  std::uint64_t matrix_bytes() const;

 private:
  class GgufLoader;
  class HfLoader;
  ModelWeights();

  const float* keep(std::vector<float> v);

  ModelSpec spec_;
  std::string format_;
  kernels::WeightView token_embedding_;
  kernels::WeightView lm_head_;
  const float* final_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
  std::unique_ptr<gguf::GgufFile> gguf_;   // owns the mapping quantized views point into
  std::vector<std::vector<float>> owned_;  // fp32 copies; inner buffers never move
};

}  // namespace sluice
