/*  test_feed: the sink's feed (tl_feed). Every topic round-trips through its encoder and
    the typed decoder; the bodies are plain msgpack maps with the documented str keys
    (read back with msgpack-c, and with Python's msgpack where it is installed); the
    decoder takes keys in any order, skips keys it does not know, and refuses wrong
    types, missing or repeated keys, truncation at every byte, trailing bytes and
    headers that claim more than the body holds, without allocating; random mutations
    never crash and whatever decodes encodes again to the same message. Every body of a
    job's topic says its sink shard ("shard" of "shards"): the encoders always write
    both, the decoder takes a body without them as shard 0 of 1 and refuses a shard out
    of range. The sink's stats and the snapshot service's "snapshot" have neither job
    nor shard, its "error" a job and no shard; a totals body has "next" only when it is
    not 0 (so a feed's totals body is the same bytes as before "next" existed).

    Bodies handed to the decoder are copied to heap blocks of exactly their size, so
    that AddressSanitizer (the sanitized build) catches any read past a body's end.  */

#include "tl_feed.h"
#include "tl_test.h"
#include "tl_test_feed.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  ---------------------------------------------------------------------------------
//  Helpers

//  A string literal's bytes and their count (without the terminating NUL).
#define BYTES(literal) literal, sizeof (literal) - 1

//  A body copied to a heap block of exactly its size. Free with free().
static void *s_exact (const void *data, size_t size)
{
    void *copy = malloc (size ? size : 1);
    cr_assert_not_null (copy);
    if (size) memcpy (copy, data, size);
    return copy;
}

static bool s_is_zero (const tl_feed_msg_t *msg)
{
    static const tl_feed_msg_t zero;
    return memcmp (msg, &zero, sizeof zero) == 0;
}

//  Decodes an exact-size copy of body and frees it: for verdicts only, as a decoded
//  message points into the body. A refusal must leave msg zeroed.
static int s_verdict (tl_feed_topic_t topic, const void *body, size_t size)
{
    const char *name = tl_feed_topic_name (topic);
    void *copy = s_exact (body, size);
    tl_feed_msg_t msg;
    int rc = tl_feed_decode (name, strlen (name), copy, size, &msg);
    if (rc == -1) cr_assert (s_is_zero (&msg), "a refused %s left fields set", name);
    free (copy);
    return rc;
}

static bool s_str_equal (tl_str_t a, const char *ptr, size_t len)
{
    return a.len == len && (len == 0 || memcmp (a.ptr, ptr, len) == 0);
}

//  Bitwise, so that a NaN that came through a mutation compares equal to itself.
static bool s_double_equal (double a, double b)
{
    return memcmp (&a, &b, sizeof a) == 0;
}

//  True when walking entries hands out exactly want[0..n), then stops.
static bool s_entries_equal (tl_feed_entries_t entries, const tl_entry_t *want, size_t n)
{
    if (entries.count != n) return false;
    tl_str_t key;
    uint64_t total;
    for (size_t i = 0; i < n; i++) {
        if (!tl_feed_entries_next (&entries, &key, &total)) return false;
        if (!s_str_equal (key, want[i].key, want[i].len) || total != want[i].count) return false;
    }
    return !tl_feed_entries_next (&entries, &key, &total);
}

//  ---------------------------------------------------------------------------------
//  Samples: every topic, with extreme and with empty values. A sample is what an
//  encoder is called with: the scalar fields in a tl_feed_msg_t, entries beside it.

typedef struct {
    tl_feed_msg_t msg;          //  Topic, job and every field but the entries
    const tl_entry_t *entries;  //  top, totals: the entries
    size_t n;                   //  How many
} s_sample_t;

static const tl_entry_t s_keys[] = {
    {"the", 3, 1000},       {"", 0, 7},  //  the empty key
    {"a\0b", 3, 1},         {"\xff\xfe\xfd", 3, UINT64_MAX},
    {"\xc3\x28", 2, 0},  //  invalid UTF-8, total 0
    {"caf\xc3\xa9", 5, 42}, {"a\tb\nc", 5, 3},
};
#define S_KEYS (sizeof s_keys / sizeof s_keys[0])

static char s_long[TL_KEY_MAX];  //  'k' * TL_KEY_MAX: the longest key, a long reason
static tl_entry_t s_long_key[2];
#define S_SAMPLES_MAX 24

static size_t s_samples (s_sample_t *s)
{
    memset (s_long, 'k', sizeof s_long);
    s_long_key[0] = (tl_entry_t){s_long, TL_KEY_MAX, 5};
    s_long_key[1] = (tl_entry_t){"x", 1, 4};
    memset (s, 0, S_SAMPLES_MAX * sizeof *s);
    size_t n = 0;

    s[n].msg =
        (tl_feed_msg_t){.topic = TL_FEED_PROGRESS, .job = UINT64_MAX, .shard = 63, .shards = 64};
    s[n++].msg.u.progress = (tl_progress_t){
        UINT64_MAX, 5, UINT64_MAX, true, 1ull << 40, 7, 123456, 2, 999, 1.25e8, 3.5, 63, 64};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_PROGRESS, .job = 0};
    s[n++].msg.u.progress = (tl_progress_t){0, 0, 0, false, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_PROGRESS, .job = 128};
    s[n++].msg.u.progress = (tl_progress_t){128, 1, 2, false, 3, 4, 5, 6, 8, 1e-300, 1e300, 0, 0};

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOP, .job = 4, .shard = 2, .shards = 3};
    s[n].entries = s_keys;
    s[n++].n = S_KEYS;
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOP, .job = 65536};
    s[n++].n = 0;
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOP, .job = 1};
    s[n].entries = s_long_key;
    s[n++].n = 2;

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOTALS, .job = 4, .shard = 1, .shards = 2};
    s[n].msg.u.totals.batches = 1;
    s[n].entries = s_keys;
    s[n++].n = S_KEYS;
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOTALS, .job = 4};
    s[n].msg.u.totals.batch = UINT64_MAX - 1;
    s[n].msg.u.totals.batches = UINT64_MAX;
    s[n++].n = 0;
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOTALS, .job = 9};
    s[n].msg.u.totals.batch = 3;
    s[n].msg.u.totals.batches = 70000;
    s[n].entries = s_long_key;
    s[n++].n = 2;

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_DONE, .job = 99, .shard = 0, .shards = 5};
    s[n++].msg.u.done = (tl_done_body_t){
        UINT64_MAX, UINT64_MAX, 30, 4, 5, 6.75, {"/data/out/totals.tsv", 20}, 0, 0};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_DONE, .job = 0};
    s[n++].msg.u.done = (tl_done_body_t){0, 0, 0, 0, 0, 0.0, {"", 0}, 0, 0};

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_FAILED, .job = 98, .shard = 3, .shards = 4};
    s[n++].msg.u.reason = (tl_str_t){"worker lost", 11};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_FAILED, .job = 97};
    s[n++].msg.u.reason = (tl_str_t){"", 0};

    //  Snapshot replies: a totals batch with the cursor of the next one.
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOTALS, .job = UINT64_MAX, .shard = 1, .shards = 2};
    s[n].msg.u.totals.batch = 5;
    s[n].msg.u.totals.batches = 7;
    s[n].msg.u.totals.next = UINT64_MAX;
    s[n].entries = s_keys;
    s[n++].n = S_KEYS;
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_TOTALS, .job = 3};
    s[n].msg.u.totals.batches = 2;
    s[n++].msg.u.totals.next = 1;

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_STATS};
    s[n++].msg.u.stats = (tl_feed_stats_t){UINT64_MAX, 1e300,      UINT64_MAX, UINT64_MAX - 1,
                                           1ull << 32, UINT64_MAX, 65536,      UINT64_MAX,
                                           255,        1ull << 40, UINT64_MAX, 1.25e8};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_STATS};
    s[n++].msg.u.stats = (tl_feed_stats_t){0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_STATS};
    s[n++].msg.u.stats = (tl_feed_stats_t){1, 1e-300, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.5};

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_SNAPSHOT};
    s[n++].msg.u.snapshot = (tl_feed_snapshot_t){UINT64_MAX, UINT64_MAX};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_SNAPSHOT};
    s[n++].msg.u.snapshot = (tl_feed_snapshot_t){0, 16};

    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_ERROR, .job = UINT64_MAX};
    s[n++].msg.u.reason = (tl_str_t){"the job's totals are no longer kept\0\xff", 37};
    s[n].msg = (tl_feed_msg_t){.topic = TL_FEED_ERROR, .job = 0};
    s[n++].msg.u.reason = (tl_str_t){"", 0};
    cr_assert (n <= S_SAMPLES_MAX);
    return n;
}

//  Whether a topic's bodies are a job's, with "shard" and "shards".
static bool s_has_shard (tl_feed_topic_t topic)
{
    return topic != TL_FEED_STATS && topic != TL_FEED_SNAPSHOT && topic != TL_FEED_ERROR;
}

//  Encodes a sample: one of a shard (shards set), one of a topic without a shorthand
//  and a totals batch with a next cursor with tl_feed_encode, one of no shard with its
//  topic's own shorthand (tl_test_feed.h); returns what the encoder returned.
static int s_encode (const s_sample_t *s, msgpack_sbuffer *buf)
{
    const tl_feed_msg_t *m = &s->msg;
    if ((m->shards && m->topic != TL_FEED_PROGRESS) || !s_has_shard (m->topic) ||
        (m->topic == TL_FEED_TOTALS && m->u.totals.next != 0))
        return tl_feed_encode (m, s->entries, s->n, buf);
    switch (m->topic) {
    case TL_FEED_PROGRESS: {
        tl_progress_t progress = m->u.progress;
        progress.job = m->job;
        progress.shard = m->shard;
        progress.shards = m->shards;
        return tl_feed_progress (&progress, buf);
    }
    case TL_FEED_TOP:
        return tl_feed_top (m->job, s->entries, s->n, buf);
    case TL_FEED_TOTALS:
        return tl_feed_totals (m->job, m->u.totals.batch, m->u.totals.batches, s->entries, s->n,
                               buf);
    case TL_FEED_DONE:
        return tl_feed_done (m->job, &m->u.done, buf);
    case TL_FEED_FAILED: {
        //  tl_feed_failed takes a C string: a reason holding a NUL cannot be sent.
        char *reason = strndup (m->u.reason.ptr ? m->u.reason.ptr : "", m->u.reason.len);
        cr_assert_not_null (reason);
        int rc = tl_feed_failed (m->job, reason, buf);
        free (reason);
        return rc;
    }
    default:
        cr_assert_fail ("topic %d", m->topic);
        return -1;
    }
}

//  True when got is what decoding sample s must give.
static bool s_matches (const s_sample_t *s, const tl_feed_msg_t *got)
{
    const tl_feed_msg_t *m = &s->msg;
    //  A sample of no shard (shards 0) is sent as shard 0 of 1.
    uint64_t shards = m->shards ? m->shards : 1;
    if (got->topic != m->topic || got->job != m->job) return false;
    if (got->shard != m->shard || got->shards != shards) return false;
    switch (m->topic) {
    case TL_FEED_PROGRESS: {
        const tl_progress_t *x = &m->u.progress, *y = &got->u.progress;
        return y->job == m->job && y->shard == m->shard && y->shards == shards &&
               x->chunks_done == y->chunks_done && x->chunks_known == y->chunks_known &&
               x->chunks_final == y->chunks_final && x->bytes == y->bytes &&
               x->input_bytes == y->input_bytes && x->lines == y->lines &&
               x->bad_lines == y->bad_lines && x->keys == y->keys &&
               s_double_equal (x->rate, y->rate) && s_double_equal (x->seconds, y->seconds);
    }
    case TL_FEED_TOP:
        return s_entries_equal (got->u.top, s->entries, s->n);
    case TL_FEED_TOTALS:
        return m->u.totals.batch == got->u.totals.batch &&
               m->u.totals.batches == got->u.totals.batches &&
               m->u.totals.next == got->u.totals.next &&
               s_entries_equal (got->u.totals.entries, s->entries, s->n);
    case TL_FEED_DONE: {
        const tl_done_body_t *x = &m->u.done, *y = &got->u.done;
        return x->keys == y->keys && x->sum == y->sum && x->lines == y->lines &&
               x->bad_lines == y->bad_lines && x->filtered == y->filtered &&
               s_double_equal (x->seconds, y->seconds) &&
               s_str_equal (y->output, x->output.ptr, x->output.len);
    }
    case TL_FEED_FAILED:
    case TL_FEED_ERROR:
        return s_str_equal (got->u.reason, m->u.reason.ptr, m->u.reason.len);
    case TL_FEED_STATS: {
        const tl_feed_stats_t *x = &m->u.stats, *y = &got->u.stats;
        return x->incarnation == y->incarnation && s_double_equal (x->uptime, y->uptime) &&
               x->jobs_open == y->jobs_open && x->jobs_done == y->jobs_done &&
               x->jobs_failed == y->jobs_failed && x->partials == y->partials &&
               x->duplicates == y->duplicates && x->junk == y->junk &&
               x->disconnects == y->disconnects && x->bytes == y->bytes && x->lines == y->lines &&
               s_double_equal (x->rate, y->rate);
    }
    case TL_FEED_SNAPSHOT:
        return m->u.snapshot.open == got->u.snapshot.open &&
               m->u.snapshot.finished == got->u.snapshot.finished;
    default:
        return false;
    }
}

