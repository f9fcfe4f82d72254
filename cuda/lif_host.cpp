// Fused multi-step LIF on the CPU: one pass over T forward, one reverse pass backward.
// The per-step maths is lif_core.cuh (the same code the CUDA kernels run); this file only
// walks the layout ([T, N], or N / M sequences of [T, M] one after another): each thread owns a range
// of neurons and sweeps it in blocks that stay in L1, time outer and neurons inner so the inner loop
// reads contiguous memory.
// Built by spikeattn/ops/_native.py with g++ -O3 -ffp-contract=off (no fast-math: bit-exact).
// Floating-point operations are assumed not to trap: GCC may then evaluate both arms of a select
// (g_v times a 0/1 reset factor, which it splits into a branch) and vectorise the neuron loops.
// No value changes. It must stay above every #include: a header function compiled without it
// (std::min, std::floor) is not inlined into the loops below, and they stop vectorising.
#pragma GCC optimize("no-trapping-math")

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace sa_host {

// exp for the Sigmoid surrogate: Cephes' expf (Cody-Waite reduction, degree-5 polynomial), branch-free
// so the backward loop vectorises; glibc's expf does not. Its steps are written as fused multiply-adds
// (the file is built without contraction, for the forward's bits): one rounding each, fewer
// instructions where the exp is most of the Sigmoid backward's work. Only gradients use it (the tests
// hold them to fp32 tolerance).
// Inputs are clamped to [-87.33, 88.3]: beyond, 1 + exp(x) is 1 or the sigmoid is below 1e-38.
inline float exp(float x) {
  x = std::min(std::max(x, -87.33654f), 88.3f);
  const float n = std::floor(std::fma(x, 1.44269504088896341f, 0.5f));
  float r = std::fma(-n, 0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float y = 1.9875691500e-4f;
  y = std::fma(y, r, 1.3981999507e-3f);
  y = std::fma(y, r, 8.3334519073e-3f);
  y = std::fma(y, r, 4.1665795894e-2f);
  y = std::fma(y, r, 1.6666665459e-1f);
  y = std::fma(y, r, 5.0000001201e-1f);
  y = std::fma(y, r * r, r) + 1.0f;
  const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;  // 2^n, n in [-126, 127]
  float scale;
  std::memcpy(&scale, &bits, 4);
  return y * scale;
}
inline double exp(double x) { return std::exp(x); }  // fp64 (gradcheck) keeps libm's

}  // namespace sa_host

#define SA_EXP(x) sa_host::exp(x)
#include "lif_core.cuh"
#include "parallel.h"

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

// Layout: G = N / M sequences one after another, each [T, M] (time-major [T, N] is M = N). Neuron
// n = g * M + i steps through (g * T + t) * M + i: step0 gives t = 0, and each step adds M.
inline int64_t step0(int64_t n, int64_t T, int64_t M) { return (n / M) * T * M + n % M; }

// Neurons from n on that a block takes: at most BLOCK, up to hi, and within one sequence group.
inline int64_t block_len(int64_t n, int64_t hi, int64_t M) { return std::min({BLOCK, hi - n, M - n % M}); }

// At least 4 blocks of neurons per thread.
template <typename F>
void parallel_neurons(int64_t n, int nthreads, F body) {
  parallel_ranges(n, std::min<int64_t>(nthreads, n / (4 * BLOCK)), body);
}

inline bool is_power_of_two(double x) {
  int e;
  return x > 0 && std::frexp(x, &e) == 0.5;
}

// Per-channel input affine y = fma(x, alpha[c], beta[c]) of an eval-mode BatchNorm (bn_inference
// below): channel c = (n / inner) % C of neuron n. Null alpha: no affine.
struct Affine {
  const float* alpha = nullptr;
  const float* beta = nullptr;
  int64_t C = 1, inner = 1;
};

// A charge mode for the kernels only: CHARGE_LIF with tau = 2^m (see forward and backward_block).
constexpr int LIF_POW2 = 16;

// KEEP_H: store the charged membrane for the backward; inference (no h_seq) skips that store,
// a third of the pass's memory traffic. A null v0 starts every neuron at v_reset (from rest).
// IN_PLACE: the input is in `spikes` (x unused) and each spike overwrites the input it came from:
// the input's cache lines take the spikes, where a separate output costs a second stream of memory.
// RESIDUAL: `spikes` takes residual + spike (a residual stream's sum, the rounding of torch's add)
// instead of the spike, so a block's `x + LIF(y)` is one pass and the spikes are never stored.
// CHARGE: -1 reads the charge mode from the parameters; a mode (or LIF_POW2) fixes it at compile time,
// for loops whose body is too long for GCC to unswitch the mode's branches (KEEP_H with AFFINE: not
// vectorised otherwise, 3-4x slower).
template <bool KEEP_H, bool AFFINE, typename in_t, typename acc_t, bool IN_PLACE = false, bool RESIDUAL = false,
          int CHARGE = -1>
void forward(const in_t* __restrict__ x, const acc_t* __restrict__ v0, in_t* __restrict__ spikes,
             acc_t* __restrict__ h_seq, acc_t* __restrict__ v_last, int64_t T, int64_t N, int64_t M,
             const LifParams<acc_t> p, int nthreads, const Affine affine = {},
             const in_t* __restrict__ residual = nullptr) {
  parallel_neurons(N, nthreads, [=](int, int64_t lo, int64_t hi) {
    // A local copy of the parameters: provably unaliased by the output stores, so the compiler
    // hoists the mode branches out of the inner loop and vectorises it.
    LifParams<acc_t> q = p;
    if constexpr (CHARGE >= 0) q.charge_mode = CHARGE == LIF_POW2 ? CHARGE_PLIF : CHARGE;
    if (CHARGE == LIF_POW2 || (CHARGE < 0 && q.charge_mode == CHARGE_LIF && is_power_of_two(double(q.decay)))) {
      // tau = 2^m: y / tau == y * (1 / tau) bit for bit (the one rounding of the same real number),
      // so PLIF's multiplying leak replaces a division per step (the loop's bottleneck).
      q.charge_mode = CHARGE_PLIF;
      q.decay = acc_t(1) / q.decay;
    }
    acc_t v[BLOCK], a[AFFINE ? BLOCK : 1], c0[AFFINE ? BLOCK : 1];
    for (int64_t b = lo, nb; b < hi; b += nb) {
      nb = block_len(b, hi, M);
      const int64_t base = step0(b, T, M);
      for (int64_t i = 0; i < nb; ++i) v[i] = v0 ? v0[b + i] : q.v_reset;
      if constexpr (AFFINE) {  // the block's channels, once for its T steps, in runs (copies / fills)
        int64_t c = (b / affine.inner) % affine.C, r = b % affine.inner;
        for (int64_t i = 0, n; i < nb; i += n, r = 0, c = c + 1 == affine.C ? 0 : c + 1) {
          if (affine.inner == 1) {  // channels last: a run of consecutive channels
            n = std::min(nb - i, affine.C - c);
            for (int64_t j = 0; j < n; ++j) a[i + j] = affine.alpha[c + j], c0[i + j] = affine.beta[c + j];
            c += n - 1;
          } else {                  // a run of one channel's cells
            n = std::min(nb - i, affine.inner - r);
            for (int64_t j = 0; j < n; ++j) a[i + j] = affine.alpha[c], c0[i + j] = affine.beta[c];
          }
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        const int64_t o = base + t * M;
        for (int64_t i = 0; i < nb; ++i) {
          acc_t in = acc_t(to_acc(IN_PLACE ? spikes[o + i] : x[o + i]));
          if constexpr (AFFINE) in = std::fma(in, a[i], c0[i]);  // BN's one rounding (ATen's is an fma too)
          const acc_t h = lif_charge(q, v[i], in);
          const bool s = lif_fire(q, h);
          if constexpr (KEEP_H) h_seq[o + i] = h;
          if constexpr (RESIDUAL)
            spikes[o + i] = residual[o + i] + (s ? in_t(1) : in_t(0));
          else
            spikes[o + i] = from_acc<in_t>(s ? acc_t(1) : acc_t(0));
          v[i] = lif_reset(q, h, s);
        }
      }
      if (v_last)  // null: the final membrane is not wanted (a layer's neuron from rest)
        for (int64_t i = 0; i < nb; ++i) v_last[b + i] = v[i];
    }
  });
}

// One block of neurons, all steps in reverse. A null g_v_last is zero; a null v0 is v_reset (from
// rest); a null g_v0 is not written. SG is the surrogate kind; CHARGE, SOFT, DETACH and
// DI (decay_input) are either -1 (read from the parameters at run time) or a value fixed at compile
// time and written into the local copy of the parameters. With every choice fixed, the lif_core.cuh
// maths folds to straight-line code and the loop over neurons vectorises, the Sigmoid surrogate's
// exp included; a choice left to run time puts a select (or an unswitched branch) in the loop.

template <int SG, int CHARGE, int SOFT, int DETACH, int DI, typename in_t, typename acc_t>
double backward_block(const in_t* __restrict__ g_spikes, const acc_t* __restrict__ g_v_last,
                      const acc_t* __restrict__ h_seq, const in_t* __restrict__ x,
                      const acc_t* __restrict__ v0, in_t* __restrict__ g_x,
                      acc_t* __restrict__ g_v0, int64_t T, int64_t M, int64_t b, int64_t nb,
                      const LifParams<acc_t> p) {
  constexpr bool PLIF = CHARGE == CHARGE_PLIF;
  LifParams<acc_t> q = p;  // an unaliased local copy: its fields are loop invariants
  if constexpr (CHARGE >= 0) q.charge_mode = CHARGE;
  if constexpr (CHARGE == LIF_POW2) {
    // LIF whose tau is a power of two: 1/tau is exact, so g * (1/tau) == g / tau and
    // g * (1 - 1/tau) == g - g / tau bit for bit (each is the one rounding of the same real
    // number); PLIF's multiplying form of the leak then replaces two divisions per step.
    q.charge_mode = CHARGE_PLIF;
    q.decay = acc_t(1) / p.decay;
  }
  if constexpr (SOFT >= 0) q.soft_reset = SOFT;
  if constexpr (DETACH >= 0) q.detach_reset = DETACH;
  if constexpr (DI >= 0) q.decay_input = DI;
  acc_t gv[BLOCK];
  double gk = 0.0;  // a sum over every neuron-step: fp32 would drift
  for (int64_t i = 0; i < nb; ++i) gv[i] = g_v_last ? g_v_last[b + i] : acc_t(0);
  const int64_t base = step0(b, T, M);
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t o = base + t * M;
    for (int64_t i = 0; i < nb; ++i) {
      const acc_t h = h_seq[o + i];
      const acc_t sg = surrogate_grad_t<SG>(q.alpha, h - q.v_th);
      const acc_t gh = lif_grad_h_sg(q, h, sg, acc_t(to_acc(g_spikes[o + i])), gv[i]);
      g_x[o + i] = from_acc<in_t>(lif_dh_dx(q, gh));
      gv[i] = lif_dh_dv(q, gh);
      if constexpr (PLIF) {
        const acc_t hp = t > 0 ? h_seq[o - M + i] : acc_t(0);
        const acc_t v_prev = t > 0 ? lif_reset(q, hp, lif_fire(q, hp)) : v0 ? v0[b + i] : q.v_reset;
        gk += double(lif_grad_k(q, gh, acc_t(to_acc(x[o + i])), v_prev));
      }
    }
  }
  if (g_v0)  // null: no gradient for v0 wanted
    for (int64_t i = 0; i < nb; ++i) g_v0[b + i] = gv[i];
  return gk;
}

template <int SG, int CHARGE, int SOFT, int DETACH, int DI, typename in_t, typename acc_t>
void backward(const in_t* g_spikes, const acc_t* g_v_last, const acc_t* h_seq, const in_t* x,
              const acc_t* v0, in_t* g_x, acc_t* g_v0, double* g_k, int64_t T, int64_t N, int64_t M,
              const LifParams<acc_t> p, int nthreads) {
  std::vector<double> partial(std::max(1, nthreads), 0.0);
  double* partial_sums = partial.data();
  parallel_neurons(N, nthreads, [=](int tid, int64_t lo, int64_t hi) {
    double gk = 0.0;
    for (int64_t b = lo, nb; b < hi; b += nb) {
      nb = block_len(b, hi, M);
      gk += backward_block<SG, CHARGE, SOFT, DETACH, DI>(g_spikes, g_v_last, h_seq, x, v0, g_x,
                                                         g_v0, T, M, b, nb, p);
    }
    partial_sums[tid] = gk;
  });
  if (g_k) {
    double total = 0.0;
    for (double v : partial) total += v;
    *g_k = total;
  }
}

#define SA_ARGS g_spikes, g_v_last, h_seq, x, v0, g_x, g_v0, g_k, T, N, M, p, nthreads

// Surrogate kind -> template argument.
template <int CHARGE, int SOFT, int DETACH, int DI, typename in_t, typename acc_t>
void backward_sg(const in_t* g_spikes, const acc_t* g_v_last, const acc_t* h_seq, const in_t* x,
                 const acc_t* v0, in_t* g_x, acc_t* g_v0, double* g_k, int64_t T, int64_t N, int64_t M,
                 const LifParams<acc_t>& p, int nthreads) {
#define SA_CASE(K) case K: return backward<K, CHARGE, SOFT, DETACH, DI>(SA_ARGS);
  switch (p.surrogate) {
    SA_CASE(SG_ATAN) SA_CASE(SG_SIGMOID) SA_CASE(SG_FAST_SIGMOID) SA_CASE(SG_TRIANGLE)
    default: SA_CASE(SG_RECTANGLE)
  }
#undef SA_CASE
}

// fp32 LIF with decay_input (every neuron of the models here) gets loops specialised on every
// choice; other dtypes, IF, PLIF and decay_input=False share generic loops (each instantiation
// costs build time).
template <typename in_t, typename acc_t>
void backward_any(const in_t* g_spikes, const acc_t* g_v_last, const acc_t* h_seq, const in_t* x,
                  const acc_t* v0, in_t* g_x, acc_t* g_v0, double* g_k, int64_t T, int64_t N, int64_t M,
                  const LifParams<acc_t>& p, int nthreads) {
  if (p.charge_mode == CHARGE_PLIF) return backward_sg<CHARGE_PLIF, -1, -1, -1>(SA_ARGS);
  if constexpr (std::is_same_v<in_t, float>) {
    if (p.decay_input && p.charge_mode == CHARGE_LIF) {
      const int key = is_power_of_two(p.decay) * 4 + p.soft_reset * 2 + p.detach_reset;
      switch (key) {
        case 0: return backward_sg<CHARGE_LIF, 0, 0, 1>(SA_ARGS);
        case 1: return backward_sg<CHARGE_LIF, 0, 1, 1>(SA_ARGS);
        case 2: return backward_sg<CHARGE_LIF, 1, 0, 1>(SA_ARGS);
        case 3: return backward_sg<CHARGE_LIF, 1, 1, 1>(SA_ARGS);
        case 4: return backward_sg<LIF_POW2, 0, 0, 1>(SA_ARGS);
        case 5: return backward_sg<LIF_POW2, 0, 1, 1>(SA_ARGS);
        case 6: return backward_sg<LIF_POW2, 1, 0, 1>(SA_ARGS);
        default: return backward_sg<LIF_POW2, 1, 1, 1>(SA_ARGS);
      }
    }
  }
  return backward_sg<-1, -1, -1, -1>(SA_ARGS);
}
#undef SA_ARGS

template <typename acc_t>
LifParams<acc_t> make_params(double decay, int charge_mode, int decay_input, double v_th,
                             double v_reset, int soft_reset, int detach_reset, int surrogate,
                             double alpha) {
  return LifParams<acc_t>{charge_mode, decay_input != 0, acc_t(decay), acc_t(v_th),
                          acc_t(v_reset), soft_reset != 0, detach_reset != 0, surrogate,
                          acc_t(alpha)};
}

}  // namespace

