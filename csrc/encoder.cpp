// The pipeline around the stages: special tokens written in the text, threads over a batch, truncation
// with overflowing rows, the [CLS] A [SEP] (B [SEP]) template and padding lengths. Semantics follow the
// `tokenizers` library (utils/truncation.rs, Encoding::truncate / merge_with, TemplateProcessing) as
// transformers drives it; the comments say where its behaviour is surprising.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "normalizer.h"
#include "tokenizer.h"

namespace fastbert {

Encoder::Encoder(const std::vector<std::string>& vocab, NormalizerOptions opt, uint32_t unk_id, uint32_t cls_id,
                 uint32_t sep_id, uint32_t pad_id, std::vector<SpecialToken> specials, size_t max_chars,
                 const std::string& prefix)
    : vocab_(vocab),
      normalizer_(opt),
      wordpiece_(vocab, unk_id, prefix, max_chars),
      unk_id_(unk_id),
      cls_id_(cls_id),
      sep_id_(sep_id),
      pad_id_(pad_id),
      specials_(std::move(specials)) {
    // Longest first, so the first match at a position is the longest (leftmost-longest matching).
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const SpecialToken& a, const SpecialToken& b) { return a.text.size() > b.text.size(); });
    for (const SpecialToken& s : specials_) {
        if (s.text.empty()) continue;
        const uint32_t c = s.text[0];
        if (c < 128)
            special_first_ascii_[c] = true;
        else
            special_first_other_.push_back(c);
    }
}

template <class Char>
void Encoder::encode_impl(const Char* s, size_t n, std::vector<Piece>& out, bool split_specials) const {
    thread_local std::vector<uint8_t> bytes;
    thread_local std::vector<uint32_t> orig;
    // One word stays pending while the next one is prepared (its table entries prefetched), so the cache
    // misses of the two overlap. The pending word is tokenized before split_words returns its buffers.
    struct Pending {
        const uint8_t* w;
        const uint32_t* o;
        size_t len;
        uint64_t hash;
    } pending{nullptr, nullptr, 0, 0};
    auto run_pending = [&]() {
        if (pending.len) {
            wordpiece_.tokenize(pending.w, pending.o, pending.len, pending.hash, out);
            pending.len = 0;
        }
    };
    auto on_word = [&](const uint8_t* w, const uint32_t* o, size_t len) {
        const uint64_t hash = wordpiece_.prepare(w, len);
        run_pending();
        pending = Pending{w, o, len, hash};
    };
    // Special tokens are matched on the original text (they are not normalized), leftmost-longest; with
    // split_specials (transformers' split_special_tokens) they are not matched at all.
    size_t seg = 0;
    if (!split_specials && !specials_.empty()) {
        const bool* const ascii_first = special_first_ascii_;
        const bool any_other = !special_first_other_.empty();
        for (size_t i = 0; i < n; ++i) {
            const uint32_t c = static_cast<uint32_t>(s[i]);
            if (c < 128) {
                if (!ascii_first[c]) continue;
            } else if (!any_other ||
                       std::find(special_first_other_.begin(), special_first_other_.end(), c) ==
                           special_first_other_.end()) {
                continue;
            }
            for (const SpecialToken& sp : specials_) {
                const size_t m = sp.text.size();
                if (m == 0 || m > n - i) continue;
                size_t k = 0;
                while (k < m && static_cast<uint32_t>(s[i + k]) == static_cast<uint32_t>(sp.text[k])) ++k;
                if (k != m) continue;
                normalizer_.split_words(s, seg, i, bytes, orig, on_word);
                run_pending();
                out.push_back({sp.id, static_cast<uint32_t>(i), static_cast<uint32_t>(i + m)});
                i += m - 1;
                seg = i + 1;
                break;
            }
        }
    }
    normalizer_.split_words(s, seg, n, bytes, orig, on_word);
    run_pending();
}

void Encoder::encode(const TextView& t, std::vector<Piece>& out, bool split_specials) const {
    out.clear();
    out.reserve(t.length / 4 + 8);
    encode_append(t, out, split_specials);
}

