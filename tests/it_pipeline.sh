#!/usr/bin/env bash
# The services run separately on TCP loopback, as on a cluster: tally-sink; two feed
# subscribers (examples/subscribe.py and tally-watch --json --until-done); a ventilator
# started before any worker; one worker after a second, a second worker once chunks are
# being merged. The ventilator exits 0, the totals equal gawk's, the Python subscriber's
# totals equal the totals file, tally-watch's JSON lines parse and their "done" sum is the
# totals' sum, and both workers mapped chunks. Then a second job through the same sink,
# watched by tally-watch in readable mode.
source "$(dirname "$0")/lib.sh"
mb=$(scaled 100)
chunk=1K
gen_ngram2012 "$WORK/job1" 4 "$mb" 3
# Keys the feed must carry as bytes: not UTF-8, quotes, backslashes, control bytes.
"$PY" - "$WORK/job1/odd.tsv" <<'PYEOF'
import sys
keys = [b"\xff\xfe", b"caf\xe9", b"na\xc3\xafve", b'say "hi"', b"back\\slash", b"ctl\x01key",
        b"the end\x7f", b"of the"]
with open(sys.argv[1], "wb") as out:
    for i, key in enumerate(keys):
        for year in range(1900, 1910 + i):
            out.write(b"%s\t%d\t%d\t1\n" % (key, year, 1000 + i))
