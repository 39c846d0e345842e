/*  test_proto: the wire format of tl_proto. Every command round-trips; the PARTIAL map
    frame round-trips any key bytes; every decoder refuses hostile frames (truncated,
    wrong types, oversized claims, trailing bytes) without crashing, leaking or
    allocating what the frame does not justify; random mutations of valid frames never
    crash and whatever decodes re-encodes; a job's secret travels only in job control
    (JOB, END, PING, CANCEL) and chunk tags are the documented XXH3 of it. (The feed's
    bodies: test_feed.c.)

    Frames handed to decoders are copied to heap blocks of exactly their size, so that
    AddressSanitizer (the sanitized build) catches any read past a frame's end.       */

#include "tl_proto.h"
#include "tl_test.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

//  ---------------------------------------------------------------------------------
//  Helpers

//  A string literal's bytes and their count (without the terminating NUL), for tables
//  of frames.
#define BYTES(literal) literal, sizeof (literal) - 1

//  A frame copied to a heap block of exactly its size. Free with free().
static void *s_exact (const void *data, size_t size)
{
    void *copy = malloc (size);
    cr_assert (copy || size == 0);
    if (size) memcpy (copy, data, size);
    return copy;
}

//  Decodes an exact-size copy of data and frees it: for checking verdicts only, as a
//  decoded message's strings point into the frame.
static int s_decode_exact (tl_cmd_t cmd, const void *data, size_t size, tl_msg_t *msg)
{
    void *copy = s_exact (data, size);
    int rc = tl_msg_decode (cmd, copy, size, msg);
    free (copy);
    return rc;
}

//  Decodes an exact-size copy of data, which it returns: free it once done with msg.
static void *s_decode_kept (tl_cmd_t cmd, const void *data, size_t size, tl_msg_t *msg, int *rc)
{
    void *copy = s_exact (data, size);
    *rc = tl_msg_decode (cmd, copy, size, msg);
    return copy;
}

static tl_str_t s_str (const char *text)
{
    return (tl_str_t){text, strlen (text)};
}

static bool s_str_equal (tl_str_t a, tl_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp (a.ptr, b.ptr, a.len) == 0);
}

static bool s_filter_equal (const tl_filter_t *a, const tl_filter_t *b)
{
    return a->year_min == b->year_min && a->year_max == b->year_max && a->skip_pos == b->skip_pos;
}

//  Field-by-field equality of two messages of the same command.
static bool s_msg_equal (const tl_msg_t *a, const tl_msg_t *b)
{
    if (a->cmd != b->cmd || a->job != b->job) return false;
    if (tl_cmd_has_secret (a->cmd) && memcmp (a->secret, b->secret, TL_SECRET_SIZE) != 0)
        return false;
    switch (a->cmd) {
    case TL_CMD_JOB: {
        const tl_job_body_t *x = &a->u.job, *y = &b->u.job;
        if (x->version != y->version || x->strict != y->strict ||
            x->input_bytes != y->input_bytes || x->nfiles != y->nfiles)
            return false;
        //  A JOB of another version decodes as [job, version]: its shard is not read.
        if (x->version == TL_PROTO_VERSION && (x->shard != y->shard || x->shards != y->shards))
            return false;
        for (uint32_t i = 0; i < x->nfiles; i++)
            if (!s_str_equal (x->files[i], y->files[i])) return false;
        return true;
    }
    case TL_CMD_CHUNK: {
        const tl_chunk_body_t *x = &a->u.chunk, *y = &b->u.chunk;
        return x->chunk == y->chunk && x->tag == y->tag && x->file == y->file &&
               x->offset == y->offset && x->format == y->format &&
               s_filter_equal (&x->filter, &y->filter) && x->shards == y->shards &&
               x->seed == y->seed;
    }
    case TL_CMD_PARTIAL: {
        const tl_partial_body_t *x = &a->u.partial, *y = &b->u.partial;
        if (x->chunk != y->chunk || x->tag != y->tag || x->file != y->file ||
            x->bytes != y->bytes || x->lines != y->lines || x->bad_lines != y->bad_lines ||
            x->filtered != y->filtered || x->bad_samples != y->bad_samples || x->shard != y->shard)
            return false;
        for (uint32_t i = 0; i < x->bad_samples; i++)
            if (x->bad_offset[i] != y->bad_offset[i]) return false;
        return true;
    }
    case TL_CMD_END:
        return a->u.end.chunks == b->u.end.chunks && a->u.end.bytes == b->u.end.bytes &&
               a->u.end.bad_lines == b->u.end.bad_lines;
    case TL_CMD_ACK:
        if (a->u.ack.count != b->u.ack.count) return false;
        for (uint32_t i = 0; i < a->u.ack.count; i++)
            if (a->u.ack.chunk[i] != b->u.ack.chunk[i]) return false;
        return true;
    case TL_CMD_DONE: {
        const tl_done_body_t *x = &a->u.done, *y = &b->u.done;
        //  memcmp, not ==, so that a NaN that came through a mutation compares equal
        return x->keys == y->keys && x->sum == y->sum && x->lines == y->lines &&
               x->bad_lines == y->bad_lines && x->filtered == y->filtered &&
               memcmp (&x->seconds, &y->seconds, sizeof x->seconds) == 0 &&
               s_str_equal (x->output, y->output) && x->chunks == y->chunks && x->bytes == y->bytes;
    }
    case TL_CMD_FAIL:
    case TL_CMD_CANCEL:
        return s_str_equal (a->u.reason, b->u.reason);
    case TL_CMD_ACCEPT:
    case TL_CMD_PONG:
        return a->u.state.incarnation == b->u.state.incarnation &&
               a->u.state.merged == b->u.state.merged && a->u.state.known == b->u.state.known;
    case TL_CMD_HAVE:
        return a->u.have.first == b->u.have.first && s_str_equal (a->u.have.bits, b->u.have.bits);
    default:
        return true;
    }
}

//  A JOB of another version decodes as [job, version] alone, shards 0 included; the
//  encoder refuses shards 0 in any JOB. Sets shards to 1 (of shard 0) in such a JOB, so
//  that it encodes again.
static void s_one_shard_if_another_version (tl_msg_t *msg)
{
    if (msg->cmd == TL_CMD_JOB && msg->u.job.version != TL_PROTO_VERSION) {
        cr_assert_eq (msg->u.job.shards, 0);
        msg->u.job.shards = 1;
    }
}

static bool s_msg_is_zero (const tl_msg_t *msg)
{
    static const tl_msg_t zero;
    return memcmp (msg, &zero, sizeof zero) == 0;
}

//  ---------------------------------------------------------------------------------
//  Sample messages: every command, with extreme and with empty values.

static char s_long_text[TL_TEXT_MAX + 2];  //  TL_TEXT_MAX 'p's (one more set when needed)
static tl_str_t s_files[] = {
    {"a.tsv", 5}, {"", 0}, {"dir/\xff\xfe\0x.gz", 11}, {NULL, 0} /* TL_TEXT_MAX, set below */
};
#define S_SAMPLES_MAX 32

//  A secret for each seed, distinct from every other seed's (they differ at byte 0) and
//  never all zero.
static void s_secret (uint8_t secret[TL_SECRET_SIZE], uint8_t seed)
{
    for (size_t i = 0; i < TL_SECRET_SIZE; i++)
        secret[i] = (uint8_t)(seed + 13 * i);
}

static size_t s_samples (tl_msg_t *m)
{
    memset (s_long_text, 'p', TL_TEXT_MAX);
    s_long_text[TL_TEXT_MAX] = 0;
    s_files[3] = (tl_str_t){s_long_text, TL_TEXT_MAX};
    memset (m, 0, S_SAMPLES_MAX * sizeof *m);
    size_t n = 0;

    m[n].cmd = TL_CMD_JOB;
    m[n].job = UINT64_MAX;
    memset (m[n].secret, 0xff, TL_SECRET_SIZE);
    m[n].u.job = (tl_job_body_t){TL_PROTO_VERSION,  true,         UINT64_MAX, 4, s_files,
                                 TL_SHARDS_MAX - 1, TL_SHARDS_MAX};
    n++;
    m[n].cmd = TL_CMD_JOB;
    s_secret (m[n].secret, 1);
    m[n].u.job = (tl_job_body_t){TL_PROTO_VERSION, false, 0, 0, NULL, 0, 1};
    n++;
    m[n].cmd = TL_CMD_JOB;
    m[n].job = 3;
    m[n].secret[TL_SECRET_SIZE - 1] = 1;  //  all zero but the last byte
    m[n].u.job = (tl_job_body_t){TL_PROTO_VERSION, true, 1, 1, s_files, 2, 3};
    n++;
    //  JOBs of other versions: only [job, version] is read back, so these carry nothing
    //  else, no secret either (tests of what follows the version:
    //  job_of_another_version_*), but the one shard the encoder wants of any JOB.
    m[n].cmd = TL_CMD_JOB;
    m[n].u.job = (tl_job_body_t){0, false, 0, 0, NULL, 0, 1};
    n++;
    m[n].cmd = TL_CMD_JOB;
    m[n].job = 4;
    m[n].u.job = (tl_job_body_t){UINT32_MAX, false, 0, 0, NULL, 0, 1};
    n++;
    m[n].cmd = TL_CMD_ACCEPT;
    m[n].job = 7;
    m[n].u.state = (tl_state_body_t){UINT64_MAX, 12, true};
    n++;
    m[n].cmd = TL_CMD_CHUNK;
    m[n].job = (uint64_t)1 << 40;
    m[n].u.chunk =
        (tl_chunk_body_t){TL_CHUNK_ID_MAX - 1, UINT64_MAX,   UINT32_MAX,    12345678901ull,
                          TL_FORMAT_NGRAM2020, {1, 2, true}, TL_SHARDS_MAX, UINT64_MAX};
    n++;
    m[n].cmd = TL_CMD_CHUNK;
    m[n].u.chunk = (tl_chunk_body_t){0, 0, 0, 0, TL_FORMAT_NGRAM2009, TL_FILTER_NONE, 1, 0};
    n++;
    m[n].cmd = TL_CMD_CHUNK;
    m[n].job = 9;
    m[n].u.chunk =
        (tl_chunk_body_t){65536,          0x0123456789abcdefull, 65536, 1ull << 33,
                          TL_FORMAT_TEXT, TL_FILTER_NONE,        7,     0xfedcba9876543210ull};
    n++;
    m[n].cmd = TL_CMD_PARTIAL;
    m[n].job = 42;
    m[n].u.partial = (tl_partial_body_t){
        TL_CHUNK_ID_MAX - 1,         UINT64_MAX,       UINT32_MAX, UINT64_MAX, 1000, 4, 2, 4,
        {0, 127, 65536, UINT64_MAX}, TL_SHARDS_MAX - 1};
    n++;
    m[n].cmd = TL_CMD_PARTIAL;
    m[n].u.partial = (tl_partial_body_t){0, 0, 0, 0, 0, 0, 0, 0, {0}, 0};
    n++;
    m[n].cmd = TL_CMD_PARTIAL;
    m[n].job = 43;
    m[n].u.partial =
        (tl_partial_body_t){1ull << 32, 1ull << 63, 2, 65536, 100, 0, 0, 1, {UINT32_MAX}, 5};
    n++;
    m[n].cmd = TL_CMD_END;
    m[n].job = 5;
    s_secret (m[n].secret, 2);
    m[n].u.end = (tl_end_body_t){TL_CHUNK_ID_MAX, 1ull << 32, 255};
    n++;
    m[n].cmd = TL_CMD_END;
    s_secret (m[n].secret, 3);
    n++;
    m[n].cmd = TL_CMD_END;
    m[n].job = UINT64_MAX;
    s_secret (m[n].secret, 4);
    m[n].u.end = (tl_end_body_t){TL_CHUNK_ID_MAX - 1, UINT64_MAX, UINT64_MAX};
    n++;
    m[n].cmd = TL_CMD_ACK;
    m[n].job = 6;
    m[n].u.ack.count = TL_ACK_MAX;
    for (uint32_t i = 0; i < TL_ACK_MAX; i++)
        m[n].u.ack.chunk[i] = i * 0x0123456789abcdefull;
    n++;
    m[n].cmd = TL_CMD_ACK;
    m[n].u.ack.count = 0;
    n++;
    m[n].cmd = TL_CMD_DONE;
    m[n].job = 8;
    m[n].u.done = (tl_done_body_t){UINT64_MAX, UINT64_MAX, 3, 2, 1, 1.5, {s_long_text, TL_TEXT_MAX},
                                   UINT64_MAX, UINT64_MAX};
    n++;
    m[n].cmd = TL_CMD_DONE;
    m[n].u.done = (tl_done_body_t){0, 0, 0, 0, 0, 0.0, {"", 0}, 0, 0};
    n++;
    m[n].cmd = TL_CMD_DONE;
    m[n].job = 1;
    m[n].u.done =
        (tl_done_body_t){1, 2, 3, 4, 5, 1e-9, s_str ("/tmp/out.tsv"), TL_CHUNK_ID_MAX, 1ull << 40};
    n++;
    m[n].cmd = TL_CMD_FAIL;
    m[n].job = 10;
    m[n].u.reason = s_str ("unknown job");
    n++;
    m[n].cmd = TL_CMD_FAIL;
    m[n].u.reason = (tl_str_t){s_long_text, TL_TEXT_MAX};
    n++;
    m[n].cmd = TL_CMD_CANCEL;
    m[n].job = 11;
    s_secret (m[n].secret, 5);
    m[n].u.reason = (tl_str_t){"", 0};
    n++;
    m[n].cmd = TL_CMD_CANCEL;
    m[n].job = 12;
    s_secret (m[n].secret, 6);
    m[n].u.reason = s_str ("interrupted");
    n++;
    m[n].cmd = TL_CMD_PING;
    m[n].job = 127;
    s_secret (m[n].secret, 7);
    n++;
    m[n].cmd = TL_CMD_PING;
    m[n].job = 128;
    memset (m[n].secret, 0xff, TL_SECRET_SIZE);
    m[n].secret[0] = 0;
    n++;
    m[n].cmd = TL_CMD_PONG;
    m[n].job = 65535;
    m[n].u.state = (tl_state_body_t){1, 65536, true};
    n++;
    m[n].cmd = TL_CMD_PONG;
    m[n].job = UINT32_MAX;
    m[n].u.state = (tl_state_body_t){0, (uint64_t)UINT32_MAX + 1, false};
    n++;
    m[n].cmd = TL_CMD_HAVE;
    m[n].job = 9;
    m[n].u.have = (tl_have_body_t){TL_CHUNK_ID_MAX - 8, {"\x01", 1}};
    n++;
    m[n].cmd = TL_CMD_HAVE;
    m[n].job = 10;
    m[n].u.have = (tl_have_body_t){0, {"\xff\x00\x80", 3}};
    n++;
    cr_assert (n <= S_SAMPLES_MAX);
    return n;
}

//  ---------------------------------------------------------------------------------
//  Commands

Test (proto, cmd_names_parse_back)
{
    static const char *names[] = {"JOB",  "ACCEPT", "CHUNK", "PARTIAL", "END",    "ACK",
                                  "DONE", "FAIL",   "PING",  "PONG",    "CANCEL", "HAVE"};
    cr_assert_eq (sizeof names / sizeof names[0], TL_CMD_COUNT_ - 1);
    for (int cmd = TL_CMD_INVALID + 1; cmd < TL_CMD_COUNT_; cmd++) {
        const char *name = tl_cmd_name ((tl_cmd_t)cmd);
        cr_assert_str_eq (name, names[cmd - 1]);
        cr_assert_eq (tl_cmd_parse (name, strlen (name)), (tl_cmd_t)cmd, "%s", name);
    }
}

Test (proto, cmd_parse_refuses_junk)
{
    static const struct {
        const char *data;
        size_t size;
    } junk[] = {
        {BYTES ("")},          {BYTES ("job")},     {BYTES ("Job")},      {BYTES ("JO")},
        {BYTES ("JOBS")},      {BYTES ("JOB\0")},   {BYTES (" JOB")},     {BYTES ("JOB ")},
        {BYTES ("PARTIAL\n")}, {BYTES ("INVALID")}, {BYTES ("\xff\xfe")}, {BYTES ("CANCELLED")},
        {BYTES ("PON")},       {BYTES ("ACKACK")},
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        void *copy = s_exact (junk[i].data, junk[i].size);
        cr_assert_eq (tl_cmd_parse (copy, junk[i].size), TL_CMD_INVALID, "junk %zu", i);
        free (copy);
    }
    cr_assert_eq (tl_cmd_parse (NULL, 0), TL_CMD_INVALID);
    cr_assert_str_eq (tl_cmd_name (TL_CMD_INVALID), "INVALID");
    cr_assert_str_eq (tl_cmd_name (TL_CMD_COUNT_), "INVALID");
}

//  ---------------------------------------------------------------------------------
//  Round trips

Test (proto, every_command_round_trips)
{
    tl_msg_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    bool seen[TL_CMD_COUNT_] = {false};
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_msg_encode (&samples[i], &buf), 0, "sample %zu", i);
        tl_msg_t msg;
        int rc;
        void *frame = s_decode_kept (samples[i].cmd, buf.data, buf.size, &msg, &rc);
        cr_assert_eq (rc, 0, "sample %zu", i);
        cr_assert (s_msg_equal (&samples[i], &msg), "sample %zu (%s) differs", i,
                   tl_cmd_name (samples[i].cmd));
        //  A command without the secret leaves it zero; so does a JOB of another version.
        static const uint8_t no_secret[TL_SECRET_SIZE];
        if (!tl_cmd_has_secret (msg.cmd) ||
            (msg.cmd == TL_CMD_JOB && msg.u.job.version != TL_PROTO_VERSION))
            cr_assert_arr_eq (msg.secret, no_secret, TL_SECRET_SIZE, "sample %zu", i);

        //  Re-encoding the decoded message gives the same bytes: one canonical form. (A JOB
        //  of another version decodes without its shards, which the encoder wants of every
        //  JOB: the samples' one shard is put back.)
        tl_msg_t decoded = msg;
        s_one_shard_if_another_version (&decoded);
        msgpack_sbuffer again;
        msgpack_sbuffer_init (&again);
        cr_assert_eq (tl_msg_encode (&decoded, &again), 0);
        cr_assert_eq (again.size, buf.size);
        cr_assert_eq (memcmp (again.data, buf.data, buf.size), 0, "sample %zu", i);

        //  A frame of one command is never a valid frame of a command of another layout,
        //  but for JOB of another version: any [job, uint32, ...] can be one, and reads
        //  as such (the sink answers it with a FAIL naming the versions); and PING
        //  [job, secret] is FAIL [job, reason] with a reason of TL_SECRET_SIZE bytes.
        for (int other = TL_CMD_INVALID; other < TL_CMD_COUNT_; other++) {
            tl_msg_t wrong;
            bool same_layout = other == (int)samples[i].cmd ||
                               (samples[i].cmd == TL_CMD_PING && other == TL_CMD_FAIL) ||
                               (samples[i].cmd == TL_CMD_FAIL && other == TL_CMD_PING &&
                                samples[i].u.reason.len == TL_SECRET_SIZE);
            if (same_layout) continue;
            int verdict = tl_msg_decode ((tl_cmd_t)other, buf.data, buf.size, &wrong);
            if (verdict == 0 && other == TL_CMD_JOB) {
                cr_assert_neq (wrong.u.job.version, TL_PROTO_VERSION, "sample %zu", i);
                cr_assert_eq (wrong.u.job.nfiles, 0);
                tl_msg_reset (&wrong);
            } else
                cr_assert_eq (verdict, -1, "sample %zu decoded as %s", i,
                              tl_cmd_name ((tl_cmd_t)other));
        }
        seen[samples[i].cmd] = true;
        tl_msg_reset (&msg);
        cr_assert (s_msg_is_zero (&msg));
        free (frame);
        msgpack_sbuffer_destroy (&again);
        msgpack_sbuffer_destroy (&buf);
    }
    for (int cmd = TL_CMD_INVALID + 1; cmd < TL_CMD_COUNT_; cmd++)
        cr_assert (seen[cmd], "no sample of %s", tl_cmd_name ((tl_cmd_t)cmd));
}

Test (proto, encode_appends_to_the_buffer)
{
    tl_msg_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    size_t offsets[S_SAMPLES_MAX + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq (tl_msg_encode (&samples[i], &buf), 0);
        offsets[i + 1] = buf.size;
    }
    for (size_t i = 0; i < n; i++) {
        tl_msg_t msg;
        int rc;
        void *frame = s_decode_kept (samples[i].cmd, buf.data + offsets[i],
                                     offsets[i + 1] - offsets[i], &msg, &rc);
        cr_assert_eq (rc, 0);
        cr_assert (s_msg_equal (&samples[i], &msg), "sample %zu", i);
        tl_msg_reset (&msg);
        free (frame);
    }
    msgpack_sbuffer_destroy (&buf);
}

Test (proto, job_with_the_most_files_round_trips)
{
    tl_str_t *files = malloc (TL_FILES_MAX * sizeof *files);
    cr_assert_not_null (files);
    for (size_t i = 0; i < TL_FILES_MAX; i++)
        files[i] = (tl_str_t){"f", 1};
    tl_msg_t job = {.cmd = TL_CMD_JOB, .job = 1};
    job.u.job = (tl_job_body_t){TL_PROTO_VERSION, true, 9, TL_FILES_MAX, files, 0, 1};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_msg_encode (&job, &buf), 0);
    tl_msg_t msg;
    int rc;
    void *frame = s_decode_kept (TL_CMD_JOB, buf.data, buf.size, &msg, &rc);
    cr_assert_eq (rc, 0);
    cr_assert (s_msg_equal (&job, &msg));
    tl_msg_reset (&msg);
    free (frame);
    msgpack_sbuffer_destroy (&buf);
    free (files);
}

