/*  test_feed_merge: a job's feed across its sink shards (tl_feed_merge). The combined
    progress, top and done against sums, minima and sorts written out here; the joiner
    fed encoded and decoded bodies of a job of three shards in an interleaved order: the
    job's progress only final once every shard's is, the top of every shard's keys,
    gaps in one shard's totals batches found for that shard, done only once every shard
    sent its own, failure from any shard, jobs of one shard as before, and a message
    whose shard count disagrees with its job refused.                                */

#include "tl_feed_merge.h"
#include "tl_test.h"
#include "tl_test_feed.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------------
//  The combining functions

Test (feed_merge, progress_by_hand)
{
    tl_progress_t shards[3] = {
        {.job = 9,
         .chunks_done = 7,
         .chunks_known = 10,
         .chunks_final = true,
         .bytes = 100,
         .input_bytes = 5000,
         .lines = 10,
         .bad_lines = 1,
         .keys = 4,
         .rate = 1.5,
         .seconds = 2.0,
         .shard = 0,
         .shards = 3},
        {.job = 9,
         .chunks_done = 5,
         .chunks_known = 12,
         .chunks_final = true,
         .bytes = 200,
         .input_bytes = 5000,
         .lines = 20,
         .bad_lines = 0,
         .keys = 6,
         .rate = 2.5,
         .seconds = 4.5,
         .shard = 1,
         .shards = 3},
        {.job = 9,
         .chunks_done = 9,
         .chunks_known = 12,
         .chunks_final = false,
         .bytes = 300,
         .input_bytes = 5000,
         .lines = 30,
         .bad_lines = 2,
         .keys = 5,
         .rate = 0.5,
         .seconds = 3.0,
         .shard = 2,
         .shards = 3},
    };
    tl_progress_t job;
    tl_feed_merge_progress (shards, 3, &job);
    cr_assert_eq (job.job, 9);
    cr_assert_eq (job.shard, 0);
    cr_assert_eq (job.shards, 3);
    cr_assert_eq (job.chunks_done, 5, "the least");
    cr_assert_eq (job.chunks_known, 12, "the most");
    cr_assert_not (job.chunks_final, "final only when every shard's is");
    cr_assert_eq (job.bytes, 600);
    cr_assert_eq (job.input_bytes, 5000, "the same in each, not summed");
    cr_assert_eq (job.lines, 60);
    cr_assert_eq (job.bad_lines, 3);
    cr_assert_eq (job.keys, 15);
    cr_assert_float_eq (job.rate, 4.5, 1e-12);
    cr_assert_float_eq (job.seconds, 4.5, 1e-12, "the longest");
    shards[2].chunks_final = true;
    tl_feed_merge_progress (shards, 3, &job);
    cr_assert (job.chunks_final);
    //  One shard: itself.
    tl_feed_merge_progress (&shards[1], 1, &job);
    cr_assert_eq (job.chunks_done, 5);
    cr_assert_eq (job.bytes, 200);
    cr_assert_eq (job.shard, 0);
    //  Sums stop at UINT64_MAX rather than wrap.
    shards[0].bytes = UINT64_MAX - 10;
    tl_feed_merge_progress (shards, 3, &job);
    cr_assert_eq (job.bytes, UINT64_MAX);
}

Test (feed_merge, progress_random)
{
    for (int round = 0; round < 1000; round++) {
        size_t n = 1 + tl_test_random () % TL_SHARDS_MAX;
        tl_progress_t shards[TL_SHARDS_MAX];
        for (size_t i = 0; i < n; i++)
            shards[i] = (tl_progress_t){.job = 3,
                                        .chunks_done = tl_test_random () % 1000,
                                        .chunks_known = tl_test_random () % 1000,
                                        .chunks_final = tl_test_random () % 4 != 0,
                                        .bytes = tl_test_random () % 1000000,
                                        .input_bytes = tl_test_random () % 1000000,
                                        .lines = tl_test_random () % 1000000,
                                        .bad_lines = tl_test_random () % 100,
                                        .keys = tl_test_random () % 100000,
                                        .rate = (double)(tl_test_random () % 1000),
                                        .seconds = (double)(tl_test_random () % 1000) / 8,
                                        .shard = i,
                                        .shards = n};
        uint64_t done = UINT64_MAX, known = 0, input = 0, bytes = 0, lines = 0, bad = 0, keys = 0;
        double rate = 0, seconds = 0;
        bool final = true;
        for (size_t i = 0; i < n; i++) {
            done = shards[i].chunks_done < done ? shards[i].chunks_done : done;
            known = shards[i].chunks_known > known ? shards[i].chunks_known : known;
            input = shards[i].input_bytes > input ? shards[i].input_bytes : input;
            final &= shards[i].chunks_final;
            bytes += shards[i].bytes;
            lines += shards[i].lines;
            bad += shards[i].bad_lines;
            keys += shards[i].keys;
            rate += shards[i].rate;
            seconds = shards[i].seconds > seconds ? shards[i].seconds : seconds;
        }
        tl_progress_t job;
        tl_feed_merge_progress (shards, n, &job);
        cr_assert_eq (job.chunks_done, done);
        cr_assert_eq (job.chunks_known, known);
        cr_assert_eq (job.input_bytes, input);
        cr_assert_eq (job.chunks_final, final);
        cr_assert_eq (job.bytes, bytes);
        cr_assert_eq (job.lines, lines);
        cr_assert_eq (job.bad_lines, bad);
        cr_assert_eq (job.keys, keys);
        cr_assert_eq (job.rate, rate);  //  Integers in doubles: exact
        cr_assert_eq (job.seconds, seconds);
        cr_assert_eq (job.shards, n);
    }
}