//  Turns a decoded message back into a sample (to encode it again). The entries are
//  copied out of the frame into *owned, which the caller frees.
static void s_sample_of (const tl_feed_msg_t *msg, s_sample_t *s, tl_entry_t **owned)
{
    memset (s, 0, sizeof *s);
    s->msg = *msg;
    *owned = NULL;
    tl_feed_entries_t entries;
    if (msg->topic == TL_FEED_TOP)
        entries = msg->u.top;
    else if (msg->topic == TL_FEED_TOTALS)
        entries = msg->u.totals.entries;
    else
        return;
    *owned = calloc (entries.count ? entries.count : 1, sizeof **owned);
    cr_assert_not_null (*owned);
    tl_str_t key;
    uint64_t total;
    while (tl_feed_entries_next (&entries, &key, &total))
        (*owned)[s->n++] = (tl_entry_t){key.ptr, (uint32_t)key.len, total};
    cr_assert_eq (s->n, entries.count);
    s->entries = *owned;
}

//  failed and error: bodies of the same keys but the shard's.
static bool s_reason_twin (tl_feed_topic_t a, tl_feed_topic_t b)
{
    return (a == TL_FEED_FAILED && b == TL_FEED_ERROR) ||
           (a == TL_FEED_ERROR && b == TL_FEED_FAILED);
}

//  ---------------------------------------------------------------------------------
//  Topics

Test (feed, topic_names_parse_back)
{
    static const char *names[] = {"progress", "top",   "totals",   "done",
                                  "failed",   "stats", "snapshot", "error"};
    cr_assert_eq (sizeof names / sizeof names[0], TL_FEED_COUNT_ - 1);
    for (int topic = TL_FEED_INVALID + 1; topic < TL_FEED_COUNT_; topic++) {
        const char *name = tl_feed_topic_name ((tl_feed_topic_t)topic);
        cr_assert_str_eq (name, names[topic - 1]);
        cr_assert_eq (tl_feed_topic_parse (name, strlen (name)), (tl_feed_topic_t)topic);
    }
    cr_assert_str_eq (TL_FEED_TOPIC_PROGRESS, "progress");
    cr_assert_str_eq (TL_FEED_TOPIC_TOP, "top");
    cr_assert_str_eq (TL_FEED_TOPIC_TOTALS, "totals");
    cr_assert_str_eq (TL_FEED_TOPIC_DONE, "done");
    cr_assert_str_eq (TL_FEED_TOPIC_FAILED, "failed");
    cr_assert_str_eq (TL_FEED_TOPIC_STATS, "stats");
    cr_assert_str_eq (TL_FEED_TOPIC_SNAPSHOT, "snapshot");
    cr_assert_str_eq (TL_FEED_TOPIC_ERROR, "error");
    cr_assert_str_eq (tl_feed_topic_name (TL_FEED_INVALID), "");
    cr_assert_str_eq (tl_feed_topic_name (TL_FEED_COUNT_), "");
}

Test (feed, topic_parse_refuses_junk)
{
    static const struct {
        const char *data;
        size_t size;
    } junk[] = {
        {BYTES ("")},       {BYTES ("Progress")}, {BYTES ("progres")},   {BYTES ("progress\0")},
        {BYTES ("tops")},   {BYTES ("to")},       {BYTES (" done")},     {BYTES ("done ")},
        {BYTES ("DONE")},   {BYTES ("totals\n")}, {BYTES ("failed!")},   {BYTES ("fail")},
        {BYTES ("\xff")},   {BYTES ("totalsx")},  {BYTES ("stat")},      {BYTES ("stats\0")},
        {BYTES ("Stats")},  {BYTES ("snap")},     {BYTES ("snapshots")}, {BYTES ("err")},
        {BYTES ("errors")}, {BYTES ("ERROR")},    {BYTES ("progress")},  //  the last one is valid
    };
    size_t n = sizeof junk / sizeof junk[0];
    for (size_t i = 0; i < n - 1; i++) {
        void *copy = s_exact (junk[i].data, junk[i].size);
        cr_assert_eq (tl_feed_topic_parse (copy, junk[i].size), TL_FEED_INVALID, "junk %zu", i);
        free (copy);
    }
    cr_assert_eq (tl_feed_topic_parse (junk[n - 1].data, junk[n - 1].size), TL_FEED_PROGRESS);
    cr_assert_eq (tl_feed_topic_parse (NULL, 0), TL_FEED_INVALID);

    //  A good body under an unknown topic is refused: the topic says how to read it.
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_failed (1, "x", &buf), 0);
    tl_feed_msg_t msg;
    cr_assert_eq (tl_feed_decode ("fail", 4, buf.data, buf.size, &msg), -1);
    cr_assert (s_is_zero (&msg));
    cr_assert_eq (tl_feed_decode ("failed", 6, buf.data, buf.size, &msg), 0);
    msgpack_sbuffer_destroy (&buf);
}

//  ---------------------------------------------------------------------------------
//  Round trips

Test (feed, every_topic_round_trips)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    bool seen[TL_FEED_COUNT_] = {false};
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (s_encode (&samples[i], &buf), 0, "sample %zu", i);
        const char *name = tl_feed_topic_name (samples[i].msg.topic);
        void *body = s_exact (buf.data, buf.size);
        tl_feed_msg_t msg;
        cr_assert_eq (tl_feed_decode (name, strlen (name), body, buf.size, &msg), 0, "sample %zu",
                      i);
        cr_assert (s_matches (&samples[i], &msg), "sample %zu (%s) differs", i, name);

        //  Encoding the decoded message gives the same bytes: one canonical form.
        s_sample_t back;
        tl_entry_t *owned;
        s_sample_of (&msg, &back, &owned);
        msgpack_sbuffer again;
        msgpack_sbuffer_init (&again);
        cr_assert_eq (s_encode (&back, &again), 0);
        cr_assert_eq (again.size, buf.size, "sample %zu", i);
        cr_assert_eq (memcmp (again.data, buf.data, buf.size), 0, "sample %zu", i);

        //  A body of one topic is never a body of another: each has a key the others lack.
        //  But failed and error: the same keys (error's without the optional shard), so
        //  each decodes as the other, with the same job and reason (the topic frame tells
        //  them apart; the feed never carries error).
        for (int other = TL_FEED_INVALID + 1; other < TL_FEED_COUNT_; other++) {
            if (other == (int)samples[i].msg.topic) continue;
            const char *other_name = tl_feed_topic_name ((tl_feed_topic_t)other);
            if (s_reason_twin (samples[i].msg.topic, (tl_feed_topic_t)other)) {
                tl_feed_msg_t twin;
                cr_assert_eq (
                    tl_feed_decode (other_name, strlen (other_name), body, buf.size, &twin), 0,
                    "sample %zu as %s", i, other_name);
                cr_assert_eq (twin.job, samples[i].msg.job);
                cr_assert (s_str_equal (twin.u.reason, samples[i].msg.u.reason.ptr,
                                        samples[i].msg.u.reason.len));
                cr_assert_eq (twin.shard, 0);
                cr_assert_eq (twin.shards, 1);
                continue;
            }
            cr_assert_eq (s_verdict ((tl_feed_topic_t)other, buf.data, buf.size), -1,
                          "sample %zu decoded as %s", i, other_name);
        }
        seen[samples[i].msg.topic] = true;
        free (owned);
        free (body);
        msgpack_sbuffer_destroy (&again);
        msgpack_sbuffer_destroy (&buf);
    }
    for (int topic = TL_FEED_INVALID + 1; topic < TL_FEED_COUNT_; topic++)
        cr_assert (seen[topic], "no sample of %s", tl_feed_topic_name ((tl_feed_topic_t)topic));
}

Test (feed, encoders_append_and_refuse_overlong_keys)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    size_t offsets[S_SAMPLES_MAX + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq (s_encode (&samples[i], &buf), 0);
        offsets[i + 1] = buf.size;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = tl_feed_topic_name (samples[i].msg.topic);
        size_t size = offsets[i + 1] - offsets[i];
        void *body = s_exact (buf.data + offsets[i], size);
        tl_feed_msg_t msg;
        cr_assert_eq (tl_feed_decode (name, strlen (name), body, size, &msg), 0);
        cr_assert (s_matches (&samples[i], &msg), "sample %zu", i);
        free (body);
    }

    //  A key the decoder would refuse is not sent, and the buffer stays as it was.
    static char over[TL_KEY_MAX + 1];
    tl_entry_t bad[2] = {{"ok", 2, 1}, {over, TL_KEY_MAX + 1, 1}};
    size_t size = buf.size;
    cr_assert_eq (tl_feed_top (1, bad, 2, &buf), -1);
    cr_assert_eq (buf.size, size);
    cr_assert_eq (tl_feed_totals (1, 0, 1, bad, 2, &buf), -1);
    cr_assert_eq (buf.size, size);
    cr_assert_eq (tl_feed_top (1, bad, 1, &buf), 0);
    msgpack_sbuffer_destroy (&buf);
}

Test (feed, entries_walk_once_and_copies_walk_again)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_top (4, s_keys, S_KEYS, &buf), 0);
    tl_feed_msg_t msg;
    cr_assert_eq (tl_feed_decode ("top", 3, buf.data, buf.size, &msg), 0);
    tl_feed_entries_t copy = msg.u.top;
    cr_assert (s_entries_equal (msg.u.top, s_keys, S_KEYS));
    tl_str_t key;
    uint64_t total;
    size_t walked = 0;
    while (tl_feed_entries_next (&msg.u.top, &key, &total))
        walked++;
    cr_assert_eq (walked, S_KEYS);
    cr_assert_not (tl_feed_entries_next (&msg.u.top, &key, &total));
    cr_assert_eq (msg.u.top.count, S_KEYS, "count stays the list's size");
    cr_assert (s_entries_equal (copy, s_keys, S_KEYS));
    tl_feed_entries_t none = {0};
    cr_assert_not (tl_feed_entries_next (&none, &key, &total));
    msgpack_sbuffer_destroy (&buf);
}

//  ---------------------------------------------------------------------------------
//  The bodies are plain msgpack maps with the documented str keys: msgpack-c reads
//  them back by key, as any subscriber in another language does.

typedef struct {
    msgpack_unpacked result;  //  Owns the decoded object
    msgpack_object *map;      //  The body
} s_plain_t;

