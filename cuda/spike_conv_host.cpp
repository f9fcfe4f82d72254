// Weight gradient of a Conv2d (groups 1) whose input is spikes:
//   grad_W[o, c, r, q] = sum_{n, oh, ow} g[n, o, oh, ow] * x[n, c, oh*sh - ph + r*dh, ow*sw - pw + q*dw]
// with x [N, C, H, W] small non-negative integers stored as uint8 (0/1 spikes; counts up to 255).
// A dense backward spends N*OH*OW*O*C*KH*KW multiply-adds. Here every nonzero x[n, c, ih, iw] adds
// the rows of g it meets, g[n, oh, ow, :] for each tap (r, q), into grad_W[:, c, r, q]: nnz(x)*KH*KW*O
// additions, vectorised over the output channels (g channels-last). Mostly-one 0/1 spikes list their
// zeros instead (complement): grad = (the same sum over every input position) - (sum over the zeros).
// Threads own input channels (each its rows of grad_W); every sum runs over n, then the positions in
// increasing order: the result does not depend on the thread count.
// Built by spikeattn/ops/_native.py (g++ -O3 -march=native -ffp-contract=off).
#pragma GCC optimize("no-trapping-math")

#include <cstdint>
#include <algorithm>
#include <vector>

#include "parallel.h"

