#!/usr/bin/env bash
# The container deployment end to end, where a Docker engine answers: builds the image
# from docker/Dockerfile and runs compose.yaml as they are (own project name, own host
# ports, data and results in a temporary folder through TALLY_DATA / TALLY_RESULTS):
#   1. `up` with three workers over generated n-gram 2012 data: totals equal gawk's;
#      the sink turns healthy; the services run as non-root users; the totals file is
#      not owned by root;
#   2. a second job during which one worker container is frozen while it holds chunks,
#      then killed (docker kill): the ventilator notices, sends its chunks again, and
#      the totals are still equal;
#   3. a third job from a `docker run` of the same image (as a worker host would) under
#      a seccomp profile without io_uring: the ventilator falls back to plain reads;
#   4. crash recovery, over a larger input (the data linked RECOVERY_COPIES times; the
#      sink checkpoints every second), each job held mid-way for its kill: the workers
#      are paused (docker pause) from before it starts, let run a tenth of a second at a
#      time until a third of its chunks are merged, and let go after the kill:
#      a. the sink's process is SIGKILLed mid-job, after a checkpoint: Docker starts the
#         container again (restart: on-failure), the sink takes its checkpoint back, and
#         the job ends with totals equal to gawk's, the ventilator exiting 0;
#      b. the sink is stopped with `docker kill` mid-job, which Docker counts as a manual
#         stop (on engines where it restarts it anyway, the test waits for that); after
#         `compose start sink` the job ends the same way;
#      c. the ventilator's process is SIGKILLed mid-job: Docker starts it again, it
#         resumes the job from its job file on the volume ventilator-state, exits 0, and
#         the job file is gone;
#   5. two sink shards (compose.yaml with docker/compose.shards.yaml: `sink` is shard 0,
#      `sink-1` shard 1; the workers and the ventilator get both, in that order):
#      a. a job over the data of 1.: each shard writes its part, the parts hold
#         different keys and together gawk's totals, both sinks finished the job, and
#         the one-shot service `merge` (tally merge) writes totals equal to gawk's; the
#         watch, given both feeds, prints the job's end with gawk's key count and sum;
#      b. the process of shard 1's sink is SIGKILLed mid-job, after a checkpoint of its
#         own: Docker starts it again, it takes its checkpoint back, and the merged
#         totals equal gawk's;
#      c. a ventilator given one sink while the workers have two: the workers leave its
#         chunks (and say why), the job fails (exit 1), no part is written;
#      d. a ventilator given both sinks in the other order: the sinks refuse the parts
#         meant for the other (and say why), the job fails (exit 1, the ventilator naming
#         the --sink list), no part is written;
#   6. `down` leaves no container, no network and no volume of the project.
# Without an engine it prints why it skipped and exits 0. Timings are printed; the image
# build is cached by the engine from one run to the next.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_docker.sh"
here=$(cd "$(dirname "$0")" && pwd)
project=tallyit
plain_name=tallyit-plainread

docker_require_engine it_docker
if docker compose version > /dev/null 2>&1; then
  compose_cmd=(docker compose)
elif docker-compose version > /dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  docker_skip it_docker "a Docker engine answers, but neither 'docker compose' nor 'docker-compose' is installed"
fi

# Only this test's settings reach compose (a TALLY_* variable of the caller would change it).
for name in $(compgen -e | grep '^TALLY_' || true); do
  case $name in TALLY_BIN | TALLY_SOURCE_DIR | TALLY_VARIANT) ;; *) unset "$name" ;; esac
done
export COMPOSE_PROJECT_NAME=$project
export TALLY_IMAGE=tally:it
export TALLY_DATA=$WORK/data
export TALLY_RESULTS=$WORK/results
export TALLY_VERBOSE=1
export TALLY_CHECKPOINT_INTERVAL=1  # the sink's checkpoints of open jobs, every second
TALLY_CHUNKS_PORT=$(free_port) TALLY_SINK_PORT=$(free_port) TALLY_FEED_PORT=$(free_port)
TALLY_SNAPSHOT_PORT=$(free_port)
TALLY_SINK_1_PORT=$(free_port) TALLY_FEED_1_PORT=$(free_port)  # shard 1's (section 5)
TALLY_SNAPSHOT_1_PORT=$(free_port)
export TALLY_CHUNKS_PORT TALLY_SINK_PORT TALLY_FEED_PORT TALLY_SNAPSHOT_PORT
export TALLY_SINK_1_PORT TALLY_FEED_1_PORT TALLY_SNAPSHOT_1_PORT
: > "$WORK/empty.env"

