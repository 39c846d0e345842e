/*  test_table: tl_table, the key -> count hash table of worker and sink.

    Checks adds, lookups, saturation, growth, clear and reuse, iteration, merge, sorted
    order and top-K, each against expectations written out here or against a brute-force
    reference (a dense array indexed by key) driven by a fixed-seed generator.          */

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tl_table.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif

//  Deterministic generator (splitmix64) so every run sees the same data.
static uint64_t s_rand_state;

static uint64_t s_rand (void)
{
    uint64_t z = (s_rand_state += UINT64_C (0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C (0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static tl_table_t *s_new (size_t hint)
{
    tl_table_t *table = tl_table_new (hint);
    cr_assert_not_null (table, "tl_table_new(%zu) failed", hint);
    return table;
}

//  Asserts the key is present and returns its total.
static uint64_t s_get (tl_table_t *table, const void *key, size_t len)
{
    uint64_t count = 0;
    cr_assert (tl_table_get (table, key, len, &count), "key of %zu bytes missing", len);
    return count;
}

static bool s_entry_is (const tl_entry_t *entry, const void *key, size_t len, uint64_t count)
{
    return entry->len == len && memcmp (entry->key, key, len) == 0 && entry->count == count;
}

//  Fills buf with "k<index>" and returns its length.
static size_t s_key (char *buf, size_t size, size_t index)
{
    return (size_t)snprintf (buf, size, "k%zu", index);
}

//  Fills buf with a 9-byte key for index, and returns its length.
static size_t s_key_fixed (char *buf, size_t size, size_t index)
{
    return (size_t)snprintf (buf, size, "f%08zu", index);
}

Test (table, add_get_basics)
{
    static const struct {
        const char *key;        //  Key to add
        uint64_t count;         //  Amount to add
        uint64_t expect_total;  //  Key's total after the add
        size_t expect_size;     //  Distinct keys after the add
    } steps[] = {
        {"the", 1, 1, 1},  {"the", 2, 3, 1},       {"of", 10, 10, 2}, {"The", 1, 1, 3},
        {"the", 0, 3, 3},  {"zero", 0, 0, 4},      {"of", 5, 15, 4},  {"th", 7, 7, 5},
        {"thee", 1, 1, 6}, {"the", 1000, 1003, 6},
    };
    tl_table_t *table = s_new (0);
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t len = strlen (steps[i].key);
        cr_assert_eq (tl_table_add (table, steps[i].key, len, steps[i].count), 0, "step %zu", i);
        sum += steps[i].count;
        cr_assert_eq (s_get (table, steps[i].key, len), steps[i].expect_total, "step %zu", i);
        cr_assert_eq (tl_table_size (table), steps[i].expect_size, "step %zu", i);
        cr_assert_eq (tl_table_sum (table), sum, "step %zu", i);
    }
    static const char *absent[] = {"t", "thE", "them", "of ", "zer", "x"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        uint64_t count = 42;
        cr_assert_not (tl_table_get (table, absent[i], strlen (absent[i]), &count), "%s",
                       absent[i]);
        cr_assert_eq (count, 42, "get must leave *count alone on a miss");
    }
    cr_assert (tl_table_get (table, "the", 3, NULL), "get accepts a NULL count");
    cr_assert_gt (tl_table_memory (table), 0);
    tl_table_destroy (&table);
    cr_assert_null (table);
    tl_table_destroy (&table);
}

Test (table, empty_key_is_a_key)
{
    tl_table_t *table = s_new (0);
    cr_assert_not (tl_table_get (table, "", 0, NULL));
    cr_assert_eq (tl_table_add (table, "", 0, 5), 0);
    cr_assert_eq (tl_table_add (table, NULL, 0, 2), 0);
    cr_assert_eq (tl_table_add (table, "a", 1, 1), 0);
    cr_assert_eq (tl_table_size (table), 2);
    cr_assert_eq (s_get (table, "", 0), 7);
    cr_assert_eq (s_get (table, "xyz", 0), 7, "only the length matters for the empty key");
    cr_assert_eq (s_get (table, "a", 1), 1);

    size_t cursor = 0, seen = 0;
    tl_entry_t entry;
    while (tl_table_next (table, &cursor, &entry))
        if (entry.len == 0) {
            cr_assert_not_null (entry.key);
            cr_assert_eq (entry.count, 7);
            seen++;
        }
    cr_assert_eq (seen, 1);
    tl_table_destroy (&table);
}

Test (table, binary_keys)
{
    //  Distinct keys that differ only after a NUL, in length, or in high bytes.
    static const struct {
        const char *key;  //  Key bytes
        size_t len;       //  Key length (keys hold NULs)
    } keys[] = {
        {"a", 1},
        {"a\0", 2},
        {"a\0b", 3},
        {"a\0c", 3},
        {"\0", 1},
        {"\0\0", 2},
        {"\xff", 1},
        {"\xff\xfe", 2},
        {"\xc3\x28", 2},
        {"\xe2\x82", 2},
        {"\x80\x80\x80", 3},
        {"caf\xc3\xa9", 5},
        {"\xf0\x9f\x98\x80", 4},
        {"\xed\xa0\x80", 3},
    };
    size_t n = sizeof keys / sizeof keys[0];
    tl_table_t *table = s_new (0);
    for (size_t round = 1; round <= 3; round++)
        for (size_t i = 0; i < n; i++)
            cr_assert_eq (tl_table_add (table, keys[i].key, keys[i].len, i + 1), 0);
    cr_assert_eq (tl_table_size (table), n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq (s_get (table, keys[i].key, keys[i].len), 3 * (i + 1), "key %zu", i);
    cr_assert_not (tl_table_get (table, "a\0d", 3, NULL));
    cr_assert_not (tl_table_get (table, "\0\0\0", 3, NULL));
    tl_table_destroy (&table);
}

//  Keys of up to 16 bytes are hashed and compared as two words loaded whole where that
//  stays within the page: the bytes after a key must never count, and a key that ends
//  at a page's end, before a page that cannot be read, must not be read past.
Test (table, short_keys_at_a_page_end_and_before_other_bytes)
{
    long page = sysconf (_SC_PAGESIZE);
    char *map =
        mmap (NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq (map, MAP_FAILED);
    cr_assert_eq (mprotect (map + page, (size_t)page, PROT_NONE), 0);
    char *page_end = map + page;
    tl_table_t *table = s_new (0);
    enum { MAX = 20 };
    for (size_t len = 0; len <= MAX; len++) {
        //  "kkk...": len bytes ending at the page's end, then the same followed by 0xff
        //  bytes and by NULs, then all NULs of that length (distinct from the rest)
        char *at_end = page_end - len;
        memset (at_end, 'k', len);
        char after[MAX + 16];
        memset (after, 0xff, sizeof after);
        memset (after, 'k', len);
        char zeros[MAX + 16] = {0};
        memset (zeros, 'k', len);
        char nuls[MAX + 16] = {0};
        cr_assert_eq (tl_table_add (table, at_end, len, 1), 0);
        cr_assert_eq (tl_table_add (table, after, len, 10), 0);
        cr_assert_eq (tl_table_add (table, zeros, len, 100), 0);
        if (len > 0) cr_assert_eq (tl_table_add (table, nuls, len, 1000), 0);
    }
    //  "k" x len and NUL x len for every len, one empty key
    cr_assert_eq (tl_table_size (table), 2 * MAX + 1);
    for (size_t len = 0; len <= MAX; len++) {
        cr_assert_eq (s_get (table, page_end - len, len), 111, "len %zu", len);
        char nuls[MAX] = {0};
        if (len > 0) cr_assert_eq (s_get (table, nuls, len), 1000, "len %zu", len);
    }
    //  The keys copied into the table compare equal to themselves at the page's end
    tl_table_t *other = s_new (0);
    cr_assert_geq (tl_table_merge (other, table), 0);
    cr_assert_geq (tl_table_merge (other, table), 0);
    cr_assert_eq (tl_table_size (other), 2 * MAX + 1);
    cr_assert_eq (s_get (other, page_end - 3, 3), 222);
    tl_table_destroy (&other);
    tl_table_destroy (&table);
    munmap (map, 2 * (size_t)page);
}

//  After the n keys s_key makes were added with totals i % m + 1 (summing to sum):
//  adds extra to every step-th of them, across the grown table, and checks the table's
//  size, sum and every key's total.
static void s_add_again_and_check (tl_table_t *table, size_t n, size_t m, size_t step,
                                   uint64_t extra, uint64_t sum)
{
    char key[32];
    for (size_t i = 0; i < n; i += step) {
        size_t len = s_key (key, sizeof key, i);
        cr_assert_eq (tl_table_add (table, key, len, extra), 0);
        sum += extra;
    }
    cr_assert_eq (tl_table_size (table), n);
    cr_assert_eq (tl_table_sum (table), sum);
    for (size_t i = 0; i < n; i++) {
        size_t len = s_key (key, sizeof key, i);
        uint64_t expect = i % m + 1 + (i % step == 0 ? extra : 0), count = 0;
        if (!tl_table_get (table, key, len, &count) || count != expect)
            cr_assert_fail ("key %s: got %llu, expected %llu", key, (unsigned long long)count,
                            (unsigned long long)expect);
    }
}

Test (table, growth_through_many_resizes)
{
    const size_t n = 1000000;
    tl_table_t *table = s_new (0);
    size_t memory_small = tl_table_memory (table);
    char key[32];
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = s_key (key, sizeof key, i);
        cr_assert_eq (tl_table_add (table, key, len, i % 7 + 1), 0);
        sum += i % 7 + 1;
    }
    s_add_again_and_check (table, n, 7, 3, 100, sum);
    cr_assert_not (tl_table_get (table, "k1000000", 8, NULL));
    //  24-byte slots at <= 70% load, plus about 7 bytes of key each.
    size_t memory = tl_table_memory (table);
    cr_assert_gt (memory, memory_small);
    cr_assert_gt (memory, n * (24 + 6));
    cr_assert_lt (memory, n * (24 * 2 / 0.7 + 16), "memory %zu", memory);
    tl_table_destroy (&table);
}

//  tl_table_expect: an array grown ahead takes the keys as a new one would. In
//  test_table_grow (TL_TABLE_MAP_MIN=16, TL_TABLE_AHEAD_MIN=16) this table's arrays
//  are grown ahead for nearly every doubling.
Test (table, growth_grown_ahead_and_in_place)
{
    const size_t n = 300000;
    tl_table_t *table = s_new (0);
    char key[32];
    uint64_t sum = 0;
    size_t prepared = 0;  //  Adds after which the memory jumped with no doubling
    for (size_t i = 0; i < n; i++) {
        size_t len = s_key (key, sizeof key, i);
        cr_assert_eq (tl_table_add (table, key, len, i % 5 + 1), 0);
        sum += i % 5 + 1;
        size_t before = tl_table_memory (table);
        //  Too few keys expected: nothing is prepared
        tl_table_expect (table, tl_table_size (table));
        cr_assert_eq (tl_table_memory (table), before);
        tl_table_expect (table, n);
        if (tl_table_memory (table) > before) prepared++;
    }
#if defined(TL_TABLE_MAP_MIN) && defined(TL_TABLE_AHEAD_MIN)
    cr_assert_geq (prepared, 10, "arrays prepared ahead: %zu", prepared);
#else
    cr_assert_eq (prepared, 0, "a table this small prepares nothing");
#endif
    s_add_again_and_check (table, n, 5, 2, 1000, sum);
    //  A table holding a prepared array can be sorted (the array goes) or destroyed.
    tl_table_expect (table, 4 * n);
    size_t size = 0;
    tl_entry_t *entries = tl_table_sorted_take (table, &size);
    cr_assert_eq (size, n);
    cr_assert_eq (entries[0].count, 1005);
    tl_table_entries_free (entries);
    tl_table_destroy (&table);
    table = s_new (0);
    for (size_t i = 0; i < 100000; i++) {
        size_t len = s_key (key, sizeof key, i);
        cr_assert_eq (tl_table_add (table, key, len, 1), 0);
        tl_table_expect (table, 1000000);
    }
    tl_table_destroy (&table);
}

Test (table, saturation)
{
    const uint64_t max = UINT64_MAX;
    static const struct {
        uint64_t first;   //  Initial total
        uint64_t add;     //  Then added
        int expect_rc;    //  tl_table_add's result for the second add
        uint64_t expect;  //  Total after it
    } cases[] = {
        {UINT64_MAX - 1, 1, 0, UINT64_MAX},
        {UINT64_MAX - 1, 2, 1, UINT64_MAX},
        {UINT64_MAX, 0, 0, UINT64_MAX},
        {UINT64_MAX, 1, 1, UINT64_MAX},
        {UINT64_MAX, UINT64_MAX, 1, UINT64_MAX},
        {1, UINT64_MAX, 1, UINT64_MAX},
        {UINT64_MAX / 2, UINT64_MAX / 2 + 1, 0, UINT64_MAX},
        {UINT64_MAX / 2 + 1, UINT64_MAX / 2 + 1, 1, UINT64_MAX},
        {0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_table_t *table = s_new (0);
        cr_assert_eq (tl_table_add (table, "k", 1, cases[i].first), 0, "case %zu", i);
        cr_assert_eq (tl_table_add (table, "k", 1, cases[i].add), cases[i].expect_rc, "case %zu",
                      i);
        cr_assert_eq (s_get (table, "k", 1), cases[i].expect, "case %zu", i);
        cr_assert_eq (tl_table_sum (table), cases[i].expect, "case %zu", i);
        if (cases[i].expect == max) {
            cr_assert_eq (tl_table_add (table, "k", 1, 1), 1, "case %zu stays saturated", i);
            cr_assert_eq (s_get (table, "k", 1), max, "case %zu", i);
        }
        cr_assert_eq (tl_table_size (table), 1);
        tl_table_destroy (&table);
    }
    //  The sum saturates across keys even when no single total does.
    tl_table_t *table = s_new (0);
    cr_assert_eq (tl_table_add (table, "a", 1, max / 2 + 1), 0);
    cr_assert_eq (tl_table_add (table, "b", 1, max / 2 + 1), 0);
    cr_assert_eq (tl_table_sum (table), max);
    cr_assert_eq (s_get (table, "a", 1), max / 2 + 1);
    tl_table_destroy (&table);
}

Test (table, key_length_limit)
{
    char *big = malloc (TL_KEY_MAX + 1);
    cr_assert_not_null (big);
    memset (big, 'x', TL_KEY_MAX + 1);
    tl_table_t *table = s_new (0);
    cr_assert_eq (tl_table_add (table, "a", 1, 3), 0);
    size_t memory = tl_table_memory (table);

    static const size_t too_long[] = {TL_KEY_MAX + 1, SIZE_MAX};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq (tl_table_add (table, big, too_long[i], 1), -1, "len %zu", too_long[i]);
        cr_assert_eq (tl_table_size (table), 1);
        cr_assert_eq (tl_table_sum (table), 3);
        cr_assert_eq (tl_table_memory (table), memory);
        cr_assert_not (tl_table_get (table, big, too_long[i], NULL));
    }
    //  The limit itself is accepted, and is a different key from its prefix.
    cr_assert_eq (tl_table_add (table, big, TL_KEY_MAX, 2), 0);
    cr_assert_eq (tl_table_add (table, big, TL_KEY_MAX - 1, 5), 0);
    cr_assert_eq (tl_table_add (table, big, TL_KEY_MAX, 2), 0);
    cr_assert_eq (s_get (table, big, TL_KEY_MAX), 4);
    cr_assert_eq (s_get (table, big, TL_KEY_MAX - 1), 5);
    cr_assert_eq (tl_table_size (table), 3);
    size_t cursor = 0, longest = 0;
    tl_entry_t entry;
    while (tl_table_next (table, &cursor, &entry))
        if (entry.len > longest) longest = entry.len;
    cr_assert_eq (longest, TL_KEY_MAX);
    tl_table_destroy (&table);
    free (big);
}

//  tl_table_add_batch against one tl_table_add per entry: batches of every size up to
//  TL_TABLE_BATCH, with keys repeated inside a batch, the table growing mid-batch, keys
//  of 0 to 40 bytes (both sides of the 8-byte compare steps); saturation counted per
//  entry; a too-long key fails the batch after the entries before it.
Test (table, add_batch_equals_one_add_per_entry)
{
    s_rand_state = 42;
    tl_table_t *batched = s_new (0), *single = s_new (0);
    static char keys[4000][48];
    size_t lens[4000];
    for (size_t i = 0; i < 4000; i++) {
        lens[i] = s_rand () % 41;
        for (size_t j = 0; j < lens[i]; j++)
            keys[i][j] = (char)('a' + s_rand () % 3);  //  Many shared prefixes
    }
    for (size_t round = 0; round < 20000; round++) {
        tl_kv_t kv[TL_TABLE_BATCH];
        size_t n = s_rand () % (TL_TABLE_BATCH + 1);
        int saturated = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k = s_rand () % (round < 100 ? 40 : 4000);
            uint64_t count = s_rand () % 1000 == 0 ? UINT64_MAX / 3 : s_rand () % 100;
            kv[i] = (tl_kv_t){keys[k], lens[k], count};
            int rc = tl_table_add (single, keys[k], lens[k], count);
            cr_assert (rc == 0 || rc == 1);
            saturated += rc;
        }
        cr_assert_eq (tl_table_add_batch (batched, kv, n), saturated, "round %zu", round);
    }
    cr_assert_eq (tl_table_size (batched), tl_table_size (single));
    cr_assert_eq (tl_table_sum (batched), tl_table_sum (single));
    size_t cursor = 0;
    tl_entry_t entry;
    while (tl_table_next (single, &cursor, &entry))
        cr_assert_eq (s_get (batched, entry.key, entry.len), entry.count, "key %.*s",
                      (int)entry.len, entry.key);

    char *big = malloc (TL_KEY_MAX + 1);
    cr_assert_not_null (big);
    memset (big, 'x', TL_KEY_MAX + 1);
    tl_table_t *table = s_new (0);
    tl_kv_t kv[] = {{"a", 1, 1}, {big, TL_KEY_MAX, 2}, {big, TL_KEY_MAX + 1, 3}, {"b", 1, 4}};
    cr_assert_eq (tl_table_add_batch (table, kv, 4), -1);
    cr_assert_eq (tl_table_size (table), 2, "the entries before the long key are added");
    cr_assert_eq (s_get (table, big, TL_KEY_MAX), 2);
    cr_assert_not (tl_table_get (table, "b", 1, NULL));
    cr_assert_eq (tl_table_add_batch (table, kv, 0), 0);
    free (big);
    tl_table_destroy (&table);
    tl_table_destroy (&batched);
    tl_table_destroy (&single);
}

//  Keys of lengths around the arena's block sizes (4 KiB first block, 128 KiB own-block
//  threshold, 8 MiB largest block), mixed with short keys, before and after clears.
Test (table, arena_key_lengths)
{
    static const size_t lengths[] = {1,      2,      4095,   4096,    4097,    65536,
                                     131071, 131072, 131073, 500000,  1048575, 1048576,
                                     3,      8191,   262144, 1000000, 7,       100000};
    size_t n = sizeof lengths / sizeof lengths[0];
    char *buf = malloc (TL_KEY_MAX);
    cr_assert_not_null (buf);
    tl_table_t *table = s_new (0);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            memset (buf, 'a' + (int)(i % 26), lengths[i]);
            buf[0] = (char)i;
            cr_assert_eq (tl_table_add (table, buf, lengths[i], i + 1), 0, "len %zu", lengths[i]);
            cr_assert_eq (tl_table_add (table, "s", 1, 1), 0);
        }
        cr_assert_eq (tl_table_size (table), n + 1);
        for (size_t i = 0; i < n; i++) {
            memset (buf, 'a' + (int)(i % 26), lengths[i]);
            buf[0] = (char)i;
            cr_assert_eq (s_get (table, buf, lengths[i]), i + 1, "round %d len %zu", round,
                          lengths[i]);
        }
        cr_assert_eq (s_get (table, "s", 1), n);
        size_t before = tl_table_memory (table);
        tl_table_clear (table);
        cr_assert_leq (tl_table_memory (table), before);
        cr_assert_eq (tl_table_size (table), 0);
    }
    tl_table_destroy (&table);

    //  Keys of 128 KiB, the longest that share blocks, fill blocks up to 8 MiB and then
    //  several of 8 MiB; each is found whole.
    table = s_new (0);
    for (size_t i = 0; i < 200; i++) {
        memset (buf, 'a' + (int)(i % 26), 131072);
        memcpy (buf, &i, sizeof i);
        cr_assert_eq (tl_table_add (table, buf, 131072, i), 0);
    }
    for (size_t i = 0; i < 200; i++) {
        memset (buf, 'a' + (int)(i % 26), 131072);
        memcpy (buf, &i, sizeof i);
        cr_assert_eq (s_get (table, buf, 131072), i, "key %zu", i);
    }
    cr_assert_lt (tl_table_memory (table), 200 * 131072 + 17 * 1048576, "memory %zu",
                  tl_table_memory (table));
    tl_table_destroy (&table);

    //  Keys over 128 KiB get blocks of their own, so the large blocks' tails are not
    //  wasted: ten 600 KB keys take about 6 MB, not 10 MiB.
    table = s_new (0);
    for (size_t i = 0; i < 10; i++) {
        memset (buf, 'a' + (int)i, 600000);
        cr_assert_eq (tl_table_add (table, buf, 600000, 1), 0);
    }
    cr_assert_lt (tl_table_memory (table), 6500000, "memory %zu", tl_table_memory (table));
    tl_table_destroy (&table);
    free (buf);
}

//  Clear on tables of several shapes: small (memset), large and sparse (the touched
//  list), and filled past the touched list. Each round's keys must not leak into the next,
//  and rounds of equal keys and key bytes must reuse the memory of the first.
Test (table, clear_then_reuse)
{
    static const struct {
        size_t hint;  //  Capacity hint
        size_t keys;  //  Distinct keys per round
    } cases[] = {{0, 5}, {0, 5000}, {1 << 20, 10}, {1 << 16, 20000}, {100, 1}, {0, 0}};
    char key[32];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tl_table_t *table = s_new (cases[c].hint);
        size_t memory = 0;
        for (size_t round = 0; round < 4; round++) {
            size_t base = round * cases[c].keys;
            for (size_t i = 0; i < cases[c].keys; i++) {
                size_t len = s_key_fixed (key, sizeof key, base + i);
                cr_assert_eq (tl_table_add (table, key, len, round + 1), 0);
            }
            cr_assert_eq (tl_table_size (table), cases[c].keys);
            cr_assert_eq (tl_table_sum (table), cases[c].keys * (round + 1));
            for (size_t i = 0; i < cases[c].keys; i++) {
                size_t len = s_key_fixed (key, sizeof key, base + i);
                cr_assert_eq (s_get (table, key, len), round + 1, "case %zu round %zu", c, round);
            }
            if (round > 0)
                for (size_t i = 0; i < cases[c].keys; i++) {
                    size_t len = s_key_fixed (key, sizeof key, base - cases[c].keys + i);
                    cr_assert_not (tl_table_get (table, key, len, NULL),
                                   "case %zu: key %s of the previous round", c, key);
                }
            size_t cursor = 0, visits = 0;
            tl_entry_t entry;
            while (tl_table_next (table, &cursor, &entry)) {
                cr_assert_eq (entry.count, round + 1, "case %zu: stale entry", c);
                visits++;
            }
            cr_assert_eq (visits, cases[c].keys, "case %zu round %zu", c, round);
            if (round == 1) memory = tl_table_memory (table);
            if (round > 1)
                cr_assert_eq (tl_table_memory (table), memory, "case %zu: reuse must not allocate",
                              c);
            tl_table_clear (table);
            cr_assert_eq (tl_table_size (table), 0);
            cr_assert_eq (tl_table_sum (table), 0);
            cursor = 0;
            cr_assert_not (tl_table_next (table, &cursor, &entry));
        }
        tl_table_destroy (&table);
    }
}

