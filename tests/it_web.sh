#!/usr/bin/env bash
# tally web: the page in headless Chromium, /metrics through the Prometheus client's own
# parser, the totals download, a page opened late, sink shards and bad requests. The
# services run separately on TCP loopback; tally web listens on 127.0.0.1 only.
# (a) One sink, tally web started before the job, the page opened in Chromium (driven
#     over the DevTools pipe by tests/web_browser.py, which reads the DOM every 0.25 s)
#     before the job starts. The job (100 MB of n-gram 2012 files, 50 MB sanitized, with
#     3 malformed lines and a key full of HTML) is slowed down by its only worker being
#     stopped and continued (SIGSTOP/SIGCONT, 10 ms of every 260), so that it lasts
#     several seconds. The page shows the job running with its progress advancing
#     (readings between 0 and 1, never going back, at least two different), then done
#     with gawk's key count, sum, lines and bad lines; its top keys (and their totals)
#     are the totals file's first lines, which are gawk's; the key made of HTML shows as
#     text and adds no element to the page. A screenshot taken mid-job and one at the end
#     are kept in the build folder (their paths printed).
# (b) /metrics, parsed by prometheus_client.parser: the job's lines, bad lines and keys
#     equal the ventilator's summary and gawk's; the sink's stats count its lines and
#     bytes; every counter family's samples end in _total.
# (c) /jobs/<id>/totals (curl) equals gawk's totals; an unknown job, a malformed id and
#     an unknown path are 404 with a reason; /events answers text/event-stream with the
#     whole state at once.
# (d) A second tally web started after the job ended: from the sink's snapshot service
#     alone, its page (Chromium) and /api/state show the job done with gawk's numbers,
#     and its totals download equals gawk's. The sink restarted: tally web connects
#     again and asks for the state again.
# (e) Two sink shards, tally web given both feeds: the job's view combined (done once,
#     keys and sum of gawk's), the download merged from the two shards' parts equal to
#     gawk's totals, /metrics per shard adding up to gawk's.
# (f) Feeds that never answer (a port nobody listens on; a TCP listener that never
#     speaks): tally web still answers /, /api/state and /metrics at once, and a totals
#     download gives up with 504 within seconds. Bad --listen values exit 2.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fault.sh"
source "$(dirname "$0")/lib_shards.sh"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
BROWSER="$TALLY_SOURCE_DIR/tests/web_browser.py"
ARTIFACTS="$(cd "$TALLY_BIN/.." && pwd)/test-artifacts"
mkdir -p "$ARTIFACTS"
variant=${TALLY_VARIANT:-plain}

# ports N: N free loopback ports, each with the next one free too (a feed's snapshot
# service listens on its port + 1), none the same.
ports() {
  free_ports "$1" pair
}

# start_web NAME FEED...: tally web on a free port, its log in $WORK/NAME.log; waits
# until it answers. Sets WEB (its base URL) and WEB_PID.
start_web() {
  local name=$1 port
  shift
  port=$(free_port)
  start "$TALLY_BIN/tally" web --listen "127.0.0.1:$port" "$@" > "$WORK/$name.log" 2>&1
  WEB_PID=$LAST_PID
  WEB="http://127.0.0.1:$port"
  wait_until 20 curl -sf -o /dev/null "$WEB/api/state" || true
}

has_job() { [ -n "$(last_job "$1")" ]; }

