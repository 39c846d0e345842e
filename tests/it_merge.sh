#!/usr/bin/env bash
# tally merge: totals files of different keys merged into one, checked against sort(1)
# of their concatenation (LC_ALL=C: total descending, then key bytes). Parts split by a
# hash of the key from 1.2 M generated keys (spaces, UTF-8, bytes above 0x7f, many equal
# totals), 1, 3 and 64 parts; an empty part; a part without its last LF; to a file and to
# standard output. Bad parts (unsorted, a repeated key, a key in two parts with the same
# total, no TAB, a total past 2^64, a folder, a missing file) fail with the file and line
# named, and leave an existing output file as it was. Memory: merging ~25 MB of parts
# takes no more than merging a few KB (bench_peak: whole-tree peak RSS), plus 8 MB.
source "$(dirname "$0")/lib.sh"
TAB=$(printf '\t')
nkeys=$(scaled 1200000)

# Keys and totals, deterministic: about one total in three shared with other keys.
"$PY" - "$WORK/all.tsv" "$nkeys" <<'PYEOF'
import random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(12)
words = ["the", "of", "caf\u00e9", "na\u00efve", "\u65e5\u672c", "x y", "a", "ab", "abc", "Z"]
seen = set()
with open(out, "wb") as f:
    while len(seen) < n:
        k = (rng.choice(words) + " " + str(rng.randrange(10**6))).encode()
        if rng.random() < 0.05:
            k += bytes([0x80 + rng.randrange(0x7f)])
        if k in seen:
            continue
        seen.add(k)
        total = rng.randrange(1, 50) if rng.random() < 0.6 else rng.randrange(1, 2**63)
        f.write(k + b"\t" + str(total).encode() + b"\n")
PYEOF
sort_totals < "$WORK/all.tsv" > "$WORK/expected.tsv"

# split N: $WORK/pN/part-I.tsv, each sorted, keys split by a hash.
split_parts() {
  local n=$1 i
  mkdir -p "$WORK/p$n"
  gawk -F'\t' -v n="$n" -v dir="$WORK/p$n" \
    'BEGIN { for (i = 0; i < 256; i++) ord[sprintf("%c", i)] = i }
     { h = 0; for (i = 1; i <= length($1); i++) h = (h * 31 + ord[substr($1, i, 1)]) % 65521
       print > (dir "/raw-" (h % n)) }' "$WORK/all.tsv"
  for ((i = 0; i < n; i++)); do
    touch "$WORK/p$n/raw-$i"
    sort_totals < "$WORK/p$n/raw-$i" > "$WORK/p$n/part-$i.tsv"
    rm "$WORK/p$n/raw-$i"
  done
}

for n in 1 3 64; do
  split_parts "$n"
  "$TALLY_BIN/tally" merge --progress none -o "$WORK/merged-$n.tsv" "$WORK/p$n"/part-*.tsv \
    > "$WORK/merge-$n.out" 2>&1 && status=0 || status=$?
  check "$n part(s): tally merge exits 0" test "$status" -eq 0
  cat "$WORK/p$n"/part-*.tsv | sort_totals > "$WORK/sorted-$n.tsv"
  same_file "$n part(s): equal to sort of their concatenation" "$WORK/sorted-$n.tsv" \
    "$WORK/merged-$n.tsv"
done
same_file "the merge of the parts is the whole" "$WORK/expected.tsv" "$WORK/merged-3.tsv"
check "the summary counts the keys" grep -q "64 parts merged: $nkeys keys" "$WORK/merge-64.out"

# Ties decided across parts at the edges: the largest total (2^64-1) in every part, keys
# that are prefixes of keys in other parts with equal totals, bytes 0x01, 0x20, 0x7f
# and above 0x7f next to each other, a total of 0, one-line parts.
printf '%b\n' 'ab\t18446744073709551615' 'b\t18446744073709551615' 'ab\t7' 'ab \t7' \
  'ab\x01\t7' 'abc\t7' 'ab\x7f\t7' 'ab\x80\t7' 'ab\xff\t7' '\xc3\xa9\t7' 'a\t1' 'a\x01\t0' \
  'zero\t0' > "$WORK/edges.tsv"
sort_totals < "$WORK/edges.tsv" > "$WORK/edges-sorted.tsv"
mkdir -p "$WORK/edges"
# Line n to part n % 4, and the last line alone in a fifth part.
head -n -1 "$WORK/edges.tsv" | gawk -v dir="$WORK/edges" '{ print > (dir "/raw-" (NR % 4)) }'
tail -1 "$WORK/edges.tsv" > "$WORK/edges/raw-4"
for i in 0 1 2 3 4; do sort_totals < "$WORK/edges/raw-$i" > "$WORK/edges/part-$i.tsv"; done
"$TALLY_BIN/tally" merge --quiet -o "$WORK/edges-merged.tsv" "$WORK/edges"/part-*.tsv \
  > "$WORK/edges.out" 2>&1 && status=0 || status=$?
