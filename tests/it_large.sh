#!/usr/bin/env bash
# tally run on a generated n-gram 2012 data set of a few hundred MB (300 MB plain, 75 MB
# sanitized) in 6 files: the same keys in every file, each key's years on consecutive
# lines, so with the default 1 MiB chunks most chunk boundaries fall inside a key's run.
# Totals equal gawk's. The run's wall time and MB/s are printed (never asserted).
source "$(dirname "$0")/lib.sh"
mb=$(scaled 300)

t0=$(now)
gen_ngram2012 "$WORK/data" 6 "$mb" 7
echo "generated $mb MB in 6 files in $(elapsed "$t0") s"
bytes=$(cat "$WORK"/data/*.tsv | wc -c)
check "data set is at least $mb MB" test "$bytes" -ge $((mb * 1000000))

# The data does what it is for: keys recur across files and runs straddle 1 MiB marks.
"$PY" - "$WORK"/data/*.tsv > "$WORK/shape" <<'PYEOF'
import sys
keys_per_file, inside, marks = [], 0, 0
for name in sys.argv[1:]:
    data = open(name, "rb").read()
    keys_per_file.append({line.split(b"\t", 1)[0] for line in data.split(b"\n") if line})
    for mark in range(1 << 20, len(data), 1 << 20):
        start = data.rfind(b"\n", 0, mark) + 1
        end = data.find(b"\n", mark)
        after = data[end + 1:data.find(b"\t", end + 1)]
        before = data[start:data.find(b"\t", start)]
        marks += 1
        inside += before == after
files_of = {}
for keys in keys_per_file:
    for key in keys:
        files_of[key] = files_of.get(key, 0) + 1
print(sum(n >= 2 for n in files_of.values()), inside, marks)
PYEOF
read -r common inside marks < "$WORK/shape"
echo "keys in 2 files or more: $common; 1 MiB marks inside a key's run: $inside of $marks"
check "many keys appear in several files" test "$common" -ge 1000
check "most 1 MiB marks fall inside a key's run" test $((inside * 2)) -gt "$marks"

t0=$(now)
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
echo "gawk took $(elapsed "$t0") s"

t0=$(now)
"$TALLY_BIN/tally" run --workers 2 --output "$WORK/totals.tsv" "$WORK"/data/*.tsv \
  > "$WORK/stdout" 2> "$WORK/stderr" && status=0 || status=$?
seconds=$(elapsed "$t0")
gawk -v b="$bytes" -v s="$seconds" 'BEGIN{printf "tally run: %.1f MB in %.2f s wall, %.1f MB/s\n", b / 1e6, s, b / 1e6 / s}'
check "tally run exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/stderr"
same_file "totals equal gawk's on $mb MB" "$WORK/expected.tsv" "$WORK/totals.tsv"
read -r lines bad filtered keys sum <<< "$(summary_numbers "$WORK/stdout")" || true
check "summary counts every line" test "${lines:-}" = "$(cat "$WORK"/data/*.tsv | wc -l)"
check "summary: no bad line" test "${bad:-}" = 0
check "summary sum equals gawk's" test "${sum:-}" = "$(sum_totals "$WORK/expected.tsv")"
check "no tally process left" no_leftovers
finish
