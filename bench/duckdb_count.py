"""DuckDB doing Tally's whole job, for bench/run: read the 2012 n-gram files (plain or
.gz: read_csv inflates by the file name), sum match_count per n-gram, sort as Tally
sorts (total descending, then key), and write KEY<TAB>TOTAL lines with COPY ... TO.

Quoting and escaping are off both ways, so keys holding quotes or backslashes are read
and written as the bytes they are. The column types are given, nothing is sniffed.

With --text (bench/peers), Tally's text format instead: every word counts 1, a word
being a run of bytes other than SP, TAB, LF, VT, FF and CR (Tally's white space, the C
locale's isspace). Each line is read whole as one VARCHAR (the delimiter is byte 0x01,
which the input must not hold; lines end at LF, strict mode off so that a CR inside a
line is just a byte), its words taken with regexp_extract_all and unnested.

Usage: duckdb_count.py [--threads N] [--text] --output FILE FILE...
"""

import argparse
import sys
import time

import duckdb


def sql_string(text):
    return "'" + text.replace("'", "''") + "'"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True)
    parser.add_argument("--text", action="store_true", help="count words (Tally's text format)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    con = duckdb.connect()
    con.execute(f"SET threads={args.threads}")
    files = ", ".join(sql_string(path) for path in args.files)
    if args.text:
        query = f"""
            SELECT word, count(*) AS total
            FROM (SELECT unnest(regexp_extract_all(line, '[^ \\t\\n\\v\\f\\r]+')) AS word
                  FROM read_csv([{files}], delim='\x01', new_line='\\n', header=false,
                                quote='', escape='', strict_mode=false, auto_detect=false,
                                columns={{'line': 'VARCHAR'}}))
            GROUP BY 1
            ORDER BY 2 DESC, 1"""
    else:
        query = f"""
            SELECT column0 AS ngram, sum(column2) AS total
            FROM read_csv([{files}], delim='\t', header=false, quote='', escape='',
                          auto_detect=false,
                          columns={{'column0': 'VARCHAR', 'column1': 'INTEGER',
                                   'column2': 'BIGINT', 'column3': 'BIGINT'}})
            GROUP BY 1
            ORDER BY 2 DESC, 1"""
    con.execute(f"""
        COPY ({query}) TO {sql_string(args.output)} (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '',
                                        ESCAPE '')""")
    print(f"duckdb {duckdb.__version__}: {len(args.files)} files, "
          f"{time.monotonic() - start:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
