#!/usr/bin/python3
"""The Python design that Tally replaces, kept as a baseline for bench/run.

asyncio + aiofiles read every input file whole into memory; the lines are split into
partitions of 60,000 lines, each mapped to a partial dict (key -> sum of match_count)
in a ProcessPoolExecutor through loop.run_in_executor; the partial dicts are merged
with functools.reduce. Writes KEY<TAB>TOTAL lines sorted as Tally sorts them (total
descending, then key bytes ascending).

Usage: python_baseline.py [--workers N] [--output FILE] FILE...
Needs Debian's python3-aiofiles (run it with /usr/bin/python3).
"""

import argparse
import asyncio
import functools
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import aiofiles

PARTITION_LINES = 60_000


async def read_whole(path):
    async with aiofiles.open(path, "r", encoding="utf-8", newline="") as f:
        return await f.read()


def count_partition(lines):
    """Maps 2012 n-gram lines (ngram, year, match_count, volume_count) to key -> sum."""
    partial = {}
    for line in lines:
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        key = fields[0]
        partial[key] = partial.get(key, 0) + int(fields[2])
    return partial


def merge(total, partial):
    for key, count in partial.items():
        total[key] = total.get(key, 0) + count
    return total


async def run(paths, workers):
    loop = asyncio.get_running_loop()
    texts = await asyncio.gather(*(read_whole(path) for path in paths))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = []
        for text in texts:
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            for start in range(0, len(lines), PARTITION_LINES):
                part = lines[start:start + PARTITION_LINES]
                futures.append(loop.run_in_executor(pool, count_partition, part))
        partials = await asyncio.gather(*futures)
    return functools.reduce(merge, partials, {}), len(partials)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default="totals.tsv")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    totals, partitions = asyncio.run(run(args.files, args.workers))
    # Code point order of str is the byte order of its UTF-8 encoding
    items = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    with open(args.output, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{key}\t{count}\n" for key, count in items)
    print(f"python_baseline: {len(args.files)} files, {partitions} partitions, "
          f"{len(items)} keys, {time.monotonic() - start:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
