/*  test_job: the sink's exactly-once rules (sink/job.c), without sockets. A copy of a
    merged chunk is acknowledged again and merges nothing; END may come before or after
    the last chunks and must agree with what was merged and with itself; junk never
    fails a job, not even a strict one; running out of memory half-way through a merge
    fails the job; totals equal what a plain count of the same partials gives; the
    merged chunks' bitmap has a bit set exactly for each merged id, live or restored.

    Partial maps are built the way workers build them: tl_map_encode on a tl_table_t.
    This program links with -Wl,--wrap=malloc (tests/CMakeLists.txt), so a test can
    make the table's large allocations fail.                                        */

#include "job.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------------
//  Failing allocations on demand

void *__real_malloc (size_t size);
void *__wrap_malloc (size_t size);

static size_t s_fail_from;  //  malloc fails from this many bytes up; 0 never

void *__wrap_malloc (size_t size)
{
    if (s_fail_from && size >= s_fail_from) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc (size);
}

//  ---------------------------------------------------------------------------------
//  Helpers

typedef struct {
    const char *key;  //  Key, NUL-terminated
    uint64_t count;   //  Its count in the partial
} s_kv_t;

//  The entries of a compound literal array and how many there are.
#define KV(...) (s_kv_t[]){__VA_ARGS__}, sizeof ((s_kv_t[]){__VA_ARGS__}) / sizeof (s_kv_t)

static tl_str_t s_files[] = {{"a.tsv", 5}, {"b.tsv", 5}};

//  Every test job's secret; a PARTIAL carries the tag it gives its chunk.
static const uint8_t s_secret[TL_SECRET_SIZE] = "0123456789abcdef";

//  A tag no chunk of a test job has (the right one is a 64-bit hash, never 1 here).
#define S_WRONG_TAG 1

static tl_job_t *s_job_new (uint64_t id, bool strict)
{
    tl_job_body_t body = {.version = TL_PROTO_VERSION,
                          .strict = strict,
                          .input_bytes = 1000,
                          .nfiles = 2,
                          .files = s_files};
    tl_job_t *job = tl_job_new (id, s_secret, &body, 0.0);
    cr_assert_not_null (job);
    return job;
}

//  A PARTIAL body for chunk: 10 bytes and one line per entry, no bad lines.
static tl_partial_body_t s_body (uint64_t chunk, size_t entries)
{
    return (tl_partial_body_t){.chunk = chunk, .bytes = 10, .lines = entries};
}

//  body with the tag the ventilator gives its chunk in job.
static tl_partial_body_t s_tagged (tl_job_t *job, tl_partial_body_t body)
{
    body.tag = tl_chunk_tag (s_secret, tl_job_id (job), body.chunk);
    return body;
}

//  A map frame holding the entries, as a worker encodes it.
static void s_map (msgpack_sbuffer *buf, const s_kv_t *kv, size_t n)
{
    tl_table_t *table = tl_table_new (0);
    cr_assert_not_null (table);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq (tl_table_add (table, kv[i].key, strlen (kv[i].key), kv[i].count), 0);
    msgpack_sbuffer_init (buf);
    cr_assert_eq (tl_map_encode (table, buf), 0);
    tl_table_destroy (&table);
}

//  Hands the job a PARTIAL with this body and these entries, tagged as the ventilator
//  tags its chunk unless the body has a tag already; returns the outcome.
static tl_job_outcome_t s_feed_body (tl_job_t *job, tl_partial_body_t body, const s_kv_t *kv,
                                     size_t n)
{
    msgpack_sbuffer buf;
    s_map (&buf, kv, n);
    if (!body.tag) body.tag = tl_chunk_tag (s_secret, tl_job_id (job), body.chunk);
    tl_job_outcome_t out;
    memset (&out, 0xA5, sizeof out);  //  Whatever the job leaves unset shows
    tl_job_partial (job, &body, buf.data, buf.size, &out);
    msgpack_sbuffer_destroy (&buf);
    return out;
}

static tl_job_outcome_t s_feed (tl_job_t *job, uint64_t chunk, const s_kv_t *kv, size_t n)
{
    return s_feed_body (job, s_body (chunk, n), kv, n);
}

//  An END for chunks chunks of s_body's 10 bytes each.
static tl_job_outcome_t s_end (tl_job_t *job, uint64_t chunks, uint64_t bad_lines)
{
    tl_end_body_t end = {.chunks = chunks, .bytes = 10 * chunks, .bad_lines = bad_lines};
    tl_job_outcome_t out;
    memset (&out, 0xA5, sizeof out);
    tl_job_end (job, &end, &out);
    return out;
}

//  The job's total for key; UINT64_C(0xDEAD) when the key is absent.
static uint64_t s_total (tl_job_t *job, const char *key)
{
    uint64_t count;
    if (!tl_table_get (tl_job_totals (job), key, strlen (key), &count)) return 0xDEAD;
    return count;
}

static void s_expect_ack (tl_job_outcome_t out, tl_job_verdict_t verdict, uint64_t chunk)
{
    cr_assert_eq (out.verdict, verdict, "verdict %d, expected %d (%s)", out.verdict, verdict,
                  out.reason);
    cr_assert (out.ack, "chunk %llu not acknowledged", (unsigned long long)chunk);
    cr_assert_eq (out.chunk, chunk);
}

static void s_expect (tl_job_outcome_t out, tl_job_verdict_t verdict, const char *reason)
{
    cr_assert_eq (out.verdict, verdict, "verdict %d, expected %d (%s)", out.verdict, verdict,
                  out.reason);
    cr_assert_not (out.ack, "acknowledged chunk %llu", (unsigned long long)out.chunk);
    if (reason)
        cr_assert (strstr (out.reason, reason), "reason \"%s\" lacks \"%s\"", out.reason, reason);
}

//  ---------------------------------------------------------------------------------
//  Copies of a chunk

