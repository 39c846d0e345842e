#!/usr/bin/env bash
# Edge cases of the input, through `tally run --workers 2`, mostly with 4K chunks: keys
# with spaces and with bytes that are not UTF-8, a file without a final newline, an empty
# file, lines longer than a chunk (a 100 KB key), key runs across chunk and file
# boundaries, CRLF files; each format (ngram2012, ngram2009, ngram2020, text) detected and
# forced; malformed lines counted as bad without changing other totals; --year-min,
# --year-max and --skip-pos. Expected totals come from gawk.
source "$(dirname "$0")/lib.sh"
in="$WORK/in"  # inputs given to tally
ref="$WORK/ref"  # reference files for gawk only
mkdir -p "$in" "$ref"

# ---------------------------------------------------------------------------------------
# The inputs, written byte by byte.
"$PY" - "$in" "$ref" <<'PYEOF'
import os, random, sys
src, ref = sys.argv[1], sys.argv[2]
rng = random.Random(5)

def put(folder, name, data):
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)

def l12(key, year, count, end=b"\n"):
    return b"%s\t%d\t%d\t%d%s" % (key, year, count, rng.randint(1, 99), end)

def l09(key, year, count):
    return b"%s\t%d\t%d\t%d\t%d\n" % (key, year, count, rng.randint(1, 99), rng.randint(1, 99))

def l20(key, years, end=b"\n"):
    triples = b"\t".join(b"%d,%d,%d" % (y, rng.randint(0, 999), rng.randint(1, 99)) for y in years)
    return key + b"\t" + triples + end

def run12(key, first, count, end=b"\n"):
    return [l12(key, y, rng.randint(0, 999), end) for y in range(first, first + count)]

def long_key(size):
    letters = b"abcdefghij \xc3\xa9\xff"
    return bytes(rng.choice(letters) for _ in range(size)).strip(b" ") + b"z"

odd_keys = [b"of the", b"in the end", b"New York City", b" leading space", b"trailing space ",
            b"two  spaces", b"\xff\xfe", b"caf\xe9 au lait", b"na\xc3\xafve", b"\xe2\x82\xac 100",
            b"x", b"word", b"_START_ the", b"a\\b\"c"]

# ngram2012: odd keys (with spaces, bytes that are not UTF-8, backslash, quote), a key with
# only zero counts, a run of 3000 lines (about 60 KB: many 4K chunks), 100 KB keys, a run
# across two files, CRLF, no final newline.
lines = []
for key in odd_keys:
    lines += run12(key, 1990, rng.randint(1, 40))
lines += [l12(b"zero count", 2000, 0), l12(b"zero count", 2001, 0)]
put(src, "a2012-keys.tsv", b"".join(lines))
put(src, "a2012-crossing.tsv", b"".join(run12(b"of the", 1950, 30) +
                                         run12(b"long run crossing chunks", 1, 3000) +
                                         run12(b"after the run", 1900, 100)))
big1, big2 = long_key(100000), long_key(100000)
put(src, "a2012-longkey.tsv", b"".join(run12(b"before", 1900, 50) + run12(big1, 1990, 2) +
                                        run12(b"between", 1900, 50) + run12(big2, 2000, 1) +
                                        run12(b"after", 1900, 50)))
nolf = b"".join(run12(b"no newline", 1900, 200) + run12(b"last key", 1900, 3))
put(src, "a2012-nolf.tsv", nolf[:-1])
put(src, "a2012-across1.tsv", b"".join(run12(b"word", 1800, 20) + run12(b"across files", 1800, 150)))
put(src, "a2012-across2.tsv", b"".join(run12(b"across files", 1950, 150) + run12(b"x", 1800, 20)))
put(src, "a2012-crlf.tsv", b"".join(run12(b"crlf key", 1900, 300, b"\r\n") +
                                     run12(b"of the", 1700, 10, b"\r\n")))
put(src, "e-empty.tsv", b"")

# ngram2009: five columns; odd keys, a run across chunks.
lines = []
for key in odd_keys:
    lines += [l09(key, y, rng.randint(1, 999)) for y in range(1980, 1980 + rng.randint(1, 30))]
lines += [l09(b"long 2009 run", y, rng.randint(1, 999)) for y in range(1000, 3000)]
put(src, "b2009.tsv", b"".join(lines))

