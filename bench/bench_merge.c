/*  bench_merge: how fast the sink can reduce, in partial entries per second.

    Prepares the partials that workers would send for the given files (each cut into
    line-aligned 1 MiB chunks as the ventilator cuts them, mapped with tl_map, encoded
    with tl_map_encode), then times what the sink does with them: tl_map_merge of every
    partial, in order, into one fresh totals table, and at the end the sort of the
    totals (tl_table_sorted) that precedes writing the totals file. Untimed: reading,
    mapping, encoding. Prints, never asserts.

    Usage: bench_merge [-r RUNS] [-m MB] FILE...   (-m: read at most MB of each file) */

#include "tl_clock.h"
#include "tl_mapper.h"
#include "tl_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CHUNK (1u << 20)  //  The ventilator's default chunk size

//  One encoded partial, as the sink receives it in PARTIAL frame 2.
typedef struct {
    char *data;   //  msgpack map
    size_t size;  //  Its bytes
} s_partial_t;

//  Every partial of the input.
typedef struct {
    s_partial_t *items;  //  Partials in chunk order
    size_t count;        //  How many
    size_t cap;          //  Allocated
    uint64_t entries;    //  Map entries over all partials
    uint64_t bytes;      //  Encoded bytes over all partials
    uint64_t input;      //  Input bytes they stand for
    uint64_t lines;      //  Input lines
} s_partials_t;

static void s_die (const char *what)
{
    fprintf (stderr, "bench_merge: %s: %s\n", what, errno ? strerror (errno) : "failed");
    exit (1);
}

//  Maps one chunk and keeps its encoded partial.
static void s_add_chunk (s_partials_t *all, tl_table_t *table, tl_format_t format, const char *data,
                         size_t size)
{
    tl_map_stats_t stats = {0};
    tl_table_clear (table);
    if (tl_map (table, format, &TL_FILTER_NONE, data, size, &stats) != 0) s_die ("tl_map");
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    if (tl_map_encode (table, &buf) != 0) s_die ("tl_map_encode");
    if (all->count == all->cap) {
        all->cap = all->cap ? all->cap * 2 : 1024;
        all->items = realloc (all->items, all->cap * sizeof *all->items);
        if (!all->items) s_die ("realloc");
    }
    all->items[all->count++] = (s_partial_t){buf.data, buf.size};
    all->entries += tl_table_size (table);
    all->bytes += buf.size;
    all->input += size;
    all->lines += stats.lines;
}

//  Reads up to limit bytes of a file and cuts them into chunks of whole lines.
static void s_load_file (s_partials_t *all, tl_table_t *table, const char *path, uint64_t limit)
{
    int fd = open (path, O_RDONLY);
    if (fd < 0) s_die (path);
    size_t cap = 64u << 20;
    char *buf = malloc (cap);
    if (!buf) s_die ("malloc");
    size_t held = 0;
    uint64_t taken = 0;
    tl_format_t format = TL_FORMAT_AUTO;
    bool eof = false;
    while (!eof || held > 0) {
        if (!eof) {
            ssize_t got = read (fd, buf + held, cap - held);
            if (got < 0) s_die (path);
            eof = got == 0;
            held += (size_t)got;
        }
        if (format == TL_FORMAT_AUTO) format = tl_format_detect (buf, held < 65536 ? held : 65536);
        size_t at = 0;
        //  Whole chunks while more can come; the rest too at the end of the file
        while (at < held && (held - at >= S_CHUNK || eof) && taken < limit) {
            size_t stop = held - at > S_CHUNK ? at + S_CHUNK : held;
            if (stop < held) {
                const char *lf = memrchr (buf + at, '\n', stop - at);
                if (!lf) s_die ("a line longer than a chunk");
                stop = (size_t)(lf - buf) + 1;
            }
            s_add_chunk (all, table, format, buf + at, stop - at);
            taken += stop - at;
            at = stop;
        }
        memmove (buf, buf + at, held - at);
        held -= at;
        if (taken >= limit) break;
    }
    free (buf);
    close (fd);
}

static int s_compare_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main (int argc, char *argv[])
{
    int runs = 3;
    double megabytes = 0;
    int opt;
    while ((opt = getopt (argc, argv, "r:m:h")) != -1) {
        if (opt == 'r' && atoi (optarg) > 0)
            runs = atoi (optarg);
        else if (opt == 'm' && atof (optarg) > 0)
            megabytes = atof (optarg);
        else {
            fprintf (stderr, "usage: bench_merge [-r RUNS] [-m MB] FILE...\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf (stderr, "usage: bench_merge [-r RUNS] [-m MB] FILE...\n");
        return 2;
    }
    uint64_t limit = megabytes > 0 ? (uint64_t)(megabytes * 1e6) : UINT64_MAX;
    s_partials_t all = {0};
    tl_table_t *scratch = tl_table_new (1 << 16);
    for (int i = optind; i < argc; i++)
        s_load_file (&all, scratch, argv[i], limit);
    tl_table_destroy (&scratch);
    printf ("bench_merge: %zu partials of %.1f MB input (%llu lines): %llu entries, %.1f MB "
            "encoded, %d runs\n",
            all.count, (double)all.input / 1e6, (unsigned long long)all.lines,
            (unsigned long long)all.entries, (double)all.bytes / 1e6, runs);

    double *merge_s = calloc ((size_t)runs, sizeof *merge_s);
    double *sort_s = calloc ((size_t)runs, sizeof *sort_s);
    size_t keys = 0;
    for (int run = 0; run < runs; run++) {
        tl_table_t *totals = tl_table_new (1 << 16);  //  As the sink opens a job
        double start = tl_now ();
        for (size_t i = 0; i < all.count; i++) {
            uint64_t entries;
            if (tl_map_merge (all.items[i].data, all.items[i].size, totals, &entries) < 0)
                s_die ("tl_map_merge");
        }
        double merged = tl_now ();
        size_t n = 0;
        tl_entry_t *sorted = tl_table_sorted (totals, &n);
        double finished = tl_now ();
        tl_table_entries_free (sorted);
        keys = tl_table_size (totals);
        merge_s[run] = merged - start;
        sort_s[run] = finished - merged;
        printf ("  run %d: merge %.3f s (%.2f M entries/s), sort of %zu keys %.3f s, table "
                "%.1f MB\n",
                run + 1, merge_s[run], (double)all.entries / merge_s[run] / 1e6, keys, sort_s[run],
                (double)tl_table_memory (totals) / 1e6);
        tl_table_destroy (&totals);
    }
    qsort (merge_s, (size_t)runs, sizeof *merge_s, s_compare_double);
    qsort (sort_s, (size_t)runs, sizeof *sort_s, s_compare_double);
    double merge = merge_s[runs / 2];
    printf ("median: merge %.3f s = %.2f M entries/s = %.0f partials/s = %.0f MB/s of input; "
            "sort %.3f s; %zu keys\n",
            merge, (double)all.entries / merge / 1e6, (double)all.count / merge,
            (double)all.input / 1e6 / merge, sort_s[runs / 2], keys);
    for (size_t i = 0; i < all.count; i++)
        free (all.items[i].data);
    free (all.items);
    free (merge_s);
    free (sort_s);
    return 0;
}
