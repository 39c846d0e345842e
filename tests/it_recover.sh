#!/usr/bin/env bash
# Crash recovery of the two stateful services, with the services started separately on
# TCP loopback, two workers, and 300 MB of n-gram 2012 files (150 MB sanitized) cut into
# 4K chunks (about 75,000 of them, so that a job lasts several seconds). The sink
# checkpoints its open jobs every half second (--checkpoint-interval 0.5) to its own
# --state-dir; the ventilator keeps its job in a --job-file. Eight jobs through one sink:
# (1) the sink SIGKILLed at a random moment and started again with the same command line,
#     twice in one job: each time it restores the job from its checkpoint, holding more
#     chunks than at the kill before; the ventilator, never restarted, exits 0;
# (2) the ventilator SIGKILLed at a random moment and started again with the same
#     --job-file and arguments, twice in one job: each takes the job up where the sink
#     stands, and the last exits 0;
# (3) both SIGKILLed at once and both started again, twice in one job;
#     each of (1)-(3) over the plain files and over the same files gzipped;
# (4) late partials: a worker stalled (SIGSTOP) while the sink is SIGKILLed and started
#     again; it goes on once the ventilator has sent its chunks again, and its partials
#     reach the new sink as duplicates;
# (5) an input touched while the ventilator was down: started again it exits 1 naming
#     the file; with the modification time put back, the job is taken up and ends.
# Every job's totals equal gawk's; after each, no checkpoint is left in the sink's state
# folder and the job file is gone. A "random moment" is when the feed says a random share
# of the chunks (15% to 85%) is merged; the seed is printed, and TALLY_RECOVER_SEED=N
# repeats a run's kill moments. Each job's wall time, kills included, is printed (never
# asserted).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
mb=$(half_scaled 300)
chunk=4K
seed=${TALLY_RECOVER_SEED:-$RANDOM}
RANDOM=$seed
echo "random seed: $seed (TALLY_RECOVER_SEED=$seed repeats this run's kill moments)"

gen_ngram2012 "$WORK/data" 4 "$mb" 43
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
mkdir -p "$WORK/gz"
gzips=()
for f in "$WORK"/data/*.tsv; do
  gzip -1 -c "$f" > "$WORK/gz/$(basename "$f").gz" &
  gzips+=($!)
done
wait "${gzips[@]}"
bytes=$(cat "$WORK"/data/*.tsv | wc -c)
chunks=$((bytes / 4096))  # about (chunks end at line ends, so a few more)
echo "data: $mb MB in 4 files (and gzipped: $(cat "$WORK"/gz/*.gz | wc -c) bytes)," \
  "about $chunks chunks of $chunk"

fault_endpoints
state="$WORK/state"
totals="$WORK/totals.tsv"
# The sink's command line, the same at every start.
sink_args=("$totals" --state-dir "$state" --checkpoint-interval 0.5 --interval 0.1)
sinks=0

# sink_up: starts the sink (again), its log in $WORK/sinkN.log; sets SINK_LOG, and
# SINK_MARK (the log's lines before the current job) to 0.
sink_up() {
  sinks=$((sinks + 1))
  SINK_LOG="$WORK/sink$sinks.log"
  SINK_MARK=0
  start_sink "$SINK_LOG" "${sink_args[@]}"
}

# kill9 PID: SIGKILL, reaped and dropped from the cleanup list.
kill9() {
  kill -KILL "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
  forget "$1"
}

# draw VAR LOW HIGH: VAR = a random integer from LOW to HIGH (from the seeded $RANDOM, in
# this shell, so that the sequence repeats for a seed).
draw() {
  printf -v "$1" '%d' $(($2 + RANDOM % ($3 - $2 + 1)))
}

# checkpoints: the checkpoint files (and temporary files of one) in the state folder.
checkpoints() { ls "$state"/tally-sink-*.checkpoint* 2> /dev/null || true; }
no_checkpoints() { [ -z "$(checkpoints)" ]; }

# checkpointed: the sink has logged a checkpoint of a job since line $SINK_MARK of its log.
checkpointed() { tail -n +$((SINK_MARK + 1)) "$SINK_LOG" | grep -q "checkpoint: [1-9]"; }

# restored_chunks: the chunks merged of the job the sink restored ("restored from FILE: N
# chunks merged"), from $SINK_LOG; empty when it restored none.
restored_chunks() {
  sed -n -E 's/.* restored from .*: ([0-9]+) chunks merged.*/\1/p' "$SINK_LOG" | tail -1
}

# merged_or_ended FEED N: true once the feed in FEED says N chunks are merged, or once the
# ventilator has ended (so that a job that failed is not waited for in vain).
merged_or_ended() { feed_merged_at_least "$1" "$2" || ! alive "$VENT_PID"; }

sink_up
workers=()
for n in 1 2; do
  start_worker "$WORK/worker$n.log" --quiet
  workers+=("$LAST_PID")
done

