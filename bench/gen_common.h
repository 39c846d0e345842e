/*  gen_common: what bench_gen and bench_bigrams share: splitmix64 random numbers, a
    buffered output file, and the driver that writes FILES files (to temporary names,
    then renamed) with JOBS child processes at once, each file's bytes depending only on
    the seed, the size and the number of files. A generator gives its file names and
    the code that fills one file; gen_main does the rest (options, usage, summary).   */

#ifndef GEN_COMMON_H_INCLUDED
#define GEN_COMMON_H_INCLUDED

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GEN_BUFFER (4u << 20)  //  Output buffer

//  --------------------------------------------------------------------------------------
//  Random numbers: splitmix64, as a hash (gen_mix) and as a sequence (gen_next).

static inline uint64_t gen_mix (uint64_t x)
{
    x += UINT64_C (0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C (0x94D049BB133111EB);
    return x ^ (x >> 31);
}

static inline uint64_t gen_next (uint64_t *state)
{
    *state += UINT64_C (0x9E3779B97F4A7C15);
    return gen_mix (*state);
}

//  Uniform in (0, 1]: never 0, so pow(u, negative) stays finite.
static inline double gen_unit (uint64_t bits)
{
    return ((double)(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

//  --------------------------------------------------------------------------------------
//  Output

//  A buffered output file.
typedef struct {
    int fd;          //  File descriptor
    char *data;      //  Buffer (GEN_BUFFER bytes)
    size_t size;     //  Bytes buffered
    uint64_t total;  //  Bytes written so far, buffered included
    int failed;      //  A write failed
} gen_out_t;

static inline void gen_flush (gen_out_t *out)
{
    size_t done = 0;
    while (done < out->size && !out->failed) {
        ssize_t n = write (out->fd, out->data + done, out->size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            out->failed = 1;
        else
            done += (size_t)n;
    }
    out->size = 0;
}

static inline char *gen_put_u64 (char *p, uint64_t value)
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

//  --------------------------------------------------------------------------------------
//  The driver

//  What one child reports about the file it wrote.
typedef struct {
    uint64_t bytes;  //  Bytes written
    uint64_t lines;  //  Lines written
    uint64_t units;  //  What the generator counts besides (key blocks, keys)
    int failed;      //  Nonzero when the file could not be written
} gen_stats_t;

typedef struct {
    const char *name;    //  Program name, for messages
    double default_mb;   //  -s default
    long default_files;  //  -n default
    long max_files;      //  -n at most
    const char *units;   //  What gen_stats_t.units counts, for the summary
    //  Names file `file` of `files` in dir.
    void (*name_file) (char *path, size_t size, const char *dir, unsigned file, unsigned files);
    //  Fills out with file `file` of `files` until it holds target bytes, counting lines
    //  and units into *stats; sets out->failed (after saying why) when it cannot.
    void (*fill) (gen_out_t *out, unsigned file, unsigned files, uint64_t target, uint64_t seed,
                  gen_stats_t *stats);
} gen_spec_t;

static inline void gen_write_file (const gen_spec_t *spec, const char *dir, unsigned file,
                                   unsigned files, uint64_t target, uint64_t seed,
                                   gen_stats_t *stats)
{
    char path[4096], temp[4200];
    spec->name_file (path, sizeof path, dir, file, files);
    snprintf (temp, sizeof temp, "%s.tmp", path);
    gen_out_t out = {.fd = open (temp, O_WRONLY | O_CREAT | O_TRUNC, 0644)};
    out.data = malloc (GEN_BUFFER);
    if (out.fd < 0 || !out.data) {
        fprintf (stderr, "%s: %s: %s\n", spec->name, temp, strerror (errno));
        stats->failed = 1;
        return;
    }
    spec->fill (&out, file, files, target, seed, stats);
    gen_flush (&out);
    stats->bytes = out.total;
    if (out.failed || close (out.fd) != 0 || rename (temp, path) != 0) {
        fprintf (stderr, "%s: %s: %s\n", spec->name, path, strerror (errno));
        stats->failed = 1;
    }
    free (out.data);
}

static inline double gen_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void gen_usage (const gen_spec_t *spec)
{
    fprintf (stderr,
             "usage: %s [-s TOTAL_MB] [-n FILES] [-j JOBS] [-S SEED] OUTDIR\n"
             "  -s  total size in MB (10^6 bytes), default %.0f\n"
             "  -n  number of files, default %ld\n"
             "  -j  files written at once, default 2\n"
             "  -S  seed, default 2012\n",
             spec->name, spec->default_mb, spec->default_files);
    exit (2);
}

//  The generator's whole main: parses the options, writes the files with -j children
//  at once, prints a summary line. Returns the exit status.
static inline int gen_main (int argc, char *argv[], const gen_spec_t *spec)
{
    double megabytes = spec->default_mb;
    long files = spec->default_files, jobs = 2;
    uint64_t seed = 2012;
    int opt;
    while ((opt = getopt (argc, argv, "s:n:j:S:h")) != -1) {
        if (opt == 's')
            megabytes = atof (optarg);
        else if (opt == 'n')
            files = atol (optarg);
        else if (opt == 'j')
            jobs = atol (optarg);
        else if (opt == 'S')
            seed = strtoull (optarg, NULL, 0);
        else
            gen_usage (spec);
    }
    if (optind != argc - 1 || megabytes <= 0 || files < 1 || files > spec->max_files || jobs < 1)
        gen_usage (spec);
    const char *dir = argv[optind];
    if (mkdir (dir, 0755) != 0 && errno != EEXIST) {
        fprintf (stderr, "%s: %s: %s\n", spec->name, dir, strerror (errno));
        return 1;
    }
    uint64_t target = (uint64_t)(megabytes * 1e6 / (double)files);
    //  Children report through shared memory
    gen_stats_t *stats = mmap (NULL, (size_t)files * sizeof *stats, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stats == MAP_FAILED) {
        fprintf (stderr, "%s: mmap: %s\n", spec->name, strerror (errno));
        return 1;
    }
    memset (stats, 0, (size_t)files * sizeof *stats);

    double start = gen_now ();
    long running = 0;
    for (long file = 0; file < files; file++) {
        if (running == jobs) {
            wait (NULL);
            running--;
        }
        pid_t pid = fork ();
        if (pid == 0) {
            gen_write_file (spec, dir, (unsigned)file, (unsigned)files, target, seed, &stats[file]);
            _exit (stats[file].failed);
        }
        if (pid < 0) {
            fprintf (stderr, "%s: fork: %s\n", spec->name, strerror (errno));
            return 1;
        }
        running++;
    }
    int status, failed = 0;
    while (wait (&status) > 0)
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) failed = 1;
    gen_stats_t sum = {0};
    for (long file = 0; file < files; file++) {
        sum.bytes += stats[file].bytes;
        sum.lines += stats[file].lines;
        sum.units += stats[file].units;
        failed |= stats[file].failed;
    }
    double seconds = gen_now () - start;
    printf ("%s: %ld files in %s: %.1f MB, %llu lines, %llu %s, %.1f s (%.0f MB/s)\n", spec->name,
            files, dir, (double)sum.bytes / 1e6, (unsigned long long)sum.lines,
            (unsigned long long)sum.units, spec->units, seconds, (double)sum.bytes / 1e6 / seconds);
    return failed;
}

#endif
