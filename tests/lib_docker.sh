# Shared helpers of the Docker tests (tests/it_docker.sh, tests/it_swarm.sh), sourced
# after tests/lib.sh.

# docker_skip NAME REASON: prints why test NAME is skipped and exits 0.
docker_skip() {
  echo "$1: skipped: $2"
  exit 0
}

# docker_require_engine NAME: skips test NAME (exit 0, the reason printed) in the
# sanitized variant and where no Docker engine answers.
docker_require_engine() {
  if [ "${TALLY_VARIANT:-}" = sanitize ]; then
    docker_skip "$1" "the image is a Release build of its own, the same in both variants; the plain variant runs this test"
  fi
  command -v docker > /dev/null || docker_skip "$1" "no docker command on this machine"
  if ! docker info > "$WORK/docker-info" 2>&1; then
    docker_skip "$1" "no Docker engine answers: $(grep -m1 -iE 'cannot|error|denied' "$WORK/docker-info" ||
      echo 'docker info failed')"
  fi
}

# docker_base_image: makes sure the image debian:bookworm-slim, which docker/Dockerfile
# builds on, is there: there where a registry is reachable or it was made before; made
# with mmdebstrap from Debian's archive (as the engine's docker import) where not
# (mmdebstrap installed with apt-get when missing). Prints the time it took when it made
# it. The caller checks that the image is present.
docker_base_image() {
  local t
  docker image inspect debian:bookworm-slim > /dev/null 2>&1 && return 0
  docker pull -q debian:bookworm-slim > /dev/null 2>&1 && return 0
  t=$EPOCHREALTIME
  if ! command -v mmdebstrap > /dev/null; then
    apt-get update -qq > /dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
      > "$WORK/mmdebstrap-install.log" 2>&1 || true
  fi
  if ! mmdebstrap --variant=minbase bookworm - 2> "$WORK/mmdebstrap.log" |
    docker import -c 'CMD ["bash"]' - debian:bookworm-slim > /dev/null; then
    tail -5 "$WORK/mmdebstrap.log"
  fi
  echo "time: base image debian:bookworm-slim made with mmdebstrap:" \
    "$(gawk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}') s"
}
