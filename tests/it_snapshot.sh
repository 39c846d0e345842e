#!/usr/bin/env bash
# The sink's snapshot service (beside the feed: its port + 1) and the stats topic, with a
# Python subscriber that joins late (tests/snapshot_client.py: pyzmq + msgpack, as in
# another language), the services started separately on TCP loopback (ports 46000-46999):
# (a) a subscriber started after a job's done gets that done from the snapshot (keys, sum
#     and lines equal gawk's) and fetches its totals batch by batch (--batch 500: many
#     batches), equal to gawk's totals and to the totals file;
# (b) a subscriber started in the middle of a job of several seconds (one chunk in flight,
#     4 KB chunks) subscribes to the feed, then asks for the state: the job's progress and
#     top come from the snapshot within 1 s of its start, and the feed's done follows;
# (c) after a second job wrote the same output path, the first job's totals still fetch,
#     equal to its own gawk totals; a cancelled job is "failed" in the snapshot with its
#     reason, and its totals are an error; after 4 more jobs the first job's totals are
#     "no longer kept", the 4th from last still fetch;
# (d) 2 sink shards: both shards' totals fetched and merged equal gawk's, each its part;
# (e) hostile requests (garbage, an empty frame, 10 KB, wrong types, "from" inside a line,
#     an unknown job, a batch past the last, 2 frames) get an error reply or (over the
#     service's 4 KB message limit) are dropped; each time the sink stays up and answers
#     the next valid request;
# (f) the stats topic: the same incarnation throughout, published when idle too; after a
#     job partials == the chunks it merged, lines == gawk's line count, bytes == the input's
#     size, jobs_done + 1; a cancelled job makes jobs_failed + 1; junk sent to the inbound
#     socket counts as junk; a killed worker counts as a disconnect.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
source "$(dirname "$0")/lib_shards.sh"

CLIENT="$TALLY_SOURCE_DIR/tests/snapshot_client.py"
"$PY" -c 'import zmq, msgpack' 2> /dev/null || {
  echo "FAIL: $PY has no zmq or msgpack module (python3-zmq, python3-msgpack)"
  exit 1
}
T0=$EPOCHREALTIME

# port46 [pair]: sets PORT to a free port of this test's range (see reserve_port).
port46() {
  reserve_port 46000 46998 "$@"
}



# json_get FILE TOPIC JOB KEY: KEY of the body of the last TOPIC message for JOB (any job
# when JOB is "-") among the JSON lines of FILE; empty when there is none.
# json_has FILE TOPIC JOB KEY: true when json_get finds a value.
json_get() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
path, topic, job, key = sys.argv[1:5]
value = ""
for line in open(path):
    msg = json.loads(line)
    body = msg.get("body", msg)  #  The feed recorder's lines are the body and its topic
    if msg.get("topic") == topic and (job == "-" or body.get("job") == int(job)):
        value = body.get(key, "")
print(value)
PYEOF
}
json_has() { [ -n "$(json_get "$@")" ]; }

# sink_job LOG WHAT N: the id (decimal) of the N-th job the sink log says WHAT of
# ("opened", "done", "cancelled"); empty when there is none.
sink_job() {
  local hex
  hex=$(sed -n -E "s/.* job ([0-9a-f]{16}) $2.*/\1/p" "$1" | sed -n "$3p")
  [ -z "$hex" ] || "$PY" -c 'import sys; print(int(sys.argv[1], 16))' "$hex"
}
count_in() { grep -c -- "$2" "$1" || true; }
# opened_more N: true once the sink log says more than N jobs opened.
opened_more() { [ "$(count_in "$WORK/sink.log" " opened: ")" -gt "$1" ]; }
hex_id() { "$PY" -c 'import sys; print("%016x" % int(sys.argv[1]))' "$1"; }

gawk_sum() { gawk -F'\t' '{s += $2} END{printf "%d", s}' "$1"; }
gawk_lines() { gawk 'END{print NR}' "$1"; }

# fetch NAME SNAP JOB: the client fetches the job's totals to $WORK/NAME.tsv, its summary to
# $WORK/NAME.json; sets $status.
fetch() {
  "$PY" "$CLIENT" totals "$2" "$3" "$WORK/$1.tsv" > "$WORK/$1.json" 2> "$WORK/$1.err" &&
    status=0 || status=$?
  echo "    fetch $1 (job $3): $(cat "$WORK/$1.json" "$WORK/$1.err" | head -c 400)"
}

