/*  bench_bigrams: writes the deterministic high-cardinality input of bench/cardinality:
    synthetic 2-grams in the Google Books 2012 format (`w1 w2 TAB year TAB match_count
    TAB volume_count`), each key on 1 to 4 consecutive lines (its years, ascending) and
    in one place only, so that the number of distinct keys, not the number of lines,
    is what a counter has to carry: 45,964,061 keys in the default 2 GB.

    Every key is distinct by construction. Key number k (k = block * FILES + file) goes
    through a keyed Feistel permutation of [0, 2^36) to a pair (a, b) of word numbers
    below 2^18, and word number i is spelled as a bijective base-300 numeral of
    syllables (onset, vowel, optional coda, from disjoint letter sets, so the spelling
    parses back to i): distinct k give distinct pairs give distinct keys. About one key
    in twelve has its first word capitalized (which keeps them distinct: the lowercase
    spellings already differ). Counts have a heavy tail, so most totals are small and
    many keys tie: the tie-break of the sorted totals (key bytes) carries real weight.

    The bytes depend only on the seed, the size and the number of files (never on -j):
    each key's lines come from a generator seeded by (seed, k).

    Usage: bench_bigrams [-s TOTAL_MB] [-n FILES] [-j JOBS] [-S SEED] OUTDIR
    Writes OUTDIR/bigram-2012-00.tsv ... (one file per -n, each about TOTAL_MB / FILES). */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_HALF_BITS 18                                   //  Bits of a word number
#define S_HALF_MASK ((UINT64_C (1) << S_HALF_BITS) - 1)  //  Its mask
#define S_KEYS_MAX  (UINT64_C (1) << (2 * S_HALF_BITS))  //  Key numbers the permutation covers
#define S_ROUNDS    4                                    //  Feistel rounds
#define S_BUFFER    (4u << 20)                           //  Output buffer
#define S_KEY_MAX   64                                   //  Longest key is 19 bytes

//  What one child reports about the file it wrote.
typedef struct {
    uint64_t bytes;  //  Bytes written
    uint64_t lines;  //  Lines written
    uint64_t keys;   //  Keys written (each is distinct, in all files)
    int failed;      //  Nonzero when the file could not be written
} s_stats_t;

//  A buffered output file.
typedef struct {
    int fd;          //  File descriptor
    char *data;      //  Buffer
    size_t size;     //  Bytes buffered
    uint64_t total;  //  Bytes written so far, buffered included
    int failed;      //  A write failed
} s_out_t;

//  --------------------------------------------------------------------------------------
//  Random numbers: splitmix64, as a hash (s_mix) and as a sequence (s_next).

