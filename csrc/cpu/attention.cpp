// fastbert._cpu_kernels: padding-free attention for fp32 inference on the CPU.
//
// attention_varlen(q, k, v, out, cu_seqlens, seqused_k, scale, threads, isa)
//   q, k, v: (total, heads, head_dim) float32 views of the packed rows (any row/head strides, unit stride
//            along head_dim), out: (total, heads, head_dim) float32, written.
//   Sequence b owns rows cu_seqlens[b]..cu_seqlens[b+1]; every row is a query, and the keys/values are the
//   first seqused_k[b] rows of the sequence (all of them when seqused_k is empty).
//   For each (sequence, head) and each query row i:
//       s_j = scale * <q_i, k_j>,   p_j = exp(s_j - max_j s_j) / sum_j exp(s_j - max_j s_j),   o_i = sum_j p_j v_j
//   isa names the build that runs it: "avx512", "avx2" or "baseline" (builds() lists them and whether this
//   CPU can run each); the caller chooses, so every build can be tested and timed on one machine.
//
// Why it exists: BERT sequences are short (tens of tokens) and heads are narrow (32-64), so torch's CPU
// attention spends much of its time on per-(sequence, head) overhead; here one task handles a (sequence,
// head) pair start to end with K laid out transposed, so that the score loop runs along keys and the output
// loop along head_dim, both vectorised. The inner loops (attention_kernel.inc) are plain C++ with GCC vector
// types exactly one register wide, compiled once per instruction set with its own register blocking.
// exp is a vectorisable polynomial (relative error below 2e-7 on the range used). Whether this kernel or
// torch's SDPA is faster on a machine is measured there, not assumed (fastbert/cpu_dispatch.py).
//
// Work is spread over threads with OpenMP, with the GIL released. Linked against libgomp.so.1, the module
// shares the OpenMP runtime of a torch that ships that same library (the CPU builds do), so attention runs on
// torch's own worker threads, which are still spinning from the GEMM before it; with a second runtime the
// two sets of threads would fight over the cores.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace fastbert {
namespace {

// ------------------------------------------------------------------------------------------- the kernel
#define FASTBERT_INLINE static inline __attribute__((always_inline))
#define FASTBERT_NOINLINE static __attribute__((noinline))
// the vector helpers are always inlined into each build, so their by-value vector ABI never crosses a call
#pragma GCC diagnostic ignored "-Wpsabi"

struct Args {
    const float *q, *k, *v;
    float* out;
    int64_t q_row, q_head, k_row, k_head, v_row, v_head;  // element strides
    int64_t heads, dim;
    const int64_t* cu;    // (batch + 1,)
    const int64_t* used;  // (batch,) or nullptr
    float scale;
    int64_t q_block;      // query rows per task
};

constexpr int MAX_QB = 8;           // most queries per pass in any build (rows of score scratch)
constexpr int64_t MAX_W = 16;       // most floats per register in any build (scratch rounding)
constexpr int64_t LONG_KEYS = 128;  // from this many keys on, a build may take more queries per pass

// One build per instruction set, each a namespace with its own `attend` (attention_kernel.inc).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FASTBERT_X86_BUILDS 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define FB_NS avx512
#define FB_W 16
#define FB_QB_SHORT 4
#define FB_QB_LONG 8
#define FB_NC 2
#include "attention_kernel.inc"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define FB_NS avx2
#define FB_W 8
#define FB_QB_SHORT 4
#define FB_QB_LONG 6
#define FB_NC 2
#include "attention_kernel.inc"
#pragma GCC pop_options
#endif

// baseline: whatever the compiler targets by default (SSE2 on x86-64, NEON on aarch64)
#define FB_NS baseline
#define FB_W 4
#define FB_QB_SHORT 4
#define FB_QB_LONG 4
#define FB_NC 2
#include "attention_kernel.inc"

using AttendFn = void (*)(const Args&, int64_t, int64_t, int64_t, int64_t, float*);

struct Build {
    const char* name;
    AttendFn attend;
    bool (*runs_here)();
};

bool always() { return true; }
#ifdef FASTBERT_X86_BUILDS
// x86-64-v4 / v3 as GCC defines them (AVX-512 F/BW/CD/DQ/VL; AVX2 + FMA + BMI + F16C + MOVBE), OS support of
// the wider register state included
bool has_avx512() { return __builtin_cpu_supports("x86-64-v4"); }
bool has_avx2() { return __builtin_cpu_supports("x86-64-v3"); }
const Build BUILDS[] = {{"avx512", avx512::attend, has_avx512}, {"avx2", avx2::attend, has_avx2},
                        {"baseline", baseline::attend, always}};
#else
const Build BUILDS[] = {{"baseline", baseline::attend, always}};
#endif

const Build& find_build(const std::string& name) {
    for (const Build& b : BUILDS) {
        if (name == b.name) {
            if (!b.runs_here())
                throw std::invalid_argument("the " + name + " build needs instructions this CPU does not have");
            return b;
        }
    }
    std::string known;
    for (const Build& b : BUILDS) known += std::string(known.empty() ? "" : ", ") + b.name;
    throw std::invalid_argument("no CPU attention build named '" + name + "' (this module has: " + known + ")");
}

// every build compiled into this module with whether this CPU can run it, best first
py::list builds() {
    py::list out;
    for (const Build& b : BUILDS) out.append(py::make_tuple(b.name, b.runs_here()));
    return out;
}

using Index = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

void check_view(const py::array& t, const char* name, int64_t total, int64_t heads, int64_t dim) {
    if (t.ndim() != 3 || t.shape(0) != total || t.shape(1) != heads || t.shape(2) != dim)
        throw std::invalid_argument(std::string(name) + " must have shape (total, heads, head_dim) like q");
    if (!t.dtype().is(py::dtype::of<float>()))
        throw std::invalid_argument(std::string(name) + " must be float32 (native byte order)");
    if (dim > 1 && t.strides(2) != 4)
        throw std::invalid_argument(std::string(name) + " must be contiguous along head_dim");
    if (t.strides(0) % 4 != 0 || t.strides(1) % 4 != 0)
        throw std::invalid_argument(std::string(name) + " strides must be whole floats");
}

// [first byte, last byte + 1) that a strided array spans
std::pair<const char*, const char*> span(const py::array& t) {
    const char* lo = static_cast<const char*>(t.data());
    const char* hi = lo;
    for (py::ssize_t d = 0; d < t.ndim(); ++d) {
        if (t.shape(d) == 0) return {lo, lo};
        const py::ssize_t reach = (t.shape(d) - 1) * t.strides(d);
        (reach < 0 ? lo : hi) += reach;
    }
    return {lo, hi + t.itemsize()};
}

bool overlap(const py::array& a, const py::array& b) {
    const auto x = span(a), y = span(b);
    return x.first < y.second && y.first < x.second;
}

void attention_varlen(py::array q, py::array k, py::array v, py::array out, Index cu_seqlens, Index seqused_k,
                      double scale, int threads, const std::string& isa) {
    const AttendFn attend = find_build(isa).attend;
    if (q.ndim() != 3) throw std::invalid_argument("q must have shape (total, heads, head_dim)");
    const int64_t total = q.shape(0), heads = q.shape(1), dim = q.shape(2);
    check_view(q, "q", total, heads, dim);
    check_view(k, "k", total, heads, dim);
    check_view(v, "v", total, heads, dim);
    check_view(out, "out", total, heads, dim);
    if (!(out.flags() & py::array::c_style) || !out.writeable())
        throw std::invalid_argument("out must be a writeable C-contiguous array");
    if (overlap(out, q) || overlap(out, k) || overlap(out, v))
        throw std::invalid_argument("out must not overlap q, k or v");
    if (cu_seqlens.ndim() != 1 || cu_seqlens.shape(0) < 2)
        throw std::invalid_argument("cu_seqlens must have shape (batch + 1,)");
    const int64_t batch = cu_seqlens.shape(0) - 1;
    const int64_t* cu = cu_seqlens.data();
    if (cu[0] != 0 || cu[batch] != total)
        throw std::invalid_argument("cu_seqlens must start at 0 and end at the number of rows");
    const int64_t* used = nullptr;
    if (seqused_k.size() > 0) {
        if (seqused_k.ndim() != 1 || seqused_k.shape(0) != batch)
            throw std::invalid_argument("seqused_k must have shape (batch,)");
        used = seqused_k.data();
    }
    int64_t longest = 0;
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t len = cu[b + 1] - cu[b];
        const int64_t keys = used ? used[b] : len;
        if (len < 1 || keys < 1 || keys > len)
            throw std::invalid_argument("every sequence needs 1 <= keys <= rows (sequence " + std::to_string(b) + ")");
        longest = std::max(longest, len);
    }
    Args a;
    a.q = static_cast<const float*>(q.data());
    a.k = static_cast<const float*>(k.data());
    a.v = static_cast<const float*>(v.data());
    a.out = static_cast<float*>(out.mutable_data());
    a.q_row = q.strides(0) / 4, a.q_head = q.strides(1) / 4;
    a.k_row = k.strides(0) / 4, a.k_head = k.strides(1) / 4;
    a.v_row = v.strides(0) / 4, a.v_head = v.strides(1) / 4;
    a.heads = heads, a.dim = dim, a.cu = cu, a.used = used, a.scale = static_cast<float>(scale);
    // long sequences are cut into blocks of query rows so that the threads stay busy; each block reloads
    // its sequence's keys, which costs little next to the block's own work
    a.q_block = std::max<int64_t>(64, (longest + 3) / 4);
    std::vector<int64_t> task_seq;  // (sequence, first query row) of every task, per head
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t r = 0; r < cu[b + 1] - cu[b]; r += a.q_block) task_seq.push_back(b), task_seq.push_back(r);
    const size_t per_head = task_seq.size() / 2;
    const int64_t kpad = (longest + MAX_W - 1) / MAX_W * MAX_W, dpad = (dim + MAX_W - 1) / MAX_W * MAX_W;
    const size_t work_floats = static_cast<size_t>(dim * kpad + longest * dpad + MAX_QB * kpad);
    const int64_t tasks = static_cast<int64_t>(per_head) * heads;
    const int nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, tasks)));
    // every thread's scratch, allocated here (an allocation failure inside the parallel region could not be
    // reported as an exception)
    std::vector<float> work(static_cast<size_t>(nthreads) * work_floats);
    py::gil_scoped_release release;
#pragma omp parallel num_threads(nthreads)
    {
#ifdef _OPENMP
        float* mine = work.data() + static_cast<size_t>(omp_get_thread_num()) * work_floats;
#else
        float* mine = work.data();
#endif
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < tasks; ++item) {
            const int64_t h = item % heads;
            const int64_t t = item / heads;
            const int64_t b = task_seq[2 * t], q0 = task_seq[2 * t + 1];
            const int64_t q1 = std::min(q0 + a.q_block, cu[b + 1] - cu[b]);
            attend(a, b, h, q0, q1, mine);
        }
    }
}

}  // namespace
}  // namespace fastbert

PYBIND11_MODULE(_cpu_kernels, m) {
    m.doc() = "fastbert CPU kernels: padding-free fp32 attention for inference";
    m.def("attention_varlen", &fastbert::attention_varlen, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("out"), py::arg("cu_seqlens"), py::arg("seqused_k"), py::arg("scale"), py::arg("threads"),
          py::arg("isa"), "Attention inside each packed sequence with the named build (see the source file's header).");
    m.def("builds", &fastbert::builds, "[(name, runs on this CPU)] for every build in this module, best first.");
}