namespace {

typedef float v16 __attribute__((vector_size(64)));  // 16 floats: one AVX-512 register (two AVX ones)
constexpr int64_t NV = 2;                           // registers per output block
constexpr int64_t OB = 16 * NV;                     // output channels per block (g is padded to a multiple)
constexpr int64_t BAND_BYTES = 24 << 10;            // a band's rows of g (one block wide): half of L1

inline v16 load16(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

// The geometry: g is zero-padded so that every tap of every input position lands inside it.
struct Geometry {
  int64_t N, C, H, W, O, OP, OHp, OWp, KH, KW, sh, sw, offh, offw, dh, dw;
};

// A run of one input plane's listed positions (ih << 16 | iw) and, for counts, their values.
struct Run {
  const int32_t* pos;
  const float* val;
  int64_t n;
};

// acc[r][q][k] += val * g[n, (ih + offh - r*dh)/sh, (iw + offw - q*dw)/sw, ob*OB + 16k] over the plane's
// list, for one block of output channels and the tap rows r0 .. r0 + RH - 1 (their RH*KW*NV
// accumulators in registers: independent add chains); taps that divide with a remainder (stride > 1) skip.
// acc: this (channel, block)'s [KH][KW][NV] registers.
template <int RH, int KW, bool BINARY, bool S1>
void gather_rows(const Geometry& G, const Run& p, const float* __restrict__ gb, int64_t r0, v16* __restrict__ acc) {
  const int64_t rowstride = G.OWp * G.OP;
  const int32_t* __restrict__ pos = p.pos;
  const float* __restrict__ val = p.val;
  v16 a[RH][KW][NV];
  v16* __restrict__ ar = acc + r0 * KW * NV;
  for (int r = 0; r < RH; ++r)
    for (int q = 0; q < KW; ++q)
      for (int64_t k = 0; k < NV; ++k) a[r][q][k] = ar[(r * KW + q) * NV + k];
  for (int64_t j = 0; j < p.n; ++j) {
    const int64_t ih = pos[j] >> 16, iw = pos[j] & 0xffff;
    const float s = BINARY ? 1.0f : val[j];
    for (int r = 0; r < RH; ++r) {
      int64_t hn = ih + G.offh - (r0 + r) * G.dh;
      if (!S1) {
        if (hn % G.sh) continue;
        hn /= G.sh;
      }
      const float* __restrict__ row = gb + hn * rowstride;
      for (int q = 0; q < KW; ++q) {
        int64_t wn = iw + G.offw - q * G.dw;
        if (!S1) {
          if (wn % G.sw) continue;
          wn /= G.sw;
        }
        const float* __restrict__ gp = row + wn * G.OP;
        for (int64_t k = 0; k < NV; ++k) {
          if (BINARY) a[r][q][k] += load16(gp + 16 * k);
          else a[r][q][k] += s * load16(gp + 16 * k);
        }
      }
    }
  }
  for (int r = 0; r < RH; ++r)
    for (int q = 0; q < KW; ++q)
      for (int64_t k = 0; k < NV; ++k) ar[(r * KW + q) * NV + k] = a[r][q][k];
}

// Every tap row: all KH at once for kernels up to 3x3 (18 accumulators), else one row at a time.
template <int RH, int KW, bool BINARY, bool S1>
void gather(const Geometry& G, const Run& p, const float* __restrict__ gb, v16* __restrict__ acc) {
  for (int64_t r0 = 0; r0 < G.KH; r0 += RH) gather_rows<RH, KW, BINARY, S1>(G, p, gb, r0, acc);
}

typedef void (*GatherFn)(const Geometry&, const Run&, const float*, v16*);

template <int RH, int KW>
GatherFn pick_flags(bool binary, bool s1) {
  if (binary) return s1 ? gather<RH, KW, true, true> : gather<RH, KW, true, false>;
  return s1 ? gather<RH, KW, false, true> : gather<RH, KW, false, false>;
}

template <int KW>
GatherFn pick_rows(int64_t kh, bool binary, bool s1) {
  if (KW <= 3 && kh == 3) return pick_flags<(KW <= 3 ? 3 : 1), KW>(binary, s1);
  if (KW <= 3 && kh == 2) return pick_flags<(KW <= 3 ? 2 : 1), KW>(binary, s1);
  return pick_flags<1, KW>(binary, s1);
}

// Kernel widths 1..7 (a tap row's KW * NV <= 14 accumulators in registers); nullptr = unsupported.
GatherFn pick(int64_t kh, int64_t kw, bool binary, bool s1) {
  switch (kw) {
    case 1: return pick_rows<1>(kh, binary, s1);
    case 2: return pick_rows<2>(kh, binary, s1);
    case 3: return pick_rows<3>(kh, binary, s1);
    case 4: return pick_rows<4>(kh, binary, s1);
    case 5: return pick_rows<5>(kh, binary, s1);
    case 6: return pick_rows<6>(kh, binary, s1);
    case 7: return pick_rows<7>(kh, binary, s1);
    default: return nullptr;
  }
}

// The listed positions of plane x[n, c] (H*W bytes) in increasing order: nonzeros, or zeros
// (complement); rows[ih] = where row ih's start (rows[H] = the count). Branch-free: every position
// is written, the count advances only for listed ones.
void list_plane(const uint8_t* __restrict__ x, int64_t H, int64_t W, bool binary, bool complement,
                int32_t* __restrict__ pos, float* __restrict__ val, int32_t* __restrict__ rows) {
  int32_t n = 0;
  for (int64_t ih = 0; ih < H; ++ih) {
    rows[ih] = n;
    for (int64_t iw = 0; iw < W; ++iw) {
      const uint8_t v = x[ih * W + iw];
      pos[n] = int32_t(ih << 16 | iw);
      if (!binary) val[n] = float(v);
      n += (v != 0) != complement;
    }
  }
  rows[H] = n;
}

// plane[top + oh, left + ow, o] = grad_y[n, o, oh, ow]: the interior of sample n's channels-last
// copy (its zero border and channel padding, written once by the caller, are left alone).
void to_channels_last(const float* __restrict__ gy, float* __restrict__ plane, const Geometry& G, int64_t OH,
                      int64_t OW, int64_t top, int64_t left, int64_t n) {
  const float* __restrict__ src = gy + n * G.O * OH * OW;
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* __restrict__ drow = plane + ((oh + top) * G.OWp + left) * G.OP;
    for (int64_t o = 0; o < G.O; ++o) {  // a source row read in order; the OW lines written stay in L1
      const float* __restrict__ srow = src + (o * OH + oh) * OW;
      for (int64_t ow = 0; ow < OW; ++ow) drow[ow * G.OP + o] = srow[ow];
    }
  }
}

}  // namespace

