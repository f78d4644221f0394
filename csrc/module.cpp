// pybind11 entry point for fastbert._tokenizer: argument checking with the GIL held, the batch encoded
// with the GIL released, then the rows written straight into numpy buffers (GIL released) or into Python
// lists built from cached int objects (one INCREF per token, no allocation for ids).
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

enum Want : int { kIds = 1, kTypes = 2, kAttention = 4, kSpecial = 8, kOffsets = 16 };

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

std::vector<TextView> views_of(const py::list& texts, const char* what) {
    std::vector<TextView> out;
    out.reserve(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) out.push_back(view_of(PyList_GET_ITEM(texts.ptr(), i), i, what));
    return out;
}

// Calls f(id, type_id, special, start, end) for each token of the row in order (no padding).
template <class F>
void for_each_token(const Encoder& enc, const Row& r, bool add_special, F&& f) {
    if (add_special) f(enc.cls_id(), 0, 1, 0u, 0u);
    for (uint32_t k = 0; k < r.a_len; ++k) f(r.a[k].id, 0, 0, r.a[k].start, r.a[k].end);
    if (add_special) f(enc.sep_id(), 0, 1, 0u, 0u);
    if (r.has_pair) {
        for (uint32_t k = 0; k < r.b_len; ++k) f(r.b[k].id, 1, 0, r.b[k].start, r.b[k].end);
        if (add_special) f(enc.sep_id(), 1, 1, 0u, 0u);
    }
}

// Tokens of a row that get type id 0: [CLS] A [SEP] (the rest, B [SEP], gets 1).
inline size_t r_first_len(const Row& r, bool add_special) { return r.a_len + (add_special ? 2 : 0); }

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

// Python lists of the rows, chunk by chunk (GIL held): ids from the cached ints, type ids / masks from the
// 0 and 1 objects with their references added once per row.
class ListWriter {
  public:
    ListWriter(const Encoder& enc, const std::vector<py::object>& ints, const EncodeParams& p, int want,
               size_t n_rows_hint)
        : enc_(enc), ints_(ints), p_(p), want_(want) {
        zero_ = ints_[0].ptr();
        one_ = ints_.size() > 1 ? ints_[1].ptr() : (one_holder_ = py::int_(1)).ptr();
        zero_pair_ = py::make_tuple(0, 0);
        for (int k = 0; k < kOutputs; ++k)
            if (want_ & (1 << k)) cols_[k].reserve(n_rows_hint);
    }

    void add(const Chunk& c, uint32_t padded_length) {
        for (const Row& row : c.rows) add_row(row, std::max(row.length, padded_length));
    }

    // The outputs asked for, as lists of the row lists.
    py::dict finish() {
        static const char* const names[kOutputs] = {"input_ids", "token_type_ids", "attention_mask",
                                                    "special_tokens_mask", "offset_mapping"};
        py::dict out;
        for (int k = 0; k < kOutputs; ++k) {
            if (!(want_ & (1 << k))) continue;
            std::vector<py::object>& col = cols_[k];
            py::list l(col.size());
            for (size_t i = 0; i < col.size(); ++i) PyList_SET_ITEM(l.ptr(), i, col[i].release().ptr());
            col.clear();
            out[names[k]] = l;
        }
        return out;
    }

  private:
    static constexpr int kOutputs = 5;  // bit k of `want` (Want) asks for output k

    // A new list of n items, to be filled; kept (and released on error) by cols_[k].
    PyObject** new_list(int k, size_t n) {
        PyObject* l = PyList_New(static_cast<Py_ssize_t>(n));
        if (!l) throw py::error_already_set();
        cols_[k].push_back(py::reinterpret_steal<py::object>(l));
        return reinterpret_cast<PyListObject*>(l)->ob_item;
    }

    // n more references to obj, written into lists without INCREF.
    static void add_refs(PyObject* obj, size_t n) {
        if (n) Py_SET_REFCNT(obj, Py_REFCNT(obj) + static_cast<Py_ssize_t>(n));
    }

