// Tokenizers and chat templates read from Hugging Face files (tokenizer.json, tokenizer_config.json,
// chat_template.jinja), against ids and prompts that Hugging Face `tokenizers` and `transformers` computed
// from the same files (scripts/make_hf_tokenizer_fixture.py), plus every construct the reader must refuse.
#include "engine/tokenizer/hf_tokenizer_json.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "engine/util/json_lite.h"

namespace sluice {
namespace {

const std::string kFixtures = std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures";
const std::string kHfDir = kFixtures + "/tokenizer/hf";
const std::string kChatModelDir = kFixtures + "/models/tiny_llama_chat";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<json::Value> read_jsonl(const std::string& path) {
  std::vector<json::Value> out;
  std::istringstream lines(read_text(path));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto v = json::parse(line);
    EXPECT_TRUE(v.ok()) << path << ": " << v.error().message;
    if (v) out.push_back(std::move(*v));
  }
  return out;
}

json::Value read_json(const std::string& path) {
  auto v = json::parse(read_text(path));
  EXPECT_TRUE(v.ok()) << path << ": " << v.error().message;
  return v ? std::move(*v) : json::Value();
}

std::vector<std::int32_t> ids_of(const json::Value& list) {
  std::vector<std::int32_t> out;
  for (const json::Value& v : list.items()) out.push_back(static_cast<std::int32_t>(*v.as_i64()));
  return out;
}

std::vector<ChatTurn> turns_of(const json::Value& list) {
  std::vector<ChatTurn> out;
  for (const json::Value& m : list.items()) out.push_back({*m.find("role")->as_string(), *m.find("content")->as_string()});
  return out;
}

std::optional<HfTokenizerFiles> load(const std::string& dir) {
  auto files = load_hf_tokenizer(dir);
  if (!files) {
    ADD_FAILURE() << files.error().message;
    return std::nullopt;
  }
  return std::move(files.value());
}

// ---- the fixtures written by tokenizers / transformers ----

TEST(HfTokenizerJson, EncodesLikeHuggingFaceTokenizers) {
  const auto files = load(kHfDir);
  ASSERT_TRUE(files.has_value());
  const Tokenizer& tok = files->tokenizer;
  EXPECT_EQ(tok.pre_tokenizer_name(), "smollm");
  const auto records = read_jsonl(kHfDir + "/golden.jsonl");
  ASSERT_GE(records.size(), 200u);
  int mismatches = 0;
  for (const json::Value& r : records) {
    const std::string& text = *r.find("text")->as_string();
    const bool special = *r.find("special")->as_bool();
    const auto expected = ids_of(*r.find("ids"));
    const auto got = tok.encode(text, special);
    if (got != expected && ++mismatches <= 5) {
      ADD_FAILURE() << "encode(" << ::testing::PrintToString(text) << ", special=" << special << ") differs";
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(HfTokenizerJson, SpecialTokensAsTransformersSeesThem) {
  const auto files = load(kHfDir);
  ASSERT_TRUE(files.has_value());
  const Tokenizer& tok = files->tokenizer;
  const json::Value expected = read_json(kHfDir + "/special_ids.json");
  EXPECT_EQ(static_cast<std::int64_t>(tok.token_count()), *expected.find("token_count")->as_i64());
  EXPECT_EQ(tok.bos_id(), *expected.find("bos_id")->as_i64());  // bos_token given as an AddedToken object
  EXPECT_EQ(tok.eos_id(), *expected.find("eos_id")->as_i64());  // eos_token given as a string
  EXPECT_EQ(tok.padding_id(), *expected.find("pad_id")->as_i64());
  EXPECT_EQ(tok.unknown_id(), *expected.find("unk_id")->as_i64());
  EXPECT_FALSE(tok.add_bos_token());
  // transformers' tokenizer(text) adds what add_bos_token / the post-processor say: here nothing.
  const json::Value& with = *expected.find("with_special_tokens");
  EXPECT_EQ(tok.encode(*with.find("text")->as_string(), false), ids_of(*with.find("ids")));
  EXPECT_EQ(tok.token_type(1), TokenType::control);          // <|im_start|>, special
  EXPECT_EQ(tok.token_type(2048), TokenType::user_defined);  // <tool_call>, not special
  EXPECT_EQ(tok.token_type(500), TokenType::normal);
  EXPECT_TRUE(tok.is_end_of_generation(2));
}

TEST(HfTokenizerJson, RendersAndEncodesChatLikeTransformers) {
  const auto files = load(kHfDir);
  ASSERT_TRUE(files.has_value());
  EXPECT_NE(files->chat_template_origin.find("tokenizer_config.json"), std::string::npos);
  auto tmpl = hf_chat_template(*files, "");
  ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
  EXPECT_EQ(tmpl->family(), "chatml");
  const auto records = read_jsonl(kHfDir + "/chat_golden.jsonl");
  ASSERT_GE(records.size(), 20u);
  for (const json::Value& r : records) {
    const bool gen = *r.find("add_generation_prompt")->as_bool();
    auto text = render_chat(*tmpl, turns_of(*r.find("messages")), gen);
    ASSERT_TRUE(text.ok()) << text.error().message;
    EXPECT_EQ(*text, *r.find("text")->as_string());
    EXPECT_EQ(files->tokenizer.encode(*text, true), ids_of(*r.find("ids"))) << *text;
  }
}

TEST(HfTokenizerJson, ReadsADirectorySavedByTransformers5) {
  // Llama 3's pre-tokenizer, "left right" merges, BOS from the TemplateProcessing post-processor, the
  // template in chat_template.jinja.
  const auto files = load(kChatModelDir);
  ASSERT_TRUE(files.has_value());
  const Tokenizer& tok = files->tokenizer;
  EXPECT_EQ(tok.pre_tokenizer_name(), "llama-bpe");
  EXPECT_EQ(tok.token_count(), 512u);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.add_bos_token());
  EXPECT_NE(files->chat_template_origin.find("chat_template.jinja"), std::string::npos);

  const json::Value golden = read_json(kHfDir + "/tiny_llama_chat.json");
  const json::Value& plain = *golden.find("encode_text");
  auto ids = tok.encode(*plain.find("text")->as_string(), false);
  ids.insert(ids.begin(), tok.bos_id());
  EXPECT_EQ(ids, ids_of(*plain.find("ids")));

  auto tmpl = hf_chat_template(*files, "");
  ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
  EXPECT_EQ(tmpl->family(), "smollm2");
  auto text = render_chat(*tmpl, turns_of(*golden.find("messages")), true);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, *golden.find("prompt_text")->as_string());
  EXPECT_EQ(tok.encode(*text, true), ids_of(*golden.find("prompt_ids")));
}

TEST(HfTokenizerJson, BuiltInTemplateOverridesTheDirectorys) {
  const auto files = load(kChatModelDir);
  ASSERT_TRUE(files.has_value());
  auto tmpl = hf_chat_template(*files, "chatml");
  ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
  EXPECT_EQ(tmpl->family(), "chatml");
  auto unknown = hf_chat_template(*files, "no-such-template");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind, TemplateErrorKind::unknown);
}

// ---- directories on disk ----

class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("sluice_hf_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(HfTokenizerJson, DirectoryWithoutTokenizerJsonIsNamedInTheError) {
  ScratchDir dir;
  auto files = load_hf_tokenizer(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.error().message.find("tokenizer.json is missing"), std::string::npos) << files.error().message;
}

TEST(HfTokenizerJson, MissingTemplateNamesTheFix) {
  ScratchDir dir;
  dir.write("tokenizer.json", read_text(kHfDir + "/tokenizer.json"));
  auto files = load_hf_tokenizer(dir.path());  // no tokenizer_config.json: no BOS/EOS, no template
  ASSERT_TRUE(files.ok()) << files.error().message;
  EXPECT_EQ(files->tokenizer.bos_id(), -1);
  EXPECT_EQ(files->tokenizer.eos_id(), -1);
  auto tmpl = hf_chat_template(*files, "");
  ASSERT_FALSE(tmpl.ok());
  EXPECT_EQ(tmpl.error().kind, TemplateErrorKind::missing);
  EXPECT_NE(tmpl.error().message.find("engine.chat_template"), std::string::npos) << tmpl.error().message;
  EXPECT_TRUE(hf_chat_template(*files, "chatml").ok());
}

TEST(HfTokenizerJson, ChatTemplateJinjaTakesPrecedence) {
  ScratchDir dir;
  dir.write("tokenizer.json", read_text(kHfDir + "/tokenizer.json"));
  dir.write("tokenizer_config.json", read_text(kHfDir + "/tokenizer_config.json"));
  dir.write("chat_template.jinja", "{% for m in messages %}[{{ m.content }}]{% endfor %}");
  auto files = load_hf_tokenizer(dir.path());
  ASSERT_TRUE(files.ok()) << files.error().message;
  auto tmpl = hf_chat_template(*files, "");
  ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
  auto text = render_chat(*tmpl, {{"user", "hi"}}, false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "[hi]");
}

TEST(HfTokenizerJson, BrokenConfigFileIsNamed) {
  ScratchDir dir;
  dir.write("tokenizer.json", read_text(kHfDir + "/tokenizer.json"));
  dir.write("tokenizer_config.json", "{\"bos_token\": 7}");
  auto files = load_hf_tokenizer(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.error().message.find("tokenizer_config.json"), std::string::npos) << files.error().message;
  EXPECT_NE(files.error().message.find("bos_token"), std::string::npos) << files.error().message;
}

// ---- tokenizer.json constructs, one at a time ----

constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string byte_level(bool use_regex, bool add_prefix_space = false) {
  return std::string(R"({"type": "ByteLevel", "add_prefix_space": )") + (add_prefix_space ? "true" : "false") +
         R"(, "trim_offsets": true, "use_regex": )" + (use_regex ? "true" : "false") + "}";
}
std::string split(std::string_view regex, std::string_view behavior = "Isolated") {
  return R"({"type": "Split", "pattern": {"Regex": )" + quoted(regex) + R"(}, "behavior": ")" +
         std::string(behavior) + R"(", "invert": false})";
}
std::string sequence(const std::vector<std::string>& parts) {
  std::string out = R"({"type": "Sequence", "pretokenizers": [)";
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out + "]}";
}
const std::string kDigits = R"({"type": "Digits", "individual_digits": true})";