# metric_is URL NAME VALUE: the first sample of NAME on that tally web's /metrics is VALUE.
metric_is() {
  [ "$(curl -s --max-time 5 "$1/metrics" | gawk -v name="$2" '$1 ~ "^" name "({|$)" { print $2; exit }')" = "$3" ]
}

# connected URL: true when every feed of that tally web is connected.
connected() {
  curl -s --max-time 5 "$1/api/state" |
    "$PY" -c 'import json, sys; f = json.load(sys.stdin)["feeds"]; sys.exit(0 if f and all(x["connected"] for x in f) else 1)'
}

# last_job URL: the id of the job that tally web heard of last (empty: none).
last_job() {
  curl -s --max-time 5 "$1/api/state" |
    "$PY" -c 'import json, sys; j = json.load(sys.stdin)["jobs"]; print(j[-1]["id"] if j else "")'
}

# http URL: prints "STATUS" and writes the body to $WORK/http.body.
http() { curl -s --max-time 20 -o "$WORK/http.body" -w '%{http_code}' "$1"; }

# state_job URL JOB FIELD: a field of the job in /api/state (status, or done.keys ...).
state_job() {
  curl -s --max-time 5 "$1/api/state" | "$PY" -c '
import json, sys
state = json.load(sys.stdin)
for job in state["jobs"]:
    if job["id"] == sys.argv[1]:
        value = job
        for part in sys.argv[2].split("."):
            value = value[part] if value is not None else None
        print(value if value is not None else "")
' "$2" "$3"
}

# job_status URL JOB STATUS: true when /api/state shows the job with that status.
job_status() { [ "$(state_job "$1" "$2" status)" = "$3" ]; }

# throttle PID: lets the worker run 10 ms of every 260 until the ventilator ends.
throttle() {
  local pid=$1
  while kill -0 "$VENT_PID" 2> /dev/null; do
    kill -CONT "$pid" 2> /dev/null || break
    sleep 0.01
    kill -STOP "$pid" 2> /dev/null || break
    sleep 0.25
  done
  kill -CONT "$pid" 2> /dev/null || true
}

# The data: n-gram 2012 files, with 3 malformed lines at the end of one (not at its
# start: the format is detected from the first lines), and a key of HTML and quotes
# whose total puts it first.
mb=$(half_scaled 100)
gen_ngram2012 "$WORK/data" 4 "$mb" 41
html_key='<img src=x onerror="document.title=1">&amp;"\'
printf '%s\t1999\t5000000\t1\n' "$html_key" >> "$WORK/data/part-01.tsv"
printf 'only\ttwo\nkey\t19x9\t5\t1\nkey\t1999\t\t1\n' >> "$WORK/data/part-02.tsv"
bad=3
gawk -F'\t' 'NF == 4 && length($1) && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {
      s[$1] += $3 } END { for (k in s) printf "%s\t%d\n", k, s[k] }' "$WORK"/data/*.tsv |
  sort_totals > "$WORK/expected.tsv"