//  Orders as the totals file: total descending, then key bytes ascending, a prefix
//  first. Written out here rather than taken from tl_table.
static int s_file_order (const void *a, const void *b)
{
    const tl_entry_t *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    size_t len = x->len < y->len ? x->len : y->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char p = (unsigned char)x->key[i], q = (unsigned char)y->key[i];
        if (p != q) return p < q ? -1 : 1;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

Test (feed_merge, top_by_hand)
{
    //  Three shards' top lists (each sorted on its own), equal totals among them.
    tl_entry_t entries[] = {
        {"b", 1, 50}, {"zz", 2, 7},    {"ab", 2, 7},  //  shard 0
        {"a", 1, 7},  {"\xff", 1, 60},                //  shard 1
        {"", 0, 7},   {"abc", 3, 7},   {"c", 1, 1},   //  shard 2
    };
    size_t n = tl_feed_merge_top (entries, 8, 5);
    cr_assert_eq (n, 5);
    static const char *want[] = {"\xff", "b", "", "a", "ab"};
    for (size_t i = 0; i < n; i++)
        cr_assert (entries[i].len == strlen (want[i]) &&
                       memcmp (entries[i].key, want[i], entries[i].len) == 0,
                   "entry %zu is %.*s", i, (int)entries[i].len, entries[i].key);
    cr_assert_eq (entries[0].count, 60);
    cr_assert_eq (entries[4].count, 7);
    //  Fewer entries than k: all of them.
    tl_entry_t two[] = {{"x", 1, 1}, {"y", 1, 2}};
    cr_assert_eq (tl_feed_merge_top (two, 2, 10), 2);
    cr_assert_eq (two[0].count, 2);
    cr_assert_eq (tl_feed_merge_top (NULL, 0, 10), 0);
}

//  The shards' top-k lists of disjoint random keys merge into the top k of all keys.
Test (feed_merge, top_random_equals_the_top_of_all_keys)
{
    enum { KEYS = 2000 };
    static char names[KEYS][8];
    static tl_entry_t all[KEYS], lists[KEYS], copy[KEYS];
    for (int round = 0; round < 200; round++) {
        size_t shards = 1 + tl_test_random () % 8, k = 1 + tl_test_random () % 30;
        size_t nkeys = tl_test_random () % KEYS;
        for (size_t i = 0; i < nkeys; i++) {
            //  Few distinct totals: ties are common.
            snprintf (names[i], sizeof names[i], "%zx", i * 2654435761u % 100003);
            all[i] = (tl_entry_t){names[i], (uint32_t)strlen (names[i]), tl_test_random () % 20};
        }
        //  Each key to one shard; each shard sends its own top k.
        size_t n = 0;
        for (size_t s = 0; s < shards; s++) {
            size_t mine = 0;
            for (size_t i = 0; i < nkeys; i++)
                if ((i * 31 + 7) % shards == s) copy[mine++] = all[i];
            qsort (copy, mine, sizeof *copy, s_file_order);
            for (size_t i = 0; i < mine && i < k; i++)
                lists[n++] = copy[i];
        }
        size_t got = tl_feed_merge_top (lists, n, k);
        qsort (all, nkeys, sizeof *all, s_file_order);
        size_t want = nkeys < k ? nkeys : k;
        cr_assert_eq (got, want, "round %d", round);
        for (size_t i = 0; i < got; i++)
            cr_assert (lists[i].len == all[i].len && lists[i].count == all[i].count &&
                           memcmp (lists[i].key, all[i].key, all[i].len) == 0,
                       "round %d, entry %zu", round, i);
    }
}

Test (feed_merge, done_by_hand)
{
    tl_done_body_t shards[3] = {
        {10, 100, 1000, 1, 5, 2.5, {"/out/part0.tsv", 14}, 4, 4000},
        {20, 200, 0, 0, 0, 7.25, {"/out/part1.tsv", 14}, 4, 0},
        {0, 0, 30, 2, 1, 1.0, {"", 0}, 4, 300},
    };
    tl_done_body_t job;
    tl_feed_merge_done (shards, 3, &job);
    cr_assert_eq (job.keys, 30);
    cr_assert_eq (job.sum, 300);
    cr_assert_eq (job.lines, 1030);
    cr_assert_eq (job.bad_lines, 3);
    cr_assert_eq (job.filtered, 6);
    cr_assert_eq (job.seconds, 7.25);
    cr_assert_eq (job.output.len, 0, "each shard has its own output");
}

//  ---------------------------------------------------------------------------------
//  The joiner, fed bodies as they come off the wire

typedef struct {
    msgpack_sbuffer buf;  //  The body (decoded messages point into it)
    tl_feed_msg_t msg;    //  It, decoded
} s_wire_t;

//  Encodes msg (entries for top and totals) with tl_feed_encode and decodes it back.
static void s_wire (s_wire_t *wire, const tl_feed_msg_t *msg, const tl_entry_t *entries, size_t n)
{
    msgpack_sbuffer_init (&wire->buf);
    cr_assert_eq (tl_feed_encode (msg, entries, n, &wire->buf), 0);
    const char *name = tl_feed_topic_name (msg->topic);
    cr_assert_eq (tl_feed_decode (name, strlen (name), wire->buf.data, wire->buf.size, &wire->msg),
                  0);
}

static void s_unwire (s_wire_t *wire)
{
    msgpack_sbuffer_destroy (&wire->buf);
}

//  Adds one message to the joiner; returns tl_feed_join_add's verdict.
static int s_add (tl_feed_join_t *join, const tl_feed_msg_t *msg, const tl_entry_t *entries,
                  size_t n, tl_feed_view_t *view)
{
    s_wire_t wire;
    s_wire (&wire, msg, entries, n);
    int rc = tl_feed_join_add (join, &wire.msg, view);
    s_unwire (&wire);  //  The joiner keeps nothing that points into the frame
    return rc;
}

static tl_feed_msg_t s_progress (uint64_t job, uint64_t shard, uint64_t shards, uint64_t done,
                                 bool final, uint64_t keys)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_PROGRESS, .job = job, .shard = shard, .shards = shards};
    msg.u.progress = (tl_progress_t){.chunks_done = done,
                                     .chunks_known = 10,
                                     .chunks_final = final,
                                     .bytes = 1000 * (shard + 1),
                                     .input_bytes = 9999,
                                     .lines = 10 * (shard + 1),
                                     .keys = keys,
                                     .rate = 1.0,
                                     .seconds = (double)shard};
    return msg;
}

