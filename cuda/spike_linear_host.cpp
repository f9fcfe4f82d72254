// Weight gradient of a Linear whose input is spikes: grad_W[o, i] = sum_m g[m, o] * x[m, i], with
// x [M, I] small non-negative integers stored as uint8 (0/1 spikes; spike counts up to 255).
// A dense GEMM spends M*O*I multiply-adds; here each input column i keeps the list of tokens m
// where x[m, i] != 0 (built once, two passes over x), and the gradient is a gather-sum of rows of g
// over that list: nnz(x) * O additions (a fifth of the GEMM at a 20% spike rate), accumulated in
// registers, one block of output features at a time (the block of g stays in L2).
// Each sum runs over the tokens in increasing order: the result does not depend on the threads.
// Built by spikeattn/ops/_native.py (g++ -O3 -march=native -ffp-contract=off).
#pragma GCC optimize("no-trapping-math")

#include <cstdint>
#include <algorithm>
#include <memory>
#include <vector>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "parallel.h"

namespace {

#ifndef SA_TOKEN_CHUNK
#define SA_TOKEN_CHUNK 128
#endif
constexpr int64_t OB = 64;              // output features per block: 8 AVX registers of accumulators
constexpr int64_t TC = SA_TOKEN_CHUNK;  // tokens per chunk: the rows of g gathered stay in L1/L2

// Column lists of x: the tokens of column i, in increasing order, are idx[start[i] + k] for
// k in [bound[c * I + i], bound[(c + 1) * I + i]) within token chunk c.
struct Columns {
  std::vector<int64_t> start;
  std::vector<int32_t> bound;  // [chunks + 1, I]
  std::unique_ptr<int32_t[]> idx;  // not zero-filled: every entry is written once (tens of MB for a conv's patches)
  std::vector<float> val;  // x's values in list order; empty when x is all 0/1
  int64_t listed = 0;  // entries in the lists
  bool complement = false;  // 0/1 x, mostly ones: the lists hold the zeros, grad = sum_m g - gather-sum
};

// Bit b set where (p[b] != 0) == keep, for b < len <= 64.
inline uint64_t column_mask(const uint8_t* __restrict__ p, int64_t len, uint8_t keep) {
#ifdef __AVX2__
  if (len == 64) {  // two compares and movemasks instead of 64 shifts and ors (the build's hot loop)
    const __m256i zero = _mm256_setzero_si256();
    const uint32_t lo = uint32_t(_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), zero)));
    const uint32_t hi = uint32_t(_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), zero)));
    const uint64_t zeros = uint64_t(lo) | uint64_t(hi) << 32;
    return keep ? ~zeros : zeros;
  }
#endif
  uint64_t mask = 0;
  for (int64_t b = 0; b < len; ++b) mask |= uint64_t((p[b] != 0) == keep) << b;
  return mask;
}

// Threads split x's columns in groups of 64 (one mask word): each column's list is built by one
// thread, in increasing token order, so the lists do not depend on the thread count. Past max_listed
// entries only the count is taken (c.idx stays empty): the caller then runs a dense GEMM.
Columns build_columns(const uint8_t* __restrict__ x, int64_t M, int64_t I, int64_t max_listed, int nthreads) {
  Columns c;
  const int64_t groups = (I + 63) / 64;
  // Below ~64K entries a thread costs more than it saves.
  const int64_t nt = std::min<int64_t>(nthreads, std::max<int64_t>(1, M * I / (1 << 16)));
  std::vector<int32_t> cnt(I, 0);
  std::vector<uint8_t> tops(groups, 0);
  parallel_ranges(groups, nt, [&](int64_t, int64_t g_lo, int64_t g_hi) {
    const int64_t i_lo = g_lo * 64, i_hi = std::min(I, g_hi * 64);
    int32_t* __restrict__ cn = cnt.data();
    uint8_t top = 0;
    for (int64_t m = 0; m < M; ++m) {
      const uint8_t* row = x + m * I;
      for (int64_t i = i_lo; i < i_hi; ++i) {
        cn[i] += row[i] != 0;
        top = std::max(top, row[i]);
      }
    }
    tops[g_lo] = top;  // one slot per range, read after the join
  });
  const bool binary = *std::max_element(tops.begin(), tops.end()) <= 1;
  int64_t nnz = 0;
  for (int64_t i = 0; i < I; ++i) nnz += cnt[i];
  c.complement = binary && 2 * nnz > M * I;
  if (c.complement)
    for (int64_t i = 0; i < I; ++i) cnt[i] = int32_t(M) - cnt[i];
  c.start.resize(I);
  int64_t total = 0;
  for (int64_t i = 0; i < I; ++i) {
    c.start[i] = total;
    total += cnt[i];
  }
  c.listed = total;
  if (total > max_listed) return c;
  c.idx.reset(new int32_t[std::max<int64_t>(total, 1)]);
  const uint8_t keep = c.complement ? 0 : 1;  // list x != 0, or (complement) x == 0
  if (!binary) c.val.resize(total);
  const int64_t chunks = (M + TC - 1) / TC;
  c.bound.assign((chunks + 1) * I, 0);
  std::vector<int32_t> pos(I, 0);
  int32_t* __restrict__ idx = c.idx.get();
  float* __restrict__ val = c.val.data();
  const int64_t* __restrict__ start = c.start.data();
  int32_t* __restrict__ ps = pos.data();
  int32_t* __restrict__ bound = c.bound.data();
  parallel_ranges(groups, nt, [&](int64_t, int64_t g_lo, int64_t g_hi) {
    const int64_t i_lo = g_lo * 64, i_hi = std::min(I, g_hi * 64);
    for (int64_t ch = 0; ch < chunks; ++ch) {
      for (int64_t m = ch * TC; m < std::min(M, (ch + 1) * TC); ++m) {
        const uint8_t* row = x + m * I;
        for (int64_t i0 = i_lo; i0 < i_hi; i0 += 64) {  // 64 columns at a time: a mask, then its set bits
          uint64_t mask = column_mask(row + i0, std::min<int64_t>(64, I - i0), keep);
          for (; mask; mask &= mask - 1) {
            const int64_t i = i0 + __builtin_ctzll(mask);
            if (!binary) val[start[i] + ps[i]] = float(row[i]);
            idx[start[i] + ps[i]++] = int32_t(m);
          }
        }
      }
      std::copy(ps + i_lo, ps + i_hi, bound + (ch + 1) * I + i_lo);
    }
  });
  return c;
}