Test (table, iteration_visits_each_key_once)
{
    const size_t n = 20000;
    unsigned char *seen = calloc (n, 1);
    cr_assert_not_null (seen);
    tl_table_t *table = s_new (0);
    char key[32];
    for (size_t i = 0; i < n; i++)
        cr_assert_eq (tl_table_add (table, key, s_key (key, sizeof key, i), i * 3), 0);
    size_t cursor = 0, visits = 0;
    tl_entry_t entry;
    while (tl_table_next (table, &cursor, &entry)) {
        cr_assert (entry.len > 1 && entry.len < 10 && entry.key[0] == 'k');
        char text[16] = {0};
        memcpy (text, entry.key + 1, entry.len - 1);
        size_t index = strtoul (text, NULL, 10);
        cr_assert_lt (index, n);
        cr_assert_eq (seen[index], 0, "key %zu visited twice", index);
        seen[index] = 1;
        cr_assert_eq (entry.count, index * 3);
        visits++;
    }
    cr_assert_eq (visits, n);
    cr_assert_not (tl_table_next (table, &cursor, &entry), "stays done");
    free (seen);
    tl_table_destroy (&table);
}

Test (table, entries_survive_growth)
{
    tl_table_t *table = s_new (0);
    cr_assert_eq (tl_table_add (table, "first", 5, 9), 0);
    cr_assert_eq (tl_table_add (table, "second", 6, 8), 0);
    size_t size;
    tl_entry_t *entries = tl_table_sorted (table, &size);
    cr_assert_eq (size, 2);
    char key[32];
    for (size_t i = 0; i < 100000; i++)
        cr_assert_eq (tl_table_add (table, key, s_key (key, sizeof key, i), 1), 0);
    cr_assert (s_entry_is (&entries[0], "first", 5, 9));
    cr_assert (s_entry_is (&entries[1], "second", 6, 8));
    tl_table_entries_free (entries);
    tl_table_destroy (&table);
}

