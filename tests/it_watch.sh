#!/usr/bin/env bash
# tally-watch and examples/subscribe.py as late joiners (through the sink's snapshot
# service, the feed's port + 1), and tally-watch's live view under a pseudo-terminal, with
# the services started separately on TCP loopback; totals compared with gawk's:
# (a) tally-watch started after a job's done prints that job's done line with gawk's key
#     count and sum, once; with --no-snapshot nothing of it (while the feed's stats come);
#     with --json the done with "snapshot":true;
# (b) tally-watch --lines --until-done started in the middle of a job of several seconds
#     (one chunk of 256 bytes in flight) prints the job's progress (not all chunks merged)
#     within 1 s of its launch, does not end on the earlier job's done (from the snapshot),
#     and exits 0 on the job's done, printed once with gawk's keys and sum;
# (c) under a pseudo-terminal (util-linux script, 120x40), during a job: the live view uses
#     the alternate screen, redraws frames in place (ESC[H), shows the job's progress bar
#     with its percentage and a top table whose first 5 rows are gawk's first 5 keys with
#     their totals (the heavy keys come first in the input, so their totals are final early);
#     after the screen is given back, the done line with gawk's keys and sum; --lines under
#     the same terminal prints lines, no escape sequence; with 2 sink shards, a frame has a
#     line per shard, and the done line says 2 shards;
# (d) examples/subscribe.py started after a job's done prints that done (gawk's keys and
#     sum); --totals JOB fetches totals equal to gawk's, from one sink and merged from 2
#     shards; an unknown job prints the sink's error and exits 1, leaving no file.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
source "$(dirname "$0")/lib_shards.sh"

WATCH="$TALLY_BIN/tally-watch"
SUBSCRIBE="$TALLY_SOURCE_DIR/examples/subscribe.py"
"$PY" -c 'import zmq, msgpack' 2> /dev/null || {
  echo "FAIL: $PY has no zmq or msgpack module (python3-zmq, python3-msgpack)"
  exit 1
}
command -v script > /dev/null || {
  echo "FAIL: no script(1) (util-linux, Debian package bsdutils) for the pseudo-terminal"
  exit 1
}
T0=$EPOCHREALTIME

# Filler bytes of the slow jobs: about 4 s each at 256-byte chunks, one in flight.
if [ "${TALLY_VARIANT:-plain}" = sanitize ]; then filler_kb=2500; else filler_kb=4500; fi

# gen_job FILE FILLER_KB SEED: ngram2012 lines, 8 heavy keys first (10 years each, totals
# of 100,000s, some keys with UTF-8 bytes), then FILLER_KB kilobytes of lines of keys
# drawn from 200,000, with small counts: the heavy keys' totals are final after the first
# few KB, and stay the top.
gen_job() {
  "$PY" - "$@" <<'PYEOF'
import random, sys
path, filler_kb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
lines = []
for i in range(8):
    key = "heavy key %d %s" % (i, "\u00e9t\u00e9" if i % 3 == 0 else "x")
    for year in range(1990, 2000):
        lines.append("%s\t%d\t%d\t1\n" % (key, year, (9 - i) * 100000 + rng.randint(0, 999)))
size = 0
while size < filler_kb * 1000:
    line = "filler %06d\t%d\t%d\t1\n" % (rng.randrange(200000), rng.randint(1900, 2008),
                                         rng.randint(1, 50))
    lines.append(line)
    size += len(line)
with open(path, "w", encoding="utf-8") as out:
    out.write("".join(lines))
PYEOF
}

gawk_sum() { gawk -F'\t' '{s += $2} END{printf "%d", s}' "$1"; }
count_in() { grep -c -- "$2" "$1" || true; }
# job_hex LOG WHAT N: the N-th job id (hex) the sink log says WHAT of ("opened", "done").
job_hex() { sed -n -E "s/.* job ([0-9a-f]{16}) $2.*/\1/p" "$1" | sed -n "$3p"; }
opened_more() { [ "$(count_in "$1" " opened: ")" -gt "$2" ]; }
# start_slow_job NAME FILE [ARGS...]: the ventilator (256-byte chunks, one in flight) on
# $VENT and $SINK; waits until the sink in $SINKLOG opens the job; sets JOB (hex).
start_slow_job() {
  local name=$1 file=$2 before
  shift 2
  before=$(count_in "$SINKLOG" " opened: ")
  start_vent "$name" --window 1 --chunk-size 256 "$@" "$file"
  wait_until 20 opened_more "$SINKLOG" "$before" || true
  JOB=$(job_hex "$SINKLOG" opened $((before + 1)))
}