port46
VENT="tcp://127.0.0.1:$PORT"
port46
SINK="tcp://127.0.0.1:$PORT"
port46 pair
feed_port=$PORT
FEED="tcp://127.0.0.1:$feed_port"
SNAP="tcp://127.0.0.1:$((feed_port + 1))"
echo "sink $SINK, feed $FEED, snapshot service (derived, not given) $SNAP"
OUT="$WORK/out.tsv"
start_sink "$WORK/sink.log" "$OUT" --batch 500 --state-dir "$WORK/state"
SINK1=$SINK_PID
start "$PY" "$CLIENT" feed "$FEED" "$WORK/feed.jsonl" 300 stats,failed
STATS_PID=$LAST_PID
start_worker "$WORK/worker1.log"
start_worker "$WORK/worker2.log"
WORKER2=$LAST_PID
check "the sink listens on the feed's port + 1 for snapshots" \
  wait_until 10 grep -q "snapshots on $SNAP" "$WORK/sink.log"

# The stats bodies on the feed so far, one a line, in $WORK/stats.jsonl.
stats_lines() { grep '"topic": "stats"' "$WORK/feed.jsonl" > "$WORK/stats.jsonl" || true; }

# stats_after N KEY: KEY of the last stats with jobs_done + jobs_failed >= N.
stats_after() {
  stats_lines
  "$PY" - "$WORK/stats.jsonl" "$@" <<'PYEOF'
import json, sys
path, ended, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
value = ""
for line in open(path):
    s = json.loads(line)
    if s["jobs_done"] + s["jobs_failed"] >= ended:
        value = s[key]
print(value)
PYEOF
}
stats_seen() { [ -n "$(stats_after "$1" jobs_done)" ]; }
stats_last() {
  stats_lines
  tail -1 "$WORK/stats.jsonl" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}
# stats_is KEY VALUE: the last stats message has KEY = VALUE (read anew at each call, so
# that wait_until waits for a stats message still to come)
stats_is() { [ "$(stats_last "$1")" = "$2" ]; }

# ---------------------------------------------------------------------------------------
# (a) A subscriber that comes after the job's done.
gen_words "$WORK/A.txt" 20000 12 1
expected_text "$WORK/A.txt" > "$WORK/A.expected"
a_keys=$(wc -l < "$WORK/A.expected")
a_sum=$(gawk_sum "$WORK/A.expected")
a_lines=$(gawk_lines "$WORK/A.txt")
cp "$WORK/A.expected" "$WORK/expected.tsv"
start_vent a "$WORK/A.txt"
await_job a "a: job A" "$OUT"
cp "$OUT" "$WORK/A.file.tsv"
job_a=$(sink_job "$WORK/sink.log" done 1)
echo "    job A: $job_a; gawk: $a_keys keys, sum $a_sum, $a_lines lines"
check "a: the sink's log names job A done" test -n "$job_a"
sleep 0.3
"$PY" "$CLIENT" state "$SNAP" > "$WORK/a.state" 2> "$WORK/a.state.err" && status=0 || status=$?
check "a: a subscriber started after the done gets a whole state reply" test "$status" -eq 0
echo "    state: $(cut -d'"' -f4 "$WORK/a.state" | tr '\n' ' ')"
got="$(json_get "$WORK/a.state" done "$job_a" keys) $(json_get "$WORK/a.state" done "$job_a" sum) $(json_get "$WORK/a.state" done "$job_a" lines)"
echo "    its done of job A: keys, sum, lines = $got; gawk's: $a_keys $a_sum $a_lines"
check "a: ... with job A's done: keys, sum and lines equal gawk's" test "$got" = "$a_keys $a_sum $a_lines"
check "a: ... its output is the totals file" test "$(json_get "$WORK/a.state" done "$job_a" output)" = "$OUT"
check "a: ... then stats, then snapshot (open 0, finished 1), last" test \
  "$(tail -2 "$WORK/a.state" | cut -d'"' -f4 | tr '\n' ' ')$(json_get "$WORK/a.state" snapshot - open) $(json_get "$WORK/a.state" snapshot - finished)" = "stats snapshot 0 1"
fetch a1 "$SNAP" "$job_a"
check "a: fetching job A's totals succeeds" test "$status" -eq 0
batches=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["batches"])' "$WORK/a1.json" 2> /dev/null || echo 0)
echo "    $batches batches of at most 500 keys for $a_keys keys (gawk: $(( (a_keys + 499) / 500 )))"
check "a: ... in as many batches as 500 keys a batch make" test "$batches" -eq $(( (a_keys + 499) / 500 ))
same_file "a: the fetched totals, in the order received, equal gawk's" "$WORK/A.expected" "$WORK/a1.tsv"
check "a: ... and the totals file" cmp -s "$WORK/A.file.tsv" "$WORK/a1.tsv"