compose() {
  "${compose_cmd[@]}" -f "$TALLY_SOURCE_DIR/compose.yaml" --project-directory "$TALLY_SOURCE_DIR" \
    --env-file "$WORK/empty.env" "$@"
}
# The same with the override that runs two sink shards.
compose_shards() { compose -f "$TALLY_SOURCE_DIR/docker/compose.shards.yaml" "$@"; }
# The id of the (newest) container of a compose service, running or not.
container_of() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" | head -1
}
project_containers() { docker ps -aq --filter "label=com.docker.compose.project=$project"; }
project_networks() { docker network ls -q --filter "label=com.docker.compose.project=$project"; }
project_volumes() { docker volume ls -q --filter "label=com.docker.compose.project=$project"; }
docker_cleanup() {
  docker rm -f "$plain_name" > /dev/null 2>&1 || true
  compose down -v --remove-orphans > /dev/null 2>&1 || true
}
trap 'docker_cleanup; cleanup' EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}'; }
timing() { echo "time: $1: $(since "$2") s"; }
# uid of a container's main process (what /proc/1 of the container says).
main_uid() { docker exec "$1" awk '/^Uid:/{print $2}' /proc/1/status 2> /dev/null || echo 0; }
# Waits up to $2 s for a container to stop; prints its exit code (124: still running).
wait_exit() {
  local status
  status=$(timeout "$2" docker wait "$1" 2> /dev/null) || status=124
  echo "$status"
}
# Waits up to $2 s for a container to stop for good: exited, and not to be started again
# by its restart policy (docker wait returns at every exit). Prints its exit code (124:
# still running or restarting).
wait_final_exit() {
  local i status
  for ((i = 0; i < $2 * 10; i++)); do
    status=$(docker inspect -f '{{.State.Status}}' "$1" 2> /dev/null || echo gone)
    case $status in
      exited | dead) docker inspect -f '{{.State.ExitCode}}' "$1"; return ;;
      gone) echo 125; return ;;
    esac
    sleep 0.1
  done
  echo 124
}
restarts() { docker inspect -f '{{.RestartCount}}' "$1" 2> /dev/null || echo -1; }
running() { [ "$(docker inspect -f '{{.State.Status}}' "$1" 2> /dev/null)" = running ]; }
# A crash: SIGKILL to a container's main process from outside Docker, as the kernel's OOM
# killer or a fault would end it, so that its restart policy applies (after `docker kill`,
# a manual stop to Docker, no policy starts a container again). From the host as root;
# else from a container in the host's PID namespace.
crash() {
  local pid
  pid=$(docker inspect -f '{{.State.Pid}}' "$1" 2> /dev/null || echo 0)
  [ "${pid:-0}" -gt 0 ] || return 1
  kill -KILL "$pid" 2> /dev/null ||
    docker run --rm --pid host --user 0:0 --entrypoint bash "$TALLY_IMAGE" -c "kill -KILL $pid"
}
# The id of the job that a ventilator container's sink accepted (its log says so), after
# waiting up to $2 s for it; empty if none.
job_of() {
  local i job
  for ((i = 0; i < $2 * 10; i++)); do
    job=$(docker logs "$1" 2>&1 | sed -n -E 's/.*job ([0-9a-f]{16}) accepted by.*/\1/p' | head -1)
    [ -n "$job" ] && { echo "$job"; return; }
    sleep 0.1
  done
}
# Chunks of job $1 merged, from the last progress line of it that the watch printed (the
# feed's, 4 a second).
chunks_done() {
  docker logs "$(container_of watch)" 2> /dev/null |
    sed -n -E "s/^$1 progress: ([0-9]+)\/.*/\1/p" | tail -1
}
# Whether at least $2 chunks of job $1 are merged.
merged_at_least() { [ "$(chunks_done "$1")" -ge "$2" ] 2> /dev/null; }
# Whether a sink's state folder ($2, default the sink's of compose.yaml) holds a
# checkpoint of job $1: the file itself, not its temporary while it is being written.
checkpointed() { test -f "${2:-$TALLY_RESULTS/.tally-sink}/tally-sink-$1.checkpoint"; }