# distinct_ports: sets VENT, SINK, FEED (free_port / free_feed_port), all different, and
# none the port above the feed's (its snapshot service).
distinct_ports() {
  local v s f
  while true; do
    v=$(free_port); s=$(free_port); f=$(free_feed_port)
    [ "$v" != "$s" ] && [ "$v" != "$f" ] && [ "$s" != "$f" ] &&
      [ "$v" != $((f + 1)) ] && [ "$s" != $((f + 1)) ] && [ "$(used_port "$v" "$s" "$f")" = no ] && break
  done
  USED+=("$v" "$s" "$f" $((f + 1)))
  VENT="tcp://127.0.0.1:$v"
  SINK="tcp://127.0.0.1:$s"
  FEED="tcp://127.0.0.1:$f"
}
USED=()
# used_port PORT...: "yes" when one of them (or the one above the last) was given before.
used_port() {
  local p q last=${*: -1}
  for p in "$@" $((last + 1)); do
    for q in "${USED[@]}"; do [ "$p" != "$q" ] || { echo yes; return; }; done
  done
  echo no
}

# live_check FILE JOB EXPECTED SHARDS: what a typescript of the live view shows, as
# NAME=VALUE lines (see below).
live_check() {
  "$PY" - "$@" <<'PYEOF'
import re, sys
path, job, expected, shards = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = open(path, "rb").read().decode("utf-8", "replace")
want_top = [l.rstrip("\n").split("\t") for l in open(expected, encoding="utf-8")][:5]
enter, leave = data.find("\x1b[?1049h"), data.rfind("\x1b[?1049l")
print("alt_screen=%s" % ("yes" if 0 <= enter < leave else "no"))
screen = data[enter:leave] if 0 <= enter < leave else ""
frames = [f.split("\x1b[J")[0].replace("\x1b[K", "").split("\r\n") for f in screen.split("\x1b[H")[1:]]
print("frames=%d" % len(frames))
bar = re.compile(r"^  \[[#.]{30}\] +(\d+\.\d)%")
percents, top_ok, shard_lines = [], False, False
for lines in frames:
    for i, line in enumerate(lines[:-1]):
        if line.startswith("job %s  running" % job):
            m = bar.match(lines[i + 1])
            if m:
                percents.append(float(m.group(1)))
        if line.startswith("    #    key"):
            rows = [[l[9:49].rstrip(), l[50:70].strip()] for l in lines[i + 1:i + 6]]
            top_ok |= rows == want_top
    shard_lines |= all(any(l.startswith("    shard %d/%d " % (s + 1, shards)) for l in lines)
                       for s in range(shards))
print("percents=%s" % " ".join("%.1f" % p for p in percents[:3] + percents[-2:]))
print("running_bar=%s" % ("yes" if any(0 < p < 100 for p in percents) else "no"))
print("top=%s" % ("yes" if top_ok else "no"))
print("shard_lines=%s" % ("yes" if shard_lines else "no"))
after = data[leave + len("\x1b[?1049l"):].replace("\r\n", "\n") if leave >= 0 else ""
done = [l for l in after.split("\n") if l.startswith(job + " done")]
print("after=%s" % (done[0] if done else ""))
PYEOF
}
field() { sed -n "s/^$2=//p" "$1"; }

# in_pty FILE COMMAND: COMMAND (a shell command line) on a 120x40 pseudo-terminal, its
# output recorded to FILE; sets LAST_PID.
in_pty() {
  start script -qefc "stty cols 120 rows 40; $2" "$1" < /dev/null > /dev/null 2>&1
}

distinct_ports
SINKLOG="$WORK/sink.log"
start_sink "$SINKLOG" "$WORK/out.tsv"
start_worker "$WORK/worker1.log"
start_worker "$WORK/worker2.log"
check "the sink serves snapshots beside its feed" wait_until 10 grep -q "snapshots on" "$SINKLOG"

# ---------------------------------------------------------------------------------------
# (a) tally-watch after a job's done.
gen_job "$WORK/A.tsv" 300 1
expected_ngram "$WORK/A.tsv" > "$WORK/A.expected"
cp "$WORK/A.expected" "$WORK/expected.tsv"
a_keys=$(wc -l < "$WORK/A.expected")
a_sum=$(gawk_sum "$WORK/A.expected")
start_vent a "$WORK/A.tsv"
await_job a "a: job A" "$WORK/out.tsv"
a_hex=$(job_hex "$SINKLOG" done 1)
a_dec=$("$PY" -c 'import sys; print(int(sys.argv[1], 16))' "$a_hex")
echo "    job A: $a_hex; gawk: $a_keys keys, sum $a_sum"

