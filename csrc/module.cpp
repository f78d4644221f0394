// pybind11 entry point for fastbert._tokenizer: argument checking with the GIL held, the batch encoded
// with the GIL released, then the rows written straight into numpy buffers (GIL released) or into Python
// lists built from cached int objects (one INCREF per token, no allocation for ids). One function lays out
// a row (write_row: token, type id and padding columns); ArrayRow and ListRow only store the values.
// A small batch (under kReleaseGilChars characters, which encode_batch encodes on the calling thread
// anyway) keeps the GIL throughout: a call of a few texts takes a few microseconds, and fixed costs (GIL
// hand-offs, keyword matching, dict keys made from C strings) would otherwise be a good part of it.
//
// Lists are built chunk by chunk while the other threads still encode the later chunks
// (Encoder::encode_batch hands each finished chunk to the calling thread, which takes the GIL for it): the
// Python objects, which only the thread holding the GIL can build, are made during the encoding instead
// of after it. The row lists hold ints (or tuples of ints) only, so they are untracked by the cyclic GC,
// as CPython itself untracks tuples and dicts of atomic values: otherwise the collections after a big
// batch walk every token of it again (40% of the time of a batch of short texts). The price: a cycle that
// a caller builds through a row list (storing into it a container that refers back to it) is never
// collected.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "tokenizer.h"

namespace py = pybind11;

namespace fastbert {
namespace {

// The outputs, in the order of their bits in `want` (WANT_IDS is 1 << kIds, ...), and their names.
enum Output : int { kIds, kTypes, kAttention, kSpecial, kOffsets, kOutputs };
const char* const kOutputNames[kOutputs] = {"input_ids", "token_type_ids", "attention_mask", "special_tokens_mask",
                                            "offset_mapping"};
inline bool wants(int want, int output) { return (want >> output) & 1; }
// The same names as interned str objects, made once at import (kept for the life of the process): a dict key
// made from a C string on every call would be allocated and hashed again each time.
PyObject* output_keys[kOutputs];
PyObject* overflow_key;

// Work below these sizes is done with the GIL held, on the calling thread alone: releasing and taking back
// the GIL costs more than a batch this small takes to encode (numpy keeps the GIL below a threshold too).
constexpr size_t kReleaseGilChars = kCharsPerThread;  // characters of text to encode
constexpr size_t kReleaseGilElements = 16384;         // values to write into the arrays (to_numpy: 1 thread)

TextView view_of(PyObject* obj, size_t index, const char* what) {
    if (!PyUnicode_Check(obj)) {
        std::string type = Py_TYPE(obj)->tp_name;
        throw py::type_error(std::string(what) + " " + std::to_string(index) + " must be a str, got " + type);
    }
    TextView v;
    v.kind = PyUnicode_KIND(obj);
    v.data = PyUnicode_DATA(obj);
    v.length = static_cast<size_t>(PyUnicode_GET_LENGTH(obj));
    bool surrogate = false;
    if (v.kind == 2) {
        const uint16_t* s = static_cast<const uint16_t*>(v.data);
        for (size_t i = 0; i < v.length; ++i) surrogate |= (s[i] & 0xF800) == 0xD800;
    } else if (v.kind == 4) {
        const uint32_t* s = static_cast<const uint32_t*>(v.data);
        for (size_t i = 0; i < v.length; ++i) surrogate |= (s[i] & 0xFFFFF800u) == 0xD800;
    }
    if (surrogate)
        throw py::value_error(std::string(what) + " " + std::to_string(index) +
                              " contains a lone surrogate code point (U+D800..U+DFFF), which is not valid text");
    return v;
}

// The texts of a list, their characters added to `chars`.
std::vector<TextView> views_of(const py::list& texts, const char* what, size_t& chars) {
    std::vector<TextView> out;
    out.reserve(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
        out.push_back(view_of(PyList_GET_ITEM(texts.ptr(), i), i, what));
        chars += out.back().length;
    }
    return out;
}

// Releases the GIL for its scope when `release` is true.
class MaybeGilReleased {
  public:
    explicit MaybeGilReleased(bool release) : state_(release ? PyEval_SaveThread() : nullptr) {}
    ~MaybeGilReleased() {
        if (state_) PyEval_RestoreThread(state_);
    }
    MaybeGilReleased(const MaybeGilReleased&) = delete;
    MaybeGilReleased& operator=(const MaybeGilReleased&) = delete;

