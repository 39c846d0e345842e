#!/usr/bin/env bash
# A sink that holds every chunk and is writing its totals may be silent for longer than
# the ventilator's --timeout: the ventilator waits for it as long as its connection is up
# (ZMTP heartbeats, which libzmq's I/O thread answers while the sink's loop sorts), and
# gives the job up after --timeout only once that connection is gone. The sink here is a
# small Python one (tests/slow_end_sink.py) that acknowledges every PARTIAL, then after
# END sleeps without reading, as a sink sorting millions of keys does, then sends DONE:
# (a) silent for 3 x --timeout with its connection up: the ventilator waits, exits 0 and
#     prints the summary;
# (b) killed (SIGKILL) once silent: the ventilator says the sink is silent and exits 1
#     within --timeout plus the heartbeat's 5 s;
# (c) silent mid-job (before it holds every chunk) for longer than --timeout: the
#     ventilator gives up after --timeout, as before.
source "$(dirname "$0")/lib.sh"
gen_ngram2012 "$WORK/data" 2 2 31
FAKE="$TALLY_SOURCE_DIR/tests/slow_end_sink.py"
TIMEOUT=3

# run_case NAME MODE SILENCE: a fake sink, one worker and a ventilator with --timeout
# $TIMEOUT; sets $status (the ventilator's) and $took (its seconds).
run_case() {
  local name=$1 mode=$2 silence=$3 sink_ep vent_ep
  sink_ep="tcp://127.0.0.1:$(free_port)"
  vent_ep="tcp://127.0.0.1:$(free_port)"
  start "$PY" "$FAKE" "$sink_ep" "$mode" "$silence" "$WORK/$name.silent"
  fake_pid=$LAST_PID
  start "$TALLY_BIN/tally-worker" --quiet --ventilator "$vent_ep" --sink "$sink_ep"
  worker_pid=$LAST_PID
  local t0
  t0=$(now)
  status=0
  "$TALLY_BIN/tally-ventilator" --bind "$vent_ep" --sink "$sink_ep" --progress none \
    --chunk-size 64K --timeout "$TIMEOUT" "$WORK"/data/*.tsv > "$WORK/$name.out" \
    2> "$WORK/$name.err" &
  vent_pid=$!
  if [ "$mode" = kill ]; then
    # Killed once it has gone silent with every chunk held.
    wait_until 60 test -e "$WORK/$name.silent" || true
    kill -KILL "$fake_pid" 2> /dev/null || true
  fi
  wait "$vent_pid" || status=$?
  took=$(elapsed "$t0")
  kill -TERM "$worker_pid" "$fake_pid" 2> /dev/null || true
}

run_case wait end $((3 * TIMEOUT))
check "(a) the fake sink went silent holding every chunk" test -e "$WORK/wait.silent"
check "(a) the ventilator waited for the silent, connected sink and exits 0" test "$status" -eq 0
check "(a) ... after the sink's silence (${took} s >= $((3 * TIMEOUT)) s)" \
  gawk -v t="$took" -v s="$((3 * TIMEOUT))" 'BEGIN { exit !(t >= s) }'
check "(a) ... and prints the summary" grep -q "keys, sum" "$WORK/wait.out"
check "(a) ... without a word of a silent sink" bash -c "! grep -q 'no answer' '$WORK/wait.err'"

run_case killed kill 600
check "(b) a killed silent sink: the ventilator exits 1" test "$status" -eq 1
check "(b) ... saying the sink is silent" grep -q "no answer from the sink" "$WORK/killed.err"
check "(b) ... within --timeout plus the heartbeat's (${took} s < 30 s)" \
  gawk -v t="$took" 'BEGIN { exit !(t < 30) }'

run_case midjob mid $((5 * TIMEOUT))
check "(c) a sink silent mid-job: the ventilator exits 1" test "$status" -eq 1
check "(c) ... saying the sink is silent" grep -q "no answer from the sink" "$WORK/midjob.err"
check "(c) ... after about --timeout (${took} s < $((5 * TIMEOUT)) s)" \
  gawk -v t="$took" -v s="$((5 * TIMEOUT))" 'BEGIN { exit !(t < s) }'
finish
