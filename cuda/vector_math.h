// Vector exp and log for the host kernels: glibc's libmvec (x86-64, glibc >= 2.22).
//
// Declaring the C functions as SIMD functions (what glibc's own <math.h> does only under -ffast-math)
// lets g++ vectorise a loop that calls std::exp / std::log (#pragma omp simd) into calls of libmvec's
// _ZGV*_expf etc., 8 or 16 lanes per call, instead of one scalar call per element. libmvec's results
// may differ from the scalar libm's in the last bits (glibc documents at most 4 ulp; see
// docs/models.md for what the WKV kernel measured), so only kernels whose tests allow that include this.
// spikeattn/ops/_native.py defines SA_LIBMVEC when it links -lmvec; without it (no libmvec, another
// compiler) this header declares nothing and the loops call the scalar functions.
#pragma once

#include <cmath>

#if defined(SA_LIBMVEC) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#  define SA_VECTOR_MATH 1
extern "C" {
__attribute__((simd("notinbranch"))) float expf(float) noexcept;
__attribute__((simd("notinbranch"))) float logf(float) noexcept;
__attribute__((simd("notinbranch"))) double exp(double) noexcept;
__attribute__((simd("notinbranch"))) double log(double) noexcept;
}
#else
#  define SA_VECTOR_MATH 0
#endif