check "ties at the edges, 5 parts: tally merge exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || cat "$WORK/edges.out"
same_file "ties at the edges: equal to sort of the parts' concatenation" \
  "$WORK/edges-sorted.tsv" "$WORK/edges-merged.tsv"

# Standard output, an empty part, the last LF missing
: > "$WORK/empty.tsv"
head -c -1 "$WORK/p3/part-2.tsv" > "$WORK/nolf.tsv"
"$TALLY_BIN/tally" merge --quiet -o - "$WORK/p3/part-0.tsv" "$WORK/empty.tsv" "$WORK/nolf.tsv" \
  "$WORK/p3/part-1.tsv" > "$WORK/stdout.tsv" 2> "$WORK/stdout.err" && status=0 || status=$?
check "to standard output, with an empty part and no last LF: exits 0" test "$status" -eq 0
same_file "... and equals the whole" "$WORK/expected.tsv" "$WORK/stdout.tsv"

# Bad parts: exit 1, the file and line named, the output left as it was
echo "old" > "$WORK/out.tsv"
bad() {
  local title=$1 want=$2 status
  shift 2
  "$TALLY_BIN/tally" merge --progress none -o "$WORK/out.tsv" "$@" > "$WORK/bad.out" 2>&1 &&
    status=0 || status=$?
  check "$title: exits 1" test "$status" -eq 1
  check "$title: says \"$want\"" grep -qF -- "$want" "$WORK/bad.out"
  [ "$status" -eq 1 ] && grep -qF -- "$want" "$WORK/bad.out" || cat "$WORK/bad.out"
  check "$title: the output is left as it was" test "$(cat "$WORK/out.tsv")" = old
}
printf 'a\t5\nb\t7\n' > "$WORK/unsorted.tsv"
bad "unsorted" "unsorted.tsv:2: not sorted" "$WORK/unsorted.tsv"
printf 'a\t7\nb\t5\nb\t5\n' > "$WORK/twice.tsv"
bad "a key twice in a part" "twice.tsv:3: the key of the line before" "$WORK/twice.tsv"
printf 'k\t9\n' > "$WORK/one.tsv"
printf 'j\t10\nk\t9\n' > "$WORK/two.tsv"
bad "a key in two parts" "its key is in" "$WORK/one.tsv" "$WORK/two.tsv"
printf 'a\t7\nno tab here\n' > "$WORK/notab.tsv"
bad "no TAB" "notab.tsv:2: not KEY<TAB>TOTAL" "$WORK/notab.tsv"
printf 'a\t18446744073709551616\n' > "$WORK/huge.tsv"
bad "a total past 2^64" "huge.tsv:1: the total is not a decimal number" "$WORK/huge.tsv"
printf 'a\t-1\n' > "$WORK/negative.tsv"
bad "a negative total" "negative.tsv:1: the total is not a decimal number" "$WORK/negative.tsv"
bad "a folder" "Is a directory" "$WORK/p3"
bad "a missing file" "No such file" "$WORK/missing.tsv"
"$TALLY_BIN/tally" merge > /dev/null 2>&1 && status=0 || status=$?
check "no part: usage error (exit 2)" test "$status" -eq 2

# Memory does not grow with the parts: the same tree peak RSS for ~25 MB as for a few KB
peak() {
  "$TALLY_BIN/bench_peak" -i 5 -o "$WORK/peak.txt" -- "$TALLY_BIN/tally" merge --quiet \
    -o "$WORK/peak-out.tsv" "$@" > /dev/null 2>&1
  sed -n -E 's/.*peak_tree_kib=([0-9]+).*/\1/p' "$WORK/peak.txt"
}
# A merge of a few bytes can end before the sampler's first look (140 KiB seen once
# against ~4.5 MB usually): the highest of three runs.
small=0
for run in 1 2 3; do
  kib=$(peak "$WORK/one.tsv" "$WORK/empty.tsv")
  [ "${kib:-0}" -gt "$small" ] && small=$kib
done
large=$(peak "$WORK/p3"/part-*.tsv)
echo "peak RSS merging a few bytes: ${small} KiB; $(du -sh "$WORK/p3" | cut -f1) of parts: ${large} KiB"
# AddressSanitizer's allocator and shadow memory grow with the bytes read (about 10 MB
# more here for the larger parts, quarantine or not): the bound is the plain build's.
if [ "${TALLY_VARIANT:-plain}" = sanitize ]; then
  echo "note: the memory bound is checked in the plain build only (AddressSanitizer's own memory grows with the input)"
else
  check "merging large parts needs no more memory than small ones, plus 8 MB" \
    test "${large:-999999999}" -le $((${small:-0} + 8192))
fi
finish
