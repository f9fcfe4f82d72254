// SpikeGPT's pointwise steps around its GEMMs, one pass each on the CPU, with the roundings of the torch
// ops they replace (no FMA: -ffp-contract=off), so the results are the bits autograd gives:
//   relu_square:        y = r * r, r = max(x, 0);        dL/dx = (g * r) * 2  (torch: pow backward, threshold)
//   sigmoid_gate (bwd): out = s * v, s = sigmoid(r) (torch computes s forward);
//                       dL/dv = g * s, dL/dr = ((g * v) * (1 - s)) * s          (torch: mul, sigmoid backward)
//                       (dL/dr may be written over g: each g[i] is read before gr[i] is stored)
// Built by spikeattn/ops/_native.py, called through ctypes (spikeattn/ops/relu_square/cpu.py,
// spikeattn/ops/sigmoid_gate/cpu.py).
// No FP-exception semantics to keep: lets the compiler evaluate relu's comparisons unconditionally
// (vector compares and blends instead of a branch per element). No result changes.
#pragma GCC optimize("no-trapping-math")

#include <cmath>
#include <cstdint>

#include "parallel.h"

namespace {

constexpr int64_t CHUNK = 1 << 14;  // elements per unit of work

template <typename Body>
void chunks(int64_t n, int nthreads, Body body) {
  parallel_ranges((n + CHUNK - 1) / CHUNK, nthreads, [=](int64_t, int64_t lo, int64_t hi) {
    const int64_t a = lo * CHUNK, b = hi * CHUNK < n ? hi * CHUNK : n;
    body(a, b);
  });
}

// torch's relu: max(x, 0), NaN kept. Both comparisons always evaluated (`|`, not `||`, and the pragma
// above): the loops become vector blends. Without AVX-512's masks they were scalar, a branch per element,
// mispredicted on mixed signs.
template <typename F>
inline F relu(F x) { return (x > F(0)) | (x != x) ? x : F(0); }

}  // namespace

#define SA_DEFINE(TAG, F)                                                                                    \
  extern "C" void sa_relu_square_forward_##TAG(const F* x, F* y, int64_t n, int nthreads) {                \
    chunks(n, nthreads, [=](int64_t a, int64_t b) {                                                        \
      _Pragma("omp simd") for (int64_t i = a; i < b; ++i) {                                                \
        const F r = relu(x[i]);                                                                            \
        y[i] = r * r;                                                                                      \
      }                                                                                                    \
    });                                                                                                    \
  }                                                                                                        \
  extern "C" void sa_relu_square_backward_##TAG(const F* x, const F* g, F* gx, int64_t n, int nthreads) {  \
    chunks(n, nthreads, [=](int64_t a, int64_t b) {                                                        \
      _Pragma("omp simd") for (int64_t i = a; i < b; ++i) {                                                \
        gx[i] = (g[i] * relu(x[i])) * F(2);                                                                \
      }                                                                                                    \
    });                                                                                                    \
  }                                                                                                        \
  /* From the output y = r * r instead of x: r = sqrt(y) exactly for r in [1.1e-19, 1.8e19] (fp32; */      \
  /* checked for every float there), so these are the bits above; gx may be g (in place). */               \
  extern "C" void sa_relu_square_backward_from_y_##TAG(const F* y, const F* g, F* gx, int64_t n,             \
                                                      int nthreads) {                                       \
    chunks(n, nthreads, [=](int64_t a, int64_t b) {                                                        \
      _Pragma("omp simd") for (int64_t i = a; i < b; ++i) {                                                \
        gx[i] = (g[i] * std::sqrt(y[i])) * F(2);                                                           \
      }                                                                                                    \
    });                                                                                                    \
  }                                                                                                        \
  extern "C" void sa_sigmoid_gate_backward_##TAG(const F* s, const F* v, const F* g, F* gr, F* gv,         \
                                                 int64_t n, int nthreads) {                                \
    chunks(n, nthreads, [=](int64_t a, int64_t b) {                                                        \
      _Pragma("omp simd") for (int64_t i = a; i < b; ++i) {                                                \
        gv[i] = g[i] * s[i];                                                                               \
        gr[i] = ((g[i] * v[i]) * (F(1) - s[i])) * s[i];                                                    \
      }                                                                                                    \
    });                                                                                                    \
  }

SA_DEFINE(f32, float)
SA_DEFINE(f64, double)
