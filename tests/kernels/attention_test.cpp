// Paged attention kernels (kernels/cuda/decode_attention.cu, prefill_attention.cu) against the CPU reference
// (attention_reference): a sweep of head shapes, batch sizes and context lengths on fresh random inputs,
// bf16 outputs within 1e-2 relative error per (row, head) vector; replay of a captured decode launch after
// the positions grew; launcher validation.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/attention.h"
#include "tests/kernels/attention_test_util.h"
#include "tests/kernels/gpu_test_util.h"

namespace sluice::cuda::test {
namespace {

const __nv_bfloat16 kSentinel = __float2bfloat16(7.0f);

std::string seed_text() {
  return "SLUICE_TEST_SEED=" + std::to_string(test_seed());
}

// One decode launch: listed row i has `contexts[i]` positions (0: position -1, which must give zeros).
struct DecodeCase {
  std::vector<std::int32_t> contexts;
  std::uint32_t max_context = 0;
  // Through `tokens`, in shuffled order, with unlisted rows between them that must stay untouched, and
  // q / out rows wider than the heads (a fused QKV buffer, a padded output).
  bool indirect = false;
};

std::string describe(const DecodeCase& c) {
  std::string s = "rows=" + std::to_string(c.contexts.size()) + " max_context=" + std::to_string(c.max_context) +
                  (c.indirect ? " indirect" : "") + " contexts=";
  for (std::size_t i = 0; i < c.contexts.size() && i < 16; ++i) s += std::to_string(c.contexts[i]) + ",";
  return s;
}

// Runs the case on the device and on the reference; returns the worst relative error.
double run_decode_case(const HeadShape& shape, const DecodeCase& c, std::mt19937_64& rng) {
  SCOPED_TRACE(describe(shape) + " " + describe(c) + " " + seed_text());
  const std::uint32_t listed = static_cast<std::uint32_t>(c.contexts.size());
  std::vector<std::uint32_t> capacity;
  for (const std::int32_t n : c.contexts) capacity.push_back(static_cast<std::uint32_t>(std::max(n, 1)));
  const PagedKv kv = make_paged_kv(shape, capacity, rng);

  const std::uint32_t width = shape.n_heads * shape.head_dim;
  const std::uint32_t rows = c.indirect ? 2 * listed + 1 : listed;
  const std::uint32_t q_stride = c.indirect ? (shape.n_heads + 2 * shape.kv_heads) * shape.head_dim : width;
  const std::uint32_t out_stride = c.indirect ? width + 64 : width;

  // Row assignment: listed entry i lives at row_of[i].
  std::vector<std::int32_t> row_of(listed);
  std::vector<std::int32_t> untouched;
  if (c.indirect) {
    std::vector<std::int32_t> all(rows);
    for (std::uint32_t r = 0; r < rows; ++r) all[r] = static_cast<std::int32_t>(r);
    std::shuffle(all.begin(), all.end(), rng);
    std::copy(all.begin(), all.begin() + listed, row_of.begin());
    untouched.assign(all.begin() + listed, all.end());
  } else {
    for (std::uint32_t i = 0; i < listed; ++i) row_of[i] = static_cast<std::int32_t>(i);
  }
  std::vector<std::int32_t> positions(rows, 0), table_offset(rows, 0);
  for (std::uint32_t i = 0; i < listed; ++i) {
    positions[row_of[i]] = c.contexts[i] - 1;
    table_offset[row_of[i]] = kv.table_offset[i];
  }

  const std::vector<__nv_bfloat16> q = random_queries(std::size_t{rows} * q_stride, rng);
  std::vector<__nv_bfloat16> want(std::size_t{rows} * out_stride, kSentinel);

  DecodeAttentionParams host{};
  host.q = q.data();
  host.out = want.data();
  host.q_stride = q_stride;
  host.out_stride = out_stride;
  host.k_cache = kv.k.data();
  host.v_cache = kv.v.data();
  host.tokens = c.indirect ? row_of.data() : nullptr;
  host.positions = positions.data();
  host.block_tables = kv.tables.data();
  host.table_offset = table_offset.data();
  host.num_tokens = listed;
  host.n_heads = shape.n_heads;
  host.kv_heads = shape.kv_heads;
  host.head_dim = shape.head_dim;
  host.block_size = shape.block_size;
  host.max_context = c.max_context;
  host.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  attention_reference(host);

  DeviceBuffer<__nv_bfloat16> d_q(q), d_k(kv.k), d_v(kv.v);
  DeviceBuffer<__nv_bfloat16> d_out(std::vector<__nv_bfloat16>(want.size(), kSentinel));
  DeviceBuffer<std::int32_t> d_tokens(row_of), d_pos(positions), d_tables(kv.tables), d_offset(table_offset);
  DeviceBuffer<unsigned char> d_ws(
      decode_attention_workspace_bytes(listed, shape.n_heads, shape.head_dim, c.max_context));
  if (d_ws.n > 0) {
    EXPECT_EQ(cudaMemset(d_ws.ptr, 0, d_ws.n), cudaSuccess);  // the arrival counters start at zero
  }

  DecodeAttentionParams dev = host;
  dev.q = d_q.ptr;
  dev.out = d_out.ptr;
  dev.k_cache = d_k.ptr;
  dev.v_cache = d_v.ptr;
  dev.tokens = c.indirect ? d_tokens.ptr : nullptr;
  dev.positions = d_pos.ptr;
  dev.block_tables = d_tables.ptr;
  dev.table_offset = d_offset.ptr;
  dev.workspace = d_ws.ptr;
  const cudaError_t err = launch_decode_attention(dev, nullptr);
  EXPECT_EQ(err, cudaSuccess) << error_text(err);
  const cudaError_t sync = cudaDeviceSynchronize();
  EXPECT_EQ(sync, cudaSuccess) << error_text(sync);
  if (err != cudaSuccess || sync != cudaSuccess) return 1.0;

  return expect_rows_match(d_out.download(), want, row_of, untouched, out_stride, shape, kSentinel);
}

std::vector<std::int32_t> random_contexts(std::size_t n, std::int32_t max, std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int32_t> dist(1, max);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(DecodeAttention, MatchesReferenceAcrossShapesAndLengths) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test_seed() ^ 0xdec0de);
  double worst = 0.0;
  for (const HeadShape& shape : sweep_shapes()) {
    std::vector<DecodeCase> cases;
    // Partition and block boundaries, up to ten partitions.
    cases.push_back({{1, 2, 16, 17, 33, 511, 512, 513, 1023, 1024, 1025, 1537, 4999, 5000}, 5000, false});
    // A full batch of mixed lengths.
    {
      DecodeCase big{random_contexts(64, 2048, rng), 2048, false};
      big.contexts[0] = 2048;
      big.contexts[1] = 1;
      cases.push_back(big);
    }
    // Contexts up to one partition (split finer for this small batch), including exactly one full partition.
    {
      DecodeCase one{random_contexts(9, 512, rng), 512, false};
      one.contexts[0] = 512;
      cases.push_back(one);
    }
    cases.push_back({random_contexts(3, 100, rng), 100, false});
    cases.push_back({{1}, 1, false});
    // Batch 1: rows split into up to 32 partitions of whole tiles, short and long, in a grid sized for more.
    cases.push_back({{5000}, 5000, false});
    cases.push_back({{700}, 8192, false});
    cases.push_back({{65}, 128, false});
    // A grid far larger than the lengths: most partitions exit at once and the combine ignores them.
    cases.push_back({{1, 50, 700}, 8192, false});
    // Row indirection, strided rows, unlisted rows left alone, and a row with no position (zero output).
    cases.push_back({{300, 0, 1500, 7, 513}, 1500, true});
    cases.push_back({{0, 9, 77}, 100, true});
    for (const DecodeCase& c : cases) {
      worst = std::max(worst, run_decode_case(shape, c, rng));
      if (HasFailure()) return;
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
  std::printf("decode attention: worst relative error %.3g (tolerance %.0e per row and head)\n", worst, kBf16Tolerance);
}

// Prefill: sequences of new tokens (start_pos > 0 for later chunks) laid out one after another in q / out with
// one spare row between sequences (a decode row of a mixed batch, say) that the kernel must not write.
struct PrefillSeq {
  std::int32_t start = 0;
  std::int32_t count = 0;
};

double run_prefill_case(const HeadShape& shape, const std::vector<PrefillSeq>& seqs, std::uint32_t max_tokens,
                        std::mt19937_64& rng) {
  std::string text = describe(shape) + " max_tokens_per_seq=" + std::to_string(max_tokens) + " seqs=";
  for (const PrefillSeq& s : seqs) text += "(" + std::to_string(s.start) + "+" + std::to_string(s.count) + ")";
  SCOPED_TRACE(text + " " + seed_text());

  std::vector<std::uint32_t> capacity;
  for (const PrefillSeq& s : seqs) capacity.push_back(static_cast<std::uint32_t>(s.start + s.count));
  const PagedKv kv = make_paged_kv(shape, capacity, rng);

  std::vector<std::int32_t> token_begin, token_count, start_pos;
  std::vector<std::int32_t> listed, untouched, positions, table_offset;
  std::int32_t row = 0;
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    token_begin.push_back(row);
    token_count.push_back(seqs[s].count);
    start_pos.push_back(seqs[s].start);
    for (std::int32_t k = 0; k < seqs[s].count; ++k, ++row) {
      listed.push_back(row);
      positions.push_back(seqs[s].start + k);
      table_offset.push_back(kv.table_offset[s]);
    }
    untouched.push_back(row++);
    positions.push_back(0);
    table_offset.push_back(0);
  }
  const std::uint32_t rows = static_cast<std::uint32_t>(row);
  const std::uint32_t width = shape.n_heads * shape.head_dim;
  const std::uint32_t q_stride = (shape.n_heads + 2 * shape.kv_heads) * shape.head_dim;  // fused QKV rows
  const std::uint32_t out_stride = width;

  const std::vector<__nv_bfloat16> q = random_queries(std::size_t{rows} * q_stride, rng);
  std::vector<__nv_bfloat16> want(std::size_t{rows} * out_stride, kSentinel);
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));