Test (table, merge)
{
    tl_table_t *a = s_new (0);
    tl_table_t *b = s_new (0);
    tl_table_t *empty = s_new (0);
    char key[32];
    //  a: k0..k29999 count 1; b: k20000..k49999 count 2 (10000 shared).
    for (size_t i = 0; i < 30000; i++)
        cr_assert_eq (tl_table_add (a, key, s_key (key, sizeof key, i), 1), 0);
    for (size_t i = 20000; i < 50000; i++)
        cr_assert_eq (tl_table_add (b, key, s_key (key, sizeof key, i), 2), 0);
    cr_assert_eq (tl_table_add (b, "", 0, 7), 0);

    cr_assert_eq (tl_table_merge (a, empty), 0);
    cr_assert_eq (tl_table_size (a), 30000);
    cr_assert_eq (tl_table_merge (a, b), 0);
    cr_assert_eq (tl_table_size (a), 50001);
    cr_assert_eq (tl_table_sum (a), 30000 + 30000 * 2 + 7);
    for (size_t i = 0; i < 50000; i++) {
        size_t len = s_key (key, sizeof key, i);
        uint64_t expect = (i < 30000 ? 1 : 0) + (i >= 20000 ? 2 : 0);
        cr_assert_eq (s_get (a, key, len), expect, "key %s", key);
    }
    cr_assert_eq (s_get (a, "", 0), 7);
    cr_assert_eq (tl_table_size (b), 30001, "other is unchanged");
    cr_assert_eq (s_get (b, "k20000", 6), 2);

    cr_assert_eq (tl_table_merge (empty, b), 0);
    cr_assert_eq (tl_table_size (empty), 30001);
    cr_assert_eq (tl_table_sum (empty), tl_table_sum (b));

    //  Merging a table into itself doubles every total.
    cr_assert_eq (tl_table_merge (b, b), 0);
    cr_assert_eq (tl_table_size (b), 30001);
    cr_assert_eq (s_get (b, "k49999", 6), 4);

    tl_table_t *big = s_new (0);
    cr_assert_eq (tl_table_add (big, "k0", 2, UINT64_MAX), 0);
    cr_assert_eq (tl_table_merge (big, a), 1, "a saturated total is reported");
    cr_assert_eq (s_get (big, "k0", 2), UINT64_MAX);
    cr_assert_eq (s_get (big, "k1", 2), 1);
    cr_assert_eq (tl_table_size (big), 50001);

    tl_table_destroy (&a);
    tl_table_destroy (&b);
    tl_table_destroy (&empty);
    tl_table_destroy (&big);
}