// A minimal byte-level BPE tokenizer.json; each argument replaces one part.
struct Doc {
  std::string pre_tokenizer = byte_level(true);
  std::string model_type = R"("BPE")";
  std::string model_extra = R"("ignore_merges": false, "byte_fallback": false, "dropout": null)";
  std::string vocab = R"({"a": 0, "b": 1, "ab": 2, "Ġ": 3})";
  std::string merges = R"(["a b"])";
  std::string added = R"([{"id": 4, "content": "<s>", "special": true, "lstrip": false, "rstrip": false,
                           "single_word": false, "normalized": false},
                          {"id": 5, "content": "</s>", "special": true}])";
  std::string normalizer = "null";
  std::string decoder = R"({"type": "ByteLevel"})";
  std::string post_processor = "null";

  std::string text() const {
    return R"({"version": "1.0", "added_tokens": )" + added + R"(, "normalizer": )" + normalizer +
           R"(, "pre_tokenizer": )" + pre_tokenizer + R"(, "post_processor": )" + post_processor +
           R"(, "decoder": )" + decoder + R"(, "model": {"type": )" + model_type + ", " + model_extra +
           R"(, "vocab": )" + vocab + R"(, "merges": )" + merges + "}}";
  }
};

Result<TokenizerSpec, TokenizerError> spec_of(const Doc& doc, const HfTokenizerConfig& config = {}) {
  return tokenizer_spec_from_hf(doc.text(), config, "t/tokenizer.json");
}

