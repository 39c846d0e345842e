#!/usr/bin/env bash
# Sharded sinks: one job's keys split over three tally-sink processes (shard = a keyed hash
# of the key mod 3), each writing its own part, started separately on TCP loopback
# (ports 47000-47999, each shard checked to listen). The data: 240 MB of n-gram 2012
# files (120 MB sanitized) in 1K chunks, so that a job lasts several seconds, and 40 MB
# (10 MB sanitized) in 64K chunks for the jobs with a misconfigured worker, whose chunks
# wait --retry 1 each time they reach it. The same three shards serve the jobs:
# (1) workers SIGKILLed mid-job, one every second, and new ones started;
# (2) shard 1 SIGKILLed mid-job (every shard checkpoints every half second) once it has
#     merged parts of 30% of the chunks and checkpointed, and started again a second later
#     with the same command line: it restores the job and the job ends exact;
# (3) a worker started with two of the three endpoints (--sink EP0,EP1) beside two right
#     ones: it logs that the job has 3 shards and it was given 2, and answers none of the
#     job's chunks; the others finish the job (--max-attempts 20: a chunk may reach the
#     idle worker several times in a row). Then a job with only that worker fails
#     (--max-attempts 3) and the ventilator names the --sink list as a likely cause;
#     and the worker outlives three ventilators stopped while it held their chunks;
# (4) a worker given the three endpoints in another order (EP1,EP0,EP2) beside two right
#     ones: shards 0 and 1 refuse the parts it sends them, and log it; the job ends exact;
# (5) tally run --shards 3, --shards 1 (one totals file, the summary's counts right) and
#     --shards 64 over data/sample; --shards 0 and 65 refused.
# After every job of (1)-(4): the ventilator exits 0; each part is sorted as a totals
# file, no key is in two parts, each holds about a third; `tally merge` of the parts
# equals sort(1) of their concatenation and gawk's totals; the shards' done messages on
# their feeds say shard i of 3, and their line counts (each chunk's counters are counted
# by one shard) add up to the input's.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
source "$(dirname "$0")/lib_shards.sh"
mb=$(half_scaled 240)
chunk=1K
chunk_bytes=1024
gen_ngram2012 "$WORK/data" 4 "$mb" 29
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
bytes=$(cat "$WORK"/data/*.tsv | wc -c)
chunks=$((bytes / chunk_bytes))  # about: chunks end at line ends
# A smaller input for the jobs with a misconfigured worker, whose chunks wait --retry.
small_mb=$(scaled 40)
small_chunk=64K
gen_ngram2012 "$WORK/small" 2 "$small_mb" 31
expected_ngram "$WORK"/small/*.tsv > "$WORK/expected-small.tsv"
# use_input DIR: the input of the next jobs: EXPECTED (gawk's totals) and INPUT_LINES.
use_input() {
  EXPECTED=$WORK/expected.tsv
  [ "$1" = data ] || EXPECTED=$WORK/expected-$1.tsv
  INPUT_LINES=$(cat "$WORK/$1"/*.tsv | wc -l)
}
use_input data
echo "data: $mb MB in 4 files, $INPUT_LINES lines, $(wc -l < "$WORK/expected.tsv") keys," \
  "about $chunks chunks of $chunk; small: $small_mb MB in 2 files, chunks of $small_chunk"

shard_endpoints 3
echo "shards: $SINK; ventilator: $VENT"
# Every shard's command line, the same at every start.
shard_args=(--checkpoint-interval 0.5 --interval 0.1)
for i in 0 1 2; do start_shard "$i" "$WORK/shard$i.log" "${shard_args[@]}"; done
# log_since FILE MARK: FILE's lines after line MARK.
log_since() { tail -n +$(($2 + 1)) "$1"; }

# listening I [MARK]: shard I has logged that it listens since line MARK of its log.
listening() { log_since "$WORK/shard$1.log" "${2:-0}" | grep -q "listening on"; }
for i in 0 1 2; do
  check "shard $i listens on ${SINKS[$i]}" wait_until 10 listening "$i"
  listening "$i" || cat "$WORK/shard$i.log"
done

# kill9 PID: SIGKILL, reaped and dropped from the cleanup list.
kill9() {
  kill -KILL "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
  forget "$1"
}

# hold PID... / release PID...: workers stopped (SIGSTOP: their connections cannot even
# finish the handshake, so the ventilator sends them nothing) / going on (SIGCONT).
hold() { kill -STOP "$@"; }
release() { kill -CONT "$@"; }

# shard_marks: every shard log's line count now (MARKS[i]), to read what a job logged.
shard_marks() {
  local i
  MARKS=()
  for ((i = 0; i < NSHARDS; i++)); do MARKS[i]=$(wc -l < "$WORK/shard$i.log"); done
}

# check_done_feeds TITLE NAME: the last done on each shard's feed ($WORK/NAME.feedI.json)
# says shard I of 3, and the lines of the three add up to the input's.
check_done_feeds() {
  local title=$1 name=$2 i sum=0 lines shard shards ok=yes
  for ((i = 0; i < NSHARDS; i++)); do
    wait_until 10 grep -q '^{"topic":"done"' "$WORK/$name.feed$i.json" || true
    shard=$(done_field "$WORK/$name.feed$i.json" shard)
    shards=$(done_field "$WORK/$name.feed$i.json" shards)
    lines=$(done_field "$WORK/$name.feed$i.json" lines)
    echo "$title: shard $i's done: shard=${shard:-?} shards=${shards:-?} lines=${lines:-?}"
    [ "$shard" = "$i" ] && [ "$shards" = "$NSHARDS" ] || ok=no
    sum=$((sum + ${lines:-0}))
  done
  check "$title: each shard's done on its feed says shard i of $NSHARDS" test "$ok" = yes
  check "$title: the shards' done lines add up to the input's ($sum of $INPUT_LINES)" \
    test "$sum" -eq "$INPUT_LINES"
}

# end_job NAME TITLE: waits for the ventilator, checks its exit, the parts and the feeds,
# and sets the parts aside.
end_job() {
  local name=$1 title=$2 status
  wait_pid "$VENT_PID" 300 && status=0 || status=$?
  forget "$VENT_PID"
  check "$title: the ventilator exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/$name.err"
  check_parts "$title" "$name"
  check_done_feeds "$title" "$name"
  stop_shard_watches
  set_aside_parts "$name"
}

# ---------------------------------------------------------------------------------------
# (1) Every second the oldest worker is SIGKILLed (it may hold chunks and parts of chunks
# it never sends) and a new one started, so two are alive at any time.
title="(1) workers SIGKILLed mid-job"
echo "--- $title"
workers=()
for n in 1 2; do
  start_worker "$WORK/kill$n.log" --quiet
  workers+=("$LAST_PID")
done
start_shard_watches kills
t0=$(now)
start_vent kills --chunk-size "$chunk" --retry 1 --verbose "$WORK"/data/*.tsv
kills=0
n=2
while true; do
  sleep 1
  alive "$VENT_PID" || break
  kill9 "${workers[0]}"
  kills=$((kills + 1))
  n=$((n + 1))
  start_worker "$WORK/kill$n.log" --quiet
  workers=("${workers[@]:1}" "$LAST_PID")
done
echo "$title: the job took $(elapsed "$t0") s; workers SIGKILLed: $kills"
end_job kills "$title"
check "$title: at least 3 workers were killed mid-job ($kills)" test "$kills" -ge 3
noticed=$(grep -c "a worker disconnected" "$WORK/kills.err" || true)
check "$title: the ventilator noticed at least 3 of the deaths ($noticed)" test "$noticed" -ge 3
for pid in "${workers[@]}"; do stop_pid "$pid" 5 || true; done

# Two workers for the jobs that follow.
workers=()
for n in 1 2; do
  start_worker "$WORK/worker$n.log" --quiet
  workers+=("$LAST_PID")
done

# ---------------------------------------------------------------------------------------
# (2) Shard 1 SIGKILLed once it has merged parts of 30% of the chunks and checkpointed,
# and started again after a second with the same command line.
title="(2) a shard SIGKILLed mid-job and started again"
echo "--- $title"
shard_marks
start_shard_watches restart
t0=$(now)
start_vent restart --chunk-size "$chunk" --verbose "$WORK"/data/*.tsv
merged_or_ended() { feed_merged_at_least "$1" "$2" || ! alive "$VENT_PID"; }
wait_until 120 merged_or_ended "$WORK/restart.feed1.json" $((chunks * 3 / 10)) || true
check "$title: shard 1 merged parts of 30% of the chunks" \
  feed_merged_at_least "$WORK/restart.feed1.json" $((chunks * 3 / 10))
check "$title: the job still runs at the kill" alive "$VENT_PID"
checkpointed() { log_since "$WORK/shard1.log" "${MARKS[1]}" | grep -q "checkpoint: [1-9]"; }
check "$title: shard 1 has checkpointed the job" wait_until 5 checkpointed
kill9 "${SHARD_PIDS[1]}"
sleep 1
restart_mark=$(wc -l < "$WORK/shard1.log")
start_shard 1 "$WORK/shard1.log" "${shard_args[@]}"
check "$title: the restarted shard listens again" wait_until 10 listening 1 "$restart_mark"
# The restarted shard publishes on the same endpoint; its subscriber reconnects.
restored() { log_since "$WORK/shard1.log" "$restart_mark" | grep -q "restored from"; }
check "$title: the restarted shard restores the job from its checkpoint" wait_until 10 restored
log_since "$WORK/shard1.log" "$restart_mark" | grep "restored from" || true
echo "$title: the job took $(elapsed "$t0") s, the kill included"
end_job restart "$title"
noticed=$(grep -c "sink shard 1 (${SINKS[1]}) restarted: opening the job there again" "$WORK/restart.err" || true)
check "$title: the ventilator noticed shard 1's restart, once ($noticed)" test "$noticed" -eq 1
others=$(grep -E -c "sink shard [02] .*opening the job there again" "$WORK/restart.err" || true)
check "$title: ... and opened the job again at no other shard ($others)" test "$others" -eq 0
no_checkpoints() { ! ls "$WORK"/shard*/state/tally-sink-*.checkpoint* > /dev/null 2>&1; }
check "$title: no checkpoint left in any shard's state folder" wait_until 2 no_checkpoints

