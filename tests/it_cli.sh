#!/usr/bin/env bash
# The command lines of every program: --help and --version; bad usage exits 2 with a
# one-line reason on stderr; a missing input is named before any work starts (no totals
# file, nothing left running); options taken from the environment (TALLY_OUTPUT, ...),
# with the command line winning over the environment.
source "$(dirname "$0")/lib.sh"
sample="$TALLY_SOURCE_DIR/data/sample"
one="$sample/googlebooks-eng-all-1gram-20120701-a.head10k.tsv"
version=$(sed -n -E 's/^project\(tally VERSION ([0-9.]+).*/\1/p' "$TALLY_SOURCE_DIR/CMakeLists.txt")
mkdir -p "$WORK/cwd"
cd "$WORK/cwd"  # where a default totals.tsv would land

# run NAME PROGRAM ARGS...: runs with a 30 s limit; sets $status, $out, $err (file names)
# and $took (seconds).
run() {
  local name=$1; shift
  out="$WORK/$name.out"; err="$WORK/$name.err"
  local t0; t0=$(now)
  timeout 30 "$@" > "$out" 2> "$err" < /dev/null && status=0 || status=$?
  took=$(elapsed "$t0")
}

lines_of() { wc -l < "$1"; }
empty() { ! [ -s "$1" ]; }
cwd_clean() { [ -z "$(ls -A "$WORK/cwd")" ]; }

# --help and --version of every program.
for program in tally tally-sink tally-worker tally-ventilator tally-watch; do
  run "$program-help" "$TALLY_BIN/$program" --help
  check "$program --help exits 0" test "$status" -eq 0
  check "$program --help starts with its usage" grep -q "^Usage: $program " "$out"
  check "$program --help writes nothing on stderr" empty "$err"
  run "$program-version" "$TALLY_BIN/$program" --version
  check "$program --version exits 0" test "$status" -eq 0
  check "$program --version prints '$program $version'" test "$(cat "$out")" = "$program $version"
  run "$program-bogus" "$TALLY_BIN/$program" --bogus-option
  check "$program --bogus-option exits 2" test "$status" -eq 2
  check "$program --bogus-option: reason names the option on the first stderr line" \
    bash -c "head -1 '$err' | grep -q -- '^$program: .*--bogus-option'"
  check "$program --bogus-option: stderr is one line of reason (and a hint)" test "$(lines_of "$err")" -le 2
  check "$program --bogus-option: nothing on stdout" empty "$out"
done

