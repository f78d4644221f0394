// The FMA peak of this machine's cores, for reading GEMM figures against: 12 independent chains of fused
// multiply-adds on 8-wide (AVX2) and 16-wide (AVX-512) float vectors, on every OpenMP thread. Built and run
// by run.sh (which compiles it for x86-64-v3 and x86-64-v4).
#include <initializer_list>
#include <chrono>
#include <cstdio>
#include <omp.h>
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
template <class V> __attribute__((noinline)) float run(long iters) {
    V a[12]; V m = V{} + 1.0000001f, c = V{} + 1e-7f;
    for (int i = 0; i < 12; ++i) a[i] = V{} + (float)i;
    for (long t = 0; t < iters; ++t)
        for (int i = 0; i < 12; ++i) a[i] = a[i] * m + c;
    float s = 0; for (int i = 0; i < 12; ++i) s += a[i][0];
    return s;
}
int main(int argc, char** argv) {
    long iters = 200000000 / 2;
    for (int w : {8, 16}) {
        auto t0 = std::chrono::steady_clock::now();
        float sink = 0;
#pragma omp parallel reduction(+ : sink)
        { sink += (w == 8) ? run<v8>(iters) : run<v16>(iters); }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        int n = omp_get_max_threads();
        printf("%d-wide FMA: %.0f GFLOP/s on %d threads (sink %g)\n", w, 2.0 * w * 12 * iters * n / s / 1e9, n, sink);
    }
}