// The decay, then the op's scalars in the order of spikeattn.ops.lif.op.LIFScalars (cpu.py builds
// the ctypes signature from that table).
#define SA_PARAMS_DECL                                                                     \
  double decay, int charge_mode, int decay_input, double v_th, double v_reset,             \
      int soft_reset, int detach_reset, int surrogate, double alpha
#define SA_PARAMS_ARGS \
  decay, charge_mode, decay_input, v_th, v_reset, soft_reset, detach_reset, surrogate, alpha

// One C entry point per (input dtype, state dtype): called through ctypes. A null h_seq: inference.
#define SA_DEFINE(TAG, IN_T, ACC_T)                                                        \
  extern "C" void sa_lif_forward_##TAG(const void* x, const ACC_T* v0, void* spikes,       \
                                        ACC_T* h_seq, ACC_T* v_last, int64_t T, int64_t N, int64_t M, \
                                        SA_PARAMS_DECL, int nthreads) {                    \
    const auto run = h_seq ? forward<true, false, IN_T, ACC_T> : forward<false, false, IN_T, ACC_T>; \
    run(static_cast<const IN_T*>(x), v0, static_cast<IN_T*>(spikes), h_seq, v_last, T, N, M, \
        make_params<ACC_T>(SA_PARAMS_ARGS), nthreads, Affine{}, nullptr);                  \
  }                                                                                        \
  extern "C" void sa_lif_backward_##TAG(                                                   \
      const void* g_spikes, const ACC_T* g_v_last, const ACC_T* h_seq, const void* x,      \
      const ACC_T* v0, void* g_x, ACC_T* g_v0, double* g_k, int64_t T, int64_t N, int64_t M,          \
      SA_PARAMS_DECL, int nthreads) {                                                      \
    backward_any<IN_T, ACC_T>(static_cast<const IN_T*>(g_spikes), g_v_last, h_seq,            \
                          static_cast<const IN_T*>(x), v0, static_cast<IN_T*>(g_x), g_v0, \
                          g_k, T, N, M, make_params<ACC_T>(SA_PARAMS_ARGS), nthreads);    \
  }