static tl_feed_msg_t s_totals (uint64_t job, uint64_t shard, uint64_t shards, uint64_t batch,
                               uint64_t batches)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_TOTALS, .job = job, .shard = shard, .shards = shards};
    msg.u.totals.batch = batch;
    msg.u.totals.batches = batches;
    return msg;
}

static tl_feed_msg_t s_done (uint64_t job, uint64_t shard, uint64_t shards, uint64_t keys,
                             const char *output)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_DONE, .job = job, .shard = shard, .shards = shards};
    msg.u.done = (tl_done_body_t){.keys = keys,
                                  .sum = keys * 3,
                                  .lines = 100 + shard,
                                  .bad_lines = shard,
                                  .filtered = 1,
                                  .seconds = 10.0 - (double)shard,
                                  .output = {output, strlen (output)}};
    return msg;
}

Test (feed_merge, a_job_of_three_shards)
{
    tl_feed_join_t *join = tl_feed_join_new (4);
    cr_assert_not_null (join);
    tl_feed_view_t view;
    const uint64_t job = 0xabc;

    //  Progress: the shards heard so far, final once all three are.
    tl_feed_msg_t msg = s_progress (job, 2, 3, 8, true, 30);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.topic, TL_FEED_PROGRESS);
    cr_assert_eq (view.job, job);
    cr_assert_eq (view.shard, 2);
    cr_assert_eq (view.shards, 3);
    cr_assert_eq (view.heard, 1);
    cr_assert_eq (view.progress.chunks_done, 8);
    cr_assert_not (view.progress.chunks_final, "two shards not heard of");
    msg = s_progress (job, 0, 3, 6, true, 10);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 2);
    cr_assert_eq (view.progress.chunks_done, 6);
    cr_assert_eq (view.progress.keys, 40);
    cr_assert_eq (view.progress.bytes, 4000);
    cr_assert_not (view.progress.chunks_final);
    msg = s_progress (job, 1, 3, 9, true, 20);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 3);
    cr_assert_eq (view.progress.chunks_done, 6);
    cr_assert_eq (view.progress.keys, 60);
    cr_assert_eq (view.progress.lines, 60);
    cr_assert_eq (view.progress.input_bytes, 9999);
    cr_assert_eq (view.progress.seconds, 2.0);
    cr_assert (view.progress.chunks_final);
    //  A shard's newer progress replaces its older.
    msg = s_progress (job, 0, 3, 10, true, 15);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.progress.chunks_done, 8);
    cr_assert_eq (view.progress.keys, 65);

    //  Top: each shard's latest list, merged; as long as the longest list.
    static const tl_entry_t top0[] = {{"the", 3, 90}, {"of", 2, 40}};
    static const tl_entry_t top1[] = {{"and", 3, 70}, {"to", 2, 40}, {"in", 2, 5}};
    static const tl_entry_t top1b[] = {{"and", 3, 95}, {"to", 2, 41}, {"in", 2, 6}};
    tl_feed_msg_t top = {.topic = TL_FEED_TOP, .job = job, .shard = 0, .shards = 3};
    cr_assert_eq (s_add (join, &top, top0, 2, &view), 0);
    cr_assert_eq (view.heard, 1);
    cr_assert_eq (view.ntop, 2);
    cr_assert_eq (view.top[0].count, 90);
    top.shard = 1;
    cr_assert_eq (s_add (join, &top, top1, 3, &view), 0);
    cr_assert_eq (view.heard, 2);
    cr_assert_eq (view.ntop, 3);
    cr_assert (view.top[0].len == 3 && memcmp (view.top[0].key, "the", 3) == 0);
    cr_assert (view.top[1].len == 3 && memcmp (view.top[1].key, "and", 3) == 0);
    cr_assert (view.top[2].len == 2 && memcmp (view.top[2].key, "of", 2) == 0, "of before to");
    cr_assert_eq (s_add (join, &top, top1b, 3, &view), 0);
    cr_assert_eq (view.ntop, 3);
    cr_assert_eq (view.top[0].count, 95);
    cr_assert (view.top[2].len == 2 && memcmp (view.top[2].key, "to", 2) == 0);
    cr_assert_eq (view.top[2].count, 41);

    //  Totals: numbered per shard. Shard 1 skips its batch 1; shard 2 its last.
    static const uint64_t order[][2] = {{0, 0}, {1, 0}, {0, 1}, {2, 0}, {1, 2},
                                        {2, 1}, {1, 3}, {0, 2}, {2, 2}};
    static const uint64_t missed[] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        tl_feed_msg_t totals = s_totals (job, order[i][0], 3, order[i][1], 4);
        cr_assert_eq (s_add (join, &totals, top0, 1, &view), 0);
        cr_assert_eq (view.topic, TL_FEED_TOTALS);
        cr_assert_eq (view.shard, order[i][0]);
        cr_assert_eq (view.missed, missed[i], "message %zu", i);
    }

    //  Done: shard 1 first (one batch missed on the way), then 0 (its last batch 3
    //  never came), then 2 (likewise): complete at the third.
    msg = s_done (job, 1, 3, 20, "/out/part1.tsv");
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_not (view.complete);
    cr_assert_eq (view.heard, 1);
    cr_assert_eq (view.missed, 1);
    cr_assert_not (view.unseen);
    msg = s_done (job, 0, 3, 10, "/out/part0.tsv");
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_not (view.complete);
    cr_assert_eq (view.heard, 2);
    cr_assert_eq (view.missed, 1);
    //  A done repeated (a sink that published it again) counts once.
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_not (view.complete);
    cr_assert_eq (view.heard, 2);
    msg = s_done (job, 2, 3, 30, "/out/part2.tsv");
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert (view.complete);
    cr_assert_eq (view.heard, 3);
    cr_assert_eq (view.missed, 1);
    cr_assert_eq (view.done.keys, 60);
    cr_assert_eq (view.done.sum, 180);
    cr_assert_eq (view.done.lines, 303);
    cr_assert_eq (view.done.bad_lines, 3);
    cr_assert_eq (view.done.filtered, 3);
    cr_assert_eq (view.done.seconds, 10.0);
    for (int s = 0; s < 3; s++) {
        char want[32];
        snprintf (want, sizeof want, "/out/part%d.tsv", s);
        cr_assert (view.outputs[s].len == strlen (want) &&
                       memcmp (view.outputs[s].ptr, want, view.outputs[s].len) == 0,
                   "output %d", s);
    }

    //  Once complete, the job is forgotten: a later message starts it again.
    msg = s_progress (job, 1, 3, 1, false, 1);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 1);
    cr_assert_eq (view.progress.chunks_done, 1);
    tl_feed_join_destroy (&join);
    cr_assert_null (join);
}

