#!/usr/bin/env bash
# SIGTERM (and SIGKILL) to each service in turn, mid-job, with the services started
# separately on TCP loopback and a job of 100 MB (50 MB sanitized) in 1K chunks that lasts
# several seconds:
# (a) a worker: it exits within 2 s; the other workers finish the job with gawk's totals;
# (b) the sink: it exits within 5 s, writes no totals file and leaves a checkpoint in
#     its own folder (.tally-sink beside the totals, mode 0700); restarted with the same
#     options it takes the checkpoint back, and the job completes with gawk's totals
#     (then the checkpoint is removed);
# (c) the sink SIGKILLed without a checkpoint and restarted: the ventilator opens
#     the job again there and sends it all again; totals equal gawk's (tests/it_recover.sh
#     kills the sink and the ventilator after checkpoints);
# (d) the ventilator: it exits non-zero within 2 s, no totals file; the sink cancels the
#     job, stays up and serves the next job with gawk's totals;
# (e) SIGKILL to the ventilator (no CANCEL): once it has been silent for --job-timeout
#     (5 s here) the sink fails the job, says why in its log and on the feed, and serves
#     the next job;
# (f) a job restored from a checkpoint whose ventilator was SIGKILLed meanwhile: the
#     sink fails it --job-timeout after the restart, and does not checkpoint it again;
# (g) tally-watch, the workers and the sink end when told, and nothing is left running.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
mb=$(half_scaled 100)
chunk=1K
gen_ngram2012 "$WORK/data" 4 "$mb" 31
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
sample="$TALLY_SOURCE_DIR/data/sample"
expected_ngram "$sample"/*.tsv > "$WORK/expected-sample.tsv"
bytes=$(cat "$WORK"/data/*.tsv | wc -c)
chunks=$((bytes / 1024))  # about: chunks end at line ends
echo "data: $mb MB in 4 files, about $chunks chunks of $chunk"
fault_endpoints

# A watcher for the whole test (e): the sink restarts under it.
start "$TALLY_BIN/tally-watch" "$FEED" > "$WORK/watch-all.txt" 2>&1
watch_all=$LAST_PID

# Two workers for the whole test; (a) adds and stops a third.
start_worker "$WORK/worker1.log"
worker1=$LAST_PID
start_worker "$WORK/worker2.log"
worker2=$LAST_PID

# begin_job NAME [SINK ARGS...]: a sink writing $WORK/NAME/totals.tsv (its checkpoints go to
# $WORK/NAME/.tally-sink), a feed watcher, and a ventilator over the data; returns once a
# fifth of the job is merged, with the job still running.
begin_job() {
  local name=$1
  shift
  mkdir -p "$WORK/$name"
  start_sink "$WORK/$name/sink.log" "$WORK/$name/totals.tsv" "$@"
  start_watch "$WORK/$name/feed.json"
  start_vent "$name" --chunk-size "$chunk" --retry 1 "$WORK"/data/*.tsv
  check "$name: a fifth of the job is merged" \
    wait_until 60 feed_merged_at_least "$WORK/$name/feed.json" $((chunks / 5))
  check "$name: the job is still running" alive "$VENT_PID"
}

# timed_stop PID SIGNAL: sends SIGNAL, waits up to 30 s; sets STOP_STATUS (124: still
# running after 30 s, then SIGKILLed) and STOP_SECONDS.
timed_stop() {
  local pid=$1 signal=$2 t0
  t0=$(now)
  kill -"$signal" "$pid" 2> /dev/null || true
  wait_pid "$pid" 30 2> /dev/null && STOP_STATUS=0 || STOP_STATUS=$?
  STOP_SECONDS=$(elapsed "$t0")
  if [ "$STOP_STATUS" -eq 124 ]; then
    kill -KILL "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  fi
  forget "$pid"
}

# within SECONDS LIMIT: SECONDS <= LIMIT (decimals allowed).
within() { gawk -v s="$1" -v l="$2" 'BEGIN { exit !(s <= l) }'; }

# checkpoints DIR: the checkpoint files of a sink writing DIR/totals.tsv, in its state
# folder DIR/.tally-sink (one a line).
checkpoints() { ls "$1"/.tally-sink/tally-sink-*.checkpoint* 2> /dev/null || true; }

# ---------------------------------------------------------------------------------------
# (a) SIGTERM to a worker.
start_worker "$WORK/worker3.log"
worker3=$LAST_PID
begin_job a
timed_stop "$worker3" TERM
echo "(a) the worker exited with status $STOP_STATUS in $STOP_SECONDS s"
check "a: the worker exits within 2 s of SIGTERM" within "$STOP_SECONDS" 2
check "a: the worker exits 0" test "$STOP_STATUS" -eq 0
check "a: the worker says it mapped chunks" test "$(worker_chunks "$WORK/worker3.log")" -gt 0
await_job a "a worker stopped" "$WORK/a/totals.tsv"
stop_pid "$SINK_PID" 5 || true
stop_pid "$WATCH_PID" 2 || true

# ---------------------------------------------------------------------------------------
# (b) SIGTERM to the sink, then the same sink again.
begin_job b
sink_b=$SINK_PID
timed_stop "$sink_b" TERM
echo "(b) the sink exited with status $STOP_STATUS in $STOP_SECONDS s"
check "b: the sink exits within 5 s of SIGTERM" within "$STOP_SECONDS" 5
check "b: no totals file" no_totals "$WORK/b/totals.tsv"
check "b: the sink leaves one checkpoint" test "$(checkpoints "$WORK/b" | wc -l)" -eq 1
checkpoints "$WORK/b"
check "b: the state folder is the sink's alone (mode 0700)" \
  test "$(stat -c %a "$WORK/b/.tally-sink")" = 700
check "b: no checkpoint beside the totals" test -z "$(ls "$WORK"/b/tally-sink-* 2> /dev/null)"
check "b: the sink says it checkpointed the job" grep -q "checkpointed to" "$WORK/b/sink.log"
check "b: the ventilator waits for the sink" alive "$VENT_PID"
sleep 1
t0=$(now)
start_sink "$WORK/b/sink2.log" "$WORK/b/totals.tsv"
check "b: the restarted sink restores the job" \
  wait_until 10 grep -q "restored from" "$WORK/b/sink2.log"
await_job b "the sink stopped and restarted" "$WORK/b/totals.tsv"
echo "(b) the job ended $(elapsed "$t0") s after the restart"
check "b: the checkpoint is gone" test -z "$(checkpoints "$WORK/b")"
stop_pid "$SINK_PID" 5 || true
stop_pid "$WATCH_PID" 2 || true

# ---------------------------------------------------------------------------------------
# (c) SIGKILL to a sink that writes no periodic checkpoints (--checkpoint-interval 0, as
# one killed before its first): the restarted sink does not know the job; the ventilator
# opens it there again and sends every chunk again, and the job ends with gawk's totals.
begin_job c --checkpoint-interval 0
timed_stop "$SINK_PID" KILL
check "c: no checkpoint after SIGKILL" test -z "$(checkpoints "$WORK/c")"
t0=$(now)
start_sink "$WORK/c/sink2.log" "$WORK/c/totals.tsv" --checkpoint-interval 0
check "c: the ventilator says the sink does not have the job" \
  wait_until 10 grep -q "does not have this job" "$WORK/c.err"
await_job c "the sink killed before its first checkpoint" "$WORK/c/totals.tsv"
echo "(c) the job ended $(elapsed "$t0") s after the sink's restart"
grep -E "sink (holds|does not)" "$WORK/c.err" || true
check "c: the restarted sink is alive" alive "$SINK_PID"
stop_pid "$SINK_PID" 5 || true
stop_pid "$WATCH_PID" 2 || true

# ---------------------------------------------------------------------------------------
# (d) SIGTERM to the ventilator; then a new job through the same sink.
begin_job d
timed_stop "$VENT_PID" TERM
echo "(d) the ventilator exited with status $STOP_STATUS in $STOP_SECONDS s"
check "d: the ventilator exits within 2 s of SIGTERM" within "$STOP_SECONDS" 2
check "d: the ventilator exits non-zero" test "$STOP_STATUS" -ne 0 -a "$STOP_STATUS" -ne 124
check "d: no totals file" no_totals "$WORK/d/totals.tsv"
check "d: the sink is alive" alive "$SINK_PID"
check "d: the sink drops the job as cancelled" wait_until 5 grep -q "cancelled" "$WORK/d/sink.log"
check "d: the feed says the job failed" wait_until 5 grep -q '"topic":"failed"' "$WORK/d/feed.json"
start_vent d2 "$sample"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "d: the sink serves the next job (ventilator exits 0)" test "$status" -eq 0
same_file "d: the next job's totals equal gawk's" "$WORK/expected-sample.tsv" "$WORK/d/totals.tsv"
stop_pid "$WATCH_PID" 2 || true
stop_pid "$SINK_PID" 5 || true

# ---------------------------------------------------------------------------------------
# (e) SIGKILL to the ventilator: the sink gives up on the job after --job-timeout.
job_timeout=(--job-timeout 5)
silent="no word from the ventilator for [0-9]+ s \(--job-timeout\)"
begin_job e "${job_timeout[@]}"
timed_stop "$VENT_PID" KILL
check "e: the sink fails the job of the killed ventilator" \
  wait_until 60 grep -qE "failed: $silent" "$WORK/e/sink.log"
grep -E "failed: $silent" "$WORK/e/sink.log" || true
check "e: the feed says the job failed, and why" \
  wait_until 5 grep -qE "\"topic\":\"failed\".*$silent" "$WORK/e/feed.json"
check "e: no totals file" no_totals "$WORK/e/totals.tsv"
start_vent e2 "$sample"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "e: the sink serves the next job (ventilator exits 0)" test "$status" -eq 0
same_file "e: the next job's totals equal gawk's" "$WORK/expected-sample.tsv" "$WORK/e/totals.tsv"
stop_pid "$SINK_PID" 5 || true
stop_pid "$WATCH_PID" 2 || true

# ---------------------------------------------------------------------------------------
# (f) A restored job whose ventilator is gone: failed after --job-timeout from the restart.
begin_job f "${job_timeout[@]}"
timed_stop "$SINK_PID" TERM
check "f: the sink leaves a checkpoint" test "$(checkpoints "$WORK/f" | wc -l)" -eq 1
timed_stop "$VENT_PID" KILL
start_sink "$WORK/f/sink2.log" "$WORK/f/totals.tsv" "${job_timeout[@]}"
check "f: the restarted sink restores the job" \
  wait_until 10 grep -q "restored from" "$WORK/f/sink2.log"
check "f: and fails it, its ventilator being gone" \
  wait_until 60 grep -qE "failed: $silent" "$WORK/f/sink2.log"
check "f: no totals file" no_totals "$WORK/f/totals.tsv"
stop_pid "$WATCH_PID" 2 || true

# ---------------------------------------------------------------------------------------
# (g) Everything ends when told: tally-watch (which saw the sink restart again and again),
# the two workers (which outlived every sink but the last), the idle sink.
# stopped_in NAME PID SECONDS: SIGTERM to PID; checks it exits 0 within SECONDS.
stopped_in() {
  timed_stop "$2" TERM
  echo "(g) $1 exited with status $STOP_STATUS in $STOP_SECONDS s"
  check "g: $1 exits within $3 s of SIGTERM" within "$STOP_SECONDS" "$3"
  check "g: $1 exits 0" test "$STOP_STATUS" -eq 0
}
stopped_in tally-watch "$watch_all" 2
check "g: tally-watch printed the jobs' progress" grep -q " progress: " "$WORK/watch-all.txt"
stopped_in "worker 1" "$worker1" 2
stopped_in "worker 2" "$worker2" 2
stopped_in "the idle sink" "$SINK_PID" 5
check "g: the idle sink leaves no checkpoint (not of the job it failed either)" \
  test -z "$(checkpoints "$WORK/f")"
check "g: no tally process left" no_leftovers
finish