// The spec's pre-tokenizer name, or the error message.
std::string pre_of(const Doc& doc) {
  auto spec = spec_of(doc);
  return spec ? spec->pre : "error: " + spec.error().message;
}

TEST(HfTokenizerJsonSpec, RecognisesEachPreTokenizerFamily) {
  Doc d;
  EXPECT_EQ(pre_of(d), "gpt2");
  d.pre_tokenizer = sequence({split(kGpt2Regex), byte_level(false)});
  EXPECT_EQ(pre_of(d), "gpt2");
  d.pre_tokenizer = sequence({kDigits, byte_level(true)});
  EXPECT_EQ(pre_of(d), "smollm");
  d.pre_tokenizer = sequence({kDigits, split(kGpt2Regex), byte_level(false)});
  EXPECT_EQ(pre_of(d), "smollm");
  d.pre_tokenizer = sequence({split(kQwen2Regex), byte_level(false)});
  EXPECT_EQ(pre_of(d), "qwen2");
  d.pre_tokenizer = sequence({split(kLlama3Regex), byte_level(false)});
  EXPECT_NE(pre_of(d).find("ignore_merges"), std::string::npos);  // Llama 3 ranks whole words first
  d.model_extra = R"("ignore_merges": true)";
  EXPECT_EQ(pre_of(d), "llama-bpe");
}