Test (feed_merge, a_done_without_totals_and_a_failure)
{
    tl_feed_join_t *join = tl_feed_join_new (4);
    tl_feed_view_t view;
    tl_feed_msg_t msg = s_done (5, 0, 2, 3, "/a");
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert (view.unseen, "no totals batch came");
    cr_assert_not (view.complete);

    tl_feed_msg_t failed = {.topic = TL_FEED_FAILED, .job = 5, .shard = 1, .shards = 2};
    failed.u.reason = (tl_str_t){"cancelled", 9};
    cr_assert_eq (s_add (join, &failed, NULL, 0, &view), 0);
    cr_assert_eq (view.topic, TL_FEED_FAILED);
    cr_assert_eq (view.shard, 1);
    cr_assert_not (view.failed_before);
    failed.shard = 0;
    cr_assert_eq (s_add (join, &failed, NULL, 0, &view), 0);
    cr_assert (view.failed_before);
    tl_feed_join_destroy (&join);
}

Test (feed_merge, jobs_of_one_shard_are_done_at_their_done)
{
    tl_feed_join_t *join = tl_feed_join_new (2);
    tl_feed_view_t view;
    //  A body without shard keys decodes as shard 0 of 1.
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    tl_done_body_t body = {4, 8, 2, 0, 0, 1.5, {"/t.tsv", 6}, 0, 0};
    cr_assert_eq (tl_feed_done (77, &body, &buf), 0);
    tl_feed_msg_t msg;
    cr_assert_eq (tl_feed_decode ("done", 4, buf.data, buf.size, &msg), 0);
    cr_assert_eq (msg.shards, 1);
    tl_feed_msg_t totals = s_totals (77, 0, 1, 0, 1);
    cr_assert_eq (s_add (join, &totals, NULL, 0, &view), 0);
    cr_assert_eq (tl_feed_join_add (join, &msg, &view), 0);
    cr_assert (view.complete);
    cr_assert_eq (view.missed, 0);
    cr_assert_not (view.unseen);
    cr_assert_eq (view.done.keys, 4);
    cr_assert_eq (view.done.sum, 8);
    cr_assert (view.outputs[0].len == 6 && memcmp (view.outputs[0].ptr, "/t.tsv", 6) == 0);
    msgpack_sbuffer_destroy (&buf);
    tl_feed_join_destroy (&join);
}