static uint64_t s_mix (uint64_t x)
{
    x += UINT64_C (0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C (0x94D049BB133111EB);
    return x ^ (x >> 31);
}

static uint64_t s_next (uint64_t *state)
{
    *state += UINT64_C (0x9E3779B97F4A7C15);
    return s_mix (*state);
}

//  Uniform in (0, 1]: never 0, so pow(u, negative) stays finite.
static double s_unit (uint64_t bits)
{
    return ((double)(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

//  A permutation of [0, 2^36) keyed by the seed: a balanced Feistel network on two
//  18-bit halves. Distinct key numbers give distinct pairs of word numbers.
static uint64_t s_permute (uint64_t k, uint64_t seed)
{
    uint64_t left = (k >> S_HALF_BITS) & S_HALF_MASK, right = k & S_HALF_MASK;
    for (uint64_t round = 0; round < S_ROUNDS; round++) {
        uint64_t f = s_mix (seed ^ (round << 56) ^ right) & S_HALF_MASK;
        uint64_t next = left ^ f;
        left = right;
        right = next;
    }
    return (left << S_HALF_BITS) | right;
}

//  --------------------------------------------------------------------------------------
//  Words. A syllable is an onset, a vowel and maybe a coda; the three letter sets are
//  disjoint, so a word splits back into its syllables one way only: 12 x 5 x (4 + 1) =
//  300 syllables of 2 or 3 letters.

static const char s_onsets[] = "bdfgklmprstv";
static const char s_vowels[] = "aeiou";
static const char s_codas[] = "nhxz";

#define S_ONSETS    (sizeof s_onsets - 1)
#define S_VOWELS    (sizeof s_vowels - 1)
#define S_CODAS     (sizeof s_codas)  //  A coda or none
#define S_SYLLABLES (S_ONSETS * S_VOWELS * S_CODAS)

//  Writes word number `word` as a bijective base-300 numeral (1 to 3 syllables below
//  2^18: 300 words of one syllable, 90,000 of two, the rest of three) and returns the
//  end. `capital` capitalizes its first letter.
static char *s_put_word (char *p, uint64_t word, bool capital)
{
    char *start = p;
    uint64_t n = word + 1;
    while (n > 0) {
        n--;
        unsigned digit = (unsigned)(n % S_SYLLABLES);
        n /= S_SYLLABLES;
        *p++ = s_onsets[digit % S_ONSETS];
        digit /= S_ONSETS;
        *p++ = s_vowels[digit % S_VOWELS];
        digit /= S_VOWELS;
        if (digit) *p++ = s_codas[digit - 1];
    }
    if (capital) *start = (char)(*start - 'a' + 'A');
    return p;
}

//  Writes key number k (its two words, a space between) into out (at least S_KEY_MAX
//  bytes) and returns its length.
static size_t s_key (uint64_t k, uint64_t seed, char *out)
{
    uint64_t pair = s_permute (k, seed);
    bool capital = s_mix (seed ^ k ^ UINT64_C (0xCA9)) % 12 == 0;
    char *p = s_put_word (out, pair >> S_HALF_BITS, capital);
    *p++ = ' ';
    p = s_put_word (p, pair & S_HALF_MASK, false);
    return (size_t)(p - out);
}

//  --------------------------------------------------------------------------------------
//  Output

static void s_flush (s_out_t *out)
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

//  Writes key number k's lines: 1 to 4 years (mean 1.75), ascending, a gap now and
//  then, between 1800 and 2008; match counts from a Pareto tail (alpha 1.1, so most
//  are 1 or 2 digits and a few reach millions), volume counts not above them. Returns
//  the number of lines.
static unsigned s_key_lines (s_out_t *out, uint64_t seed, uint64_t k)
{
    uint64_t rng = s_mix (seed ^ s_mix (k ^ UINT64_C (0xB16A)));
    char key[S_KEY_MAX];
    size_t len = s_key (k, seed, key);
    unsigned pick = (unsigned)(s_next (&rng) % 100);
    unsigned years = pick < 50 ? 1 : pick < 80 ? 2 : pick < 95 ? 3 : 4;
    double weight = pow (s_unit (s_next (&rng)), -1.0 / 1.1);
    if (weight > 1e6) weight = 1e6;
    unsigned year = 1800 + (unsigned)(s_next (&rng) % (2008 - 1800 - 3 * 4 + 1));
    if (out->size + 4 * (len + 64) > S_BUFFER) s_flush (out);
    char *p = out->data + out->size;
    for (unsigned i = 0; i < years; i++) {
        uint64_t bits = s_next (&rng);
        uint64_t match = 1 + (uint64_t)(weight * s_unit (bits));
        uint64_t volume = 1 + match / (1 + (bits & 7));
        if (volume > match) volume = match;
        memcpy (p, key, len);
        p += len;
        *p++ = '\t';
        p = s_put_u64 (p, year);
        *p++ = '\t';
        p = s_put_u64 (p, match);
        *p++ = '\t';
        p = s_put_u64 (p, volume);
        *p++ = '\n';
        year += 1 + (unsigned)((bits >> 40) % 8 == 0 ? 1 + (bits >> 44) % 3 : 0);
    }
    size_t bytes = (size_t)(p - (out->data + out->size));
    out->size += bytes;
    out->total += bytes;
    return years;
}

//  Writes one file (to a temporary name, then renamed): keys file, file + files, ...
//  until it holds `target` bytes. Fills *stats.
static void s_write_file (const char *dir, unsigned file, unsigned files, uint64_t target,
                          uint64_t seed, s_stats_t *stats)
{
    char path[4096], temp[4200];
    snprintf (path, sizeof path, "%s/bigram-2012-%02u.tsv", dir, file);
    snprintf (temp, sizeof temp, "%s.tmp", path);
    s_out_t out = {.fd = open (temp, O_WRONLY | O_CREAT | O_TRUNC, 0644)};
    out.data = malloc (S_BUFFER);
    if (out.fd < 0 || !out.data) {
        fprintf (stderr, "bench_bigrams: %s: %s\n", temp, strerror (errno));
        stats->failed = 1;
        return;
    }
    uint64_t block = 0;
    while (out.total < target && !out.failed) {
        uint64_t k = block * files + file;
        if (k >= S_KEYS_MAX) {
            fprintf (stderr, "bench_bigrams: more than 2^36 keys: make the input smaller\n");
            out.failed = 1;
            break;
        }
        stats->lines += s_key_lines (&out, seed, k);
        block++;
    }
    s_flush (&out);
    stats->keys = block;
    stats->bytes = out.total;
    if (out.failed || close (out.fd) != 0 || rename (temp, path) != 0) {
        fprintf (stderr, "bench_bigrams: %s: %s\n", path, strerror (errno));
        stats->failed = 1;
    }
    free (out.data);
}

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void s_usage (void)
{
    fprintf (stderr, "usage: bench_bigrams [-s TOTAL_MB] [-n FILES] [-j JOBS] [-S SEED] OUTDIR\n"
                     "  -s  total size in MB (10^6 bytes), default 2000\n"
                     "  -n  number of files, default 16\n"
                     "  -j  files written at once, default 2\n"
                     "  -S  seed, default 2012\n");
    exit (2);
}

int main (int argc, char *argv[])
{
    double megabytes = 2000;
    long files = 16, jobs = 2;
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
            s_usage ();
    }
    if (optind != argc - 1 || megabytes <= 0 || files < 1 || files > 100 || jobs < 1) s_usage ();
    const char *dir = argv[optind];
    if (mkdir (dir, 0755) != 0 && errno != EEXIST) {
        fprintf (stderr, "bench_bigrams: %s: %s\n", dir, strerror (errno));
        return 1;
    }
    uint64_t target = (uint64_t)(megabytes * 1e6 / (double)files);
    //  Children report through shared memory
    s_stats_t *stats = mmap (NULL, (size_t)files * sizeof *stats, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stats == MAP_FAILED) {
        perror ("bench_bigrams: mmap");
        return 1;
    }
    memset (stats, 0, (size_t)files * sizeof *stats);

    double start = s_now ();
    long running = 0;
    for (long file = 0; file < files; file++) {
        if (running == jobs) {
            wait (NULL);
            running--;
        }
        pid_t pid = fork ();
        if (pid == 0) {
            s_write_file (dir, (unsigned)file, (unsigned)files, target, seed, &stats[file]);
            _exit (stats[file].failed);
        }
        if (pid < 0) {
            perror ("bench_bigrams: fork");
            return 1;
        }
        running++;
    }
    int status, failed = 0;
    while (wait (&status) > 0)
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) failed = 1;
    s_stats_t sum = {0};
    for (long file = 0; file < files; file++) {
        sum.bytes += stats[file].bytes;
        sum.lines += stats[file].lines;
        sum.keys += stats[file].keys;
        failed |= stats[file].failed;
    }
    double seconds = s_now () - start;
    printf ("bench_bigrams: %ld files in %s: %.1f MB, %llu lines, %llu distinct keys, %.1f s "
            "(%.0f MB/s)\n",
            files, dir, (double)sum.bytes / 1e6, (unsigned long long)sum.lines,
            (unsigned long long)sum.keys, seconds, (double)sum.bytes / 1e6 / seconds);
    return failed;
}
