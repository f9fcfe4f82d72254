// Max-pool of [planes, H, W] fp32 maps (Spikformer's MaxPool(3, 2, 1) over LIF spikes), on the CPU.
//
// Each output scans its window's in-range cells in row-major order with torch's update rule,
//
//   take = v > m || isnan(v);  m = take ? v : m;  where = take ? cell : where     (m starts at -inf,
//                                                                                  where at the first cell)
//
// so the value AND the chosen cell are torch's (aten's cpu_max_pool) for any input: the first max of
// the window, the last NaN if there is one, the first in-range cell when all are -inf (padding, as in
// torch, never wins). The chosen cell is kept as its uint8 offset in the window (row * k + col, k <= 16),
// not as an int64 index: 1 byte per output for backward, and nothing under no_grad (where == nullptr).
// Backward routes each output's gradient to that cell, adding into a zeroed plane in output scan order,
// as aten's max_pool2d backward does, so even cells shared by overlapping windows get torch's bits.
// The forward runs vectorised over the outputs of a row: each lane scans its own window in the same
// order, so vectorising changes no result.
// Built by spikeattn/ops/_native.py, called through ctypes (spikeattn/ops/spike_pool/cpu.py).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "parallel.h"

namespace {

// Outputs of a row scanned together: a fixed count, so that the loop over them is all vector code (no
// scalar remainder); the padded plane is wide enough for the last block's overhang.
constexpr int64_t BLOCK = 16;

struct Geometry {
  int64_t H, W, OH, OW;
  int k, s, p;
};

// The plane with `p` rows and columns of -inf around it (and more on the right and bottom where the
// last block of windows overhangs): every window is then whole, so all outputs run the same vector
// loop. A -inf cell never wins (-inf > m is false, it is no NaN), so the values and chosen cells are
// those of scanning the in-range cells only, once each output starts at its first in-range cell (`oj`
// below). Each row is stored as `s` phases, padded column C at phase C % s, index C / s, so that cell
// (r, dc) of the windows j, j + 1, ... of a row is one unit-stride run: phase dc % s from j + dc / s.
template <int SC>
struct Padded {
  std::vector<float> buf, row;  // the phases; one padded row before it is split into phases
  int64_t Hp = 0, L = 0, s = 0;  // rows, phase length, stride

  explicit Padded(const Geometry& g) : s(SC ? SC : g.s) {
    const int64_t blocks = (g.OW + BLOCK - 1) / BLOCK;
    Hp = std::max<int64_t>((g.OH - 1) * s + g.k, g.p + g.H);
    L = std::max<int64_t>(blocks * BLOCK + (g.k - 1) / s, (g.p + g.W + s - 1) / s);
    // Rows outside the map and the row ends stay -inf: fill() rewrites only the map's cells.
    buf.assign(size_t(Hp * s * L), -std::numeric_limits<float>::infinity());
    row.assign(size_t(s * L), -std::numeric_limits<float>::infinity());
  }
  const float* run(int64_t r, int64_t col) const {
    const int64_t s = SC ? SC : this->s;
    return buf.data() + (r * s + col % s) * L + col / s;
  }

