// The cuBLASLt wrapper behind gemm.h.
//
// Row-major to column-major: cuBLASLt is column-major, and a row-major [m][n] matrix with row stride ldd is
// the column-major n×m matrix with leading dimension ldd. So D = A·Wᵀ (row-major) is computed as the
// column-major Dᵀ = W_cm' · A_cm where
//   W (row-major [n][k], stride k)   = column-major k×n, ld k, used transposed  (cuBLASLt "A", op T)
//   A (row-major [m][k], stride lda) = column-major k×m, ld lda, used as is    (cuBLASLt "B", op N)
//   D (row-major [m][n], stride ldd) = column-major n×m, ld ldd                (cuBLASLt "C" = "D")
// The bias epilogue adds a vector along D's column-major rows, i.e. bias[n] — the per-feature bias.
//
// cuBLASLt wants the bias in D's type. For bf16 output the caller's bf16 bias is used directly; for fp32
// output it is widened into a small fp32 buffer owned by the Gemm, without a kernel: a bf16 value is the high
// half of the fp32 with the same value, so zeroing the buffer and copying each bf16 into the high two bytes of
// its 4-byte slot (one strided 2D copy) is the exact conversion. Both are stream operations, so the call stays
// graph-capturable.
//
// Small m (decode batches of up to kGemvMaxRows rows) goes to the GEMV kernel of gemv.h instead when its
// alignment rules allow and the measurements say it wins. On an H200, weights streamed from HBM, one call
// each: cuBLASLt takes about 6-7 us for anything up to ~12 MiB of weights, the GEMV kernel about 3.3-4 us
// for the projections of a 135M model (up to 4 MiB), 13.0 us against 13.6 us for 4096×4096 at m = 1; from
// there on cuBLASLt streams as fast or faster (5-20% on the 8B MLP and LM head), and at m = 2..8 the kernel's
// activation traffic (m/R bytes per weight byte) makes it lose ever earlier. Narrow outputs with long rows
// (2048×8192: 15.8 us against 13.6 us) give it too few warps, hence the n bound of the m = 1 case.
// The environment variable SLUICE_GEMV overrides the choice: 0 sends every shape to cuBLASLt, 1 every shape
// the kernel accepts to the kernel (to compare the two).
//
// One plan (descriptors + heuristic algorithm) is cached per shape, leading dimensions, output type, flags
// and pointer alignment; the first call of a shape runs the heuristic (host work only), later calls only
// launch. Callers that capture CUDA graphs run each shape once eagerly first.
#include "kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/device_error.h"
#include "kernels/cuda/gemv.h"

