// BertNormalizer + BertPreTokenizer on code points, driven by the tables generated from `tokenizers`.
//
// Per original code point c (flags from unicode_tables.h):
//   clean text:   removed (controls, NUL, U+FFFD, ...) or turned into a space (whitespace);
//   CJK spacing:  c becomes a word of its own (the spaces tokenizers inserts only split words);
//   accents/case: c maps to 0..n code points (NFD minus Mn marks, then lowercase), all of which keep
//                 c's original index, which is what tokenizers' alignments give for inserted characters;
//   pre-tokenize: each mapped code point either splits (whitespace), stands alone (punctuation) or
//                 extends the current word.
#pragma once

#include "tokenizer.h"
#include "unicode_tables.h"

namespace fastbert {

enum : uint8_t {
    kRemove = 1,       // clean_text drops it
    kCleanSpace = 2,   // clean_text maps it to ' '
    kChinese = 4,      // handle_chinese_chars pads it with spaces
    kPunct = 8,        // the pre-tokenizer isolates it
    kSpace = 16,       // the pre-tokenizer splits on it
};

inline uint8_t char_flags(uint32_t c) {
    if (c >= 0x110000) return kRemove;
    return tables::flags_blocks[(static_cast<uint32_t>(tables::flags_index[c >> tables::kBlockShift])
                                 << tables::kBlockShift) | (c & ((1u << tables::kBlockShift) - 1))];
}

// Index into tables::map_pool of c's mapping (0: identity) for the table pair (index, blocks).
inline uint32_t map_lookup(const uint16_t* index, const uint32_t* blocks, uint32_t c) {
    return blocks[(static_cast<uint32_t>(index[c >> tables::kBlockShift]) << tables::kBlockShift) |
                  (c & ((1u << tables::kBlockShift) - 1))];
}

// Each original code point yields at most 3 mapped code points of at most 4 UTF-8 bytes each.
constexpr size_t kMaxBytesPerChar = 12;
static_assert(sizeof(tables::map_pool) / sizeof(tables::map_pool[0]) < (1u << 24), "map index must fit 24 bits");

enum : uint8_t { kAsciiWord = 0, kAsciiRemove = 1, kAsciiSplit = 2, kAsciiPunct = 3 };

inline Normalizer::Normalizer(NormalizerOptions opt) : opt_(opt) {
    if (opt_.strip_accents && opt_.lowercase) {
        map_index_ = tables::map_both_index;
        map_blocks_ = tables::map_both_blocks;
    } else if (opt_.strip_accents) {
        map_index_ = tables::map_strip_index;
        map_blocks_ = tables::map_strip_blocks;
    } else if (opt_.lowercase) {
        map_index_ = tables::map_lower_index;
        map_blocks_ = tables::map_lower_blocks;
    }
    for (uint32_t c = 0; c < 128; ++c) {
        const uint8_t f = tables::flags_blocks[c];
        uint8_t a = kAsciiWord;
        if (f & kRemove)
            a = kAsciiRemove;
        else if (f & (kCleanSpace | kSpace))
            a = kAsciiSplit;
        else if (f & kPunct)
            a = kAsciiPunct;
        ascii_action_[c] = a;
        ascii_map_[c] = static_cast<uint8_t>(opt_.lowercase && c - 'A' < 26u ? c + 32 : c);
    }
    bmp_.resize(0x10000);
    for (uint32_t c = 0; c < 0x10000; ++c) {
        const uint32_t m = map_index_ ? map_lookup(map_index_, map_blocks_, c) : 0;
        bmp_[c] = (static_cast<uint32_t>(char_flags(c)) << 24) | m;
    }
}

inline uint32_t Normalizer::entry(uint32_t c) const {
    if (c < 0x10000) return bmp_[c];
    const uint32_t m = (map_index_ && c < 0x110000) ? map_lookup(map_index_, map_blocks_, c) : 0;
    return (static_cast<uint32_t>(char_flags(c)) << 24) | m;
}

template <class Char, class OnWord>
void Normalizer::split_words(const Char* text, size_t begin, size_t end, std::vector<uint8_t>& buf,
                             std::vector<uint32_t>& obuf, OnWord&& on_word) const {
    if (begin >= end) return;
    // Words are written one after the other into the buffers, never cleared within the segment; the slack
    // keeps 8 bytes readable past any word.
    const size_t need = (end - begin) * kMaxBytesPerChar + 16;
    if (buf.size() < need) {
        buf.resize(need);
        obuf.resize(need);
    }
    uint8_t* const b = buf.data();
    uint32_t* const o = obuf.data();
    size_t w = 0, p = 0;  // current word [w, p)
    auto flush = [&]() {
        if (p != w) {
            on_word(b + w, o + w, p - w);
            w = p;
        }
    };
    auto put = [&](uint32_t m, uint32_t i) {
        if (m < 0x80) {
            b[p] = static_cast<uint8_t>(m);
            o[p++] = i;
        } else if (m < 0x800) {
            b[p] = static_cast<uint8_t>(0xC0 | (m >> 6));
            b[p + 1] = static_cast<uint8_t>(0x80 | (m & 0x3F));
            o[p] = o[p + 1] = i;
            p += 2;
        } else if (m < 0x10000) {
            b[p] = static_cast<uint8_t>(0xE0 | (m >> 12));
            b[p + 1] = static_cast<uint8_t>(0x80 | ((m >> 6) & 0x3F));
            b[p + 2] = static_cast<uint8_t>(0x80 | (m & 0x3F));
            o[p] = o[p + 1] = o[p + 2] = i;
            p += 3;
        } else {
            b[p] = static_cast<uint8_t>(0xF0 | (m >> 18));
            b[p + 1] = static_cast<uint8_t>(0x80 | ((m >> 12) & 0x3F));
            b[p + 2] = static_cast<uint8_t>(0x80 | ((m >> 6) & 0x3F));
            b[p + 3] = static_cast<uint8_t>(0x80 | (m & 0x3F));
            o[p] = o[p + 1] = o[p + 2] = o[p + 3] = i;
            p += 4;
        }
    };
    // A normalized code point m coming from original index i goes through the pre-tokenizer.
    auto emit = [&](uint32_t m, uint8_t fm, uint32_t i) {
        if (fm & kSpace) {
            flush();
        } else if (fm & kPunct) {
            flush();
            put(m, i);
            flush();
        } else {
            put(m, i);
        }
    };
    const bool chinese = opt_.handle_chinese_chars;
    for (size_t i = begin; i < end; ++i) {
        const uint32_t c = static_cast<uint32_t>(text[i]);
        const uint32_t oi = static_cast<uint32_t>(i);
        if (c < 0x80) {  // ASCII: no mappings other than A-Z lowercase
            const uint8_t a = ascii_action_[c];
            if (a == kAsciiWord) {
                b[p] = ascii_map_[c];
                o[p++] = oi;
            } else if (a == kAsciiSplit) {
                flush();
            } else if (a == kAsciiPunct) {
                flush();
                b[p] = ascii_map_[c];
                o[p++] = oi;
                flush();
            }
            continue;
        }
        const uint32_t e = entry(c);
        const uint8_t f = static_cast<uint8_t>(e >> 24);
        if (f & kRemove) continue;
        if (f & kCleanSpace) {
            flush();
            continue;
        }
        const bool alone = chinese && (f & kChinese);
        if (alone) flush();
        const uint32_t m = e & 0xFFFFFFu;
        if (m == 0) {
            emit(c, f, oi);
        } else {
            const uint32_t len = tables::map_pool[m];
            for (uint32_t k = 1; k <= len; ++k) {
                const uint32_t d = tables::map_pool[m + k];
                emit(d, static_cast<uint8_t>(entry(d) >> 24), oi);
            }
        }
        if (alone) flush();
    }
    flush();
}

}  // namespace fastbert
