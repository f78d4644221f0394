// WordPiece by Fast WordPiece's LinMaxMatch (Song et al. 2021): a trie of the vocabulary with
// Aho-Corasick-like failure links, so a word is tokenized in one left-to-right pass over its bytes with
// the same result as greedy longest-match-first (MaxMatch).
//
// Two tries share one node array: root_ holds word-initial tokens ("abc"), suffix_root_ holds suffix tokens
// without their prefix ("##abc" is stored as "abc"). For a node v reached from u by byte c:
//   v is a token:  f(v) = suffix_root, F(v) = [v]
//   otherwise:     z = f(u), Z = F(u); while z exists and has no child c: Z += F(z), z = f(z)
//                  f(v) = child(z, c) (none if z is none), F(v) = Z
// Matching: follow children; when a byte has no child, emit F(u) and jump to f(u); when f(u) is none the
// word has no segmentation and becomes [UNK]. At the end of the word keep emitting until suffix_root.
// Vocab tokens are whole UTF-8 strings, so matches always end on character boundaries.
#include <cstring>
#include <deque>
#include <stdexcept>

#include "tokenizer.h"

namespace fastbert {

namespace {
inline uint64_t edge_key(uint32_t node, uint8_t byte) { return (static_cast<uint64_t>(node) << 8) | byte; }
inline size_t edge_hash(uint64_t key) { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20); }
constexpr uint64_t kEmptyKey = ~0ull;

inline void append_utf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}
}  // namespace

WordPiece::WordPiece(const std::vector<std::string>& vocab, uint32_t unk_id, const std::string& prefix,
                     size_t max_input_chars_per_word)
    : unk_id_(unk_id), max_chars_(max_input_chars_per_word) {
    nodes_.resize(2);
    std::fill(std::begin(root_dense_), std::end(root_dense_), kNone);
    std::fill(std::begin(suffix_dense_), std::end(suffix_dense_), kNone);
    rehash(1 << 16);
    for (size_t id = 0; id < vocab.size(); ++id) {
        const std::string& tok = vocab[id];
        if (tok.empty()) continue;
        insert(root_, tok, static_cast<uint32_t>(id));
        if (!prefix.empty() && tok.size() > prefix.size() && tok.compare(0, prefix.size(), prefix) == 0)
            insert(suffix_root_, tok.substr(prefix.size()), static_cast<uint32_t>(id));
    }
    build_failure_links();
}

void WordPiece::rehash(size_t capacity) {
    std::vector<uint64_t> old_keys = std::move(keys_);
    std::vector<uint32_t> old_vals = std::move(vals_);
    keys_.assign(capacity, kEmptyKey);
    vals_.assign(capacity, kNone);
    mask_ = capacity - 1;
    for (size_t i = 0; i < old_keys.size(); ++i) {
        if (old_keys[i] == kEmptyKey) continue;
        size_t h = edge_hash(old_keys[i]) & mask_;
        while (keys_[h] != kEmptyKey) h = (h + 1) & mask_;
        keys_[h] = old_keys[i];
        vals_[h] = old_vals[i];
    }
}

inline uint32_t WordPiece::child(uint32_t node, uint8_t byte) const {
    if (node == root_) return root_dense_[byte];
    if (node == suffix_root_) return suffix_dense_[byte];
    const uint64_t key = edge_key(node, byte);
    size_t h = edge_hash(key) & mask_;
    while (true) {
        const uint64_t k = keys_[h];
        if (k == key) return vals_[h];
        if (k == kEmptyKey) return kNone;
        h = (h + 1) & mask_;
    }
}

uint32_t WordPiece::add_child(uint32_t node, uint8_t byte) {
    uint32_t existing = child(node, byte);
    if (existing != kNone) return existing;
    const uint32_t v = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
    if (node == root_) {
        root_dense_[byte] = v;
    } else if (node == suffix_root_) {
        suffix_dense_[byte] = v;
    } else {
        if ((n_edges_ + 1) * 2 > keys_.size()) rehash(keys_.size() * 2);
        const uint64_t key = edge_key(node, byte);
        size_t h = edge_hash(key) & mask_;
        while (keys_[h] != kEmptyKey) h = (h + 1) & mask_;
        keys_[h] = key;
        vals_[h] = v;
        ++n_edges_;
    }
    return v;
}

void WordPiece::insert(uint32_t root, const std::string& s, uint32_t id) {
    uint32_t node = root;
    for (unsigned char b : s) node = add_child(node, b);
    Record rec{id, static_cast<uint32_t>(s.size())};
    if (nodes_[node].record == kNone) {
        nodes_[node].record = static_cast<uint32_t>(records_.size());
        records_.push_back(rec);
    } else {
        records_[nodes_[node].record] = rec;  // duplicate line in vocab: the last id wins, as in transformers
    }
}