// g: either [M, O] row-major (P = 1, a Linear's output gradient), or [M / P, O, P] (a convolution's output
// gradient [N, O, OH * OW] as it is, P = OH * OW positions per sample: no transposed copy of it).
struct Grad {
  const float* g;
  int64_t O, P;
  // Offset of (m, 0); feature o of token m is at base(m) + o * P.
  int64_t base(int64_t m) const { return P == 1 ? m * O : (m / P) * O * P + m % P; }
};

typedef float v8 __attribute__((vector_size(32)));  // 8 floats: one AVX register (two SSE ones)
constexpr int64_t NV = OB / 8;

inline v8 load8(const float* p) {
  v8 v;
  __builtin_memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

// This chunk's rows of the block's w features, packed contiguous (TC * OB floats, in L1/L2; lanes past w
// zero): the gathers then read neighbouring lines instead of rows O floats apart. From [M/P, O, P]: a
// transpose, one sample's run at a time.
inline void pack_rows(const Grad& G, int64_t o0, int64_t w, int64_t m0, int64_t m1, v8* __restrict__ pack) {
  if (w < OB) std::fill(pack, pack + (m1 - m0) * NV, v8{});
  if (G.P == 1 && w == OB) {
    const float* __restrict__ gb = G.g + o0;
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t k = 0; k < NV; ++k) pack[(m - m0) * NV + k] = load8(gb + m * G.O + 8 * k);
    return;
  }
  float* __restrict__ pf = reinterpret_cast<float*>(pack);
  if (G.P == 1) {
    for (int64_t m = m0; m < m1; ++m) std::copy(G.g + m * G.O + o0, G.g + m * G.O + o0 + w, pf + (m - m0) * OB);
    return;
  }
  for (int64_t m = m0; m < m1;) {
    const int64_t run = std::min(m1 - m, G.P - m % G.P);  // tokens left in this sample
    const float* __restrict__ src = G.g + G.base(m) + o0 * G.P;
    for (int64_t e = 0; e < w; ++e)
      for (int64_t q = 0; q < run; ++q) pf[(m - m0 + q) * OB + e] = src[e * G.P + q];
    m += run;
  }
}

// grad_W[o0 : o0 + w, i_lo : i_hi] for one block of w <= OB output features: token chunk outer, input
// column inner, the column's sums carried in acc_t [I, OB] between chunks (registers within one). Each
// entry sums its tokens in increasing order; a narrow last block (w < OB) adds zero lanes past w.
template <bool BINARY>
void block(const Grad& G, const Columns& c, float* __restrict__ gw, int64_t M, int64_t I, int64_t o0, int64_t w,
           int64_t i_lo, int64_t i_hi, v8* __restrict__ acc_t, v8* __restrict__ pack) {
  const int64_t chunks = (M + TC - 1) / TC;
  for (int64_t k = i_lo * NV; k < i_hi * NV; ++k) acc_t[k] = v8{};
  v8 total[NV] = {};  // complement: the sum of every token's row, in token order
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int32_t* __restrict__ lo = c.bound.data() + ch * I;
    const int32_t* __restrict__ hi = lo + I;
    const int64_t m0 = ch * TC, m1 = std::min(M, m0 + TC);
    pack_rows(G, o0, w, m0, m1, pack);
    if (c.complement)
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t k = 0; k < NV; ++k) total[k] += pack[(m - m0) * NV + k];
    const float* __restrict__ pb = reinterpret_cast<const float*>(pack) - m0 * OB;
    for (int64_t i = i_lo; i < i_hi; ++i) {
      if (lo[i] == hi[i]) continue;
      v8 acc[NV];
      for (int64_t k = 0; k < NV; ++k) acc[k] = acc_t[i * NV + k];
      const int32_t* __restrict__ list = c.idx.get() + c.start[i];
      const float* __restrict__ val = BINARY ? nullptr : c.val.data() + c.start[i];
      for (int64_t j = lo[i]; j < hi[i]; ++j) {
        const float* __restrict__ row = pb + int64_t(list[j]) * OB;
        if (BINARY) {
          for (int64_t k = 0; k < NV; ++k) acc[k] += load8(row + 8 * k);
        } else {
          const float s = val[j];
          for (int64_t k = 0; k < NV; ++k) acc[k] += s * load8(row + 8 * k);
        }
      }
      for (int64_t k = 0; k < NV; ++k) acc_t[i * NV + k] = acc[k];
    }
  }
  if (c.complement)
    for (int64_t i = i_lo; i < i_hi; ++i)
      for (int64_t k = 0; k < NV; ++k) acc_t[i * NV + k] = total[k] - acc_t[i * NV + k];
  for (int64_t k = 0; k < NV; ++k)
    for (int64_t e = 0; e < 8 && 8 * k + e < w; ++e)
      for (int64_t i = i_lo; i < i_hi; ++i) gw[(o0 + 8 * k + e) * I + i] = acc_t[i * NV + k][e];
}

}  // namespace

