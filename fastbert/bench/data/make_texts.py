"""How fastbert/bench/data/debian_faq.txt was made (run once by hand; nothing downloads at run time).

    apt-get download debian-faq && dpkg -x debian-faq_11.1_all.deb x
    python fastbert/bench/data/make_texts.py x/usr/share/doc/debian/FAQ > fastbert/bench/data/debian_faq.txt

Each line is one sentence, or (every fourth paragraph) a whole paragraph, of the Debian FAQ's English HTML, so
the lines have a natural mix of lengths.
"""

import html
import re
import sys
from pathlib import Path


def paragraphs(text: str):
    text = re.sub(r"(?is)<(script|style|pre)\b.*?</\1>", " ", text)
    for block in re.findall(r"(?is)<(?:p|li|dd|td)\b[^>]*>(.*?)</(?:p|li|dd|td)>", text):
        plain = html.unescape(re.sub(r"(?s)<[^>]+>", " ", block))
        plain = " ".join(plain.split())
        if len(plain.split()) >= 4:
            yield plain


def main(folder: str) -> None:
    seen = set()
    lines = []
    for i, para in enumerate(
        p for f in sorted(Path(folder).glob("*.en.html")) for p in paragraphs(f.read_text())
    ):
        pieces = [para] if i % 4 == 3 else re.split(r"(?<=[.!?])\s+(?=[A-Z])", para)
        for s in pieces:
            s = s.strip()
            if len(s.split()) >= 3 and s not in seen:
                seen.add(s)
                lines.append(s)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
