/*  bench_source: how fast tl_source hands out chunks, per backend and per inflater.

    Drains tl_source_next (releasing each chunk at once) over a plain file already in the
    page cache with each backend, and over its gzip copy with zlib and with isa-l
    (TALLY_INFLATE), and prints the median MB/s of 3 runs. Then, to show what reading
    ahead buys, both backends again with the file dropped from the page cache before
    each run and a consumer that counts the lines of each chunk. Without arguments it
    writes ~500 MB of n-gram-like lines to /tmp (kept for the next run) and gzips them.
    The gzip numbers decide the default inflater in ventilator/source_gz.c.

    Usage: bench_source [PLAIN_FILE [GZIP_FILE]]                                        */

#include "tl_source.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_RUNS        3
#define S_PLAIN_PATH  "/tmp/tally_bench_source.tsv"
#define S_GZIP_PATH   "/tmp/tally_bench_source.tsv.gz"
#define S_TARGET_SIZE (500ull * 1000 * 1000)

typedef struct {
    double seconds;      //  Wall time to drain
    uint64_t bytes_out;  //  Bytes in chunks
    uint64_t bytes_in;   //  Bytes read from disk
    uint64_t chunks;     //  Chunks handed out
    uint64_t lines;      //  Lines counted by the consumer
    char backend[16];    //  Backend that ran
} s_result_t;

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t s_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

