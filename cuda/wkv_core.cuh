// One token of the WKV recurrence (RWKV-4 / SpikeGPT), forward and backward, for one (batch, channel).
// Shared by the CUDA kernels (wkv.cu) and the CPU driver (wkv_host.cpp) so both run the same arithmetic;
// spikeattn/ops/wkv/reference.py `wkv_step` is the same step in torch.
//
//   WKV_t = (sum_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t) / (sum_{i<t} e^{-(t-1-i)w + k_i} + e^{u+k_t})
//
// w > 0 is the decay rate (one step multiplies the past by e^{-w}), u the bonus of the current token.
// The running sums are kept divided by e^p, p the largest exponent seen so far (a, b, p), so no exp
// ever sees a positive argument: exact for any |k| and any T. Of the two exps in each max-rescaling
// one is e^0 = 1, so each rescaling costs one exp (wkv_rescale).
#pragma once

#ifndef SA_WKV
#  ifdef __CUDACC__
#    define SA_WKV __device__ __forceinline__
#  else
#    include <cmath>
#    define SA_WKV inline
#  endif
#endif

#ifdef __CUDACC__
#  define SA_WKV_EXP(x) exp(x)
#  define SA_WKV_LOG(x) log(x)
#else
#  define SA_WKV_EXP(x) std::exp(x)
#  define SA_WKV_LOG(x) std::log(x)
#endif

// The initial max exponent: "minus infinity" that stays finite, so p - w and p - q never make NaN.
template <typename F> SA_WKV F wkv_min_value() { return F(-1e38); }

// (e^{x - m}, e^{y - m}, m) with m = max(x, y): one exp, the other factor is exactly 1.
template <typename F>
SA_WKV F wkv_rescale(F x, F y, F& ex, F& ey) {
  const bool x_big = x >= y;
  const F e = SA_WKV_EXP(x_big ? y - x : x - y);
  ex = x_big ? F(1) : e;
  ey = x_big ? e : F(1);
  return x_big ? x : y;
}

// Forward: returns WKV_t; writes lse_t = log of the true denominator (saved for the backward)
// and advances the state (a, b, p) past token t.
template <typename F>
SA_WKV F wkv_forward_step(F w, F u, F k, F v, F& a, F& b, F& p, F& lse) {
  F e1, e2;
  F q = wkv_rescale(p, u + k, e1, e2);
  const F den = e1 * b + e2;
  const F y = (e1 * a + e2 * v) / den;
  lse = q + SA_WKV_LOG(den);
  q = wkv_rescale(p - w, k, e1, e2);
  a = e1 * a + e2 * v;
  b = e1 * b + e2;
  p = q;
  return y;
}

// Backward, first sweep (t = 0 .. T-1): accumulates dL/dw and dL/du. (a, b, p) is the forward state,
// (da, db) its derivative with respect to -w, kept at the same scale e^p.
template <typename F>
SA_WKV void wkv_grad_wu_step(F w, F u, F k, F v, F y, F gy, F& a, F& b, F& p, F& da, F& db, F& gw, F& gu) {
  F e1, e2;
  wkv_rescale(p, u + k, e1, e2);
  const F iden = F(1) / (e1 * b + e2);
  gw -= gy * (da - db * y) * iden * e1;  // minus: the recursion differentiates by -w
  gu += gy * (v - y) * e2 * iden;
  const F q = wkv_rescale(p - w, k, e1, e2);
  da = e1 * (a + da);
  db = e1 * (b + db);
  a = e1 * a + e2 * v;
  b = e1 * b + e2;
  p = q;
}

// Backward, second sweep (t = T-1 .. 0): dL/dk_t and dL/dv_t. (gp, gq) carry the gradient reaching
// the state sums from later tokens, divided by e^o (o starts at wkv_min_value).
template <typename F>
SA_WKV void wkv_grad_kv_step(F w, F u, F k, F v, F y, F lse, F gy, F& gp, F& gq, F& o, F& gk, F& gv) {
  const F now = gy * SA_WKV_EXP(u + k - lse);  // gy * e^{u+k_t} / D_t
  const F past = SA_WKV_EXP(k + o);           // <= 1: o <= -k (see the lse bound)
  gk = now * (v - y) + past * (gp * v + gq);
  gv = now + past * gp;
  F e1, e2;
  o = wkv_rescale(o - w, -lse, e1, e2);
  e2 *= gy;
  gp = e1 * gp + e2;
  gq = e1 * gq - e2 * y;
}