SA_DEFINE(f32, float, float)
SA_DEFINE(f64, double, double)
SA_DEFINE(f16, _Float16, float)
SA_DEFINE(bf16, bf16, float)

// LIF then a residual add, `residual + spikes` (fp32, fp64): out takes the sum, h (null: inference) the
// charged membrane. spikeattn/ops/lif/residual.py.
#define SA_DEFINE_RESIDUAL(TAG, F)                                                                  \
  extern "C" void sa_lif_residual_forward_##TAG(const F* x, const F* residual, const F* v0, F* out,  \
                                                 F* h_seq, F* v_last, int64_t T, int64_t N, int64_t M, \
                                                 SA_PARAMS_DECL, int nthreads) {                     \
    const auto run = h_seq ? forward<true, false, F, F, false, true> : forward<false, false, F, F, false, true>; \
    run(x, v0, out, h_seq, v_last, T, N, M, make_params<F>(SA_PARAMS_ARGS), nthreads, Affine{}, residual); \
  }

SA_DEFINE_RESIDUAL(f32, float)
SA_DEFINE_RESIDUAL(f64, double)

namespace {

// A BatchNorm's per-channel alpha and beta from its mean and invstd (ATen's
// batch_norm_cpu_collect_linear_and_constant_terms: alpha = invstd * w, beta = b - mean * alpha, the
// last contracted to one fma by its compiler); alpha names the surrogate's parameter here, so: scale, shift.
struct BatchNormAffine {
  std::vector<float> scale, shift;
  int64_t C, inner;
  BatchNormAffine(const float* mean, const float* invstd, const float* weight, const float* bias, int64_t C,
                  int64_t inner)
      : scale(C), shift(C), C(C), inner(inner) {
    for (int64_t c = 0; c < C; ++c) {
      scale[c] = invstd[c] * (weight ? weight[c] : 1.0f);
      shift[c] = std::fma(-mean[c], scale[c], bias ? bias[c] : 0.0f);
    }
  }
  Affine affine() const { return Affine{scale.data(), shift.data(), C, inner}; }
};

}  // namespace

