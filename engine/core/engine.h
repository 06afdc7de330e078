// Engine: the embedded inference engine as the gateway sees it. One engine thread owns the backend (and so
// the device), the scheduler and every request's decoding state; other threads only submit() and cancel()
// through a queue. Text comes back through each request's GenerationStream, called on the engine thread.
//
// The engine owns everything that needs the tokenizer: the chat template, prompt encoding, incremental
// detokenization (never a broken UTF-8 sequence), stop strings and stop tokens, and usage counts.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/sampling/sampling_params.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/result.h"

namespace sluice {

// Where the model runs. automatic: the GPU when the build has CUDA and a device is visible, else the CPU.
enum class EngineDevice : std::uint8_t { automatic, cpu, cuda };
// "auto", "cpu", "cuda"; nullopt for anything else.
std::optional<EngineDevice> parse_engine_device(std::string_view name);

struct EngineConfig {
  std::string model_path;            // a GGUF file or a Hugging Face model directory
  std::string served_model_name;     // "" = the file name without extension
  std::string chat_template;         // a built-in template name overriding the model's; "" = the model's
  unsigned threads = 2;              // compute threads
  std::uint64_t kv_cache_bytes = std::uint64_t{256} << 20;
  std::uint32_t block_size = 16;
  std::uint32_t max_num_seqs = 32;
  std::uint32_t max_num_batched_tokens = 512;
  std::uint32_t max_model_len = 0;   // 0 = the model's context length
  bool enable_chunked_prefill = true;
  std::uint32_t max_waiting = 256;   // queued requests beyond which submit() answers overloaded
  EngineDevice device = EngineDevice::automatic;
  double gpu_memory_utilization = 0.90;  // cuda: fraction of the GPU's total memory the engine may use
  bool enforce_eager = false;            // cuda: never capture CUDA graphs
};

struct EngineError {
  std::string message;  // says what to change
};

// Why a request could not run, or stopped early.
enum class GenerationErrorKind : std::uint8_t { overloaded, context_too_long, invalid, cancelled, internal };

// Receives one request's output, on the engine thread. Calls: on_text* then on_finish, or on_error; exactly
// one of the two terminal calls, after which the engine drops the stream. Implementations must not block.
class GenerationStream {
 public:
  virtual ~GenerationStream() = default;
  virtual void on_text(std::string text, std::int32_t tokens) = 0;
  virtual void on_finish(std::string_view reason, std::int64_t prompt_tokens, std::int64_t completion_tokens) = 0;
  virtual void on_error(GenerationErrorKind kind, std::string message) = 0;
  // Backpressure: while false the engine keeps generating but holds (coalesces) the text.
  virtual bool has_room() const = 0;
};

struct GenerationRequest {
  std::vector<std::int32_t> prompt;
  SamplingParams params;
  std::shared_ptr<GenerationStream> stream;
};

struct EngineStats {
  std::uint32_t running = 0;
  std::uint32_t waiting = 0;
  double kv_usage = 0;
  std::uint64_t steps = 0;
  std::uint64_t preemptions = 0;
  std::uint64_t kv_blocks_total = 0;
  std::uint64_t kv_blocks_free = 0;
  double last_step_seconds = 0;
  std::uint64_t generated_tokens = 0;
  // Memory the backend holds on its device (the GPU; for the CPU backend, host memory of the KV cache).
  std::uint64_t weight_bytes = 0;
  std::uint64_t kv_cache_bytes = 0;
  std::uint64_t other_bytes = 0;  // activations, scratch, graphs, library workspaces
  bool healthy = true;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>, EngineError> create(const EngineConfig& config);
  ~Engine();  // stops the engine thread; requests still running get on_error(cancelled)

  // Any thread. Returns the request id, or why it cannot run (nothing is called on the stream then).
  Result<std::uint64_t, std::pair<GenerationErrorKind, std::string>> submit(GenerationRequest request);
  // Any thread. The request ends with on_error(cancelled) and frees its KV blocks within one step.
  void cancel(std::uint64_t id);

  // Prompt preparation (any thread; the tokenizer and template are immutable).
  Result<std::vector<std::int32_t>, std::string> encode_chat(const std::vector<ChatTurn>& messages) const;
  std::vector<std::int32_t> encode_text(std::string_view text) const;

  const std::string& model_name() const { return model_name_; }
  // The backend serving the model: "cpu" or "cuda"; and one line on why and how (memory plan), for the log.
  std::string_view backend_name() const;
  const std::string& backend_note() const { return backend_note_; }
  std::uint32_t max_model_len() const { return max_model_len_; }
  std::uint32_t vocab_size() const;
  EngineStats stats() const;
  // Any thread: how long the step now running has been running, 0 between steps (the watchdog's input).
  double current_step_seconds() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string model_name_;
  std::uint32_t max_model_len_ = 0;
  std::string backend_note_;
};

}  // namespace sluice