  private:
    PyThreadState* state_;
};

// ---- The row layout, one for the numpy and the list writer --------------------------------------------
// Calls f(id, special, start, end) for each token of the row in order: [CLS] A [SEP] (B [SEP]), no padding.
template <class F>
void for_each_token(const Encoder& enc, const Row& r, bool add_special, F&& f) {
    if (add_special) f(enc.cls_id(), 1, 0u, 0u);
    for (uint32_t k = 0; k < r.a_len; ++k) f(r.a[k].id, 0, r.a[k].start, r.a[k].end);
    if (add_special) f(enc.sep_id(), 1, 0u, 0u);
    if (r.has_pair) {
        for (uint32_t k = 0; k < r.b_len; ++k) f(r.b[k].id, 0, r.b[k].start, r.b[k].end);
        if (add_special) f(enc.sep_id(), 1, 0u, 0u);
    }
}

// Writes one row, padded to `width` columns, of the outputs in `want` (input_ids always) through a writer that
// stores the values its own way:
//   w.token(col, id, special, start, end)  the token at column col
//   w.token_id(col, id)                    the same, when only input_ids have a value per token
//   w.fill(output, col, n, value)          n columns from col with one value: 0 or 1 (type ids, masks), the
//                                          pad id (input_ids), 0 meaning (0, 0) (offset_mapping)
// The row's tokens take `length` columns from `tok`, the first n_first of them ([CLS] A [SEP]) with type id 0
// and the rest (B [SEP]) with 1; its padding takes the other n_pad columns, from `pad`: after the tokens, or
// before them when padding on the left.
template <class Writer>
void write_row(const Encoder& enc, const Row& row, uint32_t width, const EncodeOptions& p, int want, Writer& w) {
    const size_t length = row.length, n_pad = width - length;
    const size_t n_first = row.a_len + (p.add_special_tokens ? 2 : 0);
    const size_t tok = p.pad_left ? n_pad : 0, pad = p.pad_left ? 0 : length;
    size_t col = tok;
    if (wants(want, kSpecial) || wants(want, kOffsets))
        for_each_token(enc, row, p.add_special_tokens, [&](uint32_t id, int special, uint32_t start, uint32_t end) {
            w.token(col++, id, special, start, end);
        });
    else
        for_each_token(enc, row, p.add_special_tokens,
                       [&](uint32_t id, int, uint32_t, uint32_t) { w.token_id(col++, id); });
    w.fill(kIds, pad, n_pad, enc.pad_id());
    if (wants(want, kTypes)) {
        w.fill(kTypes, tok, n_first, 0);
        w.fill(kTypes, tok + n_first, length - n_first, 1);
        w.fill(kTypes, pad, n_pad, 0);
    }
    if (wants(want, kAttention)) {
        w.fill(kAttention, tok, length, 1);
        w.fill(kAttention, pad, n_pad, 0);
    }
    if (wants(want, kSpecial)) w.fill(kSpecial, pad, n_pad, 1);
    if (wants(want, kOffsets)) w.fill(kOffsets, pad, n_pad, 0);
}

// A row of the numpy outputs: int64 columns (two per column for offset_mapping); GIL not needed.
struct ArrayRow {
    int64_t* at[kOutputs];  // the row's first column in each output (nullptr: not asked for)

    void token_id(size_t col, uint32_t id) { at[kIds][col] = id; }
    void token(size_t col, uint32_t id, int special, uint32_t start, uint32_t end) {
        at[kIds][col] = id;
        if (at[kSpecial]) at[kSpecial][col] = special;
        if (at[kOffsets]) {
            at[kOffsets][2 * col] = start;
            at[kOffsets][2 * col + 1] = end;
        }
    }
    void fill(Output k, size_t col, size_t n, int64_t value) {
        const size_t w = k == kOffsets ? 2 : 1;
        std::fill(at[k] + w * col, at[k] + w * (col + n), value);
    }
};

// A row of the Python lists (GIL held): items are the cached int objects, a reference added per item, and
// (start, end) tuples for offset_mapping.
struct ListRow {
    const py::object* ints;  // ints[i] is i, for every id
    PyObject *zero, *one, *zero_pair;
    PyObject** at[kOutputs];  // the items of the row's list in each output (nullptr: not asked for)