static void s_plain_open (s_plain_t *plain, const msgpack_sbuffer *buf, uint32_t keys)
{
    cr_assert_eq (tl_msgpack_check (buf->data, buf->size), 0);
    msgpack_unpacked_init (&plain->result);
    size_t off = 0;
    cr_assert_eq (msgpack_unpack_next (&plain->result, buf->data, buf->size, &off),
                  MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq (off, buf->size);
    plain->map = &plain->result.data;
    cr_assert_eq (plain->map->type, MSGPACK_OBJECT_MAP);
    cr_assert_eq (plain->map->via.map.size, keys);
    for (uint32_t i = 0; i < keys; i++)
        cr_assert_eq (plain->map->via.map.ptr[i].key.type, MSGPACK_OBJECT_STR);
}

static msgpack_object *s_plain_get (s_plain_t *plain, const char *key, msgpack_object_type type)
{
    for (uint32_t i = 0; i < plain->map->via.map.size; i++) {
        msgpack_object_kv *kv = &plain->map->via.map.ptr[i];
        if (kv->key.via.str.size == strlen (key) &&
            memcmp (kv->key.via.str.ptr, key, kv->key.via.str.size) == 0) {
            cr_assert_eq (kv->val.type, type, "%s has type %d", key, kv->val.type);
            return &kv->val;
        }
    }
    cr_assert_fail ("no %s in the body", key);
    return NULL;
}

static uint64_t s_plain_u64 (s_plain_t *plain, const char *key)
{
    return s_plain_get (plain, key, MSGPACK_OBJECT_POSITIVE_INTEGER)->via.u64;
}

static double s_plain_f64 (s_plain_t *plain, const char *key)
{
    return s_plain_get (plain, key, MSGPACK_OBJECT_FLOAT64)->via.f64;
}

static void s_plain_close (s_plain_t *plain)
{
    msgpack_unpacked_destroy (&plain->result);
}

Test (feed, progress_is_a_plain_map)
{
    tl_progress_t progress = {.job = 17,
                              .chunks_done = 5,
                              .chunks_known = 9,
                              .chunks_final = true,
                              .bytes = 1ull << 40,
                              .input_bytes = UINT64_MAX,
                              .lines = 123456,
                              .bad_lines = 2,
                              .keys = 999,
                              .rate = 1.25e8,
                              .seconds = 3.5};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_progress (&progress, &buf), 0);
    s_plain_t plain;
    s_plain_open (&plain, &buf, 13);
    cr_assert_eq (s_plain_u64 (&plain, "job"), 17);
    cr_assert_eq (s_plain_u64 (&plain, "chunks_done"), 5);
    cr_assert_eq (s_plain_u64 (&plain, "chunks_known"), 9);
    cr_assert_eq (s_plain_get (&plain, "chunks_final", MSGPACK_OBJECT_BOOLEAN)->via.boolean, true);
    cr_assert_eq (s_plain_u64 (&plain, "bytes"), 1ull << 40);
    cr_assert_eq (s_plain_u64 (&plain, "input_bytes"), UINT64_MAX);
    cr_assert_eq (s_plain_u64 (&plain, "lines"), 123456);
    cr_assert_eq (s_plain_u64 (&plain, "bad_lines"), 2);
    cr_assert_eq (s_plain_u64 (&plain, "keys"), 999);
    cr_assert_eq (s_plain_f64 (&plain, "rate"), 1.25e8);
    cr_assert_eq (s_plain_f64 (&plain, "seconds"), 3.5);
    //  Not set: the one shard of one.
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 0);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 1);
    s_plain_close (&plain);

    progress.chunks_final = false;
    progress.shard = 6;
    progress.shards = 7;
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_progress (&progress, &buf), 0);
    s_plain_open (&plain, &buf, 13);
    cr_assert_eq (s_plain_get (&plain, "chunks_final", MSGPACK_OBJECT_BOOLEAN)->via.boolean, false);
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 6);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 7);
    s_plain_close (&plain);
    msgpack_sbuffer_destroy (&buf);
}

Test (feed, top_and_totals_are_plain_maps)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_top (4, s_keys, S_KEYS, &buf), 0);
    s_plain_t plain;
    s_plain_open (&plain, &buf, 4);
    cr_assert_eq (s_plain_u64 (&plain, "job"), 4);
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 0);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 1);
    msgpack_object *top = s_plain_get (&plain, "top", MSGPACK_OBJECT_ARRAY);
    cr_assert_eq (top->via.array.size, S_KEYS);
    for (size_t i = 0; i < S_KEYS; i++) {
        msgpack_object *pair = &top->via.array.ptr[i];
        cr_assert_eq (pair->type, MSGPACK_OBJECT_ARRAY);
        cr_assert_eq (pair->via.array.size, 2);
        cr_assert_eq (pair->via.array.ptr[0].type, MSGPACK_OBJECT_BIN);
        cr_assert_eq (pair->via.array.ptr[0].via.bin.size, s_keys[i].len);
        cr_assert_eq (memcmp (pair->via.array.ptr[0].via.bin.ptr, s_keys[i].key, s_keys[i].len), 0);
        cr_assert_eq (pair->via.array.ptr[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        cr_assert_eq (pair->via.array.ptr[1].via.u64, s_keys[i].count);
    }
    s_plain_close (&plain);

    //  Totals in two batches; every entry comes back once, in order.
    size_t half = S_KEYS / 2;
    for (uint64_t batch = 0; batch < 2; batch++) {
        msgpack_sbuffer_clear (&buf);
        const tl_entry_t *part = batch ? s_keys + half : s_keys;
        size_t count = batch ? S_KEYS - half : half;
        cr_assert_eq (tl_feed_totals (4, batch, 2, part, count, &buf), 0);
        s_plain_open (&plain, &buf, 6);
        cr_assert_eq (s_plain_u64 (&plain, "job"), 4);
        cr_assert_eq (s_plain_u64 (&plain, "shard"), 0);
        cr_assert_eq (s_plain_u64 (&plain, "shards"), 1);
        cr_assert_eq (s_plain_u64 (&plain, "batch"), batch);
        cr_assert_eq (s_plain_u64 (&plain, "batches"), 2);
        msgpack_object *map = s_plain_get (&plain, "entries", MSGPACK_OBJECT_MAP);
        cr_assert_eq (map->via.map.size, count);
        for (uint32_t i = 0; i < map->via.map.size; i++) {
            msgpack_object_kv *kv = &map->via.map.ptr[i];
            cr_assert_eq (kv->key.type, MSGPACK_OBJECT_BIN);
            cr_assert_eq (kv->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            cr_assert_eq (kv->key.via.bin.size, part[i].len);
            cr_assert_eq (memcmp (kv->key.via.bin.ptr, part[i].key, part[i].len), 0);
            cr_assert_eq (kv->val.via.u64, part[i].count);
        }
        s_plain_close (&plain);
    }

    //  An empty batch is a valid body.
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_totals (4, 0, 1, NULL, 0, &buf), 0);
    s_plain_open (&plain, &buf, 6);
    cr_assert_eq (s_plain_get (&plain, "entries", MSGPACK_OBJECT_MAP)->via.map.size, 0);
    s_plain_close (&plain);
    msgpack_sbuffer_destroy (&buf);
}

Test (feed, done_and_failed_are_plain_maps)
{
    //  chunks and bytes are for the ventilator (DONE on the job socket): the feed's done
    //  has the 8 entries below and not them.
    tl_done_body_t done = {10, 20, 30, 4, 5, 6.75, {"/data/out/totals.tsv", 20}, 12, 4096};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_done (99, &done, &buf), 0);
    s_plain_t plain;
    s_plain_open (&plain, &buf, 10);
    cr_assert_eq (s_plain_u64 (&plain, "job"), 99);
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 0);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 1);
    cr_assert_eq (s_plain_u64 (&plain, "keys"), 10);
    cr_assert_eq (s_plain_u64 (&plain, "sum"), 20);
    cr_assert_eq (s_plain_u64 (&plain, "lines"), 30);
    cr_assert_eq (s_plain_u64 (&plain, "bad_lines"), 4);
    cr_assert_eq (s_plain_u64 (&plain, "filtered"), 5);
    cr_assert_eq (s_plain_f64 (&plain, "seconds"), 6.75);
    msgpack_object *output = s_plain_get (&plain, "output", MSGPACK_OBJECT_STR);
    cr_assert_eq (output->via.str.size, done.output.len);
    cr_assert_eq (memcmp (output->via.str.ptr, done.output.ptr, done.output.len), 0);
    s_plain_close (&plain);

    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_failed (98, "worker lost", &buf), 0);
    s_plain_open (&plain, &buf, 4);
    cr_assert_eq (s_plain_u64 (&plain, "job"), 98);
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 0);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 1);
    msgpack_object *reason = s_plain_get (&plain, "reason", MSGPACK_OBJECT_STR);
    cr_assert_eq (reason->via.str.size, 11);
    cr_assert_eq (memcmp (reason->via.str.ptr, "worker lost", 11), 0);
    s_plain_close (&plain);

    //  Through tl_feed_encode, a shard's done and failed say which shard they are.
    tl_feed_msg_t msg = {.topic = TL_FEED_DONE, .job = 99, .shard = 2, .shards = 3};
    msg.u.done = done;
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_plain_open (&plain, &buf, 10);
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 2);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 3);
    cr_assert_eq (s_plain_u64 (&plain, "sum"), 20);
    s_plain_close (&plain);
    msg = (tl_feed_msg_t){.topic = TL_FEED_FAILED, .job = 98, .shard = 63, .shards = 64};
    msg.u.reason = (tl_str_t){"cancelled", 9};
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_plain_open (&plain, &buf, 4);
    cr_assert_eq (s_plain_u64 (&plain, "shard"), 63);
    cr_assert_eq (s_plain_u64 (&plain, "shards"), 64);
    s_plain_close (&plain);
    msgpack_sbuffer_destroy (&buf);
}

//  The snapshot service's totals reply: the feed's totals body and "next"; "next" 0 (the
//  last batch, and every batch on the feed) is left out, so that the body is the same
//  bytes as a totals body was before "next" existed.
Test (feed, totals_next_is_written_only_when_not_0)
{
    static const tl_entry_t part[] = {{"b", 1, 5}, {"\xff", 1, UINT64_MAX}};
    for (int with_next = 0; with_next < 2; with_next++) {
        tl_feed_msg_t msg = {.topic = TL_FEED_TOTALS, .job = 7, .shard = 1, .shards = 3};
        msg.u.totals.batch = 4;
        msg.u.totals.batches = 9;
        msg.u.totals.next = with_next ? 0x123456789ull : 0;
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_feed_encode (&msg, part, 2, &buf), 0);
        s_plain_t plain;
        s_plain_open (&plain, &buf, with_next ? 7 : 6);
        cr_assert_eq (s_plain_u64 (&plain, "job"), 7);
        cr_assert_eq (s_plain_u64 (&plain, "batch"), 4);
        cr_assert_eq (s_plain_u64 (&plain, "batches"), 9);
        cr_assert_eq (s_plain_u64 (&plain, "shard"), 1);
        cr_assert_eq (s_plain_u64 (&plain, "shards"), 3);
        cr_assert_eq (s_plain_get (&plain, "entries", MSGPACK_OBJECT_MAP)->via.map.size, 2);
        if (with_next) cr_assert_eq (s_plain_u64 (&plain, "next"), 0x123456789ull);
        bool has_next = false;
        for (uint32_t i = 0; i < plain.map->via.map.size; i++) {
            const msgpack_object_str *key = &plain.map->via.map.ptr[i].key.via.str;
            has_next |= key->size == 4 && memcmp (key->ptr, "next", 4) == 0;
        }
        cr_assert_eq (has_next, with_next, "\"next\" %s", with_next ? "missing" : "written");
        s_plain_close (&plain);

        //  The bytes a totals body had before "next" (packed here key by key, in the
        //  order the encoder writes them), with "next" after the entries when it is set.
        msgpack_sbuffer want;
        msgpack_sbuffer_init (&want);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &want, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, with_next ? 7 : 6);
        msgpack_pack_str_with_body (&pk, "job", 3);
        msgpack_pack_uint64 (&pk, 7);
        msgpack_pack_str_with_body (&pk, "batch", 5);
        msgpack_pack_uint64 (&pk, 4);
        msgpack_pack_str_with_body (&pk, "batches", 7);
        msgpack_pack_uint64 (&pk, 9);
        msgpack_pack_str_with_body (&pk, "entries", 7);
        msgpack_pack_map (&pk, 2);
        msgpack_pack_bin_with_body (&pk, "b", 1);
        msgpack_pack_uint64 (&pk, 5);
        msgpack_pack_bin_with_body (&pk, "\xff", 1);
        msgpack_pack_uint64 (&pk, UINT64_MAX);
        if (with_next) {
            msgpack_pack_str_with_body (&pk, "next", 4);
            msgpack_pack_uint64 (&pk, 0x123456789ull);
        }
        msgpack_pack_str_with_body (&pk, "shard", 5);
        msgpack_pack_uint64 (&pk, 1);
        msgpack_pack_str_with_body (&pk, "shards", 6);
        msgpack_pack_uint64 (&pk, 3);
        cr_assert_eq (buf.size, want.size, "next %d: %zu bytes, not %zu", with_next, buf.size,
                      want.size);
        cr_assert_eq (memcmp (buf.data, want.data, want.size), 0, "next %d", with_next);

        //  Decoded: next as written; a body with "next": 0 written out is the same message.
        void *body = s_exact (buf.data, buf.size);
        tl_feed_msg_t back;
        cr_assert_eq (tl_feed_decode ("totals", 6, body, buf.size, &back), 0);
        cr_assert_eq (back.u.totals.next, msg.u.totals.next);
        cr_assert_eq (back.u.totals.batch, 4);
        cr_assert (s_entries_equal (back.u.totals.entries, part, 2));
        free (body);
        msgpack_sbuffer_destroy (&want);
        msgpack_sbuffer_destroy (&buf);
    }
    //  tl_feed_totals (no next) and tl_feed_encode with next 0 write the same bytes.
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init (&a);
    msgpack_sbuffer_init (&b);
    cr_assert_eq (tl_feed_totals (7, 0, 1, part, 2, &a), 0);
    tl_feed_msg_t msg = {.topic = TL_FEED_TOTALS, .job = 7, .shards = 1};
    msg.u.totals.batches = 1;
    cr_assert_eq (tl_feed_encode (&msg, part, 2, &b), 0);
    cr_assert (a.size == b.size && memcmp (a.data, b.data, a.size) == 0);
    msgpack_sbuffer_clear (&b);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 7);
    msgpack_pack_str_with_body (&pk, "next", 4);
    msgpack_pack_uint64 (&pk, 0);
    msgpack_sbuffer_write (&b, a.data + 1, a.size - 1);  //  a's entries after its header
    void *body = s_exact (b.data, b.size);
    tl_feed_msg_t back;
    cr_assert_eq (tl_feed_decode ("totals", 6, body, b.size, &back), 0);
    cr_assert_eq (back.u.totals.next, 0);
    cr_assert (s_entries_equal (back.u.totals.entries, part, 2));
    free (body);
    msgpack_sbuffer_destroy (&a);
    msgpack_sbuffer_destroy (&b);
}

