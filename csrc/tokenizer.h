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
#include <functional>
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
    // Tokenizes one word given as UTF-8 bytes; orig[k] is the original index of the code point that byte k
    // belongs to. bytes must stay readable 8 bytes past len (the whole-word hash loads 8 bytes at a time).
    // hash is prepare(bytes, len). Appends to out.
    void tokenize(const uint8_t* bytes, const uint32_t* orig, size_t len, uint64_t hash,
                  std::vector<Piece>& out) const;
    // Hashes the word and starts loading the table entries tokenize reads first, so that a caller can
    // prepare the next word before tokenizing the current one and overlap their memory latency.
    uint64_t prepare(const uint8_t* bytes, size_t len) const;

  private:
    static constexpr uint32_t kNone = 0xFFFFFFFFu;
    // After the build, a child that has no children of its own (always a token) is stored in the dense
    // tables and the edge table as kLeaf | token id: reaching it emits the token at once and goes on from the
    // suffix root, without probing for children it cannot have nor reading its Link.
    static constexpr uint32_t kLeaf = 0x80000000u;
    struct Node {
        uint32_t fail = kNone;     // failure link f(v)
        uint32_t pops_begin = 0;   // failure pops F(v): pops_[pops_begin, pops_end)
        uint32_t pops_end = 0;
        uint32_t record = kNone;   // token record if the node's string is a vocab token
    };
    struct Record {
        uint32_t id;
        uint32_t bytes;  // length of the matched text (without the "##" prefix for suffix tokens)
    };
    // What matching reads at a node when the next byte has no child: its failure link and pops, the first
    // pop inline (most nodes have exactly one), the others in pops_[pops_begin, pops_begin + n_pops - 1).
    struct Link {
        uint32_t fail;
        uint32_t first_id;
        uint32_t pops_begin;
        uint16_t n_pops;
        uint16_t first_bytes;
    };
    // Whole-word table slot: a word that is a vocab token is one token (MaxMatch takes the longest prefix).
    struct WordSlot {
        uint64_t head;  // the first min(8, len) bytes, little-endian, zero padded
        uint32_t id;
        uint32_t len;   // 0: empty slot
    };
    uint32_t child(uint32_t node, uint8_t byte) const;
    uint32_t add_child(uint32_t node, uint8_t byte);
    void insert(uint32_t root, const std::string& s, uint32_t id);
    void build_failure_links();
    void rehash(size_t capacity);
    void build_words(const std::vector<std::string>& vocab);
    void build_links();
    uint32_t find_word(const uint8_t* bytes, size_t len, uint64_t hash) const;

    std::vector<Node> nodes_;
    std::vector<Record> records_;
    std::vector<Record> pops_;  // the records themselves, so that emitting follows no extra index
    // Edges: open addressing, one 64-bit slot per edge: (child << 32) | (node << 8 | byte); roots use dense
    // arrays.
    std::vector<uint64_t> edges_;
    size_t mask_ = 0;
    size_t n_edges_ = 0;
    std::vector<Link> links_;          // per node, built from nodes_ (which is then released)
    std::vector<Record> extra_pops_;   // pops after the first of each node
    uint32_t root_dense_[256];
    uint32_t suffix_dense_[256];
    // Second byte of a token's first character: [lead byte - 0xC0][continuation byte - 0x80] -> node, for
    // the word-initial and the suffix trie, so that walking one multi-byte character costs one hash probe
    // less.
    std::vector<uint32_t> root2_, suffix2_;
    // Third byte of a 3-byte first character: third3_index_[trie][lead - 0xE0][second - 0x80] is a block of
    // third3_ (64 children by continuation byte); block 0 has none.
    std::vector<uint16_t> third3_index_;
    std::vector<uint32_t> third3_;
    uint32_t root_ = 0, suffix_root_ = 1;
    uint32_t unk_id_;
    size_t max_chars_;
    std::vector<WordSlot> words_;
    size_t words_shift_ = 0;
    std::string pool_;               // every vocab token's bytes, concatenated
    std::vector<uint32_t> pool_off_; // per id: offset of its bytes in pool_
};

// ---- Normalizer + pre-tokenizer -----------------------------------------------------------------------
// Splits text[begin, end) into words (normalized UTF-8 bytes, each with the original index of the code
// point it came from), calling the word callback for each. Clean text is always on, as in BertTokenizer.
class Normalizer {
  public:
    explicit Normalizer(NormalizerOptions opt);  // defined in normalizer.h
    // bytes / orig are scratch buffers; on_word(bytes, orig, len) gets pointers into them, readable at least
    // 8 bytes past len.
    template <class Char, class OnWord>
    void split_words(const Char* text, size_t begin, size_t end, std::vector<uint8_t>& bytes,
                     std::vector<uint32_t>& orig, OnWord&& on_word) const;
    const NormalizerOptions& options() const { return opt_; }

  private:
    uint32_t entry(uint32_t c) const;  // flags << 24 | map_pool index (0: identity)

    NormalizerOptions opt_;
    const uint16_t* map_index_ = nullptr;
    const uint32_t* map_blocks_ = nullptr;
    uint8_t ascii_action_[128];  // what the pipeline does with an ASCII character (see normalizer.h)
    uint8_t ascii_map_[128];     // its (lowercased) byte
    std::vector<uint32_t> bmp_;  // entry(c) for c < 0x10000
};

