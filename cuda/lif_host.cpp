// Fused multi-step LIF on the CPU: one pass over T forward, one reverse pass backward.
// The per-step maths is lif_core.cuh (the same code the CUDA kernels run); this file only
// walks the [T, N] layout: each thread owns a range of neurons and sweeps it in blocks that
// stay in L1, time outer and neurons inner so the inner loop reads contiguous memory.
// Built by spikeattn/ops/_native.py with g++ -O3 -ffp-contract=off (no fast-math: bit-exact).
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <thread>
#include <vector>

#include "lif_core.cuh"

namespace {

struct bf16 { uint16_t bits; };

inline float to_acc(bf16 x) {
  uint32_t u = uint32_t(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float to_acc(_Float16 x) { return float(x); }
inline float to_acc(float x) { return x; }
inline double to_acc(double x) { return x; }

// Spikes and gradients are written in the input dtype.
template <typename T> inline T from_acc(float x);
template <> inline float from_acc<float>(float x) { return x; }
template <> inline _Float16 from_acc<_Float16>(float x) { return _Float16(x); }
template <> inline bf16 from_acc<bf16>(float x) {  // round to nearest even; NaN kept quiet
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}
template <typename T> inline T from_acc(double x);
template <> inline double from_acc<double>(double x) { return x; }

constexpr int64_t BLOCK = 256;

template <typename F>
void parallel_neurons(int64_t n, int nthreads, F body) {
  nthreads = int(std::max<int64_t>(1, std::min<int64_t>(nthreads, n / (4 * BLOCK))));
  if (nthreads == 1) { body(0, int64_t(0), n); return; }
  const int64_t per = (n + nthreads - 1) / nthreads;
  std::vector<std::thread> pool;
  for (int i = 0; i < nthreads; ++i) {
    const int64_t lo = i * per, hi = std::min(n, lo + per);
    if (lo < hi) pool.emplace_back(body, i, lo, hi);
  }
  for (auto& th : pool) th.join();
}

template <typename in_t, typename acc_t>
void forward(const in_t* __restrict__ x, const acc_t* __restrict__ v0, in_t* __restrict__ spikes,
             acc_t* __restrict__ h_seq, acc_t* __restrict__ v_last, int64_t T, int64_t N,
             const LifParams<acc_t> p, int nthreads) {
  parallel_neurons(N, nthreads, [=](int, int64_t lo, int64_t hi) {
    // A local copy of the parameters: provably unaliased by the output stores, so the compiler
    // hoists the mode branches out of the inner loop and vectorises it.
    const LifParams<acc_t> q = p;
    acc_t v[BLOCK];
    for (int64_t b = lo; b < hi; b += BLOCK) {
      const int64_t nb = std::min(BLOCK, hi - b);
      for (int64_t i = 0; i < nb; ++i) v[i] = v0[b + i];
      for (int64_t t = 0; t < T; ++t) {
        const int64_t o = t * N + b;
        for (int64_t i = 0; i < nb; ++i) {
          const acc_t h = lif_charge(q, v[i], acc_t(to_acc(x[o + i])));
          const bool s = lif_fire(q, h);
          h_seq[o + i] = h;
          spikes[o + i] = from_acc<in_t>(s ? acc_t(1) : acc_t(0));
          v[i] = lif_reset(q, h, s);
        }
      }
      for (int64_t i = 0; i < nb; ++i) v_last[b + i] = v[i];
    }
  });
}

// One block of neurons, all steps in reverse. SG and PLIF are template arguments so the inner
// loop has no branch on them and vectorises.
template <int SG, bool PLIF, typename in_t, typename acc_t>
double backward_block(const in_t* __restrict__ g_spikes, const acc_t* __restrict__ g_v_last,
                      const acc_t* __restrict__ h_seq, const in_t* __restrict__ x,
                      const acc_t* __restrict__ v0, in_t* __restrict__ g_x,
                      acc_t* __restrict__ g_v0, int64_t T, int64_t N, int64_t b, int64_t nb,
                      const LifParams<acc_t> q) {
  acc_t gv[BLOCK];
  double gk = 0.0;  // a sum over every neuron-step: fp32 would drift
  for (int64_t i = 0; i < nb; ++i) gv[i] = g_v_last ? g_v_last[b + i] : acc_t(0);
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t o = t * N + b;
    for (int64_t i = 0; i < nb; ++i) {
      const acc_t h = h_seq[o + i];
      const acc_t sg = surrogate_grad_t<SG>(q.alpha, h - q.v_th);
      const acc_t gh = lif_grad_h_sg(q, h, sg, acc_t(to_acc(g_spikes[o + i])), gv[i]);
      g_x[o + i] = from_acc<in_t>(lif_dh_dx(q, gh));
      gv[i] = lif_dh_dv(q, gh);
      if constexpr (PLIF) {
        const acc_t hp = t > 0 ? h_seq[o - N + i] : acc_t(0);
        const acc_t v_prev = t > 0 ? lif_reset(q, hp, lif_fire(q, hp)) : v0[b + i];
        gk += double(lif_grad_k(q, gh, acc_t(to_acc(x[o + i])), v_prev));
      }
    }
  }
  for (int64_t i = 0; i < nb; ++i) g_v0[b + i] = gv[i];
  return gk;
}

template <int SG, bool PLIF, typename in_t, typename acc_t>
void backward(const in_t* g_spikes, const acc_t* g_v_last, const acc_t* h_seq, const in_t* x,
              const acc_t* v0, in_t* g_x, acc_t* g_v0, double* g_k, int64_t T, int64_t N,
              const LifParams<acc_t> p, int nthreads) {
  std::vector<double> partial(std::max(1, nthreads), 0.0);
  double* partial_sums = partial.data();
  parallel_neurons(N, nthreads, [=](int tid, int64_t lo, int64_t hi) {
    const LifParams<acc_t> q = p;  // unaliased local copy, as in forward
    double gk = 0.0;
    for (int64_t b = lo; b < hi; b += BLOCK)
      gk += backward_block<SG, PLIF>(g_spikes, g_v_last, h_seq, x, v0, g_x, g_v0, T, N, b,
                                     std::min(BLOCK, hi - b), q);
    partial_sums[tid] = gk;
  });
  if (g_k) {
    double total = 0.0;
    for (double v : partial) total += v;
    *g_k = total;
  }
}

template <bool PLIF, typename in_t, typename acc_t>
void backward_sg(int sg, const in_t* g_spikes, const acc_t* g_v_last, const acc_t* h_seq,
                 const in_t* x, const acc_t* v0, in_t* g_x, acc_t* g_v0, double* g_k, int64_t T,
                 int64_t N, const LifParams<acc_t>& p, int nthreads) {
#define SA_CASE(K) \
  case K: return backward<K, PLIF>(g_spikes, g_v_last, h_seq, x, v0, g_x, g_v0, g_k, T, N, p, nthreads);
  switch (sg) {
    SA_CASE(SG_ATAN) SA_CASE(SG_SIGMOID) SA_CASE(SG_FAST_SIGMOID) SA_CASE(SG_TRIANGLE)
    default: SA_CASE(SG_RECTANGLE)
  }
#undef SA_CASE
}

template <typename in_t, typename acc_t>
void backward_any(const in_t* g_spikes, const acc_t* g_v_last, const acc_t* h_seq, const in_t* x,
                  const acc_t* v0, in_t* g_x, acc_t* g_v0, double* g_k, int64_t T, int64_t N,
                  const LifParams<acc_t>& p, int nthreads) {
  if (p.charge_mode == CHARGE_PLIF)
    backward_sg<true>(p.surrogate, g_spikes, g_v_last, h_seq, x, v0, g_x, g_v0, g_k, T, N, p, nthreads);
  else
    backward_sg<false>(p.surrogate, g_spikes, g_v_last, h_seq, x, v0, g_x, g_v0, g_k, T, N, p, nthreads);
}

template <typename acc_t>
LifParams<acc_t> make_params(int charge_mode, int decay_input, double decay, double v_th,
                             double v_reset, int soft_reset, int detach_reset, int surrogate,
                             double alpha) {
  return LifParams<acc_t>{charge_mode, decay_input != 0, acc_t(decay), acc_t(v_th),
                          acc_t(v_reset), soft_reset != 0, detach_reset != 0, surrogate,
                          acc_t(alpha)};
}

}  // namespace

#define SA_PARAMS_DECL                                                                     \
  int charge_mode, int decay_input, double decay, double v_th, double v_reset,             \
      int soft_reset, int detach_reset, int surrogate, double alpha
#define SA_PARAMS_ARGS \
  charge_mode, decay_input, decay, v_th, v_reset, soft_reset, detach_reset, surrogate, alpha

// One C entry point per (input dtype, state dtype): called through ctypes.
#define SA_DEFINE(TAG, IN_T, ACC_T)                                                        \
  extern "C" void sa_lif_forward_##TAG(const void* x, const ACC_T* v0, void* spikes,       \
                                        ACC_T* h_seq, ACC_T* v_last, int64_t T, int64_t N, \
                                        SA_PARAMS_DECL, int nthreads) {                    \
    forward<IN_T, ACC_T>(static_cast<const IN_T*>(x), v0, static_cast<IN_T*>(spikes),     \
                         h_seq, v_last, T, N, make_params<ACC_T>(SA_PARAMS_ARGS),         \
                         nthreads);                                                        \
  }                                                                                        \
  extern "C" void sa_lif_backward_##TAG(                                                   \
      const void* g_spikes, const ACC_T* g_v_last, const ACC_T* h_seq, const void* x,      \
      const ACC_T* v0, void* g_x, ACC_T* g_v0, double* g_k, int64_t T, int64_t N,          \
      SA_PARAMS_DECL, int nthreads) {                                                      \
    backward_any<IN_T, ACC_T>(static_cast<const IN_T*>(g_spikes), g_v_last, h_seq,            \
                          static_cast<const IN_T*>(x), v0, static_cast<IN_T*>(g_x), g_v0, \
                          g_k, T, N, make_params<ACC_T>(SA_PARAMS_ARGS), nthreads);       \
  }

SA_DEFINE(f32, float, float)
SA_DEFINE(f64, double, double)
SA_DEFINE(f16, _Float16, float)
SA_DEFINE(bf16, bf16, float)