PYEOF
expected_ngram "$WORK"/job1/*.tsv > "$WORK/expected1.tsv"
sample="$TALLY_SOURCE_DIR/data/sample"
expected_ngram "$sample"/*.tsv > "$WORK/expected2.tsv"

vent_port=$(free_port)
sink_port=$(free_port)
feed_port=$(free_feed_port)
vent="tcp://127.0.0.1:$vent_port"
sink="tcp://127.0.0.1:$sink_port"
feed="tcp://127.0.0.1:$feed_port"
totals="$WORK/x.tsv"

start "$TALLY_BIN/tally-sink" --bind "$sink" --publish "$feed" --output "$totals" > "$WORK/sink.log" 2>&1
sink_pid=$LAST_PID
start "$PY" "$TALLY_SOURCE_DIR/examples/subscribe.py" "$feed" --output "$WORK/py1.tsv" --timeout 60 \
  > "$WORK/py1.out" 2> "$WORK/py1.err"
py_pid=$LAST_PID
start "$TALLY_BIN/tally-watch" --json --until-done "$feed" > "$WORK/watch1.json" 2> "$WORK/watch1.err"
watch_pid=$LAST_PID
check "subscribe.py subscribes" wait_until 10 grep -q subscribed "$WORK/py1.err"
sleep 0.5  # let both subscriptions reach the sink (ZeroMQ's slow joiner)

# The ventilator, with no worker anywhere yet.
t0=$(now)
start "$TALLY_BIN/tally-ventilator" --bind "$vent" --sink "$sink" --chunk-size "$chunk" \
  --progress log "$WORK"/job1/*.tsv > "$WORK/vent1.out" 2> "$WORK/vent1.err"
vent_pid=$LAST_PID

# Progress messages of the feed so far, as "chunks_done" numbers (one a line).
chunks_done() {
  "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("topic") == "progress":
        print(msg["body"]["chunks_done"])' "$WORK/watch1.json"
}
some_merged() { chunks_done | gawk '$1 > 0 {f = 1} END {exit !f}'; }
none_merged() { ! some_merged; }

sleep 1
check "ventilator waits while there is no worker" kill -0 "$vent_pid"
check "the sink publishes progress for the open job" test -n "$(chunks_done)"
check "nothing is merged without a worker" none_merged

start "$TALLY_BIN/tally-worker" --ventilator "$vent" --sink "$sink" > "$WORK/worker1.log" 2>&1
worker1=$LAST_PID
check "chunks get merged once a worker is up" wait_until 30 some_merged
check "job 1 is still under way when the second worker starts" kill -0 "$vent_pid"
start "$TALLY_BIN/tally-worker" --ventilator "$vent" --sink "$sink" > "$WORK/worker2.log" 2>&1
worker2=$LAST_PID

wait_pid "$vent_pid" 300 && status=0 || status=$?
echo "job 1 ($mb MB, $chunk chunks) took $(elapsed "$t0") s"
check "job 1: ventilator exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/vent1.err"
same_file "job 1: totals equal gawk's" "$WORK/expected1.tsv" "$totals"
cp "$totals" "$WORK/job1-totals.tsv" 2> /dev/null || true

wait_pid "$py_pid" 30 && status=0 || status=$?
check "job 1: subscribe.py exits 0 (its sum check against done passed)" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -3 "$WORK/py1.err"
same_file "job 1: subscribe.py's totals equal the totals file" "$WORK/job1-totals.tsv" "$WORK/py1.tsv"
wait_pid "$watch_pid" 30 && status=0 || status=$?
check "job 1: tally-watch --until-done exits 0" test "$status" -eq 0

# tally-watch's JSON lines: every line parses, and "done" says the totals' sum and count.
# Keys come as JSON strings: UTF-8 as is, other bytes >= 0x80 as \u00XX (their Latin-1
# reading); odd_right counts the keys of odd.tsv whose feed total is right.
"$PY" - "$WORK/watch1.json" "$WORK/job1/odd.tsv" > "$WORK/watch1.check" <<'PYEOF' && status=0 || status=$?
import json, sys
topics, done, bad, feed = {}, None, 0, {}
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        msg = json.loads(line)
    except ValueError:
        bad += 1
        continue
    topics[msg["topic"]] = topics.get(msg["topic"], 0) + 1
    if msg["topic"] == "done":
        done = msg["body"]
    elif msg["topic"] == "totals":
        feed.update(msg["body"]["entries"])
odd = {}
for line in open(sys.argv[2], "rb"):
    key, year, count, volumes = line.rstrip(b"\n").split(b"\t")
    odd[key] = odd.get(key, 0) + int(count)
def as_json(key):
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.decode("latin-1")
odd_right = sum(feed.get(as_json(key)) == total for key, total in odd.items())
print(bad, done["sum"] if done else "none", done["keys"] if done else "none", len(feed), odd_right,
      len(odd), " ".join("%s=%d" % kv for kv in sorted(topics.items())))
PYEOF
read -r bad_json done_sum done_keys feed_keys odd_right odd_keys topics < "$WORK/watch1.check" || true
echo "tally-watch --json: $topics"
check "job 1: tally-watch's JSON parses line by line" test "$status" -eq 0 -a "${bad_json:-1}" -eq 0
check "job 1: tally-watch got a done message" test "${done_sum:-none}" != none
check "job 1: done's sum equals the totals' sum" test "${done_sum:-}" = "$(sum_totals "$WORK/job1-totals.tsv")"
check "job 1: done's key count equals the totals' lines" test "${done_keys:-}" = "$(wc -l < "$WORK/job1-totals.tsv")"
check "job 1: tally-watch's totals batches hold every key" test "${feed_keys:-}" = "${done_keys:-x}"
check "job 1: keys with quotes, backslashes, control and non-UTF-8 bytes come through JSON" \
  test "${odd_right:-0}" -eq "${odd_keys:-1}"

# ---------------------------------------------------------------------------------------
# A second job through the same sink and workers: the real sample.
start "$TALLY_BIN/tally-watch" --until-done "$feed" > "$WORK/watch2.txt" 2> "$WORK/watch2.err"
watch2=$LAST_PID
start "$PY" "$TALLY_SOURCE_DIR/examples/subscribe.py" "$feed" --output "$WORK/py2.tsv" --timeout 60 \
  > "$WORK/py2.out" 2> "$WORK/py2.err"
py2=$LAST_PID
check "subscribe.py subscribes for job 2" wait_until 10 grep -q subscribed "$WORK/py2.err"
sleep 0.5
start "$TALLY_BIN/tally-ventilator" --bind "$vent" --sink "$sink" "$sample" \
  > "$WORK/vent2.out" 2> "$WORK/vent2.err"
wait_pid "$LAST_PID" 120 && status=0 || status=$?
check "job 2: ventilator exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/vent2.err"
same_file "job 2: totals equal gawk's" "$WORK/expected2.tsv" "$totals"
wait_pid "$py2" 30 && status=0 || status=$?
check "job 2: subscribe.py exits 0" test "$status" -eq 0
same_file "job 2: subscribe.py's totals equal the totals file" "$WORK/expected2.tsv" "$WORK/py2.tsv"
wait_pid "$watch2" 30 && status=0 || status=$?
check "job 2: tally-watch --until-done exits 0" test "$status" -eq 0
sum2=$(sum_totals "$WORK/expected2.tsv")
keys2=$(wc -l < "$WORK/expected2.tsv")
check "job 2: tally-watch prints a readable done line with the sum" \
  grep -q -E "^[0-9a-f]{16} done: $keys2 keys, sum $sum2, 260000 lines" "$WORK/watch2.txt"
check "job 2: tally-watch prints readable progress lines" grep -q -E '^[0-9a-f]{16} progress: ' "$WORK/watch2.txt"
check "job 2: tally-watch's output is not JSON" bash -c "! grep -q '^{' '$WORK/watch2.txt'"

# ---------------------------------------------------------------------------------------
# Stop the workers and the sink: each worker says how many chunks it mapped.
kill -TERM "$worker1" "$worker2"
wait_pid "$worker1" 10 && s1=0 || s1=$?
wait_pid "$worker2" 10 && s2=0 || s2=$?
check "workers exit 0 on SIGTERM" test "$s1" -eq 0 -a "$s2" -eq 0
n1=$(sed -n -E 's/.*stopping after ([0-9]+) chunks.*/\1/p' "$WORK/worker1.log")
n2=$(sed -n -E 's/.*stopping after ([0-9]+) chunks.*/\1/p' "$WORK/worker2.log")
echo "worker 1 mapped ${n1:-?} chunks, worker 2 (the late one) ${n2:-?}"
check "the first worker did work" test "${n1:-0}" -gt 0
check "the late worker did work" test "${n2:-0}" -gt 0
merged=$(sed -n -E 's/.* done: ([0-9]+) chunks.*/\1/p' "$WORK/sink.log" | gawk '{s += $1} END {print s + 0}')
check "the workers mapped at least every chunk the sink merged ($merged)" \
  test $(( ${n1:-0} + ${n2:-0} )) -ge "$merged" -a "$merged" -gt 0
kill -TERM "$sink_pid"
wait_pid "$sink_pid" 10 && status=0 || status=$?
check "the sink exits 0 on SIGTERM" test "$status" -eq 0
check "no tally process left" no_leftovers
finish