//  JOB is [job, version, secret, strict, input_bytes, files, shard, shards]: the secret is
//  a bin8 of TL_SECRET_SIZE bytes right after the version, strict a bool right after it.
//  Both values of strict encode to exactly the bytes expected and decode back to
//  themselves.
Test (proto, job_strict_follows_the_secret)
{
    for (int combo = 0; combo < 2; combo++) {
        bool strict = combo & 1;
        tl_msg_t job = {.cmd = TL_CMD_JOB, .job = 5};
        s_secret (job.secret, 0x40);
        job.u.job =
            (tl_job_body_t){.version = TL_PROTO_VERSION, .strict = strict, .shard = 1, .shards = 2};
        //  [5, 4, bin8 of 16 bytes, strict, 0, [], 1, 2]
        char want[] = "\x98\x05\x04\xc4\x10"
                      "0123456789abcdef"
                      "\xc2\x00\x90\x01\x02";
        memcpy (want + 5, job.secret, TL_SECRET_SIZE);
        want[5 + TL_SECRET_SIZE] = strict ? '\xc3' : '\xc2';
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_msg_encode (&job, &buf), 0);
        cr_assert_eq (buf.size, sizeof want - 1, "combo %d", combo);
        cr_assert_arr_eq (buf.data, want, sizeof want - 1, "combo %d", combo);
        tl_msg_t msg;
        int rc;
        void *frame = s_decode_kept (TL_CMD_JOB, buf.data, buf.size, &msg, &rc);
        cr_assert_eq (rc, 0, "combo %d", combo);
        cr_assert_eq (msg.u.job.strict, strict, "combo %d", combo);
        cr_assert (s_msg_equal (&job, &msg), "combo %d", combo);
        tl_msg_reset (&msg);
        free (frame);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  A JOB whose strict element is not a msgpack bool is refused, however bool-like.
Test (proto, job_strict_must_be_a_bool)
{
    static const struct {
        const char *what;
        const char *value;
        size_t size;
    } values[] = {
        {"0", BYTES ("\x00")},           {"1", BYTES ("\x01")},
        {"uint8 1", BYTES ("\xcc\x01")}, {"-1", BYTES ("\xff")},
        {"nil", BYTES ("\xc0")},         {"str true", BYTES ("\xa4true")},
        {"empty array", BYTES ("\x90")}, {"float32 1.0", BYTES ("\xca\x3f\x80\x00\x00")},
    };
    //  [5, 4, secret, <strict>, 0, [], 0, 1]
    static const char head[] = "\x98\x05\x04\xc4\x10"
                               "0123456789abcdef";
    const size_t head_size = sizeof head - 1;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char frame[64];
        memcpy (frame, head, head_size);
        memcpy (frame + head_size, values[i].value, values[i].size);
        memcpy (frame + head_size + values[i].size, "\x00\x90\x00\x01", 4);
        tl_msg_t msg;
        cr_assert_eq (s_decode_exact (TL_CMD_JOB, frame, head_size + values[i].size + 4, &msg), -1,
                      "%s", values[i].what);
        cr_assert (s_msg_is_zero (&msg), "%s", values[i].what);
    }
    //  The same frame with a bool there is accepted, so the value alone was refused.
    char frame[64];
    memcpy (frame, head, head_size);
    memcpy (frame + head_size, "\xc3\x00\x90\x00\x01", 5);
    tl_msg_t msg;
    cr_assert_eq (s_decode_exact (TL_CMD_JOB, frame, head_size + 5, &msg), 0);
    cr_assert (msg.u.job.strict);
    cr_assert_arr_eq (msg.secret, "0123456789abcdef", TL_SECRET_SIZE);
    tl_msg_reset (&msg);
}

//  A JOB of another version reads as [job, version] whatever its layout, so that the sink
//  can answer it; the rest must still be well-formed msgpack, and all of it is in the
//  frame. A JOB of this version must have this version's layout.
Test (proto, job_of_another_version_reads_job_and_version_only)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t size;
        int rc;
        uint32_t version;
    } frames[] = {
        {"version 1 (format, filters, strict, input_bytes, files)",
         BYTES ("\x99\x07\x01\xa4\x61uto\x00\xce\xff\xff\xff\xff\xc2\xc3\x63\x91\xa5\x61.tsv"), 0,
         1},
        {"version 3 (secret, strict, input_bytes, files: no shards)",
         BYTES ("\x96\x07\x03\xc4\x10"
                "0123456789abcdef"
                "\xc3\x01\x91\xa1x"),
         0, 3},
        {"version 5 with a map and an ext", BYTES ("\x95\x07\x05\x81\xa1k\x90\xd4\x01\x00\xc0"), 0,
         5},
        {"version 0 alone", BYTES ("\x92\x07\x00"), 0, 0},
        {"version 3 alone", BYTES ("\x92\x07\x03"), 0, 3},
        {"version 2^32-1", BYTES ("\x93\x07\xce\xff\xff\xff\xff\xc0"), 0, UINT32_MAX},
        {"version 5 with this version's layout",
         BYTES ("\x98\x07\x05\xc4\x10"
                "0123456789abcdef"
                "\xc3\x01\x91\xa1x\x00\x01"),
         0, 5},
        {"version 4 alone", BYTES ("\x92\x07\x04"), -1, 0},
        {"version 4 without the secret", BYTES ("\x97\x07\x04\xc2\x00\x90\x00\x01"), -1, 0},
        {"version 4 with a secret of 15 bytes",
         BYTES ("\x98\x07\x04\xc4\x0f"
                "0123456789abcde"
                "\xc2\x00\x90\x00\x01"),
         -1, 0},
        {"version 4 with version 3's layout (no shard, no shards)",
         BYTES ("\x96\x07\x04\xc4\x10"
                "0123456789abcdef"
                "\xc3\x01\x91\xa1x"),
         -1, 0},
        {"version 4 without shards",
         BYTES ("\x97\x07\x04\xc4\x10"
                "0123456789abcdef"
                "\xc3\x01\x91\xa1x\x00"),
         -1, 0},
        {"version 4 with a version 1 layout",
         BYTES ("\x99\x07\x04\xa4\x61uto\x00\xce\xff\xff\xff\xff\xc2\xc3\x63\x91\xa5\x61.tsv"), -1,
         0},
        {"no version", BYTES ("\x91\x07"), -1, 0},
        {"version 2^32", BYTES ("\x92\x07\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), -1, 0},
        {"version -1", BYTES ("\x92\x07\xff"), -1, 0},
        {"version as a str", BYTES ("\x92\x07\xa1\x31"), -1, 0},
        {"version 1, cut short", BYTES ("\x94\x07\x01\xa4\x61ut"), -1, 0},
        {"version 1, an element missing", BYTES ("\x94\x07\x01\xc0"), -1, 0},
        {"version 1, trailing bytes", BYTES ("\x93\x07\x01\xc0\xc0"), -1, 0},
        {"version 1, 0xc1", BYTES ("\x93\x07\x01\xc1"), -1, 0},
        {"version 1, a str claiming 2^32-1 bytes", BYTES ("\x93\x07\x01\xdb\xff\xff\xff\xff\x61"),
         -1, 0},
        {"version 1, 2^32-1 elements claimed", BYTES ("\xdd\xff\xff\xff\xff\x07\x01\xc0"), -1, 0},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        tl_msg_t msg;
        int rc = s_decode_exact (TL_CMD_JOB, frames[i].bytes, frames[i].size, &msg);
        cr_assert_eq (rc, frames[i].rc, "%s", frames[i].what);
        if (rc == 0) {
            cr_assert_eq (msg.job, 7, "%s", frames[i].what);
            cr_assert_eq (msg.u.job.version, frames[i].version, "%s", frames[i].what);
            cr_assert (!msg.u.job.strict && msg.u.job.input_bytes == 0 && msg.u.job.nfiles == 0 &&
                           !msg.u.job.files,
                       "%s", frames[i].what);
            static const uint8_t no_secret[TL_SECRET_SIZE];
            cr_assert_arr_eq (msg.secret, no_secret, TL_SECRET_SIZE, "%s", frames[i].what);
        } else
            cr_assert (s_msg_is_zero (&msg), "%s", frames[i].what);
        tl_msg_reset (&msg);
    }

    //  Nested as deep as tl_msgpack_check allows, and one level deeper.
    for (int depth = 31; depth <= 32; depth++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_array (&pk, 3);
        msgpack_pack_uint64 (&pk, 7);
        msgpack_pack_uint64 (&pk, 1);
        for (int d = 0; d < depth; d++)
            msgpack_pack_array (&pk, d + 1 < depth ? 1 : 0);
        tl_msg_t msg;
        int rc = s_decode_exact (TL_CMD_JOB, buf.data, buf.size, &msg);
        cr_assert_eq (rc, tl_msgpack_check (buf.data, buf.size), "depth %d", depth);
        cr_assert_eq (rc, depth <= 31 ? 0 : -1, "depth %d", depth);
        tl_msg_reset (&msg);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  An encoder refuses a body its peer's decoder would refuse, and leaves the buffer as
//  it was.
Test (proto, encode_refuses_what_decode_refuses)
{
    char *long_text = malloc (TL_TEXT_MAX + 1);
    cr_assert_not_null (long_text);
    memset (long_text, 'q', TL_TEXT_MAX + 1);
    tl_str_t too_long = {long_text, TL_TEXT_MAX + 1};
    tl_str_t *many = calloc (TL_FILES_MAX + 1, sizeof *many);
    cr_assert_not_null (many);
    tl_str_t one_long[1] = {too_long};

    //  Each refused for one reason: the others' fields are in range (one shard of one).
    tl_msg_t bad[24];
    memset (bad, 0, sizeof bad);
    bad[0].cmd = TL_CMD_JOB;
    bad[0].u.job = (tl_job_body_t){TL_PROTO_VERSION, false, 0, TL_FILES_MAX + 1, many, 0, 1};
    bad[1].cmd = TL_CMD_JOB;
    bad[1].u.job = (tl_job_body_t){TL_PROTO_VERSION, false, 0, 1, one_long, 0, 1};
    bad[2].cmd = TL_CMD_CHUNK;
    bad[2].u.chunk = (tl_chunk_body_t){0, 0, 0, 0, TL_FORMAT_AUTO, TL_FILTER_NONE, 1, 0};
    bad[3].cmd = TL_CMD_DONE;
    bad[3].u.done.output = too_long;
    bad[4].cmd = TL_CMD_FAIL;
    bad[4].u.reason = too_long;
    bad[5].cmd = TL_CMD_CANCEL;
    bad[5].u.reason = too_long;
    //  Chunk ids from TL_CHUNK_ID_MAX on, chunk counts past it
    bad[6].cmd = TL_CMD_CHUNK;
    bad[6].u.chunk =
        (tl_chunk_body_t){TL_CHUNK_ID_MAX, 0, 0, 0, TL_FORMAT_TEXT, TL_FILTER_NONE, 1, 0};
    bad[7].cmd = TL_CMD_CHUNK;
    bad[7].u.chunk = (tl_chunk_body_t){UINT64_MAX, 0, 0, 0, TL_FORMAT_TEXT, TL_FILTER_NONE, 1, 0};
    bad[8].cmd = TL_CMD_PARTIAL;
    bad[8].u.partial.chunk = TL_CHUNK_ID_MAX;
    bad[9].cmd = TL_CMD_PARTIAL;
    bad[9].u.partial.chunk = UINT64_MAX;
    bad[10].cmd = TL_CMD_END;
    bad[10].u.end.chunks = TL_CHUNK_ID_MAX + 1;
    bad[11].cmd = TL_CMD_END;
    bad[11].u.end.chunks = UINT64_MAX;
    bad[12].cmd = TL_CMD_CHUNK;
    bad[12].u.chunk = (tl_chunk_body_t){1, 2, 3, 4, TL_FORMAT_AUTO, TL_FILTER_NONE, 1, 0};
    //  Shards: a JOB's count is 1 .. TL_SHARDS_MAX and its shard below it (whatever the
    //  version: the encoder wants them of every JOB); so is a CHUNK's count; a PARTIAL's
    //  shard is below TL_SHARDS_MAX.
    static const uint32_t job_shards[][2] = {
        {0, 0},          {0, TL_SHARDS_MAX + 1},         {3, 3},
        {4, 3},          {TL_SHARDS_MAX, TL_SHARDS_MAX}, {UINT32_MAX, UINT32_MAX},
        {0, UINT32_MAX},
    };
    size_t n = 13;
    for (size_t i = 0; i < sizeof job_shards / sizeof job_shards[0]; i++) {
        bad[n].cmd = TL_CMD_JOB;
        bad[n].u.job = (tl_job_body_t){
            .version = TL_PROTO_VERSION, .shard = job_shards[i][0], .shards = job_shards[i][1]};
        n++;
    }
    static const uint32_t chunk_shards[] = {0, TL_SHARDS_MAX + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof chunk_shards / sizeof chunk_shards[0]; i++) {
        bad[n].cmd = TL_CMD_CHUNK;
        bad[n].u.chunk =
            (tl_chunk_body_t){1, 2, 3, 4, TL_FORMAT_TEXT, TL_FILTER_NONE, chunk_shards[i], 5};
        n++;
    }
    bad[n].cmd = TL_CMD_PARTIAL;
    bad[n++].u.partial.shard = TL_SHARDS_MAX;
    cr_assert_eq (n, sizeof bad / sizeof bad[0]);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_sbuffer_write (&buf, "xyz", 3);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq (tl_msg_encode (&bad[i], &buf), -1, "bad %zu", i);
        cr_assert_eq (buf.size, 3, "bad %zu left bytes", i);
    }

    //  One below each limit is encoded (and decodes).
    tl_msg_t good[9];
    memset (good, 0, sizeof good);
    good[0].cmd = TL_CMD_CHUNK;
    good[0].u.chunk =
        (tl_chunk_body_t){TL_CHUNK_ID_MAX - 1, 0, 0, 0, TL_FORMAT_TEXT, TL_FILTER_NONE, 1, 0};
    good[1].cmd = TL_CMD_PARTIAL;
    good[1].u.partial.chunk = TL_CHUNK_ID_MAX - 1;
    good[2].cmd = TL_CMD_END;
    good[2].u.end.chunks = TL_CHUNK_ID_MAX;
    good[3].cmd = TL_CMD_JOB;
    good[3].u.job = (tl_job_body_t){.version = TL_PROTO_VERSION, .shard = 0, .shards = 1};
    good[4].cmd = TL_CMD_JOB;
    good[4].u.job = (tl_job_body_t){
        .version = TL_PROTO_VERSION, .shard = TL_SHARDS_MAX - 1, .shards = TL_SHARDS_MAX};
    good[5].cmd = TL_CMD_JOB;
    good[5].u.job = (tl_job_body_t){.version = TL_PROTO_VERSION, .shard = 2, .shards = 3};
    good[6].cmd = TL_CMD_CHUNK;
    good[6].u.chunk =
        (tl_chunk_body_t){1, 2, 3, 4, TL_FORMAT_TEXT, TL_FILTER_NONE, TL_SHARDS_MAX, UINT64_MAX};
    good[7].cmd = TL_CMD_CHUNK;
    good[7].u.chunk = (tl_chunk_body_t){1, 2, 3, 4, TL_FORMAT_TEXT, TL_FILTER_NONE, 1, 0};
    good[8].cmd = TL_CMD_PARTIAL;
    good[8].u.partial.shard = TL_SHARDS_MAX - 1;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        msgpack_sbuffer_clear (&buf);
        cr_assert_eq (tl_msg_encode (&good[i], &buf), 0, "good %zu", i);
        tl_msg_t msg;
        int rc;
        void *frame = s_decode_kept (good[i].cmd, buf.data, buf.size, &msg, &rc);
        cr_assert_eq (rc, 0, "good %zu", i);
        cr_assert (s_msg_equal (&good[i], &msg), "good %zu", i);
        tl_msg_reset (&msg);
        free (frame);
    }
    msgpack_sbuffer_destroy (&buf);
    free (many);
    free (long_text);
}

//  ---------------------------------------------------------------------------------
//  Hostile frames: the layout of each command as the test knows it (docs/PROTOCOL.md),
//  and values that are wrong for each kind of field.

typedef enum {
    F_U64,      //  uint64
    F_U32,      //  uint32
    F_CHUNKID,  //  chunk id: a uint64 below TL_CHUNK_ID_MAX
    F_NCHUNKS,  //  END's chunk count: a uint64 at most TL_CHUNK_ID_MAX
    F_VERSION,  //  JOB's version: a uint32 (TL_PROTO_VERSION in good frames)
    F_SECRET,   //  a job's secret: bin (or str) of exactly TL_SECRET_SIZE bytes
    F_BOOL,     //  bool
    F_CFORMAT,  //  concrete format name
    F_TEXT,     //  str of at most TL_TEXT_MAX bytes
    F_F64,      //  seconds
    F_FILES,    //  array of at most TL_FILES_MAX texts
    F_OFFSETS,  //  array of at most TL_BAD_SAMPLES uint64
    F_IDS,      //  array of at most TL_ACK_MAX uint64
    F_BITS,     //  HAVE's bitmap: bin (or str) of 1 to TL_HAVE_MAX bytes
    F_SHARD,    //  a shard: a uint32 below TL_SHARDS_MAX (JOB: below shards, which good
                //  frames set to TL_SHARDS_MAX)
    F_SHARDS,   //  a shard count: a uint32 from 1 to TL_SHARDS_MAX
    F_KINDS_
} s_field_t;

#define ALL_KINDS ((1u << F_KINDS_) - 1)
#define K(f)      (1u << (f))
#define K_INTS    (K (F_U64) | K (F_U32) | K (F_CHUNKID) | K (F_NCHUNKS) | K (F_VERSION))
#define K_BIG     (K (F_U64) | K (F_CHUNKID) | K (F_NCHUNKS) | K (F_F64))  //  2^32 .. 2^48 - 1
#define K_STRS    (K (F_CFORMAT) | K (F_TEXT))
#define K_ARRAYS  (K (F_FILES) | K (F_OFFSETS) | K (F_IDS))
#define K_SHARDS  (K (F_SHARD) | K (F_SHARDS))  //  1 .. TL_SHARDS_MAX - 1

static const struct {
    tl_cmd_t cmd;
    uint32_t count;
    s_field_t fields[11];
} s_layouts[] = {
    //  [job, version, secret, strict, input_bytes, files, shard, shards]
    {TL_CMD_JOB, 8, {F_U64, F_VERSION, F_SECRET, F_BOOL, F_U64, F_FILES, F_SHARD, F_SHARDS}},
    //  [job, incarnation, merged]
    {TL_CMD_ACCEPT, 3, {F_U64, F_U64, F_U64}},
    //  [job, chunk, tag, file, offset, format, year_min, year_max, skip_pos, shards, seed]
    {TL_CMD_CHUNK,
     11,
     {F_U64, F_CHUNKID, F_U64, F_U32, F_U64, F_CFORMAT, F_U32, F_U32, F_BOOL, F_SHARDS, F_U64}},
    //  [job, chunk, tag, file, bytes, lines, bad_lines, filtered, bad_offsets, shard]
    {TL_CMD_PARTIAL,
     10,
     {F_U64, F_CHUNKID, F_U64, F_U32, F_U64, F_U64, F_U64, F_U64, F_OFFSETS, F_SHARD}},
    //  [job, secret, chunks, bytes, bad_lines]
    {TL_CMD_END, 5, {F_U64, F_SECRET, F_NCHUNKS, F_U64, F_U64}},
    //  [job, chunks]
    {TL_CMD_ACK, 2, {F_U64, F_IDS}},
    //  [job, keys, sum, lines, bad_lines, filtered, seconds, output, chunks, bytes]
    {TL_CMD_DONE, 10, {F_U64, F_U64, F_U64, F_U64, F_U64, F_U64, F_F64, F_TEXT, F_U64, F_U64}},
    //  [job, reason]
    {TL_CMD_FAIL, 2, {F_U64, F_TEXT}},
    //  [job, secret]
    {TL_CMD_PING, 2, {F_U64, F_SECRET}},
    //  [job, incarnation, merged, known]
    {TL_CMD_PONG, 4, {F_U64, F_U64, F_U64, F_BOOL}},
    //  [job, secret, reason]
    {TL_CMD_CANCEL, 3, {F_U64, F_SECRET, F_TEXT}},
    //  [job, first, bits]
    {TL_CMD_HAVE, 3, {F_U64, F_CHUNKID, F_BITS}},
};
#define S_LAYOUTS (sizeof s_layouts / sizeof s_layouts[0])

static void s_raw (msgpack_packer *pk, const char *bytes, size_t size)
{
    msgpack_sbuffer_write (pk->data, bytes, size);
}

static void s_pack_text (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

static void s_pack_repeat (msgpack_packer *pk, size_t len)
{
    char *text = malloc (len);
    cr_assert_not_null (text);
    memset (text, 'r', len);
    s_pack_text (pk, text, len);
    free (text);
}

//  A value each kind accepts.
static void s_pack_good (msgpack_packer *pk, s_field_t kind)
{
    switch (kind) {
    case F_U64:
    case F_U32:
    case F_CHUNKID:
    case F_NCHUNKS:
        msgpack_pack_uint64 (pk, 5);
        break;
    case F_SECRET:
        msgpack_pack_bin (pk, TL_SECRET_SIZE);
        msgpack_pack_bin_body (pk,
                               "\x00\xff"
                               "23456789abcdef",
                               TL_SECRET_SIZE);
        break;
    case F_BOOL:
        msgpack_pack_true (pk);
        break;
    case F_VERSION:
        msgpack_pack_uint64 (pk, TL_PROTO_VERSION);
        break;
    case F_SHARD:
        msgpack_pack_uint64 (pk, 0);
        break;
    case F_SHARDS:
        msgpack_pack_uint64 (pk, TL_SHARDS_MAX);
        break;
    case F_CFORMAT:
        s_pack_text (pk, "ngram2012", 9);
        break;
    case F_TEXT:
        s_pack_text (pk, "x", 1);
        break;
    case F_BITS:
        msgpack_pack_bin (pk, 1);
        msgpack_pack_bin_body (pk, "\x05", 1);
        break;
    case F_F64:
        msgpack_pack_double (pk, 2.5);
        break;
    case F_FILES:
        msgpack_pack_array (pk, 2);
        s_pack_text (pk, "a", 1);
        s_pack_text (pk, "b", 1);
        break;
    case F_OFFSETS:
    case F_IDS:
        msgpack_pack_array (pk, 1);
        msgpack_pack_uint64 (pk, 3);
        break;
    default:
        cr_assert_fail ("kind %d", kind);
    }
}

static void v_nil (msgpack_packer *pk)
{
    msgpack_pack_nil (pk);
}
static void v_negfix (msgpack_packer *pk)
{
    s_raw (pk, "\xff", 1);
}
static void v_int8_neg (msgpack_packer *pk)
{
    s_raw (pk, "\xd0\xff", 2);
}
static void v_int64_neg (msgpack_packer *pk)
{
    msgpack_pack_fix_int64 (pk, -((int64_t)1 << 40));
}
static void v_int64_min (msgpack_packer *pk)
{
    msgpack_pack_fix_int64 (pk, INT64_MIN);
}
static void v_int8_pos (msgpack_packer *pk)
{
    msgpack_pack_fix_int8 (pk, 100);
}
static void v_int64_pos (msgpack_packer *pk)
{
    msgpack_pack_fix_int64 (pk, INT64_MAX);
}
static void v_uint8 (msgpack_packer *pk)
{
    msgpack_pack_fix_uint8 (pk, 1);
}
static void v_uint64_small (msgpack_packer *pk)
{
    msgpack_pack_fix_uint64 (pk, 1);
}
static void v_u32_max (msgpack_packer *pk)
{
    msgpack_pack_fix_uint64 (pk, UINT32_MAX);
}
static void v_u32_over (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, (uint64_t)UINT32_MAX + 1);
}
static void v_u64_max (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, UINT64_MAX);
}
static void v_2e48_less (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, TL_CHUNK_ID_MAX - 1);
}
static void v_2e48 (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, TL_CHUNK_ID_MAX);
}
static void v_2e48_more (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, TL_CHUNK_ID_MAX + 1);
}
static void v_int64_2e48 (msgpack_packer *pk)
{
    msgpack_pack_fix_int64 (pk, (int64_t)TL_CHUNK_ID_MAX);
}
static void v_int64_2e48_less (msgpack_packer *pk)
{
    msgpack_pack_fix_int64 (pk, (int64_t)TL_CHUNK_ID_MAX - 1);
}
static void v_zero (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, 0);
}
static void v_63 (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, TL_SHARDS_MAX - 1);
}
static void v_64 (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, TL_SHARDS_MAX);
}
static void v_65 (msgpack_packer *pk)
{
    msgpack_pack_uint64 (pk, TL_SHARDS_MAX + 1);
}
static void v_int16_64 (msgpack_packer *pk)
{
    msgpack_pack_fix_int16 (pk, TL_SHARDS_MAX);
}
static void v_float64 (msgpack_packer *pk)
{
    msgpack_pack_double (pk, 1.0);
}
static void v_float32 (msgpack_packer *pk)
{
    msgpack_pack_float (pk, 0.5f);
}
static void v_true (msgpack_packer *pk)
{
    msgpack_pack_true (pk);
}
static void v_false (msgpack_packer *pk)
{
    msgpack_pack_false (pk);
}
static void v_str_x (msgpack_packer *pk)
{
    s_pack_text (pk, "x", 1);
}
static void v_str_empty (msgpack_packer *pk)
{
    s_pack_text (pk, "", 0);
}
static void v_str_auto (msgpack_packer *pk)
{
    s_pack_text (pk, "auto", 4);
}
static void v_bin_format (msgpack_packer *pk)
{
    msgpack_pack_bin (pk, 4);
    msgpack_pack_bin_body (pk, "text", 4);
}
static void v_str_format_nul (msgpack_packer *pk)
{
    s_pack_text (pk, "text\0", 5);
}
static void v_str_format_space (msgpack_packer *pk)
{
    s_pack_text (pk, "ngram2012 ", 10);
}
static void v_str_format_case (msgpack_packer *pk)
{
    s_pack_text (pk, "NGRAM2012", 9);
}
static void v_str_text_max (msgpack_packer *pk)
{
    s_pack_repeat (pk, TL_TEXT_MAX);
}
static void v_str_text_over (msgpack_packer *pk)
{
    s_pack_repeat (pk, TL_TEXT_MAX + 1);
}
static void v_str8_claims_more (msgpack_packer *pk)
{
    s_raw (pk,
           "\xd9\xff"
           "abc",
           5);
}
static void v_str32_claims_huge (msgpack_packer *pk)
{
    s_raw (pk,
           "\xdb\xff\xff\xff\xff"
           "abc",
           8);
}
static void v_bin32_claims_huge (msgpack_packer *pk)
{
    s_raw (pk,
           "\xc6\xff\xff\xff\xff"
           "abc",
           8);
}
static void s_pack_bin_repeat (msgpack_packer *pk, size_t len)
{
    msgpack_pack_bin (pk, len);
    for (size_t i = 0; i < len; i++)
        msgpack_pack_bin_body (pk, "\xa5", 1);
}
static void v_bin_0 (msgpack_packer *pk)
{
    s_pack_bin_repeat (pk, 0);
}
static void v_bin_1 (msgpack_packer *pk)
{
    s_pack_bin_repeat (pk, 1);
}
static void v_bin_15 (msgpack_packer *pk)
{
    s_pack_bin_repeat (pk, TL_SECRET_SIZE - 1);
}
static void v_bin_16 (msgpack_packer *pk)
{
    s_pack_bin_repeat (pk, TL_SECRET_SIZE);
}
static void v_bin_17 (msgpack_packer *pk)
{
    s_pack_bin_repeat (pk, TL_SECRET_SIZE + 1);
}
static void v_bin_32 (msgpack_packer *pk)
{
    s_pack_bin_repeat (pk, 2 * TL_SECRET_SIZE);
}
static void v_bin16_16 (msgpack_packer *pk)
{
    //  bin16 header for 16 bytes: not the shortest form, still a bin of 16 bytes
    s_raw (pk, "\xc5\x00\x10", 3);
    s_raw (pk, "0123456789abcdef", 16);
}
static void v_str_15 (msgpack_packer *pk)
{
    s_pack_repeat (pk, TL_SECRET_SIZE - 1);
}
static void v_str_16 (msgpack_packer *pk)
{
    s_pack_repeat (pk, TL_SECRET_SIZE);
}
static void v_str_17 (msgpack_packer *pk)
{
    s_pack_repeat (pk, TL_SECRET_SIZE + 1);
}
static void v_ext_16 (msgpack_packer *pk)
{
    s_raw (pk, "\xd8\x01", 2);
    s_raw (pk, "0123456789abcdef", 16);
}
static void v_empty_map (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 0);
}
static void v_fixext1 (msgpack_packer *pk)
{
    s_raw (pk, "\xd4\x01\x00", 3);
}
static void v_ext8 (msgpack_packer *pk)
{
    s_raw (pk, "\xc7\x01\x05\x00", 4);
}
static void v_timestamp (msgpack_packer *pk)
{
    s_raw (pk, "\xd6\xff\x00\x00\x00\x01", 6);
}
static void v_never_used (msgpack_packer *pk)
{
    s_raw (pk, "\xc1", 1);
}
static void v_array_empty (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 0);
}
static void v_array_one_uint (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 1);
    msgpack_pack_uint64 (pk, 1);
}
static void v_array_one_str (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 1);
    s_pack_text (pk, "a", 1);
}
static void v_array_one_bin (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 1);
    msgpack_pack_bin (pk, 1);
    msgpack_pack_bin_body (pk, "\xff", 1);
}
static void v_array_neg (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 1);
    msgpack_pack_int64 (pk, -1);
}
static void v_array_nested (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 1);
    msgpack_pack_array (pk, 0);
}
static void v_array_uints (msgpack_packer *pk, size_t n)
{
    msgpack_pack_array (pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64 (pk, i);
}
static void v_array_4 (msgpack_packer *pk)
{
    v_array_uints (pk, TL_BAD_SAMPLES);
}
static void v_array_5 (msgpack_packer *pk)
{
    v_array_uints (pk, TL_BAD_SAMPLES + 1);
}
static void v_array_64 (msgpack_packer *pk)
{
    v_array_uints (pk, TL_ACK_MAX);
}
static void v_array_65 (msgpack_packer *pk)
{
    v_array_uints (pk, TL_ACK_MAX + 1);
}
static void v_array_16 (msgpack_packer *pk)
{
    v_array_uints (pk, TL_SECRET_SIZE);
}
static void v_files_too_many (msgpack_packer *pk)
{
    msgpack_pack_array (pk, TL_FILES_MAX + 1);
    for (size_t i = 0; i < TL_FILES_MAX + 1; i++)
        s_pack_text (pk, "a", 1);
}
static void v_files_name_too_long (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 2);
    s_pack_text (pk, "a", 1);
    s_pack_repeat (pk, TL_TEXT_MAX + 1);
}
static void v_files_second_bad (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 3);
    s_pack_text (pk, "a", 1);
    s_pack_text (pk, "b", 1);
    msgpack_pack_uint64 (pk, 1);
}
static void v_array16_claims_more (msgpack_packer *pk)
{
    s_raw (pk, "\xdc\x01\x00\x01\x02", 5);
}
static void v_array32_claims_huge (msgpack_packer *pk)
{
    s_raw (pk, "\xdd\xff\xff\xff\xff\x01\x02", 7);
}

