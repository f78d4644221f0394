"""The engine's CPU benchmark: bert-base shape (random weights), fp32, fastbert vs transformers sdpa, both
under ``torch.inference_mode()``; (a) 8 x 128 fully real tokens, (b) 32 real texts of mixed length padded to
the longest. Providers alternate round by round; the reported figure is the median of per-round time ratios.

    python benchmarks/bench_engine_cpu.py            # same as: fastbert bench --preset engine-cpu
"""

import sys

from fastbert import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", "--preset", "engine-cpu", "--device", "cpu", *sys.argv[1:]]))
