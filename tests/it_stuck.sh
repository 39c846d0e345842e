#!/usr/bin/env bash
# Jobs that cannot complete end, and say why; a job that waits for workers says so. The
# services are started one by one on TCP loopback, as on a cluster:
# (a) one worker with --max-message 4K and 64K chunks: it drops its connection on the
#     first chunk (and libzmq never reconnects it). The ventilator exits 1 within 60 s,
#     naming the file, the chunk's bytes and --max-message; the sink logs the job
#     cancelled and its feed says it failed; nothing is left running;
# (b) workers that die on every chunk they get, each restarted at once (a supervisor and
#     an input that crashes them): every copy is a real attempt, and after --max-attempts
#     of them the ventilator exits 1 the same way;
# (c) a worker that takes every chunk and never answers (as one out of memory that logs
#     and goes on): timeouts are attempts, since the sink answers meanwhile, but the
#     backup copies of the job's tail are not; the ventilator exits 1 having sent the
#     chunk more times than its --max-attempts;
# (d) a ventilator without workers: within 10 s it says "no worker connected", with the
#     command that starts one; a worker started then completes the job with gawk's
#     totals (exit 0), and the warning stops once the worker is there;
# (e) --max-attempts is one of the job's options: tally run and tally-ventilator list it
#     in --help with TALLY_MAX_ATTEMPTS, and refuse a value out of 1..1000.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
gen_ngram2012 "$WORK/data" 2 "$(half_scaled 4)" 23
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
fault_endpoints
totals="$WORK/totals.tsv"
start_sink "$WORK/sink.log" "$totals"
sink_pid=$SINK_PID
start_watch "$WORK/feed.json"
watch_pid=$WATCH_PID

# chunk_named NAME: the ventilator's stderr ($WORK/NAME.err) names a chunk of one of the
# inputs with its byte range and says it was never merged.
chunk_named() {
  grep -E -q "chunk [0-9]+ \\($WORK/data/part-0[01]\\.tsv, bytes [0-9]+\\.\\.[0-9]+, .*\\) was sent [0-9]+ times?.* and never merged" \
    "$WORK/$1.err"
}

# A stand-in worker: "crash" dies holding the first chunk it gets, "drop" takes every
# chunk and never answers.
cat > "$WORK/bad_worker.py" <<'PYEOF'
import os, sys, zmq
pull = zmq.Context().socket(zmq.PULL)
pull.setsockopt(zmq.RCVHWM, 1)
pull.connect(sys.argv[2])
pull.recv_multipart()
if sys.argv[1] == "crash":
    os._exit(3)
while True:
    pull.recv_multipart()
PYEOF

# ---------------------------------------------------------------------------------------
# (a) A worker whose --max-message is below the chunk size.
start_worker "$WORK/small.log" --max-message 4K
small=$LAST_PID
t0=$(now)
start_vent small --chunk-size 64K --verbose "$WORK"/data/*.tsv
wait_pid "$VENT_PID" 90 && status=0 || status=$?
seconds=$(elapsed "$t0")
forget "$VENT_PID"
echo "(a) the ventilator exited with status $status after $seconds s"
grep "never merged" "$WORK/small.err" || tail -5 "$WORK/small.err"
check "a: the ventilator exits 1" test "$status" -eq 1
check "a: within 60 s" gawk -v s="$seconds" 'BEGIN { exit !(s < 60) }'
check "a: it names the file and the chunk's bytes" chunk_named small
check "a: it names --max-message as a likely cause" grep -q -- "--max-message" "$WORK/small.err"
check "a: it says so once" test "$(grep -c "never merged" "$WORK/small.err")" -eq 1
check "a: the sink logs the job cancelled" \
  wait_until 10 grep -q "cancelled: chunk [0-9]* not merged" "$WORK/sink.log"
check "a: the feed says the job failed" wait_until 10 grep -q '"topic":"failed"' "$WORK/feed.json"
check "a: no totals file" no_totals "$totals"
stop_pid "$small" 5 && status=0 || status=$?
check "a: the worker exits 0 on SIGTERM" test "$status" -eq 0
check "a: the sink is alive" alive "$sink_pid"

# ---------------------------------------------------------------------------------------
# (b) Workers that die holding the first chunk they get, restarted at once: a stand-in
# for a worker that crashes on some lines, under a supervisor.
: > "$WORK/crashes"
t0=$(now)
start_vent crash --chunk-size 64K --retry 1 "$WORK"/data/*.tsv
vent=$VENT_PID
(
  while kill -0 "$vent" 2> /dev/null; do
    timeout 10 "$PY" "$WORK/bad_worker.py" crash "$VENT" && s=0 || s=$?
    [ "$s" -eq 3 ] && echo crash >> "$WORK/crashes"
  done
) &
supervisor=$!
PIDS+=("$supervisor")
wait_pid "$vent" 90 && status=0 || status=$?
seconds=$(elapsed "$t0")
forget "$vent"
wait_pid "$supervisor" 15 || true
forget "$supervisor"
crashes=$(wc -l < "$WORK/crashes")
echo "(b) the ventilator exited with status $status after $seconds s; $crashes workers died on a chunk"
grep "never merged" "$WORK/crash.err" || tail -5 "$WORK/crash.err"
check "b: the ventilator exits 1" test "$status" -eq 1
check "b: within 60 s" gawk -v s="$seconds" 'BEGIN { exit !(s < 60) }'
check "b: it names the file and the chunk's bytes" chunk_named crash
# The oldest chunk goes to each new worker first: five deaths make five attempts (fewer
# when a worker takes longer than a streaming interval to start: that wait counts too).
check "b: the chunk went to several workers before the job failed ($crashes)" test "$crashes" -ge 3
check "b: the sink logs the job cancelled" \
  wait_until 10 test "$(grep -c "cancelled: chunk [0-9]* not merged" "$WORK/sink.log")" -eq 2

# ---------------------------------------------------------------------------------------
# (c) A worker that never answers. With --retry 1 and no ack to measure the latency, an
# attempt times out after max(1, 10 x 0.5) = 5 s; the window holds the whole job (about
# 64 chunks), all out at once, so it is the tail from the start, and backup copies go
# every max(1 / 4, 4 x 0.5) = 2 s.
start "$PY" "$WORK/bad_worker.py" drop "$VENT"
silent=$LAST_PID
t0=$(now)
start_vent silent --chunk-size 64K --window 256 --retry 1 "$WORK"/data/*.tsv
wait_pid "$VENT_PID" 90 && status=0 || status=$?
seconds=$(elapsed "$t0")
forget "$VENT_PID"
echo "(c) the ventilator exited with status $status after $seconds s"
grep "never merged" "$WORK/silent.err" || tail -5 "$WORK/silent.err"
check "c: the ventilator exits 1" test "$status" -eq 1
check "c: within 60 s" gawk -v s="$seconds" 'BEGIN { exit !(s < 60) }'
check "c: it names the file and the chunk's bytes" chunk_named silent
sends=$(sed -n -E 's/.* was sent ([0-9]+) times \(5 attempts\) and never merged.*/\1/p' "$WORK/silent.err")
check "c: five attempts, more sends: backups are not attempts (${sends:-no count})" \
  test "${sends:-0}" -gt 5