Test (table, entry_compare)
{
    static const struct {
        tl_entry_t a;  //  Left operand
        tl_entry_t b;  //  Right operand
        int sign;      //  Expected sign of tl_entry_compare (a, b)
    } cases[] = {
        {{"a", 1, 5}, {"a", 1, 4}, -1},          {{"z", 1, 9}, {"a", 1, 1}, -1},
        {{"a", 1, 5}, {"b", 1, 5}, -1},          {{"ab", 2, 3}, {"abc", 3, 3}, -1},
        {{"abc", 3, 3}, {"ab", 2, 3}, 1},        {{"", 0, 3}, {"a", 1, 3}, -1},
        {{"a\0", 2, 1}, {"a", 1, 1}, 1},         {{"a\0", 2, 1}, {"a\x01", 2, 1}, -1},
        {{"\xff", 1, 1}, {"\x7f", 1, 1}, 1},     {{"B", 1, 1}, {"a", 1, 1}, -1},
        {{"same", 4, 2}, {"same", 4, 2}, 0},     {{"", 0, 0}, {"", 0, 0}, 0},
        {{"x", 1, UINT64_MAX}, {"x", 1, 0}, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = tl_entry_compare (&cases[i].a, &cases[i].b);
        int sign = (rc > 0) - (rc < 0);
        cr_assert_eq (sign, cases[i].sign, "case %zu: got %d", i, rc);
        int back = tl_entry_compare (&cases[i].b, &cases[i].a);
        cr_assert_eq ((back > 0) - (back < 0), -cases[i].sign, "case %zu reversed", i);
    }
}

//  Keys and counts with ties on count broken by key bytes, prefixes and high bytes, in the
//  order tl_table_sorted must produce.
static const struct {
    const char *key;  //  Key bytes
    size_t len;       //  Key length
    uint64_t count;   //  Total
} s_sorted_expect[] = {
    {"zz", 2, 7},    {"a", 1, 5},      {"b", 1, 5},    {"", 0, 3},     {"B", 1, 3},
    {"ab", 2, 3},    {"ab\0", 3, 3},   {"abc", 3, 3},  {"\xff", 1, 3}, {"a\0", 2, 1},
    {"a\x01", 2, 1}, {"a\x01x", 3, 1}, {"zero", 4, 0},
};
#define SORTED_EXPECT_SIZE (sizeof s_sorted_expect / sizeof s_sorted_expect[0])

static tl_table_t *s_sorted_table (void)
{
    tl_table_t *table = s_new (0);
    //  Insert in reverse so that insertion order cannot explain a right answer.
    for (size_t i = SORTED_EXPECT_SIZE; i-- > 0;)
        cr_assert_eq (tl_table_add (table, s_sorted_expect[i].key, s_sorted_expect[i].len,
                                    s_sorted_expect[i].count),
                      0);
    return table;
}

Test (table, sorted_order)
{
    tl_table_t *table = s_sorted_table ();
    size_t size = 99;
    tl_entry_t *entries = tl_table_sorted (table, &size);
    cr_assert_not_null (entries);
    cr_assert_eq (size, SORTED_EXPECT_SIZE);
    for (size_t i = 0; i < size; i++)
        cr_assert (s_entry_is (&entries[i], s_sorted_expect[i].key, s_sorted_expect[i].len,
                               s_sorted_expect[i].count),
                   "position %zu: got %.*s (%llu)", i, (int)entries[i].len, entries[i].key,
                   (unsigned long long)entries[i].count);
    tl_table_entries_free (entries);
    tl_table_destroy (&table);
}

//  Asserts top-k equals the first k of sorted, for k around the edges.
static void s_check_top (tl_table_t *table)
{
    size_t size;
    tl_entry_t *sorted = tl_table_sorted (table, &size);
    cr_assert_eq (size, tl_table_size (table));
    const size_t ks[] = {0, 1, 2, 3, 10, size / 2, size - 1, size, size + 1, size + 100};
    tl_entry_t *top = calloc (size + 100, sizeof (tl_entry_t));
    cr_assert_not_null (top);
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        size_t k = ks[i];
        size_t n = tl_table_top (table, k, top);
        cr_assert_eq (n, k < size ? k : size, "k %zu", k);
        for (size_t j = 0; j < n; j++)
            cr_assert (s_entry_is (&top[j], sorted[j].key, sorted[j].len, sorted[j].count),
                       "k %zu position %zu", k, j);
    }
    free (top);
    tl_table_entries_free (sorted);
}