TEST(HfTokenizerJsonSpec, RefusesOtherPreTokenizersNamingThem) {
  struct Case {
    std::string pre;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {R"({"type": "Whitespace"})", "\"Whitespace\""},
      {R"({"type": "Metaspace", "replacement": "▁"})", "\"Metaspace\""},
      {byte_level(true, true), "add_prefix_space"},
      {sequence({R"({"type": "Digits", "individual_digits": false})", byte_level(true)}), "individual_digits"},
      {sequence({split("\\s+"), byte_level(false)}), "Split regex"},
      {sequence({split(kLlama3Regex, "Removed"), byte_level(false)}), "Removed"},
      {sequence({R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated"})", byte_level(false)}),
       "Regex"},
      {sequence({byte_level(true), kDigits}), "[Split(GPT-2 regex), ByteLevel, Digits]"},
      {sequence({split(kQwen2Regex), byte_level(true)}), "not a combination"},
      {byte_level(false), "not a combination"},
      {"null", "no pre_tokenizer"},
  };
  for (const Case& c : cases) {
    Doc d;
    d.pre_tokenizer = c.pre;
    const std::string got = pre_of(d);
    EXPECT_NE(got.find("error: t/tokenizer.json: "), std::string::npos) << c.pre;
    EXPECT_NE(got.find(c.needle), std::string::npos) << c.pre << " -> " << got;
  }
}

