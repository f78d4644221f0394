// pybind11 entry point for fastbert._tokenizer: argument checking with the GIL held, the batch encoded
// with the GIL released, then the rows written straight into numpy buffers (GIL released) or into Python
// lists built from cached int objects (one INCREF per token, no allocation for ids).
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
void for_each_token(const Encoder& enc, const BatchResult& res, const Row& r, bool add_special, F&& f) {
    const std::vector<Piece>& a = res.first[r.sample];
    if (add_special) f(enc.cls_id(), 0, 1, 0u, 0u);
    for (uint32_t k = r.a_begin; k < r.a_end; ++k) f(a[k].id, 0, 0, a[k].start, a[k].end);
    if (add_special) f(enc.sep_id(), 0, 1, 0u, 0u);
    if (r.has_pair) {
        const std::vector<Piece>& b = res.second[r.sample];
        for (uint32_t k = r.b_begin; k < r.b_end; ++k) f(b[k].id, 1, 0, b[k].start, b[k].end);
        if (add_special) f(enc.sep_id(), 1, 1, 0u, 0u);
    }
}

// Tokens of a row that get type id 0: [CLS] A [SEP] (the rest, B [SEP], gets 1).
inline size_t r_first_len(const Row& r, bool add_special) {
    return (r.a_end - r.a_begin) + (add_special ? 2 : 0);
}

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
        std::vector<TextView> first = views_of(texts, "text");
        std::vector<TextView> second;
        if (!pairs.is_none()) {
            py::list pl = pairs.cast<py::list>();
            if (pl.size() != texts.size())
                throw py::value_error("got " + std::to_string(texts.size()) + " texts but " +
                                      std::to_string(pl.size()) + " text pairs");
            second = views_of(pl, "text_pair");
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
        {
            py::gil_scoped_release release;
            enc_->encode_batch(first, second, p, res);
        }
        if (!res.error.empty()) throw py::value_error(res.error);
        py::dict out = as_numpy ? to_numpy(res, p, want) : to_lists(res, p, want);
        if (return_overflowing) {
            py::array_t<int64_t> m(static_cast<py::ssize_t>(res.rows.size()));
            auto* d = m.mutable_data();
            for (size_t i = 0; i < res.rows.size(); ++i) d[i] = res.rows[i].sample;
            out["overflow_to_sample_mapping"] = as_numpy ? py::object(m) : py::object(m.attr("tolist")());
        }
        return out;
    }

    size_t vocab_size() const { return enc_->vocab().size(); }

  private:
    py::dict to_numpy(const BatchResult& res, const EncodeParams& p, int want) {
        const size_t R = res.rows.size();
        uint32_t L = res.rows.empty() ? res.padded_length : std::max(res.rows[0].length, res.padded_length);
        for (const Row& r : res.rows)
            if (std::max(r.length, res.padded_length) != L)
                throw py::value_error(
                    "the rows have different lengths, so they cannot be stacked into one array: "
                    "pass padding=True or padding='max_length' (and truncation=True to cap the length)");
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
            auto fill = [&](size_t begin, size_t end) {
                for (size_t r = begin; r < end; ++r) {
                    const Row& row = res.rows[r];
                    const size_t pad = L - row.length;
                    const size_t row_begin = r * L;
                    const size_t tok_col = row_begin + (p.pad_left ? pad : 0);
                    const size_t pad_col = row_begin + (p.pad_left ? 0 : row.length);
                    size_t col = tok_col;
                    if (po || ps) {
                        for_each_token(*enc_, res, row, p.add_special_tokens,
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
                        for_each_token(*enc_, res, row, p.add_special_tokens,
                                       [&](uint32_t id, int, int, uint32_t, uint32_t) { pi[col++] = id; });
                    }
                    if (pt) {
                        // type ids: 0 up to the end of the first sequence (and its [SEP]), 1 after
                        const size_t n_first = (r_first_len(row, p.add_special_tokens));
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
            const size_t threads = std::min<size_t>(std::max(1, p.num_threads), R * L / 65536 + 1);
            if (threads <= 1) {
                fill(0, R);
            } else {
                // Rows handed out in small chunks, so that a thread the OS delays holds up little work.
                std::atomic<size_t> next{0};
                const size_t chunk = std::max<size_t>(1, R / (threads * 8));
                auto loop = [&]() {
                    while (true) {
                        const size_t b = next.fetch_add(chunk);
                        if (b >= R) break;
                        fill(b, std::min(R, b + chunk));
                    }
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

    py::dict to_lists(const BatchResult& res, const EncodeParams& p, int want) {
        const size_t R = res.rows.size();
        PyObject* zero = ints_[0].ptr();
        PyObject* one = ints_.size() > 1 ? ints_[1].ptr() : nullptr;
        py::object one_holder;
        if (!one) {
            one_holder = py::int_(1);
            one = one_holder.ptr();
        }
        PyObject* pad_id = ints_[enc_->pad_id()].ptr();
        py::list l_ids(R), l_types(R), l_attn(R), l_special(R), l_offsets(R);
        py::tuple zero_pair = py::make_tuple(0, 0);
        auto new_list = [](size_t n) {
            PyObject* l = PyList_New(static_cast<Py_ssize_t>(n));
            if (!l) throw py::error_already_set();
            return l;
        };
        auto set = [](PyObject* list, size_t i, PyObject* v) {
            Py_INCREF(v);
            PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), v);
        };
        auto items = [](PyObject* list) { return reinterpret_cast<PyListObject*>(list)->ob_item; };
        // References to 0 and 1 written into type ids / attention masks are counted and added once (also
        // when an exception unwinds, before the lists holding them are released).
        struct Refs {
            PyObject* obj;
            Py_ssize_t n = 0;
            ~Refs() {
                if (n) Py_SET_REFCNT(obj, Py_REFCNT(obj) + n);
            }
        } zero_refs{zero}, one_refs{one};
        for (size_t r = 0; r < R; ++r) {
            const Row& row = res.rows[r];
            const uint32_t L = std::max(row.length, res.padded_length);
            const size_t pad = L - row.length;
            PyObject *ids = nullptr, *types = nullptr, *attn = nullptr, *special = nullptr, *offs = nullptr;
            if (want & kIds) ids = new_list(L);
            if (want & kTypes) types = new_list(L);
            if (want & kAttention) attn = new_list(L);
            if (want & kSpecial) special = new_list(L);
            if (want & kOffsets) offs = new_list(L);
            const size_t tok_col = p.pad_left ? pad : 0;
            const size_t pad_col = p.pad_left ? 0 : row.length;
            if (ids) {
                PyObject** it = items(ids) + tok_col;
                for_each_token(*enc_, res, row, p.add_special_tokens,
                               [&](uint32_t id, int, int, uint32_t, uint32_t) {
                                   PyObject* v = ints_[id].ptr();
                                   Py_INCREF(v);
                                   *it++ = v;
                               });
                for (size_t k = pad_col; k < pad_col + pad; ++k) set(ids, k, pad_id);
            }
            if (types) {
                PyObject** it = items(types);
                const size_t n_first = r_first_len(row, p.add_special_tokens);
                std::fill(it + tok_col, it + tok_col + n_first, zero);
                std::fill(it + tok_col + n_first, it + tok_col + row.length, one);
                std::fill(it + pad_col, it + pad_col + pad, zero);
                zero_refs.n += static_cast<Py_ssize_t>(n_first + pad);
                one_refs.n += static_cast<Py_ssize_t>(row.length - n_first);
            }
            if (attn) {
                PyObject** it = items(attn);
                std::fill(it + tok_col, it + tok_col + row.length, one);
                std::fill(it + pad_col, it + pad_col + pad, zero);
                one_refs.n += static_cast<Py_ssize_t>(row.length);
                zero_refs.n += static_cast<Py_ssize_t>(pad);
            }
            if (special || offs) {
                size_t col = tok_col;
                for_each_token(*enc_, res, row, p.add_special_tokens,
                               [&](uint32_t, int, int sp, uint32_t s, uint32_t e) {
                                   if (special) set(special, col, sp ? one : zero);
                                   if (offs) {
                                       PyObject* t = PyTuple_New(2);
                                       PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLong(s));
                                       PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLong(e));
                                       PyObject_GC_UnTrack(t);  // ints only: what the cyclic GC would do itself
                                       PyList_SET_ITEM(offs, static_cast<Py_ssize_t>(col), t);
                                   }
                                   ++col;
                               });
                for (size_t k = pad_col; k < pad_col + pad; ++k) {
                    if (special) set(special, k, one);
                    if (offs) set(offs, k, zero_pair.ptr());
                }
            }
            // The row lists stay tracked by the cyclic GC: a caller may put containers into them later.
            if (ids) PyList_SET_ITEM(l_ids.ptr(), r, ids);
            if (types) PyList_SET_ITEM(l_types.ptr(), r, types);
            if (attn) PyList_SET_ITEM(l_attn.ptr(), r, attn);
            if (special) PyList_SET_ITEM(l_special.ptr(), r, special);
            if (offs) PyList_SET_ITEM(l_offsets.ptr(), r, offs);
        }
        py::dict out;
        if (want & kIds) out["input_ids"] = l_ids;
        if (want & kTypes) out["token_type_ids"] = l_types;
        if (want & kAttention) out["attention_mask"] = l_attn;
        if (want & kSpecial) out["special_tokens_mask"] = l_special;
        if (want & kOffsets) out["offset_mapping"] = l_offsets;
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