//  The keys of a plain map, in order, comma-separated, into names (of size bytes).
static void s_plain_keys (s_plain_t *plain, char *names, size_t size)
{
    size_t at = 0;
    names[0] = 0;
    for (uint32_t i = 0; i < plain->map->via.map.size; i++) {
        const msgpack_object_str *key = &plain->map->via.map.ptr[i].key.via.str;
        at += (size_t)snprintf (names + at, size - at, "%s%.*s", i ? "," : "", (int)key->size,
                                key->ptr);
        cr_assert_lt (at, size);
    }
}

//  stats, snapshot and error are no job's shard's: they have no "shard" nor "shards";
//  stats and snapshot not even a "job".
Test (feed, stats_snapshot_and_error_are_plain_maps)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_STATS};
    msg.u.stats = (tl_feed_stats_t){.incarnation = UINT64_MAX,
                                    .uptime = 12.5,
                                    .jobs_open = 1,
                                    .jobs_done = 2,
                                    .jobs_failed = 3,
                                    .partials = 4,
                                    .duplicates = 5,
                                    .junk = 6,
                                    .disconnects = 7,
                                    .bytes = 1ull << 40,
                                    .lines = 9,
                                    .rate = 2.5e6};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_plain_t plain;
    s_plain_open (&plain, &buf, 12);
    char names[512];
    s_plain_keys (&plain, names, sizeof names);
    cr_assert_str_eq (names, "incarnation,uptime,jobs_open,jobs_done,jobs_failed,partials,"
                             "duplicates,junk,disconnects,bytes,lines,rate");
    cr_assert_eq (s_plain_u64 (&plain, "incarnation"), UINT64_MAX);
    cr_assert_eq (s_plain_f64 (&plain, "uptime"), 12.5);
    cr_assert_eq (s_plain_u64 (&plain, "jobs_open"), 1);
    cr_assert_eq (s_plain_u64 (&plain, "jobs_done"), 2);
    cr_assert_eq (s_plain_u64 (&plain, "jobs_failed"), 3);
    cr_assert_eq (s_plain_u64 (&plain, "partials"), 4);
    cr_assert_eq (s_plain_u64 (&plain, "duplicates"), 5);
    cr_assert_eq (s_plain_u64 (&plain, "junk"), 6);
    cr_assert_eq (s_plain_u64 (&plain, "disconnects"), 7);
    cr_assert_eq (s_plain_u64 (&plain, "bytes"), 1ull << 40);
    cr_assert_eq (s_plain_u64 (&plain, "lines"), 9);
    cr_assert_eq (s_plain_f64 (&plain, "rate"), 2.5e6);
    s_plain_close (&plain);

    msg = (tl_feed_msg_t){.topic = TL_FEED_SNAPSHOT};
    msg.u.snapshot = (tl_feed_snapshot_t){3, 16};
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_plain_open (&plain, &buf, 2);
    s_plain_keys (&plain, names, sizeof names);
    cr_assert_str_eq (names, "open,finished");
    cr_assert_eq (s_plain_u64 (&plain, "open"), 3);
    cr_assert_eq (s_plain_u64 (&plain, "finished"), 16);
    s_plain_close (&plain);

    msg = (tl_feed_msg_t){.topic = TL_FEED_ERROR, .job = 0xfedcba9876543210ull};
    msg.u.reason = (tl_str_t){"unknown job", 11};
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_plain_open (&plain, &buf, 2);
    s_plain_keys (&plain, names, sizeof names);
    cr_assert_str_eq (names, "job,reason");
    cr_assert_eq (s_plain_u64 (&plain, "job"), 0xfedcba9876543210ull);
    msgpack_object *reason = s_plain_get (&plain, "reason", MSGPACK_OBJECT_STR);
    cr_assert (reason->via.str.size == 11 && memcmp (reason->via.str.ptr, "unknown job", 11) == 0);
    s_plain_close (&plain);

    //  Decoded, they are shard 0 of 1 whatever the body says under "shard" (a key they
    //  do not define, so skipped) and stats and snapshot are job 0 likewise.
    msgpack_sbuffer_clear (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    msgpack_pack_str_with_body (&pk, "shard", 5);
    msgpack_pack_uint64 (&pk, 99);
    msgpack_pack_str_with_body (&pk, "finished", 8);
    msgpack_pack_uint64 (&pk, 1);
    msgpack_pack_str_with_body (&pk, "job", 3);
    msgpack_pack_uint64 (&pk, 5);
    msgpack_pack_str_with_body (&pk, "shards", 6);
    msgpack_pack_uint64 (&pk, 0);
    msgpack_pack_str_with_body (&pk, "open", 4);
    msgpack_pack_uint64 (&pk, 2);
    void *body = s_exact (buf.data, buf.size);
    tl_feed_msg_t back;
    cr_assert_eq (tl_feed_decode ("snapshot", 8, body, buf.size, &back), 0);
    cr_assert_eq (back.topic, TL_FEED_SNAPSHOT);
    cr_assert_eq (back.job, 0);
    cr_assert_eq (back.shard, 0);
    cr_assert_eq (back.shards, 1);
    cr_assert_eq (back.u.snapshot.open, 2);
    cr_assert_eq (back.u.snapshot.finished, 1);
    free (body);
    msgpack_sbuffer_destroy (&buf);
}

//  ---------------------------------------------------------------------------------
//  Shards: every body says which shard of how many sent it; a body without the keys is
//  shard 0 of 1; anything else out of range is neither sent nor read.

Test (feed, encoders_refuse_a_shard_out_of_range)
{
    static const struct {
        uint64_t shard, shards;
        int rc;
    } cases[] = {
        {0, 0, 0},  {0, 1, 0},  {1, 2, 0},   {63, 64, 0},         {1, 1, -1},
        {1, 0, -1}, {2, 2, -1}, {0, 65, -1}, {64, 64, -1},        {UINT64_MAX, 64, -1},
        {5, 3, -1}, {0, 64, 0}, {7, 8, 0},   {0, UINT64_MAX, -1},
    };
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int topic = TL_FEED_INVALID + 1; topic < TL_FEED_COUNT_; topic++) {
            if (!s_has_shard ((tl_feed_topic_t)topic)) continue;  //  Not a job's: no shard
            tl_feed_msg_t msg = {.topic = (tl_feed_topic_t)topic,
                                 .job = 5,
                                 .shard = cases[i].shard,
                                 .shards = cases[i].shards};
            msg.u.progress.shard = cases[i].shard;  //  Not read: msg's are
            size_t size = buf.size;
            int rc = topic == TL_FEED_PROGRESS && i % 2
                         ? tl_feed_progress (&(tl_progress_t){.job = 5,
                                                              .shard = cases[i].shard,
                                                              .shards = cases[i].shards},
                                             &buf)
                         : tl_feed_encode (&msg, NULL, 0, &buf);
            cr_assert_eq (rc, cases[i].rc, "%s, shard %llu of %llu",
                          tl_feed_topic_name ((tl_feed_topic_t)topic),
                          (unsigned long long)cases[i].shard, (unsigned long long)cases[i].shards);
            if (rc == -1) {
                cr_assert_eq (buf.size, size, "half a body left");
                continue;
            }
            void *body = s_exact (buf.data + size, buf.size - size);
            tl_feed_msg_t back;
            cr_assert_eq (tl_feed_decode (tl_feed_topic_name ((tl_feed_topic_t)topic),
                                          strlen (tl_feed_topic_name ((tl_feed_topic_t)topic)),
                                          body, buf.size - size, &back),
                          0);
            cr_assert_eq (back.shard, cases[i].shard);
            cr_assert_eq (back.shards, cases[i].shards ? cases[i].shards : 1);
            free (body);
        }
    msgpack_sbuffer_destroy (&buf);
}

//  A failed body with the given shard keys (-1: left out) packed by hand.
static void s_failed_with (msgpack_sbuffer *buf, int64_t shard, int64_t shards)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2 + (shard >= 0) + (shards >= 0));
    if (shards >= 0) {
        msgpack_pack_str_with_body (&pk, "shards", 6);
        msgpack_pack_uint64 (&pk, (uint64_t)shards);
    }
    msgpack_pack_str_with_body (&pk, "reason", 6);
    msgpack_pack_str_with_body (&pk, "r", 1);
    if (shard >= 0) {
        msgpack_pack_str_with_body (&pk, "shard", 5);
        msgpack_pack_uint64 (&pk, (uint64_t)shard);
    }
    msgpack_pack_str_with_body (&pk, "job", 3);
    msgpack_pack_uint64 (&pk, 1);
}