TEST(HfTokenizerJsonSpec, RefusesOtherModelsAndStages) {
  struct Case {
    std::string what;
    Doc doc;
    std::string needle;
  };
  std::vector<Case> cases;
  auto add = [&](std::string what, auto edit, std::string needle) {
    Doc d;
    edit(d);
    cases.push_back({std::move(what), std::move(d), std::move(needle)});
  };
  add("unigram", [](Doc& d) { d.model_type = R"("Unigram")"; }, "model.type \"Unigram\"");
  add("wordpiece", [](Doc& d) { d.model_type = R"("WordPiece")"; }, "model.type \"WordPiece\"");
  add("sentencepiece bpe", [](Doc& d) { d.model_extra = R"("byte_fallback": true)"; }, "byte_fallback");
  add("dropout", [](Doc& d) { d.model_extra = R"("dropout": 0.1)"; }, "dropout");
  add("subword prefix", [](Doc& d) { d.model_extra = R"("continuing_subword_prefix": "##")"; },
      "continuing_subword_prefix");
  add("normalizer", [](Doc& d) { d.normalizer = R"({"type": "Lowercase"})"; }, "normalizer \"Lowercase\"");
  add("normalizer in sequence",
      [](Doc& d) { d.normalizer = R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "NFKD"}]})"; },
      "normalizer \"NFKD\"");
  add("decoder", [](Doc& d) { d.decoder = R"({"type": "WordPiece"})"; }, "decoder \"WordPiece\"");
  add("post-processor", [](Doc& d) { d.post_processor = R"({"type": "RobertaProcessing"})"; },
      "post_processor \"RobertaProcessing\"");
  add("lstrip", [](Doc& d) { d.added = R"([{"id": 4, "content": "<mask>", "special": true, "lstrip": true}])"; },
      "\"<mask>\" sets lstrip");
  add("hole", [](Doc& d) { d.added = R"([{"id": 9, "content": "<s>", "special": true}])"; }, "token id 4 is in neither");
  add("duplicate id", [](Doc& d) { d.vocab = R"({"a": 0, "b": 1, "ab": 2, "Ġ": 2})"; }, "appears twice");
  add("added id taken", [](Doc& d) { d.added = R"([{"id": 1, "content": "<s>", "special": true}])"; },
      "already belongs to \"b\"");
  add("negative id", [](Doc& d) { d.vocab = R"({"a": -1})"; }, "is not a token id");
  add("huge id", [](Doc& d) { d.vocab = R"({"a": 99999999999})"; }, "is not a token id");
  add("bad merge", [](Doc& d) { d.merges = R"([["a", "b", "c"]])"; }, "model.merges[0]");
  add("merge kind", [](Doc& d) { d.merges = R"([7])"; }, "model.merges[0]");
  add("vocab kind", [](Doc& d) { d.vocab = R"(["a"])"; }, "model.vocab must be an object");
  add("added kind", [](Doc& d) { d.added = R"({})"; }, "added_tokens must be a list");
  add("template without ids",
      [](Doc& d) {
        d.post_processor = R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}],
                              "special_tokens": {}})";
      },
      "exactly one token id");
  for (const Case& c : cases) {
    auto spec = spec_of(c.doc);
    ASSERT_FALSE(spec.ok()) << c.what;
    EXPECT_NE(spec.error().message.find(c.needle), std::string::npos) << c.what << ": " << spec.error().message;
    EXPECT_EQ(spec.error().message.rfind("t/tokenizer.json: ", 0), 0u) << spec.error().message;
  }
  for (std::string_view bad : {"", "{", "[]", "{\"model\": 1}", "{\"model\": {\"type\": \"BPE\"}}"}) {
    auto spec = tokenizer_spec_from_hf(bad, {}, "t/tokenizer.json");
    EXPECT_FALSE(spec.ok()) << bad;
  }
}

TEST(HfTokenizerJsonSpec, BuildsTheSpec) {
  Doc d;
  d.vocab = R"({"a": 0, "b": 1, "ab": 2, "Ġ": 3, "<s>": 4})";  // an added token may repeat its vocab entry
  d.added = R"([{"id": 4, "content": "<s>", "special": true}, {"id": 5, "content": "<tool>", "special": false}])";
  d.merges = R"([["a", "b"]])";
  d.normalizer = R"({"type": "NFC"})";
  auto spec = spec_of(d);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->model, "gpt2");
  EXPECT_EQ(spec->tokens, (std::vector<std::string>{"a", "b", "ab", "Ġ", "<s>", "<tool>"}));
  EXPECT_EQ(spec->token_types, (std::vector<std::int32_t>{1, 1, 1, 1, 3, 4}));
  EXPECT_EQ(spec->merges, std::vector<std::string>{"a b"});
  EXPECT_EQ(spec->bos_id, -1);
  EXPECT_FALSE(spec->add_bos);
  auto tok = Tokenizer::create(*spec);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok->encode("<s>ab<tool>", true), (std::vector<std::int32_t>{4, 2, 5}));
  EXPECT_EQ(tok->encode("<s>ab<tool>", false).back(), 5);  // user-defined tokens match in any text
}

