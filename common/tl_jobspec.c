/*  tl_jobspec: the options of a job, checked once for every program that takes them.  */

#include "tl_jobspec.h"

#include <string.h>

tl_jobspec_t tl_jobspec_defaults (void)
{
    return (tl_jobspec_t){.format_name = "auto",
                          .io_name = "auto",
                          .progress_name = "auto",
                          .chunk_size = 1 << 20,
                          .max_line = 16 << 20,
                          .window = 64,
                          .year_min = 0,
                          .year_max = UINT32_MAX,
                          .retry = 5,
                          .max_attempts = 5,
                          .timeout = 60};
}

static int s_io_parse (const char *name, tl_io_t *io)
{
    if (strcmp (name, "auto") == 0)
        *io = TL_IO_AUTO;
    else if (strcmp (name, "uring") == 0 || strcmp (name, "io_uring") == 0)
        *io = TL_IO_URING;
    else if (strcmp (name, "sync") == 0)
        *io = TL_IO_SYNC;
    else
        return -1;
    return 0;
}

void tl_jobspec_check (const tl_cli_t *cli, tl_jobspec_t *spec)
{
    if (tl_format_parse (spec->format_name, &spec->format) != 0)
        tl_cli_usage_error (cli, "unknown format '%s'", spec->format_name);
    if (tl_bar_mode_parse (spec->progress_name, &spec->progress) != 0)
        tl_cli_usage_error (cli, "unknown progress mode '%s'", spec->progress_name);
    if (s_io_parse (spec->io_name, &spec->io) != 0)
        tl_cli_usage_error (cli, "unknown I/O backend '%s' (auto, uring or sync)", spec->io_name);
    //  A line may be longer than a chunk (the chunk grows to hold it), but not tiny.
    if (spec->max_line < spec->chunk_size && spec->max_line < 4096)
        tl_cli_usage_error (cli, "--max-line must be at least 4K");
    if (spec->year_min > spec->year_max) tl_cli_usage_error (cli, "--year-min is after --year-max");
    if (!(spec->retry > 0) || spec->retry > 86400)
        tl_cli_usage_error (cli, "--retry must be above 0 and at most 86400 seconds");
    if (!(spec->timeout > 0) || spec->timeout > 86400 * 7)
        tl_cli_usage_error (cli, "--timeout must be above 0 and at most 604800 seconds");
    spec->filter =
        (tl_filter_t){(uint32_t)spec->year_min, (uint32_t)spec->year_max, spec->skip_pos};
}

bool tl_jobspec_owns (const tl_jobspec_t *spec, const tl_opt_t *opt)
{
    const char *field = (const char *)opt->value, *start = (const char *)spec;
    return field >= start && field < start + sizeof *spec;
}