//  A value and the kinds that must accept it; every other kind must refuse it.
static const struct {
    const char *what;
    void (*pack) (msgpack_packer *pk);
    unsigned accepted_by;
} s_values[] = {
    {"nil", v_nil, 0},
    {"negative fixint", v_negfix, 0},
    {"int8 -1", v_int8_neg, 0},
    {"int64 -2^40", v_int64_neg, 0},
    {"int64 min", v_int64_min, 0},
    {"int8 100", v_int8_pos, K_INTS | K (F_F64)},
    {"int64 max", v_int64_pos, K (F_U64) | K (F_F64)},
    {"int64 2^48 - 1", v_int64_2e48_less, K_BIG},
    {"int64 2^48", v_int64_2e48, K_BIG & ~K (F_CHUNKID)},
    {"uint8 1", v_uint8, K_INTS | K (F_F64) | K_SHARDS},
    {"uint64 1", v_uint64_small, K_INTS | K (F_F64) | K_SHARDS},
    {"uint32 max as uint64", v_u32_max, K_INTS | K (F_F64)},
    {"uint32 max + 1", v_u32_over, K_BIG},
    {"2^48 - 1", v_2e48_less, K_BIG},
    {"2^48", v_2e48, K_BIG & ~K (F_CHUNKID)},
    {"2^48 + 1", v_2e48_more, K (F_U64) | K (F_F64)},
    {"uint64 max", v_u64_max, K (F_U64) | K (F_F64)},
    {"zero", v_zero, K_INTS | K (F_F64) | K (F_SHARD)},
    {"63", v_63, K_INTS | K (F_F64) | K_SHARDS},
    {"64", v_64, K_INTS | K (F_F64) | K (F_SHARDS)},
    {"int16 64", v_int16_64, K_INTS | K (F_F64) | K (F_SHARDS)},
    {"65", v_65, K_INTS | K (F_F64)},
    {"float64", v_float64, K (F_F64)},
    {"float32", v_float32, K (F_F64)},
    {"true", v_true, K (F_BOOL)},
    {"false", v_false, K (F_BOOL)},
    {"str x", v_str_x, K (F_TEXT) | K (F_BITS)},
    {"empty str", v_str_empty, K (F_TEXT)},
    {"str auto", v_str_auto, K (F_TEXT) | K (F_BITS)},
    {"bin text", v_bin_format, K_STRS | K (F_BITS)},
    {"format with NUL", v_str_format_nul, K (F_TEXT) | K (F_BITS)},
    {"format with space", v_str_format_space, K (F_TEXT) | K (F_BITS)},
    {"format upper case", v_str_format_case, K (F_TEXT) | K (F_BITS)},
    {"str of TL_TEXT_MAX", v_str_text_max, K (F_TEXT) | K (F_BITS)},
    {"str of TL_TEXT_MAX + 1", v_str_text_over, K (F_BITS)},
    {"bin of 0 bytes", v_bin_0, K (F_TEXT)},
    {"bin of 1 byte", v_bin_1, K (F_TEXT) | K (F_BITS)},
    {"bin of 15 bytes", v_bin_15, K (F_TEXT) | K (F_BITS)},
    {"bin of 16 bytes", v_bin_16, K (F_TEXT) | K (F_BITS) | K (F_SECRET)},
    {"bin16 of 16 bytes", v_bin16_16, K (F_TEXT) | K (F_BITS) | K (F_SECRET)},
    {"bin of 17 bytes", v_bin_17, K (F_TEXT) | K (F_BITS)},
    {"bin of 32 bytes", v_bin_32, K (F_TEXT) | K (F_BITS)},
    {"str of 15 bytes", v_str_15, K (F_TEXT) | K (F_BITS)},
    {"str of 16 bytes", v_str_16, K (F_TEXT) | K (F_BITS) | K (F_SECRET)},
    {"str of 17 bytes", v_str_17, K (F_TEXT) | K (F_BITS)},
    {"fixext16", v_ext_16, 0},
    {"str8 claims more", v_str8_claims_more, 0},
    {"str32 claims 2^32-1", v_str32_claims_huge, 0},
    {"bin32 claims 2^32-1", v_bin32_claims_huge, 0},
    {"empty map", v_empty_map, 0},
    {"fixext1", v_fixext1, 0},
    {"ext8", v_ext8, 0},
    {"timestamp", v_timestamp, 0},
    {"0xc1", v_never_used, 0},
    {"empty array", v_array_empty, K_ARRAYS},
    {"[1]", v_array_one_uint, K (F_OFFSETS) | K (F_IDS)},
    {"[\"a\"]", v_array_one_str, K (F_FILES)},
    {"[bin]", v_array_one_bin, K (F_FILES)},
    {"[-1]", v_array_neg, 0},
    {"[[]]", v_array_nested, 0},
    {"4 uints", v_array_4, K (F_OFFSETS) | K (F_IDS)},
    {"5 uints", v_array_5, K (F_IDS)},
    {"64 uints", v_array_64, K (F_IDS)},
    {"65 uints", v_array_65, 0},
    {"16 uints", v_array_16, K (F_IDS)},
    {"TL_FILES_MAX + 1 files", v_files_too_many, 0},
    {"file name too long", v_files_name_too_long, 0},
    {"third file not a str", v_files_second_bad, 0},
    {"array16 claims more", v_array16_claims_more, 0},
    {"array32 claims 2^32-1", v_array32_claims_huge, 0},
};
#define S_VALUES (sizeof s_values / sizeof s_values[0])

//  Packs the layout's array with good values, with value v at position `at` (v NULL:
//  none replaced), and `count` as the array's claimed size and element count.
static void s_build (msgpack_sbuffer *buf, size_t layout, uint32_t count, uint32_t at,
                     void (*v) (msgpack_packer *))
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, count);
    for (uint32_t i = 0; i < count; i++) {
        if (v && i == at)
            v (&pk);
        else if (i < s_layouts[layout].count)
            s_pack_good (&pk, s_layouts[layout].fields[i]);
        else
            msgpack_pack_uint64 (&pk, 0);
    }
}

Test (proto, every_field_refuses_wrong_values)
{
    size_t checked = 0;
    for (size_t l = 0; l < S_LAYOUTS; l++) {
        tl_cmd_t cmd = s_layouts[l].cmd;
        for (uint32_t at = 0; at < s_layouts[l].count; at++) {
            s_field_t kind = s_layouts[l].fields[at];
            for (size_t v = 0; v < S_VALUES; v++) {
                msgpack_sbuffer buf;
                msgpack_sbuffer_init (&buf);
                s_build (&buf, l, s_layouts[l].count, at, s_values[v].pack);
                bool accepted = s_values[v].accepted_by & K (kind);
                tl_msg_t msg;
                int rc = s_decode_exact (cmd, buf.data, buf.size, &msg);
                cr_assert_eq (rc, accepted ? 0 : -1, "%s field %u: %s", tl_cmd_name (cmd), at,
                              s_values[v].what);
                if (rc == -1)
                    cr_assert (s_msg_is_zero (&msg), "%s: msg not cleared", tl_cmd_name (cmd));
                tl_msg_reset (&msg);
                msgpack_sbuffer_destroy (&buf);
                checked++;
            }
        }
    }
    cr_assert_gt (checked, 1000);
}

Test (proto, wrong_element_counts_and_trailing_bytes)
{
    for (size_t l = 0; l < S_LAYOUTS; l++) {
        tl_cmd_t cmd = s_layouts[l].cmd;
        uint32_t n = s_layouts[l].count;
        uint32_t counts[] = {0, n - 1, n + 1, n + 7};
        tl_msg_t msg;
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            msgpack_sbuffer buf;
            msgpack_sbuffer_init (&buf);
            s_build (&buf, l, counts[c], 0, NULL);
            cr_assert_eq (s_decode_exact (cmd, buf.data, buf.size, &msg), -1, "%s with %u fields",
                          tl_cmd_name (cmd), counts[c]);
            cr_assert (s_msg_is_zero (&msg));
            msgpack_sbuffer_destroy (&buf);
        }

        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_build (&buf, l, n, 0, NULL);
        cr_assert_eq (s_decode_exact (cmd, buf.data, buf.size, &msg), 0, "%s", tl_cmd_name (cmd));
        tl_msg_reset (&msg);
        //  The array claims one element more than follows.
        buf.data[0]++;
        cr_assert_eq (s_decode_exact (cmd, buf.data, buf.size, &msg), -1);
        buf.data[0]--;
        //  Trailing bytes after a complete array.
        static const char *trailers[] = {"\x00", "\xc0", "\x91\x01", "\xff"};
        for (size_t t = 0; t < 4; t++) {
            size_t size = buf.size;
            msgpack_sbuffer_write (&buf, trailers[t],
                                   strlen (trailers[t]) ? strlen (trailers[t]) : 1);
            cr_assert_eq (s_decode_exact (cmd, buf.data, buf.size, &msg), -1, "%s trailer %zu",
                          tl_cmd_name (cmd), t);
            cr_assert (s_msg_is_zero (&msg));
            buf.size = size;
        }
        //  The right fields in a map, or a lone value, are not a body.
        static const char *not_arrays[] = {"\x80", "\x81\x00\x00", "\xc0", "\x05", "\xa1x"};
        static const size_t not_array_sizes[] = {1, 3, 1, 1, 2};
        for (size_t t = 0; t < 5; t++)
            cr_assert_eq (s_decode_exact (cmd, not_arrays[t], not_array_sizes[t], &msg), -1);
        cr_assert_eq (s_decode_exact (cmd, "", 0, &msg), -1, "%s empty frame", tl_cmd_name (cmd));
        cr_assert_eq (tl_msg_decode (cmd, NULL, 0, &msg), -1);
        msgpack_sbuffer_destroy (&buf);
    }
}

Test (proto, any_integer_encoding_is_accepted)
{
    //  ACCEPT [job, incarnation, merged] with merged encoded every way msgpack allows
    static const struct {
        const char *bytes;
        size_t size;
        uint64_t value;
    } pongs[] = {
        {BYTES ("\x93\x01\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\x7f"), 127},
        {BYTES ("\x93\x01\x00\xcc\x05"), 5},
        {BYTES ("\x93\x01\x00\xcc\xff"), 255},
        {BYTES ("\x93\x01\x00\xcd\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\xcd\xff\xff"), 65535},
        {BYTES ("\x93\x01\x00\xce\x00\x00\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\xce\xff\xff\xff\xff"), UINT32_MAX},
        {BYTES ("\x93\x01\x00\xcf\x00\x00\x00\x00\x00\x00\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), UINT64_MAX},
        {BYTES ("\x93\x01\x00\xd0\x05"), 5},
        {BYTES ("\x93\x01\x00\xd0\x7f"), 127},
        {BYTES ("\x93\x01\x00\xd1\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\xd1\x7f\xff"), 32767},
        {BYTES ("\x93\x01\x00\xd2\x00\x00\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\xd2\x7f\xff\xff\xff"), INT32_MAX},
        {BYTES ("\x93\x01\x00\xd3\x00\x00\x00\x00\x00\x00\x00\x05"), 5},
        {BYTES ("\x93\x01\x00\xd3\x7f\xff\xff\xff\xff\xff\xff\xff"), INT64_MAX},
        {BYTES ("\x93\xcf\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00"), 0},
    };
    for (size_t i = 0; i < sizeof pongs / sizeof pongs[0]; i++) {
        tl_msg_t msg;
        cr_assert_eq (s_decode_exact (TL_CMD_ACCEPT, pongs[i].bytes, pongs[i].size, &msg), 0,
                      "accept %zu", i);
        cr_assert_eq (msg.u.state.merged, pongs[i].value, "accept %zu", i);
    }
    static const struct {
        const char *bytes;
        size_t size;
    } negatives[] = {
        {BYTES ("\x93\x01\x00\xe0")},
        {BYTES ("\x93\x01\x00\xd0\x80")},
        {BYTES ("\x93\x01\x00\xd1\x80\x00")},
        {BYTES ("\x93\x01\x00\xd1\xff\xff")},
        {BYTES ("\x93\x01\x00\xd2\x80\x00\x00\x00")},
        {BYTES ("\x93\x01\x00\xd3\x80\x00\x00\x00\x00\x00\x00\x00")},
        {BYTES ("\x93\x01\x00\xd3\xff\xff\xff\xff\xff\xff\xff\xff")},
        {BYTES ("\x93\x01\x00\xca\x40\xa0\x00\x00")},
        {BYTES ("\x93\x01\x00\xcb\x40\x14\x00\x00\x00\x00\x00\x00")},
    };
    for (size_t i = 0; i < sizeof negatives / sizeof negatives[0]; i++) {
        tl_msg_t msg;
        cr_assert_eq (s_decode_exact (TL_CMD_ACCEPT, negatives[i].bytes, negatives[i].size, &msg),
                      -1, "negative %zu", i);
    }

    //  seconds: float32, float64 and integers (DONE [1, 0, 0, 0, 0, 0, seconds, "", 0, 0])
    static const struct {
        const char *bytes;
        size_t size;
        double value;
    } dones[] = {
        {BYTES ("\x9a\x01\x00\x00\x00\x00\x00\xca\x3f\xc0\x00\x00\xa0\x00\x00"), 1.5},
        {BYTES ("\x9a\x01\x00\x00\x00\x00\x00\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa0\x00"
                "\x00"),
         1.5},
        {BYTES ("\x9a\x01\x00\x00\x00\x00\x00\x07\xa0\x00\x00"), 7.0},
        {BYTES ("\x9a\x01\x00\x00\x00\x00\x00\xcd\x01\x00\xa0\x00\x00"), 256.0},
        {BYTES ("\x9a\x01\x00\x00\x00\x00\x00\xd0\x07\xa0\x00\x00"), 7.0},
    };
    for (size_t i = 0; i < sizeof dones / sizeof dones[0]; i++) {
        tl_msg_t msg;
        cr_assert_eq (s_decode_exact (TL_CMD_DONE, dones[i].bytes, dones[i].size, &msg), 0,
                      "done %zu", i);
        cr_assert_eq (msg.u.done.seconds, dones[i].value, "done %zu", i);
    }
}

Test (proto, bin_is_accepted_for_every_text)
{
    tl_msg_t msg;
    int rc;
    //  FAIL [3, bin "oops"]
    void *frame = s_decode_kept (TL_CMD_FAIL, BYTES ("\x92\x03\xc4\x04oops"), &msg, &rc);
    cr_assert_eq (rc, 0);
    cr_assert (s_str_equal (msg.u.reason, s_str ("oops")));
    free (frame);
    //  JOB [1, 4, str secret, true, 0, [bin "\xff", str ""], 0, 1]: the secret may be a str
    //  too
    frame = s_decode_kept (TL_CMD_JOB,
                           BYTES ("\x98\x01\x04\xb0"
                                  "0123456789abcdef"
                                  "\xc3\x00\x92\xc4\x01\xff\xa0\x00\x01"),
                           &msg, &rc);
    cr_assert_eq (rc, 0);
    cr_assert_arr_eq (msg.secret, "0123456789abcdef", TL_SECRET_SIZE);
    cr_assert (msg.u.job.strict);
    cr_assert_eq (msg.u.job.nfiles, 2);
    cr_assert (s_str_equal (msg.u.job.files[0], (tl_str_t){"\xff", 1}));
    cr_assert_eq (msg.u.job.files[1].len, 0);
    tl_msg_reset (&msg);
    cr_assert (s_msg_is_zero (&msg));
    free (frame);
}

//  Every proper prefix of every valid frame is refused.
Test (proto, truncated_at_every_offset)
{
    tl_msg_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_msg_encode (&samples[i], &buf), 0);
        for (size_t len = 0; len < buf.size; len++) {
            tl_msg_t msg;
            cr_assert_eq (s_decode_exact (samples[i].cmd, buf.data, len, &msg), -1,
                          "sample %zu (%s) cut at %zu of %zu", i, tl_cmd_name (samples[i].cmd), len,
                          buf.size);
            cr_assert (s_msg_is_zero (&msg));
            cr_assert_eq (tl_msgpack_check (buf.data, len), -1);
        }
        cr_assert_eq (tl_msgpack_check (buf.data, buf.size), 0);
        msgpack_sbuffer_destroy (&buf);
    }
}

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

