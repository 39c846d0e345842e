#!/usr/bin/env bash
# The feed under slow and stalled subscribers, with the services started separately on TCP
# loopback and Python subscribers (pyzmq + msgpack, like examples/subscribe.py):
# (a) a subscriber that reads slowly (a few ms a message, once a 2 s pause, and room for
#     only 4 messages on its side, so that the sink has to wait for it) gets every totals
#     batch of a job of 100,000 distinct keys in 1,000 batches (--batch 100: four times the
#     sink's queue of 256 messages per subscriber), in order, then done, and its totals
#     equal gawk's; so does a subscriber that reads fast beside it;
# (b) batches are cut at 256 KiB too: with the default --batch (10,000) and keys of 100
#     bytes, no message is larger and the totals take as many batches as that makes;
# (c) a subscriber that never reads (and keeps its connection alive with heartbeats, so
#     that only the sink's grace period can let go of it) costs the sink no more than its
#     queue: over three jobs of 300,000 keys (150,000 sanitized) with ~20 MB of totals on
#     the feed each, the sink's VmRSS after the third job is within 16 MB of what it was
#     after the first (the first job's tables are freed by then, and its stalled queue
#     holds at most 256 messages of 100 keys); the ventilators exit 0 with gawk's totals
#     and a good subscriber gets every batch of every job, the first job's only after
#     the grace period (the ventilator had its DONE long before).
# (d) a job of 3 sink shards (3 sinks, each with its own feed and part, and workers and a
#     ventilator given the 3): tally-watch --until-done given the 3 feeds exits 0 once the
#     last shard's done came, its combined done has the key count and sum of gawk's totals
#     (which the parts, merged by tally merge, equal) and the input's line count, names the
#     3 parts, and its last progress and top are the job's (every chunk, every key; the
#     top equal to the totals' first lines); it shows every batch of every shard, numbered
#     per shard; tally-watch --json given them as EP0,EP1,EP2 prints every message with its
#     shard, the 3 shards' totals entries equal gawk's; examples/subscribe.py given the 3
#     exits 0 with totals equal to gawk's;
# (e) the same sinks' job cancelled mid-way (the ventilator interrupted): tally-watch
#     --until-done and subscribe.py exit 1 at the first shard's failed, naming the shard;
# (f) a subscriber to "top" alone gets the open job's top list while the job runs (the
#     sink makes it only while some subscriber takes "top"), with the workers stopped
#     (SIGSTOP) so that the job stays open, and its last top is the job's totals' head.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"

# A sanitized build runs slower and holds freed memory in a quarantine: smaller jobs, and
# no quarantine, so that the memory the sink reuses shows as reused.
if ldd "$TALLY_BIN/tally-sink" | grep -q libasan; then
  big=150000
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
else
  big=300000
fi


# The subscriber: sub.py ENDPOINT OUT MODE [SLEEP PAUSE_AT RCVHWM]. MODE "read": writes, for
# each job's done, the totals it gathered to OUT.N.tsv (N = 1, 2, ... in the order of the
# jobs' done) and a line to OUT.stats: "job batches_received batches in_order largest_body
# done_time keys_ok". It sleeps SLEEP seconds after each message, 2 s once after message
# PAUSE_AT, and queues at most RCVHWM messages on its side. MODE "stall": subscribes and
# never reads, heartbeating so that its connection stays up.
cat > "$WORK/sub.py" <<'PYEOF'
import sys, time
import msgpack, zmq
endpoint, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sub = zmq.Context().socket(zmq.SUB)
if mode == "stall":
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sub.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3600 * 1000)
else:
    pause, pause_at, rcvhwm = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    sub.setsockopt(zmq.RCVHWM, rcvhwm)
    if rcvhwm:
        sub.setsockopt(zmq.RCVBUF, 4096)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect(endpoint)
print("subscribed", file=sys.stderr, flush=True)
if mode == "stall":
    time.sleep(3600)
    sys.exit(0)
