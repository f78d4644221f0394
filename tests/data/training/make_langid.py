"""Rebuild langid.jsonl from Debian's coreutils package (its translated message catalogues).

    apt-get download coreutils && dpkg -x coreutils_*.deb root
    python tests/data/training/make_langid.py root/usr/share/locale > tests/data/training/langid.jsonl

Each line of a translated message (help texts, errors) with at least five words becomes one example; format
directives and option names are left as they are (they are the same in every language, which keeps the task
honest). Lines are deduplicated, shuffled with a fixed seed and capped per language.
"""

import gettext
import json
import random
import re
import sys
from pathlib import Path

LANGS = ["de", "es", "fr", "it", "nl", "pt"]
PER_LANG = 450


def lines_of(mo: Path) -> list[str]:
    with mo.open("rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    out = set()
    for key, text in catalog.items():
        if not key or not isinstance(text, str):
            continue
        for line in text.splitlines():
            line = re.sub(r"\s+", " ", line).strip()
            words = [w for w in line.split() if re.search(r"[^\W\d_]{2,}", w) and not w.startswith("-")]
            if len(words) >= 5 and len(line) <= 160:
                out.add(line)
    return sorted(out)


def main(locale_dir: str) -> None:
    rng = random.Random(0)
    rows = []
    for lang in LANGS:
        lines = lines_of(Path(locale_dir) / lang / "LC_MESSAGES" / "coreutils.mo")
        rng.shuffle(lines)
        rows += [{"text": t, "label": lang} for t in lines[:PER_LANG]]
    rng.shuffle(rows)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
