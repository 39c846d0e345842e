# Helpers for the fault-injection integration tests (it_kill_workers, it_hostile,
# it_sigterm), sourced after tests/lib.sh: the services started one by one on TCP
# loopback, as on a cluster, so that a test can kill, stop and restart each of them, and
# the sink's feed read (through tally-watch --json) to tell how far a job has come.
# shellcheck disable=SC2034  # SINK_PID, VENT_PID, WATCH_PID are for the sourcing tests

# half_scaled N: N for the plain build, half of it for the sanitized one (for jobs that
# must last long enough to be hit mid-way even there).
half_scaled() {
  if [ "${TALLY_VARIANT:-plain}" = sanitize ]; then
    echo $((($1 + 1) / 2))
  else
    echo "$1"
  fi
}

# fault_endpoints: picks free loopback ports; sets VENT (the ventilator's PUSH), SINK
# (the sink's inbound ROUTER) and FEED (the sink's PUB).
fault_endpoints() {
  VENT="tcp://127.0.0.1:$(free_port)"
  SINK="tcp://127.0.0.1:$(free_port)"
  FEED="tcp://127.0.0.1:$(free_feed_port)"
  while [ "$SINK" = "$VENT" ] || [ "$FEED" = "$VENT" ] || [ "$FEED" = "$SINK" ]; do
    SINK="tcp://127.0.0.1:$(free_port)"
    FEED="tcp://127.0.0.1:$(free_feed_port)"
  done
}

# forget PID: drops a process that has ended from lib.sh's cleanup list, so cleanup never
# signals a pid the system may have given to someone else since.
forget() {
  local pid kept=()
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

# alive PID: true while the process runs (quietly, for check).
alive() {
  kill -0 "$1" 2> /dev/null
}

# start_sink LOG OUTPUT [ARGS...]: tally-sink on $SINK and $FEED writing OUTPUT; its
# stderr and stdout go to LOG. Sets SINK_PID.
start_sink() {
  local log=$1 output=$2
  shift 2
  start "$TALLY_BIN/tally-sink" --bind "$SINK" --publish "$FEED" --output "$output" "$@" \
    > "$log" 2>&1
  SINK_PID=$LAST_PID
}

# start_worker LOG [ARGS...]: a tally-worker on $VENT and $SINK. Sets LAST_PID.
start_worker() {
  local log=$1
  shift
  start "$TALLY_BIN/tally-worker" --ventilator "$VENT" --sink "$SINK" "$@" > "$log" 2>&1
}

# start_vent NAME ARGS... FILES...: a tally-ventilator on $VENT and $SINK; stdout to
# $WORK/NAME.out, stderr to $WORK/NAME.err. Sets VENT_PID.
start_vent() {
  local name=$1
  shift
  start "$TALLY_BIN/tally-ventilator" --bind "$VENT" --sink "$SINK" --progress none "$@" \
    > "$WORK/$name.out" 2> "$WORK/$name.err"
  VENT_PID=$LAST_PID
}

# start_watch FILE [ARGS...]: tally-watch --json on $FEED, its lines to FILE, and waits
# half a second for the subscription to reach the sink (ZeroMQ's slow joiner).
# Sets WATCH_PID.
start_watch() {
  local file=$1
  shift
  start "$TALLY_BIN/tally-watch" --json "$@" "$FEED" > "$file" 2> "$file.err"
  WATCH_PID=$LAST_PID
  sleep 0.5
}

# stop_pid PID SECONDS: SIGTERM, then waits up to SECONDS for the exit. Returns the exit
# status, or 124 after SIGKILL when the process did not end in time.
stop_pid() {
  local pid=$1 limit=$2 status
  kill -TERM "$pid" 2> /dev/null || true
  wait_pid "$pid" "$limit" && status=0 || status=$?
  if [ "$status" -eq 124 ]; then
    kill -KILL "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  fi
  forget "$pid"
  return "$status"
}

# feed_progress FILE: "DONE KNOWN FINAL" of the last progress message in tally-watch
# --json output FILE (chunks merged, chunks known, 1 when the count is final), or
# "0 0 0" before the first one.
feed_progress() {
  gawk '/^\{"topic":"progress"/ {
          d = k = f = 0
          if (match($0, /"chunks_done":[0-9]+/)) d = substr($0, RSTART + 14, RLENGTH - 14)
          if (match($0, /"chunks_known":[0-9]+/)) k = substr($0, RSTART + 15, RLENGTH - 15)
          f = $0 ~ /"chunks_final":true/
        }
        END { printf "%d %d %d\n", d, k, f }' "$1"
}

# feed_merged_at_least FILE N: true once the feed in FILE says N chunks are merged.
feed_merged_at_least() {
  local merged
  read -r merged _ < <(feed_progress "$1")
  [ "$merged" -ge "$2" ]
}

# worker_chunks LOG: the chunk count a worker logged when it stopped ("stopping after N
# chunks"), or -1 when it did not log one.
worker_chunks() {
  local n
  n=$(sed -n -E 's/.*stopping after ([0-9]+) chunks.*/\1/p' "$1" | tail -1)
  echo "${n:--1}"
}

# no_totals FILE: neither FILE nor a temporary file beside it (FILE.tmp.PID) exists.
no_totals() {
  ! ls "$1" "$1".tmp* > /dev/null 2>&1
}

# await_job NAME TITLE TOTALS: waits for the ventilator started as NAME ($VENT_PID, its
# stderr in $WORK/NAME.err), checks it exits 0 and that TOTALS equal $WORK/expected.tsv.
await_job() {
  local name=$1 title=$2 totals=$3 status
  wait_pid "$VENT_PID" 300 && status=0 || status=$?
  forget "$VENT_PID"
  check "$title: the ventilator exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/$name.err"
  same_file "$title: totals equal gawk's" "$WORK/expected.tsv" "$totals"
}