# ---------------------------------------------------------------------------------------
# (f, first part) stats after job A, whose 1 ventilator has left.
check "f: a stats after job A" wait_until 10 stats_seen 1
a_chunks=$(sed -n -E 's/.* done: ([0-9]+) chunks .*/\1/p' "$WORK/sink.log" | head -1)
got="$(stats_after 1 partials) $(stats_after 1 lines) $(stats_after 1 bytes) $(stats_after 1 jobs_done) $(stats_after 1 jobs_failed) $(stats_after 1 duplicates) $(stats_after 1 jobs_open)"
want="$a_chunks $a_lines $(stat -c %s "$WORK/A.txt") 1 0 0 0"
echo "    stats after A: partials lines bytes jobs_done jobs_failed duplicates jobs_open = $got"
echo "    want: chunks merged (sink log) $a_chunks, gawk's lines, the input's size: $want"
check "f: after job A, stats say partials = its chunks, lines = gawk's, bytes = the input's size, 1 done" \
  test "$got" = "$want"

# ---------------------------------------------------------------------------------------
# (c, first part) A second job writes the same output path; job A's totals are still kept.
gen_words "$WORK/B.txt" 15000 10 2
expected_text "$WORK/B.txt" > "$WORK/B.expected"
cp "$WORK/B.expected" "$WORK/expected.tsv"
start_vent b "$WORK/B.txt"
await_job b "c: job B" "$OUT"
job_b=$(sink_job "$WORK/sink.log" done 2)
check "c: the totals file is job B's now, not A's" bash -c "! cmp -s '$WORK/A.expected' '$OUT'"
fetch a2 "$SNAP" "$job_a"
check "c: job A's totals still fetch after job B replaced the file" test "$status" -eq 0
same_file "c: ... and equal job A's gawk totals" "$WORK/A.expected" "$WORK/a2.tsv"
fetch b1 "$SNAP" "$job_b"
same_file "c: job B's fetched totals equal its gawk totals" "$WORK/B.expected" "$WORK/b1.tsv"

# ---------------------------------------------------------------------------------------
# (b) A subscriber that joins in the middle of a job.
gen_words "$WORK/M.txt" 300000 12 3
expected_text "$WORK/M.txt" > "$WORK/M.expected"
cp "$WORK/M.expected" "$WORK/expected.tsv"
m_sum=$(gawk_sum "$WORK/M.expected")
opened=$(count_in "$WORK/sink.log" " opened: ")
start_vent m --window 1 --chunk-size 1K "$WORK/M.txt"
check "b: the job opens" wait_until 20 opened_more "$opened"
job_m=$(sink_job "$WORK/sink.log" "opened" $((opened + 1)))
sleep 0.5
launched=$EPOCHREALTIME
"$PY" "$CLIENT" late "$FEED" "$SNAP" "$WORK/m.late" > "$WORK/m.late.out" 2>&1 && status=0 || status=$?
late_status=$status
await_job m "b: job M" "$OUT"
echo "    job M ($job_m): $(grep ' lines ' "$WORK/m.out" | head -1)"
"$PY" - "$WORK/m.late" "$job_m" "$launched" <<'PYEOF' > "$WORK/m.check" && status=0 || status=$?
import json, sys
path, job, launched = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
msgs = [json.loads(l) for l in open(path)]
snap = [m for m in msgs if m["source"] == "snapshot"]
progress = [m for m in snap if m["topic"] == "progress" and m["body"]["job"] == job]
top = [m for m in snap if m["topic"] == "top" and m["body"]["job"] == job]
end = [m for m in snap if m["topic"] == "snapshot"]
done = [m for m in msgs if m["source"] == "feed" and m["topic"] == "done" and m["body"]["job"] == job]
print("snapshot topics:", " ".join(m["topic"] for m in snap), "| feed messages:",
      len(msgs) - len(snap), "| done from the feed:", len(done))
ok = bool(progress and top and end and done) and end[0]["body"]["open"] == 1
if progress:
    p = progress[0]["body"]
    print("progress from the snapshot %.3f s after the launch: chunks %d of %d (final %s), %d lines"
          % (progress[0]["wall"] - launched, p["chunks_done"], p["chunks_known"],
             p["chunks_final"], p["lines"]))
    print("AFTER %.3f" % (progress[0]["wall"] - launched))
    #  Some chunks merged, not all: the job was under way.
    ok = ok and p["chunks_done"] >= 1 and not (p["chunks_final"] and p["chunks_done"] == p["chunks_known"])