Test (table, top_k_equals_sorted_prefix)
{
    tl_table_t *table = s_sorted_table ();
    s_check_top (table);
    tl_table_destroy (&table);

    //  Many ties: 3000 keys over 5 counts, keys with shared prefixes.
    s_rand_state = 7;
    table = s_new (0);
    char key[32];
    for (size_t i = 0; i < 3000; i++) {
        size_t len = (size_t)snprintf (key, sizeof key, "%zu", i);
        cr_assert_eq (tl_table_add (table, key, len, s_rand () % 5), 0);
    }
    s_check_top (table);
    tl_table_destroy (&table);
}

Test (table, empty_table_every_call)
{
    tl_table_t *table = s_new (0);
    tl_table_t *other = s_new (0);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq (tl_table_size (table), 0);
        cr_assert_eq (tl_table_sum (table), 0);
        cr_assert_gt (tl_table_memory (table), 0);
        cr_assert_not (tl_table_get (table, "", 0, NULL));
        cr_assert_not (tl_table_get (table, "a", 1, NULL));
        size_t cursor = 0;
        tl_entry_t entry;
        cr_assert_not (tl_table_next (table, &cursor, &entry));
        size_t size = 5;
        cr_assert_null (tl_table_sorted (table, &size));
        cr_assert_eq (size, 0);
        tl_entry_t out[2];
        cr_assert_eq (tl_table_top (table, 2, out), 0);
        cr_assert_eq (tl_table_top (table, 0, NULL), 0);
        cr_assert_eq (tl_table_merge (table, other), 0);
        cr_assert_eq (tl_table_size (table), 0);
        tl_table_clear (table);
    }
    tl_table_destroy (&table);
    tl_table_destroy (&other);

    static const size_t hints[] = {1, 2, 11, 12, 1000, 100000};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        table = s_new (hints[i]);
        cr_assert_eq (tl_table_size (table), 0);
        //  Sized for the hint: 24-byte slots for at least hint / 0.7 keys.
        cr_assert_geq (tl_table_memory (table), hints[i] * 24 * 10 / 7, "hint %zu", hints[i]);
        tl_table_destroy (&table);
    }
    cr_assert_null (tl_table_new (SIZE_MAX), "an impossible hint fails cleanly");
    cr_assert_null (tl_table_new (SIZE_MAX / 3));
}

