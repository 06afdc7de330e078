#include "engine/tokenizer/hf_tokenizer_json.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/chat_template_library.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/util/json_lite.h"

namespace sluice {
namespace {

// Byte-level BPE tokenizer.json files of real models are under 10 MiB (Llama 3: 9 MB).
constexpr std::uintmax_t kMaxTokenizerJsonBytes = std::uintmax_t{64} << 20;
constexpr std::uintmax_t kMaxSmallFileBytes = std::uintmax_t{16} << 20;
// Bounds the id table a hostile file can make us allocate; far above any real vocabulary.
constexpr std::int64_t kMaxTokenId = (std::int64_t{1} << 24) - 1;

// The regular expressions the families' tokenizer.json files give a Split pre-tokenizer, byte for byte.
constexpr std::string_view gpt2_regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view llama3_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view qwen2_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

using Check = Status<TokenizerError>;

TokenizerError error(const std::string& source, std::string_view what) {
  return TokenizerError{source + ": " + std::string(what)};
}

// Absent and null both mean "not given".
const json::Value* member(const json::Value& object, std::string_view key) {
  const json::Value* v = object.find(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

std::string_view string_member(const json::Value& object, std::string_view key) {
  const json::Value* v = member(object, key);
  const std::string* s = v != nullptr ? v->as_string() : nullptr;
  return s != nullptr ? std::string_view(*s) : std::string_view();
}

// A boolean member; absent or null gives `fallback`.
Check read_flag(const json::Value& object, std::string_view key, bool fallback, bool& out, const std::string& source,
                 std::string_view where) {
  const json::Value* v = member(object, key);
  if (v == nullptr) {
    out = fallback;
    return Ok{};
  }
  const auto b = v->as_bool();
  if (!b) return fail(error(source, std::string(where) + " \"" + std::string(key) + "\" must be true or false"));
  out = *b;
  return Ok{};
}

// Long strings (regexes, texts) shortened for messages.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kMax = 80;
  if (text.size() <= kMax) return std::string(text);
  std::size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
  return std::string(text.substr(0, cut)) + "...";
}

#define SLUICE_TRY(expr)                           \
  do {                                             \
    if (auto st_ = (expr); !st_) return fail(std::move(st_.error())); \
  } while (0)

// ---- pre-tokenizer recognition ----

// The pre-tokenizer as a flat list of steps; families are recognised by the list.
enum class Step : std::uint8_t { digits, split_gpt2, split_llama3, split_qwen2, byte_level };

std::string_view step_name(Step s) {
  switch (s) {
    case Step::digits: return "Digits";
    case Step::split_gpt2: return "Split(GPT-2 regex)";
    case Step::split_llama3: return "Split(Llama 3 regex)";
    case Step::split_qwen2: return "Split(Qwen2 regex)";
    case Step::byte_level: return "ByteLevel";
  }
  return "?";
}

Check collect_steps(const json::Value& node, const std::string& source, std::vector<Step>& steps) {
  if (!node.is_object()) return fail(error(source, "pre_tokenizer: expected an object"));
  const std::string_view type = string_member(node, "type");
  if (type == "Sequence") {
    const json::Value* list = member(node, "pretokenizers");
    if (list == nullptr || !list->is_array()) {
      return fail(error(source, "pre_tokenizer Sequence has no \"pretokenizers\" list"));
    }
    for (const json::Value& item : list->items()) SLUICE_TRY(collect_steps(item, source, steps));
    return Ok{};
  }
  if (type == "ByteLevel") {
    bool add_prefix_space = true;
    bool use_regex = true;
    SLUICE_TRY(read_flag(node, "add_prefix_space", true, add_prefix_space, source, "pre_tokenizer ByteLevel"));
    SLUICE_TRY(read_flag(node, "use_regex", true, use_regex, source, "pre_tokenizer ByteLevel"));
    if (add_prefix_space) {
      return fail(error(source, "pre_tokenizer ByteLevel with add_prefix_space true is not supported"));
    }
    if (use_regex) steps.push_back(Step::split_gpt2);
    steps.push_back(Step::byte_level);
    return Ok{};
  }
  if (type == "Digits") {
    bool individual = false;
    SLUICE_TRY(read_flag(node, "individual_digits", false, individual, source, "pre_tokenizer Digits"));
    if (!individual) {
      return fail(error(source, "pre_tokenizer Digits without individual_digits is not supported"));
    }
    steps.push_back(Step::digits);
    return Ok{};
  }
  if (type == "Split") {
    const json::Value* pattern = member(node, "pattern");
    const json::Value* regex = pattern != nullptr ? member(*pattern, "Regex") : nullptr;
    const std::string* text = regex != nullptr ? regex->as_string() : nullptr;
    if (text == nullptr) return fail(error(source, "pre_tokenizer Split: only a {\"Regex\": ...} pattern is supported"));
    const std::string_view behavior = string_member(node, "behavior");
    if (behavior != "Isolated") {
      return fail(error(source, "pre_tokenizer Split with behavior \"" + std::string(behavior) +
                                    "\" is not supported (Isolated is)"));
    }
    bool invert = false;
    SLUICE_TRY(read_flag(node, "invert", false, invert, source, "pre_tokenizer Split"));
    if (invert) return fail(error(source, "pre_tokenizer Split with invert true is not supported"));
    if (*text == gpt2_regex) {
      steps.push_back(Step::split_gpt2);
    } else if (*text == llama3_regex) {
      steps.push_back(Step::split_llama3);
    } else if (*text == qwen2_regex) {
      steps.push_back(Step::split_qwen2);
    } else {
      return fail(error(source, "pre_tokenizer Split regex \"" + excerpt(*text) +
                                    "\" is not one the engine implements (GPT-2's, Llama 3's, Qwen2's)"));
    }
    return Ok{};
  }
  return fail(error(source, "pre_tokenizer \"" + std::string(type) + "\" is not supported"));
}

// The Tokenizer's pre-tokenizer name (pre_tokenizer.h) for a tokenizer.json pre_tokenizer.
Result<std::string, TokenizerError> pre_tokenizer_name(const json::Value* node, const std::string& source) {
  if (node == nullptr) {
    return fail(error(source, "has no pre_tokenizer; a byte-level BPE needs a ByteLevel pre-tokenizer"));
  }
  std::vector<Step> steps;
  SLUICE_TRY(collect_steps(*node, source, steps));
  using S = Step;
  if (steps == std::vector<S>{S::split_gpt2, S::byte_level}) return std::string("gpt2");
  if (steps == std::vector<S>{S::digits, S::split_gpt2, S::byte_level}) return std::string("smollm");
  if (steps == std::vector<S>{S::split_llama3, S::byte_level}) return std::string("llama-bpe");
  if (steps == std::vector<S>{S::split_qwen2, S::byte_level}) return std::string("qwen2");
  std::string shown;
  for (Step s : steps) shown += (shown.empty() ? "" : ", ") + std::string(step_name(s));
  return fail(error(source, "pre_tokenizer [" + shown +
                                "] is not a combination the engine implements; supported: ByteLevel (GPT-2), "
                                "Digits + ByteLevel (SmolLM2, StarCoder), Split(Llama 3 regex) + ByteLevel, "
                                "Split(Qwen2 regex) + ByteLevel"));
}

// ---- the other pipeline stages ----

Check check_normalizer(const json::Value& node, const std::string& source) {
  const std::string_view type = string_member(node, "type");
  if (type == "NFC") return Ok{};  // accepted, not applied: see the header
  if (type == "Sequence") {
    const json::Value* list = member(node, "normalizers");
    if (list != nullptr && list->is_array()) {
      for (const json::Value& item : list->items()) SLUICE_TRY(check_normalizer(item, source));
      return Ok{};
    }
  }
  return fail(error(source, "normalizer \"" + std::string(type) +
                                "\" is not supported (byte-level BPE tokenizers have none, or NFC)"));
}

// The special tokens a TemplateProcessing post-processor puts before and after a single text.
struct AddedAround {
  std::int32_t leading = -1;
  std::int32_t trailing = -1;
};

Result<std::int32_t, TokenizerError> template_token_id(const json::Value& specials, std::string_view name,
                                                       const std::string& source) {
  const json::Value* entry = specials.find(name);
  const json::Value* ids = entry != nullptr ? member(*entry, "ids") : nullptr;
  if (ids == nullptr || !ids->is_array() || ids->size() != 1 || !ids->items()[0].as_i64() ||
      *ids->items()[0].as_i64() < 0 || *ids->items()[0].as_i64() > kMaxTokenId) {
    return fail(error(source, "post_processor TemplateProcessing: special token \"" + excerpt(name) +
                                  "\" must map to exactly one token id"));
  }
  return static_cast<std::int32_t>(*ids->items()[0].as_i64());
}

Check read_post_processor(const json::Value& node, const std::string& source, AddedAround& around) {
  const std::string_view type = string_member(node, "type");
  if (type == "ByteLevel") return Ok{};  // adjusts offsets only
  if (type == "Sequence") {
    const json::Value* list = member(node, "processors");
    if (list == nullptr || !list->is_array()) {
      return fail(error(source, "post_processor Sequence has no \"processors\" list"));
    }
    for (const json::Value& item : list->items()) SLUICE_TRY(read_post_processor(item, source, around));
    return Ok{};
  }
  if (type == "TemplateProcessing") {
    const json::Value* single = member(node, "single");
    const json::Value* specials = member(node, "special_tokens");
    if (single == nullptr || !single->is_array() || specials == nullptr || !specials->is_object()) {
      return fail(error(source, "post_processor TemplateProcessing needs \"single\" and \"special_tokens\""));
    }
    bool seen_text = false;
    for (const json::Value& piece : single->items()) {
      if (member(piece, "Sequence") != nullptr) {
        seen_text = true;
        continue;
      }
      const json::Value* special = member(piece, "SpecialToken");
      const std::string_view name = special != nullptr ? string_member(*special, "id") : std::string_view();
      if (name.empty()) {
        return fail(error(source, "post_processor TemplateProcessing: \"single\" holds an entry that is neither "
                                  "a Sequence nor a SpecialToken"));
      }
      auto id = template_token_id(*specials, name, source);
      if (!id) return fail(std::move(id.error()));
      if (!seen_text) {
        if (around.leading < 0) around.leading = *id;
      } else {
        around.trailing = *id;
      }
    }
    return Ok{};
  }
  return fail(error(source, "post_processor \"" + std::string(type) + "\" is not supported"));
}

// Reads a whole file of at most `max_bytes`.
Result<std::string, TokenizerError> read_file(const std::string& path, std::uintmax_t max_bytes) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return fail(TokenizerError{path + ": cannot read (" + ec.message() + ")"});
  if (size > max_bytes) {
    return fail(TokenizerError{path + ": larger than " + std::to_string(max_bytes) + " bytes"});
  }
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<std::size_t>(size), '\0');
  if (!in || !in.read(text.data(), static_cast<std::streamsize>(size))) {
    return fail(TokenizerError{path + ": cannot read"});
  }
  return text;
}

}  // namespace