# ngram2020: one line per key, TAB-separated year,match,volume triples; lines longer than
# a chunk (300 triples; a 100 KB key), a key repeated on consecutive lines, CRLF, and no
# final newline.
lines = [l20(key, range(1990, 1990 + rng.randint(1, 30))) for key in odd_keys]
lines += [l20(b"many years", range(1700, 2000))]
lines += [l20(b"repeated", range(1900 + i, 1905 + i)) for i in range(3)]
lines += [l20(long_key(100000), range(1990, 1993))]
put(src, "c2020.tsv", b"".join(lines))
crlf = b"".join([l20(b"crlf 2020 key %d" % i, range(1950, 1950 + i + 1), b"\r\n") for i in range(60)]
                + [l20(b"of the", range(1950, 1960), b"\r\n")])
put(src, "c2020-crlf.tsv", crlf[:-2])

# Text: words between any white space (space, TAB, CR, LF, VT, FF, runs of them), bytes
# that are not UTF-8, a 100 KB word, CRLF, no final newline, blank lines.
words = [b"the", b"of", b"caf\xe9", b"\xff\xfe", b"na\xc3\xafve", b"x", b"a\\b", b"New", b"York"]
lines = []
for i in range(800):
    seps = [b" ", b"  ", b"\t", b" \t ", b"\x0b", b"\x0c"]
    line = b""
    for j in range(rng.randint(0, 12)):
        line += rng.choice(words) + rng.choice(seps)
    lines.append(line + (b"\r\n" if i % 7 == 0 else b"\n"))
lines.insert(400, b"before " + long_key(100000).replace(b" ", b"_") + b" after\n")
put(src, "d-text.txt", b"".join(lines)[:-1])
put(src, "d-text-crlf.txt", b"".join(w + b" " + w + b"\r\n" for w in words * 50))
put(src, "e-empty.txt", b"")

# POS tags, for --skip-pos: tagged tokens in any position; look-alikes that are not tags.
pos_keys = [b"run", b"run_VERB", b"dog_NOUN", b"the_DET dog", b"the dog_NOUN", b"_NOUN_",
            b"_START_ the", b"the _END_", b"_ROOT_", b"end_.", b"C_X", b"fast_ADV", b"big_ADJ",
            b"it_PRON", b"in_ADP", b"one_NUM", b"and_CONJ", b"up_PRT",
            b"e_mail", b"snake_case", b"x_", b"_X", b"__NOUN_", b"NOUN", b"_NOUNS", b"dog_NOUNS",
            b"dog _NOUN", b"_VERB_ run"]
lines = []
for key in pos_keys:
    lines += run12(key, 1940, rng.randint(1, 80))
put(src, "f2012-pos.tsv", b"".join(lines))
put(src, "f2020-pos.tsv", b"".join(l20(key, range(1940, 1940 + rng.randint(1, 80))) for key in pos_keys))

# Malformed lines among good ones (inside a key's run, too); ref/ gets the good lines alone
# and the byte offsets of the bad ones.
bad12 = [b"word\tabc\t3\t1", b"word\t1999\t3", b"word\t1999\t1234567890123456789012345\t1",
         b"word\t1999\t18446744073709551616\t1", b"\t1999\t3\t1", b"word\t1999\t3\t1\t7",
         b"word\t-1999\t3\t1", b"word\t1999\t+3\t1", b"word\t1999\t3\t", b"word", b"",
         b"word\t1999\t3\t1 "]
bad20 = [b"key\t1999,abc,1", b"key\t1999,3", b"key\t1999,3,1,4", b"key\t", b"key",
         b"key\t1999,99999999999999999999999,1", b"\t1999,3,1"]
for name, good, bad in (("g2012-bad.tsv", run12(b"word", 1800, 240) + run12(b"other", 1800, 60), bad12),
                        ("g2020-bad.tsv", [l20(b"key %d" % (i % 7), range(1990, 1995)) for i in range(200)], bad20)):
    mixed, offsets, size = [], [], 0
    step = len(good) // (len(bad) + 1)
    for i, line in enumerate(good):
        if i and i % step == 0 and len(offsets) < len(bad):
            offsets.append(size)
            mixed.append(bad[len(offsets) - 1] + b"\n")
            size += len(mixed[-1])
        mixed.append(line)
        size += len(line)
    put(src, name, b"".join(mixed))
    put(ref, name, b"".join(good))
    put(ref, name + ".offsets", b"".join(b"%d\n" % o for o in offsets))