//  Independent ordering for the reference: count descending, then bytes as unsigned
//  values, then the shorter key first.
static int s_reference_compare (const void *a, const void *b)
{
    const tl_entry_t *x = a;
    const tl_entry_t *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    for (uint32_t i = 0; i < x->len && i < y->len; i++) {
        unsigned char cx = (unsigned char)x->key[i];
        unsigned char cy = (unsigned char)y->key[i];
        if (cx != cy) return cx < cy ? -1 : 1;
    }
    return x->len == y->len ? 0 : x->len < y->len ? -1 : 1;
}

//  The reference: every key of length 0..6 over a 4-byte alphabet has a fixed index, so a
//  dense array of totals is a brute-force model of the table.
#define REF_ALPHABET 4
#define REF_LEN_MAX  6
#define REF_KEYS     5461  //  4^0 + 4^1 + ... + 4^6
static const char s_alphabet[REF_ALPHABET] = {'a', 'b', '\0', '\xff'};

static size_t s_reference_key (size_t index, char *key)
{
    size_t len = 0, first = 0, span = 1;
    while (index >= first + span) {
        first += span;
        span *= REF_ALPHABET;
        len++;
    }
    size_t value = index - first;
    for (size_t i = 0; i < len; i++, value /= REF_ALPHABET)
        key[i] = s_alphabet[value % REF_ALPHABET];
    return len;
}

typedef struct {
    uint64_t total[REF_KEYS];  //  Expected total per key index
    bool present[REF_KEYS];    //  Whether the key was added since the last clear
} reference_t;

static void s_reference_check (tl_table_t *table, reference_t *ref)
{
    char key[REF_LEN_MAX];
    size_t size = 0;
    uint64_t sum = 0;
    tl_entry_t *expect = calloc (REF_KEYS, sizeof (tl_entry_t));
    char (*keys)[REF_LEN_MAX] = calloc (REF_KEYS, REF_LEN_MAX);
    cr_assert (expect && keys);
    for (size_t i = 0; i < REF_KEYS; i++) {
        size_t len = s_reference_key (i, key);
        uint64_t count = 0;
        bool found = tl_table_get (table, key, len, &count);
        cr_assert_eq (found, ref->present[i], "key %zu presence", i);
        if (!found) continue;
        cr_assert_eq (count, ref->total[i], "key %zu total", i);
        sum = sum > UINT64_MAX - count ? UINT64_MAX : sum + count;
        memcpy (keys[size], key, len);
        expect[size] = (tl_entry_t){keys[size], (uint32_t)len, count};
        size++;
    }
    cr_assert_eq (tl_table_size (table), size);
    cr_assert_eq (tl_table_sum (table), sum);
    qsort (expect, size, sizeof (tl_entry_t), s_reference_compare);

    size_t got_size;
    tl_entry_t *got = tl_table_sorted (table, &got_size);
    cr_assert_eq (got_size, size);
    for (size_t i = 0; i < size; i++)
        cr_assert (s_entry_is (&got[i], expect[i].key, expect[i].len, expect[i].count),
                   "sorted position %zu", i);
    size_t k = size / 3 + 1;
    tl_entry_t *top = calloc (k, sizeof (tl_entry_t));
    cr_assert_not_null (top);
    size_t n = tl_table_top (table, k, top);
    cr_assert_eq (n, size ? k : 0);
    for (size_t i = 0; i < n; i++)
        cr_assert (s_entry_is (&top[i], expect[i].key, expect[i].len, expect[i].count),
                   "top position %zu", i);
    free (top);
    tl_table_entries_free (got);
    free (keys);
    free (expect);
}