//  Small frames whose headers claim up to 2^32-1 entries or bytes: refused at the
//  header, without walking or allocating the claim.
Test (proto, huge_claims_fail_fast)
{
    static const struct {
        const char *bytes;
        size_t size;
    } frames[] = {
        {BYTES ("\xdf\xff\xff\xff\xff\x01\x02\x03\x04\x05")},  //  map32
        {BYTES ("\xdd\xff\xff\xff\xff\x01\x02\x03\x04\x05")},  //  array32
        {BYTES ("\xde\xff\xff\x01\x02\x03\x04\x05\x06\x07")},  //  map16
        {BYTES ("\xdc\xff\xff\x01\x02\x03\x04\x05\x06\x07")},  //  array16
        {BYTES ("\xdb\xff\xff\xff\xff\x41\x41\x41\x41\x41")},  //  str32
        {BYTES ("\xc6\xff\xff\xff\xff\x41\x41\x41\x41\x41")},  //  bin32
        {BYTES ("\xc9\xff\xff\xff\xff\x01\x41\x41\x41\x41")},  //  ext32
        {BYTES ("\x92\x01\xdb\xff\xff\xff\xff\x41\x41\x41")},  //  FAIL, reason str32
        {BYTES ("\x92\x01\xdd\xff\xff\xff\xff\x01\x01\x01")},  //  ACK, ids array32
        {BYTES ("\x81\xc4\x01\x41\xdf\xff\xff\xff\xff\x00")},  //  a map in a map
        {BYTES ("\x91\x91\x91\x91\xdd\xff\xff\xff\xff\x00")},  //  nested arrays
    };
    tl_table_t *table = tl_table_new (0);
    cr_assert_not_null (table);
    double start = s_now ();
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        void *copy = s_exact (frames[i].bytes, frames[i].size);
        for (int cmd = TL_CMD_INVALID + 1; cmd < TL_CMD_COUNT_; cmd++) {
            tl_msg_t msg;
            cr_assert_eq (tl_msg_decode ((tl_cmd_t)cmd, copy, frames[i].size, &msg), -1);
        }
        uint64_t entries = 99;
        cr_assert_eq (tl_map_merge (copy, frames[i].size, table, &entries), -1, "frame %zu", i);
        cr_assert_eq (entries, 0);
        cr_assert_eq (tl_msgpack_check (copy, frames[i].size), -1, "frame %zu", i);
        free (copy);
    }

    //  A JOB whose file array claims 65535 entries with 3 bytes left: refused before its
    //  file array is allocated.
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cr_assert_eq (s_layouts[0].cmd, TL_CMD_JOB);
    msgpack_pack_array (&pk, s_layouts[0].count);
    for (uint32_t i = 0; s_layouts[0].fields[i] != F_FILES; i++)
        s_pack_good (&pk, s_layouts[0].fields[i]);
    s_raw (&pk, "\xdc\xff\xff\xa1\x61\xa0", 6);
    tl_msg_t msg;
    cr_assert_eq (s_decode_exact (TL_CMD_JOB, buf.data, buf.size, &msg), -1);
    cr_assert_null (msg.u.job.files);
    msgpack_sbuffer_destroy (&buf);

    cr_assert_lt (s_now () - start, 0.5, "refusing huge claims took %.3f s", s_now () - start);
    cr_assert_eq (tl_table_size (table), 0);
    tl_table_destroy (&table);
}

//  ---------------------------------------------------------------------------------
//  The job's secret and the chunk tags

//  splitmix64 of x: spreads test values without touching the mutation test's generator.
static uint64_t s_mix64 (uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void s_random_secret (uint8_t secret[TL_SECRET_SIZE], uint64_t seed)
{
    uint64_t a = s_mix64 (seed), b = s_mix64 (a);
    memcpy (secret, &a, 8);
    memcpy (secret + 8, &b, 8);
}

static const tl_cmd_t s_secret_cmds[] = {TL_CMD_JOB, TL_CMD_END, TL_CMD_PING, TL_CMD_CANCEL};
#define S_SECRET_CMDS (sizeof s_secret_cmds / sizeof s_secret_cmds[0])

Test (proto, only_job_end_ping_cancel_carry_the_secret)
{
    for (int cmd = TL_CMD_INVALID; cmd <= TL_CMD_COUNT_; cmd++) {
        bool carries = false;
        for (size_t i = 0; i < S_SECRET_CMDS; i++)
            carries |= cmd == (int)s_secret_cmds[i];
        cr_assert_eq (tl_cmd_has_secret ((tl_cmd_t)cmd), carries, "%s",
                      tl_cmd_name ((tl_cmd_t)cmd));
    }
}

//  A message of its command with ordinary values, for job `job` (PING: the job alone).
static tl_msg_t s_secret_msg (tl_cmd_t cmd, uint64_t job)
{
    static tl_str_t files[] = {{"a.tsv", 5}};
    tl_msg_t m = {.cmd = cmd, .job = job};
    if (cmd == TL_CMD_JOB) m.u.job = (tl_job_body_t){TL_PROTO_VERSION, true, 77, 1, files, 1, 2};
    if (cmd == TL_CMD_END) m.u.end = (tl_end_body_t){10, 1000, 1};
    if (cmd == TL_CMD_CANCEL) m.u.reason = s_str ("interrupted");
    return m;
}

//  Each of JOB, END, PING and CANCEL carries the secret as a bin8 of TL_SECRET_SIZE bytes
//  where the layout says (JOB: after the version; the others: after the job id), and
//  decodes it back, whatever its bytes.
Test (proto, secret_round_trips_in_job_end_ping_cancel)
{
    uint8_t secrets[6][TL_SECRET_SIZE];
    memset (secrets[0], 0, TL_SECRET_SIZE);
    memset (secrets[1], 0xff, TL_SECRET_SIZE);
    s_secret (secrets[2], 0x5a);
    s_random_secret (secrets[3], 1);
    memset (secrets[4], 0, TL_SECRET_SIZE);
    secrets[4][7] = 0xc4;  //  a msgpack header byte inside the secret
    cr_assert_eq (tl_secret_new (secrets[5]), 0);
    for (size_t c = 0; c < S_SECRET_CMDS; c++) {
        for (size_t s = 0; s < sizeof secrets / sizeof secrets[0]; s++) {
            tl_msg_t m = s_secret_msg (s_secret_cmds[c], 7);
            memcpy (m.secret, secrets[s], TL_SECRET_SIZE);
            msgpack_sbuffer buf;
            msgpack_sbuffer_init (&buf);
            cr_assert_eq (tl_msg_encode (&m, &buf), 0);
            //  [7, 4, secret ...] for JOB, [7, secret ...] for the others
            size_t at = m.cmd == TL_CMD_JOB ? 3 : 2;
            cr_assert_geq (buf.size, at + 2 + TL_SECRET_SIZE);
            cr_assert_eq ((uint8_t)buf.data[at], 0xc4, "%s secret %zu", tl_cmd_name (m.cmd), s);
            cr_assert_eq ((uint8_t)buf.data[at + 1], TL_SECRET_SIZE);
            cr_assert_arr_eq (buf.data + at + 2, secrets[s], TL_SECRET_SIZE);

            tl_msg_t msg;
            int rc;
            void *frame = s_decode_kept (m.cmd, buf.data, buf.size, &msg, &rc);
            cr_assert_eq (rc, 0, "%s secret %zu", tl_cmd_name (m.cmd), s);
            cr_assert_arr_eq (msg.secret, secrets[s], TL_SECRET_SIZE, "%s secret %zu",
                              tl_cmd_name (m.cmd), s);
            cr_assert (tl_secret_equal (msg.secret, m.secret));
            cr_assert (s_msg_equal (&m, &msg), "%s secret %zu", tl_cmd_name (m.cmd), s);

            //  Another secret is another frame, and s_msg_equal sees it.
            tl_msg_t other = m;
            other.secret[TL_SECRET_SIZE - 1] ^= 1;
            cr_assert_not (s_msg_equal (&other, &msg));
            msgpack_sbuffer again;
            msgpack_sbuffer_init (&again);
            cr_assert_eq (tl_msg_encode (&other, &again), 0);
            cr_assert_eq (again.size, buf.size);
            cr_assert_neq (memcmp (again.data, buf.data, buf.size), 0);
            msgpack_sbuffer_destroy (&again);

            tl_msg_reset (&msg);
            free (frame);
            msgpack_sbuffer_destroy (&buf);
        }
    }
}

//  Searches haystack for needle.
static bool s_contains (const void *haystack, size_t size, const void *needle, size_t len)
{
    for (size_t i = 0; i + len <= size; i++)
        if (memcmp ((const char *)haystack + i, needle, len) == 0) return true;
    return false;
}

//  The commands without the secret never carry it, whatever msg.secret holds: CHUNK goes
//  to the workers, PARTIAL, ACK, DONE... are seen by whoever is on those sockets.
Test (proto, secret_stays_out_of_the_other_commands)
{
    static const uint8_t pattern[TL_SECRET_SIZE] = "\x01SECRET-PATTERN";
    tl_msg_t samples[S_SAMPLES_MAX];
    size_t n = s_samples (samples);
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        if (tl_cmd_has_secret (samples[i].cmd)) continue;
        msgpack_sbuffer plain, marked;
        msgpack_sbuffer_init (&plain);
        msgpack_sbuffer_init (&marked);
        cr_assert_eq (tl_msg_encode (&samples[i], &plain), 0);
        tl_msg_t m = samples[i];
        memcpy (m.secret, pattern, TL_SECRET_SIZE);
        cr_assert_eq (tl_msg_encode (&m, &marked), 0);
        cr_assert_eq (marked.size, plain.size, "sample %zu", i);
        cr_assert_eq (memcmp (marked.data, plain.data, plain.size), 0, "sample %zu", i);
        cr_assert_not (s_contains (marked.data, marked.size, pattern, TL_SECRET_SIZE));
        msgpack_sbuffer_destroy (&marked);
        msgpack_sbuffer_destroy (&plain);
        checked++;
    }
    cr_assert_gt (checked, 10);
}

//  Packs a layout's good values with, at its secret's place, a bin (or str) of len bytes.
static void s_build_secret (msgpack_sbuffer *buf, size_t layout, size_t len, bool str)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, s_layouts[layout].count);
    for (uint32_t i = 0; i < s_layouts[layout].count; i++) {
        if (s_layouts[layout].fields[i] != F_SECRET) {
            s_pack_good (&pk, s_layouts[layout].fields[i]);
            continue;
        }
        char *bytes = malloc (len + 1);
        cr_assert_not_null (bytes);
        for (size_t b = 0; b < len; b++)
            bytes[b] = (char)(b * 7 + 1);
        if (str) {
            msgpack_pack_str (&pk, len);
            msgpack_pack_str_body (&pk, bytes, len);
        } else {
            msgpack_pack_bin (&pk, len);
            msgpack_pack_bin_body (&pk, bytes, len);
        }
        free (bytes);
    }
}

//  A secret is exactly TL_SECRET_SIZE bytes: every other length is refused, as a bin or
//  as a str, in each command that carries one.
Test (proto, secret_of_any_other_length_is_refused)
{
    size_t lens[65 + 5];  //  0..64, then 5 more
    size_t nlens = 0;
    for (size_t len = 0; len <= 64; len++)
        lens[nlens++] = len;
    lens[nlens++] = 255;
    lens[nlens++] = 256;
    lens[nlens++] = 65535;
    lens[nlens++] = 65536;
    lens[nlens++] = TL_TEXT_MAX;
    size_t layouts = 0;
    for (size_t l = 0; l < S_LAYOUTS; l++) {
        if (!tl_cmd_has_secret (s_layouts[l].cmd)) continue;
        layouts++;
        for (size_t i = 0; i < nlens; i++) {
            for (int str = 0; str < 2; str++) {
                msgpack_sbuffer buf;
                msgpack_sbuffer_init (&buf);
                s_build_secret (&buf, l, lens[i], str);
                tl_msg_t msg;
                int want = lens[i] == TL_SECRET_SIZE ? 0 : -1;
                cr_assert_eq (s_decode_exact (s_layouts[l].cmd, buf.data, buf.size, &msg), want,
                              "%s with a %s secret of %zu bytes", tl_cmd_name (s_layouts[l].cmd),
                              str ? "str" : "bin", lens[i]);
                if (want == -1) cr_assert (s_msg_is_zero (&msg));
                tl_msg_reset (&msg);
                msgpack_sbuffer_destroy (&buf);
            }
        }
    }
    cr_assert_eq (layouts, S_SECRET_CMDS);
}

//  Known answers: the low 64 bits of XXH3_128bits (secret || job LE64 || chunk LE64),
//  computed with python-xxhash 4.1.0 (its own xxHash 0.8.4), not with the library this
//  test links.
Test (proto, chunk_tag_known_answers)
{
    static const struct {
        const char *secret;
        uint64_t job, chunk, tag;
    } known[] = {
        {"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 0, 0, 0xa057271c9071c99dull},
        {"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 1, 2,
         0x260f27a564a210aeull},
        {"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 2, 1,
         0x4094d45e0de44922ull},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", UINT64_MAX,
         TL_CHUNK_ID_MAX - 1, 0xce45cf1bff38ec69ull},
        {"\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf", 0x0123456789abcdefull,
         123456789, 0xd26ab4f3e1564880ull},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        cr_assert_eq (tl_chunk_tag ((const uint8_t *)known[i].secret, known[i].job, known[i].chunk),
                      known[i].tag, "known answer %zu: %016llx", i,
                      (unsigned long long)tl_chunk_tag ((const uint8_t *)known[i].secret,
                                                        known[i].job, known[i].chunk));
}

//  Parses "92 07 ..." into bytes; returns their count.
static size_t s_unhex (const char *hex, char *out, size_t cap)
{
    size_t n = 0;
    unsigned byte;
    int used;
    while (sscanf (hex, " %2x%n", &byte, &used) == 1) {
        cr_assert_lt (n, cap);
        out[n++] = (char)byte;
        hex += used;
    }
    return n;
}

//  docs/PROTOCOL.md's "Bytes on the wire" code block with every run of blanks and line
//  breaks made one space, so that a hex dump the document wraps is found whole. Free it.
static char *s_documented_bytes (void)
{
    char path[4200];
    snprintf (path, sizeof path, "%s/docs/PROTOCOL.md", tl_test_source_dir ());
    size_t size;
    char *doc = tl_test_read_file (path, &size);
    doc[size] = 0;
    char *start = strstr (doc, "### Bytes on the wire");
    cr_assert_not_null (start, "%s has no \"Bytes on the wire\"", path);
    start = strstr (start, "```");
    cr_assert_not_null (start);
    start += 3;
    char *end = strstr (start, "```");
    cr_assert_not_null (end);
    char *text = malloc ((size_t)(end - start) + 1);
    cr_assert_not_null (text);
    size_t n = 0;
    for (const char *c = start; c < end; c++) {
        bool blank = *c == ' ' || *c == '\n' || *c == '\t';
        if (!blank)
            text[n++] = *c;
        else if (n && text[n - 1] != ' ')
            text[n++] = ' ';
    }
    text[n] = 0;
    free (doc);
    return text;
}

//  The examples of docs/PROTOCOL.md ("Bytes on the wire"), byte for byte: a job of two
//  sink shards, chunk 3 of which shard 1 (3 % 2) counts.
Test (proto, documented_bytes_on_the_wire)
{
    static const uint8_t secret[TL_SECRET_SIZE] = {0x9c, 0x41, 0x0e, 0x7b, 0xd2, 0x55, 0xa8, 0x13,
                                                   0x6f, 0xe0, 0x3b, 0x92, 0xc7, 0x18, 0x4d, 0xa6};
    uint64_t tag = tl_chunk_tag (secret, 7, 3);
    cr_assert_eq (tag, 0x8f5da55b01ab4e8dull, "%016llx", (unsigned long long)tag);
    uint64_t seed = tl_shard_seed (secret, 7);
    cr_assert_eq (seed, 0x9373dd55bbe9787cull, "%016llx", (unsigned long long)seed);
    cr_assert_eq (tl_shard_counter (3, 2), 1);
    static tl_str_t files[] = {{"a.tsv", 5}};
    tl_msg_t m[8];
    memset (m, 0, sizeof m);
    m[0] = (tl_msg_t){.cmd = TL_CMD_PING, .job = 7};
    m[1] = (tl_msg_t){.cmd = TL_CMD_ACK, .job = 7, .u.ack = {2, {3, 4}}};
    m[2] = (tl_msg_t){.cmd = TL_CMD_JOB, .job = 7};
    m[2].u.job = (tl_job_body_t){TL_PROTO_VERSION, false, 5000000, 1, files, 1, 2};
    m[3] = (tl_msg_t){.cmd = TL_CMD_CHUNK, .job = 7};
    m[3].u.chunk = (tl_chunk_body_t){
        3, tag, 0, 1048576, TL_FORMAT_NGRAM2012, {1900, UINT32_MAX, false}, 2, seed};
    m[4] = (tl_msg_t){.cmd = TL_CMD_PARTIAL, .job = 7};
    m[4].u.partial = (tl_partial_body_t){3, tag, 0, 1048576, 20000, 1, 0, 1, {1048600}, 1};
    m[5] = (tl_msg_t){.cmd = TL_CMD_PARTIAL, .job = 7};
    m[5].u.partial = (tl_partial_body_t){.chunk = 3, .tag = tag, .shard = 0};
    m[6] = (tl_msg_t){.cmd = TL_CMD_END, .job = 7, .u.end = {4, 2097152, 0}};
    m[7] = (tl_msg_t){.cmd = TL_CMD_CANCEL, .job = 7, .u.reason = {"interrupted", 11}};
    static const char *hex[8] = {
        "92 07 c4 10 9c 41 0e 7b d2 55 a8 13 6f e0 3b 92 c7 18 4d a6",
        "92 07 92 03 04",
        "98 07 04 c4 10 9c 41 0e 7b d2 55 a8 13 6f e0 3b 92 c7 18 4d a6 c2 ce 00 4c 4b 40 "
        "91 a5 61 2e 74 73 76 01 02",
        "9b 07 03 cf 8f 5d a5 5b 01 ab 4e 8d 00 ce 00 10 00 00 a9 6e 67 72 61 6d 32 30 31 "
        "32 cd 07 6c ce ff ff ff ff c2 02 cf 93 73 dd 55 bb e9 78 7c",
        "9a 07 03 cf 8f 5d a5 5b 01 ab 4e 8d 00 ce 00 10 00 00 cd 4e 20 01 00 91 ce 00 10 "
        "00 18 01",
        "9a 07 03 cf 8f 5d a5 5b 01 ab 4e 8d 00 00 00 00 00 90 00",
        "95 07 c4 10 9c 41 0e 7b d2 55 a8 13 6f e0 3b 92 c7 18 4d a6 04 ce 00 20 00 00 00",
        "93 07 c4 10 9c 41 0e 7b d2 55 a8 13 6f e0 3b 92 c7 18 4d a6 ab 69 6e 74 65 72 72 "
        "75 70 74 65 64",
    };
    char *doc = s_documented_bytes ();
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        cr_assert (strstr (doc, hex[i]), "docs/PROTOCOL.md lacks \"%s\"", hex[i]);
        if (tl_cmd_has_secret (m[i].cmd)) memcpy (m[i].secret, secret, TL_SECRET_SIZE);
        char want[64];
        size_t size = s_unhex (hex[i], want, sizeof want);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_msg_encode (&m[i], &buf), 0);
        cr_assert_eq (buf.size, size, "%s (example %zu)", tl_cmd_name (m[i].cmd), i);
        cr_assert_arr_eq (buf.data, want, size, "%s (example %zu)", tl_cmd_name (m[i].cmd), i);
        tl_msg_t msg;
        int rc;
        void *frame = s_decode_kept (m[i].cmd, want, size, &msg, &rc);
        cr_assert_eq (rc, 0, "%s", tl_cmd_name (m[i].cmd));
        cr_assert (s_msg_equal (&m[i], &msg), "%s", tl_cmd_name (m[i].cmd));
        tl_msg_reset (&msg);
        free (frame);
        msgpack_sbuffer_destroy (&buf);
    }

    //  Frame 2: {b"cat": 300, b"the": 5} for one sink, and split between two shards with
    //  the job's seed ("the" in shard 0, "cat" in shard 1), each part with a map32 header.
    tl_table_t *table = tl_table_new (0);
    cr_assert_not_null (table);
    cr_assert_eq (tl_table_add (table, "cat", 3, 300), 0);
    cr_assert_eq (tl_table_add (table, "the", 3, 5), 0);
    cr_assert_eq (tl_shard_of ("the", 3, seed, 2), 0);
    cr_assert_eq (tl_shard_of ("cat", 3, seed, 2), 1);
    msgpack_sbuffer one;
    msgpack_sbuffer_init (&one);
    cr_assert_eq (tl_map_encode (table, &one), 0);
    //  One sink: the entries in the table's order, which the example does not fix
    static const char *one_hex[2] = {"82 c4 03 63 61 74 cd 01 2c c4 03 74 68 65 05",
                                     "82 c4 03 74 68 65 05 c4 03 63 61 74 cd 01 2c"};
    bool found = false;
    for (size_t i = 0; i < 2; i++) {
        char want[64];
        size_t size = s_unhex (one_hex[i], want, sizeof want);
        found |= one.size == size && memcmp (one.data, want, size) == 0;
    }
    cr_assert (found, "the one sink's map is neither documented order");
    msgpack_sbuffer parts[2];
    msgpack_sbuffer_init (&parts[0]);
    msgpack_sbuffer_init (&parts[1]);
    cr_assert_eq (tl_map_encode_split (table, seed, 2, parts), 0);
    static const char *part_hex[2] = {"df 00 00 00 01 c4 03 74 68 65 05",
                                      "df 00 00 00 01 c4 03 63 61 74 cd 01 2c"};
    cr_assert (strstr (doc, part_hex[0]) && strstr (doc, part_hex[1]));
    for (size_t i = 0; i < 2; i++) {
        char want[64];
        size_t size = s_unhex (part_hex[i], want, sizeof want);
        cr_assert_eq (parts[i].size, size, "part %zu", i);
        cr_assert_arr_eq (parts[i].data, want, size, "part %zu", i);
        msgpack_sbuffer_destroy (&parts[i]);
    }
    msgpack_sbuffer_destroy (&one);
    tl_table_destroy (&table);
    free (doc);
}

