#!/usr/bin/env bash
# Sharded sinks across hosts, without Docker: network namespaces stand for machines on one
# LAN (tests/lib_netns.sh), all joined by a bridge in a sixth namespace (the "switch"):
#
#   host s0 (10.77.1.1): tally-sink, shard 0      host w1 (10.77.1.11): two tally-workers
#   host s1 (10.77.1.2): tally-sink, shard 1      host w2 (10.77.1.12): two tally-workers
#   host v  (10.77.1.3): tally-ventilator, and a tally-watch per shard
#
# The programs are the native build's ($TALLY_BIN); every endpoint is TCP between the
# hosts, ports 47557-47559. Job 1 runs over generated n-gram data in small chunks; once
# both shards have merged parts of a fifth of the chunks, host w2 is cut off (its switch
# port goes down): its workers hold chunks, and parts of chunks, they can never send. The
# ventilator sends those chunks again, and the two parts, merged by `tally merge`, equal
# gawk's totals. Host w2 comes back, and job 2 (the bundled sample) is counted right with
# all hosts. Skips (with the reason) when not root or when namespaces cannot be made.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib_netns.sh"
netns_init "tsh$$"
declare -A addr=([s0]=10.77.1.1 [s1]=10.77.1.2 [v]=10.77.1.3 [w1]=10.77.1.11 [w2]=10.77.1.12)
for h in s0 s1 v w1 w2; do netns_host "$h" "${addr[$h]}/24"; done
sinks="tcp://${addr[s0]}:47558,tcp://${addr[s1]}:47558"
vent_ep=tcp://${addr[v]}:47557