  DecodeAttentionParams ref{};
  ref.q = q.data();
  ref.out = want.data();
  ref.q_stride = q_stride;
  ref.out_stride = out_stride;
  ref.k_cache = kv.k.data();
  ref.v_cache = kv.v.data();
  ref.tokens = listed.data();
  ref.positions = positions.data();
  ref.block_tables = kv.tables.data();
  ref.table_offset = table_offset.data();
  ref.num_tokens = static_cast<std::uint32_t>(listed.size());
  ref.n_heads = shape.n_heads;
  ref.kv_heads = shape.kv_heads;
  ref.head_dim = shape.head_dim;
  ref.block_size = shape.block_size;
  ref.scale = scale;
  attention_reference(ref);

  DeviceBuffer<__nv_bfloat16> d_q(q), d_k(kv.k), d_v(kv.v);
  DeviceBuffer<__nv_bfloat16> d_out(std::vector<__nv_bfloat16>(want.size(), kSentinel));
  DeviceBuffer<std::int32_t> d_begin(token_begin), d_count(token_count), d_start(start_pos);
  DeviceBuffer<std::int32_t> d_offset(kv.table_offset), d_tables(kv.tables);

  PrefillAttentionParams p{};
  p.q = d_q.ptr;
  p.out = d_out.ptr;
  p.q_stride = q_stride;
  p.out_stride = out_stride;
  p.k_cache = d_k.ptr;
  p.v_cache = d_v.ptr;
  p.token_begin = d_begin.ptr;
  p.token_count = d_count.ptr;
  p.start_pos = d_start.ptr;
  p.table_offset = d_offset.ptr;
  p.block_tables = d_tables.ptr;
  p.num_seqs = static_cast<std::uint32_t>(seqs.size());
  p.max_tokens_per_seq = max_tokens;
  p.n_heads = shape.n_heads;
  p.kv_heads = shape.kv_heads;
  p.head_dim = shape.head_dim;
  p.block_size = shape.block_size;
  p.scale = scale;
  const cudaError_t err = launch_prefill_attention(p, nullptr);
  EXPECT_EQ(err, cudaSuccess) << error_text(err);
  const cudaError_t sync = cudaDeviceSynchronize();
  EXPECT_EQ(sync, cudaSuccess) << error_text(sync);
  if (err != cudaSuccess || sync != cudaSuccess) return 1.0;

