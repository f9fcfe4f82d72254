// WKV on the CPU: the per-token maths of wkv_core.cuh (the same code the CUDA kernels run), walked
// in a cache-friendly order. Work is split into (batch, block of channels) units over threads (parallel.h);
// inside a unit time is outer and channels inner, so every load reads contiguous memory, and the
// channel loops are SIMD loops: with libmvec (vector_math.h) their exp/log run 8 or 16 channels per call.
// Built by spikeattn/ops/_native.py (g++ -O3, no fast-math), called through ctypes.
// No FP-exception semantics to keep: the max-rescaling's comparisons may be evaluated for every lane, so
// the channel loops vectorise without AVX-512's masks too (AVX2: they stayed scalar). No result changes.
#pragma GCC optimize("no-trapping-math")

#include <algorithm>
#include <cstdint>

#include "vector_math.h"  // before the core: its exp/log calls must see the SIMD declarations
#include "wkv_core.cuh"
#include "parallel.h"

namespace {

constexpr int64_t CBLOCK = 64;  // channels per unit: the state of a unit stays in L1

template <typename F>
void parallel_units(int64_t B, int64_t C, int nthreads, F body) {
  const int64_t per_b = (C + CBLOCK - 1) / CBLOCK, units = B * per_b;
  auto run = [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / per_b, c0 = (i % per_b) * CBLOCK;
      body(b, c0, std::min(CBLOCK, C - c0));
    }
  };
  parallel_ranges(units, nthreads, [&](int64_t, int64_t lo, int64_t hi) { run(lo, hi); });
}

template <typename F>
void forward(const F* w, const F* u, const F* k, const F* v, F* y, F* lse, int64_t B, int64_t T, int64_t C,
             int nthreads) {
  parallel_units(B, C, nthreads, [=](int64_t b_i, int64_t c0, int64_t nc) {
    F a[CBLOCK], b[CBLOCK], p[CBLOCK];
    for (int64_t j = 0; j < nc; ++j) a[j] = F(0), b[j] = F(0), p[j] = wkv_min_value<F>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = (b_i * T + t) * C + c0;
#pragma omp simd
      for (int64_t j = 0; j < nc; ++j)
        y[o + j] = wkv_forward_step(w[c0 + j], u[c0 + j], k[o + j], v[o + j], a[j], b[j], p[j], lse[o + j]);
    }
  });
}

// gw, gu: [B, C] partial sums, added up over B by the caller (as the CUDA kernel does).
template <typename F>
void backward(const F* w, const F* u, const F* k, const F* v, const F* y, const F* lse, const F* gy, F* gw,
              F* gu, F* gk, F* gv, int64_t B, int64_t T, int64_t C, int nthreads) {
  parallel_units(B, C, nthreads, [=](int64_t b_i, int64_t c0, int64_t nc) {
    F a[CBLOCK], b[CBLOCK], p[CBLOCK], da[CBLOCK], db[CBLOCK], s_w[CBLOCK], s_u[CBLOCK];
    for (int64_t j = 0; j < nc; ++j)
      a[j] = b[j] = da[j] = db[j] = s_w[j] = s_u[j] = F(0), p[j] = wkv_min_value<F>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = (b_i * T + t) * C + c0;
#pragma omp simd
      for (int64_t j = 0; j < nc; ++j)
        wkv_grad_wu_step(w[c0 + j], u[c0 + j], k[o + j], v[o + j], y[o + j], gy[o + j], a[j], b[j], p[j],
                         da[j], db[j], s_w[j], s_u[j]);
    }
    for (int64_t j = 0; j < nc; ++j) gw[b_i * C + c0 + j] = s_w[j], gu[b_i * C + c0 + j] = s_u[j];
    F* gp = a;  // the first sweep's buffers are free again
    F* gq = b;
    F* m = p;
    for (int64_t j = 0; j < nc; ++j) gp[j] = gq[j] = F(0), m[j] = wkv_min_value<F>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = (b_i * T + t) * C + c0;
#pragma omp simd
      for (int64_t j = 0; j < nc; ++j)
        wkv_grad_kv_step(w[c0 + j], u[c0 + j], k[o + j], v[o + j], y[o + j], lse[o + j], gy[o + j], gp[j],
                         gq[j], m[j], gk[o + j], gv[o + j]);
    }
  });
}

}  // namespace

#define SA_DEFINE(TAG, F)                                                                              \
  extern "C" void sa_wkv_forward_##TAG(const F* w, const F* u, const F* k, const F* v, F* y, F* lse,   \
                                       int64_t B, int64_t T, int64_t C, int nthreads) {                \
    forward<F>(w, u, k, v, y, lse, B, T, C, nthreads);                                                 \
  }                                                                                                    \
  extern "C" void sa_wkv_backward_##TAG(const F* w, const F* u, const F* k, const F* v, const F* y,    \
                                        const F* lse, const F* gy, F* gw, F* gu, F* gk, F* gv,         \
                                        int64_t B, int64_t T, int64_t C, int nthreads) {               \
    backward<F>(w, u, k, v, y, lse, gy, gw, gu, gk, gv, B, T, C, nthreads);                            \
  }

SA_DEFINE(f32, float)
SA_DEFINE(f64, double)

// 1 when this build's exp/log are libmvec's vector functions (vector_math.h), 0 when scalar.
extern "C" int sa_wkv_vector_math() { return SA_VECTOR_MATH; }