Result<HfTokenizerConfig, TokenizerError> parse_hf_tokenizer_config(std::string_view json_text,
                                                                    const std::string& source) {
  auto root = json::parse(json_text);
  if (!root) return fail(error(source, root.error().message));
  if (!root->is_object()) return fail(error(source, "expected a JSON object"));
  HfTokenizerConfig config;
  struct TokenKey {
    std::string_view key;
    std::optional<std::string>* out;
  };
  for (TokenKey k : {TokenKey{"bos_token", &config.bos_token}, TokenKey{"eos_token", &config.eos_token},
                     TokenKey{"pad_token", &config.pad_token}, TokenKey{"unk_token", &config.unk_token}}) {
    const json::Value* v = member(*root, k.key);
    if (v == nullptr) continue;
    const json::Value* content = v->is_object() ? member(*v, "content") : v;
    const std::string* text = content != nullptr ? content->as_string() : nullptr;
    if (text == nullptr) {
      return fail(error(source, "\"" + std::string(k.key) +
                                    "\" must be a string, an object with a \"content\" string, or null"));
    }
    *k.out = *text;
  }
  struct FlagKey {
    std::string_view key;
    std::optional<bool>* out;
  };
  for (FlagKey k : {FlagKey{"add_bos_token", &config.add_bos_token}, FlagKey{"add_eos_token", &config.add_eos_token}}) {
    const json::Value* v = member(*root, k.key);
    if (v == nullptr) continue;
    const auto b = v->as_bool();
    if (!b) return fail(error(source, "\"" + std::string(k.key) + "\" must be true, false or null"));
    *k.out = *b;
  }
  if (const json::Value* t = member(*root, "chat_template")) {
    if (const std::string* text = t->as_string()) {
      config.chat_template = *text;
    } else if (t->is_array()) {
      std::string names;
      bool found = false;
      for (const json::Value& entry : t->items()) {
        const json::Value* name = member(entry, "name");
        const json::Value* body = member(entry, "template");
        if (name == nullptr || name->as_string() == nullptr || body == nullptr || body->as_string() == nullptr) {
          return fail(error(source, "\"chat_template\" list entries must be {\"name\": ..., \"template\": ...}"));
        }
        if (*name->as_string() == "default" && !found) {
          config.chat_template = *body->as_string();
          found = true;
        }
        names += (names.empty() ? "" : ", ") + excerpt(*name->as_string());
      }
      if (!found) {
        return fail(error(source, "\"chat_template\" lists templates (" + names + ") but none named \"default\""));
      }
    } else {
      return fail(error(source, "\"chat_template\" must be a string or a list of named templates"));
    }
  }
  return config;
}