    void token_id(size_t col, uint32_t id) {
        PyObject* v = ints[id].ptr();
        Py_INCREF(v);
        at[kIds][col] = v;
    }
    void token(size_t col, uint32_t id, int special, uint32_t start, uint32_t end) {
        token_id(col, id);
        if (at[kSpecial]) {
            PyObject* m = special ? one : zero;
            Py_INCREF(m);
            at[kSpecial][col] = m;
        }
        if (at[kOffsets]) {
            PyObject* t = PyTuple_New(2);
            if (!t) throw py::error_already_set();
            PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLong(start));
            PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLong(end));
            PyObject_GC_UnTrack(t);  // ints only: what the cyclic GC would do itself
            at[kOffsets][col] = t;
        }
    }
    void fill(Output k, size_t col, size_t n, uint32_t value) {
        PyObject* v = k == kIds ? ints[value].ptr() : k == kOffsets ? zero_pair : value ? one : zero;
        std::fill(at[k] + col, at[k] + col + n, v);
        if (n) Py_SET_REFCNT(v, Py_REFCNT(v) + static_cast<Py_ssize_t>(n));  // n references, added at once
    }
};

// The GIL released for a scope, and taken back for inner scopes (Held) on the same thread.
class GilReleased {
  public:
    GilReleased() : state_(PyEval_SaveThread()) {}
    ~GilReleased() { PyEval_RestoreThread(state_); }
    GilReleased(const GilReleased&) = delete;
    GilReleased& operator=(const GilReleased&) = delete;
    struct Held {
        explicit Held(GilReleased& g) : g_(g) { PyEval_RestoreThread(g_.state_); }
        ~Held() { g_.state_ = PyEval_SaveThread(); }
        GilReleased& g_;
    };

  private:
    PyThreadState* state_;
};

// Python lists of the rows, chunk by chunk (GIL held), one list per row and output.
class ListWriter {
  public:
    ListWriter(const Encoder& enc, const std::vector<py::object>& ints, const EncodeOptions& p, int want,
               size_t n_rows_hint)
        : enc_(enc), p_(p), want_(want) {
        zero_pair_ = py::make_tuple(0, 0);
        one_holder_ = py::int_(1);  // ints[1], unless the vocab has one token
        row_.ints = ints.data();
        row_.zero = ints[0].ptr();
        row_.one = ints.size() > 1 ? ints[1].ptr() : one_holder_.ptr();
        row_.zero_pair = zero_pair_.ptr();
        for (int k = 0; k < kOutputs; ++k)
            if (wants(want_, k)) cols_[k].reserve(n_rows_hint);
    }

    void add(const Chunk& c, uint32_t padded_length) {
        for (const Row& row : c.rows) {
            const uint32_t width = std::max(row.length, padded_length);
            for (int k = 0; k < kOutputs; ++k) row_.at[k] = wants(want_, k) ? new_list(k, width) : nullptr;
            write_row(enc_, row, width, p_, want_, row_);
            // Ints (and tuples of ints) only: no cycle can go through these lists (see the top of the file).
            for (int k = 0; k < kOutputs; ++k)
                if (wants(want_, k)) PyObject_GC_UnTrack(cols_[k].back().ptr());
        }
    }

    // The outputs asked for, as lists of the row lists.
    py::dict finish() {
        py::dict out;
        for (int k = 0; k < kOutputs; ++k) {
            if (!wants(want_, k)) continue;
            std::vector<py::object>& col = cols_[k];
            py::list l(col.size());
            for (size_t i = 0; i < col.size(); ++i) PyList_SET_ITEM(l.ptr(), i, col[i].release().ptr());
            col.clear();
            out[output_keys[k]] = l;
        }
        return out;
    }

  private:
    // A new list of n items, to be filled; kept (and released on error) by cols_[k]. Its items are NULL until
    // written: safe to release half-filled.
    PyObject** new_list(int k, size_t n) {
        PyObject* l = PyList_New(static_cast<Py_ssize_t>(n));
        if (!l) throw py::error_already_set();
        cols_[k].push_back(py::reinterpret_steal<py::object>(l));
        return reinterpret_cast<PyListObject*>(l)->ob_item;
    }

    const Encoder& enc_;
    const EncodeOptions& p_;
    const int want_;
    py::object one_holder_;
    py::tuple zero_pair_;
    ListRow row_;
    std::vector<py::object> cols_[kOutputs];
};

