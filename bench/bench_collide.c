/*  bench_collide: writes the word lists of bench/collide, one word per line (for
    `--format text`, where each word counts 1). --crafted N finds, by brute force, N words
    whose plain XXH3_64bits values (the hash Tally's tables used before they were keyed
    with a secret) agree on bits SPREAD to BITS - 1: in any table of up to 2^BITS slots that
    starts probing at hash & mask, they all start in one window of 2^SPREAD slots, so linear
    probing turns them into one cluster and each insertion walks it. With --spread 0 they
    share their low BITS bits exactly; leaving the lowest few free makes the search 2^SPREAD
    times shorter for the same cluster (the defaults, 18 and 6, cover the 2^18 slots that
    100,000 keys need and cost 4096 candidates a word). --random N writes N distinct words
    of the same shape for comparison.

    Words are 9 bytes: a prefix letter and 8 base-36 digits. Crafted words are "k" and a
    counter, tried in order from 0, so the list depends only on the seed (which picks the
    shared bits), BITS and SPREAD, never on the number of threads. Random words are "r" and
    a bijective 40-bit mix of a counter, so they are distinct without a set to check them.

    Usage: bench_collide (--crafted N | --random N) [--bits B] [--spread L] [--seed S]
                         [--threads T] FILE                                            */

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define S_DIGITS     8                         //  Base-36 digits after the prefix
#define S_WORD_LEN   (1 + S_DIGITS)            //  Bytes in a word, newline not counted
#define S_SPACE      UINT64_C (2821109907456)  //  36^S_DIGITS: counters a word can hold
#define S_BLOCK      (UINT64_C (1) << 23)      //  Counters one thread tries per round
#define S_THREADS    64                        //  Most threads
#define S_MIX40_MASK ((UINT64_C (1) << 40) - 1)

static const char s_base36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

//  One thread's share of a round of the crafted search.
typedef struct {
    uint64_t first;     //  First counter to try
    uint64_t count;     //  Counters to try
    uint64_t mask;      //  Hash bits that must match
    uint64_t target;    //  Value those bits must have
    uint64_t *found;    //  Counters whose word matched, ascending
    size_t found_size;  //  Counters held in found
    size_t found_max;   //  Room in found
    int failed;         //  Out of memory
} s_search_t;

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

