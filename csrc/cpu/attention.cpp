// fastbert._cpu_kernels: padding-free attention for fp32 inference on the CPU.
//
// attention_varlen(q, k, v, out, cu_seqlens, seqused_k, scale, threads)
//   q, k, v: (total, heads, head_dim) float32 views of the packed rows (any row/head strides, unit stride
//            along head_dim), out: (total, heads, head_dim) float32, written.
//   Sequence b owns rows cu_seqlens[b]..cu_seqlens[b+1]; every row is a query, and the keys/values are the
//   first seqused_k[b] rows of the sequence (all of them when seqused_k is empty).
//   For each (sequence, head) and each query row i:
//       s_j = scale * <q_i, k_j>,   p_j = exp(s_j - max_j s_j) / sum_j exp(s_j - max_j s_j),   o_i = sum_j p_j v_j
//
// Why it exists: BERT sequences are short (tens of tokens) and heads are narrow (32-64), so torch's CPU
// attention spends most of its time on per-(sequence, head) overhead; here one task handles a (sequence,
// head) pair start to end with K laid out transposed, so that the score loop runs along keys and the output
// loop along head_dim, both vectorised. The inner loops are plain C++ compiled once per instruction set
// (target_clones: AVX-512, AVX2, baseline) and picked at load time by the CPU's features, so the module
// stays portable. exp is a vectorisable polynomial (relative error below 2e-7 on the range used).
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
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define FASTBERT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTBERT_CLONES
#endif
#define FASTBERT_INLINE static inline __attribute__((always_inline))
// the vector helpers are always inlined into the clones, so their by-value vector ABI never crosses a call
#pragma GCC diagnostic ignored "-Wpsabi"

// 16 floats: GCC lowers the vector extension to AVX-512, AVX2 or SSE as the clone being compiled allows.
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
constexpr int64_t W = 16;

FASTBERT_INLINE vf splat(float x) { return vf{} + x; }

FASTBERT_INLINE vf load(const float* p) {
    vf r;
    std::memcpy(&r, p, sizeof(r));
    return r;
}

FASTBERT_INLINE void store(float* p, vf x) { std::memcpy(p, &x, sizeof(x)); }

