/*  bench_table: inserts per second of tl_table in the sink's and the worker's patterns.

    (a) sink:   10M adds drawn at random over 1M distinct keys of 8-12 bytes
    (b) worker: 1000 rounds of (add 5000 distinct keys, clear)
    (c) worker after a burst: as (b), in a table that once held 500,000 keys
    Prints its numbers; asserts nothing.                                                */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tl_table.h"

#define KEYS       1000000   //  Distinct keys in the pool
#define SINK_ADDS  10000000  //  Adds in (a)
#define ROUNDS     1000      //  Rounds in (b) and (c)
#define ROUND_KEYS 5000      //  Distinct keys per round
#define BURST_KEYS 500000    //  Keys the table held once in (c)

typedef struct {
    char *bytes;      //  All keys, packed
    size_t *offsets;  //  Start of each key in bytes, KEYS + 1 entries
} pool_t;

static uint64_t s_state = 42;  //  xorshift64 state: fixed, so runs are comparable

static uint64_t s_rand (void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

//  Random lowercase keys of 8 to 12 bytes; a collision between two of them is unlikely
//  enough (26^8 choices) that the pool counts as distinct.
static int s_pool_new (pool_t *pool)
{
    pool->bytes = malloc ((size_t)KEYS * 12);
    pool->offsets = malloc ((KEYS + 1) * sizeof (size_t));
    if (!pool->bytes || !pool->offsets) return -1;
    size_t at = 0;
    for (size_t i = 0; i < KEYS; i++) {
        pool->offsets[i] = at;
        size_t len = 8 + s_rand () % 5;
        for (size_t j = 0; j < len; j++)
            pool->bytes[at++] = (char)('a' + s_rand () % 26);
    }
    pool->offsets[KEYS] = at;
    return 0;
}

static int s_add (tl_table_t *table, const pool_t *pool, size_t index)
{
    size_t start = pool->offsets[index];
    return tl_table_add (table, pool->bytes + start, pool->offsets[index + 1] - start, 1);
}

static void s_bench_sink (const pool_t *pool)
{
    uint32_t *picks = malloc (SINK_ADDS * sizeof (uint32_t));
    tl_table_t *table = tl_table_new (0);
    if (!picks || !table) {
        fprintf (stderr, "bench_table: out of memory\n");
        exit (1);
    }
    for (size_t i = 0; i < SINK_ADDS; i++)
        picks[i] = (uint32_t)(s_rand () % KEYS);
    double start = s_now ();
    for (size_t i = 0; i < SINK_ADDS; i++)
        s_add (table, pool, picks[i]);
    double seconds = s_now () - start;
    printf ("(a) sink:   %d adds over %zu distinct keys: %.3f s, %.1f M adds/s, %.1f MiB\n",
            SINK_ADDS, tl_table_size (table), seconds, SINK_ADDS / seconds / 1e6,
            tl_table_memory (table) / 1048576.0);

    start = s_now ();
    size_t size;
    tl_entry_t *sorted = tl_table_sorted (table, &size);
    double sort_seconds = s_now () - start;
    tl_entry_t top[100];
    start = s_now ();
    tl_table_top (table, 100, top);
    printf ("    sorted %zu entries: %.3f s; top 100: %.3f s\n", size, sort_seconds,
            s_now () - start);
    tl_table_entries_free (sorted);
    free (picks);
    tl_table_destroy (&table);
}

static void s_bench_worker (const pool_t *pool, size_t burst, const char *label)
{
    tl_table_t *table = tl_table_new (0);
    if (!table) {
        fprintf (stderr, "bench_table: out of memory\n");
        exit (1);
    }
    for (size_t i = 0; i < burst; i++)
        s_add (table, pool, i);
    tl_table_clear (table);
    double start = s_now ();
    for (size_t round = 0; round < ROUNDS; round++) {
        size_t base = round * ROUND_KEYS % (KEYS - ROUND_KEYS);
        for (size_t i = 0; i < ROUND_KEYS; i++)
            s_add (table, pool, base + i);
        tl_table_clear (table);
    }
    double seconds = s_now () - start;
    printf ("%s %d x (%d adds, clear): %.3f s, %.1f M adds/s, %.1f MiB\n", label, ROUNDS,
            ROUND_KEYS, seconds, (double)ROUNDS * ROUND_KEYS / seconds / 1e6,
            tl_table_memory (table) / 1048576.0);
    tl_table_destroy (&table);
}

int main (void)
{
    pool_t pool;
    if (s_pool_new (&pool)) {
        fprintf (stderr, "bench_table: out of memory\n");
        return 1;
    }
    s_bench_sink (&pool);
    s_bench_worker (&pool, 0, "(b) worker:");
    s_bench_worker (&pool, BURST_KEYS, "(c) worker after a 500k-key burst:");
    free (pool.bytes);
    free (pool.offsets);
    return 0;
}