# recover KIND SRC: one job over $WORK/SRC (data or gz) in which KIND (sink, vent or
# both) is SIGKILLed at two random moments and started again each time.
recover() {
  local kind=$1 src=$2 name="$1-$2" title kill pct downtime t0 status vents=1 restarts
  local feed="$WORK/$1-$2.json" job="$WORK/$1-$2.job"
  local vent_args=(--chunk-size "$chunk" --verbose)
  case $kind in
    sink) title="($src) the sink SIGKILLed twice" ;;
    vent) title="($src) the ventilator SIGKILLed twice" ;;
    both) title="($src) sink and ventilator SIGKILLed together twice" ;;
  esac
  # The ventilator that is killed resumes from its job file; the one that outlives the
  # sink's deaths works without one.
  [ "$kind" = sink ] || vent_args+=(--job-file "$job")
  vent_args+=("$WORK/$src"/*)
  echo "--- $title"
  start_watch "$feed"
  local watch=$WATCH_PID
  SINK_MARK=$(wc -l < "$SINK_LOG")
  t0=$(now)
  start_vent "$name.1" "${vent_args[@]}"
  [ "$kind" = sink ] || check "$name: the job file is written" wait_until 10 test -s "$job"

  local low=15 high=50 restored before=0
  for kill in 1 2; do
    # The first kill at 15-50% merged, the second at least 15 points later, at most 85%.
    [ "$kill" = 1 ] || high=85
    draw pct "$low" "$high"
    draw downtime 0 10
    downtime=$(gawk -v d="$downtime" 'BEGIN { printf "%.1f", d / 10 }')
    low=$((pct + 15))
    echo "$name: kill $kill at $pct% of the chunks merged, down for $downtime s"
    wait_until 120 merged_or_ended "$feed" $((chunks * pct / 100)) || true
    check "$name: $pct% of the chunks merged (kill $kill)" \
      feed_merged_at_least "$feed" $((chunks * pct / 100))
    check "$name: the job still runs at kill $kill" alive "$VENT_PID"
    alive "$VENT_PID" || break
    if [ "$kind" != vent ]; then
      check "$name: the sink has checkpointed the job since it started (kill $kill)" \
        wait_until 2 checkpointed
    fi
    case $kind in
      sink) kill9 "$SINK_PID" ;;
      vent) kill9 "$VENT_PID" ;;
      both) { kill -KILL "$SINK_PID" "$VENT_PID"; wait "$SINK_PID" "$VENT_PID"; } 2> /dev/null || true
            forget "$SINK_PID"
            forget "$VENT_PID" ;;
    esac
    [ "$kind" = sink ] || check "$name: the job file outlives the ventilator (kill $kill)" test -s "$job"
    sleep "$downtime"
    if [ "$kind" != vent ]; then
      sink_up
      check "$name: the restarted sink restores the job from its checkpoint (kill $kill)" \
        wait_until 10 grep -q "restored from" "$SINK_LOG"
      # Chunks merged before the kill were checkpointed: more at each kill, as the
      # checkpoints go on after a restart.
      restored=$(restored_chunks)
      echo "$name: the restarted sink holds ${restored:-no} chunks from the checkpoint"
      check "$name: the checkpoint holds more chunks than the one before ($before) (kill $kill)" \
        test "${restored:-0}" -gt "$before"
      before=${restored:-0}
    fi
    if [ "$kind" != sink ]; then
      vents=$((vents + 1))
      start_vent "$name.$vents" "${vent_args[@]}"
      check "$name: the restarted ventilator takes the job up where the sink stands (kill $kill)" \
        wait_until 30 grep -q "taken up again: the sink holds [1-9]" "$WORK/$name.$vents.err"
    fi
  done

  wait_pid "$VENT_PID" 300 && status=0 || status=$?
  forget "$VENT_PID"
  echo "$name: the job took $(elapsed "$t0") s, two kills included"
  check "$title: the last ventilator exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/$name.$vents.err"
  same_file "$title: totals equal gawk's" "$WORK/expected.tsv" "$totals"
  if [ "$kind" = sink ]; then
    restarts=$(grep -c "the sink restarted: opening the job there again" "$WORK/$name.1.err" || true)
    check "$title: the ventilator noticed both restarts ($restarts)" test "$restarts" -eq 2
  fi
  # A background checkpoint that was being written when the job ended is removed when
  # the sink collects it: a moment later at most.
  check "$title: no checkpoint left in the state folder" wait_until 2 no_checkpoints
  checkpoints
  [ "$kind" = sink ] || check "$title: the job file is gone" test ! -e "$job"
  mv "$totals" "$WORK/$name.totals.tsv" 2> /dev/null || true
  stop_pid "$watch" 2 || true
}

for src in data gz; do
  for kind in sink vent both; do
    recover "$kind" "$src"
  done
done

# ---------------------------------------------------------------------------------------
# (4) Late partials after a restart: a worker stalls (SIGSTOP) holding chunks, the sink is
# SIGKILLed and started again; the ventilator sends what the sink lacks again, and the
# other worker maps it. Then the stalled worker goes on: its partials, of chunks merged
# meanwhile, reach the new sink late. They are duplicates, acknowledged again and merged
# not again; the job ends exact.
name=late-data
title="(data) late partials after a restart"
echo "--- $title"
start_watch "$WORK/$name.json"
watch=$WATCH_PID
SINK_MARK=$(wc -l < "$SINK_LOG")
t0=$(now)
start_vent "$name.1" --chunk-size "$chunk" --verbose "$WORK"/data/*
draw pct 15 60
echo "$name: the stall and the kill at $pct% of the chunks merged"
wait_until 120 merged_or_ended "$WORK/$name.json" $((chunks * pct / 100)) || true
check "$name: $pct% of the chunks merged" feed_merged_at_least "$WORK/$name.json" $((chunks * pct / 100))
check "$name: the job still runs" alive "$VENT_PID"
check "$name: the sink has checkpointed the job" wait_until 5 checkpointed
kill -STOP "${workers[0]}" || true
sleep 0.3
kill9 "$SINK_PID"
sink_up
check "$name: the restarted sink restores the job" wait_until 10 grep -q "restored from" "$SINK_LOG"
check "$name: the ventilator sends what the sink lacks again" \
  wait_until 30 grep -q "the sink holds" "$WORK/$name.1.err"
sleep 2
kill -CONT "${workers[0]}" || true
wait_pid "$VENT_PID" 300 && status=0 || status=$?
forget "$VENT_PID"
echo "$name: the job took $(elapsed "$t0") s"
check "$title: the ventilator exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/$name.1.err"
same_file "$title: totals equal gawk's" "$WORK/expected.tsv" "$totals"
check "$title: no checkpoint left in the state folder" wait_until 2 no_checkpoints
dups=$(sed -n -E 's/.* done: [0-9]+ chunks \(([0-9]+) duplicates\).*/\1/p' "$SINK_LOG" | tail -1)
echo "$name: the restarted sink saw ${dups:-?} duplicates"
check "$title: the stalled worker's partials reached the sink late, as duplicates" \
  test "${dups:-0}" -gt 0
stop_pid "$watch" 2 || true

# ---------------------------------------------------------------------------------------
# (5) An input changed while the ventilator was down: started again with its job file, it
# refuses (exit 1), naming the file, and keeps the job file. With the file's modification
# time put back, the next start takes the job up and ends it exact.
name=changed-data
title="(data) an input touched while the ventilator was down"
job="$WORK/$name.job"
vent_args=(--chunk-size "$chunk" --verbose --job-file "$job" "$WORK"/data/*)
victim="$WORK/data/part-02.tsv"
echo "--- $title"
start_watch "$WORK/$name.json"
watch=$WATCH_PID
t0=$(now)
start_vent "$name.1" "${vent_args[@]}"
draw pct 15 60
echo "$name: the kill at $pct% of the chunks merged"
wait_until 120 merged_or_ended "$WORK/$name.json" $((chunks * pct / 100)) || true
check "$name: $pct% of the chunks merged" feed_merged_at_least "$WORK/$name.json" $((chunks * pct / 100))
check "$name: the job still runs" alive "$VENT_PID"
kill9 "$VENT_PID"
touch -r "$victim" "$WORK/$name.mtime"
touch "$victim"
start_vent "$name.2" "${vent_args[@]}"
wait_pid "$VENT_PID" 30 && status=0 || status=$?
forget "$VENT_PID"
check "$title: the ventilator started again exits 1" test "$status" -eq 1
cat "$WORK/$name.2.err"
check "$title: ... naming the changed file" grep -qF "$victim changed since" "$WORK/$name.2.err"
check "$title: ... and keeps the job file" test -s "$job"
check "$title: no totals file" no_totals "$totals"
touch -r "$WORK/$name.mtime" "$victim"
start_vent "$name.3" "${vent_args[@]}"
check "$title: with the file as it was, the job is taken up" \
  wait_until 30 grep -q "taken up again: the sink holds [1-9]" "$WORK/$name.3.err"
wait_pid "$VENT_PID" 300 && status=0 || status=$?
forget "$VENT_PID"
echo "$name: the job took $(elapsed "$t0") s"
check "$title: the last ventilator exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/$name.3.err"
same_file "$title: totals equal gawk's" "$WORK/expected.tsv" "$totals"
check "$title: no checkpoint left in the state folder" wait_until 2 no_checkpoints
check "$title: the job file is gone" test ! -e "$job"
stop_pid "$watch" 2 || true

check "the sink is alive after all the jobs" alive "$SINK_PID"
stop_pid "$SINK_PID" 5 && status=0 || status=$?
check "the last sink exits 0 on SIGTERM" test "$status" -eq 0
check "and leaves no checkpoint (no job was open)" no_checkpoints
for pid in "${PIDS[@]}"; do stop_pid "$pid" 5 || true; done
check "no tally process left" no_leftovers
finish