static int s_u64_cmp (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

//  Sorts n tags and says whether any two are equal.
static bool s_all_distinct (uint64_t *tags, size_t n)
{
    qsort (tags, n, sizeof *tags, s_u64_cmp);
    for (size_t i = 1; i < n; i++)
        if (tags[i] == tags[i - 1]) return false;
    return true;
}

//  The tag is a function of (secret, job, chunk) alone, and each of the three changes it.
Test (proto, chunk_tag_is_deterministic_and_depends_on_all_its_inputs)
{
    uint8_t secret[TL_SECRET_SIZE];
    s_random_secret (secret, 42);
    uint64_t job = 0x1234, chunk = 77;
    uint64_t tag = tl_chunk_tag (secret, job, chunk);
    //  Same inputs, from another (misaligned) copy of the secret: same tag.
    uint8_t copy[TL_SECRET_SIZE + 1];
    memcpy (copy + 1, secret, TL_SECRET_SIZE);
    for (int i = 0; i < 100; i++)
        cr_assert_eq (tl_chunk_tag (copy + 1, job, chunk), tag);

    //  Every bit of the secret, of the job id and of the chunk id counts.
    for (size_t bit = 0; bit < 8 * TL_SECRET_SIZE; bit++) {
        memcpy (copy, secret, TL_SECRET_SIZE);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_neq (tl_chunk_tag (copy, job, chunk), tag, "secret bit %zu", bit);
    }
    for (int bit = 0; bit < 64; bit++)
        cr_assert_neq (tl_chunk_tag (secret, job ^ (1ull << bit), chunk), tag, "job bit %d", bit);
    for (int bit = 0; bit < 48; bit++)
        cr_assert_neq (tl_chunk_tag (secret, job, chunk ^ (1ull << bit)), tag, "chunk bit %d", bit);
    //  job and chunk are not interchangeable
    cr_assert_neq (tl_chunk_tag (secret, chunk, job), tag);

    //  Thousands of chunks of one job, at the bottom and at the top of the id range, and
    //  one chunk id across thousands of jobs and of secrets: no two tags alike.
    enum { N = 4096 };
    uint64_t *tags = malloc (3 * N * sizeof *tags);
    cr_assert_not_null (tags);
    for (uint64_t c = 0; c < N; c++) {
        tags[c] = tl_chunk_tag (secret, job, c);
        tags[N + c] = tl_chunk_tag (secret, job, TL_CHUNK_ID_MAX - 1 - c);
    }
    cr_assert (s_all_distinct (tags, 2 * N), "two chunks of one job share a tag");
    for (uint64_t j = 0; j < N; j++)
        tags[j] = tl_chunk_tag (secret, j, chunk);
    cr_assert (s_all_distinct (tags, N), "one chunk of two jobs shares a tag");
    for (uint64_t s = 0; s < N; s++) {
        uint8_t other[TL_SECRET_SIZE];
        s_random_secret (other, 1000 + s);
        tags[s] = tl_chunk_tag (other, job, chunk);
    }
    cr_assert (s_all_distinct (tags, N), "one chunk under two secrets shares a tag");
    free (tags);
}

Test (proto, secret_equal_compares_every_byte)
{
    uint8_t a[TL_SECRET_SIZE], b[TL_SECRET_SIZE];
    s_random_secret (a, 5);
    memcpy (b, a, TL_SECRET_SIZE);
    cr_assert (tl_secret_equal (a, b));
    cr_assert (tl_secret_equal (b, a));
    cr_assert (tl_secret_equal (a, a));
    for (size_t bit = 0; bit < 8 * TL_SECRET_SIZE; bit++) {
        memcpy (b, a, TL_SECRET_SIZE);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_not (tl_secret_equal (a, b), "bit %zu", bit);
        cr_assert_not (tl_secret_equal (b, a), "bit %zu", bit);
    }
    static const uint8_t zero[TL_SECRET_SIZE];
    uint8_t z[TL_SECRET_SIZE] = {0};
    cr_assert (tl_secret_equal (zero, z));
    memset (b, 0xff, TL_SECRET_SIZE);
    cr_assert_not (tl_secret_equal (zero, b));
    //  Equal but for the last byte: the whole secret is compared, not a prefix.
    memcpy (b, a, TL_SECRET_SIZE);
    b[TL_SECRET_SIZE - 1]++;
    cr_assert_not (tl_secret_equal (a, b));
}

Test (proto, secret_new_draws_every_byte)
{
    enum { DRAWS = 64 };
    uint8_t secrets[DRAWS][TL_SECRET_SIZE];
    static const uint8_t zero[TL_SECRET_SIZE];
    for (int i = 0; i < DRAWS; i++) {
        memset (secrets[i], 0, TL_SECRET_SIZE);
        cr_assert_eq (tl_secret_new (secrets[i]), 0);
        cr_assert_not (tl_secret_equal (secrets[i], zero), "draw %d is all zero", i);
        for (int j = 0; j < i; j++)
            cr_assert_not (tl_secret_equal (secrets[i], secrets[j]), "draws %d and %d", i, j);
    }
    //  Each byte takes more than one value over the draws (2^-504 to fail by chance).
    for (size_t b = 0; b < TL_SECRET_SIZE; b++) {
        bool varies = false;
        for (int i = 1; i < DRAWS; i++)
            varies |= secrets[i][b] != secrets[0][b];
        cr_assert (varies, "byte %zu never changes", b);
    }
}

//  ---------------------------------------------------------------------------------
//  PARTIAL frame 2: the map

static const struct {
    const char *key;
    uint32_t len;
    uint64_t count;
} s_keys[] = {
    {"the", 3, 1000},
    {"", 0, 7},  //  the empty key
    {"a\0b", 3, 1},
    {"\0", 1, 2},
    {"\xff\xfe\xfd", 3, UINT64_MAX},
    {"\xc3\x28", 2, 0},  //  invalid UTF-8, count 0
    {"caf\xc3\xa9", 5, 42},
    {"word_NOUN", 9, 1ull << 32},
    {"a\tb\nc", 5, 3},
};
#define S_KEYS (sizeof s_keys / sizeof s_keys[0])

static tl_table_t *s_special_table (void)
{
    tl_table_t *table = tl_table_new (0);
    cr_assert_not_null (table);
    for (size_t i = 0; i < S_KEYS; i++)
        cr_assert_eq (tl_table_add (table, s_keys[i].key, s_keys[i].len, s_keys[i].count), 0);
    return table;
}

//  True when two tables hold the same keys with the same totals.
static bool s_tables_equal (tl_table_t *a, tl_table_t *b)
{
    if (tl_table_size (a) != tl_table_size (b)) return false;
    size_t cursor = 0;
    tl_entry_t entry;
    while (tl_table_next (a, &cursor, &entry)) {
        uint64_t count;
        if (!tl_table_get (b, entry.key, entry.len, &count) || count != entry.count) return false;
    }
    return true;
}

static int s_merge_exact (const void *data, size_t size, tl_table_t *table, uint64_t *entries)
{
    void *copy = s_exact (data, size);
    int rc = tl_map_merge (copy, size, table, entries);
    free (copy);
    return rc;
}

Test (proto, map_round_trips_any_key_bytes)
{
    tl_table_t *table = s_special_table ();
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_map_encode (table, &buf), 0);
    tl_table_t *copy = tl_table_new (0);
    uint64_t entries = 0;
    cr_assert_eq (s_merge_exact (buf.data, buf.size, copy, &entries), 0);
    cr_assert_eq (entries, S_KEYS);
    cr_assert_eq (tl_table_size (copy), S_KEYS);
    cr_assert (s_tables_equal (table, copy));
    for (size_t i = 0; i < S_KEYS; i++) {
        uint64_t count;
        cr_assert (tl_table_get (copy, s_keys[i].key, s_keys[i].len, &count), "key %zu", i);
        cr_assert_eq (count, s_keys[i].count, "key %zu", i);
    }
    cr_assert_eq (tl_msgpack_check (buf.data, buf.size), 0);
    tl_table_destroy (&copy);
    tl_table_destroy (&table);
    msgpack_sbuffer_destroy (&buf);
}