Test (table, randomized_against_reference)
{
    s_rand_state = 20120701;
    reference_t *ref = calloc (1, sizeof (reference_t));
    tl_table_t *table = s_new (0);
    tl_table_t *other = s_new (0);
    cr_assert_not_null (ref);
    char key[REF_LEN_MAX];
    for (int round = 0; round < 6; round++) {
        size_t ops = 2000 + s_rand () % 30000;
        for (size_t op = 0; op < ops; op++) {
            size_t index = s_rand () % REF_KEYS;
            //  Short keys repeat more: skew a third of the picks to the first 85 keys.
            if (s_rand () % 3 == 0) index %= 85;
            size_t len = s_reference_key (index, key);
            uint64_t roll = s_rand () % 1000;
            uint64_t count = roll < 5 ? UINT64_MAX / 3 : roll < 10 ? 0 : s_rand () % 1000;
            int expect_rc = ref->total[index] > UINT64_MAX - count;
            ref->total[index] = expect_rc ? UINT64_MAX : ref->total[index] + count;
            ref->present[index] = true;
            cr_assert_eq (tl_table_add (table, key, len, count), expect_rc, "round %d op %zu",
                          round, op);
            if (s_rand () % 20000 == 0) {
                tl_table_clear (table);
                memset (ref, 0, sizeof (reference_t));
            }
        }
        s_reference_check (table, ref);

        //  Merge a second random table in, checked the same way.
        tl_table_clear (other);
        for (size_t op = 0; op < 500; op++) {
            size_t index = s_rand () % REF_KEYS;
            size_t len = s_reference_key (index, key);
            uint64_t count = s_rand () % 50;
            cr_assert_eq (tl_table_add (other, key, len, count), 0);
            ref->total[index] =
                ref->total[index] > UINT64_MAX - count ? UINT64_MAX : ref->total[index] + count;
            ref->present[index] = true;
        }
        cr_assert_geq (tl_table_merge (table, other), 0);
        s_reference_check (table, ref);
        if (round % 2 == 1) {
            tl_table_clear (table);
            memset (ref, 0, sizeof (reference_t));
            s_reference_check (table, ref);
        }
    }
    tl_table_destroy (&table);
    tl_table_destroy (&other);
    free (ref);
}

//  tl_table_sorted on many keys (its threaded path) against qsort with the reference
//  order, in shapes that test each part of its comparison: totals with many ties, keys
//  that share their first 8 bytes (or differ only after them), keys that are prefixes of
//  others, zero bytes inside the first 8 (which the packed prefix pads with), the empty
//  key; and keys added in ascending, descending and organ-pipe order with one total, the
//  orders that defeat a naive quicksort.
static void s_check_sorted_against_reference (const char *shape, size_t n,
                                              void (*make) (size_t i, char *key, size_t *len,
                                                            uint64_t *count))
{
    tl_table_t *table = tl_table_new (16);
    char (*keys)[32] = calloc (n, 32);
    tl_entry_t *expect = calloc (n, sizeof (tl_entry_t));
    cr_assert (table && keys && expect);
    size_t size = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint64_t count;
        make (i, keys[size], &len, &count);
        uint64_t old;
        if (tl_table_get (table, keys[size], len, &old)) continue;  //  Made twice: once
        cr_assert_eq (tl_table_add (table, keys[size], len, count), 0);
        expect[size] = (tl_entry_t){keys[size], (uint32_t)len, count};
        size++;
    }
    qsort (expect, size, sizeof (tl_entry_t), s_reference_compare);
    uint64_t sum = tl_table_sum (table);
    //  Into a new array, then in the table's own slots
    for (int take = 0; take < 2; take++) {
        size_t got_size;
        tl_entry_t *got =
            take ? tl_table_sorted_take (table, &got_size) : tl_table_sorted (table, &got_size);
        cr_assert_eq (got_size, size, "%s", shape);
        for (size_t i = 0; i < size; i++)
            cr_assert (s_entry_is (&got[i], expect[i].key, expect[i].len, expect[i].count),
                       "%s%s: position %zu of %zu: got %.*s (%llu)", shape,
                       take ? " (in place)" : "", i, size, (int)got[i].len, got[i].key,
                       (unsigned long long)got[i].count);
        tl_table_entries_free (got);
    }
    cr_assert_eq (tl_table_size (table), size, "%s: size after the slots were taken", shape);
    cr_assert_eq (tl_table_sum (table), sum, "%s: sum after the slots were taken", shape);
    free (expect);
    free (keys);
    tl_table_destroy (&table);
}

