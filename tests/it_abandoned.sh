#!/usr/bin/env bash
# Abandoned jobs expire. 64 ventilators open a job each at one sink (its limit of open
# jobs) and are SIGKILLed, so none sends CANCEL. A 65th job is refused at once ("sink
# busy"), naming why; once the dead ventilators have been silent for --job-timeout, the
# sink fails their jobs (logged and published as failed, never checkpointed) and takes
# the next job, whose totals equal gawk's.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
sample="$TALLY_SOURCE_DIR/data/sample"
expected_ngram "$sample"/*.tsv > "$WORK/expected.tsv"
fault_endpoints
mkdir -p "$WORK/state"
start_sink "$WORK/sink.log" "$WORK/totals.tsv" --job-timeout 5 --state-dir "$WORK/state"
sink_pid=$SINK_PID
start_watch "$WORK/feed.json"

# The ventilators bind ipc:// endpoints: a port from free_port is free only until it is
# handed back, and 64 ventilators connecting at once take ephemeral ports from the same
# range (one bound a port another had just connected from, failed, and its job never opened).
pids=()
for i in $(seq 64); do
  "$TALLY_BIN/tally-ventilator" --bind "ipc://$WORK/v$i.ipc" --sink "$SINK" \
    --progress none "$sample" > "$WORK/v$i.out" 2>&1 &
  pids+=($!)
  PIDS+=($!)
done
check "64 jobs opened at the sink" \
  wait_until 180 bash -c "[ \$(grep -c 'opened:' '$WORK/sink.log') -ge 64 ]"
opened=$(grep -c 'opened:' "$WORK/sink.log")
if [ "$opened" -lt 64 ]; then
  # Say why, for a run that cannot be repeated: what the ventilators and the sink said.
  echo "only $opened jobs opened; ventilators still running: $(jobs -rp | wc -l)" >&2
  for i in $(seq 64); do
    # every ventilator that said more than that it waits for a worker
    grep -qv 'no worker connected' "$WORK/v$i.out" || [ "$i" -eq 1 ] || continue
    echo "--- v$i.out:" >&2
    tail -n 5 "$WORK/v$i.out" >&2
  done
  echo "--- sink.log:" >&2
  tail -n 20 "$WORK/sink.log" >&2
fi
kill -KILL "${pids[@]}" 2> /dev/null || true
wait "${pids[@]}" 2> /dev/null || true
for pid in "${pids[@]}"; do forget "$pid"; done

start_vent busy --timeout 10 "$sample"
wait_pid "$VENT_PID" 30 && status=0 || status=$?
forget "$VENT_PID"
check "a 65th job while 64 are open: the ventilator exits 1" test "$status" -eq 1
check "... saying the sink is busy" grep -q "sink busy" "$WORK/busy.err"

check "after --job-timeout the sink fails all 64 abandoned jobs" \
  wait_until 60 bash -c "[ \$(grep -c 'job abandoned' '$WORK/sink.log') -eq 64 ]"
check "... and publishes each as failed" \
  wait_until 10 bash -c "[ \$(grep -c '\"topic\":\"failed\"' '$WORK/feed.json') -eq 64 ]"
start_worker "$WORK/worker.log"
worker=$LAST_PID
start_vent next "$sample"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "the sink takes the next job (ventilator exits 0)" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -3 "$WORK/next.err"
same_file "the next job's totals equal gawk's" "$WORK/expected.tsv" "$WORK/totals.tsv"
stop_pid "$sink_pid" 5 && status=0 || status=$?
check "the sink exits 0 on SIGTERM" test "$status" -eq 0
check "no abandoned job was checkpointed" test -z "$(ls -A "$WORK/state" | grep -v "^tally-sink.lock$")"
stop_pid "$worker" 5 || true
stop_pid "$WATCH_PID" 2 || true
check "nothing left running" no_leftovers
finish