  void fill(const float* x, const Geometry& g) {
    const int64_t s = SC ? SC : this->s, L = this->L;
    for (int64_t r = 0; r < g.H; ++r) {
      std::memcpy(row.data() + g.p, x + r * g.W, sizeof(float) * g.W);
      float* out = buf.data() + (r + g.p) * s * L;
      const float* in = row.data();
      for (int64_t i = 0; i < L; ++i)
        for (int64_t q = 0; q < s; ++q) out[q * L + i] = in[i * s + q];
    }
  }
};

// KC / SC: kernel size and stride as compile-time constants (0 = take them from g at run time).
template <int KC, int SC, bool WHERE>
void forward_plane(const Padded<SC>& xp, float* y, uint8_t* where, const Geometry& g) {
  const int k = KC ? KC : g.k, s = SC ? SC : g.s;
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const int32_t skip_rows = int32_t(std::max<int64_t>(g.p - oh * s, 0));  // -inf rows above the map
    for (int64_t b0 = 0; b0 < g.OW; b0 += BLOCK) {
      float m[BLOCK];
      int32_t o[BLOCK];
      const float* rows[KC ? KC * KC : 256];  // the k * k unit-stride runs of this block's windows
      for (int r = 0; r < k; ++r)
        for (int dc = 0; dc < k; ++dc) rows[r * k + dc] = xp.run(oh * s + r, b0 * s + dc);
#pragma omp simd
      for (int64_t j = 0; j < BLOCK; ++j) {
        float mj = -std::numeric_limits<float>::infinity();
        const int32_t skip_cols = int32_t(std::max<int64_t>(g.p - (b0 + j) * s, 0));
        int32_t oj = skip_rows * k + skip_cols;  // the first in-range cell
        for (int c = 0; c < k * k; ++c) {  // row-major, as torch scans
          const float v = rows[c][j];
          const bool take = v > mj || v != v;
          mj = take ? v : mj;
          if (WHERE) oj = take ? c : oj;
        }
        m[j] = mj;
        o[j] = oj;
      }
      const int64_t n = std::min<int64_t>(BLOCK, g.OW - b0);
      float* yr = y + oh * g.OW + b0;
      uint8_t* wr = WHERE ? where + oh * g.OW + b0 : nullptr;
      if (n == BLOCK) {  // constant trip counts: vector stores, not a call to memcpy
        for (int64_t j = 0; j < BLOCK; ++j) yr[j] = m[j];
        if (WHERE)
          for (int64_t j = 0; j < BLOCK; ++j) wr[j] = uint8_t(o[j]);
      } else {
        for (int64_t j = 0; j < n; ++j) yr[j] = m[j];
        if (WHERE)
          for (int64_t j = 0; j < n; ++j) wr[j] = uint8_t(o[j]);
      }
    }
  }
}

template <int KC, int SC, bool WHERE>
void forward(const float* x, float* y, uint8_t* where, int64_t planes, const Geometry& g, int nthreads) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, nthreads, [&](int64_t, int64_t lo, int64_t hi) {
    Padded<SC> xp(g);  // one per thread, reused for its planes
    for (int64_t i = lo; i < hi; ++i) {
      xp.fill(x + i * in, g);
      forward_plane<KC, SC, WHERE>(xp, y + i * out, WHERE ? where + i * out : nullptr, g);
    }
  });
}

template <int KC, int SC>
void backward(const float* gy, const uint8_t* where, float* gx, int64_t planes, const Geometry& g, int nthreads) {
  const int k = KC ? KC : g.k, s = SC ? SC : g.s;
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, nthreads, [&](int64_t, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float* gxi = gx + i * in;
      const float* gyi = gy + i * out;
      const uint8_t* wi = where + i * out;
      std::memset(gxi, 0, sizeof(float) * in);
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const int o = wi[oh * g.OW + ow];
          gxi[(oh * s - g.p + o / k) * g.W + ow * s - g.p + o % k] += gyi[oh * g.OW + ow];
        }
    }
  });
}

}  // namespace

// Spikformer's MaxPool(3, 2, 1) gets kernels with constant loop bounds; any other size the general ones.
extern "C" void sa_spike_pool_forward_f32(const float* x, float* y, uint8_t* where, int64_t planes, int64_t H,
                                          int64_t W, int64_t OH, int64_t OW, int k, int s, int p, int nthreads) {
  const Geometry g{H, W, OH, OW, k, s, p};
  const bool k3s2 = k == 3 && s == 2;
  if (where == nullptr) {
    k3s2 ? forward<3, 2, false>(x, y, where, planes, g, nthreads) : forward<0, 0, false>(x, y, where, planes, g, nthreads);
  } else {
    k3s2 ? forward<3, 2, true>(x, y, where, planes, g, nthreads) : forward<0, 0, true>(x, y, where, planes, g, nthreads);
  }
}

extern "C" void sa_spike_pool_backward_f32(const float* gy, const uint8_t* where, float* gx, int64_t planes, int64_t H,
                                           int64_t W, int64_t OH, int64_t OW, int k, int s, int p, int nthreads) {
  const Geometry g{H, W, OH, OW, k, s, p};
  if (k == 3 && s == 2) {
    backward<3, 2>(gy, where, gx, planes, g, nthreads);
  } else {
    backward<0, 0>(gy, where, gx, planes, g, nthreads);
  }
}