Result<TokenizerSpec, TokenizerError> tokenizer_spec_from_hf(std::string_view tokenizer_json,
                                                             const HfTokenizerConfig& config,
                                                             const std::string& source) {
  auto parsed = json::parse(tokenizer_json);
  if (!parsed) return fail(error(source, parsed.error().message));
  const json::Value& root = *parsed;
  if (!root.is_object()) return fail(error(source, "expected a JSON object"));
  const json::Value* model = member(root, "model");
  if (model == nullptr || !model->is_object()) return fail(error(source, "has no \"model\" object"));

  const std::string_view type = string_member(*model, "type");
  if (!type.empty() && type != "BPE") {
    return fail(error(source, "model.type \"" + std::string(type) +
                                  "\" is not supported: the engine reads byte-level BPE tokenizer.json files (for "
                                  "other tokenizers, use the model's GGUF file)"));
  }
  bool byte_fallback = false;
  bool ignore_merges = false;
  SLUICE_TRY(read_flag(*model, "byte_fallback", false, byte_fallback, source, "model"));
  SLUICE_TRY(read_flag(*model, "ignore_merges", false, ignore_merges, source, "model"));
  if (byte_fallback) {
    return fail(error(source, "model.byte_fallback is true: SentencePiece-style BPE is not supported from "
                              "tokenizer.json (use the model's GGUF file)"));
  }
  if (const json::Value* dropout = member(*model, "dropout"); dropout != nullptr && dropout->as_f64() != 0.0) {
    return fail(error(source, "model.dropout is set: BPE dropout is not supported"));
  }
  for (std::string_view key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!string_member(*model, key).empty()) {
      return fail(error(source, "model." + std::string(key) + " is set: only byte-level BPE is supported"));
    }
  }
  const json::Value* vocab = member(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) return fail(error(source, "model.vocab must be an object"));
  const json::Value* merges = member(*model, "merges");
  if (merges == nullptr || !merges->is_array()) return fail(error(source, "model.merges must be a list"));
  const json::Value* added = member(root, "added_tokens");
  if (added != nullptr && !added->is_array()) return fail(error(source, "added_tokens must be a list"));

  TokenizerSpec spec;
  spec.model = "gpt2";
  auto pre = pre_tokenizer_name(member(root, "pre_tokenizer"), source);
  if (!pre) return fail(std::move(pre.error()));
  spec.pre = std::move(*pre);
  const auto family = pre_tokenizer_from_name(spec.pre);
  if (family && family->ignore_merges != ignore_merges) {
    return fail(error(source, std::string("model.ignore_merges is ") + (ignore_merges ? "true" : "false") +
                                  ", but the engine's '" + spec.pre + "' pre-tokenizer family uses " +
                                  (family->ignore_merges ? "true" : "false")));
  }
  if (const json::Value* n = member(root, "normalizer")) SLUICE_TRY(check_normalizer(*n, source));
  if (const json::Value* d = member(root, "decoder"); d != nullptr && string_member(*d, "type") != "ByteLevel") {
    return fail(error(source, "decoder \"" + std::string(string_member(*d, "type")) +
                                  "\" is not supported (byte-level BPE decodes with ByteLevel)"));
  }
  AddedAround around;
  if (const json::Value* p = member(root, "post_processor")) SLUICE_TRY(read_post_processor(*p, source, around));

  // The id table: model.vocab plus added_tokens, dense from 0.
  std::int64_t max_id = -1;
  const std::vector<std::string>& texts = vocab->keys();
  std::vector<std::int64_t> vocab_ids(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto id = vocab->items()[i].as_i64();
    if (!id || *id < 0 || *id > kMaxTokenId) {
      return fail(error(source, "model.vocab[\"" + excerpt(texts[i]) + "\"] is not a token id"));
    }
    vocab_ids[i] = *id;
    max_id = std::max(max_id, *id);
  }
  struct Added {
    std::int64_t id;
    const std::string* text;
    bool special;
  };
  std::vector<Added> added_tokens;
  if (added != nullptr) {
    for (const json::Value& entry : added->items()) {
      const json::Value* id = member(entry, "id");
      const json::Value* content = member(entry, "content");
      const auto id_value = id != nullptr ? id->as_i64() : std::nullopt;
      if (!id_value || *id_value < 0 || *id_value > kMaxTokenId || content == nullptr ||
          content->as_string() == nullptr) {
        return fail(error(source, "added_tokens entries need an \"id\" and a \"content\" string"));
      }
      const std::string& text = *content->as_string();
      bool special = false;
      SLUICE_TRY(read_flag(entry, "special", false, special, source, "added token"));
      for (std::string_view option : {"lstrip", "rstrip", "single_word"}) {
        bool set = false;
        SLUICE_TRY(read_flag(entry, option, false, set, source, "added token"));
        if (set) {
          return fail(error(source, "added token \"" + excerpt(text) + "\" sets " + std::string(option) +
                                        ", which the engine does not implement"));
        }
      }
      added_tokens.push_back(Added{*id_value, &text, special});
      max_id = std::max(max_id, *id_value);
    }
  }
  if (max_id < 0) return fail(error(source, "the vocabulary is empty"));
  const auto count = static_cast<std::size_t>(max_id + 1);
  spec.tokens.resize(count);
  spec.token_types.assign(count, static_cast<std::int32_t>(TokenType::undefined));
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto id = static_cast<std::size_t>(vocab_ids[i]);
    if (spec.token_types[id] != static_cast<std::int32_t>(TokenType::undefined)) {
      return fail(error(source, "token id " + std::to_string(id) + " appears twice in model.vocab (\"" +
                                    excerpt(spec.tokens[id]) + "\" and \"" + excerpt(texts[i]) + "\")"));
    }
    spec.tokens[id] = texts[i];
    spec.token_types[id] = static_cast<std::int32_t>(TokenType::normal);
  }
  for (const Added& a : added_tokens) {
    const auto id = static_cast<std::size_t>(a.id);
    if (spec.token_types[id] != static_cast<std::int32_t>(TokenType::undefined) && spec.tokens[id] != *a.text) {
      return fail(error(source, "added token \"" + excerpt(*a.text) + "\" has id " + std::to_string(id) +
                                    ", which already belongs to \"" + excerpt(spec.tokens[id]) + "\""));
    }
    spec.tokens[id] = *a.text;
    spec.token_types[id] = static_cast<std::int32_t>(a.special ? TokenType::control : TokenType::user_defined);
  }
  for (std::size_t id = 0; id < count; ++id) {
    if (spec.token_types[id] == static_cast<std::int32_t>(TokenType::undefined)) {
      return fail(error(source, "token id " + std::to_string(id) + " is in neither model.vocab nor added_tokens"));
    }
  }

  spec.merges.reserve(merges->size());
  for (std::size_t i = 0; i < merges->size(); ++i) {
    const json::Value& m = merges->items()[i];
    if (const std::string* text = m.as_string()) {
      spec.merges.push_back(*text);
    } else if (m.is_array() && m.size() == 2 && m.items()[0].as_string() != nullptr &&
               m.items()[1].as_string() != nullptr) {
      spec.merges.push_back(*m.items()[0].as_string() + " " + *m.items()[1].as_string());
    } else {
      return fail(error(source, "model.merges[" + std::to_string(i) + "] is neither \"left right\" nor [left, right]"));
    }
  }

  // Special tokens by text; the lowest id wins where a text repeats.
  std::unordered_map<std::string_view, std::int32_t> by_text;
  by_text.reserve(count);
  for (std::size_t id = 0; id < count; ++id) by_text.try_emplace(spec.tokens[id], static_cast<std::int32_t>(id));
  struct Named {
    std::string_view key;
    const std::optional<std::string>* text;
    std::int32_t* out;
  };
  for (Named n : {Named{"bos_token", &config.bos_token, &spec.bos_id}, Named{"eos_token", &config.eos_token, &spec.eos_id},
                  Named{"pad_token", &config.pad_token, &spec.padding_id},
                  Named{"unk_token", &config.unk_token, &spec.unknown_id}}) {
    if (!n.text->has_value()) continue;
    const auto it = by_text.find(**n.text);
    if (it == by_text.end()) {
      return fail(error(source, "tokenizer_config.json's " + std::string(n.key) + " \"" + excerpt(**n.text) +
                                    "\" is not in the vocabulary"));
    }
    *n.out = it->second;
  }
  if (spec.unknown_id < 0) {
    const std::string_view unk = string_member(*model, "unk_token");
    if (!unk.empty()) {
      const auto it = by_text.find(unk);
      if (it == by_text.end()) {
        return fail(error(source, "model.unk_token \"" + excerpt(unk) + "\" is not in the vocabulary"));
      }
      spec.unknown_id = it->second;
    }
  }
  if (around.leading >= static_cast<std::int64_t>(count) || around.trailing >= static_cast<std::int64_t>(count)) {
    return fail(error(source, "post_processor names a token id outside the vocabulary"));
  }
  // Without a tokenizer_config.json, the token the post-processor puts first is the BOS, and the one it puts
  // last the EOS.
  if (!config.bos_token && around.leading >= 0) spec.bos_id = around.leading;
  if (!config.eos_token && around.trailing >= 0) spec.eos_id = around.trailing;
  spec.add_bos = config.add_bos_token.value_or(around.leading >= 0 && around.leading == spec.bos_id);
  spec.add_eos = config.add_eos_token.value_or(around.trailing >= 0 && around.trailing == spec.eos_id);
  spec.add_space_prefix = false;
  return spec;
}

