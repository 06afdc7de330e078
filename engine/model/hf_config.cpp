#include "engine/model/hf_config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <optional>

#include "engine/util/json_lite.h"

namespace sluice {

namespace {

constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{16} << 20;

// Typed access to config.json members with messages that name the file and key.
class ConfigReader {
 public:
  ConfigReader(const json::Value& root, const std::string& source) : root_(root), source_(source) {}

  ModelError error(std::string_view key, std::string_view what) const {
    return ModelError{fmt::format("{}: \"{}\" {}", source_, key, what)};
  }

  // Absent and null both mean "not given".
  const json::Value* get(const json::Value& obj, std::string_view key) const {
    const json::Value* v = obj.find(key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }
  const json::Value* get(std::string_view key) const { return get(root_, key); }

  Status<ModelError> u32(const json::Value& obj, std::string_view key, std::uint32_t& out,
                         std::optional<std::uint32_t> dflt) const {
    const json::Value* v = get(obj, key);
    if (v == nullptr) {
      if (!dflt) return fail(error(key, "is required"));
      out = *dflt;
      return Ok{};
    }
    auto n = v->as_u64();
    if (!n || *n > std::numeric_limits<std::uint32_t>::max()) {
      return fail(error(key, "must be a non-negative integer below 2^32"));
    }
    out = static_cast<std::uint32_t>(*n);
    return Ok{};
  }
  Status<ModelError> u32(std::string_view key, std::uint32_t& out, std::optional<std::uint32_t> dflt) const {
    return u32(root_, key, out, dflt);
  }

  Status<ModelError> f32(const json::Value& obj, std::string_view key, float& out, float dflt) const {
    const json::Value* v = get(obj, key);
    if (v == nullptr) {
      out = dflt;
      return Ok{};
    }
    auto d = v->as_f64();
    if (!d || !std::isfinite(static_cast<float>(*d))) return fail(error(key, "must be a finite number"));
    out = static_cast<float>(*d);
    return Ok{};
  }

  Status<ModelError> boolean(std::string_view key, bool& out, bool dflt) const {
    const json::Value* v = get(key);
    if (v == nullptr) {
      out = dflt;
      return Ok{};
    }
    auto b = v->as_bool();
    if (!b) return fail(error(key, "must be true or false"));
    out = *b;
    return Ok{};
  }

  const json::Value& root() const { return root_; }

 private:
  const json::Value& root_;
  const std::string& source_;
};

// Propagates the error of a Status/Result expression.
#define SLUICE_TRY(expr)                           \
  do {                                             \
    auto st_ = (expr);                             \
    if (!st_) return fail(std::move(st_.error())); \
  } while (0)

Status<ModelError> read_rope(const ConfigReader& r, ModelSpec& s) {
  // transformers 5 writes "rope_parameters" (theta inside); earlier versions "rope_theta" + "rope_scaling".
  const json::Value* params = r.get("rope_parameters");
  const json::Value* scaling = params != nullptr ? params : r.get("rope_scaling");
  const std::string_view scaling_key = params != nullptr ? "rope_parameters" : "rope_scaling";
  if (scaling != nullptr && !scaling->is_object()) return fail(r.error(scaling_key, "must be an object"));
  if (params != nullptr && r.get(*params, "rope_theta") != nullptr) {
    SLUICE_TRY(r.f32(*params, "rope_theta", s.rope.theta, 10000.0f));
  } else {
    SLUICE_TRY(r.f32(r.root(), "rope_theta", s.rope.theta, 10000.0f));
  }
  s.rope.style = RopeStyle::half;
  if (scaling == nullptr) return Ok{};
  const json::Value* type = r.get(*scaling, "rope_type");
  if (type == nullptr) type = r.get(*scaling, "type");
  if (type == nullptr) {
    if (params != nullptr) return Ok{};
    return fail(r.error(scaling_key, "has no rope_type"));
  }
  const std::string* t = type->as_string();
  if (t == nullptr) return fail(r.error(scaling_key, "rope_type must be a string"));
  if (*t == "default") return Ok{};
  if (*t == "linear") {
    s.rope.scaling = RopeScaling::linear;
    SLUICE_TRY(r.f32(*scaling, "factor", s.rope.factor, 1.0f));
    return Ok{};
  }
  if (*t == "llama3") {
    s.rope.scaling = RopeScaling::llama3;
    SLUICE_TRY(r.f32(*scaling, "factor", s.rope.factor, 8.0f));
    SLUICE_TRY(r.f32(*scaling, "low_freq_factor", s.rope.low_freq_factor, 1.0f));
    SLUICE_TRY(r.f32(*scaling, "high_freq_factor", s.rope.high_freq_factor, 4.0f));
    SLUICE_TRY(r.u32(*scaling, "original_max_position_embeddings", s.rope.original_max_position, std::nullopt));
    return Ok{};
  }
  return fail(r.error(scaling_key, fmt::format("rope_type \"{}\" is not supported (default, linear, llama3 are)", *t)));
}

Status<ModelError> read_token_ids(const ConfigReader& r, ModelSpec& s) {
  if (const json::Value* bos = r.get("bos_token_id")) {
    auto id = bos->as_i64();
    if (!id || *id < 0) return fail(r.error("bos_token_id", "must be a non-negative integer"));
    s.bos_token = *id;
  }
  if (const json::Value* eos = r.get("eos_token_id")) {
    if (eos->is_array()) {
      for (const json::Value& e : eos->items()) {
        auto id = e.as_i64();
        if (!id || *id < 0) return fail(r.error("eos_token_id", "must hold non-negative integers"));
        s.eos_tokens.push_back(*id);
      }
    } else {
      auto id = eos->as_i64();
      if (!id || *id < 0) return fail(r.error("eos_token_id", "must be a non-negative integer or a list"));
      s.eos_tokens.push_back(*id);
    }
  }
  return Ok{};
}

}  // namespace

Result<ModelSpec, ModelError> spec_from_hf_config(std::string_view json_text, const std::string& source) {
  auto doc = json::parse(json_text);
  if (!doc) return fail(ModelError{fmt::format("{}: invalid JSON: {}", source, doc.error().message)});
  if (!doc->is_object()) return fail(ModelError{fmt::format("{}: the top-level value must be an object", source)});
  const ConfigReader r(*doc, source);
  ModelSpec s;

  std::string arch_class;
  if (const json::Value* archs = r.get("architectures")) {
    if (!archs->is_array() || archs->size() != 1 || archs->items()[0].as_string() == nullptr) {
      return fail(r.error("architectures", "must be a list of one class name"));
    }
    arch_class = *archs->items()[0].as_string();
  }
  std::string model_type;
  if (const json::Value* mt = r.get("model_type")) {
    if (mt->as_string() == nullptr) return fail(r.error("model_type", "must be a string"));
    model_type = *mt->as_string();
  }
  if (arch_class == "LlamaForCausalLM" || (arch_class.empty() && model_type == "llama")) {
    s.architecture = "llama";
  } else if (arch_class == "MistralForCausalLM" || (arch_class.empty() && model_type == "mistral")) {
    s.architecture = "mistral";
  } else if (arch_class == "Qwen2ForCausalLM" || (arch_class.empty() && model_type == "qwen2")) {
    s.architecture = "qwen2";
  } else {
    return fail(ModelError{fmt::format(
        "{}: architecture \"{}\" is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM are)", source,
        arch_class.empty() ? model_type : arch_class)});
  }
  if (const json::Value* name = r.get("_name_or_path"); name != nullptr && name->as_string() != nullptr) {
    s.name = *name->as_string();
  }

  SLUICE_TRY(r.u32("vocab_size", s.vocab, std::nullopt));
  SLUICE_TRY(r.u32("hidden_size", s.hidden, std::nullopt));
  SLUICE_TRY(r.u32("num_hidden_layers", s.layers, std::nullopt));
  SLUICE_TRY(r.u32("num_attention_heads", s.heads, std::nullopt));
  SLUICE_TRY(r.u32("num_key_value_heads", s.kv_heads, s.heads));
  SLUICE_TRY(r.u32("intermediate_size", s.ffn, std::nullopt));
  if (s.heads == 0) return fail(r.error("num_attention_heads", "must be positive"));
  SLUICE_TRY(r.u32("head_dim", s.head_dim, s.hidden / s.heads));
  SLUICE_TRY(r.f32(r.root(), "rms_norm_eps", s.rms_eps, 1e-6f));
  const std::uint32_t default_max_position = s.architecture == "llama"   ? 2048u
                                             : s.architecture == "qwen2" ? 32768u
                                                                         : 131072u;
  SLUICE_TRY(r.u32("max_position_embeddings", s.max_position, default_max_position));
  SLUICE_TRY(r.boolean("tie_word_embeddings", s.tied_embeddings, false));

  if (const json::Value* act = r.get("hidden_act")) {
    if (act->as_string() == nullptr || *act->as_string() != "silu") {
      return fail(r.error("hidden_act", "must be \"silu\""));
    }
  }
  bool mlp_bias = false;
  SLUICE_TRY(r.boolean("mlp_bias", mlp_bias, false));
  if (mlp_bias) return fail(r.error("mlp_bias", "= true is not supported"));
  if (s.architecture == "qwen2") {
    s.qkv_bias = true;
    bool use_sliding = false;
    SLUICE_TRY(r.boolean("use_sliding_window", use_sliding, false));
    if (use_sliding) return fail(r.error("use_sliding_window", "= true is not supported"));
    if (const json::Value* types = r.get("layer_types")) {
      for (const json::Value& t : types->items()) {
        if (t.as_string() == nullptr || *t.as_string() != "full_attention") {
          return fail(r.error("layer_types", "may only hold \"full_attention\""));
        }
      }
    }
  } else {
    bool attention_bias = false;
    SLUICE_TRY(r.boolean("attention_bias", attention_bias, false));
    s.qkv_bias = attention_bias;
    s.output_bias = attention_bias;
  }
  if (s.architecture == "mistral") {
    SLUICE_TRY(r.u32("sliding_window", s.sliding_window, 0));
  }
  SLUICE_TRY(read_rope(r, s));
  SLUICE_TRY(read_token_ids(r, s));
  SLUICE_TRY(validate(s, source));
  return s;
}

#undef SLUICE_TRY

Result<ModelSpec, ModelError> load_hf_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ModelError{fmt::format("{}: cannot open", path)});
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<std::uintmax_t>(size) > kMaxConfigBytes) {
    return fail(ModelError{fmt::format("{}: missing or larger than {} bytes", path, kMaxConfigBytes)});
  }
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<std::size_t>(size), '\0');
  if (!in.read(text.data(), size)) return fail(ModelError{fmt::format("{}: read failed", path)});
  return spec_from_hf_config(text, path);
}

}  // namespace sluice