class PyTokenizer {
  public:
    PyTokenizer(std::vector<std::string> vocab, uint32_t unk_id, uint32_t cls_id, uint32_t sep_id,
                uint32_t pad_id, std::vector<std::pair<std::u32string, uint32_t>> specials, bool lowercase,
                bool strip_accents, bool handle_chinese_chars, size_t max_input_chars_per_word,
                std::string prefix) {
        const size_t n = vocab.size();
        for (uint32_t id : {unk_id, cls_id, sep_id, pad_id})
            if (id >= n) throw py::value_error("special token id " + std::to_string(id) + " is outside the vocab");
        std::vector<SpecialToken> sp;
        for (auto& [text, id] : specials) {
            if (id >= n) throw py::value_error("special token id " + std::to_string(id) + " is outside the vocab");
            sp.push_back({text, id});
        }
        NormalizerOptions opt{lowercase, strip_accents, handle_chinese_chars};
        enc_ = std::make_unique<Encoder>(vocab, opt, unk_id, cls_id, sep_id, pad_id, std::move(sp),
                                         max_input_chars_per_word, prefix);
        ints_.reserve(n);
        for (size_t i = 0; i < n; ++i) ints_.push_back(py::int_(i));
    }

    py::list tokenize(py::object text, bool split_special_tokens) {
        TextView v = view_of(text.ptr(), 0, "text");
        std::vector<Piece> pieces;
        {
            py::gil_scoped_release release;
            enc_->encode(v, pieces, split_special_tokens);
        }
        py::list out(pieces.size());
        for (size_t i = 0; i < pieces.size(); ++i) {
            const std::string& s = enc_->vocab()[pieces[i].id];
            out[i] = py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
        }
        return out;
    }

    py::dict encode(py::list texts, py::object pairs, const EncodeOptions& p, bool as_numpy, int want) {
        size_t chars = 0;
        std::vector<TextView> first = views_of(texts, "text item", chars);
        std::vector<TextView> second;
        if (!pairs.is_none()) {
            py::list pl = pairs.cast<py::list>();
            if (pl.size() != texts.size())
                throw py::value_error("got " + std::to_string(texts.size()) + " texts but " +
                                      std::to_string(pl.size()) + " text pairs");
            second = views_of(pl, "text_pair item", chars);
        }
        want |= 1 << kIds;  // input_ids always come back
        const bool release_gil = chars >= kReleaseGilChars;

        BatchResult res;
        py::dict out;
        if (as_numpy) {
            {
                MaybeGilReleased released(release_gil);
                enc_->encode_batch(first, second, p, res);
            }
            if (!res.error.empty()) throw py::value_error(res.error);
            out = to_numpy(res, p, want);
        } else if (!release_gil) {  // a small batch: encoded, then written, GIL held throughout
            ListWriter lists(*enc_, ints_, p, want, first.size());
            enc_->encode_batch(first, second, p, res);
            if (!res.error.empty()) throw py::value_error(res.error);
            for (const Chunk& c : res.chunks) lists.add(c, res.padded_length);
            out = lists.finish();
        } else {
            ListWriter lists(*enc_, ints_, p, want, first.size());
            // Padding to the longest row needs every row first; otherwise each chunk is written as it comes.
            const bool as_they_come = p.padding != Padding::Longest;
            {
                GilReleased released;
                ChunkCallback write;
                if (as_they_come)
                    write = [&](const Chunk& c) {
                        GilReleased::Held held(released);
                        lists.add(c, res.padded_length);
                    };
                enc_->encode_batch(first, second, p, res, write);
            }
            if (!res.error.empty()) throw py::value_error(res.error);
            if (!as_they_come)
                for (const Chunk& c : res.chunks) lists.add(c, res.padded_length);
            out = lists.finish();
        }
        if (p.return_overflowing) {
            py::array_t<int64_t> m(static_cast<py::ssize_t>(res.n_rows));
            auto* d = m.mutable_data();
            for (const Chunk& c : res.chunks)
                for (size_t i = 0; i < c.rows.size(); ++i) d[c.row_base + i] = c.rows[i].sample;
            out[overflow_key] = as_numpy ? py::object(m) : py::object(m.attr("tolist")());
        }
        return out;
    }

    size_t vocab_size() const { return enc_->vocab().size(); }

