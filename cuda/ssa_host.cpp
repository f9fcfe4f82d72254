// Spikformer's attention core Q K^T V * scale on 0/1 spikes, per (frame, head), on the CPU.
// Reads Q, K, V straight from the LIF output [TB, N, 3C] (token-major, no head-permuted copy)
// and writes [TB, N, C], the layout the next LIF and Linear read.
// Each token's spikes of one head become a bitmask (d bits); products walk the set bits, so they
// cost (spikes x d) additions and no multiplications. Forward: K^T V [d, d] = sum over tokens of
// V's row added to the rows i where K[n, i] = 1, then out[n] = sum of the rows KV[i] where
// Q[n, i] = 1. Every partial sum is an integer below 2^24, exact in fp32 in any order, so
// out = count * scale is bit-identical to any fp32 matmul association. The bitmasks
// ([TB, N, 3, H, ceil(d/64)] words) are all the backward needs.
// Built by spikeattn/ops/_native.py (g++ -O3 -march=native -ffp-contract=off).
#pragma GCC optimize("no-trapping-math")

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "parallel.h"

namespace {

struct Dims {
  int64_t TB, N, H, d, W;  // frames, tokens, heads, head dim, 64-bit words per (token, head) mask
  int64_t C() const { return H * d; }
};

// Calls f(i) for every set bit i of the mask words m[0 .. W), in increasing order.
template <typename F>
inline void each_bit(const uint64_t* m, int64_t W, F f) {
  for (int64_t w = 0; w < W; ++w)
    for (uint64_t x = m[w]; x; x &= x - 1) f(w * 64 + __builtin_ctzll(x));
}

// Mask words of one token's Q, K, V for head h: masks[(m * H + h) * W + w], m = 0, 1, 2.
inline uint64_t* token_masks(uint64_t* bits, const Dims& s, int64_t tb, int64_t n) {
  return bits + (tb * s.N + n) * 3 * s.H * s.W;
}

// kv[i * d + j] = K^T V of one (frame, head), from its masks (exact integer counts, as floats).
void kv_product(const Dims& s, const uint64_t* bits, int64_t tb, int64_t h, float* __restrict__ kv,
                float* __restrict__ row) {
  const int64_t d = s.d, W = s.W;
  std::fill(kv, kv + d * d, 0.0f);
  for (int64_t n = 0; n < s.N; ++n) {
    const uint64_t* tm = token_masks(const_cast<uint64_t*>(bits), s, tb, n);
    const uint64_t* km = tm + (1 * s.H + h) * W;
    const uint64_t* vm = tm + (2 * s.H + h) * W;
    for (int64_t j = 0; j < d; ++j) row[j] = float((vm[j >> 6] >> (j & 63)) & 1u);
    each_bit(km, W, [&](int64_t i) {
      float* __restrict__ r = kv + i * d;
      for (int64_t j = 0; j < d; ++j) r[j] += row[j];
    });
  }
}

// At least 8 units (token rows or heads) per thread: below that a thread costs more than it saves.
template <typename F>
void parallel_units(int64_t units, int nthreads, F body) {
  parallel_ranges(units, std::min<int64_t>(nthreads, units / 8), [&](int64_t, int64_t lo, int64_t hi) { body(lo, hi); });
}

// One pass over the input: every token's Q, K, V masks of every head (branch-free bit sets).
void build_masks(const float* __restrict__ qkv, uint64_t* __restrict__ bits, const Dims s, int nthreads) {
  const int64_t C = s.C(), d = s.d, W = s.W;
  parallel_units(s.TB * s.N, nthreads, [=](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const float* row = qkv + t * 3 * C;
      uint64_t* out = bits + t * 3 * s.H * W;
      for (int64_t mh = 0; mh < 3 * s.H; ++mh)  // (matrix, head) pairs: consecutive d-column groups
        for (int64_t w = 0; w < W; ++w) {
          const float* r = row + mh * d + w * 64;
          const int64_t len = std::min<int64_t>(64, d - w * 64);
          uint64_t m = 0;
          for (int64_t i = 0; i < len; ++i) m |= uint64_t(r[i] != 0.0f) << i;
          out[mh * W + w] = m;
        }
    }
  });
}

