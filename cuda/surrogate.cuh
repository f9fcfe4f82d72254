// Surrogate-gradient maths shared by every kernel (CUDA and the host build).
// Forward is always Heaviside(x >= 0); these are the closed-form derivatives used by the backward.
// The ids must match spikeattn/surrogate.py (SURROGATE_IDS).
#pragma once

#ifndef SA_HD
#  ifdef __CUDACC__
#    define SA_HD __host__ __device__ __forceinline__
#  else
#    define SA_HD inline
#  endif
#endif

// A host build may define SA_EXP first (lif_host.cpp: an exp whose loops vectorise).
#ifndef SA_EXP
#  ifdef __CUDACC__
#    define SA_EXP(x) exp(x)
#  else
#    include <cmath>
#    define SA_EXP(x) std::exp(x)
#  endif
#endif

enum SurrogateId { SG_ATAN = 0, SG_SIGMOID = 1, SG_FAST_SIGMOID = 2, SG_TRIANGLE = 3, SG_RECTANGLE = 4 };

// d/dx of the smooth surrogate at x = h - v_th; `a` is the kind's one parameter
// (alpha, alpha, slope, gamma, width). Every branch is finite for finite x: no exp of a
// large positive number is divided by another (the NaN snntorch's sigmoid has).
// The kind is a template argument so a CPU loop over neurons has no branch and vectorises.
template <int KIND, typename acc_t>
SA_HD acc_t surrogate_grad_t(acc_t a, acc_t x) {
  const acc_t ax = x < acc_t(0) ? -x : x;
  if constexpr (KIND == SG_ATAN) {
    const acc_t z = acc_t(1.5707963267948966) * a * x;
    return a / acc_t(2) / (acc_t(1) + z * z);
  } else if constexpr (KIND == SG_SIGMOID) {
    const acc_t s = acc_t(1) / (acc_t(1) + SA_EXP(-a * x));
    return a * s * (acc_t(1) - s);
  } else if constexpr (KIND == SG_FAST_SIGMOID) {
    const acc_t d = a * ax + acc_t(1);
    return acc_t(1) / (d * d);
  } else if constexpr (KIND == SG_TRIANGLE) {
    const acc_t r = (acc_t(1) / a) * (acc_t(1) / a) * (a - ax);
    return r > acc_t(0) ? r : acc_t(0);
  } else {
    return ax < a / acc_t(2) ? acc_t(1) / a : acc_t(0);
  }
}

// The same with the kind chosen at run time (uniform across a GPU warp, so cheap there).
template <typename acc_t>
SA_HD acc_t surrogate_grad(int kind, acc_t a, acc_t x) {
  switch (kind) {
    case SG_ATAN: return surrogate_grad_t<SG_ATAN>(a, x);
    case SG_SIGMOID: return surrogate_grad_t<SG_SIGMOID>(a, x);
    case SG_FAST_SIGMOID: return surrogate_grad_t<SG_FAST_SIGMOID>(a, x);
    case SG_TRIANGLE: return surrogate_grad_t<SG_TRIANGLE>(a, x);
    default: return surrogate_grad_t<SG_RECTANGLE>(a, x);
  }
}