Test (job, duplicate_is_acked_again_and_merged_once)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"x", 3}, {"y", 1})), TL_JOB_NONE, 0);
    s_expect_ack (s_feed (job, 0, KV ({"x", 3}, {"y", 1})), TL_JOB_NONE, 0);
    cr_assert_eq (s_total (job, "x"), 3);
    cr_assert_eq (s_total (job, "y"), 1);
    const tl_job_counters_t *c = tl_job_counters (job);
    cr_assert_eq (c->chunks_done, 1);
    cr_assert_eq (c->duplicates, 1);
    cr_assert_eq (c->lines, 2, "a copy's lines were counted");
    cr_assert_eq (c->bytes, 10);
    tl_job_destroy (&job);
    cr_assert_null (job);
}

Test (job, duplicate_map_is_not_even_read)
{
    //  A copy is acknowledged for its id alone: a different, even broken, map is not merged.
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 7, KV ({"x", 3})), TL_JOB_NONE, 7);
    tl_partial_body_t body = s_tagged (job, s_body (7, 1));
    tl_job_outcome_t out;
    tl_job_partial (job, &body, "\xc1", 1, &out);
    s_expect_ack (out, TL_JOB_NONE, 7);
    s_expect_ack (s_feed (job, 7, KV ({"x", 100}, {"z", 1})), TL_JOB_NONE, 7);
    cr_assert_eq (s_total (job, "x"), 3);
    cr_assert_eq (s_total (job, "z"), 0xDEAD);
    cr_assert_eq (tl_job_counters (job)->duplicates, 2);
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  END

Test (job, end_before_the_last_chunks_completes_when_the_last_arrives)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 2, KV ({"c", 1})), TL_JOB_NONE, 2);
    s_expect (s_end (job, 3, 0), TL_JOB_NONE, NULL);
    tl_progress_t progress;
    tl_job_progress (job, 0.1, &progress);
    cr_assert_eq (progress.chunks_known, 3);
    cr_assert (progress.chunks_final);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);
    s_expect (s_end (job, 3, 0), TL_JOB_NONE, NULL);  //  Repeated: still waiting
    s_expect_ack (s_feed (job, 1, KV ({"b", 1})), TL_JOB_COMPLETE, 1);
    cr_assert_eq (tl_job_counters (job)->chunks_done, 3);
    tl_job_destroy (&job);
}

Test (job, end_after_every_chunk_completes_at_once)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 1, KV ({"b", 1})), TL_JOB_NONE, 1);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);
    tl_progress_t progress;
    tl_job_progress (job, 0.1, &progress);
    cr_assert_eq (progress.chunks_known, 2, "before END, the chunks seen are known");
    cr_assert_not (progress.chunks_final);
    s_expect (s_end (job, 2, 0), TL_JOB_COMPLETE, NULL);
    tl_job_destroy (&job);

    job = s_job_new (2, false);  //  An empty input: END 0 completes
    s_expect (s_end (job, 0, 0), TL_JOB_COMPLETE, NULL);
    tl_job_destroy (&job);
}

Test (job, ends_that_disagree_fail)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect (s_end (job, 3, 0), TL_JOB_NONE, NULL);
    s_expect (s_end (job, 3, 0), TL_JOB_NONE, NULL);
    s_expect (s_end (job, 4, 0), TL_JOB_FAIL, "two ENDs disagree");
    tl_job_destroy (&job);
}

Test (job, end_counting_fewer_chunks_than_merged_fails)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 4, KV ({"e", 1})), TL_JOB_NONE, 4);
    s_expect (s_end (job, 4, 0), TL_JOB_FAIL, "END counts fewer chunks");
    tl_job_destroy (&job);

    job = s_job_new (2, false);  //  Chunk 4 is the last of 5: fine
    s_expect_ack (s_feed (job, 4, KV ({"e", 1})), TL_JOB_NONE, 4);
    s_expect (s_end (job, 5, 0), TL_JOB_NONE, NULL);
    tl_job_destroy (&job);
}

Test (job, end_bad_lines_are_counted_once)
{
    tl_job_t *job = s_job_new (1, false);
    tl_partial_body_t body = s_tagged (job, s_body (0, 1));
    body.bad_lines = 2;
    s_expect_ack (s_feed_body (job, body, KV ({"a", 1})), TL_JOB_NONE, 0);
    s_expect (s_end (job, 2, 5), TL_JOB_NONE, NULL);
    s_expect (s_end (job, 2, 5), TL_JOB_NONE, NULL);
    cr_assert_eq (tl_job_counters (job)->bad_lines, 7);
    tl_job_destroy (&job);
}

Test (job, partial_beyond_the_end_is_junk)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect (s_end (job, 2, 0), TL_JOB_NONE, NULL);
    s_expect (s_feed (job, 2, KV ({"z", 9})), TL_JOB_JUNK, "beyond the job's end");
    cr_assert_eq (s_total (job, "z"), 0xDEAD);
    cr_assert_eq (tl_job_counters (job)->chunks_done, 0);
    cr_assert_not (tl_job_merged (job, 2));
    s_expect_ack (s_feed (job, 1, KV ({"b", 1})), TL_JOB_NONE, 1);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_COMPLETE, 0);
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  Junk and failure

Test (job, malformed_map_is_junk_and_merges_nothing)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);
    msgpack_sbuffer buf;
    s_map (&buf, KV ({"a", 5}, {"b", 6}, {"c", 7}));
    tl_partial_body_t body = s_tagged (job, s_body (1, 3));
    tl_job_outcome_t out;
    tl_job_partial (job, &body, buf.data, buf.size - 1, &out);  //  Cut short
    s_expect (out, TL_JOB_JUNK, "malformed");
    msgpack_sbuffer_write (&buf, "\x00", 1);
    tl_job_partial (job, &body, buf.data, buf.size, &out);  //  A byte too many
    s_expect (out, TL_JOB_JUNK, "malformed");
    cr_assert_eq (s_total (job, "a"), 1);
    cr_assert_eq (tl_table_size (tl_job_totals (job)), 1);
    const tl_job_counters_t *c = tl_job_counters (job);
    cr_assert_eq (c->chunks_done, 1);
    cr_assert_eq (c->lines, 1);
    cr_assert_not (tl_job_merged (job, 1));
    //  The good copy that follows is merged, not taken for a duplicate.
    tl_job_partial (job, &body, buf.data, buf.size - 1, &out);
    s_expect_ack (out, TL_JOB_NONE, 1);
    cr_assert_eq (s_total (job, "c"), 7);
    cr_assert_eq (c->duplicates, 0);
    msgpack_sbuffer_destroy (&buf);
    tl_job_destroy (&job);
}

