// Multi-step LIF / IF / PLIF on the GPU: one forward pass over T and one reverse pass for the
// backward, each thread owning VEC neurons whose state stays in registers for the whole sequence.
//
// Layout: time-major [T, N] (N = neurons), so step t of neuron n is t * N + n and a warp reads
// consecutive neurons; or batch-first, N / M sequences of [T, M] one after another (see sa_step0). The per-step maths is lif_core.cuh, shared with the CPU driver
// (lif_host.cpp); compile with --fmad=false and without fast-math so that fp32 spikes equal the
// torch reference bit for bit. Saved for backward: h (the charged membrane) in the state dtype;
// spikes are recomputed as h >= v_th.
//
// Kernels are templates over (input dtype, state dtype, VEC): spikeattn/ops/lif/cupy.py lists the
// instantiations it loads (NAME_EXPRESSIONS) and launches VEC = 4 only when M % 4 == 0 and every
// pointer is 4-element aligned (each row then starts aligned), VEC = 1 otherwise. No shared memory
// and no __syncthreads, so cuda/host_shim.h can run the grid as plain loops on the CPU.
#include "dtypes.cuh"
#include "lif_core.cuh"

template <typename acc_t>
SA_DEV LifParams<acc_t> make_lif_params(const acc_t* p_decay, acc_t decay, int mode, int decay_input,
                                        acc_t v_th, acc_t v_reset, int soft_reset, int detach_reset,
                                        int surrogate, acc_t alpha) {
  // PLIF's k is a (learnable) device tensor: read it here rather than syncing the host for it.
  return LifParams<acc_t>{mode,    decay_input != 0, p_decay ? *p_decay : decay, v_th, v_reset,
                          soft_reset != 0, detach_reset != 0, surrogate, alpha};
}

// Layout: N / M sequences one after another, each [T, M] (time-major [T, N] is M = N). Neuron
// n = g * M + i steps through (g * T + t) * M + i; VEC neurons of a thread stay in one sequence
// because the launcher takes VEC = 4 only when M % 4 == 0.
SA_DEV long long sa_step0(long long n, long long T, long long M) { return (n / M) * T * M + n % M; }

// Scalar kernel arguments: decay, sizes, then spikeattn::lif_forward's scalars in the order of the
// LIFScalars table (spikeattn/ops/lif/op.py), from which cupy.py types them.
#define SA_LIF_SCALARS                                                                        \
  const acc_t *__restrict__ p_decay, acc_t decay, long long T, long long N, long long M, int mode,        \
      int decay_input, acc_t v_th, acc_t v_reset, int soft_reset, int detach_reset, int surrogate, \
      acc_t alpha
#define SA_LIF_PARAMS \
  make_lif_params<acc_t>(p_decay, decay, mode, decay_input, v_th, v_reset, soft_reset, detach_reset, surrogate, alpha)

// x, spikes, h_seq: [T, N] (or N / M sequences of [T, M]); v0, v_last: [N].
template <typename in_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(256)
lif_forward_kernel(const in_t* __restrict__ x, const acc_t* __restrict__ v0, in_t* __restrict__ spikes,
                   acc_t* __restrict__ h_seq, acc_t* __restrict__ v_last, SA_LIF_SCALARS) {
  const long long n0 = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
  if (n0 >= N) return;
  const LifParams<acc_t> p = SA_LIF_PARAMS;
  const long long base = sa_step0(n0, T, M);
  Vec<acc_t, VEC> v = load_vec<VEC>(v0 + n0);
  for (long long t = 0; t < T; ++t) {
    const long long o = base + t * M;
    const Vec<in_t, VEC> b_x = load_vec<VEC>(x + o);
    Vec<in_t, VEC> b_s;
    Vec<acc_t, VEC> b_h;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const acc_t h = lif_charge(p, v.v[j], to_acc(b_x.v[j]));
      const bool s = lif_fire(p, h);
      b_h.v[j] = h;
      b_s.v[j] = from_acc<in_t, acc_t>(s ? acc_t(1) : acc_t(0));
      v.v[j] = lif_reset(p, h, s);
    }
    store_vec<VEC>(h_seq + o, b_h);
    store_vec<VEC>(spikes + o, b_s);
  }
  store_vec<VEC>(v_last + n0, v);
}

// Reverse pass. grad_spikes, h_seq, x, grad_x: laid out as x; grad_v_last, v0, grad_v0: [N].
// grad_v_last may be null (no gradient reached the final membrane). x and v0 are read, and
// grad_k_partial [ceil(N / VEC)] written (one fp64 partial sum per thread, summed by the
// caller), only for PLIF: no block reduction, so no shared memory and no atomics. The PLIF term
// is a separate loop on purpose: inside the first one, nvcc clones the unrolled body for every
// branch combination (40k lines of PTX for the bf16 VEC = 4 kernel instead of 1k).
template <typename in_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(256)
lif_backward_kernel(const in_t* __restrict__ grad_spikes, const acc_t* __restrict__ grad_v_last,
                    const acc_t* __restrict__ h_seq, const in_t* __restrict__ x,
                    const acc_t* __restrict__ v0, in_t* __restrict__ grad_x, acc_t* __restrict__ grad_v0,
                    double* __restrict__ grad_k_partial, SA_LIF_SCALARS) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long n0 = i * VEC;
  if (n0 >= N) return;
  const LifParams<acc_t> p = SA_LIF_PARAMS;
  const bool plif = p.charge_mode == CHARGE_PLIF;
  Vec<acc_t, VEC> gv;
  if (grad_v_last) {
    gv = load_vec<VEC>(grad_v_last + n0);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) gv.v[j] = acc_t(0);
  }
  double gk = 0.0;
  // h[t - 1] is loaded one step ahead: PLIF needs it for v[t - 1], and it is next step's h.
  const long long base = sa_step0(n0, T, M);
  Vec<acc_t, VEC> b_h = load_vec<VEC>(h_seq + base + (T - 1) * M);
  for (long long t = T - 1; t >= 0; --t) {
    const long long o = base + t * M;
    const Vec<acc_t, VEC> b_hp = t > 0 ? load_vec<VEC>(h_seq + o - M) : b_h;
    const Vec<in_t, VEC> b_gs = load_vec<VEC>(grad_spikes + o);
    Vec<in_t, VEC> b_gx;
    Vec<acc_t, VEC> b_gh;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      b_gh.v[j] = lif_grad_h(p, b_h.v[j], to_acc(b_gs.v[j]), gv.v[j]);
      b_gx.v[j] = from_acc<in_t, acc_t>(lif_dh_dx(p, b_gh.v[j]));
      gv.v[j] = lif_dh_dv(p, b_gh.v[j]);
    }
    if (plif) {  // d h[t] / d k needs x[t] and the membrane v[t - 1] (v0 at t = 0)
      const Vec<in_t, VEC> b_x = load_vec<VEC>(x + o);
      Vec<acc_t, VEC> b_vp = t > 0 ? b_hp : load_vec<VEC>(v0 + n0);
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        if (t > 0) b_vp.v[j] = lif_reset(p, b_vp.v[j], lif_fire(p, b_vp.v[j]));
        gk += static_cast<double>(lif_grad_k(p, b_gh.v[j], to_acc(b_x.v[j]), b_vp.v[j]));
      }
    }
    store_vec<VEC>(grad_x + o, b_gx);
    b_h = b_hp;
  }
  store_vec<VEC>(grad_v0 + n0, gv);
  if (plif) grad_k_partial[i] = gk;
}

#undef SA_LIF_SCALARS
#undef SA_LIF_PARAMS