// g fp32 [M, O] (P = 1) or [M / P, O, P], x [M, I] uint8, gw [O, I] fp32 (written, not accumulated); all
// contiguous. Returns 0 without writing gw when the lists would hold more than max_fraction of x's
// entries (the gather-sum then loses to a dense GEMM: the caller runs one), else 1.
extern "C" int sa_spike_grad_weight_f32(const float* g, const uint8_t* x, float* gw, int64_t M, int64_t O,
                                        int64_t I, int64_t P, double max_fraction, int nthreads) {
  const Grad G{g, O, P};
  const double limit = std::min(max_fraction * double(M) * double(I), double(M) * double(I));
  const Columns c = build_columns(x, M, I, int64_t(limit), nthreads);
  if (c.listed > int64_t(limit)) return 0;
  // Work units: a block of output features times a range of input columns. Few blocks (O = 96,
  // 192: 2-3 blocks) would leave threads idle or unevenly loaded, so the columns are split too, in
  // ranges of at least 64; each entry still sums its tokens in the same order (any split, same bits).
  const int64_t blocks = (O + OB - 1) / OB;
  const int64_t want = nthreads > 1 ? (4 * nthreads + blocks - 1) / blocks : 1;
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>(want, I / 64));
  const int64_t span = (I + splits - 1) / splits;
  auto run = [&](int64_t, int64_t u_lo, int64_t u_hi) {
    std::vector<v8> acc_t(I * NV), pack(TC * NV);
    for (int64_t u = u_lo; u < u_hi; ++u) {
      const int64_t b = u / splits, i_lo = (u % splits) * span, i_hi = std::min(I, i_lo + span);
      const int64_t o0 = b * OB, w = std::min(OB, O - o0);
      if (i_lo >= i_hi) continue;
      if (c.val.empty()) block<true>(G, c, gw, M, I, o0, w, i_lo, i_hi, acc_t.data(), pack.data());
      else block<false>(G, c, gw, M, I, o0, w, i_lo, i_hi, acc_t.data(), pack.data());
    }
  };
  parallel_ranges(blocks * splits, nthreads, run);
  return 1;
}

namespace {
// One range of sa_to_uint8_f32 (restrict pointers, no captures: the loop vectorizes); 1 if any bad.
int to_uint8_range(const float* __restrict__ x, uint8_t* __restrict__ out, int64_t n) {
  int bad = 0;
  for (int64_t k = 0; k < n; ++k) {
    const float v = x[k];
    const float c = std::min(std::max(v, 0.0f), 255.0f);  // NaN -> 0 here, caught by v != c
    const uint8_t u = uint8_t(int32_t(c));
    out[k] = u;
    bad |= v != float(u);
  }
  return bad;
}
}  // namespace

// out[k] = uint8(x[k]) if every x[k] is an integer in [0, 255] (returns 1), else returns 0 (out
// then holds garbage): the check and the 1-byte copy for backward in one pass, threads on disjoint ranges.
extern "C" int sa_to_uint8_f32(const float* __restrict__ x, uint8_t* __restrict__ out, int64_t n, int nthreads) {
  constexpr int64_t PIECE = 1 << 17;  // elements per range: a thread below this costs more than it saves
  const int64_t pieces = (n + PIECE - 1) / PIECE;
  std::vector<uint8_t> bad(pieces, 0);
  parallel_ranges(pieces, nthreads, [&](int64_t, int64_t p_lo, int64_t p_hi) {
    for (int64_t p = p_lo; p < p_hi; ++p) {
      const int64_t k0 = p * PIECE;
      const int b = to_uint8_range(x + k0, out + k0, std::min(n - k0, PIECE));
      bad[p] = uint8_t(b);
    }
  });
  return std::find(bad.begin(), bad.end(), uint8_t(1)) == bad.end();
}