echo "it_docker: ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2> /dev/null || true)," \
  "engine $(docker version -f '{{.Server.Version}}' 2> /dev/null)"
docker_cleanup  # a run that was killed may have left its containers

# Data in the background while the image builds: 8 files, ~45 MB.
t=$(now)
mkdir -p "$TALLY_DATA"
(gawk -v dir="$TALLY_DATA" -v files=8 -v lines=2000000 -v seed=2012 -f "$here/docker/ngrams.awk" &&
  expected_ngram "$TALLY_DATA"/*.tsv > "$WORK/expected.tsv" && since "$t" > "$WORK/data.time") &
data_pid=$!
# As root, the results folder is left for Docker to make (as on a fresh checkout: root
# owns it, and the sink's entrypoint hands it to uid 1000); as anyone else it is made
# here, so that the sink writes as that user and the folder can be removed afterwards.
[ "$(id -u)" -eq 0 ] || mkdir -p "$TALLY_RESULTS"

# The base image: there where a registry is reachable or it was made before; made with
# mmdebstrap from Debian's archive (as the engine's docker import) where not.
docker_base_image
check "base image debian:bookworm-slim present" docker image inspect debian:bookworm-slim > /dev/null

tb=$(now)
compose build sink > "$WORK/build.log" 2>&1 && status=0 || status=$?
timing "image build ($(grep -c 'Using cache' "$WORK/build.log" || true) cached steps)" "$tb"
check "image builds from docker/Dockerfile" test "$status" -eq 0
if [ "$status" -ne 0 ]; then
  tail -30 "$WORK/build.log"
  finish
  exit 1
fi
wait "$data_pid" && status=0 || status=$?
check "test data and gawk's totals made" test "$status" -eq 0
echo "time: data ($(du -sh "$TALLY_DATA" | cut -f1), $(wc -l < "$WORK/expected.tsv") keys) and" \
  "gawk's totals, beside the build: $(cat "$WORK/data.time") s"

# ---- 1. up: three workers, one job ------------------------------------------------
t=$(now)
compose up -d --no-build --scale worker=3 > "$WORK/up.log" 2>&1 && status=0 || status=$?
check "compose up starts the stack" test "$status" -eq 0
[ "$status" -eq 0 ] || cat "$WORK/up.log"
vent=$(container_of ventilator)
sink=$(container_of sink)
status=$(wait_exit "$vent" 300)
timing "up and job 1 (3 workers)" "$t"
check "job 1: the ventilator exits 0" test "$status" = 0
same_file "job 1: totals equal gawk's" "$WORK/expected.tsv" "$TALLY_RESULTS/totals.tsv"
docker logs "$vent" > "$WORK/vent1.log" 2>&1
backend=$(grep -o 'reading with [a-z_]*' "$WORK/vent1.log" || echo "no backend logged")
echo "job 1: ventilator $backend (engine's default seccomp profile)"
check "job 1: the ventilator logs its I/O backend" grep -qE 'reading with (io_uring|sync)' "$WORK/vent1.log"
workers=$(docker ps -q --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=worker" | wc -l)
check "three workers run" test "$workers" -eq 3

t=$(now)
health=none
for ((i = 0; i < 60; i++)); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$sink" 2> /dev/null || echo none)
  [ "$health" = healthy ] && break
  sleep 0.5
done
timing "sink healthy" "$t"
check "the sink's healthcheck passes" test "$health" = healthy
sink_uid=$(main_uid "$sink")
worker_uid=$(main_uid "$(container_of worker)")
echo "tally-sink runs as uid $sink_uid, tally-worker as uid $worker_uid"
check "tally-sink does not run as root" test "${sink_uid:-0}" -ne 0
check "tally-worker does not run as root" test "${worker_uid:-0}" -ne 0
owner=$(stat -c %u "$TALLY_RESULTS/totals.tsv" 2> /dev/null || echo 0)
check "totals.tsv is not owned by root (uid $owner)" test "$owner" -ne 0

# ---- 2. a worker frozen with chunks, then killed, mid-job ---------------------------
rm -f "$TALLY_RESULTS/totals.tsv"
# 256K chunks (180 of them, not 48): a job long enough that the kill falls inside it.
TALLY_CHUNK_SIZE=256K compose up --no-build --no-deps --force-recreate --no-start ventilator \
  > "$WORK/up2.log" 2>&1 ||
  cat "$WORK/up2.log"
vent=$(container_of ventilator)
victim=$(docker ps -q --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=worker" | head -1)
# The sink is held (docker pause) while the new ventilator starts, so that every worker
# has connected to it before the job is accepted; the victim is frozen before that, so
# the chunks pushed to it stay in its socket buffers; killed, it never returns them.
docker pause "$sink" > /dev/null
t=$(now)
docker start "$vent" > /dev/null
sleep 1  # the workers look the new ventilator up and connect (they retry every 0.1 s)
docker pause "$victim" > /dev/null
docker unpause "$sink" > /dev/null
for ((i = 0; i < 600; i++)); do
  docker logs "$vent" 2>&1 | grep -q "accepted by" && break
  sleep 0.05
done
sleep 0.2  # chunks go out, some of them to the frozen worker
# The sink is held again while the victim is killed, so that the job cannot end before
# the kill however fast it runs (the whole job can take less than a second).
docker pause "$sink" > /dev/null
docker kill "$victim" > /dev/null
mid_job=$(docker inspect -f '{{.State.Running}}' "$vent" 2> /dev/null || echo false)
docker unpause "$sink" > /dev/null
echo "job 2: worker ${victim:0:12} frozen before the job was accepted, killed $(since "$t") s" \
  "after the ventilator started"
status=$(wait_exit "$vent" 300)
timing "job 2 (a worker killed)" "$t"
check "job 2: the ventilator exits 0" test "$status" = 0
same_file "job 2: totals equal gawk's with a worker killed" "$WORK/expected.tsv" \
  "$TALLY_RESULTS/totals.tsv"
docker logs "$vent" > "$WORK/vent2.log" 2>&1
check "job 2: the kill came mid-job (the ventilator still running)" test "$mid_job" = true
check "job 2: the ventilator saw the worker go" grep -q "a worker disconnected" "$WORK/vent2.log"
docker logs "$sink" 2>&1 | grep " done: " | tail -1 | sed 's/^/sink: /' || true

# ---- 3. docker run of the image, io_uring refused by seccomp -------------------------
network=$(project_networks | head -1)
expected_ngram "$TALLY_SOURCE_DIR"/data/sample/*.tsv > "$WORK/expected-sample.tsv"
rm -f "$TALLY_RESULTS/totals.tsv"
t=$(now)
docker run --rm --name "$plain_name" --network "$network" --network-alias ventilator \
  --security-opt "seccomp=$here/docker/seccomp-no-io-uring.json" \
  -v "$TALLY_SOURCE_DIR/data/sample:/data:ro" -e TALLY_SINK=tcp://sink:5558 \
  "$TALLY_IMAGE" tally-ventilator /data > "$WORK/vent3.log" 2>&1 && status=0 || status=$?
timing "job 3 (docker run, plain reads)" "$t"
check "job 3: the ventilator exits 0" test "$status" -eq 0
check "job 3: without io_uring it reads with plain reads" grep -q "reading with sync" "$WORK/vent3.log"
same_file "job 3: totals equal gawk's on data/sample" "$WORK/expected-sample.tsv" \
  "$TALLY_RESULTS/totals.tsv"

# ---- 4. crash recovery: the sink, then the ventilator, killed mid-job -------------------
# A longer job: the data linked RECOVERY_COPIES times (no copy made), so each key's total
# is that many times gawk's. The kills come once a third of the chunks are merged, with the
# workers paused (hold_at_third), since a job of 240 chunks can end within a second.
copies=${RECOVERY_COPIES:-5}
export TALLY_DATA=$WORK/data-x$copies
mkdir -p "$TALLY_DATA"
for ((c = 1; c <= copies; c++)); do
  for f in "$WORK"/data/*.tsv; do ln "$f" "$TALLY_DATA/copy$c-${f##*/}"; done