void Encoder::encode_append(const TextView& t, std::vector<Piece>& out, bool split_specials) const {
    switch (t.kind) {
        case 1: encode_impl(static_cast<const uint8_t*>(t.data), t.length, out, split_specials); break;
        case 2: encode_impl(static_cast<const uint16_t*>(t.data), t.length, out, split_specials); break;
        default: encode_impl(static_cast<const uint32_t*>(t.data), t.length, out, split_specials); break;
    }
}

namespace {

using Range = std::pair<uint32_t, uint32_t>;

// Encoding::truncate: the kept window first, then the overflowing windows, each max_len long and
// overlapping the previous one by stride. max_len == 0 keeps nothing and overflows everything.
bool split_windows(uint32_t len, uint32_t max_len, uint32_t stride, bool left, std::vector<Range>& parts,
                   std::string& error) {
    parts.clear();
    if (max_len >= len) {
        parts.push_back({0, len});
        return true;
    }
    if (max_len == 0) {
        parts.push_back({0, 0});
        parts.push_back({0, len});
        return true;
    }
    if (stride >= max_len) {
        error = "stride (" + std::to_string(stride) + ") must be strictly less than the truncation length (" +
                std::to_string(max_len) + ", which is max_length minus the special tokens)";
        return false;
    }
    const uint32_t step = max_len - stride;
    if (!left) {
        for (uint32_t start = 0; start < len; start += step) {
            const uint32_t stop = std::min(start + max_len, len);
            parts.push_back({start, stop});
            if (stop == len) break;
        }
    } else {
        for (int64_t last = static_cast<int64_t>(len) - 1; last >= 0; last -= step) {
            const uint32_t stop = static_cast<uint32_t>(last) + 1;
            const uint32_t start = stop < max_len ? 0 : stop - max_len;
            parts.push_back({start, stop});
            if (start == 0) break;
        }
    }
    return true;
}

// The padded length for rows of `length` tokens: rounded up to a multiple of pad_to_multiple_of.
uint32_t pad_target(uint32_t length, const EncodeOptions& p) {
    if (p.pad_to_multiple_of > 0 && length % p.pad_to_multiple_of != 0)
        length += static_cast<uint32_t>(p.pad_to_multiple_of - length % p.pad_to_multiple_of);
    return length;
}

}  // namespace