Test (feed, decoder_takes_shard_keys_as_optional_and_checks_their_range)
{
    static const struct {
        int64_t shard, shards;             //  -1: left out
        int rc;                            //  The verdict
        uint64_t want_shard, want_shards;  //  On 0
    } cases[] = {
        {-1, -1, 0, 0, 1},  {0, -1, 0, 0, 1},    {-1, 1, 0, 0, 1},  {-1, 5, 0, 0, 5},
        {4, 5, 0, 4, 5},    {63, 64, 0, 63, 64}, {1, -1, -1, 0, 0}, {-1, 0, -1, 0, 0},
        {0, 0, -1, 0, 0},   {5, 5, -1, 0, 0},    {0, 65, -1, 0, 0}, {64, 64, -1, 0, 0},
        {-1, 65, -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_failed_with (&buf, cases[i].shard, cases[i].shards);
        void *body = s_exact (buf.data, buf.size);
        tl_feed_msg_t msg;
        int rc = tl_feed_decode ("failed", 6, body, buf.size, &msg);
        cr_assert_eq (rc, cases[i].rc, "case %zu", i);
        if (rc == 0) {
            cr_assert_eq (msg.shard, cases[i].want_shard, "case %zu", i);
            cr_assert_eq (msg.shards, cases[i].want_shards, "case %zu", i);
            cr_assert (s_str_equal (msg.u.reason, "r", 1));
        } else
            cr_assert (s_is_zero (&msg));
        free (body);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  ---------------------------------------------------------------------------------
//  Bodies built by hand with msgpack-c's packer: a sample's body unpacked, then packed
//  again entry by entry, reordered, with entries left out, repeated, replaced or added.

//  One entry of a body being built: entry `from` of the canonical body (its value
//  replaced by raw bytes when raw is set), or, with from -1, raw bytes that hold a whole
//  key and value.
typedef struct {
    int from;         //  Index into the canonical body's map, or -1
    const char *raw;  //  Replacement value, or (from -1) a whole entry; NULL: none
    size_t raw_size;  //  Bytes at raw
} s_item_t;

typedef struct {
    msgpack_sbuffer canonical;  //  The encoder's body
    msgpack_unpacked unpacked;  //  It, unpacked by msgpack-c
    const msgpack_object *map;  //  The body's map
    uint32_t nkeys;             //  Entries in it
} s_body_t;

static void s_body_open (s_body_t *body, const s_sample_t *sample)
{
    msgpack_sbuffer_init (&body->canonical);
    cr_assert_eq (s_encode (sample, &body->canonical), 0);
    msgpack_unpacked_init (&body->unpacked);
    size_t off = 0;
    cr_assert_eq (
        msgpack_unpack_next (&body->unpacked, body->canonical.data, body->canonical.size, &off),
        MSGPACK_UNPACK_SUCCESS);
    body->map = &body->unpacked.data;
    cr_assert_eq (body->map->type, MSGPACK_OBJECT_MAP);
    body->nkeys = body->map->via.map.size;
}

static void s_body_close (s_body_t *body)
{
    msgpack_unpacked_destroy (&body->unpacked);
    msgpack_sbuffer_destroy (&body->canonical);
}

//  The name of the canonical body's entry i, NUL-terminated in a static buffer.
static const char *s_body_key (const s_body_t *body, uint32_t i)
{
    static char name[64];
    const msgpack_object *key = &body->map->via.map.ptr[i].key;
    cr_assert_eq (key->type, MSGPACK_OBJECT_STR);
    cr_assert_lt (key->via.str.size, sizeof name);
    memcpy (name, key->via.str.ptr, key->via.str.size);
    name[key->via.str.size] = 0;
    return name;
}

//  Packs a map of n items (claiming `claim` entries) into buf.
static void s_build (msgpack_sbuffer *buf, const s_body_t *body, const s_item_t *items, size_t n,
                     uint32_t claim)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, claim);
    for (size_t i = 0; i < n; i++) {
        if (items[i].from < 0) {
            msgpack_sbuffer_write (buf, items[i].raw, items[i].raw_size);
            continue;
        }
        const msgpack_object_kv *kv = &body->map->via.map.ptr[items[i].from];
        msgpack_pack_object (&pk, kv->key);
        if (items[i].raw)
            msgpack_sbuffer_write (buf, items[i].raw, items[i].raw_size);
        else
            msgpack_pack_object (&pk, kv->val);
    }
}

//  Builds the items into a body and decodes it as sample's topic. Returns the verdict;
//  on 0, checks that the result is the sample.
static int s_try (const s_sample_t *sample, const s_body_t *body, const s_item_t *items, size_t n)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    s_build (&buf, body, items, n, (uint32_t)n);
    const char *name = tl_feed_topic_name (sample->msg.topic);
    void *copy = s_exact (buf.data, buf.size);
    tl_feed_msg_t msg;
    int rc = tl_feed_decode (name, strlen (name), copy, buf.size, &msg);
    if (rc == 0)
        cr_assert (s_matches (sample, &msg), "%s decoded to something else", name);
    else
        cr_assert (s_is_zero (&msg));
    free (copy);
    msgpack_sbuffer_destroy (&buf);
    return rc;
}

#define S_KEYS_MAX 16  //  More than any topic has

Test (feed, keys_in_any_order)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    for (size_t i = 0; i < n; i++) {
        s_body_t body;
        s_body_open (&body, &samples[i]);
        s_item_t items[S_KEYS_MAX];
        uint32_t k = body.nkeys;
        //  Reversed, every rotation, and random shuffles.
        for (uint32_t j = 0; j < k; j++)
            items[j] = (s_item_t){(int)(k - 1 - j), NULL, 0};
        cr_assert_eq (s_try (&samples[i], &body, items, k), 0, "sample %zu reversed", i);
        for (uint32_t r = 1; r < k; r++) {
            for (uint32_t j = 0; j < k; j++)
                items[j] = (s_item_t){(int)((j + r) % k), NULL, 0};
            cr_assert_eq (s_try (&samples[i], &body, items, k), 0, "sample %zu rotated %u", i, r);
        }
        for (int round = 0; round < 20; round++) {
            for (uint32_t j = 0; j < k; j++)
                items[j] = (s_item_t){(int)j, NULL, 0};
            for (uint32_t j = k; j > 1; j--) {
                uint32_t other = (uint32_t)(tl_test_random () % j);
                s_item_t swap = items[j - 1];
                items[j - 1] = items[other];
                items[other] = swap;
            }
            cr_assert_eq (s_try (&samples[i], &body, items, k), 0, "sample %zu shuffled", i);
        }
        s_body_close (&body);
    }
}

//  A progress body written with literal key names, in an order no encoder here uses,
//  with integers and floats in other encodings than tl_feed's: what another language's
//  msgpack library may well send.
Test (feed, a_hand_written_progress_body)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 12);
    msgpack_pack_str_with_body (&pk, "seconds", 7);
    msgpack_pack_float (&pk, 2.5f);  //  float32
    msgpack_pack_str_with_body (&pk, "keys", 4);
    msgpack_pack_fix_uint64 (&pk, 8);  //  uint64 of a small value
    msgpack_pack_str_with_body (&pk, "rate", 4);
    msgpack_pack_uint8 (&pk, 200);                    //  an integer for a float
    msgpack_pack_str_with_body (&pk, "hostname", 8);  //  unknown: skipped
    msgpack_pack_str_with_body (&pk, "sink-1", 6);
    msgpack_pack_str_with_body (&pk, "chunks_final", 12);
    msgpack_pack_true (&pk);
    msgpack_pack_str_with_body (&pk, "bad_lines", 9);
    msgpack_pack_fix_int32 (&pk, 6);  //  a signed encoding of a non-negative value
    msgpack_pack_str_with_body (&pk, "lines", 5);
    msgpack_pack_uint64 (&pk, 5);
    msgpack_pack_str_with_body (&pk, "input_bytes", 11);
    msgpack_pack_uint64 (&pk, 4);
    msgpack_pack_str_with_body (&pk, "bytes", 5);
    msgpack_pack_uint64 (&pk, 3);
    msgpack_pack_str_with_body (&pk, "chunks_known", 12);
    msgpack_pack_uint64 (&pk, 2);
    msgpack_pack_str_with_body (&pk, "chunks_done", 11);
    msgpack_pack_uint64 (&pk, 1);
    msgpack_pack_bin_with_body (&pk, "job", 3);  //  a bin key is read as the str would be
    msgpack_pack_uint64 (&pk, 7);
    void *body = s_exact (buf.data, buf.size);
    tl_feed_msg_t msg;
    cr_assert_eq (tl_feed_decode ("progress", 8, body, buf.size, &msg), 0);
    cr_assert_eq (msg.topic, TL_FEED_PROGRESS);
    cr_assert_eq (msg.job, 7);
    const tl_progress_t *p = &msg.u.progress;
    cr_assert_eq (p->job, 7);
    cr_assert_eq (p->chunks_done, 1);
    cr_assert_eq (p->chunks_known, 2);
    cr_assert (p->chunks_final);
    cr_assert_eq (p->bytes, 3);
    cr_assert_eq (p->input_bytes, 4);
    cr_assert_eq (p->lines, 5);
    cr_assert_eq (p->bad_lines, 6);
    cr_assert_eq (p->keys, 8);
    cr_assert_eq (p->rate, 200.0);
    cr_assert_eq (p->seconds, 2.5);
    //  No shard keys: a sink before shards, the one shard of one.
    cr_assert_eq (msg.shard, 0);
    cr_assert_eq (msg.shards, 1);
    cr_assert_eq (p->shard, 0);
    cr_assert_eq (p->shards, 1);
    free (body);
    msgpack_sbuffer_destroy (&buf);
}

//  Whole entries (key and value) that no topic defines.
static const struct {
    const char *what;
    const char *bytes;
    size_t size;
} s_unknown[] = {
    {"nil", BYTES ("\xa5"
                   "extra\xc0")},
    {"negative", BYTES ("\xa5"
                        "extra\xd3\x80\x00\x00\x00\x00\x00\x00\x00")},
    {"float", BYTES ("\xa5"
                     "extra\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00")},
    {"str", BYTES ("\xa7version\xa3"
                   "2.0")},
    {"bin", BYTES ("\xa5"
                   "extra\xc4\x03\x00\xff\x01")},
    {"nested", BYTES ("\xa5"
                      "extra\x82\xa1\x61\x93\x01\xc0\x90\xa1\x62\x81\xc4\x00\xc3")},
    {"ext", BYTES ("\xa5"
                   "extra\xd6\xff\x00\x00\x00\x01")},
    {"empty key", BYTES ("\xa0\x01")},
    {"bin key", BYTES ("\xc4\x03"
                       "abc\x01")},
    {"case differs", BYTES ("\xa3JOB\x05")},
    {"prefix of a key", BYTES ("\xa6"
                               "chunks\x05")},
    {"key plus a byte", BYTES ("\xa4jobs\x05")},
    {"key with NUL", BYTES ("\xa4job\0\x05")},
    {"str8 key", BYTES ("\xd9\x05"
                        "extra\xc2")},
};
#define S_UNKNOWN (sizeof s_unknown / sizeof s_unknown[0])

Test (feed, unknown_keys_are_skipped)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    for (size_t i = 0; i < n; i++) {
        s_body_t body;
        s_body_open (&body, &samples[i]);
        uint32_t k = body.nkeys;
        for (size_t u = 0; u < S_UNKNOWN; u++) {
            //  The unknown entry first, in the middle, last; then many at once.
            uint32_t places[] = {0, k / 2, k};
            for (size_t p = 0; p < 3; p++) {
                uint32_t at = places[p];
                s_item_t items[S_KEYS_MAX + 1];
                size_t m = 0;
                for (uint32_t j = 0; j <= k; j++) {
                    if (j == at) items[m++] = (s_item_t){-1, s_unknown[u].bytes, s_unknown[u].size};
                    if (j < k) items[m++] = (s_item_t){(int)j, NULL, 0};
                }
                cr_assert_eq (s_try (&samples[i], &body, items, m), 0, "sample %zu, %s at %u", i,
                              s_unknown[u].what, at);
            }
        }
        s_item_t items[S_KEYS_MAX + S_UNKNOWN];
        size_t m = 0;
        for (uint32_t j = 0; j < k; j++) {
            items[m++] =
                (s_item_t){-1, s_unknown[j % S_UNKNOWN].bytes, s_unknown[j % S_UNKNOWN].size};
            items[m++] = (s_item_t){(int)j, NULL, 0};
        }
        cr_assert_eq (s_try (&samples[i], &body, items, m), 0, "sample %zu, many unknown", i);
        s_body_close (&body);
    }
}

