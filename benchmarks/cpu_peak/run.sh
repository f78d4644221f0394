#!/usr/bin/env bash
# Peak fp32 FMA rate of this machine, AVX2 and AVX-512, on $OMP_NUM_THREADS threads (default: all cores).
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
g++ -O3 -funroll-loops -fopenmp -march=x86-64-v3 -Wno-psabi fma_peak.cpp -o "$out/avx2"
"$out/avx2" | head -1
if grep -q avx512f /proc/cpuinfo; then
    g++ -O3 -funroll-loops -fopenmp -march=x86-64-v4 -Wno-psabi fma_peak.cpp -o "$out/avx512"
    "$out/avx512" | tail -1
fi
rm -rf "$out"
