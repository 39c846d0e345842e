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

# gen_words FILE KEYS LENGTH SEED: text of KEYS distinct words of LENGTH bytes, each 1 to 3
# times, ten words a line, in random order.
gen_words() {
  "$PY" - "$@" <<'PYEOF'
import random, sys
path, keys, length, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
words = []
for i in range(keys):
    word = "w%07d" % i
    words += [word + "abcdefghijklmnopqrstuvwxyz"[i % 26] * (length - len(word))] * rng.randint(1, 3)
rng.shuffle(words)
with open(path, "w") as out:
    for i in range(0, len(words), 10):
        out.write(" ".join(words[i:i + 10]) + "\n")
PYEOF
}

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
start_worker "$WORK/worker2.log"

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
check "nothing left running but the workers" test "$(pgrep -f "^$TALLY_BIN/tally-(sink|ventilator)" | wc -l)" -eq 0
finish