// exp(x) for x <= 0 (scores minus their row maximum), 16 at a time: x = n ln2 + r with |r| <= ln2/2, e^r by
// its degree-6 Taylor polynomial (truncation error below 1.3e-7 relative), 2^n written into the exponent
// bits. Inputs below -87.3 are clamped there: exp(-87.3) ~ 1e-38 is far below float resolution of the row
// sum, which always holds the term exp(0) = 1.
FASTBERT_INLINE vf exp_nonpositive(vf x) {
    const vf lo = splat(-87.3f);
    x = x < lo ? lo : x;
    const vf shifter = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer in the low bits
    const vf t = x * splat(1.44269504088896341f) + shifter;
    const vf n = t - shifter;
    vf r = x - n * splat(0.693145751953125f);  // ln2 split in two: n * hi is exact
    r = r - n * splat(1.42860682030941723212e-6f);
    vf p = splat(1.0f / 720.0f);
    p = p * r + splat(1.0f / 120.0f);
    p = p * r + splat(1.0f / 24.0f);
    p = p * r + splat(1.0f / 6.0f);
    p = p * r + splat(0.5f);
    p = p * r + splat(1.0f);
    p = p * r + splat(1.0f);
    vi ti, si;
    std::memcpy(&ti, &t, sizeof(ti));
    const vf sh = shifter;
    std::memcpy(&si, &sh, sizeof(si));
    const vi bits = ((ti - si) + 127) << 23;  // n + 127 in the exponent field
    vf scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

FASTBERT_INLINE float hmax(vf x) {
    float m = x[0];
    for (int l = 1; l < W; ++l) m = x[l] > m ? x[l] : m;
    return m;
}

FASTBERT_INLINE float hsum(vf x) {
    float s = 0.0f;
    for (int l = 0; l < W; ++l) s += x[l];
    return s;
}

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

// One task: query rows [q0, q1) of sequence b, head h, QB queries at a time so that the FMA chains are
// independent (4, or 8 for long sequences, where each pass over K and V then serves twice the queries).
// `work` holds (dim, kpad) K transposed and pre-scaled, (keys, dpad) V, and (QB, kpad) scores, with kpad and
// dpad the key count and head_dim rounded up to 16 (padding keys score -1e30, padding dims are 0).
constexpr int MAX_QB = 8;
constexpr int64_t LONG_KEYS = 128;  // from this many keys on, 8 queries per pass

// NC key chunks of the scores of QB queries: NC * QB independent FMA chains.
template <int QB, int NC>
FASTBERT_INLINE void score_chunks(const float* kt, int64_t kpad, int64_t c, int64_t dim, const float* const* qr,
                                  float* sc) {
    vf acc[NC][QB];
    for (int n = 0; n < NC; ++n)
        for (int u = 0; u < QB; ++u) acc[n][u] = vf{};
    for (int64_t d = 0; d < dim; ++d) {
        vf kd[NC];
        for (int n = 0; n < NC; ++n) kd[n] = load(kt + d * kpad + (c + n) * W);
        for (int u = 0; u < QB; ++u) {
            const vf qd = splat(qr[u][d]);
            for (int n = 0; n < NC; ++n) acc[n][u] += qd * kd[n];
        }
    }
    for (int n = 0; n < NC; ++n)
        for (int u = 0; u < QB; ++u) store(sc + u * kpad + (c + n) * W, acc[n][u]);
}

// NC head_dim chunks of the outputs of the nq (<= QB) queries starting at packed row `row`.
template <int QB, int NC>
FASTBERT_INLINE void output_chunks(const Args& a, const float* vv, int64_t dpad, int64_t keys, int64_t c,
                                   const float* sc, int64_t kpad, const float* inv, int nq, int64_t row,
                                   int64_t h) {
    vf acc[NC][QB];
    for (int n = 0; n < NC; ++n)
        for (int u = 0; u < QB; ++u) acc[n][u] = vf{};
    for (int64_t j = 0; j < keys; ++j) {
        vf vj[NC];
        for (int n = 0; n < NC; ++n) vj[n] = load(vv + j * dpad + (c + n) * W);
        for (int u = 0; u < QB; ++u) {
            const vf p = splat(sc[u * kpad + j]);
            for (int n = 0; n < NC; ++n) acc[n][u] += p * vj[n];
        }
    }
    const int64_t dim = a.dim;
    for (int u = 0; u < nq; ++u) {
        float* o = a.out + ((row + u) * a.heads + h) * dim;
        for (int n = 0; n < NC; ++n) {
            const int64_t d0 = (c + n) * W;
            const vf r = acc[n][u] * splat(inv[u]);
            if (d0 + W <= dim) {
                store(o + d0, r);
            } else {
                for (int64_t l = 0; l < dim - d0; ++l) o[d0 + l] = r[l];
            }
        }
    }
}

// The query rows [q0, q1) of one (sequence, head) against its prepared K^T and V.
template <int QB>
FASTBERT_INLINE void query_blocks(const Args& a, int64_t start, int64_t h, int64_t q0, int64_t q1, int64_t keys,
                                  const float* kt, const float* vv, float* sc) {
    const int64_t dim = a.dim;
    const int64_t kpad = (keys + W - 1) / W * W, dpad = (dim + W - 1) / W * W;
    const int64_t kc = kpad / W, dc = dpad / W;
    const vf lane = vf{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const vf last_valid = splat(static_cast<float>(keys - (kc - 1) * W));  // lanes of the last chunk in use
    const vf neg = splat(-1e30f);
    for (int64_t i0 = q0; i0 < q1; i0 += QB) {
        const int nq = static_cast<int>(std::min<int64_t>(QB, q1 - i0));
        const float* qr[QB];
        for (int u = 0; u < QB; ++u) {  // rows past the block's end repeat its first row; never stored
            const int64_t row = start + i0 + (u < nq ? u : 0);
            qr[u] = a.q + row * a.q_row + h * a.q_head;
        }
        // scores: sc[u][j] = <q_u, k_j> * scale, two key chunks at a time where there are two
        int64_t c = 0;
        for (; c + 2 <= kc; c += 2) score_chunks<QB, 2>(kt, kpad, c, dim, qr, sc);
        if (c < kc) score_chunks<QB, 1>(kt, kpad, c, dim, qr, sc);
        for (int u = 0; u < QB; ++u) {  // padding keys of the last chunk never win the softmax
            float* last = sc + u * kpad + (kc - 1) * W;
            store(last, lane < last_valid ? load(last) : neg);
        }
        // softmax numerators and row sums
        float inv[QB];
        for (int u = 0; u < QB; ++u) {
            float* su = sc + u * kpad;
            vf m = load(su);
            for (int64_t c2 = 1; c2 < kc; ++c2) {
                const vf x = load(su + c2 * W);
                m = x > m ? x : m;
            }
            const vf mx = splat(hmax(m));
            vf sum = vf{};
            for (int64_t c2 = 0; c2 < kc; ++c2) {
                const vf e = exp_nonpositive(load(su + c2 * W) - mx);
                store(su + c2 * W, e);
                sum += e;
            }
            inv[u] = 1.0f / hsum(sum);
        }
        // outputs: o_u = sum_j p_uj v_j / sum_u, two head_dim chunks at a time where there are two
        int64_t c2 = 0;
        for (; c2 + 2 <= dc; c2 += 2) output_chunks<QB, 2>(a, vv, dpad, keys, c2, sc, kpad, inv, nq, start + i0, h);
        if (c2 < dc) output_chunks<QB, 1>(a, vv, dpad, keys, c2, sc, kpad, inv, nq, start + i0, h);
    }
}

FASTBERT_CLONES
void attend(const Args& a, int64_t b, int64_t h, int64_t q0, int64_t q1, float* work) {
    const int64_t start = a.cu[b];
    const int64_t keys = a.used ? a.used[b] : a.cu[b + 1] - start;
    const int64_t dim = a.dim;
    const int64_t kpad = (keys + W - 1) / W * W, dpad = (dim + W - 1) / W * W;
    float* kt = work;              // (dim, kpad)
    float* vv = kt + dim * kpad;   // (keys, dpad)
    float* sc = vv + keys * dpad;  // (MAX_QB, kpad)
    for (int64_t j = 0; j < keys; ++j) {
        const float* kr = a.k + (start + j) * a.k_row + h * a.k_head;
        const float* vr = a.v + (start + j) * a.v_row + h * a.v_head;
        for (int64_t d = 0; d < dim; ++d) kt[d * kpad + j] = kr[d] * a.scale;
        std::memcpy(vv + j * dpad, vr, sizeof(float) * dim);
        for (int64_t d = dim; d < dpad; ++d) vv[j * dpad + d] = 0.0f;
    }
    for (int64_t d = 0; d < dim; ++d)
        for (int64_t j = keys; j < kpad; ++j) kt[d * kpad + j] = 0.0f;
    if (keys >= LONG_KEYS)
        query_blocks<8>(a, start, h, q0, q1, keys, kt, vv, sc);
    else
        query_blocks<4>(a, start, h, q0, q1, keys, kt, vv, sc);
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
                      double scale, int threads) {
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
    const int64_t kpad = (longest + W - 1) / W * W, dpad = (dim + W - 1) / W * W;
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
          "Attention inside each packed sequence (see the source file's header).");
}