start "$WATCH" --lines "$FEED" > "$WORK/a.lines" 2> "$WORK/a.lines.err"
pid=$LAST_PID
check "a: tally-watch --lines started after job A's done prints its done line" \
  wait_until 10 grep -q "^$a_hex done: " "$WORK/a.lines"
sleep 0.5
stop_pid "$pid" 5 || true
echo "    $(grep "^$a_hex done: " "$WORK/a.lines" | head -1)"
check "a: ... with gawk's key count and sum" \
  grep -q "^$a_hex done: $a_keys keys, sum $a_sum, " "$WORK/a.lines"
check "a: ... once" test "$(count_in "$WORK/a.lines" "^$a_hex done")" -eq 1
check "a: ... and no complaint of missed totals batches (they went out before it started)" \
  test ! -s "$WORK/a.lines.err"

start "$WATCH" --lines --no-snapshot "$FEED" > "$WORK/a.nosnap" 2> "$WORK/a.nosnap.err"
pid=$LAST_PID
start "$WATCH" --json --no-snapshot "$FEED" > "$WORK/a.nosnap.json" 2> "$WORK/a.nosnap.json.err"
pid2=$LAST_PID
check "a: tally-watch --json --no-snapshot hears the feed (its stats)" \
  wait_until 10 grep -q '^{"topic":"stats"' "$WORK/a.nosnap.json"
sleep 1
stop_pid "$pid" 5 && status=0 || status=$?
check "a: tally-watch --lines --no-snapshot ran until stopped" test "$status" -eq 0
stop_pid "$pid2" 5 || true
check "a: tally-watch --lines --no-snapshot prints nothing of job A ($(wc -l < "$WORK/a.nosnap") lines)" \
  bash -c "! grep -q '$a_hex' '$WORK/a.nosnap'"
check "a: tally-watch --json --no-snapshot prints nothing of job A, nothing from a snapshot" \
  bash -c "! grep -q -e '\"job\":$a_dec' -e '\"snapshot\":true' '$WORK/a.nosnap.json'"

start "$WATCH" --json "$FEED" > "$WORK/a.json" 2> "$WORK/a.json.err"
pid=$LAST_PID
check "a: tally-watch --json prints job A's done" \
  wait_until 10 grep -q "^{\"topic\":\"done\",\"body\":{\"job\":$a_dec," "$WORK/a.json"
sleep 0.5
stop_pid "$pid" 5 || true
got=$("$PY" - "$WORK/a.json" "$a_dec" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "done" and m["body"]["job"] == int(sys.argv[2]):
        print(m["body"]["keys"], m["body"]["sum"], m.get("snapshot"))
PYEOF
)
echo "    --json done of job A: keys sum snapshot = $got"
check "a: ... once, with gawk's keys and sum and \"snapshot\":true" test "$got" = "$a_keys $a_sum True"

# ---------------------------------------------------------------------------------------
# (d, one sink) subscribe.py after job A's done.
timeout 30 "$PY" "$SUBSCRIBE" "$FEED" --timeout 2 > "$WORK/d.late.out" 2> "$WORK/d.late.err" &&
  status=0 || status=$?
echo "    subscribe.py: $(cat "$WORK/d.late.out") / $(tail -1 "$WORK/d.late.err")"
check "d: subscribe.py started after job A's done prints it with gawk's keys and sum" \
  grep -q "^job $a_hex: $a_keys keys, sum $a_sum, .*(ended before this subscriber started)\$" \
  "$WORK/d.late.out"
check "d: ... and gives up after --timeout 2 s without a job's message (exit 1)" \
  test "$status" -eq 1 -a "$(tail -1 "$WORK/d.late.err")" = "no message for 2 s"
"$PY" "$SUBSCRIBE" "$FEED" --totals "$a_hex" --out "$WORK/d.a.tsv" 2> "$WORK/d.a.err" &&
  status=0 || status=$?
check "d: subscribe.py --totals JOB A exits 0 ($(cat "$WORK/d.a.err"))" test "$status" -eq 0
same_file "d: ... and its totals equal gawk's" "$WORK/A.expected" "$WORK/d.a.tsv"
"$PY" "$SUBSCRIBE" "$FEED" --totals 00000000000000ff --out "$WORK/d.none.tsv" \
  > "$WORK/d.none.out" 2> "$WORK/d.none.err" && status=0 || status=$?