done
gawk -F'\t' -v k="$copies" '{printf "%s\t%d\n", $1, $2 * k}' "$WORK/expected.tsv" \
  > "$WORK/expected-x.tsv"
job1=$(sed -n -E 's/.*job ([0-9a-f]{16}) accepted by.*/\1/p' "$WORK/vent1.log" | head -1)
chunks1=$(docker logs "$sink" 2>&1 | sed -n -E "s/.*job $job1 done: ([0-9]+) chunks.*/\1/p" | tail -1)
total=$((${chunks1:-48} * copies))
third=$((total / 3))
volume=ventilator-state
echo "recovery jobs: $(du -shl "$TALLY_DATA" | cut -f1) in $((8 * copies)) files, $total chunks;" \
  "kills at $third merged"

# start_job NAME: a ventilator container made anew for the next job over $TALLY_DATA;
# sets vent and job (the job's id, once the sink has accepted it).
start_job() {
  rm -f "$TALLY_RESULTS/totals.tsv"
  compose up -d --no-build --no-deps --force-recreate ventilator > "$WORK/up-$1.log" 2>&1 ||
    cat "$WORK/up-$1.log"
  vent=$(container_of ventilator)
  volume=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/tally"}}{{.Name}}{{end}}{{end}}' \
    "$vent")
  job=$(job_of "$vent" 60)
}
# The files in the ventilator's volume (its job file while a job runs).
job_files() {
  docker run --rm -v "$volume:/var/lib/tally" --entrypoint ls "$TALLY_IMAGE" -A /var/lib/tally
}
# ends_well NAME START: the ventilator ends for good, exit 0; the sink finished the job
# that was killed (not a new one, which a ventilator run anew would have opened); the
# totals equal gawk's. Shows what the ventilator and the sink said about the recovery.
ends_well() {
  local status
  status=$(wait_final_exit "$vent" 300)
  timing "job $1" "$2"
  docker logs "$vent" > "$WORK/vent-$1.log" 2>&1
  docker logs "$sink" > "$WORK/sink-$1.log" 2>&1
  sed -n -E "/ $job (opened|restored)/,\$p" "$WORK/sink-$1.log" |
    grep -E "^[WE]:|restored|cancelled|failed|abandoned|$job done: " | sed 's/^/  sink: /' || true
  grep -E "^[WE]:|^tally-ventilator:|the sink holds|taking job|taken up" "$WORK/vent-$1.log" |
    grep -v "no worker connected" | sed 's/^/  ventilator: /' || true
  check "$1: the ventilator exits 0" test "$status" = 0
  check "$1: the sink finished job $job, the one that was killed" \
    grep -q " $job done: " "$WORK/sink-$1.log"
  same_file "$1: totals equal gawk's" "$WORK/expected-x.tsv" "$TALLY_RESULTS/totals.tsv"
}

