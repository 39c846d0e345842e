/*  tl_totals: writes a job's sorted totals to its file atomically (see totals.h).   */

#include "totals.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int tl_totals_write (const char *path, const tl_entry_t *entries, size_t n)
{
    assert (path);
    assert (entries || n == 0);
    char *temp;
    if (asprintf (&temp, "%s.tmp.%d", path, (int)getpid ()) < 0) return -1;
    FILE *file = fopen (temp, "w");
    if (!file) {
        free (temp);
        return -1;
    }
    //  One job's totals can be gigabytes: write them in large blocks. The sink writes
    //  one file at a time, so one buffer serves every call.
    static char buffer[1 << 20];
    setvbuf (file, buffer, _IOFBF, sizeof buffer);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        ok = fwrite (entries[i].key, 1, entries[i].len, file) == entries[i].len &&
             fprintf (file, "\t%llu\n", (unsigned long long)entries[i].count) > 0;
    }
    ok = ok && fflush (file) == 0 && fsync (fileno (file)) == 0;
    int saved = errno;
    ok = fclose (file) == 0 && ok;
    if (ok && rename (temp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) unlink (temp);
    free (temp);
    errno = saved;
    return ok ? 0 : -1;
}