void forward(const float* __restrict__ qkv, float* __restrict__ out, uint64_t* __restrict__ bits, const Dims s,
             float scale, int nthreads) {
  build_masks(qkv, bits, s, nthreads);
  const int64_t C = s.C(), d = s.d, W = s.W;
  parallel_units(s.TB * s.H, nthreads, [=](int64_t lo, int64_t hi) {
    std::vector<float> kv(d * d), row(d), acc(d);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t tb = u / s.H, h = u % s.H;
      kv_product(s, bits, tb, h, kv.data(), row.data());
      for (int64_t n = 0; n < s.N; ++n) {
        float* __restrict__ a = acc.data();
        std::fill(a, a + d, 0.0f);
        each_bit(token_masks(bits, s, tb, n) + h * W, W, [&](int64_t i) {
          const float* __restrict__ r = kv.data() + i * d;
          for (int64_t j = 0; j < d; ++j) a[j] += r[j];
        });
        float* __restrict__ o = out + (tb * s.N + n) * C + h * d;
        for (int64_t j = 0; j < d; ++j) o[j] = a[j] * scale;
      }
    }
  });
}

// Gradients of out = Q (K^T V) * scale: with G = grad_out * scale and KV = K^T V,
// dQ = G KV^T, dKV = Q^T G, dK = V dKV^T, dV = K dKV; written into g_qkv [TB, N, 3C].
void backward(const float* __restrict__ g_out, const uint64_t* __restrict__ bits, float* __restrict__ g_qkv,
              const Dims s, float scale, int nthreads) {
  const int64_t C = s.C(), d = s.d, W = s.W, N = s.N;
  parallel_units(s.TB * s.H, nthreads, [=](int64_t lo, int64_t hi) {
    std::vector<float> kv(d * d), kv_t(d * d), gkv(d * d), gkv_t(d * d), g(N * d), row(d), acc(d);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t tb = u / s.H, h = u % s.H;
      kv_product(s, bits, tb, h, kv.data(), row.data());
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) kv_t[j * d + i] = kv[i * d + j];
      for (int64_t n = 0; n < N; ++n) {
        const float* go = g_out + (tb * N + n) * C + h * d;
        for (int64_t j = 0; j < d; ++j) g[n * d + j] = go[j] * scale;
      }
      std::fill(gkv.begin(), gkv.end(), 0.0f);
      float* gq_base = g_qkv + tb * N * 3 * C + h * d;
      for (int64_t n = 0; n < N; ++n) {
        const float* __restrict__ gn = g.data() + n * d;
        float* __restrict__ a = acc.data();
        std::fill(a, a + d, 0.0f);
        for (int64_t j = 0; j < d; ++j) {  // dQ[n, :] = sum_j G[n, j] KV[:, j]
          const float gj = gn[j];
          const float* __restrict__ col = kv_t.data() + j * d;
          for (int64_t i = 0; i < d; ++i) a[i] += gj * col[i];
        }
        std::memcpy(gq_base + n * 3 * C, a, d * sizeof(float));
        each_bit(token_masks(const_cast<uint64_t*>(bits), s, tb, n) + h * W, W, [&](int64_t i) {
          float* __restrict__ r = gkv.data() + i * d;  // dKV[i, :] += G[n, :] where Q[n, i] = 1
          for (int64_t j = 0; j < d; ++j) r[j] += gn[j];
        });
      }
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) gkv_t[j * d + i] = gkv[i * d + j];
      for (int64_t n = 0; n < N; ++n) {
        const uint64_t* tm = token_masks(const_cast<uint64_t*>(bits), s, tb, n);
        float* __restrict__ a = acc.data();
        std::fill(a, a + d, 0.0f);  // dK[n, :] = sum of dKV[:, j] where V[n, j] = 1
        each_bit(tm + (2 * s.H + h) * W, W, [&](int64_t j) {
          const float* __restrict__ r = gkv_t.data() + j * d;
          for (int64_t i = 0; i < d; ++i) a[i] += r[i];
        });
        std::memcpy(gq_base + n * 3 * C + C, a, d * sizeof(float));
        std::fill(a, a + d, 0.0f);  // dV[n, :] = sum of dKV[i, :] where K[n, i] = 1
        each_bit(tm + (1 * s.H + h) * W, W, [&](int64_t i) {
          const float* __restrict__ r = gkv.data() + i * d;
          for (int64_t j = 0; j < d; ++j) a[j] += r[j];
        });
        std::memcpy(gq_base + n * 3 * C + 2 * C, a, d * sizeof(float));
      }
    }
  });
}

