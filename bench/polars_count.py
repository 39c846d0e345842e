"""Polars doing Tally's whole job, for bench/cardinality: read the 2012 n-gram files
(tab-separated, no header, no quoting), sum match_count per n-gram, sort as Tally sorts
(total descending, then key), and write KEY<TAB>TOTAL lines, all in one lazy query
(scan_csv -> group_by -> sort -> sink_csv).

The thread count goes to POLARS_MAX_THREADS, which Polars reads once, when imported.
Keys are read as UTF-8 strings: the generated input is ASCII.

Usage: polars_count.py [--threads N] --output FILE FILE...
"""

import argparse
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl

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