//  A map of a short key and a key long enough for a block of its own, the short one
//  first (the order tl_map_encode walks), so an allocation failure stops the merge
//  between them. Sets *shortkey (a static buffer) and the long key's length.
static void s_map_short_then_long (msgpack_sbuffer *buf, const char **shortkey, char *longkey,
                                   size_t longlen)
{
    static char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf (name, sizeof name, "k%d", i);
        tl_table_t *table = tl_table_new (0);
        cr_assert_eq (tl_table_add (table, name, strlen (name), 2), 0);
        cr_assert_eq (tl_table_add (table, longkey, longlen, 1), 0);
        size_t cursor = 0;
        tl_entry_t first;
        cr_assert (tl_table_next (table, &cursor, &first));
        bool short_first = first.len == strlen (name);
        if (short_first) {
            msgpack_sbuffer_init (buf);
            cr_assert_eq (tl_map_encode (table, buf), 0);
        }
        tl_table_destroy (&table);
        if (short_first) {
            *shortkey = name;
            return;
        }
    }
    cr_assert_fail ("no short key iterates before the long one");
}

#define S_LONG_KEY (200 * 1024)  //  Past the table's 128 KiB own-block threshold

Test (job, out_of_memory_half_way_through_a_merge_fails_the_job)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);  //  The arena has a block
    char *longkey = malloc (S_LONG_KEY);
    cr_assert_not_null (longkey);
    memset (longkey, 'L', S_LONG_KEY);
    msgpack_sbuffer buf;
    const char *shortkey;
    s_map_short_then_long (&buf, &shortkey, longkey, S_LONG_KEY);
    tl_partial_body_t body = s_tagged (job, s_body (1, 2));
    tl_job_outcome_t out;
    s_fail_from = S_LONG_KEY;
    tl_job_partial (job, &body, buf.data, buf.size, &out);
    s_fail_from = 0;
    s_expect (out, TL_JOB_FAIL, "out of memory");
    //  Why it must fail: the short key is in, so a resent copy would count it twice.
    cr_assert_eq (s_total (job, shortkey), 2);
    cr_assert_not (tl_job_merged (job, 1));
    msgpack_sbuffer_destroy (&buf);
    free (longkey);
    tl_job_destroy (&job);
}

Test (job, out_of_memory_before_any_entry_leaves_the_job_for_a_resend)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);
    char *longkey = calloc (1, S_LONG_KEY + 1);
    cr_assert_not_null (longkey);
    memset (longkey, 'L', S_LONG_KEY);
    msgpack_sbuffer buf;
    s_map (&buf, KV ({longkey, 4}));
    tl_partial_body_t body = s_tagged (job, s_body (1, 1));
    tl_job_outcome_t out;
    s_fail_from = S_LONG_KEY;
    tl_job_partial (job, &body, buf.data, buf.size, &out);
    s_fail_from = 0;
    cr_assert_eq (out.verdict, TL_JOB_JUNK, "nothing was merged: the job can go on");
    cr_assert_not (tl_job_merged (job, 1));
    tl_job_partial (job, &body, buf.data, buf.size, &out);
    s_expect_ack (out, TL_JOB_NONE, 1);
    cr_assert_eq (s_total (job, longkey), 4);
    msgpack_sbuffer_destroy (&buf);
    free (longkey);
    tl_job_destroy (&job);
}

Test (job, saturated_totals_are_counted_as_overflows)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"x", UINT64_MAX - 1})), TL_JOB_NONE, 0);
    s_expect_ack (s_feed (job, 1, KV ({"x", 5}, {"y", 1})), TL_JOB_NONE, 1);
    cr_assert_eq (s_total (job, "x"), UINT64_MAX);
    cr_assert_eq (s_total (job, "y"), 1);
    cr_assert_eq (tl_job_counters (job)->overflows, 1);
    tl_job_destroy (&job);
}

Test (job, cancel_ends_the_job)
{
    tl_job_t *job = s_job_new (1, false);
    tl_job_outcome_t out;
    tl_job_cancel (job, &out);
    s_expect (out, TL_JOB_CANCELLED, "cancelled");
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  Bad lines and --strict

Test (job, strict_job_fails_on_a_bad_line)
{
    tl_job_t *job = s_job_new (1, true);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);
    tl_partial_body_t body = s_tagged (job, s_body (1, 1));
    body.file = 1;
    body.bad_lines = 1;
    body.bad_samples = 1;
    body.bad_offset[0] = 77;
    s_expect (s_feed_body (job, body, KV ({"b", 1})), TL_JOB_FAIL,
              "b.tsv: malformed line at byte 77 (--strict)");
    tl_job_destroy (&job);

    job = s_job_new (2, false);  //  The same without --strict is counted, not fatal
    body = s_tagged (job, body);
    s_expect_ack (s_feed_body (job, body, KV ({"b", 1})), TL_JOB_NONE, 1);
    cr_assert_eq (tl_job_counters (job)->bad_lines, 1);
    tl_job_destroy (&job);
}

Test (job, strict_job_survives_junk)
{
    //  A malformed frame claiming bad lines is junk: it must not fail a strict job.
    tl_job_t *job = s_job_new (1, true);
    tl_partial_body_t body = s_tagged (job, s_body (0, 1));
    body.bad_lines = 3;
    tl_job_outcome_t out;
    tl_job_partial (job, &body, "\x81\xc4", 2, &out);
    s_expect (out, TL_JOB_JUNK, "malformed");
    body.bad_lines = 0;
    s_expect_ack (s_feed_body (job, body, KV ({"a", 1})), TL_JOB_NONE, 0);
    s_expect (s_end (job, 1, 0), TL_JOB_COMPLETE, NULL);
    tl_job_destroy (&job);
}

