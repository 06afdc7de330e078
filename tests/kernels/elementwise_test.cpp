// The per-token kernels (kernels/cuda/elementwise.h) against their CPU references over a sweep of shapes,
// with fresh random inputs each run (seed printed; replay with SLUICE_TEST_SEED). Bars from DESIGN.md: fp32
// outputs within 1e-5 relative, bf16 outputs within 1e-2; copies and the random fill must match exactly.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "kernels/cuda/elementwise.h"
#include "tests/kernels/gpu_test_util.h"

namespace sluice::cuda::test {
namespace {

constexpr double kFp32Bar = 1e-5;
constexpr double kBf16Bar = 1e-2;

std::mt19937_64 make_rng(std::uint64_t salt) { return std::mt19937_64(test_seed() ^ (salt * 0x9E3779B97F4A7C15ull)); }

// Random values away from zero (the kernels must not be tested on zeros).
std::vector<float> nonzero_floats(std::size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> mag(0.05f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = (rng() & 1 ? 1.0f : -1.0f) * mag(rng) * scale;
  return v;
}

std::vector<__nv_bfloat16> random_bf16(std::size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  return to_bf16(nonzero_floats(n, rng, scale));
}

double bf16_rel_error(const std::vector<__nv_bfloat16>& a, const std::vector<__nv_bfloat16>& b) {
  const std::vector<float> fa = to_float(a);
  const std::vector<float> fb = to_float(b);
  return relative_error(fa.data(), fb.data(), fa.size());
}

bool same_bits(const std::vector<__nv_bfloat16>& a, const std::vector<__nv_bfloat16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(__nv_bfloat16)) == 0;
}

#define SLUICE_SEED_TRACE() SCOPED_TRACE(::testing::Message() << "SLUICE_TEST_SEED=" << test_seed())

// ----------------------------------------------------------------------------------------------- embedding

TEST(ElementwiseKernels, EmbeddingMatchesReference) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(1);
  const std::uint32_t vocab = 997;
  for (std::uint32_t hidden : {64u, 576u, 1000u, 4096u, 13u}) {
    for (std::uint32_t tokens : {1u, 7u, 64u, 300u}) {
      SCOPED_TRACE(::testing::Message() << "hidden " << hidden << " tokens " << tokens);
      const auto table = random_bf16(std::size_t{vocab} * hidden, rng);
      std::vector<std::int32_t> ids(tokens);
      for (auto& id : ids) id = static_cast<std::int32_t>(rng() % vocab);
      ids[0] = static_cast<std::int32_t>(vocab - 1);
      if (tokens > 2) {  // out of range: zero rows
        ids[1] = -1;
        ids[2] = static_cast<std::int32_t>(vocab);
      }
      DeviceBuffer<__nv_bfloat16> d_table(table);
      DeviceBuffer<std::int32_t> d_ids(ids);
      DeviceBuffer<float> d_out(nonzero_floats(std::size_t{tokens} * hidden, rng));
      EmbeddingParams p{d_table.ptr, d_ids.ptr, d_out.ptr, tokens, hidden, vocab};
      ASSERT_EQ(launch_embedding(p, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<float> want(std::size_t{tokens} * hidden, 1.0f);
      EmbeddingParams h{table.data(), ids.data(), want.data(), tokens, hidden, vocab};
      embedding_reference(h);
      const auto got = d_out.download();
      EXPECT_LE(relative_error(got.data(), want.data(), got.size()), kFp32Bar);
    }
  }
}

// ------------------------------------------------------------------------------------------------- rmsnorm

TEST(ElementwiseKernels, RmsNormMatchesReference) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(2);
  struct Shape {
    std::uint32_t rows, hidden;
  };
  // Widths: the register-cached kernel with 1, 2 and 4 chunks per thread, and the plain one (not a multiple
  // of 8).
  const Shape shapes[] = {{1, 64},    {5, 576},    {129, 576},  {300, 1000}, {17, 2048}, {300, 4096},
                          {64, 8192}, {3, 16384},  {2, 32768},  {9, 4100},   {1, 8200},  {33, 100}};
  for (const Shape& s : shapes) {
    for (int mode = 0; mode < 3; ++mode) {  // 0: no delta; 1: delta; 2: delta + bias
      SCOPED_TRACE(::testing::Message() << "rows " << s.rows << " hidden " << s.hidden << " mode " << mode);
      const std::size_t n = std::size_t{s.rows} * s.hidden;
      auto residual = nonzero_floats(n, rng, 3.0f);
      const auto delta = random_bf16(n, rng, 2.0f);
      const auto bias = random_bf16(s.hidden, rng, 0.5f);
      const auto weight = random_bf16(s.hidden, rng, 1.5f);
      DeviceBuffer<float> d_res(residual);
      DeviceBuffer<__nv_bfloat16> d_delta(delta), d_bias(bias), d_weight(weight);
      DeviceBuffer<__nv_bfloat16> d_out(random_bf16(n, rng));
      const float eps = mode == 2 ? 1e-6f : 1e-5f;
      RmsNormParams p{d_res.ptr, mode > 0 ? d_delta.ptr : nullptr, mode > 1 ? d_bias.ptr : nullptr,
                      d_weight.ptr, d_out.ptr, s.rows, s.hidden, eps};
      ASSERT_EQ(launch_rmsnorm(p, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<__nv_bfloat16> want(n);
      RmsNormParams h{residual.data(), mode > 0 ? delta.data() : nullptr, mode > 1 ? bias.data() : nullptr,
                      weight.data(), want.data(), s.rows, s.hidden, eps};
      rmsnorm_reference(h);
      const auto got_res = d_res.download();
      EXPECT_LE(relative_error(got_res.data(), residual.data(), n), kFp32Bar);
      EXPECT_LE(bf16_rel_error(d_out.download(), want), kBf16Bar);
    }
  }
}

// ---------------------------------------------------------------------------------------------------- rope

TEST(ElementwiseKernels, RopeMatchesReference) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(3);
  struct Heads {
    std::uint32_t q, kv;
  };
  const Heads heads[] = {{8, 8}, {32, 8}, {9, 3}, {14, 2}, {4, 0}};
  for (std::uint32_t head_dim : {64u, 128u}) {
    for (const Heads& hd : heads) {
      for (std::uint32_t tokens : {1u, 17u, 300u}) {
        for (bool interleaved : {false, true}) {
          for (bool packed : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "head_dim " << head_dim << " heads " << hd.q << "/" << hd.kv
                                              << " tokens " << tokens << " interleaved " << interleaved
                                              << " packed " << packed);
            // packed: q, k and v share one row per token (the QKV projection's output), as the engine has them.
            const std::uint32_t q_width = hd.q * head_dim;
            const std::uint32_t k_width = hd.kv * head_dim;
            const std::uint32_t q_stride = packed ? q_width + 2 * k_width : q_width;
            const std::uint32_t k_stride = packed ? q_stride : std::max<std::uint32_t>(k_width, 2);
            const std::size_t q_elems = std::size_t{tokens} * q_stride;
            const std::size_t k_elems = packed ? 0 : std::size_t{tokens} * k_stride;
            auto q = random_bf16(q_elems, rng);
            auto k = random_bf16(std::max<std::size_t>(k_elems, 1), rng);
            std::vector<std::int32_t> pos(tokens);
            for (auto& x : pos) x = static_cast<std::int32_t>(rng() % 100001);
            pos[0] = 100000;
            const float base = head_dim == 64 ? 10000.0f : 500000.0f;
            std::vector<float> inv_freq(head_dim / 2);
            for (std::uint32_t i = 0; i < head_dim / 2; ++i) {
              inv_freq[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(head_dim));
            }
            DeviceBuffer<__nv_bfloat16> d_q(q), d_k(k);
            DeviceBuffer<std::int32_t> d_pos(pos);
            DeviceBuffer<float> d_freq(inv_freq);
            RopeParams p;
            p.q = d_q.ptr;
            p.k = hd.kv == 0 ? nullptr : (packed ? d_q.ptr + q_width : d_k.ptr);
            p.q_stride = q_stride;
            p.k_stride = k_stride;
            p.positions = d_pos.ptr;
            p.inv_freq = d_freq.ptr;
            p.num_tokens = tokens;
            p.n_heads = hd.q;
            p.kv_heads = hd.kv;
            p.head_dim = head_dim;
            p.interleaved = interleaved;
            ASSERT_EQ(launch_rope(p, nullptr), cudaSuccess);
            ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
            RopeParams h = p;
            h.q = q.data();
            h.k = hd.kv == 0 ? nullptr : (packed ? q.data() + q_width : k.data());
            h.positions = pos.data();
            h.inv_freq = inv_freq.data();
            rope_reference(h);
            EXPECT_LE(bf16_rel_error(d_q.download(), q), kBf16Bar);
            if (!packed && hd.kv > 0) {
              EXPECT_LE(bf16_rel_error(d_k.download(), k), kBf16Bar);
            }
          }
        }
      }
    }
  }
}

// -------------------------------------------------------------------------------------------------- swiglu

TEST(ElementwiseKernels, SwiGluMatchesReference) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(4);
  for (std::uint32_t ffn : {64u, 1000u, 1536u, 4104u, 8192u, 77u}) {
    for (std::uint32_t tokens : {1u, 33u, 300u}) {
      SCOPED_TRACE(::testing::Message() << "ffn " << ffn << " tokens " << tokens);
      const auto gate_up = random_bf16(std::size_t{tokens} * 2 * ffn, rng, 6.0f);
      DeviceBuffer<__nv_bfloat16> d_in(gate_up);
      DeviceBuffer<__nv_bfloat16> d_out(random_bf16(std::size_t{tokens} * ffn, rng));
      SwiGluParams p{d_in.ptr, d_out.ptr, tokens, ffn};
      ASSERT_EQ(launch_swiglu(p, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<__nv_bfloat16> want(std::size_t{tokens} * ffn);
      SwiGluParams h{gate_up.data(), want.data(), tokens, ffn};
      swiglu_reference(h);
      EXPECT_LE(bf16_rel_error(d_out.download(), want), kBf16Bar);
    }
  }
}

// ------------------------------------------------------------------------------------------------ kv write

TEST(ElementwiseKernels, KvWriteMatchesReference) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(5);
  for (std::uint32_t block_size : {16u, 32u}) {
    for (std::uint32_t head_dim : {64u, 128u, 36u}) {
      for (std::uint32_t kv_heads : {1u, 2u, 8u}) {
        for (std::uint32_t tokens : {1u, 40u, 300u}) {
          SCOPED_TRACE(::testing::Message() << "block_size " << block_size << " head_dim " << head_dim
                                            << " kv_heads " << kv_heads << " tokens " << tokens);
          const std::uint32_t n_heads = 4 * kv_heads;
          const std::uint32_t stride = (n_heads + 2 * kv_heads) * head_dim;  // packed QKV rows
          const std::uint32_t num_blocks = tokens / block_size + 3;
          const auto qkv = random_bf16(std::size_t{tokens} * stride, rng);
          const std::size_t cache_elems = std::size_t{num_blocks} * kv_heads * block_size * head_dim;
          auto k_cache = random_bf16(cache_elems, rng);
          auto v_cache = random_bf16(cache_elems, rng);
          // Distinct slots in random order; some tokens skipped (negative slot, or one past the cache).
          std::vector<std::int32_t> all(num_blocks * block_size);
          std::iota(all.begin(), all.end(), 0);
          std::shuffle(all.begin(), all.end(), rng);
          std::vector<std::int32_t> slots(all.begin(), all.begin() + tokens);
          for (std::uint32_t t = 0; t < tokens; t += 7) slots[t] = -1;
          if (tokens > 3) slots[3] = static_cast<std::int32_t>(num_blocks * block_size);
          DeviceBuffer<__nv_bfloat16> d_qkv(qkv), d_k(k_cache), d_v(v_cache);
          DeviceBuffer<std::int32_t> d_slots(slots);
          KvWriteParams p;
          p.k = d_qkv.ptr + n_heads * head_dim;
          p.v = d_qkv.ptr + (n_heads + kv_heads) * head_dim;
          p.k_stride = stride;
          p.v_stride = stride;
          p.k_cache = d_k.ptr;
          p.v_cache = d_v.ptr;
          p.slot_mapping = d_slots.ptr;
          p.num_tokens = tokens;
          p.kv_heads = kv_heads;
          p.head_dim = head_dim;
          p.block_size = block_size;
          p.num_blocks = num_blocks;
          ASSERT_EQ(launch_kv_write(p, nullptr), cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          KvWriteParams h = p;
          h.k = qkv.data() + n_heads * head_dim;
          h.v = qkv.data() + (n_heads + kv_heads) * head_dim;
          h.k_cache = k_cache.data();
          h.v_cache = v_cache.data();
          h.slot_mapping = slots.data();
          kv_write_reference(h);
          EXPECT_TRUE(same_bits(d_k.download(), k_cache));
          EXPECT_TRUE(same_bits(d_v.download(), v_cache));
        }
      }
    }
  }
}

// A launch of RoPE with the KV write fused in leaves exactly the bits of launch_rope followed by
// launch_kv_write (q, k rows and both page pools), and the composed references agree within the bf16 bar.
TEST(ElementwiseKernels, RopeWithFusedKvWriteMatchesTheTwoLaunches) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(9);
  struct Heads {
    std::uint32_t q, kv;
  };
  const Heads heads[] = {{32, 8}, {9, 3}, {14, 2}, {4, 4}};
  for (std::uint32_t block_size : {16u, 32u}) {
    for (std::uint32_t head_dim : {64u, 128u}) {
      for (const Heads& hd : heads) {
        for (std::uint32_t tokens : {1u, 40u, 300u}) {
          for (bool interleaved : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "block_size " << block_size << " head_dim " << head_dim
                                              << " heads " << hd.q << "/" << hd.kv << " tokens " << tokens
                                              << " interleaved " << interleaved);
            const std::uint32_t q_width = hd.q * head_dim, k_width = hd.kv * head_dim;
            const std::uint32_t stride = q_width + 2 * k_width;  // packed QKV rows
            const std::uint32_t num_blocks = tokens / block_size + 3;
            const auto qkv = random_bf16(std::size_t{tokens} * stride, rng);
            const std::size_t cache_elems = std::size_t{num_blocks} * hd.kv * block_size * head_dim;
            const auto k_cache = random_bf16(cache_elems, rng);
            const auto v_cache = random_bf16(cache_elems, rng);
            std::vector<std::int32_t> all(num_blocks * block_size);
            std::iota(all.begin(), all.end(), 0);
            std::shuffle(all.begin(), all.end(), rng);
            std::vector<std::int32_t> slots(all.begin(), all.begin() + tokens);
            for (std::uint32_t t = 1; t < tokens; t += 7) slots[t] = -1;
            if (tokens > 3) slots[3] = static_cast<std::int32_t>(num_blocks * block_size);
            std::vector<std::int32_t> pos(tokens);
            for (auto& x : pos) x = static_cast<std::int32_t>(rng() % 20000);
            std::vector<float> inv_freq(head_dim / 2);
            for (std::uint32_t i = 0; i < head_dim / 2; ++i) {
              inv_freq[i] = 1.0f / std::pow(500000.0f, static_cast<float>(2 * i) / static_cast<float>(head_dim));
            }
            DeviceBuffer<std::int32_t> d_slots(slots), d_pos(pos);
            DeviceBuffer<float> d_freq(inv_freq);
            // Two copies of every input: one for the fused launch, one for the two separate launches.
            DeviceBuffer<__nv_bfloat16> f_qkv(qkv), f_k(k_cache), f_v(v_cache);
            DeviceBuffer<__nv_bfloat16> s_qkv(qkv), s_k(k_cache), s_v(v_cache);
            const auto params = [&](DeviceBuffer<__nv_bfloat16>& q, DeviceBuffer<__nv_bfloat16>& kc,
                                    DeviceBuffer<__nv_bfloat16>& vc) {
              RopeParams r;
              r.q = q.ptr;
              r.k = q.ptr + q_width;
              r.q_stride = r.k_stride = stride;
              r.positions = d_pos.ptr;
              r.inv_freq = d_freq.ptr;
              r.num_tokens = tokens;
              r.n_heads = hd.q;
              r.kv_heads = hd.kv;
              r.head_dim = head_dim;
              r.interleaved = interleaved;
              KvWriteParams kv;
              kv.k = r.k;
              kv.v = q.ptr + q_width + k_width;
              kv.k_stride = kv.v_stride = stride;
              kv.k_cache = kc.ptr;
              kv.v_cache = vc.ptr;
              kv.slot_mapping = d_slots.ptr;
              kv.num_tokens = tokens;
              kv.kv_heads = hd.kv;
              kv.head_dim = head_dim;
              kv.block_size = block_size;
              kv.num_blocks = num_blocks;
              return std::make_pair(r, kv);
            };
            auto [fr, fkv] = params(f_qkv, f_k, f_v);
            fr.cache = &fkv;
            ASSERT_EQ(launch_rope(fr, nullptr), cudaSuccess);
            auto [sr, skv] = params(s_qkv, s_k, s_v);
            ASSERT_EQ(launch_rope(sr, nullptr), cudaSuccess);
            ASSERT_EQ(launch_kv_write(skv, nullptr), cudaSuccess);
            ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
            const auto fused_k = f_k.download(), fused_v = f_v.download();
            EXPECT_TRUE(same_bits(f_qkv.download(), s_qkv.download()));
            EXPECT_TRUE(same_bits(fused_k, s_k.download()));
            EXPECT_TRUE(same_bits(fused_v, s_v.download()));
            EXPECT_FALSE(same_bits(fused_k, k_cache)) << "nothing was written into the pages";

            // The reference composes rope_reference and kv_write_reference the same way.
            auto h_qkv = qkv;
            auto h_k = k_cache, h_v = v_cache;
            RopeParams hr = fr;
            hr.q = h_qkv.data();
            hr.k = h_qkv.data() + q_width;
            hr.positions = pos.data();
            hr.inv_freq = inv_freq.data();
            KvWriteParams hkv = fkv;
            hkv.k = hr.k;
            hkv.v = h_qkv.data() + q_width + k_width;
            hkv.k_cache = h_k.data();
            hkv.v_cache = h_v.data();
            hkv.slot_mapping = slots.data();
            hr.cache = &hkv;
            rope_reference(hr);
            EXPECT_LE(bf16_rel_error(fused_k, h_k), kBf16Bar);
            EXPECT_TRUE(same_bits(fused_v, h_v));
          }
        }
      }
    }
  }
}

TEST(ElementwiseKernels, RopeWithFusedKvWriteRejectsMismatchedParams) {
  SLUICE_REQUIRE_GPU();
  DeviceBuffer<__nv_bfloat16> qkv(std::vector<__nv_bfloat16>(4 * 384)), pages(std::vector<__nv_bfloat16>(4096));
  DeviceBuffer<std::int32_t> ids(std::vector<std::int32_t>{0, 1, 2, 3});
  DeviceBuffer<float> freq(std::vector<float>(32, 0.5f));
  RopeParams r;
  r.q = qkv.ptr;
  r.k = qkv.ptr + 256;
  r.q_stride = r.k_stride = 384;
  r.positions = ids.ptr;
  r.inv_freq = freq.ptr;
  r.num_tokens = 4;
  r.n_heads = 4;
  r.kv_heads = 1;
  r.head_dim = 64;
  KvWriteParams kv;
  kv.k = r.k;
  kv.v = qkv.ptr + 320;
  kv.k_stride = kv.v_stride = 384;
  kv.k_cache = pages.ptr;
  kv.v_cache = pages.ptr + 2048;
  kv.slot_mapping = ids.ptr;
  kv.num_tokens = 4;
  kv.kv_heads = 1;
  kv.head_dim = 64;
  kv.block_size = 16;
  kv.num_blocks = 2;
  r.cache = &kv;
  EXPECT_EQ(launch_rope(r, nullptr), cudaSuccess);
  KvWriteParams bad = kv;
  bad.k = qkv.ptr;  // not the rotated k
  r.cache = &bad;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  bad = kv;
  bad.head_dim = 128;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  bad = kv;
  bad.num_tokens = 3;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  bad = kv;
  bad.v_cache = nullptr;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// --------------------------------------------------------------------------------------------- gather rows

TEST(ElementwiseKernels, GatherRowsMatchesReference) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(6);
  for (std::uint32_t width : {64u, 100u, 576u, 4096u}) {
    for (std::uint32_t num_rows : {1u, 50u, 256u}) {
      for (std::uint32_t pad : {0u, 8u, 3u}) {
        SCOPED_TRACE(::testing::Message() << "width " << width << " rows " << num_rows << " pad " << pad);
        const std::uint32_t in_rows = 300;
        const std::uint32_t in_stride = width + pad;
        const std::uint32_t out_stride = width + 2 * pad;
        const auto in = random_bf16(std::size_t{in_rows} * in_stride, rng);
        auto out = random_bf16(std::size_t{num_rows} * out_stride, rng);
        std::vector<std::int32_t> rows(num_rows);
        for (auto& r : rows) r = static_cast<std::int32_t>(rng() % in_rows);
        if (num_rows > 1) rows[1] = -1;  // left untouched
        DeviceBuffer<__nv_bfloat16> d_in(in), d_out(out);
        DeviceBuffer<std::int32_t> d_rows(rows);
        GatherRowsParams p{d_in.ptr, d_out.ptr, d_rows.ptr, num_rows, width, in_stride, out_stride};
        ASSERT_EQ(launch_gather_rows(p, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        GatherRowsParams h{in.data(), out.data(), rows.data(), num_rows, width, in_stride, out_stride};
        gather_rows_reference(h);
        EXPECT_TRUE(same_bits(d_out.download(), out));
      }
    }
  }
}

// --------------------------------------------------------------------------------------------- random fill

TEST(ElementwiseKernels, RandomFillMatchesReferenceExactly) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(7);
  for (std::uint64_t count : {1ull, 3ull, 4ull, 1001ull, (1ull << 20) + 5}) {
    for (std::uint32_t offset : {0u, 1u}) {  // offset 1: not 8-byte aligned, element-wise stores
      SCOPED_TRACE(::testing::Message() << "count " << count << " offset " << offset);
      const std::uint64_t seed = rng();
      const float scale = offset ? 0.02f : 1.0f;
      auto host = random_bf16(count + offset, rng);
      DeviceBuffer<__nv_bfloat16> d(host);
      RandomFillParams p{d.ptr + offset, count, seed, scale};
      ASSERT_EQ(launch_random_fill(p, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      RandomFillParams h{host.data() + offset, count, seed, scale};
      random_fill_reference(h);
      const auto got = d.download();
      EXPECT_TRUE(same_bits(got, host));
      const auto values = to_float(got);
      for (std::uint64_t i = offset; i < count + offset; ++i) {
        ASSERT_LE(std::fabs(values[i]), scale * 1.01f) << i;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ param checking

TEST(ElementwiseKernels, LaunchersRejectBadParams) {
  SLUICE_REQUIRE_GPU();
  DeviceBuffer<__nv_bfloat16> bf(4096);
  DeviceBuffer<float> f(4096);
  DeviceBuffer<std::int32_t> ids(64);

  const EmbeddingParams emb{bf.ptr, ids.ptr, f.ptr, 4, 64, 8};
  EXPECT_EQ(launch_embedding({nullptr, ids.ptr, f.ptr, 4, 64, 8}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_embedding({bf.ptr, ids.ptr, f.ptr, 4, 0, 8}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_embedding({bf.ptr, ids.ptr, f.ptr, 4, 64, 0}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_embedding({bf.ptr, ids.ptr, nullptr, 4, 64, 8}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_embedding(emb, nullptr), cudaSuccess);

  RmsNormParams rms{f.ptr, nullptr, nullptr, bf.ptr, bf.ptr + 2048, 4, 64, 1e-5f};
  EXPECT_EQ(launch_rmsnorm(rms, nullptr), cudaSuccess);
  RmsNormParams bad = rms;
  bad.hidden = 0;
  EXPECT_EQ(launch_rmsnorm(bad, nullptr), cudaErrorInvalidValue);
  bad = rms;
  bad.weight = nullptr;
  EXPECT_EQ(launch_rmsnorm(bad, nullptr), cudaErrorInvalidValue);
  bad = rms;
  bad.eps = -1.0f;
  EXPECT_EQ(launch_rmsnorm(bad, nullptr), cudaErrorInvalidValue);
  bad = rms;
  bad.eps = std::nanf("");
  EXPECT_EQ(launch_rmsnorm(bad, nullptr), cudaErrorInvalidValue);

  DeviceBuffer<float> freq(64);
  RopeParams rope;
  rope.q = bf.ptr;
  rope.k = bf.ptr + 1024;
  rope.q_stride = 256;
  rope.k_stride = 256;
  rope.positions = ids.ptr;
  rope.inv_freq = freq.ptr;
  rope.num_tokens = 2;
  rope.n_heads = 4;
  rope.kv_heads = 2;
  rope.head_dim = 64;
  EXPECT_EQ(launch_rope(rope, nullptr), cudaSuccess);
  RopeParams r = rope;
  r.head_dim = 62;  // not a multiple of 4
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  r = rope;
  r.head_dim = 1024;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  r = rope;
  r.q_stride = 128;  // narrower than the heads
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  r = rope;
  r.k = nullptr;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  r = rope;
  r.k_stride = 257;  // odd: bf16 pairs would be misaligned
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);
  r = rope;
  r.positions = nullptr;
  EXPECT_EQ(launch_rope(r, nullptr), cudaErrorInvalidValue);

  EXPECT_EQ(launch_swiglu({bf.ptr, bf.ptr + 2048, 2, 0}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_swiglu({nullptr, bf.ptr + 2048, 2, 64}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_swiglu({bf.ptr, bf.ptr + 2048, 2, 64}, nullptr), cudaSuccess);

  KvWriteParams kv;
  kv.k = bf.ptr;
  kv.v = bf.ptr + 256;
  kv.k_stride = 512;
  kv.v_stride = 512;
  kv.k_cache = bf.ptr + 1024;
  kv.v_cache = bf.ptr + 2048;
  kv.slot_mapping = ids.ptr;
  kv.num_tokens = 0;
  kv.kv_heads = 2;
  kv.head_dim = 64;
  kv.block_size = 16;
  kv.num_blocks = 1;
  EXPECT_EQ(launch_kv_write(kv, nullptr), cudaSuccess);
  KvWriteParams k2 = kv;
  k2.block_size = 0;
  EXPECT_EQ(launch_kv_write(k2, nullptr), cudaErrorInvalidValue);
  k2 = kv;
  k2.k_stride = 100;
  EXPECT_EQ(launch_kv_write(k2, nullptr), cudaErrorInvalidValue);
  k2 = kv;
  k2.v_cache = nullptr;
  EXPECT_EQ(launch_kv_write(k2, nullptr), cudaErrorInvalidValue);
  k2 = kv;
  k2.num_blocks = 0;
  EXPECT_EQ(launch_kv_write(k2, nullptr), cudaErrorInvalidValue);

  EXPECT_EQ(launch_gather_rows({bf.ptr, bf.ptr + 2048, ids.ptr, 2, 64, 32, 64}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_gather_rows({bf.ptr, bf.ptr + 2048, nullptr, 2, 64, 64, 64}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_gather_rows({bf.ptr, bf.ptr + 2048, ids.ptr, 2, 0, 64, 64}, nullptr), cudaErrorInvalidValue);

  EXPECT_EQ(launch_random_fill({nullptr, 16, 1, 1.0f}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_random_fill({bf.ptr, 0, 1, 1.0f}, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
}  // namespace sluice::cuda::test
