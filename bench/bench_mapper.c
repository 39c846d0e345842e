/*  bench_mapper: throughput of tl_map on one core, in the worker's pattern (line-aligned
    1 MiB chunks, one table cleared before each chunk). Maps the files given, or ~200 MB
    of generated sample-shaped ngram2012 data, 5 times, and prints the median MB/s and
    lines/s. Prints, never asserts.

    Usage: bench_mapper [-f FORMAT] [-s MB] [-r RUNS] [FILE...]                       */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tl_mapper.h"

#define S_CHUNK (1u << 20)  //  Chunk size the ventilator sends

//  A growable byte buffer holding the whole input.
typedef struct {
    char *data;   //  Bytes
    size_t size;  //  Bytes used
    size_t cap;   //  Bytes allocated
} s_buf_t;

static void s_buf_reserve (s_buf_t *buf, size_t more)
{
    if (buf->size + more <= buf->cap) return;
    size_t cap = buf->cap ? buf->cap : 1 << 20;
    while (cap < buf->size + more)
        cap *= 2;
    buf->data = realloc (buf->data, cap);
    if (!buf->data) {
        fprintf (stderr, "bench_mapper: out of memory\n");
        exit (1);
    }
    buf->cap = cap;
}

static void s_buf_load (s_buf_t *buf, const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        perror (path);
        exit (1);
    }
    size_t got;
    do {
        s_buf_reserve (buf, 1 << 20);
        got = fread (buf->data + buf->size, 1, buf->cap - buf->size, file);
        buf->size += got;
    } while (got > 0);
    fclose (file);
    //  Files are mapped back to back: keep each one's last line whole
    if (buf->size > 0 && buf->data[buf->size - 1] != '\n') {
        s_buf_reserve (buf, 1);
        buf->data[buf->size++] = '\n';
    }
}

//  --------------------------------------------------------------------------------------
//  Generated data shaped like the 2012 1-grams of data/sample: keys of 2 to 24 bytes
//  (mean ~9), 60% POS-tagged, each on ~50 consecutive lines (one per year, up to 2008),
//  counts with a heavy (Pareto) tail.

static uint64_t s_rng = 0x9E3779B97F4A7C15u;

static uint64_t s_random (void)
{
    //  xorshift64*: fast, fixed seed, so every run maps the same bytes
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 0x2545F4914F6CDD1Du;
}

static double s_uniform (void)
{
    return (double)(s_random () >> 11) * (1.0 / 9007199254740992.0);
}

static char *s_put_u64 (char *p, uint64_t value)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        *p++ = digits[--n];
    return p;
}

static void s_generate (s_buf_t *buf, size_t target)
{
    //  Key lengths of the sample's distinct keys (length 2 to 24)
    static const unsigned length_weight[] = {4,   111, 421, 424, 386, 399, 508, 592,
                                             465, 459, 355, 268, 172, 142, 57,  54,
                                             30,  12,  4,   6,   4,   2,   2};
    static const char *tags[] = {"_NOUN", "_VERB", "_ADJ", "_ADV", "_NUM", "_X"};
    unsigned weight_total = 0;
    for (size_t i = 0; i < sizeof length_weight / sizeof length_weight[0]; i++)
        weight_total += length_weight[i];

    while (buf->size < target) {
        char key[64];
        unsigned pick = (unsigned)(s_random () % weight_total);
        size_t len = 2;
        for (size_t i = 0; pick >= length_weight[i]; i++) {
            pick -= length_weight[i];
            len++;
        }
        for (size_t i = 0; i < len; i++)
            key[i] = (char)('a' + s_random () % 26);
        if (len > 6 && s_random () % 10 < 6) {
            const char *tag = tags[s_random () % (sizeof tags / sizeof tags[0])];
            memcpy (key + len - strlen (tag), tag, strlen (tag));
        }
        double u = s_uniform ();
        unsigned years = 1 + (unsigned)(160 * u * u);
        double base = 3.0 / (0.001 + s_uniform ());
        s_buf_reserve (buf, years * (len + 64));
        for (unsigned y = 2009 - years; y < 2009; y++) {
            uint64_t count = 1 + (uint64_t)(base * s_uniform () * 2);
            char *p = buf->data + buf->size;
            memcpy (p, key, len);
            p += len;
            *p++ = '\t';
            p = s_put_u64 (p, y);
            *p++ = '\t';
            p = s_put_u64 (p, count);
            *p++ = '\t';
            p = s_put_u64 (p, 1 + count / (2 + s_random () % 4));
            *p++ = '\n';
            buf->size = (size_t)(p - buf->data);
        }
    }
}