sys.exit(0 if ok else 1)
PYEOF
sed '/^AFTER/d; s/^/    /' "$WORK/m.check"
check "b: the late subscriber ends with the job's done from the feed" test "$late_status" -eq 0
check "b: the snapshot gave the open job's progress (some chunks merged, not all), top, open 1" \
  test "$status" -eq 0
after=$(sed -n 's/^AFTER //p' "$WORK/m.check")
echo "    the snapshot's progress came ${after:-never} s after the subscriber was launched (limit: 1 s)"
check "b: ... within 1 s of the subscriber's launch" \
  gawk -v t="${after:-99}" 'BEGIN{exit !(t < 1.0)}'
same_file "b: job M's totals equal gawk's" "$WORK/M.expected" "$OUT"
check "b: the feed's done (after the snapshot) has gawk's sum" \
  test "$(json_get "$WORK/m.late" done "$job_m" sum)" = "$m_sum"

# ---------------------------------------------------------------------------------------
# (c, second part) A cancelled job, then 4 more jobs.
opened=$(count_in "$WORK/sink.log" " opened: ")
start_vent x --window 1 --chunk-size 1K "$WORK/M.txt"
check "c: job X opens" wait_until 20 opened_more "$opened"
job_x=$(sink_job "$WORK/sink.log" "opened" $((opened + 1)))
sleep 0.3
kill -TERM "$VENT_PID"
wait_pid "$VENT_PID" 30 && status=0 || status=$?
forget "$VENT_PID"
check "c: the interrupted ventilator of job X exits non-zero" test "$status" -ne 0
x_hex=$(hex_id "$job_x")
check "c: the sink cancels job X" wait_until 10 grep -q "job $x_hex cancelled" "$WORK/sink.log"
check "c: the feed says job X failed" wait_until 10 json_has "$WORK/feed.jsonl" failed "$job_x" reason
x_reason=$(json_get "$WORK/feed.jsonl" failed "$job_x" reason)
"$PY" "$CLIENT" state "$SNAP" > "$WORK/x.state" 2> "$WORK/x.state.err" || true
got=$(json_get "$WORK/x.state" failed "$job_x" reason)
echo "    job X's failed in the snapshot: \"$got\"; on the feed: \"$x_reason\"; the sink log: $(grep -o "job $x_hex cancelled.*" "$WORK/sink.log")"
check "c: the snapshot has job X as failed, with the feed's reason, a cancellation" \
  test -n "$got" -a "$got" = "$x_reason" -a "${got#*cancel}" != "$got"
check "c: ... and no open job" test "$(json_get "$WORK/x.state" snapshot - open)" = 0
fetch x1 "$SNAP" "$job_x"
check "c: fetching the cancelled job's totals is an error (exit 2)" test "$status" -eq 2
check "c: ... saying the job failed" grep -q '"error": "the job failed' "$WORK/x1.json"
check "f: a stats with jobs_failed 1 after the cancel" wait_until 10 stats_is jobs_failed 1

tails=()
for n in 1 2 3 4; do
  gen_words "$WORK/T$n.txt" $((500 + n * 100)) 8 $((10 + n))
  expected_text "$WORK/T$n.txt" > "$WORK/T$n.expected"
  cp "$WORK/T$n.expected" "$WORK/expected.tsv"
  start_vent "t$n" "$WORK/T$n.txt"
  await_job "t$n" "c: job T$n" "$OUT"
  tails+=("$(sink_job "$WORK/sink.log" done $((3 + n)))")