// ---- d <= 64: the same walks with each row in NV 8-float registers (d padded to 8 * NV) ----

typedef float v8 __attribute__((vector_size(32)));  // one AVX register (two SSE ones)

inline void store_row(float* dst, const v8* src, int64_t d) { std::memcpy(dst, src, d * sizeof(float)); }

// The 8 bits of a byte as 8 floats 0/1 (a 256-entry table: one load per 8 mask bits).
struct ByteFloats {
  v8 row[256];
  ByteFloats() {
    for (int b = 0; b < 256; ++b)
      for (int e = 0; e < 8; ++e) row[b][e] = float((b >> e) & 1);
  }
};
const ByteFloats kByteFloats;

template <int NV>
void kv_product_v(const Dims& s, const uint64_t* bits, int64_t tb, int64_t h, v8* __restrict__ kv) {
  const int64_t d = s.d;
  std::fill(kv, kv + d * NV, v8{});
  for (int64_t n = 0; n < s.N; ++n) {
    const uint64_t* tm = token_masks(const_cast<uint64_t*>(bits), s, tb, n);
    const uint64_t km = tm[s.H + h], vm = tm[2 * s.H + h];
    if (!km || !vm) continue;
    v8 row[NV];
    for (int k = 0; k < NV; ++k) row[k] = kByteFloats.row[(vm >> (8 * k)) & 0xffu];  // bits past d are 0
    each_bit(&km, 1, [&](int64_t i) {
      for (int k = 0; k < NV; ++k) kv[i * NV + k] += row[k];
    });
  }
}

template <int NV>
void forward_v(const float* __restrict__ qkv, float* __restrict__ out, uint64_t* __restrict__ bits, const Dims s,
               float scale, int nthreads) {
  build_masks(qkv, bits, s, nthreads);
  const int64_t C = s.C(), d = s.d;
  parallel_units(s.TB * s.H, nthreads, [=](int64_t lo, int64_t hi) {
    std::vector<v8> kv(d * NV);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t tb = u / s.H, h = u % s.H;
      kv_product_v<NV>(s, bits, tb, h, kv.data());
      for (int64_t n = 0; n < s.N; ++n) {
        v8 acc[NV] = {};
        each_bit(token_masks(bits, s, tb, n) + h, 1, [&](int64_t i) {
          for (int k = 0; k < NV; ++k) acc[k] += kv[i * NV + k];
        });
        for (int k = 0; k < NV; ++k) acc[k] *= scale;
        store_row(out + (tb * s.N + n) * C + h * d, acc, d);
      }
    }
  });
}