Test (job, strict_job_fails_on_end_bad_lines)
{
    tl_job_t *job = s_job_new (1, true);
    s_expect (s_end (job, 1, 1), TL_JOB_FAIL, "--max-line");
    tl_job_destroy (&job);
}

Test (job, bad_line_positions_are_logged_for_the_first_ten)
{
    tl_job_t *job = s_job_new (1, false);
    for (uint64_t chunk = 0; chunk < 4; chunk++) {
        tl_partial_body_t body = s_tagged (job, s_body (chunk, 1));
        body.bad_lines = 6;
        body.bad_samples = TL_BAD_SAMPLES;
        s_expect_ack (s_feed_body (job, body, KV ({"a", 1})), TL_JOB_NONE, chunk);
    }
    const tl_job_counters_t *c = tl_job_counters (job);
    cr_assert_eq (c->bad_logged, TL_JOB_BAD_LOGGED_MAX);
    cr_assert_eq (c->bad_lines, 24);
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  Totals and progress

Test (job, two_jobs_keep_separate_totals)
{
    tl_job_t *one = s_job_new (1, false);
    tl_job_t *two = s_job_new (2, false);
    s_expect_ack (s_feed (one, 0, KV ({"shared", 1}, {"only1", 1})), TL_JOB_NONE, 0);
    s_expect_ack (s_feed (two, 0, KV ({"shared", 10})), TL_JOB_NONE, 0);
    s_expect_ack (s_feed (two, 1, KV ({"only2", 2})), TL_JOB_NONE, 1);
    cr_assert_eq (s_total (one, "shared"), 1);
    cr_assert_eq (s_total (two, "shared"), 10);
    cr_assert_eq (s_total (one, "only2"), 0xDEAD);
    cr_assert_eq (s_total (two, "only1"), 0xDEAD);
    cr_assert_eq (tl_job_counters (one)->chunks_done, 1);
    cr_assert_eq (tl_job_counters (two)->chunks_done, 2);
    s_expect (s_end (one, 1, 0), TL_JOB_COMPLETE, NULL);
    s_expect (s_end (two, 3, 0), TL_JOB_NONE, NULL);
    tl_job_destroy (&one);
    tl_job_destroy (&two);
}

static uint64_t s_random (uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

#define S_CHUNKS 200
#define S_KEYS   64

Test (job, totals_equal_a_plain_count_of_the_partials)
{
    //  Every chunk arrives once or several times, in random order, END half-way; the
    //  totals must be what a plain array indexed by key number adds up.
    uint64_t state = 0x9E3779B97F4A7C15u;
    static uint64_t counts[S_CHUNKS][S_KEYS];
    uint64_t expected[S_KEYS] = {0};
    bool present[S_KEYS] = {false};
    for (int c = 0; c < S_CHUNKS; c++)
        for (int k = 0; k < S_KEYS; k++)
            if (s_random (&state) % 3 == 0) {
                counts[c][k] = 1 + s_random (&state) % 1000;
                expected[k] += counts[c][k];
                present[k] = true;
            }
    uint64_t order[S_CHUNKS * 2];
    size_t n = 0;
    for (int c = 0; c < S_CHUNKS; c++) {
        order[n++] = c;
        if (s_random (&state) % 4 == 0) order[n++] = c;  //  A resent copy
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = s_random (&state) % (i + 1);
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    tl_job_t *job = s_job_new (1, false);
    int completions = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == n / 2) s_expect (s_end (job, S_CHUNKS, 0), TL_JOB_NONE, NULL);
        s_kv_t kv[S_KEYS];
        char names[S_KEYS][8];
        size_t m = 0;
        for (int k = 0; k < S_KEYS; k++)
            if (counts[order[i]][k]) {
                snprintf (names[k], sizeof names[k], "key%d", k);
                kv[m++] = (s_kv_t){names[k], counts[order[i]][k]};
            }
        tl_job_outcome_t out = s_feed (job, order[i], kv, m);
        cr_assert (out.ack);
        cr_assert_neq (out.verdict, TL_JOB_JUNK);
        cr_assert_neq (out.verdict, TL_JOB_FAIL);
        completions += out.verdict == TL_JOB_COMPLETE;
        if (out.verdict == TL_JOB_COMPLETE) break;  //  The sink stops here
    }
    cr_assert_eq (completions, 1);
    size_t keys = 0;
    for (int k = 0; k < S_KEYS; k++) {
        char name[8];
        snprintf (name, sizeof name, "key%d", k);
        cr_assert_eq (s_total (job, name), present[k] ? expected[k] : 0xDEAD, "%s", name);
        keys += present[k];
    }
    cr_assert_eq (tl_table_size (tl_job_totals (job)), keys);
    const tl_job_counters_t *c = tl_job_counters (job);
    cr_assert_eq (c->chunks_done, S_CHUNKS);
    cr_assert_eq (c->bytes, 10 * S_CHUNKS);
    tl_job_destroy (&job);
}

Test (job, progress_uses_the_time_it_is_given)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1}, {"b", 2})), TL_JOB_NONE, 0);
    tl_progress_t progress;
    tl_job_progress (job, 2.0, &progress);
    cr_assert_eq (progress.job, 1);
    cr_assert_eq (progress.chunks_done, 1);
    cr_assert_eq (progress.bytes, 10);
    cr_assert_eq (progress.input_bytes, 1000);
    cr_assert_eq (progress.lines, 2);
    cr_assert_eq (progress.keys, 2);
    cr_assert_float_eq (progress.seconds, 2.0, 1e-9);
    cr_assert_float_eq (progress.rate, 5.0, 1e-9, "10 bytes over 2 s");
    cr_assert_float_eq (tl_job_seconds (job, 3.5), 3.5, 1e-9);
    cr_assert_str_eq (tl_job_file (job, 1), "b.tsv");
    cr_assert_str_eq (tl_job_file (job, 2), "?");
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  Who may steer a job, and what a PARTIAL must prove