PYEOF

# ---------------------------------------------------------------------------------------
# Independent expectations (gawk).

# Sums the match counts of every year,match,volume triple of ngram2020 files.
expected_2020() {
  gawk -F'\t' -v ymin="${YMIN:-0}" -v ymax="${YMAX:-4294967295}" -v skip="${SKIP:-0}" "$TAGGED"'
    { s = 0; kept = 0
      for (i = 2; i <= NF; i++) {
        split($i, t, ",")
        if (t[1] + 0 >= ymin && t[1] + 0 <= ymax) { s += t[2]; kept = 1 }
      }
      if (kept && !(skip && tagged($1))) sum[$1] += s }
    END { for (k in sum) printf "%s\t%d\n", k, sum[k] }' "$@" | sort_totals
}

# ngram2009/2012 totals with the year and POS filters (YMIN, YMAX, SKIP).
expected_filtered() {
  gawk -F'\t' -v ymin="${YMIN:-0}" -v ymax="${YMAX:-4294967295}" -v skip="${SKIP:-0}" "$TAGGED"'
    $2 + 0 >= ymin && $2 + 0 <= ymax && !(skip && tagged($1)) { sum[$1] += $3 }
    END { for (k in sum) printf "%s\t%d\n", k, sum[k] }' "$@" | sort_totals
}

# Lines the same filters leave out (ngram2009/2012).
expected_filtered_out() {
  gawk -F'\t' -v ymin="${YMIN:-0}" -v ymax="${YMAX:-4294967295}" -v skip="${SKIP:-0}" "$TAGGED"'
    !($2 + 0 >= ymin && $2 + 0 <= ymax && !(skip && tagged($1))) { n++ }
    END { print n + 0 }' "$@"
}

# A key is POS-tagged when one of its space-separated tokens is word_TAG, _TAG_, or one
# of _ROOT_ _START_ _END_ (the Google Books 2012 tag set).
TAGGED='
  function tagged(key,   n, tok, i) {
    n = split(key, tok, / /)
    for (i = 1; i <= n; i++)
      if (tok[i] ~ /.+_(NOUN|VERB|ADJ|ADV|PRON|DET|ADP|NUM|CONJ|PRT|X|\.)$/ ||
          tok[i] ~ /^_(NOUN|VERB|ADJ|ADV|PRON|DET|ADP|NUM|CONJ|PRT|X|\.)_$/ ||
          tok[i] ~ /^_(ROOT|START|END)_$/)
        return 1
    return 0
  }'

# Adds up totals files (KEY<TAB>TOTAL) key by key.
merge_totals() {
  cat "$@" | gawk -F'\t' '{s[$1] += $2} END {for (k in s) printf "%s\t%d\n", k, s[k]}' | sort_totals
}

# tally_run NAME ARGS...: tally run --workers 2 ARGS, totals to $WORK/NAME.tsv, stdout
# and stderr to $WORK/NAME.out and .err; checks it exits 0 and reads the summary.
tally_run() {
  local name=$1; shift
  "$TALLY_BIN/tally" run --workers 2 --output "$WORK/$name.tsv" "$@" \
    > "$WORK/$name.out" 2> "$WORK/$name.err" && status=0 || status=$?
  check "$name: tally run exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/$name.err" | sed 's/^/    /'
  read -r lines bad filtered keys sum <<< "$(summary_numbers "$WORK/$name.out")" || true
}