static uint64_t s_mix (uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

//  Keys of 0 to 19 bytes over a few bytes (0x00, 'a', 'b', 0xff): many share 8 bytes,
//  many are prefixes of others; totals mostly 1 to 3, some large.
static void s_make_mixed (size_t i, char *key, size_t *len, uint64_t *count)
{
    static const char alphabet[] = {'\0', 'a', 'b', '\xff'};
    uint64_t r = s_mix (i + 1);
    *len = r % 20;
    for (size_t j = 0; j < *len; j++)
        key[j] = alphabet[(s_mix (r + j) >> 7) % 4];
    *count = r % 10 < 8 ? 1 + (r >> 20) % 3 : r >> 40;
}

//  "prefix12-" and a number: every key shares its first 8 bytes, one total.
static void s_make_shared_prefix (size_t i, char *key, size_t *len, uint64_t *count)
{
    *len = (size_t)snprintf (key, 32, "prefix12-%zu", s_mix (i) % 1000000000);
    *count = 7;
}

//  20 shared bytes, then 0 to 11 of 0x00, 'a' and 0xff: the radix sort reads keys 8
//  bytes further at a time (bytes 8-15, 16-23, 24-31), and zero bytes there meet the
//  zero padding of keys that end; totals 1 and 2.
static void s_make_long_shared (size_t i, char *key, size_t *len, uint64_t *count)
{
    static const char alphabet[] = {'\0', 'a', '\xff'};
    uint64_t r = s_mix (i + 7);
    memcpy (key, "shared-twenty-bytes-", 20);
    *len = 20 + r % 12;
    for (size_t j = 20; j < *len; j++)
        key[j] = alphabet[(s_mix (r + j) >> 9) % 3];
    *count = 1 + (r >> 50) % 2;
}

//  Groups of up to 16 keys that share 28 bytes, the group's number first, then 0 to 4
//  of 0x00, 'a' and 0xff; totals 1 and 2: the radix sort splits the groups apart on
//  their first bytes, and each small range left reads its keys 8 bytes further at a
//  time, three times over, before they differ.
static void s_make_small_groups (size_t i, char *key, size_t *len, uint64_t *count)
{
    static const char alphabet[] = {'\0', 'a', '\xff'};
    uint64_t r = s_mix (i + 11);
    snprintf (key, 32, "%08llu-twenty-shared-bytes",
              (unsigned long long)(s_mix (i / 16) % 100000000));
    *len = 28 + r % 5;
    for (size_t j = 28; j < *len; j++)
        key[j] = alphabet[(s_mix (r + j) >> 9) % 3];
    *count = 1 + (r >> 50) % 2;
}

//  Totals of every magnitude, 0 to 2^64 - 1, shifted right by 0 to 63 bits (the sort's
//  first pass puts the totals below 2^15 in a bucket each and the others in one per
//  power of two), over 6-byte keys.
static void s_make_magnitudes (size_t i, char *key, size_t *len, uint64_t *count)
{
    uint64_t r = s_mix (i + 13);
    *len = (size_t)snprintf (key, 32, "%06llu", (unsigned long long)(r % 1000000));
    *count = s_mix (r) >> (r >> 58);
}

//  Totals at the edges of the sort's buckets (one per total below 2^15, one per power of
//  two above; a small total's records carry 16 key bytes in its place), 0 and 2^64-1
//  among them; keys of 0 to 23 bytes that share up to 20, with zero and 0xff bytes.
static void s_make_bucket_edges (size_t i, char *key, size_t *len, uint64_t *count)
{
    static const uint64_t totals[] = {0,     1,     2,     32766, 32767,      32768,
                                      32769, 65535, 65536, 65537, UINT64_MAX, UINT64_MAX - 1};
    uint64_t r = s_mix (i + 29);
    *count = totals[r % (sizeof totals / sizeof totals[0])];
    *len = (size_t)(r >> 8) % 24;
    static const char shared[] = "edges of the buckets!";  //  21 bytes
    size_t keep = (size_t)(r >> 16) % 21;
    for (size_t j = 0; j < *len; j++)
        key[j] = j < keep ? shared[j] : "\0a\xff"[(s_mix (r + j) >> 9) % 3];
}

static size_t s_organ (size_t i, size_t n)
{
    return i < n / 2 ? i : n - 1 - i;
}

static void s_make_ascending (size_t i, char *key, size_t *len, uint64_t *count)
{
    *len = (size_t)snprintf (key, 32, "%012zu", i);
    *count = 1;
}

static void s_make_descending (size_t i, char *key, size_t *len, uint64_t *count)
{
    *len = (size_t)snprintf (key, 32, "%012zu", 1000000 - i);
    *count = 1;
}

static void s_make_organ (size_t i, char *key, size_t *len, uint64_t *count)
{
    *len = (size_t)snprintf (key, 32, "%06zu%06zu", s_organ (i, 300000), i);
    *count = 1;
}

Test (table, sorted_many_keys_against_reference)
{
    s_check_sorted_against_reference ("mixed", 300000, s_make_mixed);
    s_check_sorted_against_reference ("totals of every magnitude", 300000, s_make_magnitudes);
    s_check_sorted_against_reference ("shared 8-byte prefix", 300000, s_make_shared_prefix);
    s_check_sorted_against_reference ("shared 20 bytes", 300000, s_make_long_shared);
    s_check_sorted_against_reference ("small groups sharing 28 bytes", 300000, s_make_small_groups);
    s_check_sorted_against_reference ("ascending", 300000, s_make_ascending);
    s_check_sorted_against_reference ("descending", 300000, s_make_descending);
    s_check_sorted_against_reference ("organ pipe", 300000, s_make_organ);
    s_check_sorted_against_reference ("totals at the buckets' edges", 300000, s_make_bucket_edges);
}

//  The sanitizers reserve address space of their own: no limit can be set under them.
#ifndef TEST_SANITIZED
//  Returns the process's virtual memory size in bytes (from /proc/self/statm).
static size_t s_vm_bytes (void)
{
    FILE *file = fopen ("/proc/self/statm", "r");
    cr_assert_not_null (file);
    unsigned long pages = 0;
    cr_assert_eq (fscanf (file, "%lu", &pages), 1);
    fclose (file);
    return pages * (size_t)sysconf (_SC_PAGESIZE);
}

//  Under an address-space limit, adds fail with -1 and leave the table as it was: short
//  keys run out when the slot array doubles, 200 KB keys when their arena block is taken.
Test (table, out_of_memory_leaves_table_unchanged)
{
    static const size_t lengths[] = {12, 200000};
    char *buf = malloc (200000);
    cr_assert_not_null (buf);
    for (size_t c = 0; c < 2; c++) {
        size_t len = lengths[c];
        tl_table_t *table = s_new (0);
        struct rlimit saved, limit;
        cr_assert_eq (getrlimit (RLIMIT_AS, &saved), 0);
        limit = saved;
        limit.rlim_cur = s_vm_bytes () + 48 * 1024 * 1024;
        cr_assert_eq (setrlimit (RLIMIT_AS, &limit), 0);

        size_t added = 0;
        int rc = 0;
        while (added < 100000000) {
            memset (buf, 'x', len);
            snprintf (buf, len, "%011zu", added);
            rc = tl_table_add (table, buf, len, added + 1);
            if (rc != 0) break;
            added++;
        }
        size_t memory = tl_table_memory (table);
        cr_assert_eq (rc, -1, "case %zu: the limit must be reached", c);
        cr_assert_gt (added, 10);
        cr_assert_eq (tl_table_size (table), added);
        cr_assert_eq (tl_table_sum (table), (uint64_t)added * (added + 1) / 2);
        cr_assert_not (tl_table_get (table, buf, len, NULL), "the failed key is absent");
        //  An existing key needs no memory, so it can still be counted.
        cr_assert_eq (tl_table_add (table, buf, len, 0), -1);
        memset (buf, 'x', len);
        snprintf (buf, len, "%011zu", (size_t)0);
        cr_assert_eq (tl_table_add (table, buf, len, 5), 0);
        cr_assert_eq (tl_table_memory (table), memory);

        cr_assert_eq (setrlimit (RLIMIT_AS, &saved), 0);
        for (size_t i = 0; i < added; i++) {
            memset (buf, 'x', len);
            snprintf (buf, len, "%011zu", i);
            cr_assert_eq (s_get (table, buf, len), i + 1 + (i == 0 ? 5 : 0), "case %zu key %zu", c,
                          i);
        }
        memset (buf, 'x', len);
        snprintf (buf, len, "%011zu", added);
        cr_assert_eq (tl_table_add (table, buf, len, 1), 0, "works again with memory");
        tl_table_destroy (&table);
    }
    free (buf);
}
#endif