Test (job, only_the_secret_owns_the_job)
{
    tl_job_t *job = s_job_new (1, false);
    cr_assert (tl_job_owned_by (job, s_secret));
    uint8_t other[TL_SECRET_SIZE];
    memcpy (other, s_secret, sizeof other);
    for (size_t i = 0; i < TL_SECRET_SIZE; i++) {
        other[i] ^= 0x01;
        cr_assert_not (tl_job_owned_by (job, other), "secret differing in byte %zu", i);
        other[i] ^= 0x01;
    }
    cr_assert_eq (memcmp (tl_job_secret (job), s_secret, TL_SECRET_SIZE), 0);
    tl_job_destroy (&job);
}

Test (job, partial_without_its_tag_is_junk_and_merges_nothing)
{
    tl_job_t *job = s_job_new (1, false);
    tl_partial_body_t body = s_body (0, 1);
    body.tag = S_WRONG_TAG;
    s_expect (s_feed_body (job, body, KV ({"forged", 1000})), TL_JOB_JUNK, "tag");
    //  Tagged for chunk 1, sent as chunk 0: also junk.
    body.tag = tl_chunk_tag (s_secret, 1, 1);
    s_expect (s_feed_body (job, body, KV ({"forged", 1000})), TL_JOB_JUNK, "tag");
    //  Tagged with another job's secret (a stranger's guess): junk.
    body.tag = tl_chunk_tag ((const uint8_t *)"fedcba9876543210", 1, 0);
    s_expect (s_feed_body (job, body, KV ({"forged", 1000})), TL_JOB_JUNK, "tag");
    cr_assert_eq (s_total (job, "forged"), 0xDEAD);
    cr_assert_eq (tl_job_counters (job)->chunks_done, 0);
    cr_assert_not (tl_job_merged (job, 0), "a forged copy must not take the chunk's place");
    //  The worker's real PARTIAL for chunk 0 is merged afterwards.
    s_expect_ack (s_feed (job, 0, KV ({"real", 1})), TL_JOB_NONE, 0);
    cr_assert_eq (s_total (job, "real"), 1);
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  Sink shards: a job's sink is shard `shard` of `shards` (from JOB), and merges only
//  the parts of chunks meant for it.

static tl_job_t *s_job_shard (uint64_t id, bool strict, uint32_t shard, uint32_t shards)
{
    tl_job_body_t body = {.version = TL_PROTO_VERSION,
                          .strict = strict,
                          .input_bytes = 1000,
                          .nfiles = 2,
                          .files = s_files,
                          .shard = shard,
                          .shards = shards};
    tl_job_t *job = tl_job_new (id, s_secret, &body, 0.0);
    cr_assert_not_null (job);
    uint32_t got_shard = 99, got_shards = 99;
    tl_job_shard (job, &got_shard, &got_shards);
    cr_assert_eq (got_shard, shard);
    cr_assert_eq (got_shards, shards);
    return job;
}

//  body for shard: chunk's part for that shard.
static tl_partial_body_t s_part (uint64_t chunk, size_t entries, uint32_t shard)
{
    tl_partial_body_t body = s_body (chunk, entries);
    body.shard = shard;
    return body;
}

//  Checks that the job has merged nothing at all.
static void s_expect_nothing_merged (tl_job_t *job)
{
    const tl_job_counters_t *c = tl_job_counters (job);
    cr_assert_eq (c->chunks_done, 0);
    cr_assert_eq (c->chunks_seen, 0);
    cr_assert_eq (c->bytes, 0);
    cr_assert_eq (c->lines, 0);
    cr_assert_eq (c->bad_lines, 0);
    cr_assert_eq (c->filtered, 0);
    cr_assert_eq (c->duplicates, 0);
    cr_assert_eq (tl_table_size (tl_job_totals (job)), 0);
}

Test (job, partial_for_another_shard_is_junk_naming_both_shards)
{
    tl_job_t *job = s_job_shard (0x1234, false, 1, 3);
    static const uint32_t others[] = {0, 2, 3, TL_SHARDS_MAX - 1};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        tl_partial_body_t body = s_part (0, 1, others[i]);
        body.filtered = 5;
        tl_job_outcome_t out = s_feed_body (job, body, KV ({"wrong", 7}));
        s_expect (out, TL_JOB_JUNK, "shard 1 of 3");
        char theirs[32];
        snprintf (theirs, sizeof theirs, "for shard %u", others[i]);
        cr_assert (strstr (out.reason, theirs), "reason \"%s\" lacks \"%s\"", out.reason, theirs);
        cr_assert (strstr (out.reason, "0000000000001234"), "reason \"%s\" lacks the job",
                   out.reason);
        cr_assert_not (tl_job_merged (job, 0), "a part of another shard took the chunk's place");
    }
    s_expect_nothing_merged (job);
    cr_assert_eq (s_total (job, "wrong"), 0xDEAD);

    //  This shard's part of the same chunk is merged afterwards.
    s_expect_ack (s_feed_body (job, s_part (0, 1, 1), KV ({"right", 7})), TL_JOB_NONE, 0);
    cr_assert_eq (s_total (job, "right"), 7);
    cr_assert_eq (s_total (job, "wrong"), 0xDEAD);
    cr_assert_eq (tl_job_counters (job)->chunks_done, 1);
    //  Another shard's copy of a merged chunk is junk too, not a duplicate to acknowledge.
    s_expect (s_feed_body (job, s_part (0, 1, 2), KV ({"right", 7})), TL_JOB_JUNK, "for shard 2");
    cr_assert_eq (tl_job_counters (job)->duplicates, 0);
    cr_assert_eq (s_total (job, "right"), 7);
    tl_job_destroy (&job);
}

Test (job, partial_for_another_shard_never_fails_a_strict_job)
{
    tl_job_t *job = s_job_shard (2, true, 0, 2);
    tl_partial_body_t body = s_part (0, 1, 1);
    body.bad_lines = 3;
    body.bad_samples = 1;
    body.bad_offset[0] = 77;
    s_expect (s_feed_body (job, body, KV ({"k", 1})), TL_JOB_JUNK, "shard 0 of 2");
    s_expect_nothing_merged (job);
    s_expect_ack (s_feed_body (job, s_part (0, 1, 0), KV ({"k", 1})), TL_JOB_NONE, 0);
    tl_job_destroy (&job);
}