# The running worker containers, and all of them paused or let go (docker pause).
workers_running() {
  docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=worker" --filter status=running
}
workers_paused() {
  docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=worker" --filter status=paused
}
workers_pause() { workers_running | xargs -r docker pause > /dev/null 2>&1 || true; }
workers_unpause() { workers_paused | xargs -r docker unpause > /dev/null 2>&1 || true; }
# hold_at_third: with the workers paused since before the job started, lets them run a
# tenth of a second at a time until a third of job $job's chunks are merged, and leaves
# them paused: the job stays mid-way for the kill however fast it runs (240 chunks can
# take a second).
hold_at_third() {
  local i
  for ((i = 0; i < 1200; i++)); do
    sleep 0.3  # the watch's progress lines (4 a second) catch up
    merged_at_least "$job" "$third" && return 0
    workers_unpause
    sleep 0.1
    workers_pause
  done
  return 1
}

# -- a. the sink's process killed: its restart policy starts it again
t=$(now)
workers_pause
start_job 4a
check "4a: the job is accepted" test -n "$job"
hold_at_third || true
wait_until 10 checkpointed "$job" || true
check "4a: the sink has a checkpoint of the job in results/.tally-sink" checkpointed "$job"
done_before=$(chunks_done "$job")
mid_job=$(docker inspect -f '{{.State.Running}}' "$vent" 2> /dev/null || echo false)
crash "$sink"
echo "4a: the sink's process killed at ${done_before:-0}/$total chunks merged," \
  "$(since "$t") s after the ventilator started"
