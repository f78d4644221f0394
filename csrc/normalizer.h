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

template <class Char, class OnWord>
void Normalizer::split_words(const Char* text, size_t begin, size_t end, std::vector<uint32_t>& cps,
                             std::vector<uint32_t>& orig, OnWord&& on_word) const {
    const bool lower = opt_.lowercase, strip = opt_.strip_accents, chinese = opt_.handle_chinese_chars;
    const uint16_t* map_index = nullptr;
    const uint32_t* map_blocks = nullptr;
    if (strip && lower) {
        map_index = tables::map_both_index;
        map_blocks = tables::map_both_blocks;
    } else if (strip) {
        map_index = tables::map_strip_index;
        map_blocks = tables::map_strip_blocks;
    } else if (lower) {
        map_index = tables::map_lower_index;
        map_blocks = tables::map_lower_blocks;
    }
    cps.clear();
    orig.clear();
    auto flush = [&]() {
        if (!cps.empty()) {
            on_word(cps.data(), orig.data(), cps.size());
            cps.clear();
            orig.clear();
        }
    };
    // A normalized code point m coming from original index i goes through the pre-tokenizer.
    auto emit = [&](uint32_t m, uint8_t fm, uint32_t i) {
        if (fm & kSpace) {
            flush();
        } else if (fm & kPunct) {
            flush();
            cps.push_back(m);
            orig.push_back(i);
            flush();
        } else {
            cps.push_back(m);
            orig.push_back(i);
        }
    };
    for (size_t i = begin; i < end; ++i) {
        uint32_t c = static_cast<uint32_t>(text[i]);
        if (c < 0x80) {  // ASCII: no mappings other than A-Z lowercase
            uint8_t f = tables::flags_blocks[c];
            if (f & kRemove) continue;
            if (f & (kCleanSpace | kSpace)) {
                flush();
                continue;
            }
            if (lower && c - 'A' < 26u) c += 32;
            emit(c, f, static_cast<uint32_t>(i));
            continue;
        }
        uint8_t f = char_flags(c);
        if (f & kRemove) continue;
        if (f & kCleanSpace) {
            flush();
            continue;
        }
        const bool alone = chinese && (f & kChinese);
        if (alone) flush();
        uint32_t m = map_index ? map_lookup(map_index, map_blocks, c) : 0;
        if (m == 0) {
            emit(c, f, static_cast<uint32_t>(i));
        } else {
            uint32_t len = tables::map_pool[m];
            for (uint32_t k = 1; k <= len; ++k) {
                uint32_t d = tables::map_pool[m + k];
                emit(d, char_flags(d), static_cast<uint32_t>(i));
            }
        }
        if (alone) flush();
    }
    flush();
}

}  // namespace fastbert