  return expect_rows_match(d_out.download(), want, listed, untouched, out_stride, shape, kSentinel);
}

TEST(PrefillAttention, MatchesReferenceAcrossShapesAndChunks) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test_seed() ^ 0x9e3779b9);
  double worst = 0.0;
  for (const HeadShape& shape : sweep_shapes()) {
    // First chunks (start 0) and later chunks of chunked prefill; counts around the 64-row tile; starts that
    // put the causal diagonal at every offset inside a 64-key tile.
    const std::vector<PrefillSeq> mixed = {{0, 1},   {0, 65},     {5, 63},   {100, 300},
                                           {511, 2}, {1000, 129}, {37, 128}, {64, 64}};
    worst = std::max(worst, run_prefill_case(shape, mixed, 300, rng));
    if (HasFailure()) return;
    // A grid sized for more tokens than any sequence brings: surplus query tiles exit.
    worst = std::max(worst, run_prefill_case(shape, {{0, 200}, {3, 1}}, 400, rng));
    if (HasFailure()) return;
  }
  // Random chunk boundaries.
  for (int round = 0; round < 3; ++round) {
    const std::vector<HeadShape> shapes = sweep_shapes();
    const HeadShape shape = shapes[rng() % shapes.size()];
    std::vector<PrefillSeq> seqs;
    std::uniform_int_distribution<std::int32_t> start(0, 1000), count(1, 300);
    std::int32_t most = 1;
    for (int s = 0; s < 5; ++s) {
      seqs.push_back({start(rng), count(rng)});
      most = std::max(most, seqs.back().count);
    }
    worst = std::max(worst, run_prefill_case(shape, seqs, static_cast<std::uint32_t>(most), rng));
    if (HasFailure()) return;
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
  std::printf("prefill attention: worst relative error %.3g (tolerance %.0e per row and head)\n", worst,
              kBf16Tolerance);
}

