#!/usr/bin/env bash
# Hostile peers and hostile files.
# (a) 10,000 junk messages pushed by a Python DEALER at the sink's inbound endpoint while a
#     job runs (100 MB in 1K chunks, 50 MB sanitized): random multipart messages, Tally
#     command names with garbage bodies, and PARTIALs for the running job whose maps hold
#     real keys but are malformed (so that merging any part of one would change the
#     totals) and whose tags are guesses, plus a few frames over the sink's --max-message;
#     then END, CANCEL, PING and JOB for the job with a guessed secret. The job completes
#     with gawk's totals; the sink lives on and serves another job.
# (b) CURVE (keys from tally keygen): workers with a key the sink and ventilator do not
#     allow, or with a wrong server key, receive nothing and change nothing; tally-watch
#     without keys hears nothing; a watcher's key (on the feed's allow list only) cannot
#     reach the sink's inbound socket; a good worker completes the job with gawk's totals
#     and tally-watch with the right keys reads the feed.
# (c) Hostile files through tally run: truncated and corrupt .gz, a binary file, a line
#     beyond --max-line, CRLF line ends, malformed lines (with and without --strict).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"

# ---------------------------------------------------------------------------------------
# (a) Junk at the sink during a job.
mb=$(half_scaled 100)
gen_ngram2012 "$WORK/data" 4 "$mb" 23
expected_ngram "$WORK"/data/*.tsv > "$WORK/expected.tsv"
fault_endpoints
start_sink "$WORK/sink.log" "$WORK/junk.tsv" --max-message 4M
sink_pid=$SINK_PID
start_worker "$WORK/w1.log"
w1=$LAST_PID
start_worker "$WORK/w2.log"
w2=$LAST_PID
start_vent junk --chunk-size 1K "$WORK"/data/*.tsv

# The sender learns the job id from the feed, then sends: random multipart messages of 1 to
# 5 frames; command names (and near misses) with garbage bodies; PARTIALs of the running
# job, mostly for chunk ids not merged yet, whose maps hold real keys and then a defect;
# PARTIALs of the job with a valid map but a wrong frame count or a broken header; three
# frames larger than the sink's --max-message; and last, job control with a wrong secret.
cat > "$WORK/junk.py" <<'PYEOF'
import random, sys, time
import msgpack, zmq

sink_ep, feed_ep, keys_file, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(42)
keys = [line.split(b"\t", 1)[0] for line in open(keys_file, "rb")][:5000]
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"progress")
sub.connect(feed_ep)
state = {"job": None, "done": 0, "known": 0, "final": False}

def read_feed(wait_ms):
    while sub.poll(wait_ms):
        wait_ms = 0
        topic, body = sub.recv_multipart()
        m = msgpack.unpackb(body, raw=False)
        state.update(job=m["job"], done=m["chunks_done"], known=m["chunks_known"],
                     final=m["chunks_final"])

deadline = time.time() + 60
while state["job"] is None and time.time() < deadline:
    read_feed(200)
if state["job"] is None:
    sys.exit("no job on the feed")
job = state["job"]
out = ctx.socket(zmq.DEALER)
out.setsockopt(zmq.LINGER, 5000)
out.connect(sink_ep)
time.sleep(0.2)

COMMANDS = [b"JOB", b"ACCEPT", b"CHUNK", b"PARTIAL", b"END", b"ACK", b"DONE", b"FAIL", b"PING",
            b"PONG", b"CANCEL", b"", b"partial", b"PARTIAL\0", b"PARTIA", b"JOBS", b" PING"]
pk = msgpack.Packer(use_bin_type=True)

def rbytes():
    r = rng.random()
    n = (0 if r < 0.05 else rng.randint(1, 16) if r < 0.4 else rng.randint(17, 512) if r < 0.8
         else rng.randint(513, 8192) if r < 0.98 else rng.randint(8193, 200000))
    return rng.randbytes(n)

def robj(depth=0):
    r = rng.randrange(10 if depth < 3 else 7)
    return [lambda: rng.randint(-2**63, 2**64 - 1), lambda: rng.random() * 1e9, lambda: None,
            lambda: rng.random() < 0.5, lambda: "x" * rng.randint(0, 40),
            lambda: rng.randbytes(rng.randint(0, 40)), lambda: rng.choice((job, 0, 2**64 - 1)),
            lambda: [robj(depth + 1) for _ in range(rng.randint(0, 12))],
            lambda: {rng.randbytes(3): robj(depth + 1) for _ in range(rng.randint(0, 5))},
            lambda: [job] + [robj(depth + 1) for _ in range(rng.randint(0, 10))]][r]()

def garbage_body():
    r = rng.random()
    if r < 0.4:
        return rbytes()
    body = pk.pack(robj())
    return body[:rng.randrange(len(body))] if r < 0.6 and len(body) > 1 else body

def header(chunk=None, fields=None):
    if chunk is None:  # mostly chunks not merged yet (the feed lags by a quarter second)
        chunk = state["done"] + rng.randint(-100, 30000)
    # [job, chunk, tag, file, bytes, lines, bad_lines, filtered, bad_offsets]: the tag is
    # a guess, as a stranger's must be (the real one comes only with the CHUNK).
    h = [job, max(chunk, 0), rng.getrandbits(64), rng.randint(0, 3), 4096, rng.randint(1, 200),
         0, 0, []]
    return pk.pack(fields if fields is not None else h)

def entries(k):
    return b"".join(pk.pack(rng.choice(keys)) + pk.pack(rng.randint(1, 1000)) for _ in range(k))

def valid_map():
    k = rng.randint(1, 40)
    return pk.pack_map_header(k) + entries(k)

hugekeys = 0
def bad_map():
    global hugekeys
    k = rng.randint(1, 40)
    good = entries(k)
    head = pk.pack_map_header(k + 1)
    key = pk.pack(rng.choice(keys))
    kind = rng.randrange(14)
    if kind == 0:   # one entry short
        return head + good
    if kind == 1:   # a negative count
        return head + good + key + pk.pack(-rng.randint(1, 1000))
    if kind == 2:   # a float count
        return head + good + key + pk.pack(1.5)
    if kind == 3:   # a nil key
        return head + good + pk.pack(None) + pk.pack(1)
    if kind == 4:   # an integer key
        return head + good + pk.pack(7) + pk.pack(1)
    if kind == 5:   # bytes after the map
        return pk.pack_map_header(k) + good + rng.choice((b"\x00", b"\xc1", b"\x81\xc4\x01a\x01"))
    if kind == 6:   # cut short
        full = pk.pack_map_header(k) + good
        return full[:rng.randrange(1, len(full))]
    if kind == 7:   # a count that is a string
        return head + good + key + pk.pack("12")
    if kind == 8:   # a count that is a map
        return head + good + key + pk.pack({b"a": 1})
    if kind == 9:   # a map32 header claiming 2^32-1 entries
        return b"\xdf\xff\xff\xff\xff" + good
    if kind == 10:  # an array of pairs instead of a map
        return pk.pack([[rng.choice(keys), 5] for _ in range(k)])
    if kind == 11:  # the never-used byte 0xc1 as a count
        return head + good + key + b"\xc1"
    if kind == 12:  # an ext as a count
        return head + good + key + pk.pack(msgpack.ExtType(1, b"\0" * 8))
    if hugekeys < 3:  # a key longer than 1 MiB
        hugekeys += 1
        return head + good + pk.pack(b"k" * ((1 << 20) + 1)) + pk.pack(1)
    return head + good + key + b"\xcf\x00\x00"  # a uint64 cut short

began = time.time()
counts = {"random": 0, "command": 0, "bad map": 0, "bad partial": 0, "oversized": 0}
for i in range(total):
    if i % 200 == 0:
        read_feed(0)
    r = rng.random()
    if r < 0.35:
        msg, kind = [rbytes() for _ in range(rng.randint(1, 5))], "random"
    elif r < 0.6:
        msg = [rng.choice(COMMANDS)] + [garbage_body() for _ in range(rng.randint(0, 4))]
        kind = "command"
    elif r < 0.9:
        msg, kind = [b"PARTIAL", header(), bad_map()], "bad map"
    else:
        kind = "bad partial"
        v = rng.randrange(5)
        if v == 0:    # a valid PARTIAL of the job with one frame too many
            msg = [b"PARTIAL", header(), valid_map(), rbytes()]
        elif v == 1:  # ... with its map frame missing
            msg = [b"PARTIAL", header()]
        elif v == 2:  # a header with a field too many, or a negative chunk id
            msg = [b"PARTIAL", header(fields=rng.choice(
                ([job, state["done"] + rng.randint(0, 30000), 0, 0, 4096, 1, 0, 0, [], 0],
                 [job, -1, 0, 0, 4096, 1, 0, 0, []], [job, 2**48, 0, 0, 4096, 1, 0, 0, []],
                 [job, 2**64 - 1, 0, 0, 4096, 1, 0, 0, []]))), valid_map()]
        elif v == 3:  # a header with a chunk id that is a string
            msg = [b"PARTIAL", header(fields=[job, "3", 0, 0, 4096, 1, 0, 0, []]), valid_map()]
        else:         # bad_offset entries that are not integers
            msg = [b"PARTIAL",
                   header(fields=[job, state["done"] + 7000, 0, 0, 4096, 1, 1, 0, ["x"]]),
                   valid_map()]
    counts[kind] += 1
    out.send_multipart(msg)
    if i % 200 == 199:  # spread a little over the job
        time.sleep(0.01)
for _ in range(3):
    out.send_multipart([b"PARTIAL", header(), b"\x80" + rng.randbytes(5 << 20)])
    counts["oversized"] += 1
# Job control from a stranger who read the job id on the feed but lacks the job's secret:
# an END that would complete the job early with what is merged so far, a CANCEL, a PING,
# and a JOB with the same id. None may be obeyed.
counts["forged control"] = 0
for _ in range(5):
    secret = rng.randbytes(16)
    for msg in ([b"END", pk.pack([job, secret, state["done"], 4096 * state["done"], 0])],
                [b"CANCEL", pk.pack([job, secret, "forged"])], [b"PING", pk.pack([job, secret])],
                [b"JOB", pk.pack([job, 2, secret, False, 0, ["x"]])]):
        out.send_multipart(msg)
        counts["forged control"] += 1
seconds = time.time() - began
read_feed(100)
print("sent %d messages (%s) to job %016x in %.1f s; the job had %d of %d%s chunks merged" % (
    sum(counts.values()), ", ".join("%d %s" % (n, k) for k, n in counts.items()), job, seconds,
    state["done"], state["known"], "" if state["final"] else "+"))
print("running" if state["done"] < state["known"] or not state["final"] else "over")
sub.close()
out.close()
ctx.term()
PYEOF
start "$PY" "$WORK/junk.py" "$SINK" "$FEED" "$WORK/expected.tsv" 10000 \
  > "$WORK/junk.stats" 2> "$WORK/junk.py.err"
wait_pid "$LAST_PID" 120 && status=0 || status=$?
forget "$LAST_PID"
head -1 "$WORK/junk.stats"
check "junk: the sender sent all its messages" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/junk.py.err"
check "junk: the job was still running when the junk had been sent" \
  test "$(tail -1 "$WORK/junk.stats")" = running
wait_pid "$VENT_PID" 300 && status=0 || status=$?
forget "$VENT_PID"
check "junk: the ventilator exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/junk.err"
same_file "junk: totals equal gawk's" "$WORK/expected.tsv" "$WORK/junk.tsv"
merged=$(grep -E -o 'done: [0-9]+ chunks \([0-9]+ duplicates\)' "$WORK/sink.log" | tail -1)
echo "the sink: $merged"
check "junk: the sink is alive" alive "$sink_pid"
check "junk: the sink logged dropped messages" grep -q "dropped a message" "$WORK/sink.log"
check "junk: the feed reported no failure of the job (forged END and CANCEL not obeyed)" \
  bash -c "! grep -q 'cancelled\|failed' '$WORK/sink.log'"
grep "dropped a message" "$WORK/sink.log" | tail -2
# Junk is logged at most once a second: no two junk lines carry the same time stamp.
check "junk: the sink logs junk at most once a second" test -z "$(grep "dropped a message" \
  "$WORK/sink.log" | gawk '{print $3, $4}' | sort | uniq -d)"

# The same sink serves the next job.
sample="$TALLY_SOURCE_DIR/data/sample"
expected_ngram "$sample"/*.tsv > "$WORK/expected-sample.tsv"
start_vent after "$sample"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "junk: the sink serves the next job (ventilator exits 0)" test "$status" -eq 0
same_file "junk: next job's totals equal gawk's" "$WORK/expected-sample.tsv" "$WORK/junk.tsv"
stop_pid "$w1" 5 || true
stop_pid "$w2" 5 || true
stop_pid "$sink_pid" 5 && status=0 || status=$?
check "junk: the sink exits 0 on SIGTERM" test "$status" -eq 0

# ---------------------------------------------------------------------------------------
# (b) CURVE.
keys="$WORK/keys"
mkdir -p "$keys" "$WORK/allow"
for name in server worker watcher intruder; do
  "$TALLY_BIN/tally" keygen "$keys/$name" > /dev/null
done
check "curve: tally keygen writes a public and a secret certificate" \
  test -s "$keys/server" -a -s "$keys/server_secret" -a -s "$keys/intruder_secret"
# The ventilator uses the server certificate for its connection to the sink, so the
# allow-list holds the server's own public certificate too. The watcher's key is on the
# feed's list only: with it nobody reaches the inbound socket (job control, partials).
mkdir -p "$WORK/allow-feed"
cp "$keys/server" "$keys/worker" "$WORK/allow/"
cp "$keys/watcher" "$WORK/allow-feed/"
server=(--curve-secret "$keys/server_secret" --curve-allow "$WORK/allow")

fault_endpoints
start_sink "$WORK/curve-sink.log" "$WORK/curve.tsv" "${server[@]}" \
  --curve-allow-feed "$WORK/allow-feed"
sink_pid=$SINK_PID
start_watch "$WORK/curve.json" --curve-secret "$keys/watcher_secret" --curve-server "$keys/server"
watch_pid=$WATCH_PID
start "$TALLY_BIN/tally-watch" --json --timeout 3 "$FEED" > "$WORK/plain-watch.out" 2>&1
plain_watch=$LAST_PID
start_worker "$WORK/intruder.log" --curve-secret "$keys/intruder_secret" \
  --curve-server "$keys/server"
intruder=$LAST_PID
start_worker "$WORK/wrongserver.log" --curve-secret "$keys/worker_secret" \
  --curve-server "$keys/intruder"
wrongserver=$LAST_PID
start_vent curve "${server[@]}" --curve-server "$keys/server" "$sample"

sleep 4
check "curve: the job waits while only workers with wrong keys are up" alive "$VENT_PID"
read -r merged _ < <(feed_progress "$WORK/curve.json")
progress_lines=$(grep -c '"topic":"progress"' "$WORK/curve.json" || true)
check "curve: tally-watch with the right keys reads progress ($progress_lines messages)" \
  test "$progress_lines" -ge 4
check "curve: with only the wrong-key workers, nothing is merged" test "$merged" -eq 0
check "curve: every progress message says 0 chunks merged" \
  bash -c "! grep '\"topic\":\"progress\"' '$WORK/curve.json' | grep -q -v '\"chunks_done\":0,'"
stop_pid "$intruder" 2 && s1=0 || s1=$?
stop_pid "$wrongserver" 2 && s2=0 || s2=$?
check "curve: the wrong-key workers exit within 2 s of SIGTERM" test "$s1" -eq 0 -a "$s2" -eq 0
check "curve: the worker whose key is not allowed mapped 0 chunks" \
  test "$(worker_chunks "$WORK/intruder.log")" -eq 0
check "curve: the worker with a wrong server key mapped 0 chunks" \
  test "$(worker_chunks "$WORK/wrongserver.log")" -eq 0
# A ventilator holding the watcher's key: the sink's inbound socket refuses it, so its
# JOB is never answered (and neither would an END or a CANCEL be).
"$TALLY_BIN/tally-ventilator" --bind "tcp://127.0.0.1:$(free_port)" --sink "$SINK" \
  --curve-secret "$keys/watcher_secret" --curve-server "$keys/server" --timeout 3 \
  --progress none "$sample" > "$WORK/watcher-vent.out" 2>&1 && status=0 || status=$?
check "curve: the watcher's key cannot reach the sink's inbound socket (no answer, exit 1)" \
  test "$status" -eq 1
check "curve: ... and the ventilator says the sink did not answer" \
  grep -q "no answer from the sink" "$WORK/watcher-vent.out"
wait_pid "$plain_watch" 10 && status=0 || status=$?
forget "$plain_watch"
check "curve: tally-watch without keys hears nothing (exits 3 after its --timeout)" \
  test "$status" -eq 3
check "curve: tally-watch without keys printed no message" \
  bash -c "! grep -q '^{' '$WORK/plain-watch.out'"

start_worker "$WORK/goodworker.log" --curve-secret "$keys/worker_secret" \
  --curve-server "$keys/server"
good=$LAST_PID
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "curve: with a good worker the ventilator exits 0" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -5 "$WORK/curve.err"
same_file "curve: totals equal gawk's" "$WORK/expected-sample.tsv" "$WORK/curve.tsv"
check "curve: tally-watch with the right keys gets done" \
  wait_until 10 grep -q '"topic":"done"' "$WORK/curve.json"
sum=$(sum_totals "$WORK/expected-sample.tsv")
check "curve: done on the feed carries gawk's sum" \
  grep -q "\"topic\":\"done\",\"body\":{.*\"sum\":$sum," "$WORK/curve.json"
stop_pid "$good" 5 || true
stop_pid "$watch_pid" 2 || true
stop_pid "$sink_pid" 5 || true

# ---------------------------------------------------------------------------------------
# (c) Hostile files through tally run.
files="$WORK/files"
ref="$WORK/ref"  # what gawk reads: the good lines alone
mkdir -p "$files" "$ref"
long_mb=$(scaled 100)
[ "${TALLY_VARIANT:-plain}" = sanitize ] && long_mb=20
"$PY" - "$files" "$ref" "$long_mb" <<'PYEOF'
import os, random, sys
files, ref, long_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7)

def run(key):
    start = rng.randint(1800, 1990)
    return [b"%s\t%d\t%d\t%d\n" % (key, y, rng.randint(1, 5000), rng.randint(1, 50))
            for y in range(start, start + rng.randint(2, 20))]

def put(folder, name, lines):
    with open(os.path.join(folder, name), "wb") as out:
        out.write(b"".join(lines))

good = [l for i in range(3000) for l in run(b"good-%04d alpha" % i)]
put(files, "good.tsv", good)
put(ref, "good.tsv", good)
# A bigger file for the .gz tests (a few MB).
put(files, "big.tsv", [l for i in range(60000) for l in run(b"big-%05d" % i)])
# Random bytes.
with open(os.path.join(files, "binary.bin"), "wb") as out:
    out.write(rng.randbytes(1 << 20))
# A line far beyond --max-line in the middle of a key's run, good lines around it.
lines = [l for i in range(500) for l in run(b"long-%03d" % i)]
with open(os.path.join(files, "longline.tsv"), "wb") as out:
    out.write(b"".join(lines[:2000]))
    out.write(b"long-x" + b"y" * (long_mb << 20) + b"\t1900\t7\t1\n")
    out.write(b"".join(lines[2000:]))
put(ref, "longline.tsv", lines)
# CRLF line ends.
lines = [l for i in range(2000) for l in run(b"crlf-%04d" % i)]
put(files, "crlf.tsv", [l[:-1] + b"\r\n" for l in lines])
put(ref, "crlf.tsv", lines)
# Malformed lines among good ones, some inside a good key's run and with its key.
bad = [b"mal-bad1\t1900\t5\n", b"mal-bad2\t1900\n", b"mal-bad3\n", b"\t1900\t5\t1\n",
       b"mal-bad4\t1900\t18446744073709551616\t1\n",
       b"mal-bad5\t1900\t99999999999999999999999999\t1\n",
       b"mal-0007\t1901\t18446744073709551617\t1\n", b"mal-0007\t1902\t5\n",
       b"mal-0010\t1903\t100000000000000000000\t1\n", b"mal-0010\t19x3\t5\t1\n",
       b"mal-0012\t1903\t5\t1\t9\n", b"mal-0012\t1904\t-5\t1\n"]
at = dict(zip((100, 101, 102, 103, 104, 105, 106, 107, 300, 301, 5000, 5001), bad))
lines = [l for i in range(2000) for l in run(b"mal-%04d" % i)]
out, offsets, offset = [], [], 0
for i, l in enumerate(lines):
    if i in at:
        offsets.append(offset)
        out.append(at[i])
        offset += len(at[i])
    out.append(l)
    offset += len(l)
put(files, "malformed.tsv", out)
put(ref, "malformed.tsv", lines)
with open(os.path.join(ref, "malformed.offsets"), "w") as f:  # of the bad lines
    f.write("".join("%d\n" % o for o in offsets))
PYEOF
gzip -c "$files/big.tsv" > "$files/full.gz"
size=$(stat -c %s "$files/full.gz")
head -c $((size / 2)) "$files/full.gz" > "$files/truncated.gz"
cp "$files/full.gz" "$files/corrupt.gz"
printf '\377\000\377\000%.0s' $(seq 64) |
  dd of="$files/corrupt.gz" bs=1 seek=$((size * 2 / 5)) conv=notrunc status=none
rm "$files/full.gz"
expected_ngram "$ref/good.tsv" > "$WORK/expected-good.tsv"

# run_tally NAME ARGS...: tally run --workers 2 --chunk-size 64K, totals to
# $WORK/NAME.tsv, stdout and stderr to $WORK/NAME.out and .err; sets STATUS.
run_tally() {
  local name=$1
  shift
  "$TALLY_BIN/tally" run --workers 2 --chunk-size 64K --progress none \
    --output "$WORK/$name.tsv" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &&
    STATUS=0 || STATUS=$?
}

for gz in truncated corrupt; do
  run_tally "$gz" "$files/good.tsv" "$files/$gz.gz"
  check "$gz .gz: tally run exits non-zero" test "$STATUS" -ne 0
  check "$gz .gz: the message names the file" grep -q -F "$files/$gz.gz" "$WORK/$gz.err"
  grep -F "$gz.gz" "$WORK/$gz.err" | head -1
  check "$gz .gz: no totals file" no_totals "$WORK/$gz.tsv"
done

run_tally binary "$files/good.tsv" "$files/binary.bin"
check "binary file: tally run exits 0" test "$STATUS" -eq 0
[ "$STATUS" -eq 0 ] || tail -3 "$WORK/binary.err"
grep -a '^good-' "$WORK/binary.tsv" > "$WORK/binary-good.tsv" || true
same_file "binary file: the good file's keys keep gawk's totals" \
  "$WORK/expected-good.tsv" "$WORK/binary-good.tsv"

# name_numbers NAME: "LINES BAD" from tally run's summary.
bad_of() { summary_numbers "$WORK/$1.out" | cut -d' ' -f2; }

run_tally longline "$files/longline.tsv"
check "a ${long_mb} MB line: tally run exits 0" test "$STATUS" -eq 0
[ "$STATUS" -eq 0 ] || tail -3 "$WORK/longline.err"
expected_ngram "$ref/longline.tsv" > "$WORK/expected-longline.tsv"
same_file "a ${long_mb} MB line: the other lines' totals equal gawk's" \
  "$WORK/expected-longline.tsv" "$WORK/longline.tsv"
check "a ${long_mb} MB line: counted as 1 bad line" test "$(bad_of longline)" = 1

run_tally crlf "$files/crlf.tsv"
check "CRLF: tally run exits 0" test "$STATUS" -eq 0
expected_ngram "$ref/crlf.tsv" > "$WORK/expected-crlf.tsv"
same_file "CRLF: totals equal gawk's on the LF file" "$WORK/expected-crlf.tsv" "$WORK/crlf.tsv"
check "CRLF: no bad lines" test "$(bad_of crlf)" = 0

nbad=$(wc -l < "$ref/malformed.offsets")
run_tally malformed "$files/malformed.tsv"
check "malformed lines: tally run exits 0" test "$STATUS" -eq 0
expected_ngram "$ref/malformed.tsv" > "$WORK/expected-malformed.tsv"
same_file "malformed lines: the good lines' totals equal gawk's" \
  "$WORK/expected-malformed.tsv" "$WORK/malformed.tsv"
check "malformed lines: the summary counts $nbad bad (it says $(bad_of malformed))" \
  test "$(bad_of malformed)" = "$nbad"

run_tally strict --strict "$files/malformed.tsv"
check "--strict: tally run exits non-zero" test "$STATUS" -ne 0
# Which bad line is named depends on which worker's chunk reaches the sink first.
offset=$(sed -n -E "s|.*$files/malformed\.tsv: malformed line at byte ([0-9]+).*|\1|p" \
  "$WORK/strict.err" | head -1)
check "--strict: the message names the file and the byte offset of a bad line (${offset:-none})" \
  grep -q -x "${offset:-none}" "$ref/malformed.offsets"
grep -F "malformed" "$WORK/strict.err" | head -2
check "--strict: no totals file" no_totals "$WORK/strict.tsv"
check "no tally process left" no_leftovers
finish