namespace sluice::cuda {

namespace {

// Largest fp32-output bias the wrapper widens (elements); vocabulary-sized outputs fit.
constexpr std::size_t kMaxFp32Bias = std::size_t{1} << 18;

// Largest power of two (≤ 256) dividing the address: what cuBLASLt may assume about a pointer.
std::uint32_t pointer_alignment(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && addr % a != 0) a /= 2;
  return a;
}

// Whether the GEMV kernel is expected to beat cuBLASLt for m rows against an n×k weight (see above).
bool small_m_wins(std::uint32_t m, std::uint32_t n, std::uint32_t k) {
  const std::uint64_t weights = std::uint64_t{n} * k;
  if (m == 1 && n >= 4096 && weights <= (std::uint64_t{1} << 24)) return true;
  if (m <= 4) return weights <= (std::uint64_t{1} << 21);
  return m <= kGemvMaxRows && weights <= (std::uint64_t{1} << 19);
}

enum class SmallM { measured, never, always };

struct PlanKey {
  std::uint32_t m, n, k, lda, ldd;
  std::uint32_t align_a, align_w, align_d, align_bias;
  bool out_fp32, accumulate, has_bias;

  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  std::size_t operator()(const PlanKey& key) const {
    std::uint64_t h = 1469598103934665603ull;
    const auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(key.m);
    mix(key.n);
    mix(key.k);
    mix(key.lda);
    mix(key.ldd);
    mix(key.align_a | key.align_w << 9 | std::uint64_t{key.align_d} << 18 | std::uint64_t{key.align_bias} << 27);
    mix(std::uint64_t{key.out_fp32} | std::uint64_t{key.accumulate} << 1 | std::uint64_t{key.has_bias} << 2);
    return static_cast<std::size_t>(h);
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t w_layout = nullptr;  // cuBLASLt "A"
  cublasLtMatrixLayout_t a_layout = nullptr;  // cuBLASLt "B"
  cublasLtMatrixLayout_t d_layout = nullptr;  // "C" and "D"
  cublasLtMatmulAlgo_t algo{};

  void destroy() {
    if (d_layout != nullptr) cublasLtMatrixLayoutDestroy(d_layout);
    if (a_layout != nullptr) cublasLtMatrixLayoutDestroy(a_layout);
    if (w_layout != nullptr) cublasLtMatrixLayoutDestroy(w_layout);
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
    *this = Plan{};
  }
};

std::string status_text(const char* what, cublasStatus_t st) {
  return std::string(what) + ": " + cublasLtGetStatusName(st) + " (" + cublasLtGetStatusString(st) + ")";
}

}  // namespace

struct Gemm::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  float* bias_f32 = nullptr;  // kMaxFp32Bias floats
  SmallM small_m = SmallM::measured;  // when to route to launch_gemv
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;

  ~Impl() {
    for (auto& [key, plan] : plans) plan.destroy();
    if (bias_f32 != nullptr) cudaFree(bias_f32);
    if (workspace != nullptr) cudaFree(workspace);
    if (handle != nullptr) cublasLtDestroy(handle);
  }

  // Builds the descriptors and picks the heuristic's first algorithm; false with `error` set on failure.
  // `bias` only informs the alignment.
  bool make_plan(const PlanKey& key, const void* bias, Plan& plan, std::string& error);
};

bool Gemm::Impl::make_plan(const PlanKey& key, const void* bias, Plan& plan, std::string& error) {
  const auto check = [&](cublasStatus_t st, const char* what) {
    if (st == CUBLAS_STATUS_SUCCESS) return true;
    error = status_text(what, st);
    return false;
  };
  const cudaDataType_t d_type = key.out_fp32 ? CUDA_R_32F : CUDA_R_16BF;
  if (!check(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate"))
    return false;
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  if (!check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof(op_t)),
             "set TRANSA") ||
      !check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof(op_n)), "set TRANSB"))
    return false;
  if (key.has_bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    if (!check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)),
               "set EPILOGUE") ||
        !check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
               "set BIAS_POINTER"))
      return false;
  }
  if (!check(cublasLtMatrixLayoutCreate(&plan.w_layout, CUDA_R_16BF, key.k, key.n, key.k), "layout W") ||
      !check(cublasLtMatrixLayoutCreate(&plan.a_layout, CUDA_R_16BF, key.k, key.m, key.lda), "layout A") ||
      !check(cublasLtMatrixLayoutCreate(&plan.d_layout, d_type, key.n, key.m, key.ldd), "layout D"))
    return false;

  cublasLtMatmulPreference_t pref = nullptr;
  if (!check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate")) return false;
  bool ok = check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                       sizeof(workspace_bytes)),
                  "set MAX_WORKSPACE_BYTES");
  // "A" of cuBLASLt is our W, "B" our A; C and D are the output.
  const std::uint32_t aligns[4] = {key.align_w, key.align_a, key.align_d, key.align_d};
  const cublasLtMatmulPreferenceAttributes_t attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; ok && i < 4; ++i)
    ok = check(cublasLtMatmulPreferenceSetAttribute(pref, attrs[i], &aligns[i], sizeof(aligns[i])), "set ALIGNMENT");
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  if (ok) {
    ok = check(cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.w_layout, plan.a_layout, plan.d_layout,
                                              plan.d_layout, pref, 1, &result, &returned),
               "cublasLtMatmulAlgoGetHeuristic");
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (!ok) return false;
  if (returned == 0 || result.state != CUBLAS_STATUS_SUCCESS) {
    error = "cuBLASLt has no algorithm for this GEMM (m " + std::to_string(key.m) + ", n " + std::to_string(key.n) +
            ", k " + std::to_string(key.k) + ")";
    return false;
  }
  plan.algo = result.algo;
  return true;
}