lines=$(cat "$WORK"/data/*.tsv | wc -l)
keys=$(wc -l < "$WORK/expected.tsv")
sum=$(sum_totals "$WORK/expected.tsv")
echo "input: $mb MB, $lines lines ($bad malformed), gawk: $keys keys, sum $sum"

# ---------------------------------------------------------------------------------------
# (a) The page during a job.
read -r p_vent p_sink p_feed <<< "$(ports 3)"
VENT="tcp://127.0.0.1:$p_vent"
SINK="tcp://127.0.0.1:$p_sink"
FEED="tcp://127.0.0.1:$p_feed"
start_sink "$WORK/sink.log" "$WORK/totals.tsv"
start_web web "$FEED"
web_a=$WEB_PID
check "a: tally web connects to the feed" wait_until 20 connected "$WEB"
check "a: tally web answers on 127.0.0.1" test -n "$(curl -s "$WEB/api/state")"
check "a: tally web says where it serves" grep -q "serving $WEB/" "$WORK/web.log"
start_worker "$WORK/worker.log"
worker=$LAST_PID
kill -STOP "$worker"
if [ -n "$CHROMIUM" ]; then
  start env CHROMIUM="$CHROMIUM" "$PY" "$BROWSER" "$WEB/" "$WORK/page.log" --stop "$WORK/page.stop" \
    --screenshot "$ARTIFACTS/it_web-$variant.png" --midshot "$ARTIFACTS/it_web-$variant-running.png" \
    --seconds 80 2> "$WORK/page.err"
  browser=$LAST_PID
  check "a: Chromium opens the page" wait_until 30 grep -qs '"conn": "live"' "$WORK/page.log"
else
  echo "SKIP: the browser checks of (a) and (d): no chromium on PATH (apt-get install chromium)"
fi
start_vent job --retry 60 "$WORK/data"
throttle "$worker" &
throttle_pid=$!
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
wait "$throttle_pid" 2> /dev/null || true
check "a: the ventilator exits 0" test "$status" -eq 0
same_file "a: totals equal gawk's" "$WORK/expected.tsv" "$WORK/totals.tsv"
job=$(last_job "$WEB")
echo "    job $job"
check "a: /api/state shows the job done" wait_until 10 job_status "$WEB" "$job" done
read -r s_lines s_bad _ s_keys s_sum <<< "$(summary_numbers "$WORK/job.out")"
echo "    the ventilator's summary: $s_lines lines, $s_bad bad, $s_keys keys, sum $s_sum"
check "a: the ventilator's summary has gawk's counts" \
  test "$s_lines $s_bad $s_keys $s_sum" = "$lines $bad $keys $sum"

if [ -n "$CHROMIUM" ]; then
  sleep 1  # a state or two after the done
  touch "$WORK/page.stop"
  wait_pid "$browser" 30 && status=0 || status=$?
  forget "$browser"
  check "a: the browser script exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/page.err"
  head -10 "$WORK/totals.tsv" > "$WORK/top10.tsv"
  "$PY" - "$WORK/page.log" "$job" "$WORK/top10.tsv" "$keys" "$sum" "$lines" "$bad" "$html_key" <<'PYEOF' > "$WORK/page.check" && status=0 || status=$?
import json, sys
log, job, top_file, keys, total, lines, bad, html_key = sys.argv[1:9]
readings = [json.loads(l) for l in open(log)][1:]
running = [j["progress"] for r in readings for j in r["running"] if j["id"] == job]
final = readings[-1]
want_top = [l.rstrip("\n").split("\t") for l in open(top_file, encoding="utf-8")]
done = [f for f in final["finished"] if f["id"] == job]
results = {
    "running readings": len(running),
    "progress between 0 and 1": all(0 <= p <= 1 for p in running),
    "progress never goes back": all(a <= b for a, b in zip(running, running[1:])),
    "progress advances while running": len([p for p in set(running) if 0 < p < 1]) >= 2,
    "live (SSE) updates": final["updates"] is not None and final["updates"] > 5,
    "the job done, with gawk's numbers": len(done) == 1 and done[0]["status"] == "done" and
        [done[0][k] for k in ("keys", "sum", "lines", "bad_lines")] == [keys, total, lines, bad],
    "a link to its totals": len(done) == 1 and (done[0]["totals"] or "").endswith("/jobs/%s/totals" % job),
    "no longer running": not final["running"],
    "the top is the job's": final["top_job"] == job,
    "the top keys are the totals file's first lines": final["top"] == want_top,
    "the HTML key shows as text": [html_key, "5000000"] in final["top"],
    "no element from a key": final["injected"] == 0,
}
print("    %d readings while running: %s ... %s" % (len(running), running[:3], running[-3:]))
print("    top on the page: %s" % final["top"][:3])
for name, ok in results.items():
    print("%s %s" % ("ok" if ok else "FAIL", name))
sys.exit(0 if all(results.values()) else 1)
PYEOF
  cat "$WORK/page.check"
  while read -r verdict name; do
    check "a: the page: $name" test "$verdict" = ok
  done < <(grep -E '^(ok|FAIL) ' "$WORK/page.check")
  check "a: the page's checks ran" test "$status" -eq 0 -o -s "$WORK/page.check"
  for shot in "$ARTIFACTS/it_web-$variant-running.png" "$ARTIFACTS/it_web-$variant.png"; do
    check "a: screenshot $(basename "$shot") saved" test -s "$shot"
    echo "    screenshot: $shot"
  done
fi
head -10 "$WORK/totals.tsv" > "$WORK/top10.tsv"
head -10 "$WORK/expected.tsv" > "$WORK/expected10.tsv"
same_file "a: gawk's first 10 lines are the totals file's (and so the page's top)" \
  "$WORK/expected10.tsv" "$WORK/top10.tsv"

# ---------------------------------------------------------------------------------------
# (b) /metrics through the Prometheus client's parser.
curl -s -D "$WORK/metrics.head" "$WEB/metrics" > "$WORK/metrics.txt"
check "b: /metrics is text format 0.0.4" grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/metrics.head"
"$PY" - "$WORK/metrics.txt" "$job" "$lines" "$bad" "$keys" "$FEED" <<'PYEOF' > "$WORK/metrics.check" && status=0 || status=$?
import sys
from prometheus_client.parser import text_string_to_metric_families
text, job, lines, bad, keys, feed = open(sys.argv[1]).read(), sys.argv[2], *map(int, sys.argv[3:6]), sys.argv[6]
families = list(text_string_to_metric_families(text))
samples = {}
for family in families:
    for s in family.samples:
        samples.setdefault(s.name, []).append(s)
def job_sum(name):
    return sum(s.value for s in samples.get(name, []) if s.labels.get("job") == job)
def feed_value(name):
    found = [s.value for s in samples.get(name, []) if s.labels.get("feed") == feed]
    return found[0] if found else None
results = {
    "lines equal gawk's and the summary's": job_sum("tally_job_lines_total") == lines,
    "bad lines equal": job_sum("tally_job_bad_lines_total") == bad,
    "keys equal": job_sum("tally_job_keys") == keys,
    "the job is done": job_sum("tally_job_status") == 1 and [s.labels["status"] for s in samples["tally_job_status"] if s.labels["job"] == job and s.value == 1] == ["done"],
    "the sink's stats: its lines are the job's": feed_value("tally_sink_lines_total") == lines,
    "the sink's stats: one job done": feed_value("tally_sink_jobs_done_total") == 1,
    "the sink's stats: bytes merged": (feed_value("tally_sink_bytes_total") or 0) > 0,
    "feed messages counted, none undecodable": (feed_value("tally_web_feed_messages_total") or 0) > 0 and feed_value("tally_web_feed_undecodable_total") == 0,
    "every counter's samples end in _total": all(s.name.endswith(("_total", "_created")) for f in families if f.type == "counter" for s in f.samples),
    "HELP for every family": all(f.documentation for f in families),
}
print("    %d families; job lines %d, bad %d, keys %d" % (len(families), job_sum("tally_job_lines_total"), job_sum("tally_job_bad_lines_total"), job_sum("tally_job_keys")))
for name, ok in results.items():
    print("%s %s" % ("ok" if ok else "FAIL", name))
sys.exit(0 if all(results.values()) else 1)
PYEOF
cat "$WORK/metrics.check"
check "b: prometheus_client parses /metrics" test "$status" -eq 0 -o "$(grep -c '^FAIL' "$WORK/metrics.check")" -gt 0
while read -r verdict name; do
  check "b: /metrics: $name" test "$verdict" = ok
done < <(grep -E '^(ok|FAIL) ' "$WORK/metrics.check")

# ---------------------------------------------------------------------------------------
# (c) Downloads and bad requests.
check "c: /jobs/$job/totals answers 200" test "$(http "$WEB/jobs/$job/totals")" = 200
same_file "c: the download equals gawk's totals" "$WORK/expected.tsv" "$WORK/http.body"
check "c: an unknown job is 404" test "$(http "$WEB/jobs/123456789abcdef/totals")" = 404
check "c: ... saying so" grep -q 'not known' "$WORK/http.body"
check "c: a malformed job id is 404" test "$(http "$WEB/jobs/nothex/totals")" = 404
check "c: an unknown path is 404" test "$(http "$WEB/no/such/page")" = 404
check "c: POST is refused" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$WEB/metrics")" = 405
curl -s -N --max-time 2 -D "$WORK/events.head" "$WEB/events" > "$WORK/events.txt" || true
check "c: /events is an event stream" grep -qi '^content-type: text/event-stream' "$WORK/events.head"
check "c: ... whose first event holds the whole state (the job, done)" \
  "$PY" -c 'import json, sys
data = [l[6:] for l in open(sys.argv[1]) if l.startswith("data: ")]
state = json.loads(data[0])
sys.exit(0 if any(j["id"] == sys.argv[2] and j["status"] == "done" for j in state["jobs"]) else 1)' \
  "$WORK/events.txt" "$job"

# ---------------------------------------------------------------------------------------
# (d) A page opened after the job ended: the snapshot service tells it.
start_web late "$FEED"
check "d: the late tally web shows the job done" wait_until 10 job_status "$WEB" "$job" done
check "d: ... with gawk's keys, sum, lines and bad lines" test \
  "$(state_job "$WEB" "$job" done.keys) $(state_job "$WEB" "$job" done.sum) $(state_job "$WEB" "$job" done.lines) $(state_job "$WEB" "$job" done.bad_lines)" \
  = "$keys $sum $lines $bad"
check "d: its download equals gawk's totals" test "$(http "$WEB/jobs/$job/totals")" = 200
same_file "d: the late download" "$WORK/expected.tsv" "$WORK/http.body"
if [ -n "$CHROMIUM" ]; then
  "$PY" "$BROWSER" "$WEB/" "$WORK/late.log" --seconds 3 2> "$WORK/late.err" && status=0 || status=$?
  check "d: the browser script exits 0" test "$status" -eq 0
  check "d: the late page shows the job's summary" "$PY" -c 'import json, sys
final = json.loads(open(sys.argv[1]).readlines()[-1])
row = [f for f in final["finished"] if f["id"] == sys.argv[2]]
print("    late page:", row)
sys.exit(0 if row and [row[0][k] for k in ("status", "keys", "sum", "lines", "bad_lines")] == ["done"] + sys.argv[3:7] else 1)' \
    "$WORK/late.log" "$job" "$keys" "$sum" "$lines" "$bad"
fi
# The sink restarted: tally web sees the feed go and come back, and asks for the state
# again.
stop_pid "$SINK_PID" 5 || true
start_sink "$WORK/sink2.log" "$WORK/totals2.tsv"
check "d: after the sink restarted, tally web asked for its state again" \
  wait_until 20 metric_is "$WEB" tally_web_snapshot_requests_total 2
check "d: ... having connected twice" metric_is "$WEB" tally_web_feed_connects_total 2
check "d: ... and now connected" metric_is "$WEB" tally_web_feed_connected 1
stop_pid "$WEB_PID" 5 && status=0 || status=$?
check "d: tally web exits 0 on SIGTERM" test "$status" -eq 0
stop_pid "$web_a" 5 && status=0 || status=$?
check "d: the first tally web exits 0 on SIGTERM" test "$status" -eq 0
stop_pid "$SINK_PID" 5 || true
stop_pid "$worker" 5 || true

# ---------------------------------------------------------------------------------------
# (e) Two sink shards.
read -r p_vent p_s0 p_f0 p_s1 p_f1 <<< "$(ports 5)"
VENT="tcp://127.0.0.1:$p_vent"
SINKS=("tcp://127.0.0.1:$p_s0" "tcp://127.0.0.1:$p_s1")
FEEDS=("tcp://127.0.0.1:$p_f0" "tcp://127.0.0.1:$p_f1")
NSHARDS=2
SINK=$(join_list "${SINKS[@]}")
for i in 0 1; do start_shard "$i" "$WORK/shard$i.log"; done
start_web shards "${FEEDS[@]}"
check "e: tally web connects to both feeds" wait_until 20 connected "$WEB"
for i in 1 2; do start_worker "$WORK/shard-worker$i.log"; done
start_vent shards "$WORK/data"
wait_pid "$VENT_PID" 120 && status=0 || status=$?
forget "$VENT_PID"
check "e: the sharded job's ventilator exits 0" test "$status" -eq 0
wait_until 10 has_job "$WEB" || true
sjob=$(last_job "$WEB")
check "e: tally web shows the job done once both shards are" wait_until 10 job_status "$WEB" "$sjob" done
check "e: ... as one job of 2 shards with gawk's keys and sum" test \
  "$(state_job "$WEB" "$sjob" shards) $(state_job "$WEB" "$sjob" done.keys) $(state_job "$WEB" "$sjob" done.sum)" \
  = "2 $keys $sum"
check "e: the download answers 200" test "$(http "$WEB/jobs/$sjob/totals")" = 200
same_file "e: the download merged from the 2 shards equals gawk's totals" "$WORK/expected.tsv" "$WORK/http.body"
curl -s "$WEB/metrics" > "$WORK/metrics2.txt"
check "e: /metrics per shard add up to gawk's lines and keys" "$PY" -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
job, lines, keys = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
got, shards = {}, set()
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in f.samples:
        if s.labels.get("job") == job and "shard" in s.labels:
            got[s.name] = got.get(s.name, 0) + s.value
            shards.add(s.labels["shard"])
print("    shards", sorted(shards), "lines", got.get("tally_job_lines_total"), "keys", got.get("tally_job_keys"))
sys.exit(0 if shards == {"0", "1"} and got.get("tally_job_lines_total") == lines and got.get("tally_job_keys") == keys else 1)' \
  "$WORK/metrics2.txt" "$sjob" "$lines" "$keys"
stop_pid "$WEB_PID" 5 || true
for i in 0 1; do stop_pid "${SHARD_PIDS[$i]}" 5 || true; done

# ---------------------------------------------------------------------------------------
# (f) Feeds that never answer, and bad usage.
read -r p_dead p_mute <<< "$(ports 2)"
start "$PY" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
held = []
while True:
    c, _ = s.accept(); held.append(c)' "$p_mute"
mute=$LAST_PID
sleep 0.3
start_web silent "tcp://127.0.0.1:$p_dead" "tcp://127.0.0.1:$p_mute"
t0=$(now)
check "f: with silent feeds, / answers" test "$(http "$WEB/")" = 200
check "f: ... /api/state too" test "$(http "$WEB/api/state")" = 200
check "f: ... and /metrics" test "$(http "$WEB/metrics")" = 200
check "f: ... at once ($(elapsed "$t0") s)" gawk -v s="$(elapsed "$t0")" 'BEGIN { exit !(s < 3) }'
t0=$(now)
code=$(http "$WEB/jobs/1/totals")
took=$(elapsed "$t0")
echo "    totals download with silent feeds: $code after $took s: $(cat "$WORK/http.body")"
check "f: a totals download gives up with 504" test "$code" = 504
check "f: ... within 10 s" gawk -v s="$took" 'BEGIN { exit !(s < 10) }'
check "f: the server still answers after it" test "$(http "$WEB/api/state")" = 200
stop_pid "$WEB_PID" 5 && status=0 || status=$?
check "f: tally web with silent feeds exits 0 on SIGTERM" test "$status" -eq 0
stop_pid "$mute" 2 || true
for listen in "8080" "localhost:http" "127.0.0.1:99999" "[::1:80"; do
  "$TALLY_BIN/tally" web --listen "$listen" tcp://127.0.0.1:1 > /dev/null 2>&1 && status=0 || status=$?
  check "f: --listen $listen exits 2" test "$status" -eq 2
done
"$TALLY_BIN/tally" web --help > "$WORK/help.txt" && status=0 || status=$?
check "f: tally web --help exits 0 and names --listen" grep -q -- '--listen' "$WORK/help.txt"
check "f: tally --help lists web" bash -c "'$TALLY_BIN/tally' --help | grep -q '^  web '"
finish