// gy [N, O, OH, OW] fp32 (contiguous), x [N, C, H, W] uint8, gw [O, C, KH, KW] fp32 (written).
// The kernel copies gy channels-last into a zero-padded [N, OHp, OWp, OP] (OP: O rounded up to 32)
// with gy[n, :, oh, ow] at (top + oh, left + ow), chosen by the caller so that
// ((ih + offh - r*dh)/sh, (iw + offw - q*dw)/sw) is inside for every input position and tap.
// binary: x is 0/1; complement (binary only): list x's zeros. Returns 0 (nothing written) for an
// unsupported geometry (KW > 7, H or W >= 65536), else 1.
extern "C" int sa_spike_conv_grad_weight_f32(const float* gy, const uint8_t* x, float* gw, int64_t N, int64_t C,
                                             int64_t H, int64_t W, int64_t O, int64_t OH, int64_t OW, int64_t OHp,
                                             int64_t OWp, int64_t top, int64_t left, int64_t KH, int64_t KW,
                                             int64_t sh, int64_t sw, int64_t offh, int64_t offw, int64_t dh,
                                             int64_t dw, int binary, int complement, int nthreads) {
  const bool s1 = sh == 1 && sw == 1;
  const GatherFn fn = pick(KH, KW, binary != 0, s1);
  if (!fn || H >= 65536 || W >= 65536) return 0;
  const int64_t OP = (O + OB - 1) / OB * OB;
  const Geometry G{N, C, H, W, O, OP, OHp, OWp, KH, KW, sh, sw, offh, offw, dh, dw};
  const int64_t blocks = OP / OB, taps = KH * KW, per_c = blocks * taps * NV;  // v16 per input channel
  const int64_t plane = OHp * OWp * OP;
  const int64_t band = std::max<int64_t>(4, BAND_BYTES / (OWp * OB * 4 * sh) - (KH - 1) * dh);  // input rows
  std::vector<int32_t> all(complement ? H * W : 0), all_rows(H + 1);
  if (complement) {  // complement: every position's sum, minus the zeros' sum
    const std::vector<uint8_t> ones(H * W, 1);
    list_plane(ones.data(), H, W, true, false, all.data(), nullptr, all_rows.data());
  }
  parallel_ranges(C, nthreads, [&](int64_t, int64_t c_lo, int64_t c_hi) {
    const int64_t cr = c_hi - c_lo;
    std::vector<v16> acc(cr * per_c, v16{}), total(complement ? per_c : 0, v16{});
    std::vector<v16> buf((plane + 15) / 16, v16{});  // g[n] channels-last, zero-padded; stays in L2
    float* g = reinterpret_cast<float*>(buf.data());
    std::vector<int32_t> pos(cr * H * W), rows(cr * (H + 1));
    std::vector<float> val(binary ? 0 : cr * H * W);
    for (int64_t n = 0; n < N; ++n) {  // n outer: g[n] is copied once per thread and used by every channel
      to_channels_last(gy, g, G, OH, OW, top, left, n);
      if (complement)  // every thread sums the same terms in the same order: the same total
        for (int64_t ob = 0; ob < blocks; ++ob)
          fn(G, Run{all.data(), nullptr, H * W}, g + ob * OB, total.data() + ob * taps * NV);
      for (int64_t c = 0; c < cr; ++c)
        list_plane(x + (n * C + c_lo + c) * H * W, H, W, binary != 0, complement != 0, pos.data() + c * H * W,
                   binary ? nullptr : val.data() + c * H * W, rows.data() + c * (H + 1));
      // A band of input rows at a time, every channel: the band's rows of g (one block wide) stay
      // in L1 while each channel's positions in it are summed (small maps: the whole map at once).
      for (int64_t h0 = 0; h0 < H; h0 += band)
        for (int64_t ob = 0; ob < blocks; ++ob)
          for (int64_t c = 0; c < cr; ++c) {
            const int32_t* rc = rows.data() + c * (H + 1);
            const int64_t j0 = rc[h0], j1 = rc[std::min(H, h0 + band)];
            if (j0 == j1) continue;
            const Run run{pos.data() + c * H * W + j0, binary ? nullptr : val.data() + c * H * W + j0, j1 - j0};
            fn(G, run, g + ob * OB, acc.data() + c * per_c + ob * taps * NV);
          }
    }
    for (int64_t c = c_lo; c < c_hi; ++c) {
      const float* a = reinterpret_cast<const float*>(acc.data() + (c - c_lo) * per_c);
      const float* t = reinterpret_cast<const float*>(total.data());
      for (int64_t o = 0; o < O; ++o)
        for (int64_t tap = 0; tap < taps; ++tap) {
          const int64_t k = ((o / OB) * taps + tap) * OB + o % OB;  // (block, tap, lane) in [blocks][taps][OB]
          gw[(o * C + c) * taps + tap] = complement ? t[k] - a[k] : a[k];
        }
    }
  });
  return 1;
}