done
# Finished: A, B, M, X (failed), T1..T4. The last 4 (T1..T4) are fetchable.
fetch a3 "$SNAP" "$job_a"
check "c: after 4 more jobs, job A's totals are an error (exit 2)" test "$status" -eq 2
check "c: ... saying they are no longer kept" grep -q 'no longer kept' "$WORK/a3.json"
fetch m2 "$SNAP" "$job_m"
check "c: so are job M's (5th from last)" grep -q 'no longer kept' "$WORK/m2.json"
fetch t1 "$SNAP" "${tails[0]}"
same_file "c: the 4th from last, T1, still fetches, equal to its gawk totals" "$WORK/T1.expected" "$WORK/t1.tsv"
fetch t4 "$SNAP" "${tails[3]}"
same_file "c: the last, T4, fetches equal to its gawk totals" "$WORK/T4.expected" "$WORK/t4.tsv"
"$PY" "$CLIENT" state "$SNAP" > "$WORK/c.state" 2>&1 || true
check "c: the state lists the 8 finished jobs, oldest first (A ... T4), X as failed" test \
  "$(grep -oE '"topic": "(done|failed)", "body": \{"job": [0-9]+' "$WORK/c.state" | gawk '{print $2 $5}' | tr -d '",' | tr '\n' ' ')" = \
  "done$job_a done$job_b done$job_m failed$job_x done${tails[0]} done${tails[1]} done${tails[2]} done${tails[3]} "

# ---------------------------------------------------------------------------------------
# (e) Hostile requests, each followed by a valid one.
t4_batches=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["batches"])' "$WORK/t4.json")
hex() { "$PY" -c "import msgpack, sys; print(msgpack.packb(eval(sys.argv[1])).hex())" "$1"; }
hostile=(
  "c1"
  "ffffffff"
  "-"
  "big:10240"
  "big:4000"
  "$(hex '{"get": 1}')"
  "$(hex '{"get": "totals", "job": "x", "batch": 0, "from": 0}')"
  "$(hex '{"get": "totals", "job": -1, "batch": 0, "from": 0}')"
  "$(hex '{"get": "totals", "job": '"${tails[3]}"', "batch": 0, "from": 3}')"
  "$(hex '{"get": "totals", "job": '"${tails[3]}"', "batch": 0, "from": 10**9}')"
  "$(hex '{"get": "totals", "job": 12345, "batch": 0, "from": 0}')"
  "$(hex '{"get": "totals", "job": '"${tails[3]}"', "batch": '"$t4_batches"', "from": 0}')"
  "$(hex '{"get": "totals", "job": '"${tails[3]}"', "batch": 2**64 - 1, "from": 0}')"
  "$(hex '{"get": "state"}')+00"
  "$(hex '{"get": "nope"}')"
  "$(hex '{"get": "state", "get": "totals"}')$(hex '{}')"
)
"$PY" "$CLIENT" raw "$SNAP" "${hostile[@]}" > "$WORK/e.out" 2> "$WORK/e.err" && status=0 || status=$?
check "e: the client ran every hostile request" test "$status" -eq 0 -a "$(wc -l < "$WORK/e.out")" -eq "${#hostile[@]}"
[ "$status" -eq 0 ] || tail -3 "$WORK/e.err"
"$PY" - "$WORK/e.out" <<'PYEOF' > "$WORK/e.check" && status=0 || status=$?
import json, sys
want = [  # (reply topic or None, a word of its reason)
    ("error", "not a snapshot request"), ("error", "not a snapshot request"),
    ("error", "not a snapshot request"), (None, None), ("error", "not a snapshot request"),
    ("error", "not a snapshot request"), ("error", "not a snapshot request"),
    ("error", "not a snapshot request"), ("error", "from"), ("error", "from"),
    ("error", "does not know"), ("error", "no such batch"), ("error", "no such batch"),
    ("error", "not a snapshot request"), ("error", "not a snapshot request"),
    ("error", "not a snapshot request"),
]
ok = True
for line, (topic, word) in zip(open(sys.argv[1]), want):
    r = json.loads(line)
    reply = r["reply"]
    got_topic = reply and reply["topic"]
    reason = reply and reply["body"].get("reason", "")
    good = got_topic == topic and (word is None or word in reason) and r["then_answered"]
    ok &= good
    print("%s %-40s -> %s %r, next state request answered: %s"
          % ("ok  " if good else "BAD ", r["sent"], got_topic, reason, r["then_answered"]))
sys.exit(0 if ok else 1)
PYEOF
sed 's/^/    /' "$WORK/e.check"
check "e: each hostile request gets an error (or, over 4 KB, nothing), the next one an answer" test "$status" -eq 0
check "e: the sink is still up" alive "$SINK1"

# ---------------------------------------------------------------------------------------
# (f) Stats: junk and disconnects, idle publication, one incarnation.
sleep 0.6
junk0=$(stats_last junk)
disc0=$(stats_last disconnects)
"$PY" - "$SINK" <<'PYEOF'
import time, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 2000)
s.connect(__import__("sys").argv[1])
for frame in (b"\xc1", b"junk", b"\x93\x01\x02"):
    s.send(frame)