void WordPiece::build_failure_links() {
    // Children lists for the BFS (the hash table cannot be enumerated per node cheaply).
    std::vector<std::vector<std::pair<uint8_t, uint32_t>>> kids(nodes_.size());
    for (int b = 0; b < 256; ++b) {
        if (root_dense_[b] != kNone) kids[root_].push_back({static_cast<uint8_t>(b), root_dense_[b]});
        if (suffix_dense_[b] != kNone) kids[suffix_root_].push_back({static_cast<uint8_t>(b), suffix_dense_[b]});
    }
    for (size_t i = 0; i < keys_.size(); ++i)
        if (keys_[i] != kEmptyKey)
            kids[keys_[i] >> 8].push_back({static_cast<uint8_t>(keys_[i] & 0xFF), vals_[i]});

    std::deque<uint32_t> queue{root_, suffix_root_};
    std::vector<uint32_t> pops;
    while (!queue.empty()) {
        const uint32_t u = queue.front();
        queue.pop_front();
        for (auto [c, v] : kids[u]) {
            queue.push_back(v);
            Node& nv = nodes_[v];
            if (nv.record != kNone) {
                nv.fail = suffix_root_;
                nv.pops_begin = static_cast<uint32_t>(pops_.size());
                pops_.push_back(nv.record);
                nv.pops_end = static_cast<uint32_t>(pops_.size());
                continue;
            }
            pops.assign(pops_.begin() + nodes_[u].pops_begin, pops_.begin() + nodes_[u].pops_end);
            uint32_t z = nodes_[u].fail;
            while (z != kNone && child(z, c) == kNone) {
                pops.insert(pops.end(), pops_.begin() + nodes_[z].pops_begin, pops_.begin() + nodes_[z].pops_end);
                z = nodes_[z].fail;
            }
            Node& nv2 = nodes_[v];  // pops_ may not move nodes_, but keep the reference fresh anyway
            if (z == kNone) {
                nv2.fail = kNone;
                nv2.pops_begin = nv2.pops_end = 0;
            } else {
                nv2.fail = child(z, c);
                nv2.pops_begin = static_cast<uint32_t>(pops_.size());
                pops_.insert(pops_.end(), pops.begin(), pops.end());
                nv2.pops_end = static_cast<uint32_t>(pops_.size());
            }
        }
    }
}

void WordPiece::tokenize(const uint32_t* cps, const uint32_t* orig, size_t n, std::vector<Piece>& out,
                         std::string& bytes, std::vector<uint32_t>& byte_char) const {
    if (n == 0) return;
    if (n > max_chars_) {
        out.push_back({unk_id_, orig[0], orig[n - 1] + 1});
        return;
    }
    bytes.clear();
    byte_char.clear();
    for (size_t k = 0; k < n; ++k) {
        const size_t before = bytes.size();
        append_utf8(bytes, cps[k]);
        byte_char.insert(byte_char.end(), bytes.size() - before, static_cast<uint32_t>(k));
    }
    byte_char.push_back(static_cast<uint32_t>(n));
    const size_t first_out = out.size();
    uint32_t pos = 0;  // byte where the next emitted token starts
    auto emit = [&](const Node& node) {
        for (uint32_t p = node.pops_begin; p < node.pops_end; ++p) {
            const Record& r = records_[pops_[p]];
            const uint32_t c0 = byte_char[pos], c1 = byte_char[pos + r.bytes];
            out.push_back({r.id, orig[c0], orig[c1 - 1] + 1});
            pos += r.bytes;
        }
    };
    auto fail_word = [&]() {
        out.resize(first_out);
        out.push_back({unk_id_, orig[0], orig[n - 1] + 1});
    };
    const size_t len = bytes.size();
    uint32_t u = root_;
    for (size_t i = 0; i < len; ++i) {
        const uint8_t b = static_cast<uint8_t>(bytes[i]);
        uint32_t v;
        while ((v = child(u, b)) == kNone) {
            const Node& nu = nodes_[u];
            if (nu.fail == kNone) return fail_word();
            emit(nu);
            u = nu.fail;
        }
        u = v;
    }
    while (u != suffix_root_) {
        const Node& nu = nodes_[u];
        if (nu.fail == kNone) return fail_word();
        emit(nu);
        u = nu.fail;
    }
}

}  // namespace fastbert