//  An unknown value nested as deep as tl_msgpack_check allows is skipped; one level
//  deeper, the body is refused (as tally-watch's generic check would refuse it).
Test (feed, unknown_values_nest_at_most_as_deep_as_the_check_allows)
{
    for (int depth = 30; depth <= 33; depth++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 3);
        msgpack_pack_str_with_body (&pk, "deep", 4);
        for (int i = 0; i < depth; i++)
            msgpack_pack_array (&pk, i + 1 < depth ? 1 : 0);
        msgpack_pack_str_with_body (&pk, "job", 3);
        msgpack_pack_uint64 (&pk, 1);
        msgpack_pack_str_with_body (&pk, "reason", 6);
        msgpack_pack_str_with_body (&pk, "r", 1);
        int check = tl_msgpack_check (buf.data, buf.size);
        int rc = s_verdict (TL_FEED_FAILED, buf.data, buf.size);
        cr_assert_eq (rc, check, "depth %d: decode %d, check %d", depth, rc, check);
        cr_assert_eq (rc, depth <= 31 ? 0 : -1, "depth %d", depth);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  ---------------------------------------------------------------------------------
//  Refusals

//  The documented type of every key (docs/PROTOCOL.md, section 4).
typedef enum {
    T_UINT,   //  uint
    T_BOOL,   //  bool
    T_FLOAT,  //  float64 (also float32 and non-negative integers)
    T_STR,    //  str (also bin)
    T_PAIRS,  //  [[key, total], ...]
    T_MAP,    //  {key: total}
} s_type_t;

static s_type_t s_type_of (tl_feed_topic_t topic, const char *key)
{
    if (strcmp (key, "chunks_final") == 0) return T_BOOL;
    if (strcmp (key, "rate") == 0 || strcmp (key, "seconds") == 0 || strcmp (key, "uptime") == 0)
        return T_FLOAT;
    if (strcmp (key, "output") == 0 || strcmp (key, "reason") == 0) return T_STR;
    if (strcmp (key, "top") == 0) return T_PAIRS;
    if (strcmp (key, "entries") == 0) return T_MAP;
    cr_assert (topic != TL_FEED_INVALID);
    return T_UINT;
}

#define K(t) (1u << (t))

//  A value and the types that accept it; every other type refuses it.
static const struct {
    const char *what;
    const char *bytes;
    size_t size;
    unsigned accepted_by;
} s_values[] = {
    {"nil", BYTES ("\xc0"), 0},
    {"negative fixint", BYTES ("\xff"), 0},
    {"int8 -1", BYTES ("\xd0\xff"), 0},
    {"int64 min", BYTES ("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), 0},
    {"int8 100", BYTES ("\xd0\x64"), K (T_UINT) | K (T_FLOAT)},
    {"zero", BYTES ("\x00"), K (T_UINT) | K (T_FLOAT)},
    {"uint64 max", BYTES ("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), K (T_UINT) | K (T_FLOAT)},
    {"float32", BYTES ("\xca\x3f\x00\x00\x00"), K (T_FLOAT)},
    {"float64", BYTES ("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"), K (T_FLOAT)},
    {"true", BYTES ("\xc3"), K (T_BOOL)},
    {"false", BYTES ("\xc2"), K (T_BOOL)},
    {"str", BYTES ("\xa1x"), K (T_STR)},
    {"empty str", BYTES ("\xa0"), K (T_STR)},
    {"bin", BYTES ("\xc4\x01\xff"), K (T_STR)},
    {"empty array", BYTES ("\x90"), K (T_PAIRS)},
    {"[[\"a\", 1]]", BYTES ("\x91\x92\xa1\x61\x01"), K (T_PAIRS)},
    {"[[bin, uint64]]", BYTES ("\x91\x92\xc4\x01\xff\xcf\x00\x00\x00\x00\x00\x00\x00\x01"),
     K (T_PAIRS)},
    {"[[\"a\"]]", BYTES ("\x91\x91\xa1\x61"), 0},
    {"[[\"a\", 1, 2]]", BYTES ("\x91\x93\xa1\x61\x01\x02"), 0},
    {"[[1, 1]]", BYTES ("\x91\x92\x01\x01"), 0},
    {"[[nil, 1]]", BYTES ("\x91\x92\xc0\x01"), 0},
    {"[[\"a\", -1]]", BYTES ("\x91\x92\xa1\x61\xff"), 0},
    {"[[\"a\", 1.5]]", BYTES ("\x91\x92\xa1\x61\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"), 0},
    {"[\"a\", 1]", BYTES ("\x92\xa1\x61\x01"), 0},
    {"[{\"a\": 1}]", BYTES ("\x91\x81\xa1\x61\x01"), 0},
    {"empty map", BYTES ("\x80"), K (T_MAP)},
    {"{\"a\": 1}", BYTES ("\x81\xa1\x61\x01"), K (T_MAP)},
    {"{1: 1}", BYTES ("\x81\x01\x01"), 0},
    {"{\"a\": nil}", BYTES ("\x81\xa1\x61\xc0"), 0},
    {"{\"a\": -1}", BYTES ("\x81\xa1\x61\xff"), 0},
    {"{\"a\": [1]}", BYTES ("\x81\xa1\x61\x91\x01"), 0},
    {"fixext1", BYTES ("\xd4\x01\x00"), 0},
    {"0xc1", BYTES ("\xc1"), 0},
    {"str8 claims more",
     BYTES ("\xd9\xff"
            "abc"),
     0},
    {"array32 claims 2^32-1", BYTES ("\xdd\xff\xff\xff\xff\x01"), 0},
    {"map32 claims 2^32-1", BYTES ("\xdf\xff\xff\xff\xff\x01\x01"), 0},
};
#define S_VALUES (sizeof s_values / sizeof s_values[0])

//  True unless key is shard or shards and the value (an integer) would put the shard out
//  of range beside the sample's other key.
static bool s_shard_in_range (const tl_feed_msg_t *sample, const char *key, const char *value,
                              size_t size)
{
    bool is_shard = strcmp (key, "shard") == 0;
    if (!is_shard && strcmp (key, "shards") != 0) return true;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t off = 0;
    cr_assert_eq (msgpack_unpack_next (&unpacked, value, size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq (unpacked.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    uint64_t number = unpacked.data.via.u64;
    msgpack_unpacked_destroy (&unpacked);
    uint64_t shard = is_shard ? number : sample->shard;
    uint64_t shards = is_shard ? (sample->shards ? sample->shards : 1) : number;
    return shards >= 1 && shards <= TL_SHARDS_MAX && shard < shards;
}

Test (feed, every_key_refuses_wrong_types)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        s_body_t body;
        s_body_open (&body, &samples[i]);
        uint32_t k = body.nkeys;
        for (uint32_t at = 0; at < k; at++) {
            s_type_t type = s_type_of (samples[i].msg.topic, s_body_key (&body, at));
            for (size_t v = 0; v < S_VALUES; v++) {
                s_item_t items[S_KEYS_MAX];
                for (uint32_t j = 0; j < k; j++)
                    items[j] = (s_item_t){(int)j, j == at ? s_values[v].bytes : NULL,
                                          j == at ? s_values[v].size : 0};
                msgpack_sbuffer buf;
                msgpack_sbuffer_init (&buf);
                s_build (&buf, &body, items, k, k);
                bool accepted = (s_values[v].accepted_by & K (type)) &&
                                s_shard_in_range (&samples[i].msg, s_body_key (&body, at),
                                                  s_values[v].bytes, s_values[v].size);
                cr_assert_eq (s_verdict (samples[i].msg.topic, buf.data, buf.size),
                              accepted ? 0 : -1, "sample %zu, %s: %s", i, s_body_key (&body, at),
                              s_values[v].what);
                msgpack_sbuffer_destroy (&buf);
                checked++;
            }
        }
        s_body_close (&body);
    }
    cr_assert_gt (checked, 1000);
}

Test (feed, missing_and_repeated_keys_are_refused)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    for (size_t i = 0; i < n; i++) {
        s_body_t body;
        s_body_open (&body, &samples[i]);
        uint32_t k = body.nkeys;
        for (uint32_t skip = 0; skip < k; skip++) {
            s_item_t items[S_KEYS_MAX + 1];
            size_t m = 0;
            for (uint32_t j = 0; j < k; j++)
                if (j != skip) items[m++] = (s_item_t){(int)j, NULL, 0};
            const char *name = s_body_key (&body, skip);
            if (strcmp (name, "shard") == 0 || strcmp (name, "shards") == 0) {
                //  Optional: shard left out is 0, shards left out is 1 (then only shard 0
                //  is in range).
                bool shard = strcmp (name, "shard") == 0;
                const tl_feed_msg_t *want = &samples[i].msg;
                uint64_t want_shard = shard ? 0 : want->shard;
                uint64_t want_shards = shard ? (want->shards ? want->shards : 1) : 1;
                msgpack_sbuffer buf;
                msgpack_sbuffer_init (&buf);
                s_build (&buf, &body, items, m, (uint32_t)m);
                void *copy = s_exact (buf.data, buf.size);
                const char *topic = tl_feed_topic_name (want->topic);
                tl_feed_msg_t msg;
                int rc = tl_feed_decode (topic, strlen (topic), copy, buf.size, &msg);
                cr_assert_eq (rc, want_shard < want_shards ? 0 : -1, "sample %zu without %s", i,
                              name);
                if (rc == 0) {
                    cr_assert_eq (msg.shard, want_shard);
                    cr_assert_eq (msg.shards, want_shards);
                    cr_assert_eq (msg.job, want->job);
                }
                free (copy);
                msgpack_sbuffer_destroy (&buf);
                continue;
            }
            if (strcmp (name, "next") == 0) {
                //  Optional too: left out, it is 0 (the last batch); the rest is the same.
                s_sample_t want = samples[i];
                want.msg.u.totals.next = 0;
                cr_assert_eq (s_try (&want, &body, items, m), 0, "sample %zu without next", i);
                continue;
            }
            cr_assert_eq (s_try (&samples[i], &body, items, m), -1, "sample %zu without %s", i,
                          s_body_key (&body, skip));
            //  The missing key's place taken by an unknown key: still missing.
            items[m++] = (s_item_t){-1, s_unknown[0].bytes, s_unknown[0].size};
            cr_assert_eq (s_try (&samples[i], &body, items, m), -1, "sample %zu without %s", i,
                          s_body_key (&body, skip));
        }
        for (uint32_t twice = 0; twice < k; twice++) {
            s_item_t items[S_KEYS_MAX + 1];
            for (uint32_t j = 0; j < k; j++)
                items[j] = (s_item_t){(int)j, NULL, 0};
            items[k] = (s_item_t){(int)twice, NULL, 0};
            cr_assert_eq (s_try (&samples[i], &body, items, k + 1), -1, "sample %zu, %s twice", i,
                          s_body_key (&body, twice));
        }
        s_body_close (&body);
    }
}

Test (feed, bodies_that_are_not_one_map_with_str_keys_are_refused)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_failed (3, "why", &buf), 0);
    cr_assert_eq (s_verdict (TL_FEED_FAILED, buf.data, buf.size), 0);
    //  Bytes after the map.
    static const char *trailers[] = {"\x00", "\xc0", "\x80", "\xff", "\xc1"};
    for (size_t t = 0; t < sizeof trailers / sizeof trailers[0]; t++) {
        size_t size = buf.size;
        msgpack_sbuffer_write (&buf, trailers[t], 1);
        cr_assert_eq (s_verdict (TL_FEED_FAILED, buf.data, buf.size), -1, "trailer %zu", t);
        buf.size = size;
    }
    //  The map claims one entry more than follows, or one fewer.
    buf.data[0]++;
    cr_assert_eq (s_verdict (TL_FEED_FAILED, buf.data, buf.size), -1);
    buf.data[0] -= 2;
    cr_assert_eq (s_verdict (TL_FEED_FAILED, buf.data, buf.size), -1);
    msgpack_sbuffer_destroy (&buf);

    static const struct {
        const char *bytes;
        size_t size;
    } others[] = {
        {BYTES ("")},
        {BYTES ("\x80")},                                              //  empty map
        {BYTES ("\x92\x03\xa3why")},                                   //  array [3, "why"]
        {BYTES ("\xc0")},                                              //  nil
        {BYTES ("\xa3why")},                                           //  str
        {BYTES ("\x82\x01\x03\xa6reason\xa3why")},                     //  an integer key
        {BYTES ("\x82\xc0\x03\xa6reason\xa3why")},                     //  a nil key
        {BYTES ("\x82\x91\xa3job\x03\xa6reason\xa3why")},              //  an array key
        {BYTES ("\x82\xa3job\x03\xa6reason\xa3why\x82\xa3job\x03")},   //  two maps
        {BYTES ("\xde\x00\x02\xa3job\x03\xa6reason\xa3why\xc1")},      //  0xc1 after
        {BYTES ("\x82\xa3job\x03\xdb\x00\x00\x00\x06reason\xa3why")},  //  str32 key: fine
    };
    size_t nothers = sizeof others / sizeof others[0];
    for (size_t i = 0; i < nothers; i++)
        cr_assert_eq (s_verdict (TL_FEED_FAILED, others[i].bytes, others[i].size),
                      i + 1 == nothers ? 0 : -1, "body %zu", i);
    tl_feed_msg_t msg;
    cr_assert_eq (tl_feed_decode ("failed", 6, NULL, 0, &msg), -1);
    cr_assert (s_is_zero (&msg));
}

//  Every proper prefix of every valid body is refused.
Test (feed, truncated_at_every_offset)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (s_encode (&samples[i], &buf), 0);
        //  A 1 MiB key: every cut inside it is refused alike, so past the first and
        //  before the last 64 bytes a stride of cuts is enough.
        size_t stride = buf.size > 100000 ? 997 : 1;
        for (size_t len = 0; len < buf.size; len += len < 64 || len + 64 >= buf.size ? 1 : stride) {
            cr_assert_eq (s_verdict (samples[i].msg.topic, buf.data, len), -1,
                          "sample %zu cut at %zu of %zu", i, len, buf.size);
            checked++;
        }
        cr_assert_eq (s_verdict (samples[i].msg.topic, buf.data, buf.size), 0);
        msgpack_sbuffer_destroy (&buf);
    }
    cr_assert_gt (checked, 1000);
}

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

//  Small bodies whose headers claim up to 2^32-1 entries or bytes: refused at the
//  header, without walking or allocating the claim; keys past TL_KEY_MAX refused.
Test (feed, hostile_sizes)
{
    static const struct {
        tl_feed_topic_t topic;
        const char *bytes;
        size_t size;
    } bodies[] = {
        //  The body's map claims 2^32-1 entries.
        {TL_FEED_FAILED, BYTES ("\xdf\xff\xff\xff\xff\xa3job\x03\xa6reason\xa1x")},
        //  ... 2^16-1.
        {TL_FEED_FAILED, BYTES ("\xde\xff\xff\xa3job\x03\xa6reason\xa1x")},
        //  A key claims 2^32-1 bytes.
        {TL_FEED_FAILED, BYTES ("\x82\xdb\xff\xff\xff\xff\x03\xa6reason\xa1x")},
        //  The reason claims 2^32-1 bytes.
        {TL_FEED_FAILED, BYTES ("\x82\xa3job\x03\xa6reason\xdb\xff\xff\xff\xff\x78")},
        //  top claims 2^32-1 pairs.
        {TL_FEED_TOP, BYTES ("\x82\xa3job\x03\xa3top\xdd\xff\xff\xff\xff\x92\xa1x\x01")},
        //  A top pair claims 2^32-1 elements.
        {TL_FEED_TOP, BYTES ("\x82\xa3job\x03\xa3top\x91\xdd\xff\xff\xff\xff\xa1x\x01")},
        //  A top key claims 2^32-1 bytes.
        {TL_FEED_TOP, BYTES ("\x82\xa3job\x03\xa3top\x91\x92\xc6\xff\xff\xff\xff\x01")},
        //  entries claims 2^32-1 keys.
        {TL_FEED_TOTALS, BYTES ("\x84\xa3job\x03\xa5\x62\x61tch\x00\xa7\x62\x61tches\x01"
                                "\xa7\x65ntries\xdf\xff\xff\xff\xff\xa1x\x01")},
        //  An unknown key's value claims 2^32-1 entries.
        {TL_FEED_FAILED, BYTES ("\x83\xa1u\xdf\xff\xff\xff\xff\xa3job\x03\xa6reason\xa1x")},
        //  ... 2^32-1 bytes.
        {TL_FEED_FAILED, BYTES ("\x83\xa1u\xc6\xff\xff\xff\xff\xa3job\x03\xa6reason\xa1x")},
    };
    double start = s_now ();
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        cr_assert_eq (s_verdict (bodies[i].topic, bodies[i].bytes, bodies[i].size), -1, "body %zu",
                      i);
    cr_assert_lt (s_now () - start, 0.5, "refusing huge claims took %.3f s", s_now () - start);

    //  Keys of exactly TL_KEY_MAX bytes pass, one byte more does not (top and totals).
    char *key = malloc (TL_KEY_MAX + 1);
    cr_assert_not_null (key);
    memset (key, 'k', TL_KEY_MAX + 1);
    for (int totals = 0; totals < 2; totals++)
        for (size_t len = TL_KEY_MAX; len <= TL_KEY_MAX + 1; len++) {
            msgpack_sbuffer buf;
            msgpack_sbuffer_init (&buf);
            msgpack_packer pk;
            msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
            msgpack_pack_map (&pk, totals ? 4 : 2);
            msgpack_pack_str_with_body (&pk, "job", 3);
            msgpack_pack_uint64 (&pk, 1);
            if (totals) {
                msgpack_pack_str_with_body (&pk, "batch", 5);
                msgpack_pack_uint64 (&pk, 0);
                msgpack_pack_str_with_body (&pk, "batches", 7);
                msgpack_pack_uint64 (&pk, 1);
                msgpack_pack_str_with_body (&pk, "entries", 7);
                msgpack_pack_map (&pk, 1);
            } else {
                msgpack_pack_str_with_body (&pk, "top", 3);
                msgpack_pack_array (&pk, 1);
                msgpack_pack_array (&pk, 2);
            }
            msgpack_pack_bin_with_body (&pk, key, len);
            msgpack_pack_uint64 (&pk, 9);
            cr_assert_eq (s_verdict (totals ? TL_FEED_TOTALS : TL_FEED_TOP, buf.data, buf.size),
                          len <= TL_KEY_MAX ? 0 : -1, "%s, key of %zu bytes",
                          totals ? "totals" : "top", len);
            msgpack_sbuffer_destroy (&buf);
        }
    free (key);
}

//  ---------------------------------------------------------------------------------
//  Random mutations: never a crash (ASan in the sanitized build); whatever decodes
//  encodes again and decodes to the same message.

//  Decodes a mutant as every topic; what decodes must encode again to a body that
//  decodes to the same message. Returns how many topics accepted it.
static size_t s_decode_mutant (const uint8_t *body, size_t size)
{
    size_t accepted = 0;
    for (int topic = TL_FEED_INVALID + 1; topic < TL_FEED_COUNT_; topic++) {
        const char *name = tl_feed_topic_name ((tl_feed_topic_t)topic);
        tl_feed_msg_t msg;
        if (tl_feed_decode (name, strlen (name), body, size, &msg) == -1) {
            cr_assert (s_is_zero (&msg));
            continue;
        }
        accepted++;
        cr_assert_eq (tl_msgpack_check (body, size), 0);
        //  tl_feed_failed takes a C string: a reason with a NUL comes back shorter.
        if (topic == TL_FEED_FAILED && memchr (msg.u.reason.ptr, 0, msg.u.reason.len)) continue;
        s_sample_t back;
        tl_entry_t *owned;
        s_sample_of (&msg, &back, &owned);
        msgpack_sbuffer again;
        msgpack_sbuffer_init (&again);
        cr_assert_eq (s_encode (&back, &again), 0, "decoded %s does not encode", name);
        tl_feed_msg_t twice;
        cr_assert_eq (tl_feed_decode (name, strlen (name), again.data, again.size, &twice), 0);
        cr_assert (s_matches (&back, &twice), "%s changed in a re-encoding", name);
        msgpack_sbuffer_destroy (&again);
        free (owned);
    }
    return accepted;
}

Test (feed, random_mutations_never_crash, .timeout = 120)
{
    s_sample_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    msgpack_sbuffer corpus[S_SAMPLES_MAX + 1];
    size_t ncorpus = 0;
    for (size_t i = 0; i < n; i++) {
        if (samples[i].entries == s_long_key) continue;  //  1 MiB: mutations would crawl
        msgpack_sbuffer_init (&corpus[ncorpus]);
        cr_assert_eq (s_encode (&samples[i], &corpus[ncorpus++]), 0);
    }
    //  One body with unknown keys, so that mutants also walk the skipping.
    msgpack_sbuffer_init (&corpus[ncorpus]);
    msgpack_sbuffer_write (&corpus[ncorpus], "\x84", 1);
    msgpack_sbuffer_write (&corpus[ncorpus], s_unknown[5].bytes, s_unknown[5].size);
    msgpack_sbuffer_write (&corpus[ncorpus], BYTES ("\xa3job\x07\xa6reason\xa2no"));
    msgpack_sbuffer_write (&corpus[ncorpus], s_unknown[1].bytes, s_unknown[1].size);
    cr_assert_eq (s_verdict (TL_FEED_FAILED, corpus[ncorpus].data, corpus[ncorpus].size), 0);
    ncorpus++;

    size_t cap = 0;
    for (size_t i = 0; i < ncorpus; i++)
        cap = corpus[i].size > cap ? corpus[i].size : cap;
    cap += 16;
    uint8_t *work = malloc (cap);
    cr_assert_not_null (work);
    size_t decoded = 0;
    for (int round = 0; round < 100000; round++) {
        const msgpack_sbuffer *seed = &corpus[tl_test_random () % ncorpus];
        size_t size = seed->size;
        memcpy (work, seed->data, size);
        tl_test_mutate (work, &size, cap);
        uint8_t *body = s_exact (work, size);
        decoded += s_decode_mutant (body, size);
        free (body);
    }
    //  Some mutants stay valid (a changed digit, a key renamed to an unknown one): the
    //  re-encoding checks above really ran.
    cr_assert_gt (decoded, 1000, "only %zu mutants decoded", decoded);
    cr_log_info ("100000 mutants: %zu decoded", decoded);
    free (work);
    for (size_t i = 0; i < ncorpus; i++)
        msgpack_sbuffer_destroy (&corpus[i]);
}

//  ---------------------------------------------------------------------------------
//  Interoperability with another msgpack implementation: Python's msgpack reads what
//  tl_feed writes, by key as docs/PROTOCOL.md documents them; tl_feed reads what Python
//  writes, with its keys in Python's order and a key tl_feed does not know. Skipped
//  where no python3 has the msgpack module.

static const char *s_interop_script =
    "import msgpack, os, sys\n"
    "d = sys.argv[1]\n"
    "def load(name):\n"
    "    with open(os.path.join(d, name), 'rb') as f:\n"
    "        return msgpack.unpackb(f.read(), raw=False)\n"
    "def save(name, obj):\n"
    "    with open(os.path.join(d, name), 'wb') as f:\n"
    "        f.write(msgpack.packb(obj))\n"
    "def same(a, b):\n"
    "    if type(a) is not type(b):\n"
    "        return False\n"
    "    if isinstance(a, dict):\n"
    "        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)\n"
    "    if isinstance(a, list):\n"
    "        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))\n"
    "    return a == b\n"
    "def expect(name, got, want):\n"
    "    if not same(got, want):\n"
    "        print(f'{name}: got {got!r}, want {want!r}')\n"
    "        sys.exit(1)\n"
    "def golden(name, want):\n"
    "    with open(os.path.join(d, name), 'rb') as f:\n"
    "        got = f.read()\n"
    "    if got != msgpack.packb(want):\n"
    "        print(f'{name}: bytes {got.hex()}, Python packs {msgpack.packb(want).hex()}')\n"
    "        sys.exit(1)\n"
    "expect('progress', load('progress'),\n"
    "       {'job': 7, 'chunks_done': 1, 'chunks_known': 2, 'chunks_final': False,\n"
    "        'bytes': 3, 'input_bytes': 4, 'lines': 5, 'bad_lines': 6, 'keys': 8,\n"
    "        'rate': 2.5, 'seconds': 3.5, 'shard': 0, 'shards': 1})\n"
    "expect('top', load('top'), {'job': 7, 'top': [[b'b', 5], [b'\\xff', 3]], 'shard': 0,\n"
    "                            'shards': 1})\n"
    "expect('totals', load('totals'),\n"
    "       {'job': 7, 'batch': 0, 'batches': 1, 'entries': {b'b': 5, b'\\xff': 3},\n"
    "        'shard': 0, 'shards': 1})\n"
    "expect('done', load('done'),\n"
    "       {'job': 7, 'keys': 1, 'sum': 2, 'lines': 3, 'bad_lines': 4, 'filtered': 5,\n"
    "        'seconds': 1.25, 'output': '/tmp/out.tsv', 'shard': 2, 'shards': 3})\n"
    "expect('failed', load('failed'), {'job': 7, 'reason': 'worker lost', 'shard': 0,\n"
    "                                  'shards': 1})\n"
    "stats = {'incarnation': 2**64 - 1, 'uptime': 12.5, 'jobs_open': 1, 'jobs_done': 2,\n"
    "         'jobs_failed': 3, 'partials': 4, 'duplicates': 5, 'junk': 6,\n"
    "         'disconnects': 7, 'bytes': 2**40, 'lines': 9, 'rate': 2.5e6}\n"
    "expect('stats', load('stats'), stats)\n"
    "golden('stats', stats)\n"
    "expect('snapshot', load('snapshot'), {'open': 3, 'finished': 16})\n"
    "expect('error', load('error'), {'job': 7, 'reason': 'unknown job'})\n"
    "golden('error', {'job': 7, 'reason': 'unknown job'})\n"
    "golden('totals', {'job': 7, 'batch': 0, 'batches': 1, 'entries': {b'b': 5, b'\\xff': 3},\n"
    "                  'shard': 0, 'shards': 1})\n"
    "golden('totals_next', {'job': 7, 'batch': 0, 'batches': 2,\n"
    "                       'entries': {b'b': 5, b'\\xff': 3}, 'next': 2**40 + 5,\n"
    "                       'shard': 0, 'shards': 1})\n"
    "save('py_progress', {'seconds': 3.5, 'rate': 2, 'keys': 8, 'host': 'h', 'bad_lines': 6,\n"
    "                     'lines': 5, 'input_bytes': 4, 'bytes': 3, 'chunks_final': True,\n"
    "                     'chunks_known': 2, 'chunks_done': 1, 'job': 2**64 - 1})\n"
    "save('py_top', {'top': [[b'b', 5], ['\\u00e9', 3]], 'job': 7, 'extra': [None, {}]})\n"
    "save('py_totals', {'entries': {b'b': 5, b'\\xff': 2**64 - 1}, 'batches': 2, 'batch': 1,\n"
    "                   'shards': 64, 'job': 7, 'shard': 63})\n"
    "save('py_done', {'output': '/tmp/out.tsv', 'seconds': 1.25, 'filtered': 5,\n"
    "                 'bad_lines': 4, 'lines': 3, 'sum': 2, 'keys': 1, 'job': 7})\n"
    "save('py_failed', {'shard': 1, 'reason': 'worker lost', 'job': 7, 'shards': 2})\n"
    "save('py_stats', {'rate': 3, 'lines': 2**64 - 1, 'bytes': 10, 'disconnects': 9,\n"
    "                  'junk': 8, 'duplicates': 7, 'partials': 6, 'jobs_failed': 5,\n"
    "                  'jobs_done': 4, 'jobs_open': 0, 'uptime': 0.25, 'host': 'sink-1',\n"
    "                  'incarnation': 12345678901234567890})\n"
    "save('py_snapshot', {'finished': 2, 'open': 1, 'jobs': [1, 2, 3]})\n"
    "save('py_error', {'reason': 'no such batch', 'job': 2**64 - 1})\n"
    "save('py_totals_next', {'next': 4096, 'entries': {'a': 1}, 'batches': 3, 'batch': 1,\n"
    "                        'job': 7})\n"
    "print('ok')\n";

static void s_write_file (const char *dir, const char *name, const msgpack_sbuffer *buf)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "wb");
    cr_assert_not_null (file, "%s", path);
    cr_assert_eq (fwrite (buf->data, 1, buf->size, file), buf->size);
    fclose (file);
}

