// An Engine serving a Hugging Face model directory (config.json + safetensors + tokenizer.json +
// tokenizer_config.json + chat_template.jinja): tests/fixtures/models/tiny_llama_chat, a random 2-layer Llama
// whose 512-token vocabulary matches its tokenizer. The prompt ids and the greedy continuation were computed
// by transformers from the same directory (scripts/make_hf_tokenizer_fixture.py).
#include "engine/core/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/util/json_lite.h"

namespace sluice {
namespace {

const std::string kModelDir = std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/models/tiny_llama_chat";
const std::string kGolden = std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/tokenizer/hf/tiny_llama_chat.json";

json::Value golden() {
  std::ifstream in(kGolden, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  auto v = json::parse(s.str());
  EXPECT_TRUE(v.ok()) << kGolden << ": " << v.error().message;
  return v ? std::move(*v) : json::Value();
}

std::vector<std::int32_t> ids_of(const json::Value& list) {
  std::vector<std::int32_t> out;
  for (const json::Value& v : list.items()) out.push_back(static_cast<std::int32_t>(*v.as_i64()));
  return out;
}

EngineConfig config_for(std::string path) {
  EngineConfig c;
  c.model_path = std::move(path);
  c.threads = 1;
  c.kv_cache_bytes = std::uint64_t{4} << 20;
  c.max_num_seqs = 4;
  c.max_num_batched_tokens = 64;  // the 73-token prompt is prefilled in two chunks
  return c;
}

// Collects one request's output; the test thread waits for the terminal call.
class Collector : public GenerationStream {
 public:
  void on_text(std::string text, std::int32_t tokens) override {
    std::lock_guard lock(mu_);
    text_ += text;
    tokens_ += tokens;
  }
  void on_finish(std::string_view reason, std::int64_t prompt_tokens, std::int64_t completion_tokens) override {
    std::lock_guard lock(mu_);
    reason_ = std::string(reason);
    prompt_tokens_ = prompt_tokens;
    completion_tokens_ = completion_tokens;
    done_ = true;
    cv_.notify_all();
  }
  void on_error(GenerationErrorKind, std::string message) override {
    std::lock_guard lock(mu_);
    error_ = std::move(message);
    done_ = true;
    cv_.notify_all();
  }
  bool has_room() const override { return true; }

  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_; });
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string text_, reason_, error_;
  std::int32_t tokens_ = 0;
  std::int64_t prompt_tokens_ = -1, completion_tokens_ = -1;
};

TEST(EngineHfDir, ServesAGreedyChatRequest) {
  const json::Value g = golden();
  auto engine = Engine::create(config_for(kModelDir));
  ASSERT_TRUE(engine.ok()) << engine.error().message;
  Engine& e = **engine;
  EXPECT_EQ(e.model_name(), "tiny_llama_chat");
  EXPECT_EQ(e.vocab_size(), 512u);
  EXPECT_EQ(e.max_model_len(), 256u);

  std::vector<ChatTurn> messages;
  for (const json::Value& m : g.find("messages")->items()) {
    messages.push_back({*m.find("role")->as_string(), *m.find("content")->as_string()});
  }
  auto prompt = e.encode_chat(messages);
  ASSERT_TRUE(prompt.ok()) << prompt.error();
  EXPECT_EQ(*prompt, ids_of(*g.find("prompt_ids")));
  const json::Value& plain = *g.find("encode_text");
  EXPECT_EQ(e.encode_text(*plain.find("text")->as_string()), ids_of(*plain.find("ids")));  // BOS added

  const auto greedy = ids_of(*g.find("greedy"));
  auto out = std::make_shared<Collector>();
  GenerationRequest request;
  request.prompt = *prompt;
  request.params.temperature = 0.0f;
  request.params.max_tokens = static_cast<std::uint32_t>(greedy.size());
  request.stream = out;
  auto id = e.submit(std::move(request));
  ASSERT_TRUE(id.ok()) << id.error().second;
  ASSERT_TRUE(out->wait()) << "the request did not finish";
  std::lock_guard lock(out->mu_);
  EXPECT_EQ(out->error_, "");
  EXPECT_EQ(out->reason_, "length");
  EXPECT_EQ(out->prompt_tokens_, static_cast<std::int64_t>(prompt->size()));
  EXPECT_EQ(out->completion_tokens_, static_cast<std::int64_t>(greedy.size()));
  EXPECT_EQ(out->tokens_, static_cast<std::int32_t>(greedy.size()));

  auto files = load_hf_tokenizer(kModelDir);
  ASSERT_TRUE(files.ok()) << files.error().message;
  EXPECT_EQ(out->text_, files->tokenizer.decode(greedy)) << "greedy tokens differ from transformers'";
}

TEST(EngineHfDir, NamesADirectoryByItsWholeNameAndHonoursTheTemplateOverride) {
  EngineConfig c = config_for(kModelDir + "/");
  c.chat_template = "chatml";  // no default system prompt, unlike the directory's SmolLM2 template
  auto engine = Engine::create(c);
  ASSERT_TRUE(engine.ok()) << engine.error().message;
  EXPECT_EQ((*engine)->model_name(), "tiny_llama_chat");
  auto prompt = (*engine)->encode_chat({{"user", "Hi"}});
  ASSERT_TRUE(prompt.ok()) << prompt.error();
  auto files = load_hf_tokenizer(kModelDir);
  ASSERT_TRUE(files.ok()) << files.error().message;
  EXPECT_EQ(*prompt, files->tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", true));
}

TEST(EngineHfDir, DirectoryWithoutTokenizerSaysWhatIsMissing) {
  const std::string dir = std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/models/tiny_llama";
  auto engine = Engine::create(config_for(dir));
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.error().message.find("tokenizer.json is missing"), std::string::npos) << engine.error().message;
}

}  // namespace
}  // namespace sluice