mkdir -p "$WORK/data"
t=$(now)
lines=$(half_scaled 2000000)
gawk -v dir="$WORK/data" -v files=4 -v lines="$lines" -v seed=78 -f "$here/docker/ngrams.awk"
expected_ngram "$WORK/data"/*.tsv > "$WORK/expected.tsv"
bytes=$(cat "$WORK"/data/*.tsv | wc -c)
chunk=8K
chunks=$((bytes / 8192))
echo "data: $(du -sh "$WORK/data" | cut -f1), $(wc -l < "$WORK/expected.tsv") keys," \
  "about $chunks chunks of $chunk; $(elapsed "$t") s with gawk's totals"

shard_pids=()
for i in 0 1; do
  start ip netns exec "$(ns "s$i")" "$TALLY_BIN/tally-sink" --bind "tcp://*:47558" \
    --publish "tcp://*:47559" --output "$WORK/part$i.tsv" --state-dir "$WORK/state$i" \
    > "$WORK/shard$i.log" 2>&1
  shard_pids+=("$LAST_PID")
done
for h in w1 w2 v; do
  for i in 0 1; do
    check "host $h reaches shard $i on host s$i" tcp_answers "$h" "${addr[s$i]}" 47558
  done
done
worker_pids=()
for h in w1 w2; do
  for i in 1 2; do
    start ip netns exec "$(ns "$h")" "$TALLY_BIN/tally-worker" --ventilator "$vent_ep" \
      --sink "$sinks" > "$WORK/worker-$h$i.log" 2>&1
    worker_pids+=("$h:$LAST_PID")
  done
done

# watch NAME: a tally-watch --json per shard's feed, from host v, to $WORK/NAME.feedI.json.
watch_pids=()
watch() {
  local i
  for i in 0 1; do
    start ip netns exec "$(ns v)" "$TALLY_BIN/tally-watch" --json \
      "tcp://${addr[s$i]}:47559" > "$WORK/$1.feed$i.json" 2> /dev/null
    watch_pids+=("$LAST_PID")
  done
  sleep 0.5
}
unwatch() {
  local pid
  for pid in "${watch_pids[@]}"; do stop_pid "$pid" 2 || true; done
  watch_pids=()
}
# both_merged NAME N: both shards' feeds say N chunks merged, or the ventilator ended.
both_merged() {
  { feed_merged_at_least "$WORK/$1.feed0.json" "$2" &&
    feed_merged_at_least "$WORK/$1.feed1.json" "$2"; } || ! alive "$vent_pid"
}
# parts_merged NAME EXPECTED: tally merge of the two parts equals EXPECTED, each part
# holds keys, none in both.
parts_merged() {
  local name=$1 expected=$2 status
  cut -f1 "$WORK/part0.tsv" "$WORK/part1.tsv" | sort | uniq -d > "$WORK/$name.twice"
  check "$name: no key in both parts, or twice in one" test ! -s "$WORK/$name.twice"
  for i in 0 1; do
    check "$name: part $i is sorted as a totals file" \
      sort -c -t"$(printf '\t')" -k2,2nr -k1,1 "$WORK/part$i.tsv"
  done
  check "$name: both parts hold keys ($(cat "$WORK"/part0.tsv | wc -l), $(cat "$WORK"/part1.tsv | wc -l))" \
    test -s "$WORK/part0.tsv" -a -s "$WORK/part1.tsv"
  "$TALLY_BIN/tally" merge --quiet -o "$WORK/$name.totals.tsv" "$WORK/part0.tsv" \
    "$WORK/part1.tsv" > "$WORK/$name.merge.out" 2>&1 && status=0 || status=$?
  check "$name: tally merge of the parts exits 0" test "$status" -eq 0
  same_file "$name: merged totals equal gawk's" "$expected" "$WORK/$name.totals.tsv"
}

# ---- job 1: host w2 cut off mid-job -----------------------------------------------------
watch job1
start ip netns exec "$(ns v)" "$TALLY_BIN/tally-ventilator" --verbose --progress none \
  --bind "tcp://*:47557" --sink "$sinks" --chunk-size "$chunk" --retry 1 "$WORK/data" \
  > "$WORK/vent1.log" 2>&1
vent_pid=$LAST_PID
t=$(now)
wait_until 120 both_merged job1 $((chunks / 5)) || true
check "job 1: both shards merged parts of a fifth of the chunks" both_merged job1 $((chunks / 5))
unplug w2
cut=$(now)
alive "$vent_pid" && mid_job=yes || mid_job=no
wait_pid "$vent_pid" 300 && status=0 || status=$?
forget "$vent_pid"
after_cut=$(elapsed "$cut")
echo "job 1: host w2 cut off $(gawk -v a="$t" -v b="$cut" 'BEGIN{printf "%.2f", b - a}') s" \
  "after the start; the job ended $after_cut s after the cut"
check "job 1: host w2 was cut off mid-job (the ventilator still running)" test "$mid_job" = yes
check "job 1: the ventilator exits 0 with host w2 cut off" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/vent1.log"
parts_merged "job 1" "$WORK/expected.tsv"
for i in 0 1; do grep " done: " "$WORK/shard$i.log" | tail -1 | sed "s/^/shard $i: /" || true; done
unwatch
cut_off=0
for entry in "${worker_pids[@]}"; do
  [ "${entry%%:*}" = w2 ] && alive "${entry#*:}" && cut_off=$((cut_off + 1))
done
check "host w2's workers are still running, cut off" test "$cut_off" -eq 2

# ---- job 2: host w2 back, the sample over all hosts -------------------------------------
plug w2
expected_ngram "$TALLY_SOURCE_DIR"/data/sample/*.tsv > "$WORK/expected-sample.tsv"
mv "$WORK/part0.tsv" "$WORK/job1.part0.tsv"
mv "$WORK/part1.tsv" "$WORK/job1.part1.tsv"
start ip netns exec "$(ns v)" "$TALLY_BIN/tally-ventilator" --quiet --bind "tcp://*:47557" \
  --sink "$sinks" "$TALLY_SOURCE_DIR/data/sample" > "$WORK/vent2.log" 2>&1
vent_pid=$LAST_PID
wait_pid "$vent_pid" 120 && status=0 || status=$?
forget "$vent_pid"
check "job 2: the ventilator exits 0 with host w2 back" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/vent2.log"
parts_merged "job 2" "$WORK/expected-sample.tsv"
for i in 0 1; do
  check "shard $i served both jobs" test "$(grep -c " done: " "$WORK/shard$i.log")" -eq 2
done

# ---- the end: every program stops, every namespace goes ---------------------------------
stopped=0
for entry in "${worker_pids[@]}" "s0:${shard_pids[0]}" "s1:${shard_pids[1]}"; do
  stop_pid "${entry#*:}" 10 && stopped=$((stopped + 1)) || true
done
check "shards and workers stop on SIGTERM with exit 0" test "$stopped" -eq 6
for i in 1 2; do
  n=$(worker_chunks "$WORK/worker-w2$i.log")
  check "host w2's worker $i took part (it mapped $n chunks)" test "$n" -gt 0
done
netns_cleanup
check "no namespace of the test is left" test "$(netns_left)" -eq 0
check "no tally process left" no_leftovers
finish