wait_until 30 eval '[ "$(restarts "$sink")" -ge 1 ] && running "$sink"' || true
check "4a: Docker started the sink again (restarts: $(restarts "$sink"))" running "$sink"
workers_unpause
check "4a: the kill came mid-job (the ventilator still running)" test "$mid_job" = true
ends_well 4a "$t"
check "4a: the ventilator ran once (restarts: $(restarts "$vent"))" test "$(restarts "$vent")" = 0

# -- b. docker kill: a manual stop to Docker; the sink started again by compose
t=$(now)
workers_pause
start_job 4b
check "4b: the job is accepted" test -n "$job"
hold_at_third || true
wait_until 10 checkpointed "$job" || true
done_before=$(chunks_done "$job")
mid_job=$(docker inspect -f '{{.State.Running}}' "$vent" 2> /dev/null || echo false)
docker kill "$sink" > /dev/null
sleep 3
if running "$sink"; then
  how="by Docker's restart policy"
else
  how="by compose start sink (Docker left it stopped)"
  compose start sink > "$WORK/start-4b.log" 2>&1 || cat "$WORK/start-4b.log"
fi
echo "4b: docker kill of the sink at ${done_before:-0}/$total chunks merged; started again $how"
check "4b: the sink runs again" wait_until 30 running "$sink"
workers_unpause
check "4b: the kill came mid-job (the ventilator still running)" test "$mid_job" = true
ends_well 4b "$t"
check "4b: the ventilator ran once (restarts: $(restarts "$vent"))" test "$(restarts "$vent")" = 0

# -- c. the ventilator's process killed: started again, it resumes from its job file
t=$(now)
workers_pause
start_job 4c
check "4c: the job is accepted" test -n "$job"
hold_at_third || true
files=$(job_files | tr '\n' ' ')
check "4c: the ventilator's job file is on its volume ($volume: ${files:-empty})" test -n "$files"
done_before=$(chunks_done "$job")
mid_job=$(docker inspect -f '{{.State.Running}}' "$vent" 2> /dev/null || echo false)
crash "$vent"
workers_unpause
echo "4c: the ventilator's process killed at ${done_before:-0}/$total chunks merged," \
  "$(since "$t") s after it started"
check "4c: the kill came mid-job (the ventilator was running)" test "$mid_job" = true
ends_well 4c "$t"
check "4c: Docker started the ventilator again, once (restarts: $(restarts "$vent"))" \
  test "$(restarts "$vent")" = 1
check "4c: the ventilator's second run took job $job up again" \
  grep -q "taking job $job up again" "$WORK/vent-4c.log"
files=$(job_files | tr '\n' ' ')
check "4c: the job file is removed when the job ends (${files:-none left})" test -z "$files"

# ---- 5. two sink shards: docker/compose.shards.yaml -------------------------------------
# The same project made over by the override: `sink` becomes shard 0 (part-0.tsv,
# .tally-sink-0), `sink-1` is added as shard 1; the workers, the ventilator and the watch
# are made anew with both sinks. The parts are checked against gawk's totals without
# tally merge (their concatenation, sorted), then tally merge's file on its own.
parts() { echo "$TALLY_RESULTS/part-0.tsv" "$TALLY_RESULTS/part-1.tsv"; }
# parts_and_merge NAME EXPECTED: the parts hold different keys whose totals are
# EXPECTED's, and `run --rm merge` writes totals.tsv equal to EXPECTED.
parts_and_merge() {
  local status
  check "$1: shard 0 wrote its part" test -s "$TALLY_RESULTS/part-0.tsv"
  check "$1: shard 1 wrote its part" test -s "$TALLY_RESULTS/part-1.tsv"
  echo "$1: parts of $(wc -l < "$TALLY_RESULTS/part-0.tsv" 2> /dev/null || echo 0) and" \
    "$(wc -l < "$TALLY_RESULTS/part-1.tsv" 2> /dev/null || echo 0) keys"
  # shellcheck disable=SC2046
  cat $(parts) 2> /dev/null | sort_totals > "$WORK/parts-$1.tsv"
  same_file "$1: the parts together (no key in both) equal gawk's" "$2" "$WORK/parts-$1.tsv"
  compose_shards run --rm merge > "$WORK/merge-$1.log" 2>&1 && status=0 || status=$?
  check "$1: run --rm merge exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || tail -5 "$WORK/merge-$1.log"
  same_file "$1: tally merge's totals equal gawk's" "$2" "$TALLY_RESULTS/totals.tsv"
}
# The shard sinks' logs, and whether both finished job $job.
both_done() {
  docker logs "$sink" > "$WORK/sink0-$1.log" 2>&1
  docker logs "$sink1" > "$WORK/sink1-$1.log" 2>&1
  check "$1: shard 0's sink finished job $job" grep -q " $job done: " "$WORK/sink0-$1.log"
  check "$1: shard 1's sink finished job $job" grep -q " $job done: " "$WORK/sink1-$1.log"
}
# shellcheck disable=SC2046
clear_results() { rm -f "$TALLY_RESULTS/totals.tsv" $(parts); }