//  splitmix64's finalizer: a seed into well-mixed bits.
static uint64_t s_mix (uint64_t x)
{
    x += UINT64_C (0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C (0x94D049BB133111EB);
    return x ^ (x >> 31);
}

//  A bijection of 40-bit values (xor-shifts and odd multipliers modulo 2^40), so distinct
//  counters give distinct random-looking words.
static uint64_t s_mix40 (uint64_t x)
{
    x &= S_MIX40_MASK;
    x = ((x ^ (x >> 21)) * UINT64_C (0xB7E151628AED)) & S_MIX40_MASK;
    x = ((x ^ (x >> 19)) * UINT64_C (0x9E3779B97F4B)) & S_MIX40_MASK;
    return x ^ (x >> 23);
}

//  Writes prefix and value as S_DIGITS base-36 digits, most significant first.
static void s_word (char *word, char prefix, uint64_t value)
{
    word[0] = prefix;
    for (int i = S_DIGITS; i >= 1; i--) {
        word[i] = s_base36[value % 36];
        value /= 36;
    }
}

//  Steps a word's digits to the next counter, in place.
static inline void s_word_next (char *word)
{
    for (int i = S_DIGITS; i >= 1; i--) {
        char c = word[i];
        if (c == '9') {
            word[i] = 'a';
            return;
        }
        if (c != 'z') {
            word[i] = (char)(c + 1);
            return;
        }
        word[i] = '0';
    }
}

static int s_found_add (s_search_t *self, uint64_t counter)
{
    if (self->found_size == self->found_max) {
        size_t max = self->found_max ? self->found_max * 2 : 1024;
        uint64_t *found = realloc (self->found, max * sizeof *found);
        if (!found) return -1;
        self->found = found;
        self->found_max = max;
    }
    self->found[self->found_size++] = counter;
    return 0;
}

//  Tries the thread's counters in order and keeps those whose hash has the target bits.
static void *s_search (void *arg)
{
    s_search_t *self = arg;
    char word[S_WORD_LEN];
    s_word (word, 'k', self->first);
    for (uint64_t i = 0; i < self->count; i++) {
        if ((XXH3_64bits (word, S_WORD_LEN) & self->mask) == self->target &&
            s_found_add (self, self->first + i) != 0) {
            self->failed = 1;
            break;
        }
        s_word_next (word);
    }
    return NULL;
}

//  Fills counters[0..n) with the first n counters whose words share the target bits,
//  searching threads blocks at a time. Returns the counters tried, or 0 on failure.
static uint64_t s_crafted (uint64_t *counters, size_t n, uint64_t mask, uint64_t target,
                           int threads)
{
    s_search_t search[S_THREADS];
    memset (search, 0, sizeof search);
    size_t have = 0;
    uint64_t next = 0;
    while (have < n) {
        if (next >= S_SPACE) {
            fprintf (stderr, "bench_collide: only %zu words fit in %d digits\n", have, S_DIGITS);
            return 0;
        }
        pthread_t ids[S_THREADS];
        int started = 0;
        for (int t = 0; t < threads && next < S_SPACE; t++) {
            s_search_t *share = &search[t];
            share->first = next;
            share->count = S_SPACE - next < S_BLOCK ? S_SPACE - next : S_BLOCK;
            share->mask = mask;
            share->target = target;
            share->found_size = 0;
            next += share->count;
            if (pthread_create (&ids[t], NULL, s_search, share) != 0) {
                fprintf (stderr, "bench_collide: pthread_create failed\n");
                return 0;
            }
            started++;
        }
        for (int t = 0; t < started; t++)
            pthread_join (ids[t], NULL);
        //  The threads' blocks are consecutive, so taking them in order keeps the
        //  counters ascending and the result independent of the number of threads.
        for (int t = 0; t < started && have < n; t++) {
            if (search[t].failed) {
                fprintf (stderr, "bench_collide: out of memory\n");
                return 0;
            }
            for (size_t i = 0; i < search[t].found_size && have < n; i++)
                counters[have++] = search[t].found[i];
        }
    }
    for (int t = 0; t < threads; t++)
        free (search[t].found);
    return next;
}

static void s_usage (void)
{
    fprintf (stderr, "usage: bench_collide (--crafted N | --random N) [--bits B] [--spread L] "
                     "[--seed S] [--threads T] FILE\n");
    exit (2);
}

int main (int argc, char *argv[])
{
    static const struct option options[] = {
        {"crafted", required_argument, NULL, 'c'}, {"random", required_argument, NULL, 'r'},
        {"bits", required_argument, NULL, 'b'},    {"spread", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},    {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    long words = -1, bits = 18, spread = 6, threads = sysconf (_SC_NPROCESSORS_ONLN);
    bool crafted = false;
    uint64_t seed = 2012;
    int opt;
    while ((opt = getopt_long (argc, argv, "", options, NULL)) != -1) {
        if (opt == 'c' || opt == 'r') {
            if (words >= 0) s_usage ();
            crafted = opt == 'c';
            words = atol (optarg);
        } else if (opt == 'b')
            bits = atol (optarg);
        else if (opt == 'l')
            spread = atol (optarg);
        else if (opt == 's')
            seed = strtoull (optarg, NULL, 0);
        else if (opt == 't')
            threads = atol (optarg);
        else
            s_usage ();
    }
    if (optind != argc - 1 || words < 1 || bits < 1 || bits > 32 || spread < 0 || spread >= bits ||
        threads < 1)
        s_usage ();
    if (threads > S_THREADS) threads = S_THREADS;
    if (!crafted && (uint64_t)words > S_MIX40_MASK) s_usage ();
    const char *path = argv[optind];

    uint64_t *counters = malloc ((size_t)words * sizeof *counters);
    if (!counters) {
        fprintf (stderr, "bench_collide: out of memory\n");
        return 1;
    }
    uint64_t mask = ((UINT64_C (1) << bits) - 1) & ~((UINT64_C (1) << spread) - 1);
    uint64_t target = s_mix (seed) & mask;
    uint64_t tried = 0;
    double start = s_now ();
    if (crafted) {
        tried = s_crafted (counters, (size_t)words, mask, target, (int)threads);
        if (tried == 0) return 1;
    } else {
        uint64_t offset = s_mix (seed) & S_MIX40_MASK;
        for (long i = 0; i < words; i++)
            counters[i] = s_mix40 (offset + (uint64_t)i);
    }
    double seconds = s_now () - start;

    FILE *file = fopen (path, "w");
    if (!file) {
        fprintf (stderr, "bench_collide: %s: %s\n", path, strerror (errno));
        return 1;
    }
    char word[S_WORD_LEN + 1];
    word[S_WORD_LEN] = '\n';
    for (long i = 0; i < words; i++) {
        s_word (word, crafted ? 'k' : 'r', counters[i]);
        //  The search's own check, redone on the words as written
        if (crafted && (XXH3_64bits (word, S_WORD_LEN) & mask) != target) {
            fprintf (stderr, "bench_collide: %.*s does not have the shared bits\n", S_WORD_LEN,
                     word);
            return 1;
        }
        fwrite (word, 1, sizeof word, file);
    }
    if (fclose (file) != 0) {
        fprintf (stderr, "bench_collide: %s: %s\n", path, strerror (errno));
        return 1;
    }
    if (crafted)
        fprintf (stderr,
                 "bench_collide: %ld words whose XXH3_64bits agree on bits %ld-%ld (hash & 0x%llx "
                 "== 0x%llx), %.2e candidates tried in %.1f s on %ld threads -> %s\n",
                 words, spread, bits - 1, (unsigned long long)mask, (unsigned long long)target,
                 (double)tried, seconds, threads, path);
    else
        fprintf (stderr, "bench_collide: %ld distinct random words -> %s\n", words, path);
    free (counters);
    return 0;
}