//  A JOB without shards (a body left zero) is shard 0 of 1: parts for shard 1 and up
//  are junk.
Test (job, job_without_shards_is_shard_0_of_1)
{
    tl_job_t *job = s_job_new (3, false);
    uint32_t shard = 99, shards = 99;
    tl_job_shard (job, &shard, &shards);
    cr_assert_eq (shard, 0);
    cr_assert_eq (shards, 1);
    s_expect (s_feed_body (job, s_part (0, 1, 1), KV ({"k", 1})), TL_JOB_JUNK, "shard 0 of 1");
    s_expect_nothing_merged (job);
    s_expect_ack (s_feed (job, 0, KV ({"k", 1})), TL_JOB_NONE, 0);
    tl_job_destroy (&job);
}

//  Shard 1 of 2 merges its part of every chunk; the chunks it counts (chunk % 2 == 1)
//  carry the bytes and lines, the others zeros, as workers send them. END's bytes are
//  this shard's share: the job completes on them.
Test (job, a_shard_completes_on_its_share_of_the_bytes)
{
    tl_job_t *job = s_job_shard (4, false, 1, 2);
    for (uint64_t chunk = 0; chunk < 4; chunk++) {
        tl_partial_body_t body = s_part (chunk, 1, 1);
        if (tl_shard_counter (chunk, 2) != 1) body.bytes = body.lines = 0;
        tl_job_outcome_t out = s_feed_body (job, body, KV ({"k", chunk + 1}));
        s_expect_ack (out, TL_JOB_NONE, chunk);
    }
    const tl_job_counters_t *c = tl_job_counters (job);
    cr_assert_eq (c->chunks_done, 4);
    cr_assert_eq (c->bytes, 20);
    cr_assert_eq (c->lines, 2);
    tl_end_body_t end = {.chunks = 4, .bytes = 20, .bad_lines = 0};
    tl_job_outcome_t out;
    tl_job_end (job, &end, &out);
    s_expect (out, TL_JOB_COMPLETE, NULL);
    cr_assert_eq (s_total (job, "k"), 1 + 2 + 3 + 4);
    tl_job_destroy (&job);
}

//  A job split among shards counts what one sink counts: each chunk's table split by
//  tl_map_encode_split with the job's seed, part i to shard i, the counters in the part
//  of shard chunk % shards (as workers send them), END to each shard with its share of
//  the bytes. Every shard completes; their totals are disjoint, each key in the shard
//  tl_shard_of names, and together they are one sink's totals; lines and bytes add up.
Test (job, shards_together_count_what_one_sink_counts)
{
    enum { CHUNKS = 20 };
    static const uint32_t counts[] = {1, 2, 5, TL_SHARDS_MAX};
    const uint64_t id = 0xfeed;
    const uint64_t seed = tl_shard_seed (s_secret, id);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t shards = counts[c];
        tl_job_t *one = s_job_shard (id, false, 0, 1);
        tl_job_t *part[TL_SHARDS_MAX];
        for (uint32_t i = 0; i < shards; i++)
            part[i] = s_job_shard (id, false, i, shards);
        uint64_t state = 12345;
        for (uint64_t chunk = 0; chunk < CHUNKS; chunk++) {
            tl_table_t *table = tl_table_new (0);
            cr_assert_not_null (table);
            size_t keys = 1 + chunk * 7;
            for (size_t k = 0; k < keys; k++) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                char key[16];
                int len = snprintf (key, sizeof key, "w%llu", (unsigned long long)(state >> 54));
                cr_assert_geq (tl_table_add (table, key, (size_t)len, 1 + (state >> 60)), 0);
            }
            tl_partial_body_t counted = {.chunk = chunk,
                                         .tag = tl_chunk_tag (s_secret, id, chunk),
                                         .bytes = 10,
                                         .lines = keys};
            msgpack_sbuffer whole;
            msgpack_sbuffer_init (&whole);
            cr_assert_eq (tl_map_encode (table, &whole), 0);
            tl_job_outcome_t out;
            tl_job_partial (one, &counted, whole.data, whole.size, &out);
            cr_assert (out.ack, "%s", out.reason);
            msgpack_sbuffer_destroy (&whole);

            msgpack_sbuffer bufs[TL_SHARDS_MAX];
            for (uint32_t i = 0; i < shards; i++)
                msgpack_sbuffer_init (&bufs[i]);
            cr_assert_eq (tl_map_encode_split (table, seed, shards, bufs), 0);
            for (uint32_t i = 0; i < shards; i++) {
                tl_partial_body_t body = counted;
                if (i != tl_shard_counter (chunk, shards))
                    body = (tl_partial_body_t){.chunk = chunk, .tag = counted.tag};
                body.shard = i;
                tl_job_partial (part[i], &body, bufs[i].data, bufs[i].size, &out);
                cr_assert (out.ack, "%u shards, chunk %llu, shard %u: %s", shards,
                           (unsigned long long)chunk, i, out.reason);
                msgpack_sbuffer_destroy (&bufs[i]);
            }
            tl_table_destroy (&table);
        }
        tl_end_body_t end = {.chunks = CHUNKS, .bytes = 10 * CHUNKS};
        tl_job_outcome_t out;
        tl_job_end (one, &end, &out);
        s_expect (out, TL_JOB_COMPLETE, NULL);

        uint64_t lines = 0, bytes = 0;
        size_t keys = 0;
        for (uint32_t i = 0; i < shards; i++) {
            uint64_t share = 0;
            for (uint64_t chunk = 0; chunk < CHUNKS; chunk++)
                share += tl_shard_counter (chunk, shards) == i ? 10 : 0;
            end = (tl_end_body_t){.chunks = CHUNKS, .bytes = share};
            tl_job_end (part[i], &end, &out);
            s_expect (out, TL_JOB_COMPLETE, NULL);
            const tl_job_counters_t *pc = tl_job_counters (part[i]);
            cr_assert_eq (pc->chunks_done, CHUNKS);
            lines += pc->lines;
            bytes += pc->bytes;
            tl_table_t *totals = tl_job_totals (part[i]);
            keys += tl_table_size (totals);
            size_t cursor = 0;
            tl_entry_t entry;
            while (tl_table_next (totals, &cursor, &entry)) {
                cr_assert_eq (tl_shard_of (entry.key, entry.len, seed, shards), i);
                uint64_t count;
                cr_assert (tl_table_get (tl_job_totals (one), entry.key, entry.len, &count));
                cr_assert_eq (count, entry.count);
            }
        }
        const tl_job_counters_t *oc = tl_job_counters (one);
        cr_assert_eq (keys, tl_table_size (tl_job_totals (one)), "%u shards", shards);
        cr_assert_eq (lines, oc->lines);
        cr_assert_eq (bytes, oc->bytes);
        for (uint32_t i = 0; i < shards; i++)
            tl_job_destroy (&part[i]);
        tl_job_destroy (&one);
    }
}

