"""Extract corpus.txt from the GLib and GTK 2 message catalogs installed by Debian (see SOURCE.md)."""

import os
import random
import struct

LANGS = (
    "ar be bg bn ca cs da de el eo es et eu fa fi fr ga gl gu he hi hr hu hy id is it ja ka kk kn ko lt "
    "lv mk ml mr nb ne nl pa pl pt pt_BR ro ru si sk sl sq sr sv ta te th tr ug uk vi yi zh_CN zh_TW"
).split()


def mo_strings(path):
    """Translated lines of a GNU .mo catalog."""
    data = open(path, "rb").read()
    e = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    n, _, toff = struct.unpack(e + "III", data[8:20])
    out = []
    for i in range(n):
        length, off = struct.unpack(e + "II", data[toff + 8 * i : toff + 8 * i + 8])
        try:
            s = data[off : off + length].decode("utf-8")
        except UnicodeDecodeError:
            continue
        for part in s.split("\x00"):
            for line in part.split("\n"):
                line = line.strip()
                if len(line) >= 8 and "Content-Type" not in line and ":" not in line[:20]:
                    out.append(line)
    return out


def main():
    random.seed(0)
    lines = []
    for lang in LANGS:
        got = []
        for dom in ("glib20", "gtk20"):
            p = f"/usr/share/locale/{lang}/LC_MESSAGES/{dom}.mo"
            if os.path.exists(p):
                got += mo_strings(p)
        got = sorted(set(got))
        random.shuffle(got)
        lines += got[:70]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.txt")
    with open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