echo "    unknown job: exit $status: $(cat "$WORK/d.none.err")"
check "d: --totals of an unknown job exits 1 with the sink's error" \
  test "$status" -eq 1 -a -n "$(grep "job 00000000000000ff: .*know" "$WORK/d.none.err")"
check "d: ... and leaves no file" bash -c "! ls '$WORK'/d.none.tsv* > /dev/null 2>&1"

# ---------------------------------------------------------------------------------------
# (b) tally-watch --until-done started in the middle of a job.
gen_job "$WORK/M.tsv" "$filler_kb" 2
expected_ngram "$WORK/M.tsv" > "$WORK/M.expected"
cp "$WORK/M.expected" "$WORK/expected.tsv"
m_keys=$(wc -l < "$WORK/M.expected")
m_sum=$(gawk_sum "$WORK/M.expected")
start_slow_job m "$WORK/M.tsv"
m_hex=$JOB
check "b: job M opens" test -n "$m_hex"
sleep 1
# Each line of tally-watch stamped with the time it came.
stamped() {
  local out=$1 line
  shift
  "$@" 2> "$out.err" | while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done > "$out"
  echo "${PIPESTATUS[0]}" > "$out.rc"
}
launched=$EPOCHREALTIME
start stamped "$WORK/b.watch" "$WATCH" --lines --until-done "$FEED"
await_job m "b: job M" "$WORK/out.tsv"
check "b: tally-watch --until-done ends after job M's done" wait_until 20 test -s "$WORK/b.watch.rc"
first=$(grep -m1 " $m_hex progress: " "$WORK/b.watch" || true)
after=$(gawk -v a="$launched" -v b="${first%% *}" 'BEGIN{ if (b == "") print "never"; else printf "%.3f", b - a }')
echo "    first progress of job M, $after s after the launch: ${first#* }"
check "b: tally-watch prints job M's progress within 1 s of its launch" \
  gawk -v t="$after" 'BEGIN{exit !(t != "never" && t < 1.0)}'
check "b: ... while the job was under way (not every chunk merged)" \
  gawk -v line="$first" 'BEGIN{ if (!match(line, /: [0-9]+\/[0-9]+\+? chunks/)) exit 1
    split(substr(line, RSTART + 2, RLENGTH - 9), n, "/"); exit !(n[2] ~ /\+/ || n[1] + 0 < n[2] + 0) }'
check "b: tally-watch exits 0 on job M's done" test "$(cat "$WORK/b.watch.rc" 2> /dev/null)" = 0
check "b: ... printed once" test "$(count_in "$WORK/b.watch" " $m_hex done")" -eq 1
check "b: ... with gawk's key count and sum" grep -q " $m_hex done: $m_keys keys, sum $m_sum, " "$WORK/b.watch"
check "b: ... and job A's done (from the snapshot, before) did not end it" \
  test "$(count_in "$WORK/b.watch" " $a_hex done: ")" -eq 1

# ---------------------------------------------------------------------------------------
# (c) The live view under a pseudo-terminal, and --lines there.
gen_job "$WORK/C.tsv" "$filler_kb" 3
expected_ngram "$WORK/C.tsv" > "$WORK/C.expected"
cp "$WORK/C.expected" "$WORK/expected.tsv"
c_keys=$(wc -l < "$WORK/C.expected")
c_sum=$(gawk_sum "$WORK/C.expected")
start_slow_job c "$WORK/C.tsv"
c_hex=$JOB
check "c: job C opens" test -n "$c_hex"
in_pty "$WORK/c.live" "$WATCH --until-done $FEED"
live=$LAST_PID
in_pty "$WORK/c.lines" "$WATCH --lines --until-done $FEED"
lines=$LAST_PID
await_job c "c: job C" "$WORK/out.tsv"
wait_pid "$live" 20 && status=0 || status=$?
forget "$live"
check "c: the live view (tally-watch --until-done on a terminal) exits 0 after job C" test "$status" -eq 0
live_check "$WORK/c.live" "$c_hex" "$WORK/C.expected" 1 > "$WORK/c.check"
sed 's/^/    /' "$WORK/c.check"
check "c: it uses the alternate screen (ESC[?1049h, then ESC[?1049l)" test "$(field "$WORK/c.check" alt_screen)" = yes
check "c: frames are redrawn in place (ESC[H), several" test "$(field "$WORK/c.check" frames)" -ge 3
check "c: a frame shows job C running with a progress bar and a percentage under 100" \
  test "$(field "$WORK/c.check" running_bar)" = yes