# -- a. a job over the data of 1., three workers
export TALLY_DATA=$WORK/data
clear_results
t=$(now)
compose_shards up -d --no-build --scale worker=3 > "$WORK/up5.log" 2>&1 && status=0 || status=$?
check "5a: compose up with docker/compose.shards.yaml starts the stack" test "$status" -eq 0
[ "$status" -eq 0 ] || cat "$WORK/up5.log"
vent=$(container_of ventilator)
sink=$(container_of sink)
sink1=$(container_of sink-1)
watch=$(container_of watch)
job=$(job_of "$vent" 60)
status=$(wait_final_exit "$vent" 300)
timing "5a: up and a job with 2 sink shards (3 workers)" "$t"
docker logs "$vent" > "$WORK/vent-5a.log" 2>&1
check "5a: the ventilator exits 0" test "$status" = 0
[ "$status" = 0 ] || grep -E "^[WE]:|^tally-ventilator:" "$WORK/vent-5a.log" | tail -5 || true
check "5a: the job is accepted" test -n "$job"
both_done 5a
grep -h " $job done: " "$WORK/sink0-5a.log" "$WORK/sink1-5a.log" | sed 's/^/  sink: /' || true
parts_and_merge 5a "$WORK/expected.tsv"
check "5a: tally-sink of shard 1 does not run as root" test "$(main_uid "$sink1")" -ne 0
owner=$(stat -c %u "$TALLY_RESULTS/totals.tsv" 2> /dev/null || echo 0)
check "5a: the merged totals.tsv is not owned by root (uid $owner)" test "$owner" -ne 0
docker logs "$watch" > "$WORK/watch-5a.log" 2>&1
keys=$(wc -l < "$WORK/expected.tsv")
sum=$(gawk -F'\t' '{s += $2} END {printf "%d", s}' "$WORK/expected.tsv")
grep "^$job done" "$WORK/watch-5a.log" | sed 's/^/  watch: /' || true
check "5a: the watch, given both feeds, printed the job's end: both shards', $keys keys, sum $sum" \
  grep -q "^$job done (2 shards): $keys keys, sum $sum, " "$WORK/watch-5a.log"

# -- b. shard 1's sink killed mid-job: started again by Docker, from its own checkpoint
export TALLY_DATA=$WORK/data-x$copies
clear_results
t=$(now)
# Held mid-way as in 4.: the workers paused from before the job starts, let run a tenth
# of a second, and paused again until shard 1's sink is killed.
workers_pause
compose_shards up -d --no-build --no-deps --force-recreate ventilator > "$WORK/up-5b.log" 2>&1 ||
  cat "$WORK/up-5b.log"
vent=$(container_of ventilator)
job=$(job_of "$vent" 60)
check "5b: the job is accepted" test -n "$job"
sleep 0.5
workers_unpause
sleep 0.1
workers_pause
wait_until 120 checkpointed "$job" "$TALLY_RESULTS/.tally-sink-1" || true
check "5b: shard 1 has a checkpoint of the job in results/.tally-sink-1" \
  checkpointed "$job" "$TALLY_RESULTS/.tally-sink-1"
