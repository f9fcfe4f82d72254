// Token shift + mixes of SpikeGPT's time mix and channel mix (RWKV-4), fused, on the CPU. For each mix i:
//
//   out_i[b, t, c] = x[b, t, c] * m_i[c] + x[b, t-1, c] * (1 - m_i[c])      (x[b, -1, c] = 0)
//
// with the roundings of those torch ops (no FMA: -ffp-contract=off), so the outputs are the bits of
// spikeattn/ops/token_mix/reference.py. Autograd runs that formula as about 4 ops per mix forward and
// 8 backward, plus the shift's pad and its backward; here the forward reads x once and the backward reads
// the M output gradients once. dL/dm_i is accumulated in double per (batch, block of tokens) unit and the
// caller sums the units in order, so no value depends on the thread count.
// Built by spikeattn/ops/_native.py, called through ctypes (spikeattn/ops/token_mix/cpu.py).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "parallel.h"

namespace {

constexpr int64_t TBLOCK = 64;  // tokens per backward unit

template <typename F>
void forward(const F* x, const F* m, F* const* out, int64_t M, int64_t B, int64_t T, int64_t C, int nthreads) {
  parallel_ranges(B * T, nthreads, [=](int64_t, int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {  // row = b * T + t
      const F* xr = x + row * C;
      for (int64_t i = 0; i < M; ++i) {
        const F* mi = m + i * C;
        F* o = out[i] + row * C;
        if (row % T == 0) {  // no previous token: x * m + 0 * (1 - m), as the zero-padded shift gives
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) o[c] = xr[c] * mi[c] + F(0) * (F(1) - mi[c]);
        } else {
          const F* xp = xr - C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) o[c] = xr[c] * mi[c] + xp[c] * (F(1) - mi[c]);
        }
      }
    }
  });
}

// gx[b, t] = sum_i g_i[b, t] * m_i + sum_i g_i[b, t+1] * (1 - m_i);
// gm[unit, i] = sum over the unit's tokens of g_i[b, t] * (x[b, t] - x[b, t-1]).
// One pass over a row's channels for every mix (gx summed in the same order as mix by mix: the same
// bits), the x difference in double once per channel for all mixes. M_FIXED > 0: M known when compiled
// (the time mix's 3, the channel mix's 2), so the mix loop unrolls; 0: any M.
template <int M_FIXED, typename F>
void backward(const F* x, const F* m, const F* const* g, F* gx, double* gm, int64_t M_, int64_t B, int64_t T,
              int64_t C, int nthreads) {
  const int64_t M = M_FIXED > 0 ? M_FIXED : M_;
  const int64_t per_b = (T + TBLOCK - 1) / TBLOCK;
  parallel_ranges(B * per_b, nthreads, [=](int64_t, int64_t lo, int64_t hi) {
    for (int64_t unit = lo; unit < hi; ++unit) {
      const int64_t b = unit / per_b, t0 = (unit % per_b) * TBLOCK, t1 = std::min(T, t0 + TBLOCK);
      double* acc = gm + unit * M * C;
      std::fill(acc, acc + M * C, 0.0);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row = b * T + t;
        const F* xr = x + row * C;
        F* o = gx + row * C;
        constexpr int64_t MM = M_FIXED > 0 ? M_FIXED : 1;  // mixes per pass over the channels
        for (int64_t i0 = 0; i0 < M; i0 += MM) {
          const F* gi[MM];
          const F* mi[MM];
          double* ai[MM];
          for (int64_t j = 0; j < MM; ++j)
            gi[j] = g[i0 + j] + row * C, mi[j] = m + (i0 + j) * C, ai[j] = acc + (i0 + j) * C;
          // The first token has no previous one, the last no next: each case its own branch-free loop.
          auto pass = [&](auto prev, auto next) {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const double dx = prev ? double(xr[c]) - double(xr[c - C]) : double(xr[c]);
              F s = i0 == 0 ? F(0) : o[c];
#pragma GCC unroll 4
              for (int64_t j = 0; j < MM; ++j) {
                s += gi[j][c] * mi[j][c];
                if (next) s += gi[j][c + C] * (F(1) - mi[j][c]);
                ai[j][c] += double(gi[j][c]) * dx;
              }
              o[c] = s;
            }
          };
          using yes = std::true_type;
          using no = std::false_type;
          if (t > 0) {
            if (t + 1 < T) pass(yes{}, yes{}); else pass(yes{}, no{});
          } else {
            if (t + 1 < T) pass(no{}, yes{}); else pass(no{}, no{});
          }
        }
      }
    }
  });
}

template <typename F>
void backward_any(const F* x, const F* m, const F* const* g, F* gx, double* gm, int64_t M, int64_t B, int64_t T,
                  int64_t C, int nthreads) {
  if (M == 3) return backward<3>(x, m, g, gx, gm, M, B, T, C, nthreads);
  if (M == 2) return backward<2>(x, m, g, gx, gm, M, B, T, C, nthreads);
  backward<0>(x, m, g, gx, gm, M, B, T, C, nthreads);
}

}  // namespace

#define SA_DEFINE(TAG, F)                                                                                  \
  extern "C" void sa_token_mix_forward_##TAG(const F* x, const F* m, F* const* out, int64_t M, int64_t B,  \
                                             int64_t T, int64_t C, int nthreads) {                         \
    forward<F>(x, m, out, M, B, T, C, nthreads);                                                           \
  }                                                                                                        \
  extern "C" void sa_token_mix_backward_##TAG(const F* x, const F* m, const F* const* g, F* gx, double* gm, \
                                              int64_t M, int64_t B, int64_t T, int64_t C, int nthreads) {  \
    backward_any<F>(x, m, g, gx, gm, M, B, T, C, nthreads);                                                \
  }

SA_DEFINE(f32, float)
SA_DEFINE(f64, double)