  private:
    py::dict to_numpy(const BatchResult& res, const EncodeOptions& p, int want) {
        const size_t R = res.n_rows;
        uint32_t L = res.padded_length;
        bool first = true;
        for (const Chunk& c : res.chunks)
            for (const Row& r : c.rows) {
                const uint32_t len = std::max(r.length, res.padded_length);
                if (first) L = len;
                first = false;
                if (len != L)
                    throw py::value_error(
                        "the rows have different lengths, so they cannot be stacked into one array: "
                        "pass padding=True or padding='max_length' (and truncation=True to cap the length)");
            }
        // Only the arrays asked for are allocated and written; offset_mapping has two values per column.
        py::array_t<int64_t> arrays[kOutputs];
        int64_t* data[kOutputs] = {};
        for (int k = 0; k < kOutputs; ++k) {
            if (!wants(want, k)) continue;
            std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(R), static_cast<py::ssize_t>(L)};
            if (k == kOffsets) shape.push_back(2);
            arrays[k] = py::array_t<int64_t>(shape);
            data[k] = arrays[k].mutable_data();
        }
        {
            MaybeGilReleased released(R * L >= kReleaseGilElements);
            auto fill = [&](const Chunk& c) {
                for (size_t i = 0; i < c.rows.size(); ++i) {
                    const size_t row_begin = (c.row_base + i) * L;
                    ArrayRow w;
                    for (int k = 0; k < kOutputs; ++k)
                        w.at[k] = data[k] ? data[k] + (k == kOffsets ? 2 : 1) * row_begin : nullptr;
                    write_row(*enc_, c.rows[i], L, p, want, w);
                }
            };
            const size_t n_chunks = res.chunks.size();
            const size_t threads =
                std::min<size_t>({static_cast<size_t>(std::max(1, p.num_threads)), R * L / 65536 + 1, n_chunks});
            if (threads <= 1) {
                for (const Chunk& c : res.chunks) fill(c);
            } else {
                // Chunks handed out one at a time, so that a thread the OS delays holds up little work.
                std::atomic<size_t> next{0};
                auto loop = [&]() {
                    for (size_t k; (k = next.fetch_add(1)) < n_chunks;) fill(res.chunks[k]);
                };
                std::vector<std::thread> pool;
                for (size_t t = 1; t < threads; ++t) pool.emplace_back(loop);
                loop();
                for (auto& th : pool) th.join();
            }
        }
        py::dict out;
        for (int k = 0; k < kOutputs; ++k)
            if (wants(want, k)) out[output_keys[k]] = arrays[k];
        return out;
    }

    std::unique_ptr<Encoder> enc_;
    std::vector<py::object> ints_;
};

}  // namespace
}  // namespace fastbert