Test (job, bytes_merged_must_be_the_bytes_sent)
{
    tl_job_t *job = s_job_new (1, false);
    s_expect_ack (s_feed (job, 0, KV ({"a", 1})), TL_JOB_NONE, 0);
    tl_end_body_t end = {.chunks = 2, .bytes = 25, .bad_lines = 0};  //  2 chunks of 10: 20
    tl_job_outcome_t out;
    tl_job_end (job, &end, &out);
    s_expect (out, TL_JOB_NONE, NULL);
    out = s_feed (job, 1, KV ({"b", 1}));
    cr_assert_eq (out.verdict, TL_JOB_FAIL, "completion with 20 of 25 bytes: %s", out.reason);
    cr_assert (strstr (out.reason, "20 bytes") && strstr (out.reason, "25"), "%s", out.reason);
    tl_job_destroy (&job);

    job = s_job_new (2, false);  //  ENDs that disagree on the bytes fail too
    s_expect (s_end (job, 3, 0), TL_JOB_NONE, NULL);
    end = (tl_end_body_t){.chunks = 3, .bytes = 31, .bad_lines = 0};
    tl_job_end (job, &end, &out);
    s_expect (out, TL_JOB_FAIL, "disagree");
    tl_job_destroy (&job);
}

//  ---------------------------------------------------------------------------------
//  The merged chunks as a bitmap (what a sink tells a ventilator that comes back)

//  Checks the bitmap of job: *size bytes for chunks_seen ids, a bit set exactly for
//  each merged id, as many bits as chunks merged. Returns the bitmap (free it).
static uint8_t *s_bitmap_agrees (tl_job_t *job, size_t *size)
{
    const tl_job_counters_t *c = tl_job_counters (job);
    uint8_t *bits = tl_job_merged_bitmap (job, size);
    cr_assert_not_null (bits);
    cr_assert_eq (*size, (c->chunks_seen + 7) / 8, "size %zu for %llu chunks seen", *size,
                  (unsigned long long)c->chunks_seen);
    uint64_t set = 0;
    for (uint64_t id = 0; id < 8 * (uint64_t)*size; id++) {
        bool bit = bits[id / 8] >> (id % 8) & 1;
        cr_assert_eq (bit, tl_job_merged (job, id), "chunk %llu: bit %d", (unsigned long long)id,
                      bit);
        set += bit;
    }
    cr_assert_eq (set, c->chunks_done);
    return bits;
}

Test (job, merged_bitmap_marks_exactly_the_merged_chunks)
{
    tl_job_t *job = s_job_new (1, false);
    static const uint64_t ids[] = {64, 2, 0, 63, 9};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        s_expect_ack (s_feed (job, ids[i], KV ({"k", 1})), TL_JOB_NONE, ids[i]);
    size_t size;
    uint8_t *bits = s_bitmap_agrees (job, &size);
    static const uint8_t want[9] = {0x05, 0x02, 0, 0, 0, 0, 0, 0x80, 0x01};
    cr_assert_eq (size, sizeof want);
    for (size_t i = 0; i < size; i++)
        cr_assert_eq (bits[i], want[i], "byte %zu: %02x, expected %02x", i, bits[i], want[i]);
    free (bits);

    //  A copy and junk change nothing
    s_expect_ack (s_feed (job, 9, KV ({"k", 1})), TL_JOB_NONE, 9);
    tl_partial_body_t body = s_body (100, 1);
    body.tag = S_WRONG_TAG;
    s_expect (s_feed_body (job, body, KV ({"k", 1})), TL_JOB_JUNK, "tag");
    bits = s_bitmap_agrees (job, &size);
    cr_assert_eq (size, sizeof want);
    cr_assert_eq (memcmp (bits, want, size), 0);
    free (bits);

    //  One more chunk past a byte boundary grows it
    s_expect_ack (s_feed (job, 72, KV ({"k", 1})), TL_JOB_NONE, 72);
    bits = s_bitmap_agrees (job, &size);
    cr_assert_eq (size, 10);
    cr_assert_eq (bits[8], 0x01);
    cr_assert_eq (bits[9], 0x01);
    free (bits);
    tl_job_destroy (&job);
}

