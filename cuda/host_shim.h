// Host emulation of the CUDA built-ins the kernels use, so that a .cu file compiles with g++:
//   g++ -std=c++17 -ffp-contract=off -fno-strict-aliasing -include host_shim.h -x c++ lif.cu
// and sa_launch() runs a grid as loops over blocks and threads, one thread at a time. That is
// exact for kernels whose threads never talk to each other (no shared memory, no __syncthreads,
// no warp shuffles), which is the rule for the kernels in this folder. Used only by the tests:
// it checks the kernels' logic on machines without a GPU.
#pragma once
#ifdef __CUDACC__
#  error "host_shim.h is for compiling kernels with a host C++ compiler, not nvcc/NVRTC"
#endif

#include <cstring>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

inline float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }

// fp16 <-> fp32 through the compiler's IEEE binary16 (round to nearest even, like cvt.rn.f16.f32).
inline float sa_host_half_to_float(unsigned short bits) {
  _Float16 h; std::memcpy(&h, &bits, 2); return static_cast<float>(h);
}
inline unsigned short sa_host_float_to_half(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  unsigned short bits; std::memcpy(&bits, &h, 2); return bits;
}

// Runs kernel<<<grid, block>>>(args...) on the calling CPU thread.
template <typename... P, typename... A>
void sa_launch(void (*kernel)(P...), dim3 grid, dim3 block, A&&... args) {
  gridDim = grid;
  blockDim = block;
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx)
        for (unsigned int tz = 0; tz < block.z; ++tz)
          for (unsigned int ty = 0; ty < block.y; ++ty)
            for (unsigned int tx = 0; tx < block.x; ++tx) {
              blockIdx = uint3{bx, by, bz};
              threadIdx = uint3{tx, ty, tz};
              kernel(args...);
            }
}

namespace sa_detail {
template <typename... P, std::size_t... I>
void launch_params(void (*kernel)(P...), dim3 grid, dim3 block, void** params, std::index_sequence<I...>) {
  sa_launch(kernel, grid, block, *static_cast<P*>(params[I])...);
}
}  // namespace sa_detail

// The cuLaunchKernel convention (what CuPy does): params[i] points at the value of argument i.
template <typename... P>
void sa_launch_params(void (*kernel)(P...), dim3 grid, dim3 block, void** params) {
  sa_detail::launch_params(kernel, grid, block, params, std::index_sequence_for<P...>{});
}