// ---- Whole-pipeline encoder ---------------------------------------------------------------------------
// The strategies of transformers' `truncation=` and `padding=` (bound to Python as Truncation / Padding,
// with transformers' names).
enum class Truncation { DoNotTruncate, LongestFirst, OnlyFirst, OnlySecond };
enum class Padding { DoNotPad, Longest, MaxLength };

// What one call asks of the encoder, lengths already resolved (fastbert/tokenizer.py does that).
struct EncodeOptions {
    bool add_special_tokens = true;
    Truncation truncation = Truncation::DoNotTruncate;
    int64_t max_length = -1;       // truncation length (>= 0 when truncation is on)
    int64_t stride = 0;
    bool truncate_left = false;
    bool return_overflowing = false;
    Padding padding = Padding::DoNotPad;
    int64_t pad_length = 0;        // for Padding::MaxLength
    int64_t pad_to_multiple_of = 0;
    bool pad_left = false;
    int num_threads = 1;
    bool split_special_tokens = false;  // special tokens written in the text are tokenized as ordinary text
};

// One output row: a window of a sample's first sequence tokens and one of its second.
struct Row {
    const Piece* a;   // first sequence tokens [a, a + a_len)
    const Piece* b;   // second sequence tokens [b, b + b_len) (has_pair)
    uint32_t a_len, b_len;
    uint32_t sample;
    uint32_t length;  // tokens before padding, special tokens included
    bool has_pair;
    bool overflow;    // an overflowing row (not the sample's main row)
};

struct SpecialToken {
    std::u32string text;
    uint32_t id;
};

// The samples [begin, end) of a batch, encoded together: the tokens of all their sequences in one buffer
// (no allocation per text), and their rows, which point into it.
struct Chunk {
    uint32_t begin = 0, end = 0;
    std::vector<Piece> pieces;
    std::vector<Row> rows;
    size_t row_base = 0;  // rows of the chunks before this one
    std::string error;    // non-empty: a sample of the chunk failed (the first one's message)
};

struct BatchResult {
    std::vector<Chunk> chunks;   // consecutive samples, in order
    size_t n_rows = 0;
    uint32_t padded_length = 0;  // 0 when no padding
    std::string error;           // non-empty: the batch failed (raised as ValueError)
};

// Called on the calling thread for each chunk in order (see Encoder::encode_batch).
using ChunkCallback = std::function<void(const Chunk&)>;

// Characters of text (first + second sequences) per thread of Encoder::encode_batch: a batch with fewer is
// encoded on the calling thread alone.
constexpr size_t kCharsPerThread = 4096;

class Encoder {
  public:
    Encoder(const std::vector<std::string>& vocab, NormalizerOptions opt, uint32_t unk_id, uint32_t cls_id,
            uint32_t sep_id, uint32_t pad_id, std::vector<SpecialToken> specials, size_t max_chars,
            const std::string& prefix);
    // Encodes one sequence: special tokens written in the text (unless split_specials: then they are ordinary
    // text), normalization, words, WordPiece.
    void encode(const TextView& text, std::vector<Piece>& out, bool split_specials = false) const;
    // Encodes a batch (second may be empty: no pairs) in chunks of consecutive samples on p.num_threads
    // threads and lays out the rows. When on_chunk is given, the calling thread hands it each chunk in order
    // as soon as that chunk is done, while the threads go on encoding the later ones (so that what the
    // caller does with a chunk overlaps the encoding). result.padded_length is set before the first call,
    // except for padding to the longest row (Padding::Longest), which is only known at the end. A failing chunk
    // stops the batch: result.error is set and neither it nor a later chunk is handed on.
    void encode_batch(const std::vector<TextView>& first, const std::vector<TextView>& second,
                      const EncodeOptions& p, BatchResult& result, const ChunkCallback& on_chunk = {}) const;

    uint32_t cls_id() const { return cls_id_; }
    uint32_t sep_id() const { return sep_id_; }
    uint32_t pad_id() const { return pad_id_; }
    const std::vector<std::string>& vocab() const { return vocab_; }

  private:
    template <class Char>
    void encode_impl(const Char* s, size_t n, std::vector<Piece>& out, bool split_specials) const;
    // Appends the tokens of one sequence to out.
    void encode_append(const TextView& text, std::vector<Piece>& out, bool split_specials) const;
    void encode_chunk(const std::vector<TextView>& first, const std::vector<TextView>& second,
                      const EncodeOptions& p, Chunk& chunk) const;
    std::string layout_rows(uint32_t sample, const Piece* a, size_t n1, const Piece* b, size_t n2, bool has_pair,
                            const EncodeOptions& p, std::vector<Row>& rows) const;

    std::vector<std::string> vocab_;
    Normalizer normalizer_;
    WordPiece wordpiece_;
    uint32_t unk_id_, cls_id_, sep_id_, pad_id_;
    std::vector<SpecialToken> specials_;
    bool special_first_ascii_[128] = {};
    std::vector<uint32_t> special_first_other_;
};

}  // namespace fastbert
