// config.json → ModelSpec for the supported Hugging Face classes, both RoPE spellings (transformers 4's
// rope_theta + rope_scaling, 5's rope_parameters), and rejection of what the engine does not implement.
#include "engine/model/hf_config.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
  "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32, "vocab_size": 128256,
  "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 131072,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": false,
  "hidden_act": "silu", "attention_bias": false, "mlp_bias": false, "torch_dtype": "bfloat16"})";

TEST(HfConfig, Llama31) {
  auto s = spec_from_hf_config(kLlama31, "config.json");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->architecture, "llama");
  EXPECT_EQ(s->hidden, 4096u);
  EXPECT_EQ(s->ffn, 14336u);
  EXPECT_EQ(s->heads, 32u);
  EXPECT_EQ(s->kv_heads, 8u);
  EXPECT_EQ(s->head_dim, 128u);
  EXPECT_EQ(s->layers, 32u);
  EXPECT_EQ(s->vocab, 128256u);
  EXPECT_EQ(s->max_position, 131072u);
  EXPECT_FLOAT_EQ(s->rope.theta, 500000.0f);
  EXPECT_EQ(s->rope.style, RopeStyle::half);
  EXPECT_EQ(s->rope.scaling, RopeScaling::llama3);
  EXPECT_FLOAT_EQ(s->rope.factor, 8.0f);
  EXPECT_EQ(s->rope.original_max_position, 8192u);
  EXPECT_EQ(s->bos_token, 128000);
  EXPECT_EQ(s->eos_tokens, (std::vector<std::int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(s->tied_embeddings);
  EXPECT_FALSE(s->qkv_bias);
}

TEST(HfConfig, Qwen2HasQkvBiasAndDefaults) {
  auto s = spec_from_hf_config(R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":896,"intermediate_size":4864,
    "num_attention_heads":14,"num_key_value_heads":2,"num_hidden_layers":24,"vocab_size":151936,
    "rope_theta":1000000.0,"tie_word_embeddings":true,"use_sliding_window":false,"sliding_window":32768,
    "eos_token_id":151643})",
                               "q");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->architecture, "qwen2");
  EXPECT_TRUE(s->qkv_bias);
  EXPECT_FALSE(s->output_bias);
  EXPECT_TRUE(s->tied_embeddings);
  EXPECT_EQ(s->head_dim, 64u);
  EXPECT_EQ(s->sliding_window, 0u);  // use_sliding_window is false
  EXPECT_FLOAT_EQ(s->rms_eps, 1e-6f);
  EXPECT_EQ(s->max_position, 32768u);
  EXPECT_EQ(s->bos_token, -1);
}

TEST(HfConfig, MistralSlidingWindowAndTransformers5RopeParameters) {
  auto s = spec_from_hf_config(R"({"model_type":"mistral","hidden_size":64,"intermediate_size":128,
    "num_attention_heads":4,"num_hidden_layers":2,"vocab_size":300,"sliding_window":4096,
    "rope_parameters":{"rope_theta":10000.0,"rope_type":"linear","factor":2.0}})",
                               "m");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->architecture, "mistral");
  EXPECT_EQ(s->sliding_window, 4096u);
  EXPECT_EQ(s->kv_heads, 4u);
  EXPECT_EQ(s->rope.scaling, RopeScaling::linear);
  EXPECT_FLOAT_EQ(s->rope.factor, 2.0f);
}

TEST(HfConfig, LlamaAttentionBiasCoversOutputProjection) {
  auto s = spec_from_hf_config(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
    "num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10,"attention_bias":true})",
                               "b");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_TRUE(s->qkv_bias);
  EXPECT_TRUE(s->output_bias);
}

TEST(HfConfig, RejectsWhatTheEngineCannotRun) {
  const std::string base =
      R"("hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10)";
  const std::pair<const char*, std::string> cases[] = {
      {"architecture", R"({"architectures":["GPT2LMHeadModel"],)" + base + "}"},
      {"two architectures", R"({"architectures":["LlamaForCausalLM","X"],)" + base + "}"},
      {"activation", R"({"architectures":["LlamaForCausalLM"],"hidden_act":"gelu",)" + base + "}"},
      {"mlp bias", R"({"architectures":["LlamaForCausalLM"],"mlp_bias":true,)" + base + "}"},
      {"yarn", R"({"architectures":["LlamaForCausalLM"],"rope_scaling":{"rope_type":"yarn","factor":4},)" + base + "}"},
      {"qwen sliding", R"({"architectures":["Qwen2ForCausalLM"],"use_sliding_window":true,)" + base + "}"},
      {"qwen layer types",
       R"({"architectures":["Qwen2ForCausalLM"],"layer_types":["sliding_attention"],)" + base + "}"},
      {"missing hidden",
       R"({"architectures":["LlamaForCausalLM"],"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10})"},
      {"heads not multiple", R"({"architectures":["LlamaForCausalLM"],"num_key_value_heads":3,)" + base + "}"},
      {"string size",
       R"({"architectures":["LlamaForCausalLM"],"hidden_size":"64","intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10})"},
      {"negative eos", R"({"architectures":["LlamaForCausalLM"],"eos_token_id":-1,)" + base + "}"},
      {"eos beyond vocab", R"({"architectures":["LlamaForCausalLM"],"eos_token_id":10,)" + base + "}"},
      {"zero layers",
       R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":0,"vocab_size":10})"},
      {"not json", "{"},
      {"not object", "[]"},
  };
  for (const auto& [what, text] : cases) {
    auto s = spec_from_hf_config(text, "cfg.json");
    EXPECT_FALSE(s.ok()) << what;
    if (!s.ok()) {
      EXPECT_EQ(s.error().message.rfind("cfg.json", 0), 0u) << s.error().message;
    }
  }
}

TEST(HfConfig, MissingDirectoryIsAnError) {
  auto s = load_hf_config("/nonexistent/sluice");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("config.json"), std::string::npos);
}

}  // namespace
}  // namespace sluice
