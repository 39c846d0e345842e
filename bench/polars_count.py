"""Polars doing Tally's whole job, for bench/cardinality and bench/peers: read the 2012
n-gram files (tab-separated, no header, no quoting; .gz too: scan_csv inflates each file
by its name), sum match_count per n-gram, sort as Tally sorts (total descending, then
key), and write KEY<TAB>TOTAL lines, all in one lazy query (scan_csv -> group_by -> sort
-> sink_csv).

With --text, Tally's text format instead: every word counts 1, a word being a run of
bytes other than SP, TAB, LF, VT, FF and CR (Tally's white space, the C locale's
isspace). Each line is read whole as one string column (the separator is byte 0x01,
which the input must not hold), its words taken with str.extract_all, exploded, counted
with group_by().len().

The thread count goes to POLARS_MAX_THREADS, which Polars reads once, when imported.
Keys are read as UTF-8 strings: the input must be valid UTF-8.

Usage: polars_count.py [--threads N] [--text] --output FILE FILE...
"""

import argparse
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True)
    parser.add_argument("--text", action="store_true", help="count words (Tally's text format)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl

    if args.text:
        query = (
            pl.scan_csv(args.files, separator="\x01", has_header=False, quote_char=None,
                        schema={"line": pl.String}, glob=False)
            .select(pl.col("line").str.extract_all(r"[^ \t\n\v\f\r]+").alias("word"))
            .explode("word")
            .drop_nulls()  # an empty or blank line explodes to one null
            .group_by("word")
            .len(name="total")
            .sort(["total", "word"], descending=[True, False])
        )
    else:
        schema = {"ngram": pl.String, "year": pl.Int32, "match": pl.Int64, "volume": pl.Int64}
        query = (
            pl.scan_csv(args.files, separator="\t", has_header=False, quote_char=None,
                        schema=schema, glob=False)
            .group_by("ngram")
            .agg(pl.col("match").sum().alias("total"))
            .sort(["total", "ngram"], descending=[True, False])
        )
    query.sink_csv(args.output, separator="\t", include_header=False, quote_style="never")
    print(f"polars {pl.__version__} ({pl.thread_pool_size()} threads): {len(args.files)} files, "
          f"{time.monotonic() - start:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
