// pybind11 entry point for fastbert._tokenizer. The tokenizer itself lives in the other files of csrc/.
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_tokenizer, m) {
    m.doc() = "fastbert C++ WordPiece tokenizer";
}
