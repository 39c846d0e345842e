# bench/lib.sh: what bench/run and bench/collide share, sourced by both: messages, building
# this tree's programs, and building another revision's tally programs to compare with.
# Defines functions only. Each script sets ROOT (the source tree) and BUILD (its build
# folder) before calling them.

say() { printf '%s\n' "$*" >&2; }
die() { say "bench/${0##*/}: $*"; exit 1; }

# bench_build PROGRAM...: builds the targets in Release into BUILD (skipped when
# BENCH_NO_BUILD=1), then checks that each is in BUILD/bin.
bench_build() {
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        say "== building into $BUILD (Release)"
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > "$BUILD.configure.log" 2>&1 ||
            die "cmake configure failed: see $BUILD.configure.log"
        cmake --build "$BUILD" -j"$(nproc)" --target "$@" > "$BUILD.build.log" 2>&1 ||
            die "build failed: see $BUILD.build.log"
    fi
    local program
    for program in "$@"; do
        [[ -x $BUILD/bin/$program ]] || die "$BUILD/bin/$program missing (build first)"
    done
}

# bench_baseline REVISION: another revision's programs, built from its own sources (git
# archive) into BUILD-base-REV once, so a change can be compared with what it changed in
# the same run on the same files. Sets BASE_REV (the short commit) and BASE_BIN.
bench_baseline() {
    BASE_REV=$(git -C "$ROOT" rev-parse --short "$1^{commit}" 2> /dev/null) ||
        die "BENCH_BASELINE=$1 is not a revision of $ROOT"
    local dir=$BUILD-base-$BASE_REV
    BASE_BIN=$dir/build/bin
    [[ -x $BASE_BIN/tally ]] && return
    say "== building the baseline $1 ($BASE_REV) into $dir"
    rm -rf "$dir" && mkdir -p "$dir/src"
    git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$dir/src" || die "git archive failed"
    cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DTALLY_TESTS=OFF \
        > "$BUILD.base.log" 2>&1 &&
        cmake --build "$dir/build" -j"$(nproc)" --target tally tally-sink tally-worker \
            tally-ventilator >> "$BUILD.base.log" 2>&1 ||
        die "baseline build failed: see $BUILD.base.log"
}