// Eval-mode BatchNorm then LIF, time-major fp32, inference (no h): x [T, N], channel c of neuron n
// is (n / inner) % C. Scale and shift are ATen's (batch_norm_kernel.cpp,
// batch_norm_cpu_collect_linear_and_constant_terms): invstd = 1 / sqrt(var + float(eps)),
// alpha = invstd * w, beta = b - mean * alpha, and the output x * alpha + beta, the last two
// contracted to one fma each by its compiler. spikeattn/ops/lif/bn.py checks the match at run time.
// x == spikes: in place (the input is overwritten by its spikes).
extern "C" void sa_lif_bn_inference_f32(const float* x, const float* v0, float* spikes, float* v_last,
                                        int64_t T, int64_t N, const float* mean, const float* var,
                                        const float* weight, const float* bias, double eps, int64_t C,
                                        int64_t inner, SA_PARAMS_DECL, int nthreads) {
  std::vector<float> invstd(C);
  for (int64_t c = 0; c < C; ++c) invstd[c] = 1 / std::sqrt(var[c] + static_cast<float>(eps));
  const BatchNormAffine bn(mean, invstd.data(), weight, bias, C, inner);
  const auto run = x == spikes ? forward<false, true, float, float, true> : forward<false, true, float, float>;
  run(x, v0, spikes, nullptr, v_last, T, N, N, make_params<float>(SA_PARAMS_ARGS), nthreads, bn.affine(), nullptr);
}

// Training-mode BatchNorm then LIF from rest, time-major fp32, storing h for the backward: the batch's
// mean and invstd come from ATen (spikeattn/ops/lif/bn_train.py), the rest as sa_lif_bn_inference_f32.
extern "C" void sa_lif_bn_train_f32(const float* x, float* spikes, float* h_seq, int64_t T, int64_t N,
                                    const float* mean, const float* invstd, const float* weight,
                                    const float* bias, int64_t C, int64_t inner, SA_PARAMS_DECL, int nthreads) {
  const BatchNormAffine bn(mean, invstd, weight, bias, C, inner);
  const auto p = make_params<float>(SA_PARAMS_ARGS);
  // LIF or IF (bn_train.py checks): the mode fixed at compile time, as the loop vectorises only so
  const auto run = p.charge_mode == CHARGE_IF ? forward<true, true, float, float, false, false, CHARGE_IF>
                   : is_power_of_two(decay) ? forward<true, true, float, float, false, false, LIF_POW2>
                                            : forward<true, true, float, float, false, false, CHARGE_LIF>;
  run(x, nullptr, spikes, h_seq, nullptr, T, N, N, p, nthreads, bn.affine(), nullptr);
}