PYBIND11_MODULE(_tokenizer, m) {
    using fastbert::EncodeOptions;
    using fastbert::Padding;
    using fastbert::PyTokenizer;
    using fastbert::Truncation;
    m.doc() = "fastbert C++ WordPiece tokenizer (BertNormalizer, BertPreTokenizer, Fast WordPiece, template)";
    for (int k = 0; k < fastbert::kOutputs; ++k) {
        fastbert::output_keys[k] = PyUnicode_InternFromString(fastbert::kOutputNames[k]);
        if (!fastbert::output_keys[k]) throw py::error_already_set();
    }
    fastbert::overflow_key = PyUnicode_InternFromString("overflow_to_sample_mapping");
    if (!fastbert::overflow_key) throw py::error_already_set();
    m.attr("WANT_IDS") = 1 << fastbert::kIds;
    m.attr("WANT_TYPES") = 1 << fastbert::kTypes;
    m.attr("WANT_ATTENTION") = 1 << fastbert::kAttention;
    m.attr("WANT_SPECIAL") = 1 << fastbert::kSpecial;
    m.attr("WANT_OFFSETS") = 1 << fastbert::kOffsets;
    // transformers' TruncationStrategy / PaddingStrategy names
    py::enum_<Truncation>(m, "Truncation", "Truncation strategy (transformers' TruncationStrategy)")
        .value("DO_NOT_TRUNCATE", Truncation::DoNotTruncate)
        .value("LONGEST_FIRST", Truncation::LongestFirst)
        .value("ONLY_FIRST", Truncation::OnlyFirst)
        .value("ONLY_SECOND", Truncation::OnlySecond);
    py::enum_<Padding>(m, "Padding", "Padding strategy (transformers' PaddingStrategy)")
        .value("DO_NOT_PAD", Padding::DoNotPad)
        .value("LONGEST", Padding::Longest)
        .value("MAX_LENGTH", Padding::MaxLength);
    const EncodeOptions d;  // the defaults
    py::class_<EncodeOptions>(m, "EncodeOptions", "What one encode call asks for, lengths resolved; by keyword.")
        .def(py::init([](bool add_special_tokens, Truncation truncation, int64_t max_length, int64_t stride,
                         bool truncate_left, bool return_overflowing, Padding padding, int64_t pad_length,
                         int64_t pad_to_multiple_of, bool pad_left, int num_threads, bool split_special_tokens) {
                 if (stride < 0) throw py::value_error("stride must be >= 0");
                 EncodeOptions o;
                 o.add_special_tokens = add_special_tokens;
                 o.truncation = truncation;
                 o.max_length = max_length;
                 o.stride = stride;
                 o.truncate_left = truncate_left;
                 o.return_overflowing = return_overflowing;
                 o.padding = padding;
                 o.pad_length = pad_length;
                 o.pad_to_multiple_of = pad_to_multiple_of;
                 o.pad_left = pad_left;
                 o.num_threads = num_threads;
                 o.split_special_tokens = split_special_tokens;
                 return o;
             }),
             py::kw_only(), py::arg("add_special_tokens") = d.add_special_tokens,
             py::arg("truncation") = d.truncation, py::arg("max_length") = d.max_length,
             py::arg("stride") = d.stride, py::arg("truncate_left") = d.truncate_left,
             py::arg("return_overflowing") = d.return_overflowing, py::arg("padding") = d.padding,
             py::arg("pad_length") = d.pad_length, py::arg("pad_to_multiple_of") = d.pad_to_multiple_of,
             py::arg("pad_left") = d.pad_left, py::arg("num_threads") = d.num_threads,
             py::arg("split_special_tokens") = d.split_special_tokens)
        .def_readonly("add_special_tokens", &EncodeOptions::add_special_tokens)
        .def_readonly("truncation", &EncodeOptions::truncation)
        .def_readonly("max_length", &EncodeOptions::max_length)
        .def_readonly("stride", &EncodeOptions::stride)
        .def_readonly("truncate_left", &EncodeOptions::truncate_left)
        .def_readonly("return_overflowing", &EncodeOptions::return_overflowing)
        .def_readonly("padding", &EncodeOptions::padding)
        .def_readonly("pad_length", &EncodeOptions::pad_length)
        .def_readonly("pad_to_multiple_of", &EncodeOptions::pad_to_multiple_of)
        .def_readonly("pad_left", &EncodeOptions::pad_left)
        .def_readonly("num_threads", &EncodeOptions::num_threads)
        .def_readonly("split_special_tokens", &EncodeOptions::split_special_tokens);
    py::class_<PyTokenizer>(m, "Tokenizer")
        .def(py::init<std::vector<std::string>, uint32_t, uint32_t, uint32_t, uint32_t,
                      std::vector<std::pair<std::u32string, uint32_t>>, bool, bool, bool, size_t, std::string>(),
             py::kw_only(), py::arg("vocab"), py::arg("unk_id"), py::arg("cls_id"), py::arg("sep_id"),
             py::arg("pad_id"), py::arg("specials"), py::arg("lowercase"), py::arg("strip_accents"),
             py::arg("handle_chinese_chars"), py::arg("max_input_chars_per_word"), py::arg("prefix"))
        .def("tokenize", &PyTokenizer::tokenize, py::arg("text"), py::arg("split_special_tokens") = false,
             "Token strings of one text (no [CLS]/[SEP] added; special tokens written in the text are kept whole "
             "unless split_special_tokens).")
        .def("encode", &PyTokenizer::encode, py::arg("texts"), py::kw_only(), py::arg("pairs"), py::arg("options"),
             py::arg("as_numpy"), py::arg("want"),
             "The rows of a batch (pairs: a list as long as texts, or None) as numpy arrays or Python lists: a dict "
             "of the outputs in want (WANT_* bits; input_ids always).")
        // encode, its arguments by position: what fastbert.BertTokenizer calls on every call. pybind11 matches
        // keywords by copying the kwargs dict and looking each name up as a new str (about 350 ns for these
        // four: a third of the time of encoding one short text).
        .def("encode_positional", &PyTokenizer::encode, py::arg("texts"), py::arg("pairs"), py::arg("options"),
             py::arg("as_numpy"), py::arg("want"), "encode(), its arguments by position (no keyword matching).")
        .def_property_readonly("vocab_size", &PyTokenizer::vocab_size);
}
