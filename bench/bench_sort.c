/*  bench_sort: time of the sink's sort of its totals (tl_table_sorted), on the keys of
    real inputs. Reads files in the Google Books 2012 format (key TAB year TAB count
    ...), adds each line's key and count into one table, then sorts a copy of the totals
    RUNS times and prints each time and the median. Checks that each sort's order is
    tl_entry_compare's. Untimed: reading the files and filling the table.

    Usage: bench_sort [-r RUNS] FILE...
    bench/cardinality's or bench/peers' 2-gram input (46 M keys) is the case it was
    written for: most totals are small and alike, so the key bytes decide most ties.   */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tl_clock.h"
#include "tl_table.h"

#define RUNS_MAX 32

static int s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Adds every line of path whose third field is a count. Returns -1 on error.
static int s_load (tl_table_t *table, const char *path, size_t *lines)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        perror (path);
        return -1;
    }
    char *line = NULL;
    size_t room = 0;
    ssize_t len;
    while ((len = getline (&line, &room, file)) > 0) {
        char *tab = memchr (line, '\t', (size_t)len);
        if (!tab) continue;
        char *year_end = memchr (tab + 1, '\t', (size_t)(line + len - tab - 1));
        if (!year_end) continue;
        unsigned long long count = strtoull (year_end + 1, NULL, 10);
        if (tl_table_add (table, line, (size_t)(tab - line), count) != 0) {
            fprintf (stderr, "bench_sort: out of memory\n");
            free (line);
            fclose (file);
            return -1;
        }
        (*lines)++;
    }
    free (line);
    fclose (file);
    return 0;
}

int main (int argc, char **argv)
{
    int runs = 5, opt;
    while ((opt = getopt (argc, argv, "r:h")) != -1) {
        if (opt == 'r')
            runs = atoi (optarg);
        else {
            fprintf (stderr, "usage: bench_sort [-r RUNS] FILE...\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind == argc || runs < 1 || runs > RUNS_MAX) {
        fprintf (stderr, "usage: bench_sort [-r RUNS (1-%d)] FILE...\n", RUNS_MAX);
        return 2;
    }
    tl_table_t *table = tl_table_new (0);
    if (!table) return 1;
    size_t lines = 0;
    double start = tl_now ();
    for (int i = optind; i < argc; i++)
        if (s_load (table, argv[i], &lines) != 0) return 1;
    printf ("bench_sort: %zu lines, %zu keys, loaded in %.2f s\n", lines, tl_table_size (table),
            tl_now () - start);
    double times[RUNS_MAX];
    for (int run = 0; run < runs; run++) {
        size_t n;
        start = tl_now ();
        tl_entry_t *sorted = tl_table_sorted (table, &n);
        times[run] = tl_now () - start;
        if (!sorted && tl_table_size (table) > 0) {
            fprintf (stderr, "bench_sort: out of memory\n");
            return 1;
        }
        size_t wrong = 0;
        for (size_t i = 1; i < n; i++)
            wrong += tl_entry_compare (&sorted[i - 1], &sorted[i]) >= 0;
        tl_table_entries_free (sorted);
        printf ("    sort %d: %zu entries in %.3f s%s\n", run + 1, n, times[run],
                wrong ? " (OUT OF ORDER)" : "");
        if (wrong) return 1;
    }
    qsort (times, (size_t)runs, sizeof times[0], s_cmp_double);
    printf ("bench_sort: median %.3f s over %d runs\n", times[runs / 2], runs);
    tl_table_destroy (&table);
    return 0;
}
