// One way for the host (CPU) kernels to split work over threads: contiguous ranges of [0, units).
// Built with -fopenmp (spikeattn/ops/_native.py), the ranges run on torch's own OpenMP runtime:
// torch loads libgomp.so.1 first and this library binds to that copy, so its workers, still
// spinning after torch's last parallel op, take the ranges at once instead of competing for the
// cores with fresh threads. Without OpenMP (e.g. Apple clang) it falls back to std::thread.
// Callers keep results independent of the split (disjoint writes, per-range partials reduced in
// range order), so the team size actually granted changes no value.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

// body(range, lo, hi) for each non-empty range; range < min(threads, units). One call, on the
// caller's thread, when threads <= 1 or units <= 1.
template <typename F>
void parallel_ranges(int64_t units, int64_t threads, F body) {
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, units));
  if (nt == 1) {
    if (units > 0) body(int64_t(0), int64_t(0), units);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(int(nt))
  {
    const int64_t team = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t per = (units + team - 1) / team;
    const int64_t lo = std::min(units, t * per), hi = std::min(units, lo + per);
    if (lo < hi) body(t, lo, hi);
  }
#else
  std::vector<std::thread> pool;
  const int64_t per = (units + nt - 1) / nt;
  for (int64_t t = 0; t < nt; ++t) {
    const int64_t lo = t * per, hi = std::min(units, lo + per);
    if (lo < hi) pool.emplace_back(body, t, lo, hi);
  }
  for (auto& th : pool) th.join();
#endif
}