Test (job, merged_bitmap_sizes)
{
    //  Nothing merged: an empty bitmap, still a buffer to free
    tl_job_t *job = s_job_new (1, false);
    size_t size = 12345;
    uint8_t *bits = tl_job_merged_bitmap (job, &size);
    cr_assert_not_null (bits);
    cr_assert_eq (size, 0);
    free (bits);
    //  Junk merges nothing: still empty
    tl_partial_body_t body = s_body (3, 1);
    body.tag = S_WRONG_TAG;
    s_expect (s_feed_body (job, body, KV ({"k", 1})), TL_JOB_JUNK, "tag");
    bits = s_bitmap_agrees (job, &size);
    cr_assert_eq (size, 0);
    free (bits);

    //  (chunks_seen + 7) / 8 at the edges of a byte
    static const struct {
        uint64_t id;   //  Chunk merged next (the highest so far)
        size_t size;   //  Bytes after it
        uint8_t last;  //  The last byte after it
    } steps[] = {{0, 1, 0x01}, {6, 1, 0x41},  {7, 1, 0xc1},
                 {8, 2, 0x01}, {15, 2, 0x81}, {16, 3, 0x01}};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        s_expect_ack (s_feed (job, steps[i].id, KV ({"k", 1})), TL_JOB_NONE, steps[i].id);
        bits = s_bitmap_agrees (job, &size);
        cr_assert_eq (size, steps[i].size, "after chunk %llu", (unsigned long long)steps[i].id);
        cr_assert_eq (bits[size - 1], steps[i].last, "after chunk %llu: %02x",
                      (unsigned long long)steps[i].id, bits[size - 1]);
        free (bits);
    }
    tl_job_destroy (&job);

    //  Only the last chunk of a long job: one bit at the end, zeros before
    job = s_job_new (2, false);
    s_expect_ack (s_feed (job, 9999, KV ({"k", 1})), TL_JOB_NONE, 9999);
    bits = s_bitmap_agrees (job, &size);
    cr_assert_eq (size, 1250);
    cr_assert_eq (bits[1249], 0x80);
    free (bits);
    tl_job_destroy (&job);
}

Test (job, merged_bitmap_agrees_with_merged_in_random_order)
{
    uint64_t state = 0x2545F4914F6CDD1Du;
    tl_job_t *job = s_job_new (1, false);
    static bool merged[3000];
    for (int round = 0; round < 4000; round++) {
        uint64_t id = s_random (&state) % 3000;
        s_expect_ack (s_feed (job, id, KV ({"k", 1})), TL_JOB_NONE, id);
        merged[id] = true;
        if (round % 500 == 499) {
            size_t size;
            uint8_t *bits = s_bitmap_agrees (job, &size);
            for (uint64_t i = 0; i < 8 * (uint64_t)size; i++)
                cr_assert_eq (bits[i / 8] >> (i % 8) & 1, i < 3000 && merged[i], "chunk %llu",
                              (unsigned long long)i);
            free (bits);
        }
    }
    tl_job_destroy (&job);
}

//  A snapshot of merged ids (8-byte keys) and counters, as a checkpoint reads it back.
static tl_job_snapshot_t s_snapshot (const uint64_t *ids, size_t n, uint64_t chunks_seen)
{
    tl_job_snapshot_t snap = {.merged = tl_table_new (0), .totals = tl_table_new (0)};
    cr_assert (snap.merged && snap.totals);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq (tl_table_add (snap.merged, &ids[i], sizeof ids[i], 1), 0);
    cr_assert_eq (tl_table_add (snap.totals, "k", 1, n), 0);
    snap.counters.chunks_done = n;
    snap.counters.chunks_seen = chunks_seen;
    snap.counters.bytes = 10 * n;
    return snap;
}

Test (job, merged_bitmap_of_a_restored_job)
{
    static const uint64_t ids[] = {1, 8, 30};
    tl_job_snapshot_t snap = s_snapshot (ids, 3, 31);
    tl_job_body_t body = {
        .version = TL_PROTO_VERSION, .input_bytes = 1000, .nfiles = 2, .files = s_files};
    tl_job_t *job = tl_job_restore (5, s_secret, &body, &snap, 0.0);
    cr_assert_not_null (job);
    size_t size;
    uint8_t *bits = s_bitmap_agrees (job, &size);
    static const uint8_t want[4] = {0x02, 0x01, 0x00, 0x40};
    cr_assert_eq (size, 4);
    cr_assert_eq (memcmp (bits, want, 4), 0, "%02x %02x %02x %02x", bits[0], bits[1], bits[2],
                  bits[3]);
    free (bits);
    //  Merging goes on from there
    s_expect_ack (s_feed (job, 31, KV ({"k", 1})), TL_JOB_NONE, 31);
    bits = s_bitmap_agrees (job, &size);
    cr_assert_eq (bits[3], 0xc0);
    free (bits);
    tl_job_destroy (&job);
}

Test (job, merged_bitmap_of_a_restored_job_whose_ids_pass_chunks_seen)
{
    //  A checkpoint that does not hold together (a merged id at or past chunks_seen):
    //  either the job is not restored, or its bitmap still covers every merged id
    static const uint64_t ids[] = {3, 40};
    tl_job_snapshot_t snap = s_snapshot (ids, 2, 5);
    tl_job_body_t body = {
        .version = TL_PROTO_VERSION, .input_bytes = 1000, .nfiles = 2, .files = s_files};
    tl_job_t *job = tl_job_restore (5, s_secret, &body, &snap, 0.0);
    if (!job) return;
    size_t size;
    uint8_t *bits = tl_job_merged_bitmap (job, &size);
    cr_assert_not_null (bits);
    cr_assert_gt (size, 40 / 8, "merged chunk 40 lies outside a bitmap of %zu bytes", size);
    cr_assert (bits[40 / 8] >> (40 % 8) & 1);
    free (bits);
    tl_job_destroy (&job);
}

Test (job, merged_bitmap_of_a_restored_job_with_a_merged_key_not_an_id)
{
    //  A checkpoint whose merged set holds a key of 4 bytes, not an 8-byte chunk id:
    //  either the job is not restored, or its bitmap shows only real ids
    static const uint64_t ids[] = {0, 1};
    tl_job_snapshot_t snap = s_snapshot (ids, 2, 2);
    cr_assert_eq (tl_table_add (snap.merged, "abcd", 4, 1), 0);
    snap.counters.chunks_done = 3;
    tl_job_body_t body = {
        .version = TL_PROTO_VERSION, .input_bytes = 1000, .nfiles = 2, .files = s_files};
    tl_job_t *job = tl_job_restore (5, s_secret, &body, &snap, 0.0);
    if (!job) return;
    size_t size;
    uint8_t *bits = tl_job_merged_bitmap (job, &size);
    cr_assert_not_null (bits);
    cr_assert_eq (size, 1);
    cr_assert_eq (bits[0], 0x03);
    free (bits);
    tl_job_destroy (&job);
}
