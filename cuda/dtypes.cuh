// Storage types of the kernels' inputs and outputs, their conversions to the fp32/fp64 state, and
// aligned vectors of them for wide loads. Header-free on purpose: cuda_fp16.h / cuda_bf16.h are not
// always on NVRTC's include path (CuPy bundles only some versions of them), so the 16-bit types are
// plain bit containers here and the conversions are written out (bf16) or one PTX instruction (fp16).
// cuda/host_shim.h supplies the host side of the few device built-ins used below.
#pragma once

#ifndef SA_DEV
#  define SA_DEV __device__ __forceinline__
#endif

struct sa_half { unsigned short bits; };  // IEEE binary16, as torch.float16
struct sa_bf16 { unsigned short bits; };  // bfloat16, as torch.bfloat16

SA_DEV float to_acc(float x) { return x; }
SA_DEV double to_acc(double x) { return x; }
SA_DEV float to_acc(sa_bf16 x) { return __uint_as_float(static_cast<unsigned int>(x.bits) << 16); }
SA_DEV float to_acc(sa_half x) {
#ifdef __CUDACC__  // nvcc (both passes) and NVRTC; the host emulation takes the #else
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
  return f;
#else
  return sa_host_half_to_float(x.bits);
#endif
}

// Spikes and input gradients are written in the input dtype, rounded to nearest even (as torch).
template <typename T, typename A> SA_DEV T from_acc(A x);
template <> SA_DEV float from_acc<float, float>(float x) { return x; }
template <> SA_DEV double from_acc<double, double>(double x) { return x; }
template <> SA_DEV sa_bf16 from_acc<sa_bf16, float>(float x) {
  unsigned int u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return sa_bf16{static_cast<unsigned short>((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return sa_bf16{static_cast<unsigned short>(u >> 16)};
}
template <> SA_DEV sa_half from_acc<sa_half, float>(float x) {
#ifdef __CUDACC__  // nvcc (both passes) and NVRTC; the host emulation takes the #else
  unsigned short b;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(x));
  return sa_half{b};
#else
  return sa_half{sa_host_float_to_half(x)};
#endif
}

// V consecutive elements, aligned so that one access is one wide (up to 16-byte) memory transaction.
template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <int V, typename T>
SA_DEV Vec<T, V> load_vec(const T* p) { return *reinterpret_cast<const Vec<T, V>*>(p); }

template <int V, typename T>
SA_DEV void store_vec(T* p, const Vec<T, V>& x) { *reinterpret_cast<Vec<T, V>*>(p) = x; }
