#!/usr/bin/env bash
# Workers dying and coming and going mid-job, with the services started separately on TCP
# loopback. One sink serves three jobs over the same data (250 MB of n-gram 2012 files,
# 60 MB sanitized, cut into 512-byte chunks: half a million of them, so that a job lasts
# about ten seconds): (1) two workers, undisturbed; (2) a worker SIGKILLed every second
# and a new one started, two alive at any time; (3) one worker at the start, three more
# added mid-job, two of them stopped (SIGTERM) mid-job. Every job's totals equal gawk's.
# The job times of (1) and (2) are printed, not asserted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
mb=$(scaled 250)
chunk=512
gen_ngram2012 "$WORK/data" 4 "$mb" 17
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
bytes=$(cat "$WORK"/data/*.tsv | wc -c)
chunks=$((bytes / 512))  # about: chunks end at line ends
totals="$WORK/totals.tsv"
echo "data: $mb MB in 4 files, about $chunks chunks of $chunk bytes"

fault_endpoints
start_sink "$WORK/sink.log" "$totals"
sink_pid=$SINK_PID

# job_seconds NAME: the job time the ventilator's summary gives (JOB to DONE at the sink).
job_seconds() {
  sed -n -E 's/.* in ([0-9.]+) s \(.*/\1/p' "$WORK/$1.out" | tail -1
}

# finish_job NAME TITLE: checks the job, then moves its totals aside for the next one.
finish_job() {
  await_job "$1" "$2" "$totals"
  mv "$totals" "$WORK/$1.totals.tsv" 2> /dev/null || true
}

# ---------------------------------------------------------------------------------------
# (1) Two workers, nothing killed: the reference time.
start_worker "$WORK/calm1.log" --quiet
calm1=$LAST_PID
start_worker "$WORK/calm2.log" --quiet
calm2=$LAST_PID
start_vent calm --chunk-size "$chunk" --retry 1 "$WORK"/data/*.tsv
finish_job calm "no kills"
calm_seconds=$(job_seconds calm)
stop_pid "$calm1" 5 || true
stop_pid "$calm2" 5 || true

# ---------------------------------------------------------------------------------------
# (2) Every second the oldest worker is SIGKILLed (it may hold chunks it never answers)
# and a new one started, so two are alive at any time.
workers=()
for n in 1 2; do
  start_worker "$WORK/kill$n.log" --quiet
  workers+=("$LAST_PID")
done
start_vent kills --chunk-size "$chunk" --retry 1 --verbose "$WORK"/data/*.tsv
kills=0
n=2
while true; do
  sleep 1
  alive "$VENT_PID" || break
  victim=${workers[0]}
  kill -KILL "$victim" 2> /dev/null || true
  wait "$victim" 2> /dev/null || true
  forget "$victim"
  kills=$((kills + 1))
  n=$((n + 1))
  start_worker "$WORK/kill$n.log" --quiet
  workers=("${workers[@]:1}" "$LAST_PID")
done
finish_job kills "a worker SIGKILLed every second"
kill_seconds=$(job_seconds kills)
echo "workers SIGKILLed during the job: $kills"
check "at least 3 workers were killed mid-job" test "$kills" -ge 3
noticed=$(grep -c "a worker disconnected" "$WORK/kills.err" || true)
check "the ventilator noticed at least 3 of the deaths ($noticed)" test "$noticed" -ge 3
merged=$(grep -E -o 'done: [0-9]+ chunks \([0-9]+ duplicates\)' "$WORK/sink.log" | tail -1)
echo "the sink: $merged"
# How close the job came to failing a chunk: attempts are failures, not sends.
grep -E -o 'the most attempts a chunk took: [0-9]+ \(--max-attempts [0-9]+\)' "$WORK/kills.err" || true
for pid in "${workers[@]}"; do stop_pid "$pid" 5 || true; done
echo "job time without kills: ${calm_seconds:-?} s, with kills every second: ${kill_seconds:-?} s"

# ---------------------------------------------------------------------------------------
# (3) One worker at the start; three more once chunks are being merged; two of those
# stopped with SIGTERM while the job still runs.
start_watch "$WORK/grow.json"
watch_pid=$WATCH_PID
start_worker "$WORK/grow1.log"
first=$LAST_PID
start_vent grow --chunk-size "$chunk" --retry 1 "$WORK"/data/*.tsv
check "one worker: chunks get merged" \
  wait_until 60 feed_merged_at_least "$WORK/grow.json" $((chunks / 20))
check "the job is still running when three workers are added" alive "$VENT_PID"
added=()
for n in 2 3 4; do
  start_worker "$WORK/grow$n.log"
  added+=("$LAST_PID")
done
check "four workers: the job goes on" \
  wait_until 60 feed_merged_at_least "$WORK/grow.json" $((chunks * 2 / 5))
check "the job is still running when two workers are stopped" alive "$VENT_PID"
stop_pid "${added[0]}" 2 && s1=0 || s1=$?
stop_pid "${added[1]}" 2 && s2=0 || s2=$?
check "the two stopped workers exit 0 within 2 s" test "$s1" -eq 0 -a "$s2" -eq 0
finish_job grow "workers added and removed"
stop_pid "$first" 5 || true
stop_pid "${added[2]}" 5 || true
for n in 1 2 3 4; do
  echo "worker $n mapped $(worker_chunks "$WORK/grow$n.log") chunks"
done
for n in 2 3 4; do
  check "added worker $n mapped chunks" test "$(worker_chunks "$WORK/grow$n.log")" -gt 0
done
stop_pid "$watch_pid" 2 || true

stop_pid "$sink_pid" 5 && status=0 || status=$?
check "the sink exits 0 on SIGTERM" test "$status" -eq 0
check "no tally process left" no_leftovers
finish