std::unique_ptr<Gemm> Gemm::create(std::size_t workspace_bytes, std::string* error) {
  const auto failed = [error](std::string message) -> std::unique_ptr<Gemm> {
    if (error != nullptr) *error = std::move(message);
    return nullptr;
  };
  std::unique_ptr<Gemm> g(new Gemm());
  g->impl_ = std::make_unique<Impl>();
  Impl& impl = *g->impl_;
  if (const cublasStatus_t st = cublasLtCreate(&impl.handle); st != CUBLAS_STATUS_SUCCESS) {
    impl.handle = nullptr;
    return failed(status_text("cublasLtCreate", st));
  }
  if (workspace_bytes > 0) {
    if (const cudaError_t err = cudaMalloc(&impl.workspace, workspace_bytes); err != cudaSuccess) {
      impl.workspace = nullptr;
      return failed("cuBLASLt workspace of " + std::to_string(workspace_bytes) + " bytes: " + error_text(err));
    }
  }
  impl.workspace_bytes = workspace_bytes;
  if (const char* v = std::getenv("SLUICE_GEMV"); v != nullptr) {
    if (std::strcmp(v, "0") == 0) impl.small_m = SmallM::never;
    if (std::strcmp(v, "1") == 0) impl.small_m = SmallM::always;
  }
  if (const cudaError_t err = cudaMalloc(reinterpret_cast<void**>(&impl.bias_f32), kMaxFp32Bias * sizeof(float));
      err != cudaSuccess) {
    impl.bias_f32 = nullptr;
    return failed("GEMM bias buffer: " + error_text(err));
  }
  return g;
}

Gemm::~Gemm() = default;

