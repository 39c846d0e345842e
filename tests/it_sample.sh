#!/usr/bin/env bash
# tally run on the bundled real Google Books sample (format auto-detected):
# totals equal gawk's, the summary and top 10 are printed, nothing is left running.
source "$(dirname "$0")/lib.sh"
sample="$TALLY_SOURCE_DIR/data/sample"
expected_ngram "$sample"/*.tsv > "$WORK/expected.tsv"

"$TALLY_BIN/tally" run --workers 2 --output "$WORK/totals.tsv" "$sample"/*.tsv \
  > "$WORK/stdout" 2> "$WORK/stderr" && status=0 || status=$?
check "tally run exits 0" test "$status" -eq 0
same_file "totals equal gawk's on data/sample" "$WORK/expected.tsv" "$WORK/totals.tsv"
check "summary names the line count" grep -q "260000 lines" "$WORK/stdout"
check "top 10 printed" grep -q "^top 10:" "$WORK/stdout"
first_key=$(head -1 "$WORK/expected.tsv" | cut -f1)
check "top 10 starts with the largest key" grep -qF "1. $first_key" "$WORK/stdout"

# A folder as input is read like its files.
"$TALLY_BIN/tally" run --workers 1 --quiet --output "$WORK/folder.tsv" "$sample" && status=0 || status=$?
check "a folder as input works" test "$status" -eq 0
same_file "folder totals equal gawk's" "$WORK/expected.tsv" "$WORK/folder.tsv"
check "no tally process left" no_leftovers
finish
