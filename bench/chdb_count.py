"""chDB (ClickHouse in-process) doing Tally's whole job, for bench/cardinality: read the
2012 n-gram files, sum match_count per n-gram, sort as Tally sorts (total descending,
then key bytes), and write KEY<TAB>TOTAL lines with INSERT INTO FUNCTION file().

TabSeparatedRaw both ways: no escaping, so keys are read and written as the bytes they
are. The column types are given, nothing is inferred. Files ending in .gz are inflated
by file() itself (compression from the name).

With --text (bench/peers), Tally's text format instead: every word counts 1. Each line is
read whole (LineAsString) and split with splitByWhitespace, whose white space is SP, TAB,
LF, VT, FF and CR: Tally's (the C locale's isspace).

Usage: chdb_count.py [--threads N] [--text] --output FILE FILE...
"""

import argparse
import os
import sys
import time

import chdb


def sql_string(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True)
    parser.add_argument("--text", action="store_true", help="count words (Tally's text format)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    # file() takes one path or a glob, whose {a,b,...} alternatives hold no '/': the
    # files of one folder are FOLDER/{a,b,...}; files of several folders, a UNION ALL
    paths = [os.path.abspath(path) for path in args.files]
    if any(ch in path for path in paths for ch in "{},*?"):
        sys.exit("chdb_count.py: file names with { } , * ? are not supported")
    if args.text:
        fmt, columns = "'LineAsString'", "'line String'"
    else:
        fmt, columns = "'TabSeparatedRaw'", "'ngram String, year UInt16, match UInt64, volume UInt64'"
    folders = {os.path.dirname(path) for path in paths}
    if len(folders) == 1:
        names = [os.path.basename(path) for path in paths]
        glob = os.path.join(folders.pop(), names[0] if len(names) == 1 else
                            "{" + ",".join(names) + "}")
        source = f"file({sql_string(glob)}, {fmt}, {columns})"
    else:
        source = "(" + " UNION ALL ".join(
            f"SELECT * FROM file({sql_string(path)}, {fmt}, {columns})"
            for path in paths) + ")"
    output = os.path.abspath(args.output)
    if os.path.exists(output):
        os.remove(output)  # file() refuses to append to an existing file
    if args.text:
        select = f"""SELECT word AS ngram, count() AS total
        FROM {source}
        ARRAY JOIN splitByWhitespace(line) AS word"""
    else:
        select = f"""SELECT ngram, sum(match) AS total
        FROM {source}"""
    chdb.query(f"""
        INSERT INTO FUNCTION file({sql_string(output)}, 'TabSeparatedRaw', 'ngram String, total UInt64')
        {select}
        GROUP BY ngram
        ORDER BY total DESC, ngram ASC
        SETTINGS max_threads = {int(args.threads)}""")
    print(f"chdb {chdb.__version__} (ClickHouse {chdb.engine_version}): {len(args.files)} files, "
          f"{time.monotonic() - start:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