    void add_row(const Row& row, uint32_t L) {
        const bool add_special = p_.add_special_tokens;
        const size_t pad = L - row.length;
        const size_t tok_col = p_.pad_left ? pad : 0;
        const size_t pad_col = p_.pad_left ? 0 : row.length;
        if (want_ & kIds) {
            PyObject** items = new_list(0, L);
            PyObject** it = items + tok_col;
            const py::object* ints = ints_.data();
            for_each_token(enc_, row, add_special, [&](uint32_t id, int, int, uint32_t, uint32_t) {
                PyObject* v = ints[id].ptr();
                Py_INCREF(v);
                *it++ = v;
            });
            PyObject* pad_id = ints[enc_.pad_id()].ptr();
            std::fill(items + pad_col, items + pad_col + pad, pad_id);
            add_refs(pad_id, pad);
        }
        if (want_ & kTypes) {
            PyObject** it = new_list(1, L);
            const size_t n_first = r_first_len(row, add_special);
            std::fill(it + tok_col, it + tok_col + n_first, zero_);
            std::fill(it + tok_col + n_first, it + tok_col + row.length, one_);
            std::fill(it + pad_col, it + pad_col + pad, zero_);
            add_refs(zero_, n_first + pad);
            add_refs(one_, row.length - n_first);
        }
        if (want_ & kAttention) {
            PyObject** it = new_list(2, L);
            std::fill(it + tok_col, it + tok_col + row.length, one_);
            std::fill(it + pad_col, it + pad_col + pad, zero_);
            add_refs(one_, row.length);
            add_refs(zero_, pad);
        }
        if (want_ & kSpecial) {
            PyObject** it = new_list(3, L);
            size_t col = tok_col, n_special = pad;
            for_each_token(enc_, row, add_special, [&](uint32_t, int, int sp, uint32_t, uint32_t) {
                it[col++] = sp ? one_ : zero_;
                n_special += sp;
            });
            std::fill(it + pad_col, it + pad_col + pad, one_);
            add_refs(one_, n_special);
            add_refs(zero_, L - n_special);
        }
        if (want_ & kOffsets) {
            PyObject** it = new_list(4, L);  // NULL items until written: safe to release half-filled
            size_t col = tok_col;
            for_each_token(enc_, row, add_special, [&](uint32_t, int, int, uint32_t s, uint32_t e) {
                PyObject* t = PyTuple_New(2);
                if (!t) throw py::error_already_set();
                PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLong(s));
                PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLong(e));
                PyObject_GC_UnTrack(t);  // ints only: what the cyclic GC would do itself
                it[col++] = t;
            });
            std::fill(it + pad_col, it + pad_col + pad, zero_pair_.ptr());
            add_refs(zero_pair_.ptr(), pad);
        }
        // Ints (and tuples of ints) only: no cycle can go through these lists (see the top of the file).
        for (int k = 0; k < kOutputs; ++k)
            if (want_ & (1 << k)) PyObject_GC_UnTrack(cols_[k].back().ptr());
    }

    const Encoder& enc_;
    const std::vector<py::object>& ints_;
    const EncodeParams& p_;
    const int want_;
    PyObject *zero_, *one_;
    py::object one_holder_;
    py::tuple zero_pair_;
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

    py::list tokenize(py::object text) {
        TextView v = view_of(text.ptr(), 0, "text");
        std::vector<Piece> pieces;
        {
            py::gil_scoped_release release;
            enc_->encode(v, pieces);
        }
        py::list out(pieces.size());
        for (size_t i = 0; i < pieces.size(); ++i) {
            const std::string& s = enc_->vocab()[pieces[i].id];
            out[i] = py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
        }
        return out;
    }

    py::dict encode(py::list texts, py::object pairs, bool add_special_tokens, int truncation, int64_t max_length,
                    int64_t stride, bool truncate_left, bool return_overflowing, int padding, int64_t pad_length,
                    int64_t pad_to_multiple_of, bool pad_left, int num_threads, bool as_numpy, int want) {
        std::vector<TextView> first = views_of(texts, "text item");
        std::vector<TextView> second;
        if (!pairs.is_none()) {
            py::list pl = pairs.cast<py::list>();
            if (pl.size() != texts.size())
                throw py::value_error("got " + std::to_string(texts.size()) + " texts but " +
                                      std::to_string(pl.size()) + " text pairs");
            second = views_of(pl, "text_pair item");
        }
        if (truncation < 0 || truncation > 3) throw py::value_error("unknown truncation code");
        if (stride < 0) throw py::value_error("stride must be >= 0");
        EncodeParams p;
        p.add_special_tokens = add_special_tokens;
        p.truncation = static_cast<Truncation>(truncation);
        p.max_length = max_length;
        p.stride = stride;
        p.truncate_left = truncate_left;
        p.return_overflowing = return_overflowing;
        p.padding = padding;
        p.pad_length = pad_length;
        p.pad_to_multiple_of = pad_to_multiple_of;
        p.pad_left = pad_left;
        p.num_threads = num_threads;

        BatchResult res;
        py::dict out;
        if (as_numpy) {
            {
                py::gil_scoped_release release;
                enc_->encode_batch(first, second, p, res);
            }
            if (!res.error.empty()) throw py::value_error(res.error);
            out = to_numpy(res, p, want);
        } else {
            ListWriter lists(*enc_, ints_, p, want, first.size());
            // Padding to the longest row needs every row first; otherwise each chunk is written as it comes.
            const bool as_they_come = p.padding != 1;
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
        if (return_overflowing) {
            py::array_t<int64_t> m(static_cast<py::ssize_t>(res.n_rows));
            auto* d = m.mutable_data();
            for (const Chunk& c : res.chunks)
                for (size_t i = 0; i < c.rows.size(); ++i) d[c.row_base + i] = c.rows[i].sample;
            out["overflow_to_sample_mapping"] = as_numpy ? py::object(m) : py::object(m.attr("tolist")());
        }
        return out;
    }

    size_t vocab_size() const { return enc_->vocab().size(); }

  private:
    py::dict to_numpy(const BatchResult& res, const EncodeParams& p, int want) {
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
        const auto shape = std::vector<py::ssize_t>{static_cast<py::ssize_t>(R), static_cast<py::ssize_t>(L)};
        // Only the arrays asked for are allocated and written.
        py::array_t<int64_t> ids(shape), types, attn, special, offsets;
        if (want & kTypes) types = py::array_t<int64_t>(shape);
        if (want & kAttention) attn = py::array_t<int64_t>(shape);
        if (want & kSpecial) special = py::array_t<int64_t>(shape);
        if (want & kOffsets) offsets = py::array_t<int64_t>(std::vector<py::ssize_t>{shape[0], shape[1], 2});
        int64_t* pi = ids.mutable_data();
        int64_t* pt = (want & kTypes) ? types.mutable_data() : nullptr;
        int64_t* pa = (want & kAttention) ? attn.mutable_data() : nullptr;
        int64_t* ps = (want & kSpecial) ? special.mutable_data() : nullptr;
        int64_t* po = (want & kOffsets) ? offsets.mutable_data() : nullptr;
        {
            py::gil_scoped_release release;
            const int64_t pad_id = enc_->pad_id();
            auto fill = [&](const Chunk& c) {
                for (size_t i = 0; i < c.rows.size(); ++i) {
                    const Row& row = c.rows[i];
                    const size_t pad = L - row.length;
                    const size_t row_begin = (c.row_base + i) * L;
                    const size_t tok_col = row_begin + (p.pad_left ? pad : 0);
                    const size_t pad_col = row_begin + (p.pad_left ? 0 : row.length);
                    size_t col = tok_col;
                    if (po || ps) {
                        for_each_token(*enc_, row, p.add_special_tokens,
                                       [&](uint32_t id, int, int sp, uint32_t s, uint32_t e) {
                                           pi[col] = id;
                                           if (ps) ps[col] = sp;
                                           if (po) {
                                               po[2 * col] = s;
                                               po[2 * col + 1] = e;
                                           }
                                           ++col;
                                       });
                    } else {
                        for_each_token(*enc_, row, p.add_special_tokens,
                                       [&](uint32_t id, int, int, uint32_t, uint32_t) { pi[col++] = id; });
                    }
                    if (pt) {
                        // type ids: 0 up to the end of the first sequence (and its [SEP]), 1 after
                        const size_t n_first = r_first_len(row, p.add_special_tokens);
                        std::fill(pt + tok_col, pt + tok_col + n_first, 0);
                        std::fill(pt + tok_col + n_first, pt + tok_col + row.length, 1);
                        std::fill(pt + pad_col, pt + pad_col + pad, 0);
                    }
                    if (pa) {
                        std::fill(pa + tok_col, pa + tok_col + row.length, 1);
                        std::fill(pa + pad_col, pa + pad_col + pad, 0);
                    }
                    std::fill(pi + pad_col, pi + pad_col + pad, pad_id);
                    if (ps) std::fill(ps + pad_col, ps + pad_col + pad, 1);
                    if (po) std::fill(po + 2 * pad_col, po + 2 * (pad_col + pad), 0);
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
        if (want & kIds) out["input_ids"] = ids;
        if (want & kTypes) out["token_type_ids"] = types;
        if (want & kAttention) out["attention_mask"] = attn;
        if (want & kSpecial) out["special_tokens_mask"] = special;
        if (want & kOffsets) out["offset_mapping"] = offsets;
        return out;
    }

    std::unique_ptr<Encoder> enc_;
    std::vector<py::object> ints_;
};

}  // namespace
}  // namespace fastbert

PYBIND11_MODULE(_tokenizer, m) {
    using fastbert::PyTokenizer;
    m.doc() = "fastbert C++ WordPiece tokenizer (BertNormalizer, BertPreTokenizer, Fast WordPiece, template)";
    m.attr("WANT_IDS") = int(fastbert::kIds);
    m.attr("WANT_TYPES") = int(fastbert::kTypes);
    m.attr("WANT_ATTENTION") = int(fastbert::kAttention);
    m.attr("WANT_SPECIAL") = int(fastbert::kSpecial);
    m.attr("WANT_OFFSETS") = int(fastbert::kOffsets);
    py::class_<PyTokenizer>(m, "Tokenizer")
        .def(py::init<std::vector<std::string>, uint32_t, uint32_t, uint32_t, uint32_t,
                      std::vector<std::pair<std::u32string, uint32_t>>, bool, bool, bool, size_t, std::string>(),
             py::arg("vocab"), py::arg("unk_id"), py::arg("cls_id"), py::arg("sep_id"), py::arg("pad_id"),
             py::arg("specials"), py::arg("lowercase"), py::arg("strip_accents"),
             py::arg("handle_chinese_chars"), py::arg("max_input_chars_per_word"), py::arg("prefix"))
        .def("tokenize", &PyTokenizer::tokenize, py::arg("text"),
             "Token strings of one text (no [CLS]/[SEP] added; special tokens written in the text are kept).")
        .def("encode", &PyTokenizer::encode, py::arg("texts"), py::arg("pairs"), py::arg("add_special_tokens"),
             py::arg("truncation"), py::arg("max_length"), py::arg("stride"), py::arg("truncate_left"),
             py::arg("return_overflowing"), py::arg("padding"), py::arg("pad_length"),
             py::arg("pad_to_multiple_of"), py::arg("pad_left"), py::arg("num_threads"), py::arg("as_numpy"),
             py::arg("want"))
        .def_property_readonly("vocab_size", &PyTokenizer::vocab_size);
}
