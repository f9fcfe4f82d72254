// One time step of the multi-step LIF / IF / PLIF neuron, forward and backward, for one neuron.
// Shared by the CUDA kernels (lif.cu) and the fused CPU driver (lif_host.cpp), so both run the
// same arithmetic. The forward mirrors spikeattn/ops/lif/reference.py operation for operation
// (same order, no contraction into FMA) so that fp32 spikes are bit-identical to the reference.
#pragma once
#include "surrogate.cuh"

// How the membrane charges (see spikeattn/functional/neuron.py `charge`).
enum ChargeMode {
  CHARGE_IF = 0,    // h = v + x
  CHARGE_LIF = 1,   // leak by dividing by tau
  CHARGE_PLIF = 2,  // leak by multiplying with k = sigmoid(w) = 1 / tau
};

template <typename acc_t>
struct LifParams {
  int charge_mode;
  bool decay_input;
  acc_t decay;        // tau for CHARGE_LIF, k for CHARGE_PLIF, unused for CHARGE_IF
  acc_t v_th;
  acc_t v_reset;      // the leak target; 0 for a soft reset
  bool soft_reset;    // v -= v_th on a spike instead of v = v_reset
  bool detach_reset;  // the reset carries no gradient
  int surrogate;      // SurrogateId
  acc_t alpha;        // the surrogate's parameter
};

template <typename acc_t>
SA_HD acc_t lif_charge(const LifParams<acc_t>& p, acc_t v, acc_t x) {
  const acc_t vr = p.v_reset;
  if (p.charge_mode == CHARGE_IF) return v + x;
  if (p.charge_mode == CHARGE_LIF)
    return p.decay_input ? v + (x - (v - vr)) / p.decay : v - (v - vr) / p.decay + x;
  return p.decay_input ? v + (x - (v - vr)) * p.decay : v - (v - vr) * p.decay + x;
}

// Heaviside with `>=`: a neuron exactly at threshold fires (as in spikingjelly).
template <typename acc_t>
SA_HD bool lif_fire(const LifParams<acc_t>& p, acc_t h) {
  return h - p.v_th >= acc_t(0);
}

// Arithmetic, not a select, exactly as the reference's `spike * v_reset + (1 - spike) * h`: the same
// value for every finite h, and an infinite membrane that fires resets to NaN (0 * inf) on every
// backend alike (the defined behaviour for non-finite input: docs/neurons.md).
template <typename acc_t>
SA_HD acc_t lif_reset(const LifParams<acc_t>& p, acc_t h, bool spike) {
  const acc_t s = spike ? acc_t(1) : acc_t(0);
  if (p.soft_reset) return h - s * p.v_th;
  return s * p.v_reset + (acc_t(1) - s) * h;
}

// d h / d x and d h / d v_prev. Written as selects, not early returns: on the CPU the compiler
// then turns the loop-invariant choices into blends and vectorises the loop over neurons.
template <typename acc_t>
SA_HD acc_t lif_dh_dx(const LifParams<acc_t>& p, acc_t g) {
  const acc_t leaked = p.charge_mode == CHARGE_LIF ? g / p.decay : g * p.decay;
  return p.charge_mode == CHARGE_IF || !p.decay_input ? g : leaked;
}

template <typename acc_t>
SA_HD acc_t lif_dh_dv(const LifParams<acc_t>& p, acc_t g) {
  const acc_t leaked = p.charge_mode == CHARGE_LIF ? g - g / p.decay : g * (acc_t(1) - p.decay);
  return p.charge_mode == CHARGE_IF ? g : leaked;
}

// Backward through fire and reset at one step: returns dL/dh given dL/dspike and dL/dv_next,
// with sg the surrogate derivative at h - v_th.
template <typename acc_t>
SA_HD acc_t lif_grad_h_sg(const LifParams<acc_t>& p, acc_t h, acc_t sg, acc_t g_spike, acc_t g_v) {
  const acc_t keep = lif_fire(p, h) ? acc_t(0) : acc_t(1);
  const acc_t hard = p.detach_reset ? keep : keep + (p.v_reset - h) * sg;
  const acc_t soft = p.detach_reset ? acc_t(1) : acc_t(1) - p.v_th * sg;
  return g_spike * sg + g_v * (p.soft_reset ? soft : hard);
}

template <typename acc_t>
SA_HD acc_t lif_grad_h(const LifParams<acc_t>& p, acc_t h, acc_t g_spike, acc_t g_v) {
  const acc_t sg = surrogate_grad<acc_t>(p.surrogate, p.alpha, h - p.v_th);
  return lif_grad_h_sg(p, h, sg, g_spike, g_v);
}

// PLIF only: d h / d k at one step, times dL/dh. v_prev is the membrane after the previous reset.
template <typename acc_t>
SA_HD acc_t lif_grad_k(const LifParams<acc_t>& p, acc_t g_h, acc_t x, acc_t v_prev) {
  const acc_t leak = v_prev - p.v_reset;
  return p.decay_input ? g_h * (x - leak) : -g_h * leak;
}