std::string Encoder::layout_rows(uint32_t sample, const Piece* a_tokens, size_t n1, const Piece* b_tokens,
                                 size_t n2, bool has_pair, const EncodeOptions& p, std::vector<Row>& rows) const {
    uint32_t t1 = static_cast<uint32_t>(n1), t2 = static_cast<uint32_t>(n2);
    bool truncate = false;
    const int64_t n_added = p.add_special_tokens ? (has_pair ? 3 : 2) : 0;
    // As observed from transformers + tokenizers: a max_length below the special tokens disables truncation.
    if (p.truncation != Truncation::DoNotTruncate && p.max_length >= n_added) {
        const size_t budget = static_cast<size_t>(p.max_length - n_added);
        const size_t total = n1 + n2;
        if (budget == 0) {
            truncate = true;
            t1 = t2 = 0;
        } else if (total > budget) {
            truncate = true;
            const size_t to_remove = total - budget;
            if (p.truncation == Truncation::LongestFirst) {
                if (has_pair) {
                    size_t a = n1, b = n2;
                    const bool swap = a > b;
                    if (swap) std::swap(a, b);  // a is the shorter
                    b = a > budget ? a : std::max(a, budget - a);
                    if (a + b > budget) {
                        a = budget / 2;
                        b = a + budget % 2;
                    }
                    if (swap) std::swap(a, b);
                    t1 = static_cast<uint32_t>(a);
                    t2 = static_cast<uint32_t>(b);
                } else {
                    t1 = static_cast<uint32_t>(budget);
                }
            } else {
                const bool first = p.truncation == Truncation::OnlyFirst;
                if (!first && !has_pair) return "Truncation error: Second sequence not provided";
                const size_t target = first ? n1 : n2;
                if (target <= to_remove)
                    return "Truncation error: Sequence to truncate too short to respect the provided max_length";
                (first ? t1 : t2) = static_cast<uint32_t>(target - to_remove);
            }
        }
    }
    const uint32_t special = p.add_special_tokens ? (has_pair ? 3 : 2) : 0;
    auto add = [&](const Range& a, const Range& b) {
        const bool overflow = !rows.empty() && rows.back().sample == sample;
        const uint32_t a_len = a.second - a.first, b_len = has_pair ? b.second - b.first : 0;
        rows.push_back(Row{a_tokens + a.first, b_tokens + b.first, a_len, b_len, sample, special + a_len + b_len,
                           has_pair, overflow});
    };
    if (!truncate) {  // one row, the whole sample (no allocation: the common case)
        add({0, static_cast<uint32_t>(n1)}, {0, static_cast<uint32_t>(n2)});
        return {};
    }
    std::vector<Range> pa, pb;
    std::string error;
    if (!split_windows(static_cast<uint32_t>(n1), t1, static_cast<uint32_t>(p.stride), p.truncate_left, pa, error) ||
        !split_windows(static_cast<uint32_t>(n2), t2, static_cast<uint32_t>(p.stride), p.truncate_left, pb, error))
        return error;
    add(pa[0], pb[0]);
    if (!p.return_overflowing) return {};
    // Encoding::merge_with order: each overflow of A with B, then with each overflow of B; then A with
    // each overflow of B.
    if (!has_pair) {
        for (size_t i = 1; i < pa.size(); ++i) add(pa[i], pb[0]);
        return {};
    }
    for (size_t i = 1; i < pa.size(); ++i) {
        add(pa[i], pb[0]);
        for (size_t j = 1; j < pb.size(); ++j) add(pa[i], pb[j]);
    }
    for (size_t j = 1; j < pb.size(); ++j) add(pa[0], pb[j]);
    return {};
}

void Encoder::encode_chunk(const std::vector<TextView>& first, const std::vector<TextView>& second,
                           const EncodeOptions& p, Chunk& c) const {
    const bool pairs = !second.empty();
    const size_t n = c.end - c.begin;
    size_t chars = 0;
    for (size_t i = c.begin; i < c.end; ++i) chars += first[i].length + (pairs ? second[i].length : 0);
    // Where each sequence's tokens start in c.pieces: sample i's first sequence is sequence 2i (pairs) or i.
    const size_t n_seq = pairs ? 2 * n : n;
    std::vector<uint32_t> at(n_seq + 1);
    c.pieces.clear();
    c.pieces.reserve(chars / 3 + 2 * n + 16);
    size_t s = 0;
    for (size_t i = c.begin; i < c.end; ++i) {
        at[s++] = static_cast<uint32_t>(c.pieces.size());
        encode_append(first[i], c.pieces, p.split_special_tokens);
        if (pairs) {
            at[s++] = static_cast<uint32_t>(c.pieces.size());
            encode_append(second[i], c.pieces, p.split_special_tokens);
        }
    }
    at[n_seq] = static_cast<uint32_t>(c.pieces.size());
    // c.pieces no longer moves: the rows can point into it.
    c.rows.clear();
    c.rows.reserve(n);
    const Piece* base = c.pieces.data();
    for (size_t k = 0; k < n; ++k) {
        const size_t sa = pairs ? 2 * k : k;
        const Piece* a = base + at[sa];
        const size_t n1 = at[sa + 1] - at[sa];
        const Piece* b = pairs ? base + at[sa + 1] : a;
        const size_t n2 = pairs ? at[sa + 2] - at[sa + 1] : 0;
        std::string err = layout_rows(static_cast<uint32_t>(c.begin + k), a, n1, b, n2, pairs, p, c.rows);
        if (!err.empty()) {
            c.error = std::move(err);
            return;
        }
    }
}