TEST(HfTokenizerJsonSpec, BosAndEosFromTheConfigOrThePostProcessor) {
  Doc d;
  d.post_processor = R"({"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [4], "tokens": ["<s>"]},
                                     "</s>": {"id": "</s>", "ids": [5], "tokens": ["</s>"]}}}]})";
  auto spec = spec_of(d);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->bos_id, 4);
  EXPECT_EQ(spec->eos_id, 5);
  EXPECT_TRUE(spec->add_bos);
  EXPECT_TRUE(spec->add_eos);

  HfTokenizerConfig config;
  config.bos_token = "<s>";
  config.eos_token = "ab";  // a post-processor that appends </s> does not append this EOS
  config.pad_token = "</s>";
  config.unk_token = "a";
  spec = spec_of(d, config);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->bos_id, 4);
  EXPECT_EQ(spec->eos_id, 2);
  EXPECT_EQ(spec->padding_id, 5);
  EXPECT_EQ(spec->unknown_id, 0);
  EXPECT_TRUE(spec->add_bos);
  EXPECT_FALSE(spec->add_eos);

  config.add_bos_token = false;  // the config's flag wins over the post-processor
  config.add_eos_token = true;
  spec = spec_of(d, config);
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(spec->add_bos);
  EXPECT_TRUE(spec->add_eos);

  config.eos_token = "<missing>";
  spec = spec_of(d, config);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.error().message.find("eos_token \"<missing>\" is not in the vocabulary"), std::string::npos)
      << spec.error().message;

  Doc unk;
  unk.model_extra = R"("unk_token": "b")";
  spec = spec_of(unk);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->unknown_id, 1);
}

TEST(HfTokenizerConfigJson, ReadsTokensFlagsAndTemplates) {
  auto c = parse_hf_tokenizer_config(R"({"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
      "eos_token": "</s>", "pad_token": null, "add_bos_token": true, "add_eos_token": null,
      "model_max_length": 1000000000000000019884624838656, "chat_template": "{{ x }}"})",
                                     "c.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->bos_token, "<s>");
  EXPECT_EQ(c->eos_token, "</s>");
  EXPECT_FALSE(c->pad_token.has_value());
  EXPECT_FALSE(c->unk_token.has_value());
  EXPECT_EQ(c->add_bos_token, true);
  EXPECT_FALSE(c->add_eos_token.has_value());
  EXPECT_EQ(c->chat_template, "{{ x }}");

  c = parse_hf_tokenizer_config(R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                      {"name": "default", "template": "D"}]})",
                                "c.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->chat_template, "D");

  c = parse_hf_tokenizer_config("{}", "c.json");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->chat_template.empty());
  EXPECT_FALSE(c->bos_token.has_value());
}

TEST(HfTokenizerConfigJson, RefusesMalformedKeysNamingThem) {
  struct Case {
    std::string text;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {R"({"chat_template": [{"name": "tool_use", "template": "T"}]})", "(tool_use) but none named \"default\""},
      {R"({"chat_template": [{"name": "default"}]})", "list entries"},
      {R"({"chat_template": 3})", "\"chat_template\" must be"},
      {R"({"eos_token": {"text": "</s>"}})", "\"eos_token\" must be"},
      {R"({"unk_token": ["<unk>"]})", "\"unk_token\" must be"},
      {R"({"add_bos_token": "yes"})", "\"add_bos_token\" must be"},
      {R"([])", "expected a JSON object"},
      {R"({"a": 1,})", "c.json: byte"},
  };
  for (const Case& c : cases) {
    auto got = parse_hf_tokenizer_config(c.text, "c.json");
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_NE(got.error().message.find(c.needle), std::string::npos) << c.text << " -> " << got.error().message;
  }
}

}  // namespace
}  // namespace sluice