template <int NV>
void backward_v(const float* __restrict__ g_out, const uint64_t* __restrict__ bits, float* __restrict__ g_qkv,
                const Dims s, float scale, int nthreads) {
  const int64_t C = s.C(), d = s.d, N = s.N;
  parallel_units(s.TB * s.H, nthreads, [=](int64_t lo, int64_t hi) {
    std::vector<v8> kv(d * NV), kv_t(d * NV), gkv(d * NV), gkv_t(d * NV), g(N * NV);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t tb = u / s.H, h = u % s.H;
      kv_product_v<NV>(s, bits, tb, h, kv.data());
      float* kf = reinterpret_cast<float*>(kv.data());
      float* ktf = reinterpret_cast<float*>(kv_t.data());
      std::fill(kv_t.begin(), kv_t.end(), v8{});
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) ktf[j * 8 * NV + i] = kf[i * 8 * NV + j];
      float* gf = reinterpret_cast<float*>(g.data());
      std::fill(g.begin(), g.end(), v8{});
      for (int64_t n = 0; n < N; ++n) {
        const float* go = g_out + (tb * N + n) * C + h * d;
        for (int64_t j = 0; j < d; ++j) gf[n * 8 * NV + j] = go[j] * scale;
      }
      std::fill(gkv.begin(), gkv.end(), v8{});
      float* gq_base = g_qkv + tb * N * 3 * C + h * d;
      for (int64_t n = 0; n < N; ++n) {
        const v8* gn = g.data() + n * NV;
        v8 acc[NV] = {};
        for (int64_t j = 0; j < d; ++j) {  // dQ[n, :] = sum_j G[n, j] KV[:, j]
          const float gj = gf[n * 8 * NV + j];
          for (int k = 0; k < NV; ++k) acc[k] += gj * kv_t[j * NV + k];
        }
        store_row(gq_base + n * 3 * C, acc, d);
        each_bit(token_masks(const_cast<uint64_t*>(bits), s, tb, n) + h, 1, [&](int64_t i) {
          for (int k = 0; k < NV; ++k) gkv[i * NV + k] += gn[k];  // dKV[i, :] += G[n, :] where Q[n, i] = 1
        });
      }
      const float* gkf = reinterpret_cast<const float*>(gkv.data());
      float* gktf = reinterpret_cast<float*>(gkv_t.data());
      std::fill(gkv_t.begin(), gkv_t.end(), v8{});
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) gktf[j * 8 * NV + i] = gkf[i * 8 * NV + j];
      for (int64_t n = 0; n < N; ++n) {
        const uint64_t* tm = token_masks(const_cast<uint64_t*>(bits), s, tb, n);
        v8 ak[NV] = {}, av[NV] = {};
        each_bit(tm + 2 * s.H + h, 1, [&](int64_t j) {  // dK[n, :] = sum of dKV[:, j] where V[n, j] = 1
          for (int k = 0; k < NV; ++k) ak[k] += gkv_t[j * NV + k];
        });
        each_bit(tm + s.H + h, 1, [&](int64_t i) {  // dV[n, :] = sum of dKV[i, :] where K[n, i] = 1
          for (int k = 0; k < NV; ++k) av[k] += gkv[i * NV + k];
        });
        store_row(gq_base + n * 3 * C + C, ak, d);
        store_row(gq_base + n * 3 * C + 2 * C, av, d);
      }
    }
  });
}

// Runs F<NV> for NV = ceil(d / 8) when d <= 64; returns false for wider heads.
#define SA_DISPATCH_NV(d, CALL)   \
  switch (((d) + 7) / 8) {        \
    case 1: CALL(1); return true; \
    case 2: CALL(2); return true; \
    case 3: CALL(3); return true; \
    case 4: CALL(4); return true; \
    case 5: CALL(5); return true; \
    case 6: CALL(6); return true; \
    case 7: CALL(7); return true; \
    case 8: CALL(8); return true; \
    default: return false;        \
  }

bool forward_narrow(const float* qkv, float* out, uint64_t* bits, const Dims& s, float scale, int nthreads) {
#define SA_CALL(NV) forward_v<NV>(qkv, out, bits, s, scale, nthreads)
  SA_DISPATCH_NV(s.d, SA_CALL)
#undef SA_CALL
}

bool backward_narrow(const float* g_out, const uint64_t* bits, float* g_qkv, const Dims& s, float scale, int nthreads) {
#define SA_CALL(NV) backward_v<NV>(g_out, bits, g_qkv, s, scale, nthreads)
  SA_DISPATCH_NV(s.d, SA_CALL)
#undef SA_CALL
}

}  // namespace

// qkv [TB, N, 3C] fp32 (Q | K | V along the last dim, head h at columns h*d .. h*d+d-1 of each),
// out [TB, N, C] fp32, bits [TB, N, 3, H, ceil(d / 64)] uint64; all contiguous.
extern "C" void sa_ssa_forward_f32(const float* qkv, float* out, uint64_t* bits, int64_t TB, int64_t N,
                                   int64_t H, int64_t d, double scale, int nthreads) {
  const Dims s{TB, N, H, d, (d + 63) / 64};
  if (!forward_narrow(qkv, out, bits, s, float(scale), nthreads)) forward(qkv, out, bits, s, float(scale), nthreads);
}

// g_out [TB, N, C] fp32, bits from the forward, g_qkv [TB, N, 3C] fp32 (every element written).
extern "C" void sa_ssa_backward_f32(const float* g_out, const uint64_t* bits, float* g_qkv, int64_t TB, int64_t N,
                                    int64_t H, int64_t d, double scale, int nthreads) {
  const Dims s{TB, N, H, d, (d + 63) / 64};
  if (!backward_narrow(g_out, bits, g_qkv, s, float(scale), nthreads))
    backward(g_out, bits, g_qkv, s, float(scale), nthreads);
}
