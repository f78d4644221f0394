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
//
// Speed (the result is the same as the plain walk):
//   - a word starting with ASCII is first looked up whole in a flat hash table (one probe instead of one
//     per byte): a word that is a token is its own MaxMatch segmentation;
//   - edges live in one open-addressing table of 64-bit slots (key and child together, one cache line);
//   - the first character of a token is walked through dense tables (root bytes, second byte after a
//     lead byte, third byte of 3-byte characters), and children without children of their own are
//     tagged kLeaf | id so that reaching them emits the token at once;
//   - a node's failure link and first pop sit together in one 16-byte Link.
#include <cstring>
#include <deque>
#include <stdexcept>

#include "tokenizer.h"

namespace fastbert {

namespace {
constexpr uint32_t kEmptyKey = 0xFFFFFFFFu;
constexpr uint64_t kEmptySlot = ~0ull;
inline uint32_t edge_key(uint32_t node, uint8_t byte) { return (node << 8) | byte; }
inline size_t edge_hash(uint32_t key) { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20); }

// Little-endian load of n <= 8 bytes at p, zero padded; p must be readable for 8 bytes.
inline uint64_t load8(const uint8_t* p, size_t n) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return n >= 8 ? v : v & ((1ull << (8 * n)) - 1);
}

// The same value assembled byte by byte: for bytes that were just written one at a time, a wide load would
// wait for the stores to retire (no store-to-load forwarding across several stores).
inline uint64_t load8_bytewise(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    const size_t m = n < 8 ? n : 8;
    for (size_t k = 0; k < m; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
    return v;
}

template <uint64_t (*Load)(const uint8_t*, size_t)>
inline uint64_t word_hash(const uint8_t* p, size_t len, uint64_t head) {
    uint64_t h = (head ^ (len * 0x9E3779B97F4A7C15ull)) * 0xFF51AFD7ED558CCDull;
    for (size_t k = 8; k < len; k += 8) {
        h ^= h >> 29;
        h = (h ^ Load(p + k, len - k)) * 0xC4CEB9FE1A85EC53ull;
    }
    return h ^ (h >> 32);
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
    build_links();
    build_words(vocab);
}

void WordPiece::build_links() {
    links_.resize(nodes_.size());
    extra_pops_.clear();
    for (size_t v = 0; v < nodes_.size(); ++v) {
        const Node& n = nodes_[v];
        Link& l = links_[v];
        l.fail = n.fail;
        const uint32_t count = n.pops_end - n.pops_begin;
        if (count > 0xFFFF) throw std::length_error("vocab token too long for the WordPiece trie");
        l.n_pops = static_cast<uint16_t>(count);
        l.first_id = 0;
        l.first_bytes = 0;
        l.pops_begin = static_cast<uint32_t>(extra_pops_.size());
        if (count == 0) continue;
        const Record& r0 = pops_[n.pops_begin];
        if (r0.bytes > 0xFFFF) throw std::length_error("vocab token too long for the WordPiece trie");
        l.first_id = r0.id;
        l.first_bytes = static_cast<uint16_t>(r0.bytes);
        extra_pops_.insert(extra_pops_.end(), pops_.begin() + n.pops_begin + 1, pops_.begin() + n.pops_end);
    }
    root2_.assign(64 * 64, kNone);
    suffix2_.assign(64 * 64, kNone);
    for (uint32_t lead = 0xC0; lead < 0x100; ++lead) {
        const uint32_t r = root_dense_[lead], s = suffix_dense_[lead];
        for (uint32_t c = 0x80; c < 0xC0; ++c) {
            const size_t k = (lead - 0xC0) * 64 + (c - 0x80);
            if (r != kNone) root2_[k] = child(r, static_cast<uint8_t>(c));
            if (s != kNone) suffix2_[k] = child(s, static_cast<uint8_t>(c));
        }
    }
    third3_index_.assign(2 * 16 * 64, 0);
    third3_.assign(64, kNone);
    for (uint32_t t = 0; t < 2; ++t) {
        const uint32_t* dense = t == 0 ? root_dense_ : suffix_dense_;
        for (uint32_t lead = 0xE0; lead < 0xF0; ++lead) {
            const uint32_t r = dense[lead];
            if (r == kNone) continue;
            for (uint32_t c1 = 0x80; c1 < 0xC0; ++c1) {
                const uint32_t n = child(r, static_cast<uint8_t>(c1));
                if (n == kNone) continue;
                uint32_t block[64];
                bool any = false;
                for (uint32_t c2 = 0; c2 < 64; ++c2) {
                    block[c2] = child(n, static_cast<uint8_t>(0x80 + c2));
                    any |= block[c2] != kNone;
                }
                if (!any || third3_.size() / 64 > 0xFFFF) continue;
                third3_index_[(t * 16 + (lead - 0xE0)) * 64 + (c1 - 0x80)] = static_cast<uint16_t>(third3_.size() / 64);
                third3_.insert(third3_.end(), block, block + 64);
            }
        }
    }
    // Leaves: tag every reference to them (failure links keep plain node ids).
    std::vector<uint8_t> has_kid(nodes_.size(), 0);
    for (int b = 0; b < 256; ++b) {
        if (root_dense_[b] != kNone) has_kid[root_] = 1;
        if (suffix_dense_[b] != kNone) has_kid[suffix_root_] = 1;
    }
    for (uint64_t slot : edges_)
        if (slot != kEmptySlot) has_kid[static_cast<uint32_t>(slot) >> 8] = 1;
    auto tag = [&](uint32_t v) -> uint32_t {
        if (v == kNone || has_kid[v] || nodes_[v].record == kNone) return v;
        const uint32_t id = records_[nodes_[v].record].id;
        return id < kLeaf - 1 ? (kLeaf | id) : v;
    };
    for (int b = 0; b < 256; ++b) {
        root_dense_[b] = tag(root_dense_[b]);
        suffix_dense_[b] = tag(suffix_dense_[b]);
    }
    for (uint64_t& slot : edges_)
        if (slot != kEmptySlot)
            slot = (static_cast<uint64_t>(tag(static_cast<uint32_t>(slot >> 32))) << 32) | (slot & 0xFFFFFFFFull);
    for (uint32_t& v : root2_) v = tag(v);
    for (uint32_t& v : suffix2_) v = tag(v);
    for (uint32_t& v : third3_) v = tag(v);
    std::vector<Node>().swap(nodes_);
    std::vector<Record>().swap(pops_);
    std::vector<Record>().swap(records_);
}

void WordPiece::build_words(const std::vector<std::string>& vocab) {
    pool_off_.assign(vocab.size(), 0);
    size_t total = 0;
    for (const std::string& t : vocab) total += t.size();
    pool_.reserve(total + 8);
    for (size_t id = 0; id < vocab.size(); ++id) {
        pool_off_[id] = static_cast<uint32_t>(pool_.size());
        pool_ += vocab[id];
    }
    pool_.append(8, '\0');  // 8 readable bytes past every token
    size_t cap = 16;
    while (cap < vocab.size() * 2) cap *= 2;
    words_.assign(cap, WordSlot{0, 0, 0});
    words_shift_ = 64;
    for (size_t c = cap; c > 1; c >>= 1) --words_shift_;
    const size_t mask = cap - 1;
    for (size_t id = 0; id < vocab.size(); ++id) {
        const std::string& t = vocab[id];
        if (t.empty()) continue;
        const uint8_t* p = reinterpret_cast<const uint8_t*>(pool_.data()) + pool_off_[id];
        const size_t len = t.size();
        const uint64_t head = load8(p, len);
        size_t h = static_cast<size_t>(word_hash<load8>(p, len, head) >> words_shift_);
        while (true) {
            WordSlot& s = words_[h];
            if (s.len == 0) {
                s = WordSlot{head, static_cast<uint32_t>(id), static_cast<uint32_t>(len)};
                break;
            }
            if (s.len == len && s.head == head && pool_.compare(pool_off_[s.id], len, t) == 0) {
                s.id = static_cast<uint32_t>(id);  // duplicate line in vocab: the last id wins
                break;
            }
            h = (h + 1) & mask;
        }
    }
}

uint64_t WordPiece::prepare(const uint8_t* p, size_t len) const {
    if (p[0] >= 0x80) return 0;  // no whole-word lookup (see tokenize)
    const uint64_t hash = word_hash<load8_bytewise>(p, len, load8_bytewise(p, len));
    __builtin_prefetch(&words_[static_cast<size_t>(hash >> words_shift_)]);
    if (len >= 2) {
        const uint32_t v = root_dense_[p[0]];
        if (v < kLeaf) __builtin_prefetch(&edges_[edge_hash(edge_key(v, p[1])) & mask_]);
    }
    return hash;
}

inline uint32_t WordPiece::find_word(const uint8_t* p, size_t len, uint64_t hash) const {
    const uint64_t head = load8(p, len);
    const size_t mask = words_.size() - 1;
    size_t h = static_cast<size_t>(hash >> words_shift_);
    while (true) {
        const WordSlot& s = words_[h];
        if (s.len == 0) return kNone;
        if (s.len == len && s.head == head &&
            (len <= 8 || std::memcmp(pool_.data() + pool_off_[s.id] + 8, p + 8, len - 8) == 0))
            return s.id;
        h = (h + 1) & mask;
    }
}

void WordPiece::rehash(size_t capacity) {
    std::vector<uint64_t> old = std::move(edges_);
    edges_.assign(capacity, kEmptySlot);
    mask_ = capacity - 1;
    for (uint64_t slot : old) {
        if (slot == kEmptySlot) continue;
        size_t h = edge_hash(static_cast<uint32_t>(slot)) & mask_;
        while (edges_[h] != kEmptySlot) h = (h + 1) & mask_;
        edges_[h] = slot;
    }
}

inline uint32_t WordPiece::child(uint32_t node, uint8_t byte) const {
    if (node == root_) return root_dense_[byte];
    if (node == suffix_root_) return suffix_dense_[byte];
    const uint32_t key = edge_key(node, byte);
    size_t h = edge_hash(key) & mask_;
    while (true) {
        const uint64_t slot = edges_[h];
        const uint32_t k = static_cast<uint32_t>(slot);
        if (k == key) return static_cast<uint32_t>(slot >> 32);
        if (k == kEmptyKey) return kNone;
        h = (h + 1) & mask_;
    }
}

uint32_t WordPiece::add_child(uint32_t node, uint8_t byte) {
    uint32_t existing = child(node, byte);
    if (existing != kNone) return existing;
    const uint32_t v = static_cast<uint32_t>(nodes_.size());
    if (v >= (1u << 24) - 1) throw std::length_error("vocab too large: more than 2^24 trie nodes");
    nodes_.emplace_back();
    if (node == root_) {
        root_dense_[byte] = v;
    } else if (node == suffix_root_) {
        suffix_dense_[byte] = v;
    } else {
        if ((n_edges_ + 1) * 4 > edges_.size() * 3) rehash(edges_.size() * 2);  // load <= 3/4
        const uint32_t key = edge_key(node, byte);
        size_t h = edge_hash(key) & mask_;
        while (edges_[h] != kEmptySlot) h = (h + 1) & mask_;
        edges_[h] = (static_cast<uint64_t>(v) << 32) | key;
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
    for (uint64_t slot : edges_)
        if (slot != kEmptySlot)
            kids[static_cast<uint32_t>(slot) >> 8].push_back(
                {static_cast<uint8_t>(slot & 0xFF), static_cast<uint32_t>(slot >> 32)});

    std::deque<uint32_t> queue{root_, suffix_root_};
    std::vector<Record> pops;
    while (!queue.empty()) {
        const uint32_t u = queue.front();
        queue.pop_front();
        for (auto [c, v] : kids[u]) {
            queue.push_back(v);
            Node& nv = nodes_[v];
            if (nv.record != kNone) {
                nv.fail = suffix_root_;
                nv.pops_begin = static_cast<uint32_t>(pops_.size());
                pops_.push_back(records_[nv.record]);
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

void WordPiece::tokenize(const uint8_t* bytes, const uint32_t* orig, size_t len, uint64_t hash,
                         std::vector<Piece>& out) const {
    if (len == 0) return;
    const uint32_t first = orig[0], last = orig[len - 1] + 1;
    if (len > max_chars_) {  // count code points only when the bytes could exceed the limit
        size_t n = 0;
        for (size_t k = 0; k < len; ++k) n += (bytes[k] & 0xC0) != 0x80;
        if (n > max_chars_) {
            out.push_back({unk_id_, first, last});
            return;
        }
    }
    // Fast path: the whole word is a token, which MaxMatch (longest prefix first) would pick. Only for
    // words starting with ASCII: other words are rarely whole tokens of more than one character, and the
    // walk below reaches the first character of a token through dense tables without probing the edges.
    if (bytes[0] < 0x80) {
        const uint32_t whole = find_word(bytes, len, hash);
        if (whole != kNone) {
            out.push_back({whole, first, last});
            return;
        }
    }
    const size_t first_out = out.size();
    uint32_t pos = 0;  // byte where the next emitted token starts
    auto emit = [&](const Link& l) {
        out.push_back({l.first_id, orig[pos], orig[pos + l.first_bytes - 1] + 1});
        pos += l.first_bytes;
        for (uint32_t p = l.pops_begin, e = l.pops_begin + l.n_pops - 1; p < e; ++p) {
            const Record& r = extra_pops_[p];
            out.push_back({r.id, orig[pos], orig[pos + r.bytes - 1] + 1});
            pos += r.bytes;
        }
    };
    auto fail_word = [&]() {
        out.resize(first_out);
        out.push_back({unk_id_, first, last});
    };
    uint32_t u = root_;
    // While u is inside the first character of a token: its 64 children by continuation byte (dn), and for
    // the lead byte of a 3-byte character, where its third-byte blocks are indexed (lead3).
    const uint32_t* dn = nullptr;
    int lead3 = -1;
    for (size_t i = 0; i < len; ++i) {
        const uint8_t b = bytes[i];
        const bool cont = (b & 0xC0) == 0x80;
        uint32_t v = (dn && cont) ? dn[b & 0x3F] : child(u, b);
        if (v == kNone) {
            lead3 = -1;
            do {
                const Link& lu = links_[u];
                if (lu.fail == kNone) return fail_word();
                emit(lu);  // a node with a failure link has pops
                u = lu.fail;
                v = child(u, b);
            } while (v == kNone);
        }
        if (v >= kLeaf) {  // a token with no longer continuation: it is matched, go on after it
            out.push_back({v & ~kLeaf, orig[pos], orig[i] + 1});
            pos = static_cast<uint32_t>(i + 1);
            u = suffix_root_;
            dn = nullptr;
            lead3 = -1;
            continue;
        }
        if (b >= 0xC0 && (u == root_ || u == suffix_root_)) {
            const bool suffix = u == suffix_root_;
            dn = (suffix ? suffix2_.data() : root2_.data()) + (b - 0xC0) * 64;
            lead3 = (b >= 0xE0 && b < 0xF0) ? ((suffix ? 16 : 0) + (b - 0xE0)) * 64 : -1;
        } else if (lead3 >= 0 && cont) {
            dn = third3_.data() + static_cast<size_t>(third3_index_[lead3 + (b & 0x3F)]) * 64;
            lead3 = -1;
        } else {
            dn = nullptr;
            lead3 = -1;
        }
        u = v;
    }
    while (u != suffix_root_) {
        const Link& lu = links_[u];
        if (lu.fail == kNone) return fail_word();
        emit(lu);
        u = lu.fail;
    }
}

}  // namespace fastbert
