"""Builds the plain-text input of bench/peers from this machine's own documentation:
English prose that any Debian machine has, with no download.

Sources, in byte order of their paths: /usr/share/common-licenses/*, and under
/usr/share/doc every changelog*, NEWS*, README*, copyright, *.txt and *.md file (read
through gzip when it ends in .gz). Only lines that are valid UTF-8, hold no control
byte other than TAB, VT, FF and CR (so no NUL, and no byte 0x01, which the peers use as
a field separator that never occurs), and are at most 64 KiB long are kept: every tool
compared reads them the same way. The kept lines, in order, are the corpus; it is
repeated (or cut) to the size asked for, in line-aligned files of about equal size.

Prints one line: "text_corpus: S source files, C MB of corpus (L lines), written W MB in
N files (R copies)".

Usage: text_corpus.py [-s MB] [-n FILES] OUTDIR
"""

import argparse
import gzip
import os
import sys

MAX_LINE = 64 * 1024
# Appended to the last file: lines that put every byte Tally takes for white space (SP,
# TAB, LF, VT, FF, CR) inside, before and after words, and bytes that are not white space
# to it (NBSP, U+2028, quotes, a backslash), so that a tool that splits words otherwise
# cannot agree by chance
EDGE = (b"a\tb\vc\fd\re  f\n"
        b"\n"
        b" \v\n"
        b"\xc3\xbcber \xc3\xbcber\xc2\xa0x y\xe2\x80\xa8z\n"
        b"\"q\" 'q' \\ , a\r\n"
        b"\f\n"
        b"\t lead trail \t\f\n"
        b"x\r\ry\v\vz\f\fw\n")
# Bytes that end a kept line: every C0 control but TAB (9), LF (10), VT (11), FF (12),
# CR (13); and DEL
BAD = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13)) + b"\x7f"


def sources():
    found = []
    top = "/usr/share/common-licenses"
    if os.path.isdir(top):
        for name in os.listdir(top):
            path = os.path.join(top, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(path)
    for folder, _, names in os.walk("/usr/share/doc"):
        for name in names:
            base = name[:-3] if name.endswith(".gz") else name
            if (base.startswith(("changelog", "NEWS", "README")) or base == "copyright"
                    or base.endswith((".txt", ".md"))):
                path = os.path.join(folder, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    found.append(path)
    return sorted(set(found), key=os.fsencode)


def kept_lines(path):
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError):
        return []
    out = []
    for line in data.split(b"\n"):
        if not line or len(line) > MAX_LINE:
            continue
        if line.translate(None, BAD) != line:
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(line + b"\n")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-s", "--size-mb", type=float, default=200)
    parser.add_argument("-n", "--files", type=int, default=8)
    parser.add_argument("outdir")
    args = parser.parse_args()
    paths = sources()
    corpus = b"".join(line for path in paths for line in kept_lines(path))
    if not corpus:
        sys.exit("text_corpus.py: no documentation text found under /usr/share/doc")
    target = int(args.size_mb * 1e6)
    per_file = target // args.files
    os.makedirs(args.outdir, exist_ok=True)
    written = 0
    pos = 0  # position in the endlessly repeated corpus
    for i in range(args.files):
        want = per_file if i < args.files - 1 else target - written
        parts = []
        have = 0
        while have < want:
            start = pos % len(corpus)
            stop = min(len(corpus), start + want - have)
            if stop < len(corpus):
                # cut after the last whole line, or take the line that crosses the end
                nl = corpus.rfind(b"\n", start, stop)
                stop = nl + 1 if nl >= 0 else corpus.index(b"\n", stop) + 1
            parts.append(corpus[start:stop])
            have += stop - start
            pos += stop - start
            if stop - start == 0:
                break
        with open(os.path.join(args.outdir, f"text-{i:02d}.txt"), "wb") as f:
            for part in parts:
                f.write(part)
            if i == args.files - 1:
                f.write(EDGE * 10)
        written += have
    lines = corpus.count(b"\n")
    print(f"text_corpus: {len(paths)} source files, {len(corpus) / 1e6:.1f} MB of corpus "
          f"({lines} lines), written {written / 1e6:.1f} MB in {args.files} "
          f"files ({pos / len(corpus):.2f} copies)")


if __name__ == "__main__":
    main()