//  --------------------------------------------------------------------------------------

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int s_compare_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Line-aligned chunk ends, as the ventilator cuts them.
static size_t *s_cut_chunks (const char *data, size_t size, size_t *chunks)
{
    size_t *ends = malloc ((size / (S_CHUNK / 2) + 2) * sizeof *ends);
    size_t n = 0, at = 0;
    while (at < size) {
        size_t stop = at + S_CHUNK;
        if (stop >= size)
            stop = size;
        else {
            const char *lf = memrchr (data + at, '\n', stop - at);
            stop = lf ? (size_t)(lf - data) + 1 : stop;
        }
        ends[n++] = stop;
        at = stop;
    }
    *chunks = n;
    return ends;
}

int main (int argc, char *argv[])
{
    tl_format_t format = TL_FORMAT_AUTO;
    size_t megabytes = 200;
    int runs = 5;
    int opt;
    while ((opt = getopt (argc, argv, "f:s:r:h")) != -1) {
        if (opt == 'f' && tl_format_parse (optarg, &format) == 0) continue;
        if (opt == 's' && atol (optarg) > 0)
            megabytes = (size_t)atol (optarg);
        else if (opt == 'r' && atoi (optarg) > 0)
            runs = atoi (optarg);
        else {
            fprintf (stderr, "usage: %s [-f FORMAT] [-s MB] [-r RUNS] [FILE...]\n", argv[0]);
            return 1;
        }
    }

    s_buf_t buf = {0};
    if (optind < argc)
        for (int i = optind; i < argc; i++)
            s_buf_load (&buf, argv[i]);
    else {
        s_generate (&buf, megabytes * 1000000);
        if (format == TL_FORMAT_AUTO) format = TL_FORMAT_NGRAM2012;
    }
    if (format == TL_FORMAT_AUTO)
        format = tl_format_detect (buf.data, buf.size < 65536 ? buf.size : 65536);

    size_t chunks;
    size_t *ends = s_cut_chunks (buf.data, buf.size, &chunks);
    tl_table_t *table = tl_table_new (0);
    double *mbps = malloc ((size_t)runs * sizeof *mbps);
    double *lps = malloc ((size_t)runs * sizeof *lps);
    tl_map_stats_t stats = {0};
    size_t keys = 0;
    printf ("bench_mapper: %s, %.1f MB in %zu chunks of <= 1 MiB, %d runs\n",
            tl_format_name (format), buf.size / 1e6, chunks, runs);
    for (int run = 0; run < runs; run++) {
        memset (&stats, 0, sizeof stats);
        keys = 0;
        double start = s_now ();
        size_t at = 0;
        for (size_t c = 0; c < chunks; c++) {
            tl_table_clear (table);
            if (tl_map (table, format, &TL_FILTER_NONE, buf.data + at, ends[c] - at, &stats)) {
                fprintf (stderr, "bench_mapper: out of memory\n");
                return 1;
            }
            keys += tl_table_size (table);
            at = ends[c];
        }
        double seconds = s_now () - start;
        mbps[run] = buf.size / 1e6 / seconds;
        lps[run] = (double)stats.lines / seconds;
        printf ("  run %d: %8.1f MB/s %7.2f M lines/s\n", run + 1, mbps[run], lps[run] / 1e6);
    }
    qsort (mbps, (size_t)runs, sizeof *mbps, s_compare_double);
    qsort (lps, (size_t)runs, sizeof *lps, s_compare_double);
    printf ("lines %llu (bad %llu), %.1f lines per chunk key, %.1f bytes per line\n",
            (unsigned long long)stats.lines, (unsigned long long)stats.bad_lines,
            keys ? (double)stats.lines / (double)keys : 0.0,
            stats.lines ? (double)buf.size / (double)stats.lines : 0.0);
    printf ("median: %.1f MB/s, %.2f M lines/s (min %.1f, max %.1f MB/s)\n", mbps[runs / 2],
            lps[runs / 2] / 1e6, mbps[0], mbps[runs - 1]);

    tl_table_destroy (&table);
    free (mbps);
    free (lps);
    free (ends);
    free (buf.data);
    return 0;
}