check "c: a frame's top table starts with gawk's first 5 keys and their totals" \
  test "$(field "$WORK/c.check" top)" = yes
check "c: after the screen is given back, job C's done line with gawk's keys and sum" \
  grep -q "^after=$c_hex done: $c_keys keys, sum $c_sum, " "$WORK/c.check"
wait_pid "$lines" 20 && status=0 || status=$?
forget "$lines"
check "c: tally-watch --lines on the terminal exits 0 after job C" test "$status" -eq 0
check "c: ... prints progress lines and job C's done line with gawk's keys and sum" \
  bash -c "grep -q '^$c_hex progress: ' '$WORK/c.lines' && grep -q '^$c_hex done: $c_keys keys, sum $c_sum, ' '$WORK/c.lines'"
check "c: ... and no escape sequence" bash -c "! grep -q \$'\\e' '$WORK/c.lines'"

# ---------------------------------------------------------------------------------------
# (c, d) 2 sink shards: the live view's line per shard; subscribe.py --totals merged.
stop_pid "$SINK_PID" 5 || true
NSHARDS=2
SINKS=()
FEEDS=()
distinct_ports
VENT2=$VENT
for ((i = 0; i < NSHARDS; i++)); do
  distinct_ports
  SINKS+=("$SINK")
  FEEDS+=("$FEED")
done
VENT=$VENT2
SINK=$(join_list "${SINKS[@]}")
SINKLOG="$WORK/shards.log"
for ((i = 0; i < NSHARDS; i++)); do start_shard "$i" "$SINKLOG"; done
start_worker "$WORK/worker3.log"
start_worker "$WORK/worker4.log"
snapshots_served() { [ "$(count_in "$SINKLOG" "snapshots on")" -eq "$1" ]; }
check "s: both shards serve snapshots" wait_until 10 snapshots_served 2
gen_job "$WORK/S.tsv" "$filler_kb" 4
expected_ngram "$WORK/S.tsv" > "$WORK/S.expected"
s_keys=$(wc -l < "$WORK/S.expected")
s_sum=$(gawk_sum "$WORK/S.expected")
start_slow_job s "$WORK/S.tsv"
s_hex=$JOB
check "s: job S opens at a shard" test -n "$s_hex"
in_pty "$WORK/s.live" "$WATCH --until-done ${FEEDS[*]}"
live=$LAST_PID
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "s: the ventilator of job S (2 shards) exits 0" test "$status" -eq 0
wait_pid "$live" 20 && status=0 || status=$?
forget "$live"
check "s: the live view on both shards' feeds exits 0 after job S" test "$status" -eq 0
live_check "$WORK/s.live" "$s_hex" "$WORK/S.expected" 2 > "$WORK/s.check"
sed 's/^/    /' "$WORK/s.check"
check "s: a frame has a line per shard (shard 1/2, shard 2/2)" test "$(field "$WORK/s.check" shard_lines)" = yes
check "s: a frame's top table (both shards') starts with gawk's first 5 keys and totals" \
  test "$(field "$WORK/s.check" top)" = yes
check "s: after the view, job S's done line: 2 shards, gawk's keys and sum" \
  grep -q "^after=$s_hex done (2 shards): $s_keys keys, sum $s_sum, " "$WORK/s.check"
"$PY" "$SUBSCRIBE" "${FEEDS[@]}" --totals "$s_hex" --out "$WORK/d.s.tsv" 2> "$WORK/d.s.err" &&
  status=0 || status=$?
check "d: subscribe.py --totals JOB S on both shards exits 0 ($(cat "$WORK/d.s.err"))" test "$status" -eq 0
same_file "d: ... and the shards' parts merged equal gawk's totals" "$WORK/S.expected" "$WORK/d.s.tsv"
"$PY" "$SUBSCRIBE" "${FEEDS[0]}" --totals "$s_hex" --out "$WORK/d.s0.tsv" 2> "$WORK/d.s0.err" &&
  status=0 || status=$?
check "d: --totals with one shard's feed of 2 exits 1, leaving no file ($(cat "$WORK/d.s0.err"))" \
  bash -c "[ $status -eq 1 ] && ! ls '$WORK'/d.s0.tsv* > /dev/null 2>&1"

echo "    $(elapsed "$T0") s"
finish