Test (feed_merge, a_shard_count_that_disagrees_is_refused)
{
    tl_feed_join_t *join = tl_feed_join_new (2);
    tl_feed_view_t view;
    tl_feed_msg_t msg = s_progress (1, 0, 2, 3, false, 5);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    msg = s_progress (1, 2, 3, 3, false, 5);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), -1);
    msg = s_done (1, 0, 1, 3, "/x");
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), -1, "not taken as a job of one shard");
    //  Nothing changed: the job still has one shard's progress.
    msg = s_progress (1, 1, 2, 7, false, 6);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 2);
    cr_assert_eq (view.progress.keys, 11);
    tl_feed_join_destroy (&join);
}

Test (feed_merge, the_least_recently_heard_of_job_makes_room)
{
    tl_feed_join_t *join = tl_feed_join_new (2);
    tl_feed_view_t view;
    tl_feed_msg_t msg = s_progress (1, 0, 2, 1, false, 1);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    msg = s_progress (2, 0, 2, 1, false, 1);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    msg = s_progress (1, 1, 2, 1, false, 1);  //  Job 1 heard of again: job 2 is older
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 2);
    msg = s_progress (3, 0, 2, 1, false, 1);  //  Job 2 forgotten
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    msg = s_progress (1, 0, 2, 1, false, 1);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 2, "job 1 kept");
    msg = s_progress (2, 1, 2, 1, false, 1);
    cr_assert_eq (s_add (join, &msg, NULL, 0, &view), 0);
    cr_assert_eq (view.heard, 1, "job 2 started again");
    tl_feed_join_destroy (&join);
}