//  Keys are bin: a msgpack-c reader sees MSGPACK_OBJECT_BIN keys and uint values.
Test (proto, map_keys_are_bin_and_values_uint)
{
    tl_table_t *table = s_special_table ();
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_map_encode (table, &buf), 0);
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    size_t off = 0;
    cr_assert_eq (msgpack_unpack_next (&result, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq (off, buf.size);
    cr_assert_eq (result.data.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq (result.data.via.map.size, S_KEYS);
    for (uint32_t i = 0; i < result.data.via.map.size; i++) {
        cr_assert_eq (result.data.via.map.ptr[i].key.type, MSGPACK_OBJECT_BIN);
        cr_assert_eq (result.data.via.map.ptr[i].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    }
    msgpack_unpacked_destroy (&result);
    msgpack_sbuffer_destroy (&buf);
    tl_table_destroy (&table);
}

Test (proto, map_round_trips_sizes_of_every_header)
{
    //  fixmap, map16 and map32 headers; fixstr-length, bin8, bin16 and bin32 keys
    size_t sizes[] = {0, 1, 15, 16, 300, 65535, 65536, 70000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        tl_table_t *table = tl_table_new (sizes[s]);
        char key[32];
        for (size_t i = 0; i < sizes[s]; i++) {
            int len = snprintf (key, sizeof key, "k%zu", i);
            cr_assert_eq (tl_table_add (table, key, (size_t)len, i * 7919), 0);
        }
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_map_encode (table, &buf), 0);
        tl_table_t *copy = tl_table_new (0);
        uint64_t entries = 0;
        cr_assert_eq (tl_map_merge (buf.data, buf.size, copy, &entries), 0);
        cr_assert_eq (entries, sizes[s]);
        cr_assert (s_tables_equal (table, copy), "%zu keys", sizes[s]);
        tl_table_destroy (&copy);
        tl_table_destroy (&table);
        msgpack_sbuffer_destroy (&buf);
    }
    size_t lens[] = {255, 256, 65535, 65536, TL_KEY_MAX};
    for (size_t s = 0; s < sizeof lens / sizeof lens[0]; s++) {
        char *key = malloc (lens[s]);
        memset (key, 'k', lens[s]);
        key[lens[s] / 2] = 0;
        tl_table_t *table = tl_table_new (0);
        cr_assert_eq (tl_table_add (table, key, lens[s], 5), 0);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_map_encode (table, &buf), 0);
        tl_table_t *copy = tl_table_new (0);
        cr_assert_eq (s_merge_exact (buf.data, buf.size, copy, NULL), 0);
        uint64_t count = 0;
        cr_assert (tl_table_get (copy, key, lens[s], &count), "key of %zu bytes", lens[s]);
        cr_assert_eq (count, 5);
        tl_table_destroy (&copy);
        tl_table_destroy (&table);
        msgpack_sbuffer_destroy (&buf);
        free (key);
    }
}

Test (proto, map_merge_adds_accepts_str_keys_and_saturates)
{
    tl_table_t *table = tl_table_new (0);
    cr_assert_eq (tl_table_add (table, "a", 1, 10), 0);
    cr_assert_eq (tl_table_add (table, "m", 1, UINT64_MAX - 1), 0);
    //  {str "a": 5, bin "b": 6, str "a": 1 (again), str8 "c": int8 2}
    static const char frame[] = "\x84\xa1\x61\x05\xc4\x01\x62\x06\xa1\x61\x01\xd9\x01\x63\xd0\x02";
    uint64_t entries = 0;
    cr_assert_eq (s_merge_exact (frame, sizeof frame - 1, table, &entries), 0);
    cr_assert_eq (entries, 4);
    uint64_t count;
    cr_assert (tl_table_get (table, "a", 1, &count));
    cr_assert_eq (count, 16);
    cr_assert (tl_table_get (table, "b", 1, &count));
    cr_assert_eq (count, 6);
    cr_assert (tl_table_get (table, "c", 1, &count));
    cr_assert_eq (count, 2);
    cr_assert_eq (tl_table_size (table), 4);

    //  {"m": 2} takes m past UINT64_MAX: saturates, returns 1, the other entry merges.
    static const char over[] = "\x82\xa1m\x02\xa1z\x01";
    cr_assert_eq (s_merge_exact (over, sizeof over - 1, table, &entries), 1);
    cr_assert (tl_table_get (table, "m", 1, &count));
    cr_assert_eq (count, UINT64_MAX);
    cr_assert (tl_table_get (table, "z", 1, &count));
    cr_assert_eq (count, 1);

    //  The empty map merges nothing and succeeds.
    cr_assert_eq (s_merge_exact ("\x80", 1, table, &entries), 0);
    cr_assert_eq (entries, 0);
    cr_assert_eq (tl_table_size (table), 5);
    tl_table_destroy (&table);
}

//  Valid entries first, then something wrong: the whole frame is refused and the
//  table is exactly as before.
Test (proto, map_merge_bad_frame_changes_nothing)
{
    //  Each is a map whose first two entries ("a": 5, "b": 6) are valid.
    static const struct {
        const char *what;
        const char *tail;
        size_t tail_size;
        uint8_t claimed;  //  entries the fixmap header claims
    } bad[] = {
        {"int key", BYTES ("\x07\x01"), 3},
        {"negative value", BYTES ("\xa1\x63\xff"), 3},
        {"int64 negative value", BYTES ("\xa1\x63\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), 3},
        {"float value", BYTES ("\xa1\x63\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"), 3},
        {"nil value", BYTES ("\xa1\x63\xc0"), 3},
        {"bool value", BYTES ("\xa1\x63\xc3"), 3},
        {"str value", BYTES ("\xa1\x63\xa1\x31"), 3},
        {"map value", BYTES ("\xa1\x63\x80"), 3},
        {"array key", BYTES ("\x91\x01\x01"), 3},
        {"nil key", BYTES ("\xc0\x01"), 3},
        {"ext key", BYTES ("\xd4\x01\x00\x01"), 3},
        {"fixext value", BYTES ("\xa1\x63\xd4\x01\x00"), 3},
        {"0xc1 key", BYTES ("\xc1\x01"), 3},
        {"missing entry", BYTES (""), 3},
        {"missing value", BYTES ("\xa1\x63"), 3},
        {"key cut short", BYTES ("\xa4\x63\x01"), 3},
        {"bin32 key claims 2^32-1", BYTES ("\xc6\xff\xff\xff\xff\x63\x01"), 3},
        {"trailing byte", BYTES ("\x00"), 2},
        {"trailing entry", BYTES ("\xa1\x63\x01"), 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_table_t *table = tl_table_new (0);
        cr_assert_eq (tl_table_add (table, "a", 1, 10), 0);
        cr_assert_eq (tl_table_add (table, "x", 1, 1), 0);
        char frame[64];
        frame[0] = (char)(0x80 | bad[i].claimed);
        memcpy (frame + 1, "\xa1\x61\x05\xa1\x62\x06", 6);
        memcpy (frame + 7, bad[i].tail, bad[i].tail_size);
        uint64_t entries = 99;
        cr_assert_eq (s_merge_exact (frame, 7 + bad[i].tail_size, table, &entries), -1, "%s",
                      bad[i].what);
        cr_assert_eq (entries, 0);
        uint64_t count;
        cr_assert_eq (tl_table_size (table), 2, "%s", bad[i].what);
        cr_assert (tl_table_get (table, "a", 1, &count));
        cr_assert_eq (count, 10, "%s", bad[i].what);
        cr_assert_not (tl_table_get (table, "b", 1, &count), "%s", bad[i].what);
        cr_assert_eq (tl_table_sum (table), 11);
        tl_table_destroy (&table);
    }

    //  A key one byte over TL_KEY_MAX, after a valid entry.
    size_t size = 1 + 3 + 5 + TL_KEY_MAX + 1 + 1;
    char *frame = malloc (size);
    memcpy (frame, "\x82\xa1\x61\x05\xc6", 5);
    uint32_t len = TL_KEY_MAX + 1;
    for (int i = 0; i < 4; i++)
        frame[5 + i] = (char)(len >> (24 - 8 * i));
    memset (frame + 9, 'k', len);
    frame[size - 1] = 1;
    tl_table_t *table = tl_table_new (0);
    cr_assert_eq (tl_map_merge (frame, size, table, NULL), -1);
    cr_assert_eq (tl_table_size (table), 0);
    //  The same with TL_KEY_MAX bytes is fine.
    frame[8] = (char)(len - 1);
    frame[size - 2] = 1;
    cr_assert_eq (tl_map_merge (frame, size - 1, table, NULL), 0);
    cr_assert_eq (tl_table_size (table), 2);
    tl_table_destroy (&table);
    free (frame);
}

Test (proto, map_merge_truncated_at_every_offset_changes_nothing)
{
    tl_table_t *source = s_special_table ();
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_map_encode (source, &buf), 0);
    tl_table_t *table = tl_table_new (0);
    cr_assert_eq (tl_table_add (table, "the", 3, 1), 0);
    for (size_t len = 0; len < buf.size; len++) {
        cr_assert_eq (s_merge_exact (buf.data, len, table, NULL), -1, "cut at %zu", len);
        cr_assert_eq (tl_table_size (table), 1);
        cr_assert_eq (tl_table_sum (table), 1);
    }
    //  Not a map at all
    static const char *others[] = {"\x90", "\xc0", "\x01", "\xa1\x61", "\xc1"};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq (
            s_merge_exact (others[i], strlen (others[i]) ? strlen (others[i]) : 1, table, NULL),
            -1);
    cr_assert_eq (s_merge_exact ("", 0, table, NULL), -1);
    cr_assert_eq (tl_table_size (table), 1);
    tl_table_destroy (&table);
    tl_table_destroy (&source);
    msgpack_sbuffer_destroy (&buf);
}

//  ---------------------------------------------------------------------------------
//  Sink shards (version 4): JOB's shard and shards, CHUNK's shards and seed, PARTIAL's
//  shard, the job's seed and the key split.

//  Encodes m, decodes the frame back and checks it is m; returns the frame's elements as
//  msgpack-c reads them, in *result (destroy it).
static void s_round_trip (const tl_msg_t *m, msgpack_unpacked *result)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_msg_encode (m, &buf), 0, "%s", tl_cmd_name (m->cmd));
    tl_msg_t msg;
    int rc;
    void *frame = s_decode_kept (m->cmd, buf.data, buf.size, &msg, &rc);
    cr_assert_eq (rc, 0, "%s", tl_cmd_name (m->cmd));
    cr_assert (s_msg_equal (m, &msg), "%s", tl_cmd_name (m->cmd));
    tl_msg_reset (&msg);
    free (frame);
    msgpack_unpacked_init (result);
    size_t off = 0;
    cr_assert_eq (msgpack_unpack_next (result, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq (result->data.type, MSGPACK_OBJECT_ARRAY);
    msgpack_sbuffer_destroy (&buf);
}

//  Element i of an unpacked frame as a uint64 (asserted to be one).
static uint64_t s_element (const msgpack_unpacked *result, uint32_t i)
{
    cr_assert_lt (i, result->data.via.array.size);
    const msgpack_object *o = &result->data.via.array.ptr[i];
    cr_assert_eq (o->type, MSGPACK_OBJECT_POSITIVE_INTEGER, "element %u", i);
    return o->via.u64;
}

//  Every shard count and shards at its ends and middle round-trip, at the end of each
//  frame: JOB [.., files, shard, shards], CHUNK [.., skip_pos, shards, seed], PARTIAL
//  [.., bad_offsets, shard].
Test (proto, shard_fields_round_trip_at_the_end_of_each_frame)
{
    static tl_str_t files[] = {{"a.tsv", 5}, {"b.tsv", 5}};
    static const uint64_t seeds[] = {0, 1, 0x9373dd55bbe9787cull, UINT64_MAX, 1ull << 32};
    for (uint32_t shards = 1; shards <= TL_SHARDS_MAX; shards++) {
        uint32_t picks[] = {0, shards / 2, shards - 1};
        for (size_t p = 0; p < 3; p++) {
            tl_msg_t m = {.cmd = TL_CMD_JOB, .job = shards};
            s_secret (m.secret, (uint8_t)shards);
            m.u.job = (tl_job_body_t){TL_PROTO_VERSION, p == 1, 10, 2, files, picks[p], shards};
            msgpack_unpacked result;
            s_round_trip (&m, &result);
            cr_assert_eq (result.data.via.array.size, 8);
            cr_assert_eq (s_element (&result, 6), picks[p], "shard %u of %u", picks[p], shards);
            cr_assert_eq (s_element (&result, 7), shards);
            msgpack_unpacked_destroy (&result);
        }
        uint64_t seed = seeds[shards % (sizeof seeds / sizeof seeds[0])];
        tl_msg_t c = {.cmd = TL_CMD_CHUNK, .job = 3};
        c.u.chunk = (tl_chunk_body_t){shards, 9, 1, 2, TL_FORMAT_TEXT, {1, 2, true}, shards, seed};
        msgpack_unpacked result;
        s_round_trip (&c, &result);
        cr_assert_eq (result.data.via.array.size, 11);
        cr_assert_eq (result.data.via.array.ptr[8].type, MSGPACK_OBJECT_BOOLEAN);
        cr_assert_eq (s_element (&result, 9), shards);
        cr_assert_eq (s_element (&result, 10), seed);
        msgpack_unpacked_destroy (&result);
    }
    for (uint32_t shard = 0; shard < TL_SHARDS_MAX; shard++) {
        tl_msg_t m = {.cmd = TL_CMD_PARTIAL, .job = 5};
        m.u.partial = (tl_partial_body_t){shard, 1, 2, 3, 4, 5, 6, shard % 5, {7, 8, 9, 10}, shard};
        msgpack_unpacked result;
        s_round_trip (&m, &result);
        cr_assert_eq (result.data.via.array.size, 10);
        cr_assert_eq (result.data.via.array.ptr[8].type, MSGPACK_OBJECT_ARRAY);
        cr_assert_eq (s_element (&result, 9), shard);
        msgpack_unpacked_destroy (&result);
    }
}

//  Packs JOB [7, 4, secret, false, 0, [], shard, shards], CHUNK [7, 3, 0, 1, 0, "text",
//  0, 2^32-1, false, shards, seed] or PARTIAL [7, 3, 0, 1, 0, 0, 0, 0, [], shard].
static void s_pack_sharded (msgpack_sbuffer *buf, tl_cmd_t cmd, uint64_t a, uint64_t b)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, s_layouts[cmd == TL_CMD_JOB ? 0 : cmd == TL_CMD_CHUNK ? 2 : 3].count);
    msgpack_pack_uint64 (&pk, 7);
    if (cmd == TL_CMD_JOB) {
        msgpack_pack_uint64 (&pk, TL_PROTO_VERSION);
        s_pack_good (&pk, F_SECRET);
        msgpack_pack_false (&pk);
        msgpack_pack_uint64 (&pk, 0);
        msgpack_pack_array (&pk, 0);
        msgpack_pack_uint64 (&pk, a);
        msgpack_pack_uint64 (&pk, b);
    } else if (cmd == TL_CMD_CHUNK) {
        uint64_t head[] = {3, 0, 1, 0};
        for (size_t i = 0; i < 4; i++)
            msgpack_pack_uint64 (&pk, head[i]);
        s_pack_text (&pk, "text", 4);
        msgpack_pack_uint64 (&pk, 0);
        msgpack_pack_uint64 (&pk, UINT32_MAX);
        msgpack_pack_false (&pk);
        msgpack_pack_uint64 (&pk, a);
        msgpack_pack_uint64 (&pk, b);
    } else {
        uint64_t head[] = {3, 0, 1, 0, 0, 0, 0};
        for (size_t i = 0; i < 7; i++)
            msgpack_pack_uint64 (&pk, head[i]);
        msgpack_pack_array (&pk, 0);
        msgpack_pack_uint64 (&pk, a);
    }
}

//  A JOB's shard count is 1 .. TL_SHARDS_MAX and its shard below it; a CHUNK's count
//  likewise, with any uint64 seed; a PARTIAL's shard is below TL_SHARDS_MAX. Anything
//  else is refused, and the message is left zero.
Test (proto, shard_fields_out_of_range_are_refused)
{
    static const struct {
        tl_cmd_t cmd;
        uint64_t a, b;  //  JOB: shard, shards; CHUNK: shards, seed; PARTIAL: shard
        int rc;
    } cases[] = {
        {TL_CMD_JOB, 0, 1, 0},
        {TL_CMD_JOB, 0, TL_SHARDS_MAX, 0},
        {TL_CMD_JOB, TL_SHARDS_MAX - 1, TL_SHARDS_MAX, 0},
        {TL_CMD_JOB, 2, 3, 0},
        {TL_CMD_JOB, 0, 0, -1},
        {TL_CMD_JOB, 1, 0, -1},
        {TL_CMD_JOB, 1, 1, -1},
        {TL_CMD_JOB, 3, 3, -1},
        {TL_CMD_JOB, 4, 3, -1},
        {TL_CMD_JOB, TL_SHARDS_MAX, TL_SHARDS_MAX, -1},
        {TL_CMD_JOB, 0, TL_SHARDS_MAX + 1, -1},
        {TL_CMD_JOB, 64, TL_SHARDS_MAX + 1, -1},
        {TL_CMD_JOB, 0, UINT32_MAX, -1},
        {TL_CMD_JOB, 0, (uint64_t)UINT32_MAX + 1 + 2, -1},  //  2 in 32 bits: no wrap-around
        {TL_CMD_JOB, (uint64_t)UINT32_MAX + 1, 2, -1},
        {TL_CMD_JOB, UINT32_MAX, TL_SHARDS_MAX, -1},
        {TL_CMD_CHUNK, 1, 0, 0},
        {TL_CMD_CHUNK, TL_SHARDS_MAX, UINT64_MAX, 0},
        {TL_CMD_CHUNK, 2, 1ull << 63, 0},
        {TL_CMD_CHUNK, 0, 0, -1},
        {TL_CMD_CHUNK, TL_SHARDS_MAX + 1, 0, -1},
        {TL_CMD_CHUNK, UINT32_MAX, 0, -1},
        {TL_CMD_CHUNK, (uint64_t)UINT32_MAX + 2, 0, -1},
        {TL_CMD_PARTIAL, 0, 0, 0},
        {TL_CMD_PARTIAL, TL_SHARDS_MAX - 1, 0, 0},
        {TL_CMD_PARTIAL, TL_SHARDS_MAX, 0, -1},
        {TL_CMD_PARTIAL, TL_SHARDS_MAX + 1, 0, -1},
        {TL_CMD_PARTIAL, UINT32_MAX, 0, -1},
        {TL_CMD_PARTIAL, (uint64_t)UINT32_MAX + 1, 0, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_pack_sharded (&buf, cases[i].cmd, cases[i].a, cases[i].b);
        tl_msg_t msg;
        int rc;
        void *frame = s_decode_kept (cases[i].cmd, buf.data, buf.size, &msg, &rc);
        cr_assert_eq (rc, cases[i].rc, "case %zu: %s %llu %llu", i, tl_cmd_name (cases[i].cmd),
                      (unsigned long long)cases[i].a, (unsigned long long)cases[i].b);
        if (rc == -1) cr_assert (s_msg_is_zero (&msg), "case %zu", i);
        if (rc == 0 && cases[i].cmd == TL_CMD_JOB)
            cr_assert (msg.u.job.shard == cases[i].a && msg.u.job.shards == cases[i].b);
        if (rc == 0 && cases[i].cmd == TL_CMD_CHUNK)
            cr_assert (msg.u.chunk.shards == cases[i].a && msg.u.chunk.seed == cases[i].b);
        if (rc == 0 && cases[i].cmd == TL_CMD_PARTIAL)
            cr_assert_eq (msg.u.partial.shard, cases[i].a);
        tl_msg_reset (&msg);
        free (frame);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  Known answers: the job's seed is the low 64 bits of XXH3_128bits (secret || job LE64 ||
//  2^64-1 LE64), the tag of chunk id 2^64-1, which no chunk has. Computed with
//  python-xxhash 4.1.0 (xxHash 0.8.4): xxhash.xxh3_128_intdigest(secret +
//  struct.pack('<QQ', job, 2**64 - 1)) & (2**64 - 1).
Test (proto, shard_seed_known_answers)
{
    static const struct {
        const char *secret;
        uint64_t job, seed;
    } known[] = {
        {"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 0, 0x0cdbe99d3f9a1788ull},
        {"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 1,
         0x9b5956d98ad04fa8ull},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", UINT64_MAX,
         0xfe0382022a0ed8a9ull},
        {"\x9c\x41\x0e\x7b\xd2\x55\xa8\x13\x6f\xe0\x3b\x92\xc7\x18\x4d\xa6", 7,
         0x9373dd55bbe9787cull},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const uint8_t *secret = (const uint8_t *)known[i].secret;
        uint64_t seed = tl_shard_seed (secret, known[i].job);
        cr_assert_eq (seed, known[i].seed, "known answer %zu: %016llx", i,
                      (unsigned long long)seed);
        cr_assert_eq (seed, tl_chunk_tag (secret, known[i].job, UINT64_MAX));
    }
}

//  The seed depends on the secret and on the job, and is no chunk's tag.
Test (proto, shard_seed_depends_on_secret_and_job)
{
    uint8_t secret[TL_SECRET_SIZE], other[TL_SECRET_SIZE];
    s_random_secret (secret, 77);
    uint64_t seed = tl_shard_seed (secret, 5);
    cr_assert_eq (tl_shard_seed (secret, 5), seed);
    for (size_t bit = 0; bit < 8 * TL_SECRET_SIZE; bit++) {
        memcpy (other, secret, TL_SECRET_SIZE);
        other[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_neq (tl_shard_seed (other, 5), seed, "secret bit %zu", bit);
    }
    for (int bit = 0; bit < 64; bit++)
        cr_assert_neq (tl_shard_seed (secret, 5 ^ (1ull << bit)), seed, "job bit %d", bit);
    for (uint64_t chunk = 0; chunk < 4096; chunk++) {
        cr_assert_neq (tl_chunk_tag (secret, 5, chunk), seed, "chunk %llu",
                       (unsigned long long)chunk);
        cr_assert_neq (tl_chunk_tag (secret, 5, TL_CHUNK_ID_MAX - 1 - chunk), seed);
    }
}

//  tl_shard_counter: chunk % shards, the shard that counts a chunk's bytes and lines.
Test (proto, shard_counter_is_chunk_modulo_shards)
{
    for (uint32_t shards = 1; shards <= TL_SHARDS_MAX; shards++)
        for (uint64_t chunk = 0; chunk < 200; chunk++) {
            cr_assert_eq (tl_shard_counter (chunk, shards), chunk % shards);
            uint64_t big = TL_CHUNK_ID_MAX - 1 - chunk;
            cr_assert_eq (tl_shard_counter (big, shards), big % shards);
            cr_assert_lt (tl_shard_counter (big, shards), shards);
        }
    cr_assert_eq (tl_shard_counter (3, 2), 1);
    cr_assert_eq (tl_shard_counter (TL_CHUNK_ID_MAX - 1, 1), 0);
    //  Consecutive chunks take turns: every shard counts some of any 64 in a row.
    uint64_t seen = 0;
    for (uint64_t chunk = 1000; chunk < 1000 + TL_SHARDS_MAX; chunk++)
        seen |= 1ull << tl_shard_counter (chunk, TL_SHARDS_MAX);
    cr_assert_eq (seen, UINT64_MAX);
}

//  Known answers of the key split: xxhash.xxh3_64_intdigest(key, seed) with
//  python-xxhash 4.1.0 (xxHash 0.8.4), and that value % 2, % 3, % 7, % 64. The keys'
//  lengths take each of XXH3's paths (0, 1-3, 4-8, 9-16, 17-128, 129-240, over 240 bytes).
Test (proto, shard_of_known_answers)
{
    static char k100[100], k200[200], k1280[1280];
    for (size_t i = 0; i < sizeof k100; i++)
        k100[i] = (char)i;
    for (size_t i = 0; i < sizeof k200; i++)
        k200[i] = (char)i;
    for (size_t i = 0; i < sizeof k1280; i++)
        k1280[i] = (char)(i % 256);  //  bytes(range(256)) * 5
    static const struct {
        const char *key;
        size_t len;
        uint64_t seed, hash;
        uint32_t mod2, mod3, mod7, mod64;
    } known[] = {
        {"the", 3, 0, 0xcb1283631cf33d7dull, 1, 2, 5, 61},
        {"", 0, 0x9373dd55bbe9787cull, 0x00782c67a384eecaull, 0, 0, 3, 10},
        {"caf\xc3\xa9", 5, UINT64_MAX, 0x04048af3f6aed65full, 1, 2, 6, 31},
        {"word_NOUN", 9, 0x9373dd55bbe9787cull, 0x2170d72598562771ull, 1, 1, 1, 49},
        {"a\0b", 3, 1, 0x8ebed4bebe43fbe0ull, 0, 2, 1, 32},
        {k100, sizeof k100, 5, 0x1cea268c90cb1b3full, 1, 1, 2, 63},
        {k200, sizeof k200, 1ull << 63, 0xc7a7a8dd6bca19e5ull, 1, 1, 6, 37},
        {k1280, sizeof k1280, 0x0123456789abcdefull, 0xa8422ce5c90ebbe8ull, 0, 1, 4, 40},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const void *key = known[i].key;
        size_t len = known[i].len;
        uint64_t seed = known[i].seed;
        cr_assert_eq (XXH3_64bits_withSeed (key, len, seed), known[i].hash, "known answer %zu", i);
        cr_assert_eq (tl_shard_of (key, len, seed, 1), 0, "known answer %zu", i);
        cr_assert_eq (tl_shard_of (key, len, seed, 2), known[i].mod2, "known answer %zu", i);
        cr_assert_eq (tl_shard_of (key, len, seed, 3), known[i].mod3, "known answer %zu", i);
        cr_assert_eq (tl_shard_of (key, len, seed, 7), known[i].mod7, "known answer %zu", i);
        cr_assert_eq (tl_shard_of (key, len, seed, 64), known[i].mod64, "known answer %zu", i);
    }
}

//  tl_shard_of equals XXH3_64bits_withSeed (key, len, seed) % shards, computed here, for
//  keys of every length up to 300 bytes and random bytes, under many seeds, for every
//  shard count; from a misaligned copy of the key too.
Test (proto, shard_of_is_xxh3_with_seed_modulo_shards)
{
    uint8_t key[301 + 1];
    size_t checked = 0;
    for (size_t len = 0; len <= 300; len++) {
        for (int round = 0; round < 4; round++) {
            for (size_t i = 0; i < len; i++)
                key[1 + i] = (uint8_t)s_mix64 (len * 1000 + (size_t)round * 7 + i);
            uint64_t seed = round == 0 ? 0 : round == 1 ? UINT64_MAX : s_mix64 (len + round);
            uint64_t hash = XXH3_64bits_withSeed (key + 1, len, seed);
            for (uint32_t shards = 1; shards <= TL_SHARDS_MAX; shards++) {
                uint32_t shard = tl_shard_of (key + 1, len, seed, shards);
                cr_assert_eq (shard, (uint32_t)(hash % shards), "len %zu seed %016llx shards %u",
                              len, (unsigned long long)seed, shards);
                checked++;
            }
            uint8_t copy[301];
            memcpy (copy, key + 1, len);
            cr_assert_eq (tl_shard_of (copy, len, seed, 7), hash % 7);
        }
    }
    cr_assert_eq (checked, 301 * 4 * TL_SHARDS_MAX);
}

//  Keys spread evenly over the shards, and another seed is another split.
Test (proto, shard_of_spreads_keys_and_depends_on_the_seed)
{
    enum { KEYS = 1 << 16 };
    static const uint32_t counts[] = {2, 3, 4, 64};
    uint64_t seed = 0x9373dd55bbe9787cull, other = seed ^ 1;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t shards = counts[c];
        uint32_t per[TL_SHARDS_MAX] = {0};
        size_t moved = 0;
        for (uint32_t k = 0; k < KEYS; k++) {
            char key[16];
            int len = snprintf (key, sizeof key, "k%u", k);
            uint32_t shard = tl_shard_of (key, (size_t)len, seed, shards);
            cr_assert_lt (shard, shards);
            per[shard]++;
            moved += tl_shard_of (key, (size_t)len, other, shards) != shard;
        }
        //  Each gets KEYS / shards, give or take 7 standard deviations.
        double want = (double)KEYS / shards;
        double sd = sqrt (want * (1.0 - 1.0 / shards));
        for (uint32_t s = 0; s < shards; s++)
            cr_assert (per[s] > want - 7 * sd && per[s] < want + 7 * sd,
                       "%u shards: %u has %u keys", shards, s, per[s]);
        //  Another seed moves the share of keys that a random split moves: 1 - 1/shards.
        double moved_want = KEYS * (1.0 - 1.0 / shards);
        cr_assert (moved > moved_want - 7 * sqrt (moved_want) &&
                       moved < moved_want + 7 * sqrt (moved_want),
                   "%u shards: %zu keys moved with the seed", shards, moved);
    }
    //  One shard: always 0, whatever the key and the seed
    for (uint32_t k = 0; k < 1000; k++)
        cr_assert_eq (tl_shard_of (&k, sizeof k, s_mix64 (k), 1), 0);
}

//  Splits table shards ways with seed into bufs (initialised here, each first holding
//  prefix); checks every part: a map32 header (one shard: tl_map_encode's bytes) whose
//  count is its entries, each entry in the shard tl_shard_of names, every entry of table
//  in exactly one part with its count; the parts merge back into table.
static void s_check_split (tl_table_t *table, uint64_t seed, uint32_t shards, const char *prefix)
{
    msgpack_sbuffer bufs[TL_SHARDS_MAX];
    size_t start = strlen (prefix);
    for (uint32_t i = 0; i < shards; i++) {
        msgpack_sbuffer_init (&bufs[i]);
        if (start) msgpack_sbuffer_write (&bufs[i], prefix, start);  //  (memcpy to NULL)
    }
    cr_assert_eq (tl_map_encode_split (table, seed, shards, bufs), 0);
    if (shards == 1) {
        msgpack_sbuffer whole;
        msgpack_sbuffer_init (&whole);
        cr_assert_eq (tl_map_encode (table, &whole), 0);
        cr_assert_eq (bufs[0].size, start + whole.size);
        cr_assert_arr_eq (bufs[0].data + start, whole.data, whole.size,
                          "one shard: not tl_map_encode's bytes");
        msgpack_sbuffer_destroy (&whole);
    }
    tl_table_t *merged = tl_table_new (0);
    cr_assert_not_null (merged);
    uint64_t total_entries = 0;
    for (uint32_t i = 0; i < shards; i++) {
        cr_assert_geq (bufs[i].size, start);
        cr_assert_arr_eq (bufs[i].data, prefix, start, "part %u: the prefix changed", i);
        const char *part = bufs[i].data + start;
        size_t size = bufs[i].size - start;
        cr_assert_eq (tl_msgpack_check (part, size), 0, "part %u", i);
        //  Every entry of this part belongs to shard i.
        msgpack_unpacked result;
        msgpack_unpacked_init (&result);
        size_t off = 0;
        cr_assert_eq (msgpack_unpack_next (&result, part, size, &off), MSGPACK_UNPACK_SUCCESS);
        cr_assert_eq (off, size);
        cr_assert_eq (result.data.type, MSGPACK_OBJECT_MAP);
        const msgpack_object_map *map = &result.data.via.map;
        if (shards > 1) {
            cr_assert_eq ((uint8_t)part[0], 0xdf, "part %u: not a map32 header", i);
            uint32_t count = (uint32_t)((uint8_t)part[1] << 24 | (uint8_t)part[2] << 16 |
                                        (uint8_t)part[3] << 8 | (uint8_t)part[4]);
            cr_assert_eq (count, map->size);
        }
        for (uint32_t e = 0; e < map->size; e++) {
            cr_assert_eq (map->ptr[e].key.type, MSGPACK_OBJECT_BIN);
            cr_assert_eq (map->ptr[e].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            const msgpack_object_bin *key = &map->ptr[e].key.via.bin;
            cr_assert_eq (tl_shard_of (key->ptr, key->size, seed, shards), i,
                          "a key of shard %u in part %u",
                          tl_shard_of (key->ptr, key->size, seed, shards), i);
            uint64_t count;
            cr_assert (tl_table_get (table, key->ptr, key->size, &count),
                       "part %u: a key not in the table", i);
            cr_assert_eq (count, map->ptr[e].val.via.u64);
        }
        uint32_t part_entries = map->size;
        msgpack_unpacked_destroy (&result);
        //  And the sink's decoder takes it.
        uint64_t entries = 0;
        cr_assert_eq (s_merge_exact (part, size, merged, &entries), 0, "part %u", i);
        cr_assert_eq (entries, part_entries);
        total_entries += entries;
        msgpack_sbuffer_destroy (&bufs[i]);
    }
    //  As many entries as keys, and every key back with its count: each in exactly one part.
    cr_assert_eq (total_entries, tl_table_size (table));
    cr_assert (s_tables_equal (table, merged));
    tl_table_destroy (&merged);
}

Test (proto, map_encode_split_puts_each_entry_in_its_shard_once)
{
    static const uint32_t counts[] = {1, 2, 3, 7, 16, TL_SHARDS_MAX};
    static const uint64_t seeds[] = {0, 0x9373dd55bbe9787cull, UINT64_MAX};
    tl_table_t *special = s_special_table ();
    tl_table_t *many = tl_table_new (0);
    for (uint32_t k = 0; k < 5000; k++) {
        char key[16];
        int len = snprintf (key, sizeof key, "key%u", k);
        cr_assert_eq (tl_table_add (many, key, (size_t)len, k * 7919ull + 1), 0);
    }
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
        for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
            s_check_split (special, seeds[s], counts[c], "");
            s_check_split (many, seeds[s], counts[c], "");
        }
    //  Appended after what the buffers hold
    s_check_split (many, 42, 5, "xyz");
    s_check_split (special, 42, 1, "prefix");
    //  A map of more than 65535 entries (map32 for one sink too), split 3 ways
    tl_table_t *big = tl_table_new (70000);
    for (uint32_t k = 0; k < 70000; k++)
        cr_assert_eq (tl_table_add (big, &k, sizeof k, 1), 0);
    s_check_split (big, 9, 3, "");
    s_check_split (big, 9, 1, "");
    tl_table_destroy (&big);
    tl_table_destroy (&many);
    tl_table_destroy (&special);
}

//  An empty table gives shards empty maps: 0x80 for one sink, a map32 header of count 0
//  for each of several shards.
Test (proto, map_encode_split_of_an_empty_table_gives_empty_maps)
{
    tl_table_t *table = tl_table_new (0);
    static const uint32_t counts[] = {1, 2, 5, TL_SHARDS_MAX};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t shards = counts[c];
        msgpack_sbuffer bufs[TL_SHARDS_MAX];
        for (uint32_t i = 0; i < shards; i++)
            msgpack_sbuffer_init (&bufs[i]);
        cr_assert_eq (tl_map_encode_split (table, 1, shards, bufs), 0);
        for (uint32_t i = 0; i < shards; i++) {
            if (shards == 1) {
                cr_assert_eq (bufs[i].size, 1);
                cr_assert_eq ((uint8_t)bufs[i].data[0], 0x80);
            } else {
                cr_assert_eq (bufs[i].size, 5, "%u shards, part %u", shards, i);
                cr_assert_arr_eq (bufs[i].data, "\xdf\x00\x00\x00\x00", 5);
            }
            tl_table_t *merged = tl_table_new (0);
            uint64_t entries = 99;
            cr_assert_eq (s_merge_exact (bufs[i].data, bufs[i].size, merged, &entries), 0);
            cr_assert_eq (entries, 0);
            cr_assert_eq (tl_table_size (merged), 0);
            tl_table_destroy (&merged);
            msgpack_sbuffer_destroy (&bufs[i]);
        }
    }
    //  Keys all in one shard leave the others empty: still a map each.
    uint64_t seed = 0x9373dd55bbe9787cull;
    cr_assert_eq (tl_table_add (table, "cat", 3, 300), 0);
    cr_assert_eq (tl_shard_of ("cat", 3, seed, 4), 1, "the known answer changed");
    msgpack_sbuffer bufs[4];
    for (uint32_t i = 0; i < 4; i++)
        msgpack_sbuffer_init (&bufs[i]);
    cr_assert_eq (tl_map_encode_split (table, seed, 4, bufs), 0);
    for (uint32_t i = 0; i < 4; i++) {
        if (i == 1)
            cr_assert_arr_eq (bufs[i].data,
                              "\xdf\x00\x00\x00\x01\xc4\x03"
                              "cat\xcd\x01\x2c",
                              13);
        else
            cr_assert_arr_eq (bufs[i].data, "\xdf\x00\x00\x00\x00", 5);
        cr_assert_eq (bufs[i].size, i == 1 ? 13u : 5u);
        msgpack_sbuffer_destroy (&bufs[i]);
    }
    tl_table_destroy (&table);
}

//  ---------------------------------------------------------------------------------
//  tl_msgpack_check

static void s_nest (msgpack_sbuffer *buf, int depth, bool maps)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    for (int i = 0; i < depth; i++) {
        if (maps) {
            msgpack_pack_map (&pk, 1);
            msgpack_pack_uint64 (&pk, i);
        } else
            msgpack_pack_array (&pk, 1);
    }
    msgpack_pack_nil (&pk);
}

//  Checks data both ways: tl_msgpack_check's verdict, and for what it accepts, that
//  msgpack-c unpacks exactly one object of exactly the frame's size.
static void s_check (const void *data, size_t size, int expected, const char *what)
{
    void *copy = s_exact (data, size);
    cr_assert_eq (tl_msgpack_check (copy, size), expected, "%s", what);
    if (expected == 0) {
        msgpack_unpacked result;
        msgpack_unpacked_init (&result);
        size_t off = 0;
        cr_assert_eq (msgpack_unpack_next (&result, copy, size, &off), MSGPACK_UNPACK_SUCCESS, "%s",
                      what);
        cr_assert_eq (off, size, "%s", what);
        msgpack_unpacked_destroy (&result);
    }
    free (copy);
}

Test (proto, msgpack_check_accepts_every_type)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t size;
    } good[] = {
        {"nil", BYTES ("\xc0")},
        {"false", BYTES ("\xc2")},
        {"true", BYTES ("\xc3")},
        {"fixint", BYTES ("\x7f")},
        {"negative fixint", BYTES ("\xe0")},
        {"uint8", BYTES ("\xcc\xff")},
        {"uint16", BYTES ("\xcd\xff\xff")},
        {"uint32", BYTES ("\xce\xff\xff\xff\xff")},
        {"uint64", BYTES ("\xcf\xff\xff\xff\xff\xff\xff\xff\xff")},
        {"int8", BYTES ("\xd0\x80")},
        {"int16", BYTES ("\xd1\x80\x00")},
        {"int32", BYTES ("\xd2\x80\x00\x00\x00")},
        {"int64", BYTES ("\xd3\x80\x00\x00\x00\x00\x00\x00\x00")},
        {"float32", BYTES ("\xca\x3f\x80\x00\x00")},
        {"float64", BYTES ("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00")},
        {"fixstr", BYTES ("\xa3"
                          "abc")},
        {"empty fixstr", BYTES ("\xa0")},
        {"str8", BYTES ("\xd9\x02"
                        "ab")},
        {"str16", BYTES ("\xda\x00\x02"
                         "ab")},
        {"str32", BYTES ("\xdb\x00\x00\x00\x02"
                         "ab")},
        {"bin8", BYTES ("\xc4\x01\x00")},
        {"bin16", BYTES ("\xc5\x00\x01\x00")},
        {"bin32", BYTES ("\xc6\x00\x00\x00\x01\x00")},
        {"fixext1", BYTES ("\xd4\x01\x00")},
        {"fixext2", BYTES ("\xd5\x01\x00\x00")},
        {"fixext4", BYTES ("\xd6\xff\x00\x00\x00\x01")},
        {"fixext8", BYTES ("\xd7\x01\x00\x00\x00\x00\x00\x00\x00\x00")},
        {"fixext16",
         BYTES ("\xd8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
        {"ext8", BYTES ("\xc7\x02\x01\x00\x00")},
        {"ext16", BYTES ("\xc8\x00\x01\x01\x00")},
        {"ext32", BYTES ("\xc9\x00\x00\x00\x00\x01")},
        {"fixarray", BYTES ("\x92\x01\xa1x")},
        {"array16", BYTES ("\xdc\x00\x02\x01\x02")},
        {"array32", BYTES ("\xdd\x00\x00\x00\x01\xc0")},
        {"fixmap", BYTES ("\x81\xa1k\x01")},
        {"map16", BYTES ("\xde\x00\x01\x01\x02")},
        {"map32", BYTES ("\xdf\x00\x00\x00\x01\x01\x02")},
        {"empty containers", BYTES ("\x93\x90\x80\xdc\x00\x00")},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        s_check (good[i].bytes, good[i].size, 0, good[i].what);
}

Test (proto, msgpack_check_refuses_hostile_frames)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t size;
    } bad[] = {
        {"empty frame", BYTES ("")},
        {"0xc1", BYTES ("\xc1")},
        {"two objects", BYTES ("\x01\x02")},
        {"trailing nil", BYTES ("\x90\xc0")},
        {"uint64 cut", BYTES ("\xcf\xff\xff")},
        {"float64 cut", BYTES ("\xcb\x3f")},
        {"fixstr cut", BYTES ("\xa3"
                              "ab")},
        {"str8 claims more", BYTES ("\xd9\x05"
                                    "ab")},
        {"str16 claims more", BYTES ("\xda\xff\xff"
                                     "ab")},
        {"str32 claims 2^32-1", BYTES ("\xdb\xff\xff\xff\xff"
                                       "ab")},
        {"bin32 claims 2^32-1", BYTES ("\xc6\xff\xff\xff\xff"
                                       "ab")},
        {"ext type missing", BYTES ("\xc7\x00")},
        {"ext32 claims 2^32-1", BYTES ("\xc9\xff\xff\xff\xff\x01\x00")},
        {"fixext16 cut", BYTES ("\xd8\x01\x00\x00")},
        {"fixarray claims more", BYTES ("\x93\x01\x02")},
        {"array32 claims 2^32-1", BYTES ("\xdd\xff\xff\xff\xff\x01\x02\x03\x04\x05")},
        {"map32 claims 2^32-1", BYTES ("\xdf\xff\xff\xff\xff\x01\x02\x03\x04\x05")},
        {"fixmap value missing", BYTES ("\x81\x01")},
        {"0xc1 inside", BYTES ("\x92\x01\xc1")},
        {"header cut", BYTES ("\xdc\x00")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        s_check (bad[i].bytes, bad[i].size, -1, bad[i].what);
}

Test (proto, msgpack_check_limits_nesting_to_32)
{
    static const struct {
        int depth;
        bool maps;
        int expected;
    } cases[] = {
        {1, false, 0},   {31, false, 0}, {32, false, 0}, {33, false, -1},
        {40, false, -1}, {32, true, 0},  {33, true, -1}, {40, true, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_nest (&buf, cases[i].depth, cases[i].maps);
        char what[64];
        snprintf (what, sizeof what, "%d-deep %s", cases[i].depth,
                  cases[i].maps ? "maps" : "arrays");
        s_check (buf.data, buf.size, cases[i].expected, what);
        msgpack_sbuffer_destroy (&buf);
    }
    //  40-deep but the innermost array is cut short
    char deep[41];
    memset (deep, 0x91, 40);
    deep[40] = (char)0x91;
    s_check (deep, 41, -1, "40-deep, unfinished");
}

//  ---------------------------------------------------------------------------------
//  Random mutations: never a crash (ASan in the sanitized build); whatever a decoder
//  accepts re-encodes and decodes to the same message; a refused map leaves the table
//  alone; whatever tl_msgpack_check accepts, msgpack-c unpacks.

static void s_decode_mutant (const uint8_t *frame, size_t size, size_t *accepted)
{
    for (int cmd = TL_CMD_INVALID + 1; cmd < TL_CMD_COUNT_; cmd++) {
        tl_msg_t msg;
        if (tl_msg_decode ((tl_cmd_t)cmd, frame, size, &msg) == -1) {
            cr_assert (s_msg_is_zero (&msg));
            continue;
        }
        (*accepted)++;
        cr_assert_eq (tl_msgpack_check (frame, size), 0);
        s_one_shard_if_another_version (&msg);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        cr_assert_eq (tl_msg_encode (&msg, &buf), 0, "decoded %s does not re-encode",
                      tl_cmd_name ((tl_cmd_t)cmd));
        tl_msg_t again;
        cr_assert_eq (tl_msg_decode ((tl_cmd_t)cmd, buf.data, buf.size, &again), 0);
        cr_assert (s_msg_equal (&msg, &again), "%s changed in a re-encoding",
                   tl_cmd_name ((tl_cmd_t)cmd));
        tl_msg_reset (&again);
        tl_msg_reset (&msg);
        msgpack_sbuffer_destroy (&buf);
    }
}

static void s_merge_mutant (const uint8_t *frame, size_t size, tl_table_t *table, size_t *accepted)
{
    size_t keys = tl_table_size (table);
    uint64_t sum = tl_table_sum (table);
    uint64_t entries = 0;
    int rc = tl_map_merge (frame, size, table, &entries);
    if (rc == -1) {
        cr_assert_eq (tl_table_size (table), keys);
        cr_assert_eq (tl_table_sum (table), sum);
    } else {
        (*accepted)++;
        cr_assert_leq (tl_table_size (table), keys + entries);
        cr_assert_eq (tl_msgpack_check (frame, size), 0);
    }
    if (tl_table_size (table) > 10000) tl_table_clear (table);
}

static void s_check_mutant (const uint8_t *frame, size_t size, size_t *accepted)
{
    if (tl_msgpack_check (frame, size) == -1) return;
    (*accepted)++;
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    size_t off = 0;
    cr_assert_eq (msgpack_unpack_next (&result, (const char *)frame, size, &off),
                  MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq (off, size);
    msgpack_unpacked_destroy (&result);
}

Test (proto, random_mutations_never_crash, .timeout = 120)
{
    //  The corpus: every sample's frame 1, and map frames.
    msgpack_sbuffer corpus[S_SAMPLES_MAX + 8];
    size_t ncorpus = 0;
    tl_msg_t samples[S_SAMPLES_MAX];
    size_t nsamples = s_samples (samples);
    for (size_t i = 0; i < nsamples; i++) {
        msgpack_sbuffer_init (&corpus[ncorpus]);
        cr_assert_eq (tl_msg_encode (&samples[i], &corpus[ncorpus++]), 0);
    }
    tl_table_t *special = s_special_table ();
    msgpack_sbuffer_init (&corpus[ncorpus]);
    cr_assert_eq (tl_map_encode (special, &corpus[ncorpus++]), 0);
    tl_table_t *small = tl_table_new (0);
    tl_table_add (small, "ab", 2, 300);
    tl_table_add (small, "c", 1, 70000);
    msgpack_sbuffer_init (&corpus[ncorpus]);
    cr_assert_eq (tl_map_encode (small, &corpus[ncorpus++]), 0);

    tl_table_t *table = tl_table_new (0);
    size_t decoded = 0, merged = 0, checked = 0;
    size_t cap = 0;
    for (size_t i = 0; i < ncorpus; i++)
        cap = corpus[i].size > cap ? corpus[i].size : cap;
    cap += 16;
    uint8_t *work = malloc (cap);
    for (int round = 0; round < 100000; round++) {
        const msgpack_sbuffer *seed = &corpus[tl_test_random () % ncorpus];
        size_t size = seed->size;
        memcpy (work, seed->data, size);
        tl_test_mutate (work, &size, cap);
        uint8_t *frame = s_exact (work, size);
        s_decode_mutant (frame, size, &decoded);
        s_merge_mutant (frame, size, table, &merged);
        s_check_mutant (frame, size, &checked);
        free (frame);
    }
    //  Some mutants stay valid (a changed digit, a cut payload byte in a string...):
    //  the re-encoding checks above really ran.
    cr_assert_gt (decoded, 1000, "only %zu mutants decoded", decoded);
    cr_assert_gt (merged, 100, "only %zu mutants merged", merged);
    cr_assert_gt (checked, 1000, "only %zu mutants passed the check", checked);
    cr_log_info ("100000 mutants: %zu decoded, %zu merged, %zu passed tl_msgpack_check", decoded,
                 merged, checked);

    free (work);
    for (size_t i = 0; i < ncorpus; i++)
        msgpack_sbuffer_destroy (&corpus[i]);
    tl_table_destroy (&table);
    tl_table_destroy (&small);
    tl_table_destroy (&special);
}

//  ---------------------------------------------------------------------------------
//  Interoperability with another msgpack implementation: Python's msgpack reads what
//  tl_proto writes, with the layouts of docs/PROTOCOL.md, and tl_proto reads what Python
//  writes from those layouts. Skipped where no python3 has the msgpack module.

static const char *s_interop_script =
    "import msgpack, os, sys\n"
    "d = sys.argv[1]\n"
    "def load(name, raw=True):\n"
    "    with open(os.path.join(d, name), 'rb') as f:\n"
    "        return msgpack.unpackb(f.read(), raw=raw, unicode_errors='surrogateescape')\n"
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
    "M = 2**64 - 1\n"
    "C = 2**48\n"
    "S_JOB = bytes(range(15)) + b'\\xff'\n"
    "S_END = b'\\xee' * 15 + b'\\x00'\n"
    "S_PING = b'P' * 16\n"
    "S_CANCEL = b'C' * 16\n"
    "expect('JOB', load('job'), [7, 4, S_JOB, False, 12345,\n"
    "                            [b'a.tsv', b'\\xff\\x00.gz'], 2, 3])\n"
    "expect('ACCEPT', load('accept'), [7, 0x1234, 5])\n"
    "expect('CHUNK', load('chunk'), [7, C - 1, M, 1, 1048576, b'ngram2020', 0,\n"
    "                                2**32 - 1, False, 64, M])\n"
    "expect('PARTIAL', load('partial'), [7, 3, 0x0123456789abcdef, 1, 100, 10, 1, 2,\n"
    "                                    [5, M], 63])\n"
    "expect('END', load('end'), [7, S_END, C, 400, 1])\n"
    "expect('ACK', load('ack'), [7, [3, 4, M]])\n"
    "expect('DONE', load('done'), [7, 1, 2, 3, 4, 5, 1.25, b'/tmp/out.tsv', 6, M])\n"
    "expect('FAIL', load('fail'), [7, b'unknown job'])\n"
    "expect('PING', load('ping'), [7, S_PING])\n"
    "expect('PONG', load('pong'), [7, 0x1234, 9, True])\n"
    "expect('HAVE', load('have'), [7, 64, b'\\x0f\\xf0'])\n"
    "expect('CANCEL', load('cancel'), [7, S_CANCEL, b'interrupted'])\n"
    "expect('map', load('map'), {b'caf\\xc3\\xa9': 2, b'\\xff\\x00': M, b'': 0})\n"
    "for name, at in (('job', 2), ('end', 1), ('ping', 1), ('cancel', 1)):\n"
    "    secret = load(name, raw=False)[at]\n"
    "    if type(secret) is not bytes or len(secret) != 16:\n"
    "        print(f'{name}: the secret is {secret!r}, not a bin of 16 bytes')\n"
    "        sys.exit(1)\n"
    "P = b'py secret 16 b!!'\n"
    "save('py_job', [7, 4, P, True, 99, ['x', 'y\\u00e9'], 1, 2])\n"
    "save('py_job_v1', [8, 1, 'auto', 0, 2**32 - 1, False, True, 99, ['x']])\n"
    "save('py_job_v3', [9, 3, P, True, 99, ['x']])\n"
    "save('py_chunk', [7, 3, M, 1, 0, 'text', 5, 6, True, 3, M - 1])\n"
    "save('py_partial', [M, C - 1, 12345, 1, 100, 10, 1, 2, [5], 2])\n"
    "save('py_end', [7, P, C, 400, 1])\n"
    "save('py_ping', [7, P])\n"
    "save('py_cancel', [7, P, 'bye'])\n"
    "save('py_map', {b'caf\\xc3\\xa9': 2, b'\\xff\\x00': M, b'': 0, 'str': 1})\n"
    "save('py_done', [7, 1, 2, 3, 4, 5, 1.25, '/tmp/out.tsv', 6, 7000])\n"
    "save('py_ack', [7, [1, 2, 3]])\n"
    "save('py_bad_chunk', [7, C, 0, 1, 0, 'text', 5, 6, True, 1, 0])\n"
    "save('py_bad_partial', [7, C, 0, 1, 100, 10, 1, 2, [], 0])\n"
    "save('py_bad_job_shards_0', [7, 4, P, True, 99, [], 0, 0])\n"
    "save('py_bad_job_shards_65', [7, 4, P, True, 99, [], 0, 65])\n"
    "save('py_bad_job_shard_2_of_2', [7, 4, P, True, 99, [], 2, 2])\n"
    "save('py_bad_job_no_shards', [7, 4, P, True, 99, []])\n"
    "save('py_bad_chunk_shards_0', [7, 3, 0, 1, 0, 'text', 5, 6, True, 0, 0])\n"
    "save('py_bad_chunk_shards_65', [7, 3, 0, 1, 0, 'text', 5, 6, True, 65, 0])\n"
    "save('py_bad_chunk_seed_negative', [7, 3, 0, 1, 0, 'text', 5, 6, True, 1, -1])\n"
    "save('py_bad_chunk_v3', [7, 3, 0, 1, 0, 'text', 5, 6, True])\n"
    "save('py_bad_partial_shard_64', [7, 3, 0, 1, 100, 10, 1, 2, [], 64])\n"
    "save('py_bad_partial_v3', [7, 3, 0, 1, 100, 10, 1, 2, []])\n"
    "save('py_bad_end', [7, P, C + 1, 400, 1])\n"
    "save('py_bad_ping', [7, P[:15]])\n"
    "save('py_bad_cancel', [7, P + b'!', 'bye'])\n"
    "save('py_bad_job', [7, 4, P[:15], True, 99, [], 0, 1])\n"
    "save('py_old_ping', [7])\n"
    "print('ok')\n";

static void s_write_file (const char *dir, const char *name, const void *data, size_t size)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "wb");
    cr_assert_not_null (file, "%s", path);
    cr_assert_eq (fwrite (data, 1, size, file), size);
    fclose (file);
}

//  Reads a whole file into a malloc'd block; sets *size.
static char *s_read_file (const char *dir, const char *name, size_t *size)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "rb");
    cr_assert_not_null (file, "%s", path);
    char *data = malloc (1 << 16);
    *size = fread (data, 1, 1 << 16, file);
    fclose (file);
    return data;
}

static void s_write_msg (const char *dir, const char *name, const tl_msg_t *msg)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_msg_encode (msg, &buf), 0, "%s", name);
    s_write_file (dir, name, buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
}