jobs, done_count, received = {}, 0, 0
while True:
    if not sub.poll(300 * 1000):
        sys.exit("no message for 300 s")
    topic, body = sub.recv_multipart()
    received += 1
    if received == pause_at:
        time.sleep(2)
    elif pause:
        time.sleep(pause)
    msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
    if topic == b"totals":
        job = jobs.setdefault(msg["job"], {"next": 0, "in_order": True, "got": 0, "largest": 0,
                                           "totals": {}, "batches": msg["batches"]})
        job["in_order"] &= msg["batch"] == job["next"]
        job["next"] = msg["batch"] + 1
        job["got"] += 1
        job["largest"] = max(job["largest"], len(body))
        job["totals"].update(msg["entries"])
    elif topic == b"done":
        job = jobs.pop(msg["job"], {"next": 0, "in_order": False, "got": 0, "largest": 0,
                                    "totals": {}, "batches": -1})
        done_count += 1
        with open("%s.%d.tsv" % (out, done_count), "wb") as f:
            for key, total in job["totals"].items():
                f.write(key + b"\t%d\n" % total)
        keys_ok = len(job["totals"]) == msg["keys"] and sum(job["totals"].values()) == msg["sum"]
        with open(out + ".stats", "a") as f:
            print(msg["job"], job["got"], job["batches"], int(job["in_order"]), job["largest"],
                  "%.3f" % time.time(), int(keys_ok), file=f)
PYEOF

# start_sub NAME MODE [ARGS...]: sub.py on $FEED writing $WORK/NAME.*; waits until it
# subscribed, and half a second for the subscription to reach the sink.
start_sub() {
  local name=$1
  shift
  start "$PY" "$WORK/sub.py" "$FEED" "$WORK/$name" "$@" 2> "$WORK/$name.err"
  wait_until 20 grep -q subscribed "$WORK/$name.err" || true
  sleep 0.5
}