check "c: the sink logs the job cancelled" \
  wait_until 10 test "$(grep -c "cancelled: chunk [0-9]* not merged" "$WORK/sink.log")" -eq 3
stop_pid "$silent" 5 || true

# ---------------------------------------------------------------------------------------
# (d) No worker at first.
start_vent idle --chunk-size 4K --verbose "$WORK"/data/*.tsv
t0=$(now)
check "d: the ventilator says no worker is connected within 10 s" \
  wait_until 10 grep -q "no worker connected to $VENT for [0-9]* s" "$WORK/idle.err"
echo "(d) warned after $(elapsed "$t0") s: $(grep -m1 "no worker" "$WORK/idle.err")"
check "d: with the command that starts one" \
  grep -q -F "start one with: tally-worker --ventilator $VENT --sink $SINK" "$WORK/idle.err"
check "d: the job waits" alive "$VENT_PID"
start_worker "$WORK/late.log" --quiet
late=$LAST_PID
await_job idle "a worker started late" "$totals"
# Nothing after the worker's arrival: the ventilator logs it (--verbose) when it comes.
check "d: no warning once the worker is there" \
  gawk '/a worker connected/ { seen = 1 } seen && /no worker connected/ { bad = 1 }
        END { exit !(seen && !bad) }' "$WORK/idle.err"
stop_pid "$late" 5 || true

# ---------------------------------------------------------------------------------------
# (e) The option.
for program in "tally run" tally-ventilator; do
  # shellcheck disable=SC2086  # "tally run" is a program and its command
  $TALLY_BIN/$program --help > "$WORK/help.txt" 2>&1 || true
  check "e: $program --help lists --max-attempts with TALLY_MAX_ATTEMPTS" \
    grep -q -E -- "--max-attempts.*TALLY_MAX_ATTEMPTS|TALLY_MAX_ATTEMPTS.*--max-attempts" \
    "$WORK/help.txt"
done
for bad in 0 1001 x; do
  "$TALLY_BIN/tally" run --max-attempts "$bad" "$WORK/data" > /dev/null 2>&1 && status=0 || status=$?
  check "e: tally run --max-attempts $bad exits 2" test "$status" -eq 2
done
TALLY_MAX_ATTEMPTS=0 "$TALLY_BIN/tally-ventilator" "$WORK/data" > /dev/null 2>&1 && status=0 ||
  status=$?
check "e: TALLY_MAX_ATTEMPTS=0 makes tally-ventilator exit 2" test "$status" -eq 2

stop_pid "$watch_pid" 2 || true
stop_pid "$sink_pid" 5 && status=0 || status=$?
check "the sink exits 0 on SIGTERM" test "$status" -eq 0
check "no tally process left" no_leftovers
finish