void Encoder::encode_batch(const std::vector<TextView>& first, const std::vector<TextView>& second,
                           const EncodeOptions& p, BatchResult& res, const ChunkCallback& on_chunk) const {
    const size_t n = first.size();
    const bool pairs = !second.empty();
    res.chunks.clear();
    res.n_rows = 0;
    res.error.clear();
    res.padded_length = 0;
    if (p.padding == Padding::MaxLength)
        res.padded_length = pad_target(static_cast<uint32_t>(std::max<int64_t>(0, p.pad_length)), p);

    size_t total_chars = 0;
    for (size_t i = 0; i < n; ++i) total_chars += first[i].length + (pairs ? second[i].length : 0);
    size_t threads = static_cast<size_t>(std::max(1, p.num_threads));
    // Threads only pay off on enough text.
    threads = std::min(threads, std::max<size_t>(1, std::min(n, total_chars / kCharsPerThread)));
    // Chunks: consecutive samples, at most kChunkTexts of them and about chunk_chars characters (an eighth
    // of each thread's share, within [1024, kChunkChars]): small enough that every thread gets many (a thread
    // the OS delays holds up little work) and that the caller can start on the first one early; large enough
    // that handing them out costs nothing.
    constexpr size_t kChunkTexts = 256, kChunkChars = 32768;
    const size_t chunk_chars =
        std::min(kChunkChars, std::max<size_t>(1024, total_chars / std::max<size_t>(1, threads * 8)));
    for (size_t i = 0; i < n;) {
        Chunk c;
        c.begin = static_cast<uint32_t>(i);
        size_t chars = 0;
        for (; i < n && i - c.begin < kChunkTexts && chars < chunk_chars; ++i)
            chars += first[i].length + (pairs ? second[i].length : 0);
        c.end = static_cast<uint32_t>(i);
        res.chunks.push_back(std::move(c));
    }
    const size_t n_chunks = res.chunks.size();
    threads = std::min(threads, std::max<size_t>(1, n_chunks));

    // Chunks are claimed in order from `next`; `done` says which are finished. The calling thread hands
    // finished chunks on in order and otherwise encodes chunks itself; it only sleeps when the chunk it
    // needs next is being encoded by another thread.
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::unique_ptr<std::atomic<bool>[]> done(new std::atomic<bool>[n_chunks]);
    for (size_t k = 0; k < n_chunks; ++k) done[k].store(false, std::memory_order_relaxed);
    std::mutex mutex;
    std::condition_variable finished;
    auto encode_next = [&]() -> bool {
        const size_t j = next.fetch_add(1);
        if (j >= n_chunks || stop.load(std::memory_order_relaxed)) return false;
        Chunk& c = res.chunks[j];
        try {
            encode_chunk(first, second, p, c);
        } catch (const std::exception& e) {  // out of memory: fail the batch, not the process
            c.error = e.what();
        }
        {
            std::lock_guard<std::mutex> lock(mutex);
            done[j].store(true, std::memory_order_release);
        }
        finished.notify_all();
        return true;
    };
    struct Pool {  // joined however the calling thread leaves (on_chunk may throw)
        std::vector<std::thread> threads;
        std::atomic<bool>& stop;
        ~Pool() {
            stop.store(true);
            for (auto& t : threads) t.join();
        }
    } pool{{}, stop};
    for (size_t t = 1; t < threads; ++t)
        pool.threads.emplace_back([&]() {
            while (encode_next()) {
            }
        });
    for (size_t k = 0; k < n_chunks; ++k) {
        while (!done[k].load(std::memory_order_acquire)) {
            if (encode_next()) continue;
            std::unique_lock<std::mutex> lock(mutex);
            finished.wait(lock, [&]() { return done[k].load(std::memory_order_acquire); });
        }
        Chunk& c = res.chunks[k];
        if (!c.error.empty()) {
            res.error = c.error;
            return;
        }
        c.row_base = res.n_rows;
        res.n_rows += c.rows.size();
        if (on_chunk) on_chunk(c);
    }
    if (p.padding == Padding::Longest) {
        // tokenizers pads to the longest main row; overflowing rows are padded to that (never cut)
        uint32_t longest = 0;
        for (const Chunk& c : res.chunks)
            for (const Row& r : c.rows)
                if (!r.overflow) longest = std::max(longest, r.length);
        res.padded_length = pad_target(longest, p);
    }
}

}  // namespace fastbert