# check_summary NAME EXPECTED_TOTALS LINES BAD [FILTERED]: the summary agrees.
check_summary() {
  local name=$1 expected=$2
  check "$name: summary counts $3 lines" test "${lines:-}" = "$3"
  check "$name: summary counts $4 bad" test "${bad:-}" = "$4"
  if [ $# -ge 5 ]; then check "$name: summary counts $5 filtered out" test "${filtered:-}" = "$5"; fi
  check "$name: summary keys equal the expected count" test "${keys:-}" = "$(wc -l < "$expected")"
  check "$name: summary sum equals the expected sum" test "${sum:-}" = "$(sum_totals "$expected")"
}

records() { gawk 'END {print NR}' "$@"; }

g12=("$in"/a2012-*.tsv "$in/e-empty.tsv")
g09=("$in/b2009.tsv")
g20=("$in"/c2020*.tsv)
gtext=("$in"/d-text*.txt "$in/e-empty.txt")
expected_ngram "${g12[@]}" > "$WORK/exp12.tsv"
expected_ngram "${g09[@]}" > "$WORK/exp09.tsv"
expected_2020 "${g20[@]}" > "$WORK/exp20.tsv"
expected_text "${gtext[@]}" > "$WORK/exptext.tsv"
merge_totals "$WORK"/exp{12,09,20,text}.tsv > "$WORK/expall.tsv"
all=("${g12[@]}" "${g09[@]}" "${g20[@]}" "${gtext[@]}")

# The reference data holds what it should (so a pass means something).
check "data: a 100 KB key is expected" gawk -F'\t' 'length($1) > 100000 {f = 1} END {exit !f}' "$WORK/exp12.tsv"
check "data: a key with bytes that are not UTF-8 is expected" grep -q $'^\xff\xfe\t' "$WORK/exp12.tsv"
check "data: a key with a zero total is expected" grep -q $'^zero count\t0$' "$WORK/exp12.tsv"
check "data: a text word of 100 KB is expected" gawk -F'\t' 'length($1) > 100000 {f = 1} END {exit !f}' "$WORK/exptext.tsv"

# ---------------------------------------------------------------------------------------
# Each format, detected and forced, with 4K chunks.
for group in 12:ngram2012 09:ngram2009 20:ngram2020 text:text; do
  id=${group%%:*}; format=${group#*:}
  case $id in
    12) files=("${g12[@]}") ;; 09) files=("${g09[@]}") ;;
    20) files=("${g20[@]}") ;; text) files=("${gtext[@]}") ;;
  esac
  for how in auto "$format"; do
    name="$format-$how"
    tally_run "$name" --chunk-size 4K --format "$how" "${files[@]}"
    same_file "$name: totals equal gawk's" "$WORK/exp$id.tsv" "$WORK/$name.tsv"
    check_summary "$name" "$WORK/exp$id.tsv" "$(records "${files[@]}")" 0
  done
done

# Every file in one job, each detected on its own; once with 4K chunks, once with 1M.
for chunk in 4K 1M; do
  tally_run "mixed-$chunk" --chunk-size "$chunk" "${all[@]}"
  same_file "mixed-$chunk: every format detected per file, totals equal gawk's" \
    "$WORK/expall.tsv" "$WORK/mixed-$chunk.tsv"
  check_summary "mixed-$chunk" "$WORK/expall.tsv" "$(records "${all[@]}")" 0
done

# A job of empty files only: an empty totals file, all zeros in the summary.
tally_run only-empty --chunk-size 4K "$in/e-empty.tsv" "$in/e-empty.txt"
check "only empty files: an empty totals file" test -f "$WORK/only-empty.tsv" -a ! -s "$WORK/only-empty.tsv"
check "only empty files: summary says 0 lines, 0 keys, sum 0" \
  test "${lines:-}/${bad:-}/${keys:-}/${sum:-}" = "0/0/0/0"

# A forced format wins over what the file looks like: n-gram lines counted as text.
expected_text "$in/a2012-keys.tsv" > "$WORK/exp-as-text.tsv"
tally_run forced-text --format text "$in/a2012-keys.tsv"
same_file "ngram2012 file forced to text: words counted" "$WORK/exp-as-text.tsv" "$WORK/forced-text.tsv"

