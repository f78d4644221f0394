"""Check the machine code of the C++ CPU attention kernel: in every build (avx512, avx2, baseline), the
innermost loops that do the arithmetic (at least MIN_FMAS FMAs or vector multiplies: the score and output
loops and the exp polynomial) must not move a vector register to or from the stack (a spill or reload). Loops with
fewer are the head_dim and key tails, which index single lanes through memory by design.

    python benchmarks/check_cpu_kernel_asm.py [path/to/_cpu_kernels*.so]

Prints each FMA loop (address range, instruction count, FMAs, vector stack references) and exits 1 if any
has a vector stack reference. Needs objdump (binutils).
"""

from __future__ import annotations

import re
import subprocess
import sys

INNER_LOOP_MAX = 80  # instructions: a loop longer than this is an outer loop around the FMA loops
MIN_FMAS = 4


def is_spill(instruction: str) -> bool:
    """A vector register stored to, or reloaded whole from, a stack slot. An arithmetic instruction that reads
    a stack slot as its memory operand (a loop-invariant constant GCC keeps there) is not counted."""
    mnemonic = instruction.split()[0] if instruction.split() else ""
    return "(%rsp)" in instruction and bool(re.search(r"[xyz]mm\d", instruction)) and "mov" in mnemonic


def fma_loops(disassembly: str, build: str):
    """(function, start, end, instructions) of every backward-branch loop, in any function of ``build``'s
    namespace, that holds at least MIN_FMAS FMAs or vector multiplies; None when the build is absent."""
    pattern = r"<((?:void )?fastbert::\(anonymous namespace\)::" + build + r"::[^\n]*)>:\n(.*?)(?:\n\n|\Z)"
    functions = re.findall(pattern, disassembly, re.S)
    if not functions:
        return None
    loops = []
    for name, body_text in functions:
        ins = []
        for line in body_text.splitlines():
            mm = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
            if mm:
                ins.append((int(mm.group(1), 16), mm.group(2)))
        for addr, text in ins:
            jump = re.match(r"j\w+\s+([0-9a-f]+)", text)
            if jump and int(jump.group(1), 16) <= addr:
                lo = int(jump.group(1), 16)
                body = [t for a, t in ins if lo <= a <= addr]
                if len(body) <= INNER_LOOP_MAX and sum("fmadd" in t or "mulps" in t for t in body) >= MIN_FMAS:
                    loops.append((re.search(r"::(\w+(?:<[^>]*>)?)\(", name).group(1), lo, addr, body))
    return loops


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        path = argv[0]
    else:
        import fastbert._cpu_kernels as mod

        path = mod.__file__
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", path], capture_output=True, text=True,
                          check=True).stdout
    bad = 0
    for build in ("avx512", "avx2", "baseline"):
        loops = fma_loops(text, build)
        if loops is None:
            print(f"{build}: not in this module")
            continue
        for fn, lo, hi, body in loops:
            stack = [t for t in body if is_spill(t)]
            bad += len(stack)
            fmas = sum("fmadd" in t or "mulps" in t for t in body)
            print(f"{build}: {fn} loop {lo:x}-{hi:x}: {len(body)} instructions, {fmas} FMA/mul, "
                  f"{len(stack)} vector spills/reloads" + "".join(f"\n    {t}" for t in stack))
        print(f"{build}: {len(loops)} FMA loops")
    print("FAIL: vector registers spill in an FMA loop" if bad else "OK: no vector spill or reload in any FMA loop")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