//  Reads a whole file (at most 64 KiB) into a malloc'd block; sets *size.
static char *s_read_file (const char *dir, const char *name, size_t *size)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "rb");
    cr_assert_not_null (file, "%s", path);
    char *data = malloc (1 << 16);
    cr_assert_not_null (data);
    *size = fread (data, 1, 1 << 16, file);
    fclose (file);
    return data;
}

static const tl_entry_t s_py_top[] = {{"b", 1, 5}, {"\xff", 1, 3}};

static void s_write_c_bodies (const char *dir)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    tl_progress_t progress = {7, 1, 2, false, 3, 4, 5, 6, 8, 2.5, 3.5, 0, 1};
    cr_assert_eq (tl_feed_progress (&progress, &buf), 0);
    s_write_file (dir, "progress", &buf);
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_top (7, s_py_top, 2, &buf), 0);
    s_write_file (dir, "top", &buf);
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_totals (7, 0, 1, s_py_top, 2, &buf), 0);
    s_write_file (dir, "totals", &buf);
    msgpack_sbuffer_clear (&buf);
    tl_feed_msg_t done = {.topic = TL_FEED_DONE, .job = 7, .shard = 2, .shards = 3};
    done.u.done = (tl_done_body_t){1, 2, 3, 4, 5, 1.25, {"/tmp/out.tsv", 12}, 0, 0};
    cr_assert_eq (tl_feed_encode (&done, NULL, 0, &buf), 0);
    s_write_file (dir, "done", &buf);
    msgpack_sbuffer_clear (&buf);
    cr_assert_eq (tl_feed_failed (7, "worker lost", &buf), 0);
    s_write_file (dir, "failed", &buf);
    msgpack_sbuffer_clear (&buf);
    tl_feed_msg_t msg = {.topic = TL_FEED_STATS};
    msg.u.stats = (tl_feed_stats_t){UINT64_MAX, 12.5, 1, 2, 3, 4, 5, 6, 7, 1ull << 40, 9, 2.5e6};
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_write_file (dir, "stats", &buf);
    msgpack_sbuffer_clear (&buf);
    msg = (tl_feed_msg_t){.topic = TL_FEED_SNAPSHOT};
    msg.u.snapshot = (tl_feed_snapshot_t){3, 16};
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_write_file (dir, "snapshot", &buf);
    msgpack_sbuffer_clear (&buf);
    msg = (tl_feed_msg_t){.topic = TL_FEED_ERROR, .job = 7};
    msg.u.reason = (tl_str_t){"unknown job", 11};
    cr_assert_eq (tl_feed_encode (&msg, NULL, 0, &buf), 0);
    s_write_file (dir, "error", &buf);
    msgpack_sbuffer_clear (&buf);
    msg = (tl_feed_msg_t){.topic = TL_FEED_TOTALS, .job = 7};
    msg.u.totals.batches = 2;
    msg.u.totals.next = (1ull << 40) + 5;
    cr_assert_eq (tl_feed_encode (&msg, s_py_top, 2, &buf), 0);
    s_write_file (dir, "totals_next", &buf);
    msgpack_sbuffer_destroy (&buf);
}