mid_job=$(docker inspect -f '{{.State.Running}}' "$vent" 2> /dev/null || echo false)
crash "$sink1"
workers_unpause
echo "5b: shard 1's sink killed $(since "$t") s after the ventilator started"
wait_until 30 eval '[ "$(restarts "$sink1")" -ge 1 ] && running "$sink1"' || true
check "5b: Docker started shard 1's sink again (restarts: $(restarts "$sink1"))" running "$sink1"
check "5b: the kill came mid-job (the ventilator still running)" test "$mid_job" = true
status=$(wait_final_exit "$vent" 300)
timing "5b: a job with shard 1 killed" "$t"
check "5b: the ventilator exits 0" test "$status" = 0
both_done 5b
sed -n -E "/ $job (opened|restored)/,\$p" "$WORK/sink1-5b.log" |
  grep -E "^[WE]:|restored|cancelled|failed|$job done: " | sed 's/^/  sink-1: /' || true
check "5b: shard 1's sink took its checkpoint of the job back" \
  grep -q "job $job restored" "$WORK/sink1-5b.log"
parts_and_merge 5b "$WORK/expected-x.tsv"

# -- c, d. wrong sink lists, from a `docker run` ventilator over data/sample (as in 3.):
# no chunk can be merged, so the job fails after 2 attempts of 1 s; no part is written.
# wrong_list NAME SINKS: runs that ventilator with TALLY_SINK=SINKS; sets status.
wrong_list() {
  t=$(now)
  docker run --rm --name "$plain_name" --network "$network" --network-alias ventilator \
    -v "$TALLY_SOURCE_DIR/data/sample:/data:ro" -e TALLY_SINK="$2" \
    -e TALLY_RETRY=1 -e TALLY_MAX_ATTEMPTS=2 \
    "$TALLY_IMAGE" tally-ventilator /data > "$WORK/vent-$1.log" 2>&1 && status=0 || status=$?
  timing "$1: a job whose ventilator has --sink $2" "$t"
  grep -E "^[WE]:|^tally-ventilator:" "$WORK/vent-$1.log" | tail -2 | cut -c1-400 |
    sed 's/^/  ventilator: /' || true
  check "$1: the ventilator exits 1" test "$status" -eq 1
  check "$1: shard 0's part is left as it was" cmp -s "$WORK/part-0.before" "$TALLY_RESULTS/part-0.tsv"
  check "$1: shard 1's part is left as it was" cmp -s "$WORK/part-1.before" "$TALLY_RESULTS/part-1.tsv"
}
network=$(project_networks | head -1)
cp "$TALLY_RESULTS/part-0.tsv" "$WORK/part-0.before" 2> /dev/null || : > "$WORK/part-0.before"
cp "$TALLY_RESULTS/part-1.tsv" "$WORK/part-1.before" 2> /dev/null || : > "$WORK/part-1.before"
# -- c. the ventilator has one sink, the workers two: the workers leave its chunks
wrong_list 5c tcp://sink:5558
for w in $(docker ps -aq --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=worker"); do
  docker logs "$w" 2>&1
done > "$WORK/workers-5c.log"
check "5c: the workers say the job has 1 sink shard and they were started with 2" \
  grep -q "has 1 sink shard, but this worker was started with 2" "$WORK/workers-5c.log"
# -- d. the ventilator has both sinks in the other order: each refuses the other's parts
wrong_list 5d tcp://sink-1:5558,tcp://sink:5558
check "5d: the ventilator names the --sink list as a likely cause" \
  grep -q "another --sink list" "$WORK/vent-5d.log"
{ docker logs "$sink" 2>&1; docker logs "$sink1" 2>&1; } > "$WORK/sinks-5d.log"
check "5d: the sinks say the parts came for another shard" \
  grep -q "names the shards in another order" "$WORK/sinks-5d.log"

# ---- 6. down ---------------------------------------------------------------------------
t=$(now)
compose down -v --remove-orphans > "$WORK/down.log" 2>&1 && status=0 || status=$?
timing "down" "$t"
check "compose down succeeds" test "$status" -eq 0
check "down leaves no container of the project" test -z "$(project_containers)"
check "down leaves no network of the project" test -z "$(project_networks)"
check "down -v leaves no volume of the project" test -z "$(project_volumes)"
finish