time.sleep(0.5)
s.close()
PYEOF
sleep 1
got="$(stats_last junk) $(stats_last disconnects)"
echo "    junk, disconnects before: $junk0 $disc0; after 3 junk messages from a peer that left: $got"
check "f: 3 junk messages count as 3 junk, the peer that sent them as 1 disconnect" \
  test "$got" = "$((junk0 + 3)) $((disc0 + 1))"
kill -KILL "$WORKER2"
wait "$WORKER2" 2> /dev/null || true
forget "$WORKER2"
sleep 1
got=$(stats_last disconnects)
echo "    disconnects after a worker was killed: $got"
check "f: a killed worker counts as 1 disconnect" test "$got" = "$((disc0 + 2))"
idle=$(gawk -v a="$EPOCHREALTIME" 'BEGIN{print a}')
lines0=$(stats_lines; wc -l < "$WORK/stats.jsonl")
sleep 1.5
lines1=$(stats_lines; wc -l < "$WORK/stats.jsonl")
echo "    stats while idle: $((lines1 - lines0)) in 1.5 s (every 0.25 s)"
check "f: stats keep coming while no job runs (at least 3 in 1.5 s)" test $((lines1 - lines0)) -ge 3
check "f: jobs_done 7, jobs_failed 1, jobs_open 0 after the jobs" \
  test "$(stats_last jobs_done) $(stats_last jobs_failed) $(stats_last jobs_open)" = "7 1 0"
check "f: every stats has the same incarnation" \
  test "$(stats_lines; "$PY" -c 'import json,sys; print(len({json.loads(l)["incarnation"] for l in open(sys.argv[1])}))' "$WORK/stats.jsonl")" = 1
check "f: the snapshot's stats has it too" \
  test "$(json_get "$WORK/c.state" stats - incarnation)" = "$(stats_last incarnation)"
stop_pid "$STATS_PID" 2 || true
stop_pid "$SINK1" 10 && status=0 || status=$?
check "the sink stops cleanly on SIGTERM (exit 0: no sanitizer report, no leak)" test "$status" -eq 0

# ---------------------------------------------------------------------------------------
# (d) Two sink shards: both shards' totals fetched and merged.
NSHARDS=2
port46
VENT="tcp://127.0.0.1:$PORT"
port46
SINKS=("tcp://127.0.0.1:$PORT")
port46
SINKS+=("tcp://127.0.0.1:$PORT")
port46 pair
p0=$PORT
port46 pair
p1=$PORT
FEEDS=("tcp://127.0.0.1:$p0" "tcp://127.0.0.1:$p1")
SNAPS=("tcp://127.0.0.1:$((p0 + 1))" "tcp://127.0.0.1:$((p1 + 1))")
SINK=$(join_list "${SINKS[@]}")
start_shard 0 "$WORK/shard0.log" --batch 500
start_shard 1 "$WORK/shard1.log" --batch 500
start_worker "$WORK/dworker1.log"
start_worker "$WORK/dworker2.log"
gen_words "$WORK/D.txt" 20000 10 5
expected_text "$WORK/D.txt" > "$WORK/expected.tsv"
start_vent d "$WORK/D.txt"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "d: the ventilator of 2 sink shards exits 0" test "$status" -eq 0
job_d=$(sink_job "$WORK/shard0.log" done 1)
check "d: both shards log the job done" test -n "$job_d" -a "$job_d" = "$(sink_job "$WORK/shard1.log" done 1)"
for i in 0 1; do
  fetch "d$i" "${SNAPS[$i]}" "$job_d"
  check "d: shard $i's totals fetch, as shard $i of 2" \
    grep -q "\"shard\": $i, \"shards\": 2" "$WORK/d$i.json"
  check "d: ... equal to its part" cmp -s "$(shard_part "$i")" "$WORK/d$i.tsv"
done
cat "$WORK/d0.tsv" "$WORK/d1.tsv" | sort_totals > "$WORK/d.merged"
same_file "d: both shards' fetched totals, merged, equal gawk's" "$WORK/expected.tsv" "$WORK/d.merged"
check "d: no key in both shards" test -z "$(cut -f1 "$WORK/d0.tsv" "$WORK/d1.tsv" | sort | uniq -d | head -1)"
for i in 0 1; do
  stop_pid "${SHARD_PIDS[$i]}" 10 && status=0 || status=$?
  check "d: shard $i's sink stops cleanly (exit 0)" test "$status" -eq 0
done

echo "it_snapshot took $(elapsed "$T0") s"
finish