# ---------------------------------------------------------------------------------------
# (3) A worker started with two of the three shards' endpoints.
title="(3) a worker with a 2-entry --sink list"
echo "--- $title"
short_list=$(join_list "${SINKS[0]}" "${SINKS[1]}")
start "$TALLY_BIN/tally-worker" --ventilator "$VENT" --sink "$short_list" \
  > "$WORK/short.log" 2>&1
short_pid=$LAST_PID
use_input small
start_shard_watches short
# Chunks that reach the short worker go again: --retry 1, and more attempts than the
# default, since a chunk may reach it more than once by chance. The right workers are
# held (SIGSTOP) until it has had chunks of the job, however fast they are.
hold "${workers[@]}"
start_vent short --chunk-size "$small_chunk" --retry 1 --max-attempts 20 --verbose "$WORK"/small/*.tsv
said_so() { grep -qE "has 3 sink shards.* this worker was started with 2 \(--sink " "$WORK/short.log"; }
check "$title: its log says the job has 3 shards and it was given 2" wait_until 30 said_so
release "${workers[@]}"
end_job short "$title"
grep -m1 "sink shards" "$WORK/short.log" || tail -3 "$WORK/short.log"
check "$title: the worker is still running" alive "$short_pid"

# Only the short worker: the job cannot be done, and the ventilator says why.
title="(3b) a job with only a 2-entry worker"
echo "--- $title"
for pid in "${workers[@]}"; do stop_pid "$pid" 5 || true; done
shard_marks
# One file, one chunk: the worker waits a second after each chunk it cannot count, so
# the whole sample (26 chunks, each tried 3 times in turn) would take over a minute.
one_file=$(find "$TALLY_SOURCE_DIR/data/sample" -name '*.tsv' | sort | head -1)
start_vent only-short --retry 0.5 --max-attempts 3 "$one_file"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "$title: the ventilator fails the job (exit 1, got $status)" test "$status" -eq 1
if [ "$status" -ne 1 ]; then
  # Say why, for a run that cannot be repeated: is the 2-entry worker there, and what
  # did it say (a sanitizer's report ends its log when it aborted)
  alive "$short_pid" && echo "the 2-entry worker is running" ||
    echo "the 2-entry worker is gone"
  echo "--- short.log:"
  tail -n 40 "$WORK/short.log"
  echo "--- only-short.err:"
fi
cat "$WORK/only-short.err"
check "$title: ... naming the sink shard list as a likely cause" \
  grep -qiE "shard.*--sink|--sink.*shard" "$WORK/only-short.err"
ok=yes
for i in 0 1 2; do no_totals "$(shard_part "$i")" || ok=no; done
check "$title: no shard wrote a part" test "$ok" = yes

# The 2-entry worker holds chunks it cannot count (it waits a second after each) when
# their ventilator stops. libzmq 4.3.4 aborted a worker then, at its next ZMTP heartbeat
# (see worker.c); this did so 9 times in 10.
title="(3c) ventilators stopped while the 2-entry worker holds their chunks"
echo "--- $title"
lived=0
for round in 1 2 3; do
  start_vent "held$round" --chunk-size "$small_chunk" --retry 0.5 --max-attempts 100 \
    "$WORK"/small/*.tsv
  sleep 1.5
  stop_pid "$VENT_PID" 5 || true
  sleep 2.5
  alive "$short_pid" || break
  lived=$round
done
check "$title: the worker outlives them ($lived of 3)" test "$lived" -eq 3
[ "$lived" -eq 3 ] || tail -n 3 "$WORK/short.log"
stop_pid "$short_pid" 5 || true
ok=yes
for i in 0 1 2; do alive "${SHARD_PIDS[$i]}" || ok=no; done
check "$title: the three shards are still running" test "$ok" = yes
workers=()
for n in 3 4; do
  start_worker "$WORK/worker$n.log" --quiet
  workers+=("$LAST_PID")
done

# ---------------------------------------------------------------------------------------
# (4) A worker given the three endpoints in another order: shards 0 and 1 are swapped.
title="(4) a worker with the --sink list in another order"
echo "--- $title"
swapped=$(join_list "${SINKS[1]}" "${SINKS[0]}" "${SINKS[2]}")
start "$TALLY_BIN/tally-worker" --ventilator "$VENT" --sink "$swapped" > "$WORK/swapped.log" 2>&1
swapped_pid=$LAST_PID
shard_marks
start_shard_watches swapped
hold "${workers[@]}"
start_vent swapped --chunk-size "$small_chunk" --retry 1 --max-attempts 20 --verbose "$WORK"/small/*.tsv
refused() { log_since "$WORK/shard$1.log" "${MARKS[$1]}" | grep -q "dropped a message"; }
for i in 0 1; do
  check "$title: shard $i logs the parts it refused" wait_until 30 refused "$i"
  log_since "$WORK/shard$i.log" "${MARKS[$i]}" | grep -m1 "dropped a message" || true
done
release "${workers[@]}"
end_job swapped "$title"
check "$title: shard 2 refused nothing" eval '! refused 2'
stop_pid "$swapped_pid" 5 || true
use_input data
for pid in "${workers[@]}"; do stop_pid "$pid" 5 || true; done

ok=yes
for i in 0 1 2; do stop_pid "${SHARD_PIDS[$i]}" 5 || ok=no; done
check "the three shards exit 0 on SIGTERM" test "$ok" = yes
check "no tally process left" no_leftovers

# ---------------------------------------------------------------------------------------
# (5) tally run with shards: one totals file, as without.
for n in 3 1; do
  title="(5) tally run --shards $n"
  echo "--- $title"
  mkdir -p "$WORK/run$n"
  t0=$(now)
  "$TALLY_BIN/tally" run --shards "$n" --workers 2 --progress none -o "$WORK/run$n/totals.tsv" \
    "$WORK/data" > "$WORK/run$n.out" 2>&1 && status=0 || status=$?
  echo "$title: $(elapsed "$t0") s"
  check "$title: exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/run$n.out"
  same_file "$title: totals equal gawk's" "$WORK/expected.tsv" "$WORK/run$n/totals.tsv"
  check "$title: only the totals file is left in its folder ($(ls "$WORK/run$n" | xargs))" \
    test "$(ls -A "$WORK/run$n")" = totals.tsv
  read -r lines bad filtered keys sum < <(summary_numbers "$WORK/run$n.out") || true
  check "$title: the summary counts the input's lines (${lines:-none} of $INPUT_LINES)" \
    test "${lines:-0}" -eq "$INPUT_LINES"
  check "$title: the summary counts the keys and their sum" \
    test "${keys:-0}" -eq "$(wc -l < "$WORK/expected.tsv")" -a "${sum:-0}" = "$(sum_totals "$WORK/expected.tsv")"
done
# The most shards a job may have, over the sample in small chunks (every shard gets a
# part, maybe empty, of every chunk).
title="(5) tally run --shards 64 on data/sample"
expected_ngram "$TALLY_SOURCE_DIR"/data/sample/*.tsv > "$WORK/expected-sample.tsv"
mkdir -p "$WORK/run64"
"$TALLY_BIN/tally" run --shards 64 --workers 2 --chunk-size 16K --progress none \
  -o "$WORK/run64/totals.tsv" "$TALLY_SOURCE_DIR/data/sample" > "$WORK/run64.out" 2>&1 &&
  status=0 || status=$?
check "$title: exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/run64.out"
same_file "$title: totals equal gawk's" "$WORK/expected-sample.tsv" "$WORK/run64/totals.tsv"
check "$title: only the totals file is left in its folder ($(ls "$WORK/run64" | xargs))" \
  test "$(ls -A "$WORK/run64")" = totals.tsv
# names_shards FILE: FILE names --shards, and not as an unknown option.
names_shards() { grep -q -- "--shards" "$1" && ! grep -q "unknown option" "$1"; }
for n in 0 65; do
  "$TALLY_BIN/tally" run --shards "$n" "$TALLY_SOURCE_DIR/data/sample" > "$WORK/bad-shards.out" 2>&1 &&
    status=0 || status=$?
  check "tally run --shards $n: usage error (exit 2, got $status)" test "$status" -eq 2
  check "tally run --shards $n: names --shards, a known option" names_shards "$WORK/bad-shards.out"
  cat "$WORK/bad-shards.out"
done
check "no tally process left" no_leftovers
finish