//  xorshift64: cheap, reproducible n-gram-ish lines.
static uint64_t s_rand (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

//  Writes lines like Google Books 1-grams: "word_TAG\tyear\tcount\tvolumes\n".
static int s_generate (const char *path)
{
    static const char *tags[] = {"", "_NOUN", "_VERB", "_ADJ", "_ADV", "_DET"};
    FILE *f = fopen (path, "w");
    if (!f) return -1;
    uint64_t state = 88172645463325252ull, written = 0;
    char word[32], line[96];
    while (written < S_TARGET_SIZE) {
        int len = 3 + (int)(s_rand (&state) % 10);
        for (int i = 0; i < len; i++)
            word[i] = (char)('a' + s_rand (&state) % 26);
        word[len] = 0;
        const char *tag = tags[s_rand (&state) % 6];
        //  A word's years come together, as in the real files
        int years = 1 + (int)(s_rand (&state) % 40);
        for (int y = 0; y < years; y++) {
            int n = snprintf (line, sizeof line, "%s%s\t%d\t%llu\t%llu\n", word, tag, 1800 + y * 5,
                              (unsigned long long)(1 + s_rand (&state) % 5000),
                              (unsigned long long)(1 + s_rand (&state) % 300));
            fwrite (line, 1, (size_t)n, f);
            written += (uint64_t)n;
        }
    }
    return fclose (f);
}

//  Drops the file from the page cache, so the next read comes from disk.
static void s_uncache (const char *path)
{
    int fd = open (path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
        close (fd);
    }
}

static uint64_t s_count_lines (const char *data, size_t size)
{
    uint64_t lines = 0;
    for (const char *at = data, *end = data + size; (at = memchr (at, '\n', (size_t)(end - at)));
         at++)
        lines++;
    return lines;
}

static int s_drain (const char *path, tl_io_t io, bool work, s_result_t *result)
{
    tl_source_opts_t opts = {.io = io};
    const char *error = NULL;
    const char *files[] = {path};
    double start = s_now ();
    tl_source_t *source = tl_source_new (files, 1, &opts, &error);
    if (!source) {
        fprintf (stderr, "bench_source: %s\n", error);
        return -1;
    }
    *result = (s_result_t){0};
    snprintf (result->backend, sizeof result->backend, "%s", tl_source_backend (source));
    tl_chunk_t chunk;
    int rc;
    while ((rc = tl_source_next (source, &chunk)) == 1) {
        result->bytes_out += chunk.size;
        result->chunks++;
        if (work) result->lines += s_count_lines (chunk.data, chunk.size);
        tl_buf_release (chunk.buf);
    }
    result->bytes_in = tl_source_bytes_read (source);
    if (rc < 0) fprintf (stderr, "bench_source: %s\n", tl_source_error (source));
    tl_source_destroy (&source);
    result->seconds = s_now () - start;
    return rc;
}

static int s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Median of S_RUNS drains; prints one line. cold: from disk, work: count lines.
static void s_bench (const char *label, const char *path, tl_io_t io, const char *inflate,
                     bool cold, bool work)
{
    if (inflate)
        setenv ("TALLY_INFLATE", inflate, 1);
    else
        unsetenv ("TALLY_INFLATE");
    double secs[S_RUNS];
    s_result_t result = {0};
    for (int run = 0; run < S_RUNS; run++) {
        if (cold) s_uncache (path);
        if (s_drain (path, io, work, &result)) return;
        secs[run] = result.seconds;
    }
    qsort (secs, S_RUNS, sizeof *secs, s_cmp_double);
    double median = secs[S_RUNS / 2];
    printf ("%-24s %-9s %9.0f MB/s out %9.0f MB/s in  (median %.3f s, %llu chunks, %.0f MB)\n",
            label, result.backend, (double)result.bytes_out / 1e6 / median,
            (double)result.bytes_in / 1e6 / median, median, (unsigned long long)result.chunks,
            (double)result.bytes_out / 1e6);
    fflush (stdout);
}

int main (int argc, char *argv[])
{
    const char *plain = argc > 1 ? argv[1] : S_PLAIN_PATH;
    const char *gzip = argc > 2 ? argv[2] : argc > 1 ? NULL : S_GZIP_PATH;
    if (argc == 1 && s_file_size (S_PLAIN_PATH) < S_TARGET_SIZE) {
        printf ("generating %s ...\n", S_PLAIN_PATH);
        if (s_generate (S_PLAIN_PATH)) {
            perror (S_PLAIN_PATH);
            return 1;
        }
    }
    if (argc == 1 && s_file_size (S_GZIP_PATH) == 0) {
        printf ("gzipping to %s ...\n", S_GZIP_PATH);
        if (system ("gzip -6 -c " S_PLAIN_PATH " > " S_GZIP_PATH ".tmp && mv " S_GZIP_PATH
                    ".tmp " S_GZIP_PATH)) {
            fprintf (stderr, "bench_source: gzip failed\n");
            return 1;
        }
    }
    printf ("plain %s: %.0f MB; chunk 1 MiB, depth 8, median of %d runs\n", plain,
            (double)s_file_size (plain) / 1e6, S_RUNS);
    s_result_t warm;
    s_drain (plain, TL_IO_SYNC, false, &warm);  //  Into the page cache
    s_bench ("plain", plain, TL_IO_SYNC, NULL, false, false);
    s_bench ("plain", plain, TL_IO_URING, NULL, false, false);
    if (gzip) {
        printf ("gzip %s: %.0f MB\n", gzip, (double)s_file_size (gzip) / 1e6);
        s_drain (gzip, TL_IO_SYNC, false, &warm);
        s_bench ("gzip TALLY_INFLATE=zlib", gzip, TL_IO_URING, "zlib", false, false);
        s_bench ("gzip TALLY_INFLATE=isal", gzip, TL_IO_URING, "isal", false, false);
        s_bench ("gzip TALLY_INFLATE=zlib", gzip, TL_IO_SYNC, "zlib", false, false);
        s_bench ("gzip TALLY_INFLATE=isal", gzip, TL_IO_SYNC, "isal", false, false);
        s_bench ("gzip default", gzip, TL_IO_AUTO, NULL, false, false);
    }
    printf ("plain from disk (page cache dropped), consumer counts lines:\n");
    s_bench ("plain cold + count", plain, TL_IO_SYNC, NULL, true, true);
    s_bench ("plain cold + count", plain, TL_IO_URING, NULL, true, true);
    s_drain (plain, TL_IO_SYNC, false, &warm);
    s_bench ("plain cached + count", plain, TL_IO_SYNC, NULL, false, true);
    s_bench ("plain cached + count", plain, TL_IO_URING, NULL, false, true);
    return 0;
}