//  The C side's frames, as the script expects them.
static void s_write_c_frames (const char *dir)
{
    static tl_str_t files[] = {{"a.tsv", 5}, {"\xff\0.gz", 5}};
    tl_msg_t m = {.cmd = TL_CMD_JOB, .job = 7};
    for (int i = 0; i < 15; i++)
        m.secret[i] = (uint8_t)i;
    m.secret[15] = 0xff;
    m.u.job = (tl_job_body_t){TL_PROTO_VERSION, false, 12345, 2, files, 2, 3};
    s_write_msg (dir, "job", &m);
    m = (tl_msg_t){.cmd = TL_CMD_ACCEPT, .job = 7, .u.state = {0x1234, 5, true}};
    s_write_msg (dir, "accept", &m);
    m = (tl_msg_t){.cmd = TL_CMD_CHUNK, .job = 7};
    m.u.chunk = (tl_chunk_body_t){
        TL_CHUNK_ID_MAX - 1, UINT64_MAX,    1,         1048576, TL_FORMAT_NGRAM2020,
        TL_FILTER_NONE,      TL_SHARDS_MAX, UINT64_MAX};
    s_write_msg (dir, "chunk", &m);
    m = (tl_msg_t){.cmd = TL_CMD_PARTIAL, .job = 7};
    m.u.partial =
        (tl_partial_body_t){3, 0x0123456789abcdefull, 1, 100, 10, 1, 2, 2, {5, UINT64_MAX}, 63};
    s_write_msg (dir, "partial", &m);
    m = (tl_msg_t){.cmd = TL_CMD_END, .job = 7, .u.end = {TL_CHUNK_ID_MAX, 400, 1}};
    memset (m.secret, 0xee, TL_SECRET_SIZE - 1);
    s_write_msg (dir, "end", &m);
    m = (tl_msg_t){.cmd = TL_CMD_ACK, .job = 7, .u.ack = {3, {3, 4, UINT64_MAX}}};
    s_write_msg (dir, "ack", &m);
    tl_done_body_t done = {1, 2, 3, 4, 5, 1.25, {"/tmp/out.tsv", 12}, 6, UINT64_MAX};
    m = (tl_msg_t){.cmd = TL_CMD_DONE, .job = 7, .u.done = done};
    s_write_msg (dir, "done", &m);
    m = (tl_msg_t){.cmd = TL_CMD_FAIL, .job = 7, .u.reason = {"unknown job", 11}};
    s_write_msg (dir, "fail", &m);
    m = (tl_msg_t){.cmd = TL_CMD_PING, .job = 7};
    memset (m.secret, 'P', TL_SECRET_SIZE);
    s_write_msg (dir, "ping", &m);
    m = (tl_msg_t){.cmd = TL_CMD_PONG, .job = 7, .u.state = {0x1234, 9, true}};
    s_write_msg (dir, "pong", &m);
    m = (tl_msg_t){.cmd = TL_CMD_HAVE, .job = 7, .u.have = {64, {"\x0f\xf0", 2}}};
    s_write_msg (dir, "have", &m);
    m = (tl_msg_t){.cmd = TL_CMD_CANCEL, .job = 7, .u.reason = {"interrupted", 11}};
    memset (m.secret, 'C', TL_SECRET_SIZE);
    s_write_msg (dir, "cancel", &m);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    tl_table_t *table = tl_table_new (0);
    tl_table_add (table, "caf\xc3\xa9", 5, 2);
    tl_table_add (table, "\xff\0", 2, UINT64_MAX);
    tl_table_add (table, "", 0, 0);
    cr_assert_eq (tl_map_encode (table, &buf), 0);
    s_write_file (dir, "map", buf.data, buf.size);
    tl_table_destroy (&table);
    msgpack_sbuffer_destroy (&buf);
}

