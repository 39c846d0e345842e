/*  tl_jobspec: what a job counts and how its input is read — the options that
    tally-ventilator takes and that `tally run` passes on to it. Declared once here,
    so both programs offer the same names, defaults, environment variables, help and
    checks, and `tally run` forwards exactly what it was given.                      */

#ifndef TL_JOBSPEC_H_INCLUDED
#define TL_JOBSPEC_H_INCLUDED

#include "tl_bar.h"
#include "tl_format.h"
#include "tl_opts.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TL_IO_AUTO = 0,  //  io_uring when the kernel lets us, else sync
    TL_IO_URING,     //  io_uring only (fails when unavailable)
    TL_IO_SYNC       //  plain read(2)
} tl_io_t;

typedef struct {
    //  As given (tl_jobspec_defaults, then the environment and the command line)
    const char *format_name;    //  --format
    const char *io_name;        //  --io
    const char *progress_name;  //  --progress
    size_t chunk_size;          //  --chunk-size: bytes of whole lines per chunk
    size_t max_line;            //  --max-line: longer lines are skipped and counted
    long window;                //  --window: chunks in flight, unacknowledged
    long year_min, year_max;    //  --year-min, --year-max
    bool skip_pos;              //  --skip-pos
    bool strict;                //  --strict: a malformed line fails the job
    double retry;               //  --retry: least seconds before a resend
    long max_attempts;          //  --max-attempts: failed attempts that fail a chunk
    double timeout;             //  --timeout: seconds of sink silence that fail the job
    bool verbose;               //  --verbose
    //  Derived by tl_jobspec_check
    tl_format_t format;      //  Requested format (AUTO: per file)
    tl_filter_t filter;      //  Filters the workers apply
    tl_io_t io;              //  Reader backend
    tl_bar_mode_t progress;  //  Progress display
} tl_jobspec_t;

//  The defaults: auto format, io and progress, 1M chunks, 16M lines, 64 in flight,
//  no filters, resend after 5 s, 5 attempts per chunk, give up after 60 s of silence.
tl_jobspec_t tl_jobspec_defaults (void);

//  The job's options as tl_opts table entries over a tl_jobspec_t, in one list.
#define TL_JOBSPEC_OPTS(spec)                                                                      \
    TL_OPT ("format", 'f', "TALLY_FORMAT", TL_OPT_STR, &(spec).format_name, "FORMAT",              \
            "auto, ngram2009, ngram2012, ngram2020 or text (default auto: per file)", 0, 0),       \
        TL_OPT ("chunk-size", 'c', "TALLY_CHUNK_SIZE", TL_OPT_SIZE, &(spec).chunk_size, "BYTES",   \
                "Bytes of whole lines per chunk (default 1M)", 1, 64L << 20),                      \
        TL_OPT ("max-line", 0, "TALLY_MAX_LINE", TL_OPT_SIZE, &(spec).max_line, "BYTES",           \
                "Longer lines are skipped and counted as bad (default 16M)", 1, 128L << 20),       \
        TL_OPT ("window", 0, "TALLY_WINDOW", TL_OPT_INT, &(spec).window, "N",                      \
                "Chunks in flight, unacknowledged, at most (default 64)", 1, 65536),               \
        TL_OPT ("io", 0, "TALLY_IO", TL_OPT_STR, &(spec).io_name, "BACKEND",                       \
                "auto, uring or sync (default auto: io_uring where the kernel allows)", 0, 0),     \
        TL_OPT ("year-min", 0, "TALLY_YEAR_MIN", TL_OPT_INT, &(spec).year_min, "YEAR",             \
                "Count only years from YEAR on", 0, UINT32_MAX),                                   \
        TL_OPT ("year-max", 0, "TALLY_YEAR_MAX", TL_OPT_INT, &(spec).year_max, "YEAR",             \
                "Count only years up to YEAR", 0, UINT32_MAX),                                     \
        TL_OPT ("skip-pos", 0, "TALLY_SKIP_POS", TL_OPT_FLAG, &(spec).skip_pos, NULL,              \
                "Leave out POS-tagged keys (word_NOUN): their untagged row holds the total", 0,    \
                0),                                                                                \
        TL_OPT ("strict", 0, "TALLY_STRICT", TL_OPT_FLAG, &(spec).strict, NULL,                    \
                "A malformed line fails the job (default: skipped and counted)", 0, 0),            \
        TL_OPT ("retry", 0, "TALLY_RETRY", TL_OPT_REAL, &(spec).retry, "SECONDS",                  \
                "Least time before an unacknowledged chunk is sent again (default 5)", 0, 0),      \
        TL_OPT ("max-attempts", 0, "TALLY_MAX_ATTEMPTS", TL_OPT_INT, &(spec).max_attempts, "N",    \
                "Fail the job when a chunk is still not merged after N attempts (default 5)", 1,   \
                1000),                                                                             \
        TL_OPT ("timeout", 0, "TALLY_TIMEOUT", TL_OPT_REAL, &(spec).timeout, "SECONDS",            \
                "Give up when the sink is silent this long (default 60)", 0, 0),                   \
        TL_OPT ("progress", 0, "TALLY_PROGRESS", TL_OPT_STR, &(spec).progress_name, "MODE",        \
                "auto, bar, log or none (default auto: a bar on a terminal)", 0, 0),               \
        TL_OPT ("verbose", 'v', "TALLY_VERBOSE", TL_OPT_FLAG, &(spec).verbose, NULL,               \
                "Also log each file's format and the job's steps", 0, 0)

//  Checks the values together and derives format, filter, io and progress; on a bad
//  value prints the reason as cli's program and exits 2 (tl_cli_usage_error).
void tl_jobspec_check (const tl_cli_t *cli, tl_jobspec_t *spec);

//  True when opt is one of spec's entries (it sets a field of spec).
bool tl_jobspec_owns (const tl_jobspec_t *spec, const tl_opt_t *opt);

#endif