// A decode launch captured once in a CUDA graph and replayed after the positions grew (across partition
// boundaries, into partitions that were idle at capture time) gives exactly what an eager launch gives, and
// both match the reference.
TEST(DecodeAttention, GraphReplayAfterPositionsGrowMatchesEagerLaunch) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test_seed() ^ 0x6a09e667);
  const HeadShape shape{32, 8, 128, 16};
  const std::uint32_t max_context = 3000;
  const std::vector<std::int32_t> initial = {1, 100, 511, 512, 1000, 2000};
  const std::uint32_t n = static_cast<std::uint32_t>(initial.size());
  const PagedKv kv = make_paged_kv(shape, std::vector<std::uint32_t>(n, max_context), rng);
  const std::uint32_t width = shape.n_heads * shape.head_dim;
  const std::vector<__nv_bfloat16> q = random_queries(std::size_t{n} * width, rng);

  DeviceBuffer<__nv_bfloat16> d_q(q), d_k(kv.k), d_v(kv.v), d_graph_out(std::size_t{n} * width),
      d_eager_out(std::size_t{n} * width);
  DeviceBuffer<std::int32_t> d_pos(n), d_tables(kv.tables), d_offset(kv.table_offset);
  // Sized for more rows than launched, as the engine's workspace is (max_num_seqs rows).
  const std::uint32_t ws_tokens = n + 3;
  DeviceBuffer<unsigned char> d_ws(
      decode_attention_workspace_bytes(ws_tokens, shape.n_heads, shape.head_dim, max_context));
  ASSERT_EQ(cudaMemset(d_ws.ptr, 0, d_ws.n), cudaSuccess);

  DecodeAttentionParams p{};
  p.q = d_q.ptr;
  p.out = d_graph_out.ptr;
  p.q_stride = width;
  p.out_stride = width;
  p.k_cache = d_k.ptr;
  p.v_cache = d_v.ptr;
  p.positions = d_pos.ptr;
  p.block_tables = d_tables.ptr;
  p.table_offset = d_offset.ptr;
  p.num_tokens = n;
  p.n_heads = shape.n_heads;
  p.kv_heads = shape.kv_heads;
  p.head_dim = shape.head_dim;
  p.block_size = shape.block_size;
  p.max_context = max_context;
  p.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  p.workspace = d_ws.ptr;
  p.workspace_tokens = ws_tokens;

  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  std::vector<std::int32_t> positions(n);
  for (std::uint32_t i = 0; i < n; ++i) positions[i] = initial[i] - 1;
  ASSERT_EQ(cudaMemcpy(d_pos.ptr, positions.data(), n * sizeof(std::int32_t), cudaMemcpyHostToDevice), cudaSuccess);

  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  const cudaError_t captured = launch_decode_attention(p, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(captured, cudaSuccess) << error_text(captured);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  // Steps: as captured, one more token each (511 → 512 → 513 crosses a partition), then a jump of 900.
  const std::vector<std::int32_t> growth = {0, 1, 1, 900};
  std::vector<__nv_bfloat16> want(std::size_t{n} * width);
  std::vector<std::int32_t> rows(n);
  for (std::uint32_t i = 0; i < n; ++i) rows[i] = static_cast<std::int32_t>(i);
  for (const std::int32_t step : growth) {
    for (auto& pos : positions) pos = std::min<std::int32_t>(pos + step, max_context - 1);
    SCOPED_TRACE("positions from " + std::to_string(positions.front()) + " to " + std::to_string(positions.back()) +
                 " " + seed_text());
    ASSERT_EQ(cudaMemcpy(d_pos.ptr, positions.data(), n * sizeof(std::int32_t), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const std::vector<__nv_bfloat16> from_graph = d_graph_out.download();

    DecodeAttentionParams eager = p;
    eager.out = d_eager_out.ptr;
    ASSERT_EQ(launch_decode_attention(eager, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const std::vector<__nv_bfloat16> from_eager = d_eager_out.download();
    for (std::size_t e = 0; e < from_graph.size(); ++e) {
      ASSERT_EQ(__bfloat162float(from_graph[e]), __bfloat162float(from_eager[e])) << "element " << e;
    }

    DecodeAttentionParams ref = p;
    ref.q = q.data();
    ref.out = want.data();
    ref.k_cache = kv.k.data();
    ref.v_cache = kv.v.data();
    ref.positions = positions.data();
    ref.block_tables = kv.tables.data();
    ref.table_offset = kv.table_offset.data();
    ref.workspace = nullptr;
    attention_reference(ref);
    expect_rows_match(from_graph, want, rows, {}, width, shape, kSentinel);
    if (HasFailure()) break;
  }
  // Every launch left the arrival counters (the workspace's first words) at zero for the next one.
  std::vector<unsigned> counters(std::size_t{ws_tokens} * shape.n_heads);
  ASSERT_EQ(cudaMemcpy(counters.data(), d_ws.ptr, counters.size() * sizeof(unsigned), cudaMemcpyDeviceToHost),
            cudaSuccess);
  EXPECT_EQ(std::count(counters.begin(), counters.end(), 0u), static_cast<std::ptrdiff_t>(counters.size()));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// A decode params set that passes validation; the pointers are never dereferenced by the failing launches.
DecodeAttentionParams valid_decode_params(void* any_device_memory) {
  auto* bf = static_cast<__nv_bfloat16*>(any_device_memory);
  auto* ints = static_cast<std::int32_t*>(any_device_memory);
  DecodeAttentionParams p{};
  p.q = bf;
  p.out = bf;
  p.q_stride = 8 * 64;
  p.out_stride = 8 * 64;
  p.k_cache = bf;
  p.v_cache = bf;
  p.positions = ints;
  p.block_tables = ints;
  p.table_offset = ints;
  p.num_tokens = 1;
  p.n_heads = 8;
  p.kv_heads = 2;
  p.head_dim = 64;
  p.block_size = 16;
  p.max_context = 2048;
  p.scale = 0.125f;
  p.workspace = any_device_memory;
  return p;
}

PrefillAttentionParams valid_prefill_params(void* any_device_memory) {
  auto* bf = static_cast<__nv_bfloat16*>(any_device_memory);
  auto* ints = static_cast<std::int32_t*>(any_device_memory);
  PrefillAttentionParams p{};
  p.q = bf;
  p.out = bf;
  p.q_stride = 8 * 64;
  p.out_stride = 8 * 64;
  p.k_cache = bf;
  p.v_cache = bf;
  p.token_begin = ints;
  p.token_count = ints;
  p.start_pos = ints;
  p.table_offset = ints;
  p.block_tables = ints;
  p.num_seqs = 1;
  p.max_tokens_per_seq = 16;
  p.n_heads = 8;
  p.kv_heads = 2;
  p.head_dim = 64;
  p.block_size = 16;
  p.scale = 0.125f;
  return p;
}

// Host only: the workspace sized for max_tokens rows holds what every launch of 1..max_tokens rows writes, for
// the partition counts the launcher picks; and those counts split small batches as documented.
TEST(DecodeAttention, WorkspaceCoversEveryLaunchItIsSizedFor) {
  struct Heads {
    std::uint32_t q, kv;
  };
  const Heads heads[] = {{9, 3}, {32, 8}, {32, 32}, {64, 8}, {14, 2}, {8, 1}, {128, 2}};
  for (const std::uint32_t max_tokens : {1u, 3u, 16u, 64u, 256u}) {
    for (const Heads& h : heads) {
      for (const std::uint32_t head_dim : {64u, 128u}) {
        for (const std::uint32_t max_context : {1u, 64u, 65u, 384u, 512u, 513u, 2000u, 8192u, 131072u}) {
          const std::size_t ws = decode_attention_workspace_bytes(max_tokens, h.q, head_dim, max_context);
          const std::size_t counters = (std::size_t{max_tokens} * h.q * sizeof(unsigned) + 15) / 16 * 16;
          const std::uint32_t base = (max_context + kDecodePartition - 1) / kDecodePartition;
          for (std::uint32_t t = 1; t <= max_tokens; ++t) {
            const std::uint32_t parts = decode_attention_partitions(t, h.q, h.kv, max_context);
            ASSERT_GE(parts, base) << t << " rows, max_context " << max_context;
            ASSERT_LE(parts, std::max(base, 32u));
            if (parts <= 1) continue;
            const std::size_t need = counters + std::size_t{t} * h.q * parts * (head_dim + 2) * sizeof(float);
            ASSERT_LE(need, ws) << t << " of " << max_tokens << " rows, heads " << h.q << "/" << h.kv << ", head_dim "
                                << head_dim << ", max_context " << max_context << ", " << parts << " partitions";
          }
        }
      }
    }
  }
  // Batch 1 with 8 KV heads: a 384-position context is split into its 6 tiles; 8192 positions into 32.
  EXPECT_EQ(decode_attention_partitions(1, 32, 8, 384), 6u);
  EXPECT_EQ(decode_attention_partitions(1, 32, 8, 8192), 32u);
  // 256 rows already fill the GPU: partitions of kDecodePartition positions.
  EXPECT_EQ(decode_attention_partitions(256, 32, 8, 8192), 8192u / kDecodePartition);
  EXPECT_EQ(decode_attention_partitions(256, 32, 8, 384), 1u);
  EXPECT_EQ(decode_attention_partitions(0, 32, 8, 384), 0u);
  EXPECT_EQ(decode_attention_partitions(1, 32, 0, 384), 0u);
}

TEST(AttentionLaunchers, RejectOutOfRangeParams) {
  SLUICE_REQUIRE_GPU();
  DeviceBuffer<unsigned char> mem(256);
  ASSERT_NE(mem.ptr, nullptr);
  using Edit = void (*)(DecodeAttentionParams&);
  const std::vector<std::pair<const char*, Edit>> decode_edits = {
      {"head_dim 96", [](DecodeAttentionParams& p) { p.head_dim = 96; }},
      {"block_size 8", [](DecodeAttentionParams& p) { p.block_size = 8; }},
      {"heads not a multiple of kv heads", [](DecodeAttentionParams& p) { p.kv_heads = 3; }},
      {"no kv heads", [](DecodeAttentionParams& p) { p.kv_heads = 0; }},
      {"q rows too narrow", [](DecodeAttentionParams& p) { p.q_stride = 8 * 64 - 1; }},
      {"out rows too narrow", [](DecodeAttentionParams& p) { p.out_stride = 64; }},
      {"max_context 0", [](DecodeAttentionParams& p) { p.max_context = 0; }},
      {"no workspace with several partitions", [](DecodeAttentionParams& p) { p.workspace = nullptr; }},
      {"null q", [](DecodeAttentionParams& p) { p.q = nullptr; }},
      {"null positions", [](DecodeAttentionParams& p) { p.positions = nullptr; }},
      {"null block tables", [](DecodeAttentionParams& p) { p.block_tables = nullptr; }},
      {"misaligned pages", [](DecodeAttentionParams& p) { p.k_cache += 1; }},
      {"non-finite scale", [](DecodeAttentionParams& p) { p.scale = INFINITY; }},
      {"too many rows for the grid", [](DecodeAttentionParams& p) { p.num_tokens = 70000; }},
      {"a workspace sized for fewer rows", [](DecodeAttentionParams& p) {
         p.num_tokens = 4;
         p.workspace_tokens = 3;
       }},
  };
  for (const auto& [what, edit] : decode_edits) {
    DecodeAttentionParams p = valid_decode_params(mem.ptr);
    edit(p);
    EXPECT_EQ(launch_decode_attention(p, nullptr), cudaErrorInvalidValue) << what;
  }
  {
    DecodeAttentionParams p = valid_decode_params(mem.ptr);
    p.num_tokens = 0;
    EXPECT_EQ(launch_decode_attention(p, nullptr), cudaSuccess) << "an empty batch launches nothing";
    p = valid_decode_params(mem.ptr);
    p.max_context = kDecodePartition;
    p.workspace = nullptr;
    p.num_tokens = 0;
    EXPECT_EQ(launch_decode_attention(p, nullptr), cudaSuccess);
    EXPECT_EQ(decode_attention_workspace_bytes(64, 32, 128, 64), 0u) << "one tile is never split";
    EXPECT_GT(decode_attention_workspace_bytes(64, 32, 128, 65), 0u);
    EXPECT_GT(decode_attention_workspace_bytes(1, 32, 128, kDecodePartition), 0u) << "batch 1 splits short rows";
  }

  using PrefillEdit = void (*)(PrefillAttentionParams&);
  const std::vector<std::pair<const char*, PrefillEdit>> prefill_edits = {
      {"head_dim 80", [](PrefillAttentionParams& p) { p.head_dim = 80; }},
      {"block_size 64", [](PrefillAttentionParams& p) { p.block_size = 64; }},
      {"heads not a multiple of kv heads", [](PrefillAttentionParams& p) { p.n_heads = 9; }},
      {"max_tokens_per_seq 0", [](PrefillAttentionParams& p) { p.max_tokens_per_seq = 0; }},
      {"q rows too narrow", [](PrefillAttentionParams& p) { p.q_stride = 100; }},
      {"odd out stride", [](PrefillAttentionParams& p) { p.out_stride = 8 * 64 + 1; }},
      {"misaligned q", [](PrefillAttentionParams& p) { p.q += 1; }},
      {"misaligned pages", [](PrefillAttentionParams& p) { p.v_cache += 4; }},
      {"null token counts", [](PrefillAttentionParams& p) { p.token_count = nullptr; }},
      {"null start positions", [](PrefillAttentionParams& p) { p.start_pos = nullptr; }},
      {"too many sequences for the grid", [](PrefillAttentionParams& p) { p.num_seqs = 70000; }},
  };
  for (const auto& [what, edit] : prefill_edits) {
    PrefillAttentionParams p = valid_prefill_params(mem.ptr);
    edit(p);
    EXPECT_EQ(launch_prefill_attention(p, nullptr), cudaErrorInvalidValue) << what;
  }
  PrefillAttentionParams empty = valid_prefill_params(mem.ptr);
  empty.num_seqs = 0;
  EXPECT_EQ(launch_prefill_attention(empty, nullptr), cudaSuccess);
  // Rejections must not leave an error behind for the next launch to report.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace
}  // namespace sluice::cuda::test
