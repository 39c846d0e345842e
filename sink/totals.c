/*  tl_totals: writes a job's sorted totals to its file atomically (see totals.h).   */

#include "totals.h"
#include "replace.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

int tl_totals_write (const char *path, const tl_entry_t *entries, size_t n)
{
    assert (path);
    assert (entries || n == 0);
    tl_replace_t *replace = tl_replace_new (path, 0666);
    if (!replace) return -1;
    FILE *file = tl_replace_file (replace);
    //  One job's totals can be gigabytes: write them in large blocks. The sink writes
    //  one file at a time, so one buffer serves every call.
    static char buffer[1 << 20];
    setvbuf (file, buffer, _IOFBF, sizeof buffer);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        ok = fwrite (entries[i].key, 1, entries[i].len, file) == entries[i].len &&
             fprintf (file, "\t%llu\n", (unsigned long long)entries[i].count) > 0;
    }
    if (!ok) {
        tl_replace_destroy (&replace);
        return -1;
    }
    return tl_replace_commit (&replace, NULL);
}

int tl_totals_check (const char *path)
{
    assert (path);
    return tl_replace_check (path);
}