# stats NAME N: field N of the last stats line of subscriber NAME.
stats() { tail -1 "$WORK/$1.stats" | cut -d' ' -f"$2"; }
done_jobs() { [ -f "$WORK/$1.stats" ] && wc -l < "$WORK/$1.stats" || echo 0; }
has_done() { [ "$(done_jobs "$1")" -ge "$2" ]; }
rss_kb() { gawk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# check_sub NAME N EXPECTED BATCHES: subscriber NAME's N-th job: every batch (BATCHES of
# them, or as the job said when BATCHES is empty) in order, its totals equal EXPECTED.
check_sub() {
  local name=$1 n=$2 expected=$3 batches=$4 line got total in_order keys_ok
  line=$(sed -n "${n}p" "$WORK/$name.stats")
  read -r _ got total in_order _ _ keys_ok <<< "$line"
  [ -n "$batches" ] || batches=$total
  echo "    $name, job $n: $got of $total batches (expected $batches), in order: $in_order"
  check "$name, job $n: every batch" test "$got" -eq "$batches" -a "$total" -eq "$batches"
  check "$name, job $n: in order" test "$in_order" = 1
  check "$name, job $n: keys and sum agree with done" test "$keys_ok" = 1
  sort_totals < "$WORK/$name.$n.tsv" > "$WORK/$name.$n.sorted"
  same_file "$name, job $n: totals equal gawk's" "$expected" "$WORK/$name.$n.sorted"
}

# await_job_status: waits for the ventilator ($VENT_PID); sets $status.
await_job_status() {
  wait_pid "$VENT_PID" 300 && status=0 || status=$?
  forget "$VENT_PID"
}

fault_endpoints
start_worker "$WORK/worker1.log"
worker1=$LAST_PID
start_worker "$WORK/worker2.log"
worker2=$LAST_PID

# ---------------------------------------------------------------------------------------
# (a) A slow subscriber gets everything, at its pace.
gen_words "$WORK/a.txt" 100000 20 1
expected_text "$WORK/a.txt" > "$WORK/a.expected"
start_sink "$WORK/a.sink.log" "$WORK/a.tsv" --batch 100
start_sub slow read 0.003 100 4
start_sub fast read 0 0 0
start_vent a "$WORK/a.txt"
await_job_status
check "a: the ventilator exits 0" test "$status" -eq 0
same_file "a: totals equal gawk's" "$WORK/a.expected" "$WORK/a.tsv"
check "a: the slow subscriber gets done" wait_until 300 has_done slow 1
check "a: the fast subscriber gets done" wait_until 60 has_done fast 1
check_sub slow 1 "$WORK/a.expected" 1000
check_sub fast 1 "$WORK/a.expected" 1000
check "a: the sink waited for nobody (no subscriber was given up)" \
  bash -c "! grep -q 'has taken nothing' '$WORK/a.sink.log'"
stop_pid "$SINK_PID" 5 || true

# ---------------------------------------------------------------------------------------
# (b) Batches cut at 256 KiB: 10,000 keys of 100 bytes would be ~1.1 MB.
gen_words "$WORK/b.txt" 30000 100 2
expected_text "$WORK/b.txt" > "$WORK/b.expected"
start_sink "$WORK/b.sink.log" "$WORK/b.tsv"
start_sub fast_b read 0 0 0
start_vent b "$WORK/b.txt"
await_job_status
check "b: the ventilator exits 0" test "$status" -eq 0
check "b: the subscriber gets done" wait_until 60 has_done fast_b 1
# 30,000 entries of 103 bytes (100 of key, a 2-byte bin header, a 1-byte total), at most
# 262,016 bytes of entries a batch (256 KiB less 128 for the rest): 2,543 a batch.
check_sub fast_b 1 "$WORK/b.expected" 12
largest=$(stats fast_b 5)
echo "    largest message: $largest bytes"
check "b: no message is larger than 256 KiB" test "$largest" -le 262144
check "b: batches are filled up to the limit (over 255 KiB)" test "$largest" -gt 261120
stop_pid "$SINK_PID" 5 || true

# ---------------------------------------------------------------------------------------
# (c) A subscriber that never reads.
gen_words "$WORK/c.txt" "$big" 60 3
expected_text "$WORK/c.txt" > "$WORK/c.expected"
# glibc serves large blocks (the job's tables) from the heap once one was freed, and keeps
# what is freed there resident: a fixed mmap threshold gives them back, so that VmRSS
# shows what the sink holds rather than the heap's high-water mark.
MALLOC_MMAP_THRESHOLD_=131072 start_sink "$WORK/c.sink.log" "$WORK/c.tsv" --batch 100
sink_c=$SINK_PID
start_sub stalled stall
stalled=$LAST_PID
start_sub good read 0 0 0
rss_start=$(rss_kb "$sink_c")
rss=()
for job in 1 2 3; do
  start_vent "c$job" "$WORK/c.txt"
  await_job_status
  vent_done=$EPOCHREALTIME
  check "c$job: the ventilator exits 0" test "$status" -eq 0
  same_file "c$job: totals equal gawk's" "$WORK/c.expected" "$WORK/c.tsv"
  check "c$job: the good subscriber gets done" wait_until 120 has_done good "$job"
  check_sub good "$job" "$WORK/c.expected" ""
  if [ "$job" = 1 ]; then
    feed_done=$(stats good 6)
    echo "    the feed's done came $(gawk -v a="$vent_done" -v b="$feed_done" \
      'BEGIN{printf "%.1f", b - a}') s after the ventilator's DONE"
    check "c1: DONE did not wait for the feed (which waited the grace period)" \
      gawk -v a="$vent_done" -v b="$feed_done" 'BEGIN{exit !(b > a + 2)}'
  fi
  sleep 1
  rss+=("$(rss_kb "$sink_c")")
  echo "    sink VmRSS after job $job: ${rss[-1]} kB (at start: $rss_start kB)"
done
feed_mb=$(gawk '{s += length($1) + 12} END{printf "%d", s / 1e6}' "$WORK/c.expected")
echo "    each job's totals on the feed: about $feed_mb MB"
check "c: the sink says it stopped waiting for a subscriber" \
  grep -q "has taken nothing for" "$WORK/c.sink.log"
grew=$(( (rss[2] > rss[1] ? rss[2] : rss[1]) - rss[0] ))
echo "    the sink grew by $grew kB from job 1 to job 3"
check "c: the stalled subscriber does not make the sink grow (less than 16 MB)" \
  test "$grew" -lt 16384
check "c: the stalled subscriber is still there" alive "$stalled"
stop_pid "$sink_c" 5 || true
# ---------------------------------------------------------------------------------------
# (d) The feeds of a job's sink shards, combined: three sinks, each with its own feed and
# part; workers and a ventilator given the three (--sink EP0,EP1,EP2).
gen_words "$WORK/d.txt" 60000 12 4
expected_text "$WORK/d.txt" > "$WORK/d.expected"
d_keys=$(wc -l < "$WORK/d.expected")
d_sum=$(gawk -F'\t' '{s += $2} END{printf "%d", s}' "$WORK/d.expected")
d_vent="tcp://127.0.0.1:$(free_port)"
d_sinks=() d_feeds=() d_pids=()
for i in 0 1 2; do
  d_sinks+=("tcp://127.0.0.1:$(free_port)")
  d_feeds+=("tcp://127.0.0.1:$(free_feed_port)")
done
d_sink_list=$(IFS=,; echo "${d_sinks[*]}")
for i in 0 1 2; do
  start "$TALLY_BIN/tally-sink" --bind "${d_sinks[$i]}" --publish "${d_feeds[$i]}" \
    --output "$WORK/d.part$i.tsv" --state-dir "$WORK/d.state$i" --batch 100 \
    > "$WORK/d.sink$i.log" 2>&1
  d_pids+=("$LAST_PID")
done
d_workers=()
for i in 1 2; do
  start "$TALLY_BIN/tally-worker" --ventilator "$d_vent" --sink "$d_sink_list" \
    > "$WORK/d.worker$i.log" 2>&1
  d_workers+=("$LAST_PID")
done
# tally-watch readable and --json (the feeds as separate arguments, then as one list),
# subscribe.py: each waits for the job's done.
start "$TALLY_BIN/tally-watch" --until-done --timeout 120 "${d_feeds[@]}" \
  > "$WORK/d.watch" 2> "$WORK/d.watch.err"
d_watch=$LAST_PID
start "$TALLY_BIN/tally-watch" --json --until-done --timeout 120 "$(IFS=,; echo "${d_feeds[*]}")" \
  > "$WORK/d.json" 2> "$WORK/d.json.err"
d_json=$LAST_PID
start "$PY" "$TALLY_SOURCE_DIR/examples/subscribe.py" "${d_feeds[@]}" --output "$WORK/d.py.tsv" \
  --timeout 120 > "$WORK/d.py.out" 2> "$WORK/d.py.err"
d_py=$LAST_PID
wait_until 20 grep -q subscribed "$WORK/d.py.err" || true
sleep 0.5
start "$TALLY_BIN/tally-ventilator" --bind "$d_vent" --sink "$d_sink_list" --progress none \
  "$WORK/d.txt" > "$WORK/d.vent.out" 2> "$WORK/d.vent.err"
VENT_PID=$LAST_PID
await_job_status
check "d: the ventilator of 3 sink shards exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/d.vent.err"
"$TALLY_BIN/tally" merge --quiet -o "$WORK/d.tsv" "$WORK/d.part0.tsv" "$WORK/d.part1.tsv" \
  "$WORK/d.part2.tsv"
same_file "d: the shards' parts merged equal gawk's totals" "$WORK/d.expected" "$WORK/d.tsv"
for i in 0 1 2; do
  check "d: shard $i has a part of the keys" test -s "$WORK/d.part$i.tsv"
done
echo "    keys: $d_keys, sum: $d_sum; parts: $(wc -l < "$WORK/d.part0.tsv"), $(wc -l < "$WORK/d.part1.tsv"), $(wc -l < "$WORK/d.part2.tsv")"

wait_pid "$d_watch" 60 && status=0 || status=$?
forget "$d_watch"
check "d: tally-watch --until-done on the 3 feeds exits 0" test "$status" -eq 0
d_done=$(grep ' done (3 shards): ' "$WORK/d.watch" || true)
echo "    tally-watch: $d_done"
check "d: tally-watch prints the job's done once" test "$(grep -c ' done (3 shards): ' "$WORK/d.watch")" -eq 1
check "d: ... last, after the 2 shards done before it" \
  test "$(tail -1 "$WORK/d.watch")" = "$d_done" -a "$(grep -c 'shards done$' "$WORK/d.watch")" -eq 2
check "d: tally-watch's done has gawk's key count and sum" \
  grep -q " done (3 shards): $d_keys keys, sum $d_sum, " <<< "$d_done"
check "d: ... and the input's lines, each counted by one shard" \
  grep -q " sum $d_sum, $(wc -l < "$WORK/d.txt") lines, 0 bad, " <<< "$d_done"
check "d: ... and names the 3 parts" \
  grep -q "totals in $WORK/d.part0.tsv, $WORK/d.part1.tsv, $WORK/d.part2.tsv\$" <<< "$d_done"
# Its totals lines: every shard's batches, 1 to its own count, keys adding up to gawk's.
"$PY" - "$WORK/d.watch" "$d_keys" > "$WORK/d.watch.check" <<'PYEOF' && status=0 || status=$?
import re, sys
seen, keys = {}, 0
for line in open(sys.argv[1]):
    m = re.search(r" totals \(shard (\d+)/3\) batch (\d+)/(\d+): (\d+) keys$", line)
    if m:
        shard, batch, batches, n = map(int, m.groups())
        seen.setdefault(shard, []).append((batch, batches))
        keys += n
ok = sorted(seen) == [1, 2, 3] and keys == int(sys.argv[2]) and all(
    [b for b, _ in got] == list(range(1, got[0][1] + 1)) and len({t for _, t in got}) == 1
    for got in seen.values())
print(" ".join("shard %d: %d batches" % (s, len(seen[s])) for s in sorted(seen)), "keys", keys)
sys.exit(0 if ok else 1)
PYEOF
echo "    tally-watch's totals lines: $(cat "$WORK/d.watch.check")"
check "d: tally-watch shows every batch of every shard, in order, keys adding up" test "$status" -eq 0
check "d: tally-watch found no gap" test ! -s "$WORK/d.watch.err"
# The progress it combined: the last one (each shard's at its end) has every chunk merged
# by every shard, and the keys of all three; the last top is the totals' first lines.
d_progress=$(grep ' progress (3 shards): ' "$WORK/d.watch" | tail -1 || true)
echo "    last progress: $d_progress"
check "d: tally-watch's last progress has every chunk, final, and gawk's key count" \
  gawk -v keys="$d_keys" '{ split($5, c, "/"); exit !(c[1] == c[2] && c[2] > 0 && / lines, 0 bad, / && index($0, " " keys " keys,")) }' <<< "$d_progress"
d_top=$(grep ' top (3 shards): ' "$WORK/d.watch" | tail -1 | sed 's/^[0-9a-f]* top (3 shards): //' || true)
d_top_want=$(head -10 "$WORK/d.expected" | gawk -F'\t' '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
echo "    last top: $d_top"
check "d: tally-watch's last top is the first 10 lines of gawk's totals" test "$d_top" = "$d_top_want"

wait_pid "$d_json" 60 && status=0 || status=$?
forget "$d_json"
check "d: tally-watch --json --until-done on the 3 feeds (EP0,EP1,EP2) exits 0" test "$status" -eq 0
"$PY" - "$WORK/d.json" "$WORK/d.json.tsv" "$d_keys" "$d_sum" <<'PYEOF' && status=0 || status=$?
import json, sys
totals, dones, last, unsharded, twice = {}, {}, None, 0, 0
for line in open(sys.argv[1]):
    msg = json.loads(line)
    body = msg["body"]
    if msg["topic"] in ("stats", "snapshot") or msg.get("snapshot"):
        continue   # the sinks' own counters, the snapshot service's replies: no job's
    last = msg["topic"]
    if body.get("shards") != 3 or not 0 <= body.get("shard", -1) < 3:
        unsharded += 1
    if msg["topic"] == "totals":
        for key, total in body["entries"].items():
            twice += key in totals
            totals[key] = total
    elif msg["topic"] == "done":
        dones[body.get("shard")] = body
with open(sys.argv[2], "w") as out:
    for key, total in totals.items():
        out.write("%s\t%d\n" % (key, total))
keys, total = sum(d["keys"] for d in dones.values()), sum(d["sum"] for d in dones.values())
print("    done from shards", sorted(dones, key=str), "keys", keys, "sum", total, "last topic",
      last, "bodies not of shard 0..2 of 3:", unsharded, "keys seen twice:", twice)
sys.exit(0 if sorted(dones, key=str) == [0, 1, 2] and last == "done" and not unsharded
         and not twice and keys == int(sys.argv[3]) and total == int(sys.argv[4]) else 1)
PYEOF
check "d: tally-watch --json prints each shard's done, the last one last, summing to gawk's" \
  test "$status" -eq 0
sort_totals < "$WORK/d.json.tsv" > "$WORK/d.json.sorted"
same_file "d: tally-watch --json's totals entries of the 3 shards equal gawk's" \
  "$WORK/d.expected" "$WORK/d.json.sorted"

wait_pid "$d_py" 60 && status=0 || status=$?
forget "$d_py"
check "d: subscribe.py on the 3 feeds exits 0 (each shard's batches complete, sums agree)" \
  test "$status" -eq 0
[ "$status" -eq 0 ] || tail -3 "$WORK/d.py.err"
echo "    subscribe.py: $(cat "$WORK/d.py.out")"
check "d: subscribe.py reports gawk's key count and sum" \
  grep -q ": $d_keys keys, sum $d_sum, .* (3 shards)\$" "$WORK/d.py.out"
same_file "d: subscribe.py's totals equal gawk's" "$WORK/d.expected" "$WORK/d.py.tsv"

# ---------------------------------------------------------------------------------------
# (e) A job cancelled at its 3 shards (the ventilator interrupted): tally-watch
# --until-done and subscribe.py end at the first shard's failed, with status 1.

start "$TALLY_BIN/tally-watch" --until-done --timeout 120 "${d_feeds[@]}" \
  > "$WORK/e.watch" 2> "$WORK/e.watch.err"
e_watch=$LAST_PID
start "$PY" "$TALLY_SOURCE_DIR/examples/subscribe.py" "${d_feeds[@]}" --timeout 120 \
  > "$WORK/e.py.out" 2> "$WORK/e.py.err"
e_py=$LAST_PID
wait_until 20 grep -q subscribed "$WORK/e.py.err" || true
sleep 0.5
# The workers are stopped (SIGSTOP) until the ventilator is interrupted, so that the job
# is still open then however fast it would run.
kill -STOP "${d_workers[@]}"
start "$TALLY_BIN/tally-ventilator" --bind "$d_vent" --sink "$d_sink_list" --progress none \
  "$WORK/c.txt" "$WORK/c.txt" "$WORK/c.txt" > "$WORK/e.vent.out" 2> "$WORK/e.vent.err"
VENT_PID=$LAST_PID
check "e: tally-watch sees the job progress" wait_until 60 grep -q ' progress (3 shards): ' "$WORK/e.watch"
kill -TERM "$VENT_PID"
await_job_status
kill -CONT "${d_workers[@]}"
check "e: the interrupted ventilator exits non-zero" test "$status" -ne 0
wait_pid "$e_watch" 30 && status=0 || status=$?
forget "$e_watch"
check "e: tally-watch --until-done exits 1 on the job's failure" test "$status" -eq 1
check "e: ... saying which shard failed it" grep -q ' failed (shard [123]/3): ' "$WORK/e.watch"
e_job=$(grep -o -m1 '^[0-9a-f]\{16\} failed' "$WORK/e.watch" | cut -c1-16)
check "e: ... and no done of that job (job ${e_job:-?})" \
  bash -c "[ -n '$e_job' ] && ! grep -q '^$e_job done' '$WORK/e.watch'"
wait_pid "$e_py" 30 && status=0 || status=$?
forget "$e_py"
check "e: subscribe.py exits 1 on the job's failure" test "$status" -eq 1
check "e: ... saying so" grep -q 'failed (shard [012] of 3)' "$WORK/e.py.err"
for pid in "${d_pids[@]}"; do stop_pid "$pid" 5 || true; done

# ---------------------------------------------------------------------------------------
# (f) A subscriber to "top" alone gets the open job's top list while the job runs.
cat > "$WORK/top.py" <<'PYEOF'
import sys, time
import msgpack, zmq
sub = zmq.Context().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"top")
sub.connect(sys.argv[1])
print("subscribed", file=sys.stderr, flush=True)
while sub.poll(120 * 1000):
    topic, body = sub.recv_multipart()
    msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
    entries = msg.get("top", [])
    if isinstance(entries, dict):
        entries = list(entries.items())
    head = " ".join("%s=%d" % (k.decode("utf-8", "replace") if isinstance(k, bytes) else k, v)
                    for k, v in entries[:3])
    print(topic.decode(), len(entries), head, flush=True)
PYEOF
kill -STOP "$worker1" "$worker2"
start_sink "$WORK/f.sink.log" "$WORK/f.tsv"
start "$PY" "$WORK/top.py" "$FEED" > "$WORK/f.top" 2> "$WORK/f.top.err"
f_sub=$LAST_PID
wait_until 20 grep -q subscribed "$WORK/f.top.err" || true
sleep 0.5
start_vent f "$WORK/a.txt"
check "f: the top-only subscriber gets a top while the job is open (workers stopped)" \
  wait_until 20 grep -q '^top ' "$WORK/f.top"
check "f: ... and nothing but top" bash -c "! grep -qv '^top ' '$WORK/f.top'"
kill -CONT "$worker1" "$worker2"
await_job_status
check "f: the ventilator exits 0" test "$status" -eq 0
same_file "f: totals equal gawk's" "$WORK/a.expected" "$WORK/f.tsv"
f_head=$(head -3 "$WORK/f.tsv" | tr '\t' '=' | tr '\n' ' ' | sed 's/ $//')
check "f: the last top is the totals' head ($f_head)" \
  wait_until 20 bash -c "tail -1 '$WORK/f.top' | grep -qF ' $f_head'"
stop_pid "$f_sub" 5 || true
stop_pid "$SINK_PID" 5 || true
check "nothing left running but the workers" test "$(pgrep -f "^$TALLY_BIN/tally-(sink|ventilator)" | wc -l)" -eq 0
finish