Result<HfTokenizerFiles, TokenizerError> load_hf_tokenizer(const std::string& dir) {
  const std::string tokenizer_path = dir + "/tokenizer.json";
  const std::string config_path = dir + "/tokenizer_config.json";
  const std::string template_path = dir + "/chat_template.jinja";
  std::error_code ec;
  if (!std::filesystem::exists(tokenizer_path, ec)) {
    return fail(TokenizerError{tokenizer_path + " is missing (a Hugging Face model directory needs tokenizer.json)"});
  }
  auto tokenizer_json = read_file(tokenizer_path, kMaxTokenizerJsonBytes);
  if (!tokenizer_json) return fail(std::move(tokenizer_json.error()));

  HfTokenizerConfig config;
  if (std::filesystem::exists(config_path, ec)) {
    auto text = read_file(config_path, kMaxSmallFileBytes);
    if (!text) return fail(std::move(text.error()));
    auto parsed = parse_hf_tokenizer_config(*text, config_path);
    if (!parsed) return fail(std::move(parsed.error()));
    config = std::move(*parsed);
  }
  std::string chat_template;
  std::string origin;
  if (std::filesystem::exists(template_path, ec)) {
    auto text = read_file(template_path, kMaxSmallFileBytes);
    if (!text) return fail(std::move(text.error()));
    chat_template = std::move(*text);
    origin = template_path;
  } else if (!config.chat_template.empty()) {
    chat_template = std::move(config.chat_template);
    origin = config_path + " chat_template";
  }

  auto spec = tokenizer_spec_from_hf(*tokenizer_json, config, tokenizer_path);
  if (!spec) return fail(std::move(spec.error()));
  auto tokenizer = Tokenizer::create(*spec);
  if (!tokenizer) return fail(TokenizerError{tokenizer_path + ": " + tokenizer.error().message});
  return HfTokenizerFiles{std::move(*tokenizer), std::move(chat_template), std::move(origin)};
}

Result<ChatTemplate, TemplateError> hf_chat_template(const HfTokenizerFiles& files, std::string_view override_name) {
  const Tokenizer& t = files.tokenizer;
  std::string bos = t.bos_id() >= 0 ? std::string(t.token_text(t.bos_id())) : std::string();
  std::string eos = t.eos_id() >= 0 ? std::string(t.token_text(t.eos_id())) : std::string();
  if (!override_name.empty()) return ChatTemplate::builtin(override_name, std::move(bos), std::move(eos));
  if (files.chat_template.empty()) {
    std::string names;
    for (std::string_view n : builtin_template_names()) names += (names.empty() ? "" : ", ") + std::string(n);
    return fail(TemplateError{TemplateErrorKind::missing,
                              "the model directory has no chat template (neither chat_template.jinja nor a "
                              "\"chat_template\" in tokenizer_config.json); set engine.chat_template in the server "
                              "config to one of: " + names});
  }
  return ChatTemplate::parse(files.chat_template, files.chat_template_origin, std::move(bos), std::move(eos));
}

#undef SLUICE_TRY

}  // namespace sluice