//  Decodes the frame the script wrote to file name as cmd; returns the frame, to free
//  once done with msg.
static char *s_read_msg (const char *dir, const char *name, tl_cmd_t cmd, tl_msg_t *msg)
{
    size_t size;
    char *data = s_read_file (dir, name, &size);
    cr_assert_eq (tl_msg_decode (cmd, data, size, msg), 0, "%s", name);
    return data;
}

static void s_check_python_frames (const char *dir)
{
    static const char py_secret[] = "py secret 16 b!!";
    tl_msg_t m;
    char *data = s_read_msg (dir, "py_job", TL_CMD_JOB, &m);
    cr_assert_eq (m.job, 7);
    cr_assert_eq (m.u.job.version, TL_PROTO_VERSION);
    cr_assert_eq (m.u.job.shard, 1);
    cr_assert_eq (m.u.job.shards, 2);
    cr_assert_arr_eq (m.secret, py_secret, TL_SECRET_SIZE);
    cr_assert (m.u.job.strict);
    cr_assert_eq (m.u.job.input_bytes, 99);
    cr_assert_eq (m.u.job.nfiles, 2);
    cr_assert (s_str_equal (m.u.job.files[0], s_str ("x")));
    cr_assert (s_str_equal (m.u.job.files[1], s_str ("y\xc3\xa9")));
    tl_msg_reset (&m);
    free (data);

    //  A version 1 JOB, as a ventilator of that version sends it: the version is read.
    data = s_read_msg (dir, "py_job_v1", TL_CMD_JOB, &m);
    cr_assert_eq (m.job, 8);
    cr_assert_eq (m.u.job.version, 1);
    cr_assert_eq (m.u.job.nfiles, 0);
    tl_msg_reset (&m);
    free (data);

    //  A version 3 JOB (no shards), likewise: the version is read, nothing else.
    data = s_read_msg (dir, "py_job_v3", TL_CMD_JOB, &m);
    cr_assert_eq (m.job, 9);
    cr_assert_eq (m.u.job.version, 3);
    cr_assert (m.u.job.nfiles == 0 && m.u.job.shards == 0 && !m.u.job.strict);
    tl_msg_reset (&m);
    free (data);

    data = s_read_msg (dir, "py_chunk", TL_CMD_CHUNK, &m);
    tl_chunk_body_t chunk = {3, UINT64_MAX, 1, 0, TL_FORMAT_TEXT, {5, 6, true}, 3, UINT64_MAX - 1};
    tl_msg_t want = {.cmd = TL_CMD_CHUNK, .job = 7, .u.chunk = chunk};
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    data = s_read_msg (dir, "py_partial", TL_CMD_PARTIAL, &m);
    want = (tl_msg_t){.cmd = TL_CMD_PARTIAL, .job = UINT64_MAX};
    want.u.partial = (tl_partial_body_t){TL_CHUNK_ID_MAX - 1, 12345, 1, 100, 10, 1, 2, 1, {5}, 2};
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    data = s_read_msg (dir, "py_end", TL_CMD_END, &m);
    want = (tl_msg_t){.cmd = TL_CMD_END, .job = 7, .u.end = {TL_CHUNK_ID_MAX, 400, 1}};
    memcpy (want.secret, py_secret, TL_SECRET_SIZE);
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    data = s_read_msg (dir, "py_ping", TL_CMD_PING, &m);
    want = (tl_msg_t){.cmd = TL_CMD_PING, .job = 7};
    memcpy (want.secret, py_secret, TL_SECRET_SIZE);
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    data = s_read_msg (dir, "py_cancel", TL_CMD_CANCEL, &m);
    want = (tl_msg_t){.cmd = TL_CMD_CANCEL, .job = 7, .u.reason = {"bye", 3}};
    memcpy (want.secret, py_secret, TL_SECRET_SIZE);
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    data = s_read_msg (dir, "py_done", TL_CMD_DONE, &m);
    want = (tl_msg_t){.cmd = TL_CMD_DONE, .job = 7};
    want.u.done = (tl_done_body_t){1, 2, 3, 4, 5, 1.25, {"/tmp/out.tsv", 12}, 6, 7000};
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    //  Past the chunk id limit, a secret of 15 or 17 bytes, the old PING without one,
    //  shards out of range, version 3's CHUNK and PARTIAL (no shards, no shard)
    static const struct {
        const char *name;
        tl_cmd_t cmd;
    } refused[] = {
        {"py_bad_chunk", TL_CMD_CHUNK},
        {"py_bad_partial", TL_CMD_PARTIAL},
        {"py_bad_end", TL_CMD_END},
        {"py_bad_ping", TL_CMD_PING},
        {"py_bad_cancel", TL_CMD_CANCEL},
        {"py_bad_job", TL_CMD_JOB},
        {"py_old_ping", TL_CMD_PING},
        {"py_bad_job_shards_0", TL_CMD_JOB},
        {"py_bad_job_shards_65", TL_CMD_JOB},
        {"py_bad_job_shard_2_of_2", TL_CMD_JOB},
        {"py_bad_job_no_shards", TL_CMD_JOB},
        {"py_bad_chunk_shards_0", TL_CMD_CHUNK},
        {"py_bad_chunk_shards_65", TL_CMD_CHUNK},
        {"py_bad_chunk_seed_negative", TL_CMD_CHUNK},
        {"py_bad_chunk_v3", TL_CMD_CHUNK},
        {"py_bad_partial_shard_64", TL_CMD_PARTIAL},
        {"py_bad_partial_v3", TL_CMD_PARTIAL},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        size_t size;
        data = s_read_file (dir, refused[i].name, &size);
        cr_assert_eq (s_decode_exact (refused[i].cmd, data, size, &m), -1, "%s", refused[i].name);
        free (data);
    }

    data = s_read_msg (dir, "py_ack", TL_CMD_ACK, &m);
    want = (tl_msg_t){.cmd = TL_CMD_ACK, .job = 7, .u.ack = {3, {1, 2, 3}}};
    cr_assert (s_msg_equal (&m, &want));
    free (data);

    size_t size;
    data = s_read_file (dir, "py_map", &size);
    tl_table_t *table = tl_table_new (0);
    uint64_t entries = 0;
    cr_assert_eq (tl_map_merge (data, size, table, &entries), 0);
    cr_assert_eq (entries, 4);
    uint64_t count;
    cr_assert (tl_table_get (table, "caf\xc3\xa9", 5, &count) && count == 2);
    cr_assert (tl_table_get (table, "\xff\0", 2, &count) && count == UINT64_MAX);
    cr_assert (tl_table_get (table, "", 0, &count) && count == 0);
    cr_assert (tl_table_get (table, "str", 3, &count) && count == 1);
    tl_table_destroy (&table);
    free (data);
}

//  Finds a python3 that runs `statement` (python3 on the PATH first, then the system's):
//  false when none does.
static bool s_find_python (const char *statement, char *python, size_t size)
{
    char command[512];
    snprintf (command, sizeof command,
              "for p in python3 /usr/bin/python3; do "
              "$p -c '%s' 2>/dev/null && { echo $p; break; }; done",
              statement);
    FILE *probe = popen (command, "r");
    cr_assert_not_null (probe);
    if (!fgets (python, (int)size, probe)) python[0] = 0;
    pclose (probe);
    python[strcspn (python, "\n")] = 0;
    return python[0] != 0;
}

Test (proto, python_msgpack_reads_and_writes_the_documented_layouts)
{
    char python[256];
    if (!s_find_python ("import msgpack", python, sizeof python))
        cr_skip_test ("no python3 with the msgpack module");

    char dir[] = "/tmp/test_proto.XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    s_write_c_frames (dir);
    s_write_file (dir, "check.py", s_interop_script, strlen (s_interop_script));
    char command[1024];
    snprintf (command, sizeof command, "%s %s/check.py %s 2>&1", python, dir, dir);
    FILE *script = popen (command, "r");
    cr_assert_not_null (script);
    char output[4096] = "";
    size_t got = fread (output, 1, sizeof output - 1, script);
    output[got] = 0;
    int status = pclose (script);
    cr_assert_eq (status, 0, "python says: %s", output);
    cr_assert_str_eq (output, "ok\n");
    s_check_python_frames (dir);

    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq (system (command), 0);
}

//  An implementation of XXH3-128 written from the xxHash specification for 32-byte inputs
//  (the 17-to-128-byte path with the default secret, of which 32 bytes are used), checked
//  against python-xxhash when that module is there. It reads "secret_hex job chunk tag"
//  lines and says "ok" and how many it checked.
static const char *s_tag_script =
    "import struct, sys\n"
    "M = 2**64 - 1\n"
    "P1, P2, P4 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x85EBCA77C2B2AE63\n"
    "K = bytes.fromhex('b8fe6c3923a44bbe7c01812cf721ad1c'\n"
    "                  'ded46de9839097db7240a4a4b7b3671f')\n"
    "def le(b, i):\n"
    "    return struct.unpack_from('<Q', b, i)[0]\n"
    "def mix16(b, i, s):\n"
    "    p = (le(b, i) ^ le(K, s)) * (le(b, i + 8) ^ le(K, s + 8))\n"
    "    return (p & M) ^ (p >> 64)\n"
    "def avalanche(h):\n"
    "    h ^= h >> 37\n"
    "    h = (h * 0x165667919E3779F9) & M\n"
    "    return h ^ (h >> 32)\n"
    "def xxh3_128(b):\n"
    "    assert len(b) == 32\n"
    "    lo = ((32 * P1 + mix16(b, 0, 0)) & M) ^ ((le(b, 16) + le(b, 24)) & M)\n"
    "    hi = mix16(b, 16, 16) ^ ((le(b, 0) + le(b, 8)) & M)\n"
    "    low = avalanche((lo + hi) & M)\n"
    "    high = -avalanche((lo * P1 + hi * P4 + 32 * P2) & M) & M\n"
    "    return high << 64 | low\n"
    "try:\n"
    "    import xxhash\n"
    "    reference = xxhash.xxh3_128_intdigest\n"
    "except ImportError:\n"
    "    reference = None\n"
    "n = 0\n"
    "for line in open(sys.argv[1]):\n"
    "    secret, job, chunk, tag = line.split()\n"
    "    data = bytes.fromhex(secret) + struct.pack('<QQ', int(job), int(chunk))\n"
    "    want = xxh3_128(data)\n"
    "    if reference and reference(data) != want:\n"
    "        print(f'the pure XXH3 differs from python-xxhash on {data.hex()}')\n"
    "        sys.exit(1)\n"
    "    if want & M != int(tag, 16):\n"
    "        print(f'{line.strip()}: want tag {want & M:016x}')\n"
    "        sys.exit(1)\n"
    "    n += 1\n"
    "print('ok', n, 'xxhash' if reference else 'no-xxhash-module')\n";

//  tl_chunk_tag is the low 64 bits of XXH3_128bits over secret || job LE64 || chunk LE64,
//  as docs/PROTOCOL.md tells a client in another language to compute it: checked by an
//  implementation in Python that shares nothing with the C library.
Test (proto, chunk_tag_equals_an_independent_xxh3_in_python)
{
    char python[256];
    if (!s_find_python ("import struct", python, sizeof python))
        cr_skip_test ("no python3 found: the independent computation of the tags did not run "
                      "(chunk_tag_known_answers still checks them)");
    char dir[] = "/tmp/test_proto_tag.XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    s_write_file (dir, "check.py", s_tag_script, strlen (s_tag_script));
    char path[512];
    snprintf (path, sizeof path, "%s/tags", dir);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    enum { N = 2000 };
    for (uint64_t i = 0; i < N; i++) {
        uint8_t secret[TL_SECRET_SIZE];
        s_random_secret (secret, i);
        uint64_t job = i < 8 ? (uint64_t[]){0, 1, UINT64_MAX, 1ull << 63}[i % 4] : s_mix64 (~i);
        uint64_t chunk = i < 8 ? (uint64_t[]){0, 1, TL_CHUNK_ID_MAX - 1, 255}[i / 2]
                               : s_mix64 (i << 1) % TL_CHUNK_ID_MAX;
        for (size_t b = 0; b < TL_SECRET_SIZE; b++)
            fprintf (file, "%02x", secret[b]);
        fprintf (file, " %llu %llu %016llx\n", (unsigned long long)job, (unsigned long long)chunk,
                 (unsigned long long)tl_chunk_tag (secret, job, chunk));
    }
    cr_assert_eq (fclose (file), 0);
    char command[1024];
    snprintf (command, sizeof command, "%s %s/check.py %s 2>&1", python, dir, path);
    FILE *script = popen (command, "r");
    cr_assert_not_null (script);
    char output[4096] = "";
    size_t got = fread (output, 1, sizeof output - 1, script);
    output[got] = 0;
    int status = pclose (script);
    cr_assert_eq (status, 0, "python says: %s", output);
    char want[64];
    snprintf (want, sizeof want, "ok %d ", N);
    cr_assert_eq (strncmp (output, want, strlen (want)), 0, "python says: %s", output);
    if (strstr (output, "no-xxhash-module"))
        cr_log_info ("%s has no xxhash module: tags checked against the pure-Python XXH3 only",
                     python);
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq (system (command), 0);
}

//  tl_shard_seed and tl_shard_of as docs/PROTOCOL.md tells a worker in Python to compute
//  them (xxhash.xxh3_128_intdigest, xxhash.xxh3_64_intdigest): checked against
//  python-xxhash, a library this test does not link. Reads "seed SECRET JOB VALUE" and
//  "shard KEY SEED SHARDS SHARD" lines (hex bytes, decimal numbers).
static const char *s_shard_script =
    "import struct, sys, xxhash\n"
    "M = 2**64 - 1\n"
    "n = 0\n"
    "for line in open(sys.argv[1]):\n"
    "    f = line.split()\n"
    "    if f[0] == 'seed':\n"
    "        data = bytes.fromhex(f[1]) + struct.pack('<QQ', int(f[2]), M)\n"
    "        want = xxhash.xxh3_128_intdigest(data) & M\n"
    "        got = int(f[3])\n"
    "    else:\n"
    "        key = bytes.fromhex(f[1]) if f[1] != '-' else b''\n"
    "        want = xxhash.xxh3_64_intdigest(key, int(f[2])) % int(f[3])\n"
    "        got = int(f[4])\n"
    "    if want != got:\n"
    "        print(f'{line.strip()}: python says {want}')\n"
    "        sys.exit(1)\n"
    "    n += 1\n"
    "print('ok', n)\n";

Test (proto, shard_split_equals_python_xxhash)
{
    char python[256];
    //  .ci/deps installs python3-xxhash: without it this is a failure, not a skip.
    cr_assert (s_find_python ("import xxhash", python, sizeof python),
               "no python3 with the xxhash module (Debian: python3-xxhash): the split cannot be "
               "checked against python-xxhash");
    char dir[] = "/tmp/test_proto_shard.XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    s_write_file (dir, "check.py", s_shard_script, strlen (s_shard_script));
    char path[512];
    snprintf (path, sizeof path, "%s/lines", dir);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    enum { N = 1000 };
    for (uint64_t i = 0; i < N; i++) {
        uint8_t secret[TL_SECRET_SIZE];
        s_random_secret (secret, i);
        uint64_t job = i < 3 ? (uint64_t[]){0, 7, UINT64_MAX}[i] : s_mix64 (~i);
        uint64_t seed = tl_shard_seed (secret, job);
        fprintf (file, "seed ");
        for (size_t b = 0; b < TL_SECRET_SIZE; b++)
            fprintf (file, "%02x", secret[b]);
        fprintf (file, " %llu %llu\n", (unsigned long long)job, (unsigned long long)seed);
        uint8_t key[300];
        size_t len = (size_t)(s_mix64 (i * 3) % sizeof key);
        if (i < 20) len = i;
        for (size_t b = 0; b < len; b++)
            key[b] = (uint8_t)s_mix64 (i * 1000 + b);
        uint32_t shards = 2 + (uint32_t)(i % (TL_SHARDS_MAX - 1));
        fprintf (file, "shard ");
        for (size_t b = 0; b < len; b++)
            fprintf (file, "%02x", key[b]);
        fprintf (file, "%s %llu %u %u\n", len ? "" : "-", (unsigned long long)seed, shards,
                 tl_shard_of (key, len, seed, shards));
    }
    cr_assert_eq (fclose (file), 0);
    char command[1024];
    snprintf (command, sizeof command, "%s %s/check.py %s 2>&1", python, dir, path);
    FILE *script = popen (command, "r");
    cr_assert_not_null (script);
    char output[4096] = "";
    size_t got = fread (output, 1, sizeof output - 1, script);
    output[got] = 0;
    int status = pclose (script);
    cr_assert_eq (status, 0, "python says: %s", output);
    char want[64];
    snprintf (want, sizeof want, "ok %d\n", 2 * N);
    cr_assert_str_eq (output, want);
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq (system (command), 0);
}

//  Counts at each boundary of msgpack's unsigned forms (fixint, uint8 to uint64); small
//  enough that two of each sum without saturating.
static const uint64_t s_count_forms[] = {
    0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX / 4};
#define S_COUNT_FORMS (sizeof s_count_forms / sizeof s_count_forms[0])

//  The map frame is written byte by byte without msgpack-c's packer: it must be exactly
//  what that packer writes (bin8/16/32 keys, the smallest unsigned form of each count),
//  for keys and counts at every boundary of those forms.
Test (proto, map_encode_writes_what_msgpack_c_packs)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 255, 256, 65535, 65536, TL_KEY_MAX};
    size_t nl = sizeof lens / sizeof lens[0], nc = S_COUNT_FORMS;
    char *key = malloc (TL_KEY_MAX + 2);
    cr_assert_not_null (key);
    tl_table_t *table = tl_table_new (0);
    for (size_t i = 0; i < nl; i++)
        for (size_t j = 0; j < nc; j++) {
            //  A distinct key of each length for each count: its first bytes say which
            memset (key, 'a' + (int)j, lens[i]);
            if (lens[i] == 0 && j > 0) continue;  //  One empty key only
            cr_assert_geq (tl_table_add (table, key, lens[i], s_count_forms[j]), 0);
        }
    for (uint32_t shards = 1; shards <= 3; shards++) {
        msgpack_sbuffer got[3], want[3];
        msgpack_packer pk[3];
        uint32_t n[3] = {0};
        for (uint32_t s = 0; s < shards; s++) {
            msgpack_sbuffer_init (&got[s]);
            msgpack_sbuffer_init (&want[s]);
            msgpack_packer_init (&pk[s], &want[s], msgpack_sbuffer_write);
        }
        cr_assert_eq (tl_map_encode_split (table, 42, shards, got), 0);
        //  The same entries through msgpack-c, in the table's order, split the same way
        size_t cursor = 0;
        tl_entry_t e;
        while (tl_table_next (table, &cursor, &e))
            n[tl_shard_of (e.key, e.len, 42, shards)]++;
        for (uint32_t s = 0; s < shards; s++) {
            if (shards == 1)
                msgpack_pack_map (&pk[s], n[s]);
            else
                msgpack_sbuffer_write (&want[s],
                                       (const char[]){(char)0xdf, (char)(n[s] >> 24),
                                                      (char)(n[s] >> 16), (char)(n[s] >> 8),
                                                      (char)n[s]},
                                       5);
        }
        cursor = 0;
        while (tl_table_next (table, &cursor, &e)) {
            msgpack_packer *p = &pk[tl_shard_of (e.key, e.len, 42, shards)];
            msgpack_pack_bin (p, e.len);
            msgpack_pack_bin_body (p, e.key, e.len);
            msgpack_pack_uint64 (p, e.count);
        }
        for (uint32_t s = 0; s < shards; s++) {
            cr_assert_eq (got[s].size, want[s].size, "%u shards, part %u", shards, s);
            cr_assert_eq (memcmp (got[s].data, want[s].data, got[s].size), 0, "%u shards, part %u",
                          shards, s);
            msgpack_sbuffer_destroy (&got[s]);
            msgpack_sbuffer_destroy (&want[s]);
        }
    }
    tl_table_destroy (&table);
    free (key);
}

//  The merge reads the common entry forms inline (fixstr, str8 or bin8 keys; fixint or
//  uint8 to uint64 counts) and the rest through the general reader: a map of
//  every pairing, packed by msgpack-c, merges to its exact totals, and cut short at any
//  byte merges nothing.
Test (proto, map_merge_reads_every_key_and_count_form_and_refuses_them_cut)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 300};
    enum { NC = S_COUNT_FORMS, NL = sizeof lens / sizeof lens[0] };
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2 * NC * NL);
    char key[300];
    //  Keys: a byte naming the count, then 'k's; as str, then as bin (the same key twice)
    for (int form = 0; form < 2; form++)
        for (size_t i = 0; i < NL; i++)
            for (size_t j = 0; j < NC; j++) {
                memset (key, 'k', sizeof key);
                if (lens[i]) key[0] = (char)('A' + j);
                if (form == 0) {
                    msgpack_pack_str (&pk, lens[i]);
                    msgpack_pack_str_body (&pk, key, lens[i]);
                } else {
                    msgpack_pack_bin (&pk, lens[i]);
                    msgpack_pack_bin_body (&pk, key, lens[i]);
                }
                msgpack_pack_uint64 (&pk, s_count_forms[j]);
            }
    tl_table_t *table = tl_table_new (0);
    for (size_t cut = 0; cut < buf.size; cut++) {
        cr_assert_eq (s_merge_exact (buf.data, cut, table, NULL), -1, "cut at %zu", cut);
        cr_assert_eq (tl_table_size (table), 0);
    }
    uint64_t entries = 0;
    cr_assert_geq (s_merge_exact (buf.data, buf.size, table, &entries), 0);
    cr_assert_eq (entries, 2 * NC * NL);
    for (size_t i = 0; i < NL; i++)
        for (size_t j = 0; j < NC; j++) {
            memset (key, 'k', sizeof key);
            if (lens[i]) key[0] = (char)('A' + j);
            uint64_t want = 0;
            if (lens[i])
                want = 2 * s_count_forms[j];
            else
                for (size_t k = 0; k < NC; k++)
                    want += 2 * s_count_forms[k];  //  The empty key gets every count
            uint64_t got = 0;
            cr_assert (tl_table_get (table, key, lens[i], &got), "len %zu count %zu", i, j);
            cr_assert_eq (got, want, "len %zu count %zu", lens[i], j);
        }
    tl_table_destroy (&table);
    msgpack_sbuffer_destroy (&buf);
}
