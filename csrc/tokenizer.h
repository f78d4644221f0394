// fastbert C++ WordPiece tokenizer: the stages, one job each, in the order text flows through them.
//
//   BertNormalizer + pre-tokenizer (normalizer.cpp): code points of the original string -> words, each
//       normalized code point remembering the index of the original code point it came from;
//   WordPiece (wordpiece.cpp): a word -> token ids with their spans (Fast WordPiece / LinMaxMatch);
//   Encoder (encoder.cpp): special tokens written in the text, then truncation / overflow, the
//       [CLS] A [SEP] B [SEP] template and padding, described as rows that the writers in module.cpp
//       copy into numpy buffers or Python lists.
//
// All offsets are code point indices into the original Python string, as transformers reports them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fastbert {

// One token of one sequence: vocab id and the [start, end) code point span in the original string.
struct Piece {
    uint32_t id;
    uint32_t start;
    uint32_t end;
};

// A read-only view of a Python str's storage (PEP 393): kind is 1, 2 or 4 bytes per code point.
struct TextView {
    const void* data = nullptr;
    int kind = 1;
    size_t length = 0;
};

struct NormalizerOptions {
    bool lowercase = true;
    bool strip_accents = true;
    bool handle_chinese_chars = true;
};

// ---- WordPiece: Fast WordPiece (Song et al. 2021) over UTF-8 bytes --------------------------------------
class WordPiece {
  public:
    WordPiece(const std::vector<std::string>& vocab, uint32_t unk_id, const std::string& prefix,
              size_t max_input_chars_per_word);
    // Tokenizes one word given as code points; orig[i] is the original index of cps[i]. Appends to out.
    void tokenize(const uint32_t* cps, const uint32_t* orig, size_t n, std::vector<Piece>& out,
                  std::string& scratch_bytes, std::vector<uint32_t>& scratch_chars) const;

  private:
    static constexpr uint32_t kNone = 0xFFFFFFFFu;
    struct Node {
        uint32_t fail = kNone;     // failure link f(v)
        uint32_t pops_begin = 0;   // failure pops F(v): records pops_[pops_begin, pops_end)
        uint32_t pops_end = 0;
        uint32_t record = kNone;   // token record if the node's string is a vocab token
    };
    struct Record {
        uint32_t id;
        uint32_t bytes;  // length of the matched text (without the "##" prefix for suffix tokens)
    };
    uint32_t child(uint32_t node, uint8_t byte) const;
    uint32_t add_child(uint32_t node, uint8_t byte);
    void insert(uint32_t root, const std::string& s, uint32_t id);
    void build_failure_links();
    void rehash(size_t capacity);

    std::vector<Node> nodes_;
    std::vector<Record> records_;
    std::vector<uint32_t> pops_;
    // Edges: open addressing on key = node * 256 + byte; roots use dense arrays.
    std::vector<uint64_t> keys_;
    std::vector<uint32_t> vals_;
    size_t mask_ = 0;
    size_t n_edges_ = 0;
    uint32_t root_dense_[256];
    uint32_t suffix_dense_[256];
    uint32_t root_ = 0, suffix_root_ = 1;
    uint32_t unk_id_;
    size_t max_chars_;
};

// ---- Normalizer + pre-tokenizer -----------------------------------------------------------------------
// Splits text[begin, end) into words (normalized code points with original indices), calling the word
// callback for each. Clean text is always on, as in BertTokenizer.
class Normalizer {
  public:
    explicit Normalizer(NormalizerOptions opt) : opt_(opt) {}
    template <class Char, class OnWord>
    void split_words(const Char* text, size_t begin, size_t end, std::vector<uint32_t>& cps,
                     std::vector<uint32_t>& orig, OnWord&& on_word) const;
    const NormalizerOptions& options() const { return opt_; }

  private:
    NormalizerOptions opt_;
};

// ---- Whole-pipeline encoder ---------------------------------------------------------------------------
enum class Truncation { None = 0, LongestFirst = 1, OnlyFirst = 2, OnlySecond = 3 };

struct EncodeParams {
    bool add_special_tokens = true;
    Truncation truncation = Truncation::None;
    int64_t max_length = -1;       // truncation length (>= 0 when truncation is on)
    int64_t stride = 0;
    bool truncate_left = false;
    bool return_overflowing = false;
    int padding = 0;               // 0 none, 1 longest, 2 max_length
    int64_t pad_length = 0;        // for max_length padding
    int64_t pad_to_multiple_of = 0;
    bool pad_left = false;
    int num_threads = 1;
};

// One output row: [a_begin, a_end) of a sample's first sequence tokens and [b_begin, b_end) of its second.
struct Row {
    uint32_t sample;
    uint32_t a_begin, a_end;
    uint32_t b_begin, b_end;
    uint32_t length;  // tokens before padding, special tokens included
    bool has_pair;
    bool overflow;    // an overflowing row (not the sample's main row)
};

struct SpecialToken {
    std::u32string text;
    uint32_t id;
};

struct BatchResult {
    std::vector<std::vector<Piece>> first, second;  // per sample
    std::vector<Row> rows;
    uint32_t padded_length = 0;  // 0 when no padding
    std::string error;           // non-empty: the batch failed (raised as ValueError)
};

class Encoder {
  public:
    Encoder(const std::vector<std::string>& vocab, NormalizerOptions opt, uint32_t unk_id, uint32_t cls_id,
            uint32_t sep_id, uint32_t pad_id, std::vector<SpecialToken> specials, size_t max_chars,
            const std::string& prefix);
    // Encodes one sequence: special tokens written in the text, normalization, words, WordPiece.
    void encode(const TextView& text, std::vector<Piece>& out) const;
    // Encodes a batch (second may be empty: no pairs) on several threads and lays out the rows.
    void encode_batch(const std::vector<TextView>& first, const std::vector<TextView>& second,
                      const EncodeParams& p, BatchResult& result) const;

    uint32_t cls_id() const { return cls_id_; }
    uint32_t sep_id() const { return sep_id_; }
    uint32_t pad_id() const { return pad_id_; }
    const std::vector<std::string>& vocab() const { return vocab_; }

  private:
    template <class Char>
    void encode_impl(const Char* s, size_t n, std::vector<Piece>& out) const;
    std::string layout_rows(uint32_t sample, size_t n1, size_t n2, bool has_pair, const EncodeParams& p,
                            std::vector<Row>& rows) const;

    std::vector<std::string> vocab_;
    Normalizer normalizer_;
    WordPiece wordpiece_;
    uint32_t unk_id_, cls_id_, sep_id_, pad_id_;
    std::vector<SpecialToken> specials_;
    bool special_first_ascii_[128] = {};
    std::vector<uint32_t> special_first_other_;
};

}  // namespace fastbert