# The services' and tally run's --help list every option with its environment variable.
for program in tally-sink tally-worker tally-ventilator tally-watch "tally run"; do
  name=${program// /-}
  run "$name-help2" $TALLY_BIN/$program --help
  options=$(grep -c -E '^ +(-[a-zA-Z], )?--[a-z]' "$out" || true)
  with_env=$(grep -c -E '\[env TALLY_[A-Z_]+\]' "$out" || true)
  check "$program --help: every option but --help/--version names its TALLY_ variable" \
    test "$with_env" -eq $((options - 2))
  check "$program --help lists options" test "$with_env" -ge 1
done
run run-help "$TALLY_BIN/tally" run --help
check "tally run --help shows --workers and TALLY_WORKERS" grep -q -- '--workers.*TALLY_WORKERS' "$out"

# Bad usage: exit 2, a one-line reason naming what is wrong, no work done.
usage_case() {
  local name=$1 needle=$2; shift 2
  run "$name" "$@"
  check "$name: exits 2" test "$status" -eq 2
  check "$name: first stderr line says why ($needle)" bash -c "head -1 '$err' | grep -qF -- '$needle'"
  check "$name: stderr is at most 2 lines" test "$(lines_of "$err")" -le 2
  check "$name: no totals file written" cwd_clean
  check "$name: nothing left running" no_leftovers
}
run no-command "$TALLY_BIN/tally"
check "tally without a command: exits 2" test "$status" -eq 2
check "tally without a command: shows its usage on stderr" grep -q '^Usage: tally COMMAND' "$err"
check "tally without a command: nothing on stdout" empty "$out"
usage_case "tally with an unknown command" "frobnicate" "$TALLY_BIN/tally" frobnicate
usage_case "tally run --bogus-option" "--bogus-option" "$TALLY_BIN/tally" run --bogus-option "$one"
usage_case "tally run without files" "missing" "$TALLY_BIN/tally" run
usage_case "tally run --format bogus" "bogus" "$TALLY_BIN/tally" run --format bogus "$one"
usage_case "tally run --workers 0" "--workers" "$TALLY_BIN/tally" run --workers 0 "$one"
usage_case "tally run --workers abc" "--workers" "$TALLY_BIN/tally" run --workers abc "$one"
usage_case "tally run --output without a value" "--output" "$TALLY_BIN/tally" run "$one" --output
# The job's options are checked by tally run with the ventilator's own check: exit 2, nothing left.
usage_case "tally run --chunk-size abc" "abc" "$TALLY_BIN/tally" run --chunk-size abc "$one"
usage_case "tally run --io bogus" "bogus" "$TALLY_BIN/tally" run --io bogus "$one"
usage_case "tally run --progress bogus" "bogus" "$TALLY_BIN/tally" run --progress bogus "$one"
usage_case "tally run --year-min after --year-max" "--year-min" \
  "$TALLY_BIN/tally" run --year-min 2000 --year-max 1990 "$one"
usage_case "tally-sink with an argument" "extra" "$TALLY_BIN/tally-sink" extra
usage_case "tally-sink --interval 0" "--interval" "$TALLY_BIN/tally-sink" --interval 0
usage_case "tally-sink --job-timeout 1" "--job-timeout" "$TALLY_BIN/tally-sink" --job-timeout 1
usage_case "tally-watch without an endpoint" "missing" "$TALLY_BIN/tally-watch"
usage_case "tally-ventilator --chunk-size abc" "abc" "$TALLY_BIN/tally-ventilator" --chunk-size abc "$one"
usage_case "tally-ventilator --format bogus" "bogus" "$TALLY_BIN/tally-ventilator" --format bogus "$one"
usage_case "tally-ventilator --year-min after --year-max" "--year-min" \
  "$TALLY_BIN/tally-ventilator" --year-min 2000 --year-max 1990 "$one"

# A missing input is named before any work: exit 2 at once, no totals, nothing running.
missing="$WORK/no-such-file.tsv"
usage_case "tally run with a missing file" "$missing" "$TALLY_BIN/tally" run --workers 2 "$missing"
check "tally run with a missing file: answers within 2 s ($took s)" gawk "BEGIN{exit !($took < 2)}"
usage_case "tally run with a missing file among good ones" "$missing" \
  "$TALLY_BIN/tally" run --workers 2 "$one" "$missing" "$sample"
mkdir -p "$WORK/empty-folder"
usage_case "tally run with an empty folder" "$WORK/empty-folder" "$TALLY_BIN/tally" run "$WORK/empty-folder"
usage_case "tally-ventilator with a missing file" "$missing" \
  "$TALLY_BIN/tally-ventilator" --bind "tcp://127.0.0.1:$(free_port)" \
  --sink "tcp://127.0.0.1:$(free_port)" "$one" "$missing"
check "tally-ventilator with a missing file: answers within 2 s ($took s)" gawk "BEGIN{exit !($took < 2)}"
# Nor does it contact the sink: a listener in the sink's place hears from nobody.
"$PY" - "$TALLY_BIN/tally-ventilator" "$(free_port)" "$one" "$missing" > "$WORK/contact" <<'PYEOF' || true
import select, socket, subprocess, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
sink = "tcp://127.0.0.1:%d" % listener.getsockname()[1]
run = subprocess.run([sys.argv[1], "--bind", "tcp://127.0.0.1:" + sys.argv[2], "--sink", sink]
                     + sys.argv[3:], capture_output=True, timeout=30)
print(run.returncode, "contacted" if select.select([listener], [], [], 1.0)[0] else "silent")
PYEOF
check "tally-ventilator with a missing file: never contacts the sink" \
  test "$(cat "$WORK/contact")" = "2 silent"

# A totals file that cannot be written fails the job when the sink is given it, not after
# the job was merged for nothing.
bad_output="$WORK/no-such-folder/totals.tsv"
run bad-output "$TALLY_BIN/tally" run --workers 1 --output "$bad_output" "$one"
check "an output in a missing folder: exits 1" test "$status" -eq 1
check "an output in a missing folder: the reason names it" \
  grep -qF "cannot write totals to $bad_output: No such file or directory" "$err"
[ "$status" -eq 1 ] || sed 's/^/    stderr: /' "$err"
check "an output in a missing folder: nothing left running" no_leftovers

# Options from the environment.
expected_ngram "$one" > "$WORK/expected.tsv"
run env-output env TALLY_OUTPUT="$WORK/env.tsv" "$TALLY_BIN/tally" run --workers 1 "$one"
check "TALLY_OUTPUT: tally run exits 0" test "$status" -eq 0
same_file "TALLY_OUTPUT: totals written there" "$WORK/expected.tsv" "$WORK/env.tsv"
check "TALLY_OUTPUT: no totals.tsv in the current folder" cwd_clean
run env-flag env TALLY_OUTPUT="$WORK/env2.tsv" "$TALLY_BIN/tally" run --workers 1 \
  --output "$WORK/flag.tsv" "$one"
check "--output beats TALLY_OUTPUT: exits 0" test "$status" -eq 0
same_file "--output beats TALLY_OUTPUT: totals at --output" "$WORK/expected.tsv" "$WORK/flag.tsv"
check "--output beats TALLY_OUTPUT: nothing at TALLY_OUTPUT" test ! -e "$WORK/env2.tsv"
run env-workers env TALLY_WORKERS=abc "$TALLY_BIN/tally" run --output "$WORK/w.tsv" "$one"
check "TALLY_WORKERS=abc: exits 2" test "$status" -eq 2
check "TALLY_WORKERS=abc: the reason names TALLY_WORKERS" grep -q TALLY_WORKERS "$err"
check "TALLY_WORKERS=abc: no totals file" test ! -e "$WORK/w.tsv"
run env-workers0 env TALLY_WORKERS=0 "$TALLY_BIN/tally" run --output "$WORK/w.tsv" "$one"
check "TALLY_WORKERS=0: exits 2" test "$status" -eq 2
run env-format env TALLY_FORMAT=bogus "$TALLY_BIN/tally" run --output "$WORK/w.tsv" "$one"
check "TALLY_FORMAT=bogus: exits 2" test "$status" -eq 2
run env-format-text env TALLY_FORMAT=text TALLY_OUTPUT="$WORK/text.tsv" "$TALLY_BIN/tally" run \
  --workers 1 "$one"
expected_text "$one" > "$WORK/expected-text.tsv"
check "TALLY_FORMAT=text: exits 0" test "$status" -eq 0
same_file "TALLY_FORMAT=text: the file is counted as text" "$WORK/expected-text.tsv" "$WORK/text.tsv"
run env-quiet env TALLY_QUIET=1 "$TALLY_BIN/tally" run --workers 1 --output "$WORK/q.tsv" "$one"
check "TALLY_QUIET=1: exits 0" test "$status" -eq 0
check "TALLY_QUIET=1: nothing on stdout" empty "$out"
same_file "TALLY_QUIET=1: totals still written" "$WORK/expected.tsv" "$WORK/q.tsv"
run env-top env TALLY_TOP=3 "$TALLY_BIN/tally" run --workers 1 --output "$WORK/top3.tsv" "$one"
check "TALLY_TOP=3: exits 0" test "$status" -eq 0
check "TALLY_TOP=3: prints a top 3" grep -q '^top 3:' "$out"
check "TALLY_TOP=3: and three keys" test "$(grep -c -E '^ +[0-9]+\. ' "$out")" -eq 3
run flag-top0 "$TALLY_BIN/tally" run --workers 1 --top 0 --output "$WORK/top0.tsv" "$one"
check "--top 0: exits 0" test "$status" -eq 0
check "--top 0: prints no top list" bash -c "! grep -q '^top' '$out'"
# tally run takes --top 0 (its range is 0 to 1000), so TALLY_TOP=0 must work the same.
run env-top0 env TALLY_TOP=0 "$TALLY_BIN/tally" run --workers 1 --output "$WORK/etop0.tsv" "$one"
check "TALLY_TOP=0 (valid for tally run): exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || sed 's/^/    stderr: /' "$err"
same_file "TALLY_TOP=0: totals written" "$WORK/expected.tsv" "$WORK/etop0.tsv"
# Options may stand anywhere, before or after the files, as GNU tools allow; "--" ends them.
run opts-after "$TALLY_BIN/tally" run "$one" --workers 1 --output "$WORK/after.tsv" --top 2
check "options after the files: exits 0" test "$status" -eq 0
same_file "options after the files: --output taken" "$WORK/expected.tsv" "$WORK/after.tsv"
check "options after the files: --top 2 taken" grep -q '^top 2:' "$out"
run opts-mixed "$TALLY_BIN/tally" run -w 1 "$one" -o "$WORK/mixed.tsv" --format text
check "options between and after files: exits 0" test "$status" -eq 0
same_file "options between and after files: --format text reaches the ventilator" \
  "$WORK/expected-text.tsv" "$WORK/mixed.tsv"
cp "$one" "$WORK/--dash.tsv"
run opts-dashdash "$TALLY_BIN/tally" run --workers 1 --output "$WORK/dash.tsv" -- "$WORK/--dash.tsv"
check "'--' ends the options: a file named like an option is read" test "$status" -eq 0
same_file "'--' ends the options: its totals" "$WORK/expected.tsv" "$WORK/dash.tsv"
usage_case "an option after -- is a file name" "--workers" \
  "$TALLY_BIN/tally" run --output "$WORK/no.tsv" -- "$one" --workers
usage_case "tally-ventilator with options after the files" "bogus" \
  "$TALLY_BIN/tally-ventilator" "$one" --format bogus
# Every job option tally run takes is the ventilator's, checked the same way.
usage_case "tally run --window 0" "--window" "$TALLY_BIN/tally" run --window 0 "$one"
usage_case "tally run --max-line 10" "--max-line" "$TALLY_BIN/tally" run --max-line 10 "$one"
usage_case "tally run --retry 0" "--retry" "$TALLY_BIN/tally" run --retry 0 "$one"
usage_case "TALLY_CHUNK_SIZE=abc for tally run" "TALLY_CHUNK_SIZE" \
  env TALLY_CHUNK_SIZE=abc "$TALLY_BIN/tally" run "$one"
usage_case "tally-worker --max-message 1K" "--max-message" "$TALLY_BIN/tally-worker" --max-message 1K
"$TALLY_BIN/tally" run --help > "$WORK/run-help.txt"
"$TALLY_BIN/tally-ventilator" --help > "$WORK/vent-help.txt"
for option in format chunk-size max-line window io year-min year-max skip-pos strict retry timeout progress verbose; do
  check "--$option: the same help line in tally run and tally-ventilator" \
    test "$(grep -- "--$option " "$WORK/run-help.txt")" = "$(grep -- "--$option " "$WORK/vent-help.txt")"
done
run env-passed env TALLY_CHUNK_SIZE=4K TALLY_VERBOSE=1 "$TALLY_BIN/tally" run --workers 1 \
  --progress none --output "$WORK/env-passed.tsv" "$one"
check "TALLY_CHUNK_SIZE and TALLY_VERBOSE reach the ventilator: exits 0" test "$status" -eq 0
same_file "TALLY_CHUNK_SIZE=4K: totals" "$WORK/expected.tsv" "$WORK/env-passed.tsv"
check "TALLY_VERBOSE=1 reaches the ventilator (it logs the file's format)" \
  grep -q 'format ngram2012' "$err"
check "nothing left running" no_leftovers
finish