//  Decodes the body the script wrote to file name as topic; checks it against want.
static void s_check_python_body (const char *dir, const char *name, const s_sample_t *want)
{
    size_t size;
    char *data = s_read_file (dir, name, &size);
    const char *topic = tl_feed_topic_name (want->msg.topic);
    tl_feed_msg_t msg;
    cr_assert_eq (tl_feed_decode (topic, strlen (topic), data, size, &msg), 0, "%s", name);
    cr_assert (s_matches (want, &msg), "%s", name);
    free (data);
}

static void s_check_python_bodies (const char *dir)
{
    s_sample_t want = {.msg = {.topic = TL_FEED_PROGRESS, .job = UINT64_MAX}};
    want.msg.u.progress = (tl_progress_t){UINT64_MAX, 1, 2, true, 3, 4, 5, 6, 8, 2.0, 3.5, 0, 1};
    s_check_python_body (dir, "py_progress", &want);

    static const tl_entry_t top[] = {{"b", 1, 5}, {"\xc3\xa9", 2, 3}};
    want = (s_sample_t){.msg = {.topic = TL_FEED_TOP, .job = 7}, .entries = top, .n = 2};
    s_check_python_body (dir, "py_top", &want);

    static const tl_entry_t totals[] = {{"b", 1, 5}, {"\xff", 1, UINT64_MAX}};
    want = (s_sample_t){.msg = {.topic = TL_FEED_TOTALS, .job = 7}, .entries = totals, .n = 2};
    want.msg.u.totals.batch = 1;
    want.msg.u.totals.batches = 2;
    want.msg.shard = 63;
    want.msg.shards = 64;
    s_check_python_body (dir, "py_totals", &want);

    want = (s_sample_t){.msg = {.topic = TL_FEED_DONE, .job = 7}};
    want.msg.u.done = (tl_done_body_t){1, 2, 3, 4, 5, 1.25, {"/tmp/out.tsv", 12}, 0, 0};
    s_check_python_body (dir, "py_done", &want);

    want = (s_sample_t){.msg = {.topic = TL_FEED_FAILED, .job = 7, .shard = 1, .shards = 2}};
    want.msg.u.reason = (tl_str_t){"worker lost", 11};
    s_check_python_body (dir, "py_failed", &want);

    want = (s_sample_t){.msg = {.topic = TL_FEED_STATS}};
    want.msg.u.stats =
        (tl_feed_stats_t){12345678901234567890ull, 0.25, 0, 4, 5, 6, 7, 8, 9, 10, UINT64_MAX, 3.0};
    s_check_python_body (dir, "py_stats", &want);

    want = (s_sample_t){.msg = {.topic = TL_FEED_SNAPSHOT}};
    want.msg.u.snapshot = (tl_feed_snapshot_t){1, 2};
    s_check_python_body (dir, "py_snapshot", &want);

    want = (s_sample_t){.msg = {.topic = TL_FEED_ERROR, .job = UINT64_MAX}};
    want.msg.u.reason = (tl_str_t){"no such batch", 13};
    s_check_python_body (dir, "py_error", &want);

    static const tl_entry_t one[] = {{"a", 1, 1}};
    want = (s_sample_t){.msg = {.topic = TL_FEED_TOTALS, .job = 7}, .entries = one, .n = 1};
    want.msg.u.totals.batch = 1;
    want.msg.u.totals.batches = 3;
    want.msg.u.totals.next = 4096;
    s_check_python_body (dir, "py_totals_next", &want);
}

Test (feed, python_msgpack_reads_and_writes_the_documented_bodies)
{
    FILE *probe = popen ("for p in python3 /usr/bin/python3; do "
                         "$p -c 'import msgpack' 2>/dev/null && { echo $p; break; }; done",
                         "r");
    cr_assert_not_null (probe);
    char python[256] = "";
    if (!fgets (python, sizeof python, probe)) python[0] = 0;
    pclose (probe);
    python[strcspn (python, "\n")] = 0;
    if (!python[0]) cr_skip_test ("no python3 with the msgpack module");

    char dir[] = "/tmp/test_feed.XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    s_write_c_bodies (dir);
    msgpack_sbuffer script = {.size = strlen (s_interop_script), .data = (char *)s_interop_script};
    s_write_file (dir, "check.py", &script);
    char command[1024];
    snprintf (command, sizeof command, "%s %s/check.py %s 2>&1", python, dir, dir);
    FILE *run = popen (command, "r");
    cr_assert_not_null (run);
    char output[4096] = "";
    size_t got = fread (output, 1, sizeof output - 1, run);
    output[got] = 0;
    int status = pclose (run);
    cr_assert_eq (status, 0, "python says: %s", output);
    cr_assert_str_eq (output, "ok\n");
    s_check_python_bodies (dir);

    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq (system (command), 0);
}
