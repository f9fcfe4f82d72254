// WKV (RWKV-4 / SpikeGPT time mixing) on the GPU: one thread per (batch, channel), a loop over any
// number of tokens T (no T_MAX: nothing per token lives in registers or local arrays).
//
// Layout: k, v, y, lse, gy, gk, gv are contiguous [B, T, C], so token t of (b, c) is (b * T + t) * C + c
// and a warp reads consecutive channels. w, u: [C]. The per-token maths is wkv_core.cuh, shared with
// the CPU driver (wkv_host.cpp). The forward also writes lse = log of each denominator, which is all the
// backward needs besides y to run its reverse sweep without storing the state per token.
//
// gw, gu are written per (b, c) as [B, C] partial sums (no atomics: deterministic); the launcher
// (spikeattn/ops/wkv/cupy.py) sums them over B. No shared memory and no __syncthreads, so
// cuda/host_shim.h can run the grid as plain loops on the CPU.
#include "wkv_core.cuh"

template <typename F>
__global__ void __launch_bounds__(256)
wkv_forward_kernel(const F* __restrict__ w, const F* __restrict__ u, const F* __restrict__ k,
                   const F* __restrict__ v, F* __restrict__ y, F* __restrict__ lse, long long B, long long T,
                   long long C) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B * C) return;
  const long long b_i = i / C, c = i % C;
  const F b_w = w[c], b_u = u[c];
  F a = F(0), b = F(0), p = wkv_min_value<F>();
  for (long long t = 0; t < T; ++t) {
    const long long o = (b_i * T + t) * C + c;
    F l;
    y[o] = wkv_forward_step(b_w, b_u, k[o], v[o], a, b, p, l);
    lse[o] = l;
  }
}

template <typename F>
__global__ void __launch_bounds__(256)
wkv_backward_kernel(const F* __restrict__ w, const F* __restrict__ u, const F* __restrict__ k,
                    const F* __restrict__ v, const F* __restrict__ y, const F* __restrict__ lse,
                    const F* __restrict__ gy, F* __restrict__ gw, F* __restrict__ gu, F* __restrict__ gk,
                    F* __restrict__ gv, long long B, long long T, long long C) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B * C) return;
  const long long b_i = i / C, c = i % C;
  const F b_w = w[c], b_u = u[c];
  F a = F(0), b = F(0), p = wkv_min_value<F>(), da = F(0), db = F(0), b_gw = F(0), b_gu = F(0);
  for (long long t = 0; t < T; ++t) {
    const long long o = (b_i * T + t) * C + c;
    wkv_grad_wu_step(b_w, b_u, k[o], v[o], y[o], gy[o], a, b, p, da, db, b_gw, b_gu);
  }
  gw[i] = b_gw;
  gu[i] = b_gu;
  F gp = F(0), gq = F(0), m = wkv_min_value<F>();
  for (long long t = T - 1; t >= 0; --t) {
    const long long o = (b_i * T + t) * C + c;
    F b_gk, b_gv;
    wkv_grad_kv_step(b_w, b_u, k[o], v[o], y[o], lse[o], gy[o], gp, gq, m, b_gk, b_gv);
    gk[o] = b_gk;
    gv[o] = b_gv;
  }
}