# ---------------------------------------------------------------------------------------
# Malformed lines: counted as bad, logged with file and byte offset, nothing else changes.
for file in g2012-bad.tsv g2020-bad.tsv; do
  nbad=$(wc -l < "$ref/$file.offsets")
  if [ "$file" = g2012-bad.tsv ]; then
    expected_ngram "$ref/$file" > "$WORK/exp-$file"
    formats="auto ngram2012"
  else
    expected_2020 "$ref/$file" > "$WORK/exp-$file"
    formats="auto ngram2020"
  fi
  for how in $formats; do
    name="$file-$how"
    tally_run "$name" --chunk-size 4K --format "$how" "$in/$file"
    same_file "$name: $nbad malformed lines change no total" "$WORK/exp-$file" "$WORK/$name.tsv"
    check_summary "$name" "$WORK/exp-$file" "$(records "$in/$file")" "$nbad"
    # The services log on stdout (CZMQ's default), so look in both.
    cat "$WORK/$name.out" "$WORK/$name.err" |
      sed -n -E "s|.*$in/$file: malformed line at byte ([0-9]+) skipped.*|\1|p" |
      sort -n > "$WORK/$name.logged"
    check "$name: some malformed lines are logged with their file" test -s "$WORK/$name.logged"
    check "$name: at most 10 are logged" test "$(wc -l < "$WORK/$name.logged")" -le 10
    check "$name: each logged byte offset is one of a malformed line" \
      bash -c "comm -13 <(sort '$ref/$file.offsets') <(sort '$WORK/$name.logged') | grep -q . && exit 1 || exit 0"
  done
done

# ---------------------------------------------------------------------------------------
# Filters, against gawk with the same filter.
pos12=("$in/f2012-pos.tsv" "$TALLY_SOURCE_DIR"/data/sample/*-[a-c].head10k.tsv)
export YMIN=1950 YMAX=2000
expected_filtered "${g12[@]}" "${g09[@]}" > "$WORK/exp-years-ngram.tsv"
expected_2020 "${g20[@]}" > "$WORK/exp-years-2020.tsv"
merge_totals "$WORK/exp-years-ngram.tsv" "$WORK/exp-years-2020.tsv" > "$WORK/exp-years.tsv"
out=$(expected_filtered_out "${g12[@]}" "${g09[@]}")
tally_run years12 --chunk-size 4K --year-min 1950 --year-max 2000 "${g12[@]}" "${g09[@]}"
same_file "years 1950-2000 (2009, 2012): totals equal gawk's" "$WORK/exp-years-ngram.tsv" "$WORK/years12.tsv"
check_summary years12 "$WORK/exp-years-ngram.tsv" "$(records "${g12[@]}" "${g09[@]}")" 0 "$out"
tally_run years --chunk-size 4K --year-min 1950 --year-max 2000 "${g12[@]}" "${g09[@]}" "${g20[@]}"
same_file "years 1950-2000 (2009, 2012, 2020): totals equal gawk's" "$WORK/exp-years.tsv" "$WORK/years.tsv"
unset YMIN YMAX

export SKIP=1
expected_filtered "${pos12[@]}" > "$WORK/exp-pos12.tsv"
expected_2020 "$in/f2020-pos.tsv" > "$WORK/exp-pos20.tsv"
merge_totals "$WORK/exp-pos12.tsv" "$WORK/exp-pos20.tsv" > "$WORK/exp-pos.tsv"
out=$(expected_filtered_out "${pos12[@]}")
check "data: --skip-pos has tagged keys to leave out" test "$out" -gt 0
tally_run skip-pos12 --chunk-size 4K --skip-pos "${pos12[@]}"
same_file "--skip-pos (2012, with the real sample): totals equal gawk's" "$WORK/exp-pos12.tsv" "$WORK/skip-pos12.tsv"
check_summary skip-pos12 "$WORK/exp-pos12.tsv" "$(records "${pos12[@]}")" 0 "$out"
tally_run skip-pos --chunk-size 4K --skip-pos "${pos12[@]}" "$in/f2020-pos.tsv"
same_file "--skip-pos (2012 and 2020): totals equal gawk's" "$WORK/exp-pos.tsv" "$WORK/skip-pos.tsv"

export YMIN=1960 YMAX=1990
expected_filtered "${pos12[@]}" > "$WORK/exp-both.tsv"
out=$(expected_filtered_out "${pos12[@]}")
tally_run both --chunk-size 4K --skip-pos --year-min 1960 --year-max 1990 "${pos12[@]}"
same_file "--skip-pos with years 1960-1990: totals equal gawk's" "$WORK/exp-both.tsv" "$WORK/both.tsv"
check_summary both "$WORK/exp-both.tsv" "$(records "${pos12[@]}")" 0 "$out"
unset SKIP YMIN YMAX

check "no tally process left" no_leftovers
finish
