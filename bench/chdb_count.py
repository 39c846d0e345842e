"""chDB (ClickHouse in-process) doing Tally's whole job, for bench/cardinality: read the
2012 n-gram files, sum match_count per n-gram, sort as Tally sorts (total descending,
then key bytes), and write KEY<TAB>TOTAL lines with INSERT INTO FUNCTION file().

TabSeparatedRaw both ways: no escaping, so keys are read and written as the bytes they
are. The column types are given, nothing is inferred.

Usage: chdb_count.py [--threads N] --output FILE FILE...
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
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    # file() takes one path or a glob, whose {a,b,...} alternatives hold no '/': the
    # files of one folder are FOLDER/{a,b,...}; files of several folders, a UNION ALL
    paths = [os.path.abspath(path) for path in args.files]
    if any(ch in path for path in paths for ch in "{},*?"):
        sys.exit("chdb_count.py: file names with { } , * ? are not supported")
    columns = "'ngram String, year UInt16, match UInt64, volume UInt64'"
    folders = {os.path.dirname(path) for path in paths}
    if len(folders) == 1:
        names = [os.path.basename(path) for path in paths]
        glob = os.path.join(folders.pop(), names[0] if len(names) == 1 else
                            "{" + ",".join(names) + "}")
        source = f"file({sql_string(glob)}, 'TabSeparatedRaw', {columns})"
    else:
        source = "(" + " UNION ALL ".join(
            f"SELECT * FROM file({sql_string(path)}, 'TabSeparatedRaw', {columns})"
            for path in paths) + ")"
    output = os.path.abspath(args.output)
    if os.path.exists(output):
        os.remove(output)  # file() refuses to append to an existing file
    chdb.query(f"""
        INSERT INTO FUNCTION file({sql_string(output)}, 'TabSeparatedRaw', 'ngram String, total UInt64')
        SELECT ngram, sum(match) AS total
        FROM {source}
        GROUP BY ngram
        ORDER BY total DESC, ngram ASC
        SETTINGS max_threads = {int(args.threads)}""")
    print(f"chdb {chdb.__version__} (ClickHouse {chdb.engine_version}): {len(args.files)} files, "
          f"{time.monotonic() - start:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