cudaError_t Gemm::run(const GemmArgs& args, cudaStream_t stream) {
  const auto invalid = [this](std::string message) {
    last_error_ = std::move(message);
    return cudaErrorInvalidValue;
  };
  const std::uint32_t lda = args.lda == 0 ? args.k : args.lda;
  const std::uint32_t ldd = args.ldd == 0 ? args.n : args.ldd;
  if (args.a == nullptr || args.w == nullptr || args.d == nullptr) return invalid("gemm: null operand");
  if (args.m == 0 || args.n == 0 || args.k == 0) return invalid("gemm: empty shape");
  if (lda < args.k || ldd < args.n) return invalid("gemm: leading dimension smaller than the row");
  const bool has_bias = args.bias != nullptr;
  if (has_bias && args.out_fp32 && args.n > kMaxFp32Bias) {
    return invalid("gemm: an fp32-output bias longer than " + std::to_string(kMaxFp32Bias) + " elements");
  }
  Impl& impl = *impl_;

  const bool small_m = impl.small_m == SmallM::always ||
                       (impl.small_m == SmallM::measured && small_m_wins(args.m, args.n, args.k));
  if (small_m && gemv_supported(args)) {
    const cudaError_t err = launch_gemv(args, stream);
    if (err != cudaSuccess) last_error_ = "gemm: small-m kernel: " + error_text(err);
    return err;
  }

  const void* bias = args.bias;
  if (has_bias && args.out_fp32) {
    // Widen the bf16 bias: zero the fp32 slots, then drop each bf16 into the high half of its slot.
    cudaError_t err = cudaMemsetAsync(impl.bias_f32, 0, std::size_t{args.n} * sizeof(float), stream);
    if (err == cudaSuccess) {
      err = cudaMemcpy2DAsync(reinterpret_cast<char*>(impl.bias_f32) + 2, sizeof(float), args.bias,
                              sizeof(__nv_bfloat16), sizeof(__nv_bfloat16), args.n, cudaMemcpyDeviceToDevice, stream);
    }
    if (err != cudaSuccess) {
      last_error_ = "gemm: widening the bias: " + error_text(err);
      return err;
    }
    bias = impl.bias_f32;
  }

  const PlanKey key{args.m,
                    args.n,
                    args.k,
                    lda,
                    ldd,
                    pointer_alignment(args.a),
                    pointer_alignment(args.w),
                    pointer_alignment(args.d),
                    has_bias ? pointer_alignment(bias) : 0u,
                    args.out_fp32,
                    args.accumulate,
                    has_bias};
  auto it = impl.plans.find(key);
  if (it == impl.plans.end()) {
    Plan plan;
    std::string error;
    if (!impl.make_plan(key, bias, plan, error)) {
      plan.destroy();
      last_error_ = "gemm: " + error;
      return cudaErrorUnknown;
    }
    it = impl.plans.emplace(key, plan).first;
  }
  Plan& plan = it->second;
  if (has_bias) {
    const cublasStatus_t st =
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
    if (st != CUBLAS_STATUS_SUCCESS) {
      last_error_ = "gemm: " + status_text("set BIAS_POINTER", st);
      return cudaErrorUnknown;
    }
  }
  const float alpha = 1.0f;
  const float beta = args.accumulate ? 1.0f : 0.0f;
  const cublasStatus_t st =
      cublasLtMatmul(impl.handle, plan.desc, &alpha, args.w, plan.w_layout, args.a, plan.a_layout, &beta, args.d,
                     plan.d_layout, args.d, plan.d_layout, &plan.algo, impl.workspace, impl.workspace_bytes, stream);
  if (st != CUBLAS_STATUS_SUCCESS) {
    last_error_ = "gemm: " + status_text("cublasLtMatmul", st);
    return cudaErrorUnknown;
  }
  return cudaSuccess;
}

void gemm_reference(const GemmArgs& args) {
  const std::size_t lda = args.lda == 0 ? args.k : args.lda;
  const std::size_t ldd = args.ldd == 0 ? args.n : args.ldd;
  std::vector<float> w_row(args.k);
  std::vector<float> a_rows(std::size_t{args.m} * args.k);
  for (std::uint32_t i = 0; i < args.m; ++i)
    for (std::uint32_t kk = 0; kk < args.k; ++kk)
      a_rows[std::size_t{i} * args.k + kk] = __bfloat162float(args.a[i * lda + kk]);
  for (std::uint32_t j = 0; j < args.n; ++j) {
    for (std::uint32_t kk = 0; kk < args.k; ++kk) w_row[kk] = __bfloat162float(args.w[std::size_t{j} * args.k + kk]);
    const float b = args.bias != nullptr ? __bfloat162float(args.bias[j]) : 0.0f;
    for (std::uint32_t i = 0; i < args.m; ++i) {
      const float* a = a_rows.data() + std::size_t{i} * args.k;
      float acc = 0.0f;
      for (std::uint32_t kk = 0; kk < args.k; ++kk) acc += a[kk] * w_row[kk];
      acc += b;
      const std::size_t at = i * ldd + j;
      if (args.out_fp32) {
        float* d = static_cast<float*>(args.d);
        d[at] = args.accumulate ? d[at] + acc : acc;
      } else {
        auto* d = static_cast<__nv_bfloat16*>(args.d);
        d[at] = __float2bfloat16(args.accumulate ? __bfloat162float(d[at]) + acc : acc);
      }
    }
  }
}

}  // namespace sluice::cuda
