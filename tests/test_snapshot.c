/*  test_snapshot: the snapshot service's client side (common/tl_snapshot.c). The
    endpoint beside a feed is the feed's port + 1 (tcp) or its path + ".snapshot" (ipc),
    and none for anything else; requests round-trip through the encoder and the decoder,
    are the bytes Python's msgpack packs for the same dict, and the decoder refuses what
    is not one map with a known "get" (and, for totals, a uint "job", "batch" and "from"),
    a key twice, a wrong type, trailing bytes, a frame over TL_SNAPSHOT_REQUEST_MAX bytes
    and unknown values nested too deep, leaving the request zeroed.

    Frames handed to the decoder are copied to heap blocks of exactly their size, so that
    AddressSanitizer (the sanitized build) catches any read past a frame's end.        */

#include "tl_snapshot.h"
#include "tl_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BYTES(literal) literal, sizeof (literal) - 1

static bool s_is_zero (const tl_snapshot_request_t *request)
{
    static const tl_snapshot_request_t zero;
    return memcmp (request, &zero, sizeof zero) == 0;
}

//  Decodes an exact-size copy of data; a refusal must leave the request zeroed.
static int s_decode (const void *data, size_t size, tl_snapshot_request_t *request)
{
    void *copy = malloc (size ? size : 1);
    cr_assert_not_null (copy);
    if (size) memcpy (copy, data, size);
    memset (request, 0xa5, sizeof *request);
    int rc = tl_snapshot_request_decode (size ? copy : NULL, size, request);
    if (rc == -1) cr_assert (s_is_zero (request), "a refused request left fields set");
    free (copy);
    return rc;
}

static int s_verdict (const void *data, size_t size)
{
    tl_snapshot_request_t request;
    return s_decode (data, size, &request);
}

//  ---------------------------------------------------------------------------------
//  The endpoint beside the feed

Test (snapshot, the_endpoint_is_the_feeds_port_plus_1_or_its_path_dot_snapshot)
{
    static const struct {
        const char *feed;
        const char *want;  //  NULL: none
    } cases[] = {
        {"tcp://*:5559", "tcp://*:5560"},
        {"tcp://127.0.0.1:5559", "tcp://127.0.0.1:5560"},
        {"tcp://sink.example.org:47001", "tcp://sink.example.org:47002"},
        {"tcp://host:1", "tcp://host:2"},
        {"tcp://host:9", "tcp://host:10"},
        {"tcp://host:99999", NULL},  //  Not a port
        {"tcp://host:65534", "tcp://host:65535"},
        {"tcp://host:65535", NULL},  //  No port above
        {"tcp://host:65536", NULL},
        {"tcp://host:0", NULL},
        {"tcp://host:00000", NULL},
        {"tcp://host:05559", "tcp://host:5560"},
        {"tcp://host:*", NULL},  //  A port the system picks: its neighbour is unknown
        {"tcp://host:55a9", NULL},
        {"tcp://host:-1", NULL},
        {"tcp://host:+5559", NULL},
        {"tcp://host: 5559", NULL},
        {"tcp://host:", NULL},
        {"tcp://host", NULL},
        {"tcp://:5559", NULL},
        {"tcp://", NULL},
        {"tcp://host:555900", NULL},  //  Too long
        {"tcp://host:1234567890123456789012345", NULL},
        {"tcp://[::1]:5559", "tcp://[::1]:5560"},
        {"tcp://[2001:db8::7]:65534", "tcp://[2001:db8::7]:65535"},
        {"tcp://[::1]", NULL},
        {"tcp://eth0;192.168.1.1:5559", "tcp://eth0;192.168.1.1:5560"},
        {"ipc:///tmp/tally/feed", "ipc:///tmp/tally/feed.snapshot"},
        {"ipc://feed", "ipc://feed.snapshot"},
        {"ipc://@abstract", "ipc://@abstract.snapshot"},
        {"ipc://", NULL},
        {"inproc://feed", NULL},
        {"pgm://eth0;239.192.1.1:5559", NULL},
        {"epgm://eth0;239.192.1.1:5559", NULL},
        {"udp://127.0.0.1:5559", NULL},
        {"ws://127.0.0.1:5559", NULL},
        {"TCP://host:5559", NULL},
        {"tcp:/host:5559", NULL},
        {"5559", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = tl_snapshot_endpoint (cases[i].feed);
        if (cases[i].want)
            cr_expect (got && strcmp (got, cases[i].want) == 0, "%s -> %s, not %s", cases[i].feed,
                       got ? got : "NULL", cases[i].want);
        else
            cr_expect_null (got, "%s -> %s, not NULL", cases[i].feed, got);
        free (got);
    }
    cr_assert_null (tl_snapshot_endpoint (NULL));

    //  A long path: the suffix is added whole.
    static char path[4096 + 16];
    memset (path, 'p', sizeof path - 1);
    memcpy (path, "ipc:///", 7);
    char *got = tl_snapshot_endpoint (path);
    cr_assert_not_null (got);
    cr_assert_eq (strlen (got), strlen (path) + 9);
    cr_assert_eq (strncmp (got, path, strlen (path)), 0);
    cr_assert_str_eq (got + strlen (path), ".snapshot");
    free (got);
}

//  ---------------------------------------------------------------------------------
//  Requests

static void s_encode (const tl_snapshot_request_t *request, msgpack_sbuffer *buf)
{
    msgpack_sbuffer_init (buf);
    cr_assert_eq (tl_snapshot_request_encode (request, buf), 0);
}

Test (snapshot, requests_round_trip)
{
    static const tl_snapshot_request_t requests[] = {
        {TL_SNAPSHOT_STATE, 0, 0, 0},
        {TL_SNAPSHOT_TOTALS, 0, 0, 0},
        {TL_SNAPSHOT_TOTALS, UINT64_MAX, UINT64_MAX, UINT64_MAX},
        {TL_SNAPSHOT_TOTALS, 0x0123456789abcdefull, 3, 1ull << 40},
        {TL_SNAPSHOT_TOTALS, 127, 128, 65536},
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        msgpack_sbuffer buf;
        s_encode (&requests[i], &buf);
        cr_assert_leq (buf.size, TL_SNAPSHOT_REQUEST_MAX, "request %zu", i);
        tl_snapshot_request_t back;
        cr_assert_eq (s_decode (buf.data, buf.size, &back), 0, "request %zu", i);
        cr_assert_eq (back.get, requests[i].get, "request %zu", i);
        cr_assert_eq (back.job, requests[i].job, "request %zu", i);
        cr_assert_eq (back.batch, requests[i].batch, "request %zu", i);
        cr_assert_eq (back.from, requests[i].from, "request %zu", i);
        msgpack_sbuffer_destroy (&buf);
    }
}

Test (snapshot, the_encoder_appends_and_refuses_an_invalid_get)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_sbuffer_write (&buf, "xyz", 3);
    tl_snapshot_request_t request = {TL_SNAPSHOT_INVALID, 1, 2, 3};
    cr_assert_eq (tl_snapshot_request_encode (&request, &buf), -1);
    cr_assert_eq (buf.size, 3, "an invalid request leaves the buffer as it was");
    request.get = (tl_snapshot_get_t)3;
    cr_assert_eq (tl_snapshot_request_encode (&request, &buf), -1);
    cr_assert_eq (buf.size, 3);
    request.get = TL_SNAPSHOT_STATE;
    cr_assert_eq (tl_snapshot_request_encode (&request, &buf), 0);
    cr_assert_eq (memcmp (buf.data, "xyz", 3), 0);
    //  A state request carries only "get" (job, batch and from are not read).
    cr_assert_eq (buf.size - 3, sizeof "\x81\xa3get\xa5state" - 1);
    cr_assert_eq (memcmp (buf.data + 3, "\x81\xa3get\xa5state", buf.size - 3), 0);
    tl_snapshot_request_t back;
    cr_assert_eq (s_decode (buf.data + 3, buf.size - 3, &back), 0);
    cr_assert_eq (back.get, TL_SNAPSHOT_STATE);
    cr_assert_eq (back.job, 0);
    msgpack_sbuffer_destroy (&buf);
}

//  Raw bytes of one map entry: a key and its value.
typedef struct {
    const char *bytes;
    size_t size;
} s_raw_t;

#define X(literal) ((s_raw_t){literal, sizeof (literal) - 1})

//  A request map built by hand: n raw entries, the map claiming claim of them.
static void s_build (msgpack_sbuffer *buf, uint32_t claim, const s_raw_t *entries, size_t n)
{
    msgpack_sbuffer_init (buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, claim);
    for (size_t i = 0; i < n; i++)
        msgpack_sbuffer_write (buf, entries[i].bytes, entries[i].size);
}

#define GET_STATE_BYTES "\xa3get\xa5state"
#define GET_TOTALS      X ("\xa3get\xa6totals")
#define GET_STATE       X (GET_STATE_BYTES)
#define JOB_7           X ("\xa3job\x07")
#define BATCH_2         X ("\xa5\x62\x61tch\x02")
#define FROM_300        X ("\xa4\x66rom\xcd\x01\x2c")

//  Decodes the map of the given entries.
static int s_try_entries (size_t n, const s_raw_t *entries, tl_snapshot_request_t *request)
{
    msgpack_sbuffer buf;
    s_build (&buf, (uint32_t)n, entries, n);
    int rc = s_decode (buf.data, buf.size, request);
    msgpack_sbuffer_destroy (&buf);
    return rc;
}

#define TRY(request, ...)                                                                          \
    s_try_entries (sizeof ((s_raw_t[]){__VA_ARGS__}) / sizeof (s_raw_t), (s_raw_t[]){__VA_ARGS__}, \
                   request)

Test (snapshot, keys_in_any_order_and_unknown_keys_skipped)
{
    tl_snapshot_request_t r;
    cr_assert_eq (TRY (&r, FROM_300, BATCH_2, JOB_7, GET_TOTALS), 0);
    cr_assert (r.get == TL_SNAPSHOT_TOTALS && r.job == 7 && r.batch == 2 && r.from == 300);
    cr_assert_eq (TRY (&r, JOB_7, GET_TOTALS, FROM_300, BATCH_2), 0);
    cr_assert (r.get == TL_SNAPSHOT_TOTALS && r.job == 7 && r.batch == 2 && r.from == 300);
    //  Unknown keys of every type, before, between and after.
    cr_assert_eq (TRY (&r,
                       X ("\xa7version\xa3"
                          "2.0"),
                       JOB_7, X ("\xa5\x65xtra\xc0"), GET_TOTALS,
                       X ("\xa1x\x82\xa1\x61\x93\x01\xc0\x90\xa1\x62\x80"), FROM_300,
                       X ("\xa4wait\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"), BATCH_2,
                       X ("\xa3neg\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
                       X ("\xa3\x62in\xc4\x02\x00\x02"), X ("\xa3\x65xt\xd4\x01\x05"),
                       X ("\xa0\x01"), X ("\xa4job\0\x05")),
                  0);
    cr_assert (r.get == TL_SNAPSHOT_TOTALS && r.job == 7 && r.batch == 2 && r.from == 300);
    //  Keys close to known ones are unknown ones: skipped.
    cr_assert_eq (TRY (&r, GET_TOTALS, JOB_7, BATCH_2, FROM_300, X ("\xa3GET\xa5state"),
                       X ("\xa4jobs\x01"), X ("\xa3\x66ro\x05"), X ("\xa2jo\x09")),
                  0);
    cr_assert (r.get == TL_SNAPSHOT_TOTALS && r.job == 7 && r.batch == 2 && r.from == 300);
    //  A state request with totals' keys too: they are read, harmless.
    cr_assert_eq (TRY (&r, GET_STATE, JOB_7), 0);
    cr_assert (r.get == TL_SNAPSHOT_STATE);
    cr_assert_eq (TRY (&r, X ("\xa6\x66ilter\xa3top"), GET_STATE), 0);
    cr_assert (r.get == TL_SNAPSHOT_STATE);
    //  A bin key and a bin "get" value read as the str would, as in the feed.
    cr_assert_eq (TRY (&r, X ("\xc4\x03get\xc4\x05state")), 0);
    cr_assert (r.get == TL_SNAPSHOT_STATE);
    //  Integers in any non-negative encoding.
    cr_assert_eq (TRY (&r, GET_TOTALS, X ("\xa3job\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
                       X ("\xa5\x62\x61tch\xd0\x05"),
                       X ("\xa4\x66rom\xd3\x00\x00\x00\x00\x00\x00\x00\x09")),
                  0);
    cr_assert (r.job == UINT64_MAX && r.batch == 5 && r.from == 9);
    cr_assert_eq (TRY (&r, GET_TOTALS, X ("\xa3job\x00"), X ("\xa5\x62\x61tch\xcc\x00"),
                       X ("\xa4\x66rom\xce\x00\x00\x00\x00")),
                  0);
    cr_assert (r.get == TL_SNAPSHOT_TOTALS && r.job == 0 && r.batch == 0 && r.from == 0);
}

Test (snapshot, the_decoder_refuses_what_is_not_a_request)
{
    tl_snapshot_request_t r;
    //  Not one map of str keys, and maps that lie about their size.
    static const s_raw_t frames[] = {
        X (""),
        X ("\x80"),
        X ("\xc0"),
        X ("\x91\xa5state"),
        X ("\xa5state"),
        X ("\x92\xa3get\xa5state"),
        X ("\x81\xa3get\xa5state\xc0"),                  //  Trailing nil
        X ("\x81\xa3get\xa5state\x81\xa3get\xa5state"),  //  Two maps
        X ("\x82\xa3get\xa5state"),                      //  Claims one entry more
        X ("\x80\x81\xa3get\xa5state"),                  //  An empty map first
        X ("\x81\xa3get\xa5stat"),                       //  Truncated
        X ("\x81\xa3get"),
        X ("\x81\x01\xa5state"),                              //  An integer key
        X ("\x81\xc0\xa5state"),                              //  A nil key
        X ("\x81\x91\xa3get\xa5state"),                       //  An array key
        X ("\xdf\xff\xff\xff\xff\xa3get\xa5state"),           //  Claims 2^32-1 entries
        X ("\x81\xdb\xff\xff\xff\xff\xa5state"),              //  A key claims 2^32-1 bytes
        X ("\x81\xa3get\xdb\xff\xff\xff\xff\x78"),            //  The value claims as much
        X ("\x82\xa1u\xdd\xff\xff\xff\xff\xa3get\xa5state"),  //  An unknown one too
        X ("\x81\xa3get\xc1"),
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++)
        cr_assert_eq (s_verdict (frames[i].bytes, frames[i].size), -1, "frame %zu", i);
    cr_assert_eq (tl_snapshot_request_decode (NULL, 0, &r), -1);
    cr_assert (s_is_zero (&r));

    //  "get" missing, unknown or of another type.
    cr_assert_eq (TRY (&r, JOB_7, BATCH_2, FROM_300), -1);
    static const s_raw_t gets[] = {
        X ("\xa3get\xa6status"),
        X ("\xa3get\xa5State"),
        X ("\xa3get\xa4stat"),
        X ("\xa3get\xa6states"),
        X ("\xa3get\xa5total"),
        X ("\xa3get\xa7totals "),
        X ("\xa3get\xa0"),
        X ("\xa3get\xa6state\0"),
        X ("\xa3get\xb1statestatestatest"),
        X ("\xa3get\x01"),
        X ("\xa3get\xc0"),
        X ("\xa3get\xc3"),
        X ("\xa3get\x91\xa5state"),
        X ("\xa3get\x81\xa5state\x01"),
    };
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        cr_assert_eq (s_try_entries (1, &gets[i], &r), -1, "get %zu", i);
        s_raw_t with[4] = {gets[i], JOB_7, BATCH_2, FROM_300};
        cr_assert_eq (s_try_entries (4, with, &r), -1, "get %zu with job, batch, from", i);
    }

    //  totals without one of job, batch and from.
    cr_assert_eq (TRY (&r, GET_TOTALS, BATCH_2, FROM_300), -1, "no job");
    cr_assert_eq (TRY (&r, GET_TOTALS, JOB_7, FROM_300), -1, "no batch");
    cr_assert_eq (TRY (&r, GET_TOTALS, JOB_7, BATCH_2), -1, "no from");
    cr_assert_eq (TRY (&r, GET_TOTALS), -1, "none");
    cr_assert_eq (TRY (&r, GET_TOTALS, JOB_7, BATCH_2, X ("\xa4\x46rom\x00")), -1, "From");

    //  A key twice, even with the same value.
    cr_assert_eq (TRY (&r, GET_STATE, GET_STATE), -1);
    cr_assert_eq (TRY (&r, GET_TOTALS, GET_STATE, JOB_7, BATCH_2, FROM_300), -1);
    cr_assert_eq (TRY (&r, GET_TOTALS, JOB_7, BATCH_2, FROM_300, JOB_7), -1);
    cr_assert_eq (TRY (&r, GET_TOTALS, JOB_7, BATCH_2, BATCH_2, FROM_300), -1);
    cr_assert_eq (TRY (&r, GET_TOTALS, FROM_300, JOB_7, BATCH_2, FROM_300), -1);
    cr_assert_eq (TRY (&r, GET_STATE, JOB_7, JOB_7), -1, "in a state request too");

    //  job, batch and from of another type than uint; the same values under an unknown
    //  key are skipped.
    static const s_raw_t wrong[] = {
        X ("\xc0"),                                  //  nil
        X ("\xff"),                                  //  -1
        X ("\xd0\xff"),                              //  int8 -1
        X ("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),  //  int64 min
        X ("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),  //  1.0
        X ("\xca\x3f\x80\x00\x00"),                  //  1.0f
        X ("\xa1\x37"),                              //  "7"
        X ("\xc4\x01\x07"),                          //  bin
        X ("\xc3"),                                  //  true
        X ("\x91\x07"),                              //  [7]
        X ("\x81\xa1\x61\x07"),                      //  {"a": 7}
        X ("\xd4\x01\x07"),                          //  fixext1
    };
    static const s_raw_t names[] = {X ("\xa3job"), X ("\xa5\x62\x61tch"), X ("\xa4\x66rom"),
                                    X ("\xa4\x66roM")};
    for (size_t k = 0; k < 4; k++)
        for (size_t w = 0; w < sizeof wrong / sizeof wrong[0]; w++) {
            char entry[64];
            memcpy (entry, names[k].bytes, names[k].size);
            memcpy (entry + names[k].size, wrong[w].bytes, wrong[w].size);
            s_raw_t entries[5] = {
                GET_TOTALS, JOB_7, BATCH_2, FROM_300, {entry, names[k].size + wrong[w].size}};
            int rc = s_try_entries (5, entries, &r);
            if (k == 3)
                cr_assert_eq (rc, 0, "an unknown key of value %zu", w);
            else
                cr_assert_eq (rc, -1, "%.*s of wrong type %zu twice", (int)names[k].size - 1,
                              names[k].bytes + 1, w);
            //  In place of the key's only value.
            entries[1 + (k < 3 ? k : 0)] = entries[4];
            rc = s_try_entries (4, entries, &r);
            cr_assert_eq (rc, -1, "%.*s of wrong type %zu, or job missing", (int)names[k].size - 1,
                          names[k].bytes + 1, w);
        }
}

//  Every proper prefix of a request is refused; a frame over TL_SNAPSHOT_REQUEST_MAX
//  bytes is refused even when it is a well-formed request.
Test (snapshot, truncation_trailing_bytes_and_size)
{
    tl_snapshot_request_t request = {TL_SNAPSHOT_TOTALS, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    msgpack_sbuffer buf;
    s_encode (&request, &buf);
    for (size_t len = 0; len < buf.size; len++)
        cr_assert_eq (s_verdict (buf.data, len), -1, "cut at %zu of %zu", len, buf.size);
    cr_assert_eq (s_verdict (buf.data, buf.size), 0);
    for (int byte = 0; byte < 256; byte++) {
        msgpack_sbuffer_write (&buf, &(char){(char)byte}, 1);
        cr_assert_eq (s_verdict (buf.data, buf.size), -1, "trailing 0x%02x", byte);
        buf.size--;
    }
    msgpack_sbuffer_destroy (&buf);

    //  {"get": "state", "pad": "xxx..."} of exactly TL_SNAPSHOT_REQUEST_MAX bytes, and
    //  one byte more.
    for (size_t size = TL_SNAPSHOT_REQUEST_MAX - 2; size <= TL_SNAPSHOT_REQUEST_MAX + 2; size++) {
        size_t head = strlen ("\x82" GET_STATE_BYTES "\xa3pad") + 2;  //  str8 header of the pad
        cr_assert_lt (head, size);
        size_t pad = size - head;
        char *frame = malloc (size);
        cr_assert_not_null (frame);
        memcpy (frame, "\x82" GET_STATE_BYTES "\xa3pad\xd9", head - 1);
        frame[head - 1] = (char)pad;
        memset (frame + head, 'x', pad);
        cr_assert_eq (s_verdict (frame, size), size <= TL_SNAPSHOT_REQUEST_MAX ? 0 : -1,
                      "a request of %zu bytes", size);
        free (frame);
    }
    //  A 10 KB frame.
    static const char head[] = "\x82" GET_STATE_BYTES "\xa3pad\xda";
    size_t at = sizeof head - 1, pad = 10240 - at - 2;
    char *big = malloc (10240);
    cr_assert_not_null (big);
    memcpy (big, head, at);
    big[at++] = (char)(pad >> 8);
    big[at++] = (char)(pad & 0xff);
    memset (big + at, 'x', pad);
    cr_assert_eq (tl_msgpack_check (big, 10240), 0, "a well-formed request");
    cr_assert_eq (s_verdict (big, 10240), -1);
    free (big);
}

//  An unknown value nested as deep as tl_msgpack_check allows is skipped; one level
//  deeper, the request is refused (as a feed body would be).
Test (snapshot, unknown_values_nest_at_most_as_deep_as_the_check_allows)
{
    for (int depth = 28; depth <= 40; depth++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 2);
        msgpack_pack_str_with_body (&pk, "deep", 4);
        for (int i = 0; i < depth; i++)
            if (i % 2)
                msgpack_pack_array (&pk, i + 1 < depth ? 1 : 0);
            else {
                msgpack_pack_map (&pk, i + 1 < depth ? 1 : 0);
                if (i + 1 < depth) msgpack_pack_str_with_body (&pk, "k", 1);
            }
        msgpack_pack_str_with_body (&pk, "get", 3);
        msgpack_pack_str_with_body (&pk, "state", 5);
        cr_assert_leq (buf.size, TL_SNAPSHOT_REQUEST_MAX);
        int check = tl_msgpack_check (buf.data, buf.size);
        int rc = s_verdict (buf.data, buf.size);
        cr_assert_eq (rc, check, "depth %d: decode %d, check %d", depth, rc, check);
        cr_assert_eq (rc, depth <= 31 ? 0 : -1, "depth %d", depth);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  Random mutations of valid requests: never a crash (ASan in the sanitized build);
//  whatever decodes encodes again to a request that decodes the same.
Test (snapshot, random_mutations_never_crash)
{
    static const tl_snapshot_request_t seeds[] = {
        {TL_SNAPSHOT_STATE, 0, 0, 0},
        {TL_SNAPSHOT_TOTALS, 0x1234, 3, 4096},
        {TL_SNAPSHOT_TOTALS, UINT64_MAX, UINT64_MAX, UINT64_MAX},
    };
    uint8_t work[TL_SNAPSHOT_REQUEST_MAX + 64];
    size_t decoded = 0;
    for (int round = 0; round < 100000; round++) {
        msgpack_sbuffer buf;
        s_encode (&seeds[tl_test_random () % 3], &buf);
        size_t size = buf.size;
        memcpy (work, buf.data, size);
        msgpack_sbuffer_destroy (&buf);
        tl_test_mutate (work, &size, sizeof work);
        tl_snapshot_request_t request;
        if (s_decode (work, size, &request) != 0) continue;
        decoded++;
        cr_assert (request.get == TL_SNAPSHOT_STATE || request.get == TL_SNAPSHOT_TOTALS);
        cr_assert_eq (tl_msgpack_check (work, size), 0);
        s_encode (&request, &buf);
        tl_snapshot_request_t back;
        cr_assert_eq (s_decode (buf.data, buf.size, &back), 0);
        cr_assert_eq (back.get, request.get);
        if (request.get == TL_SNAPSHOT_TOTALS)
            cr_assert (back.job == request.job && back.batch == request.batch &&
                       back.from == request.from);
        msgpack_sbuffer_destroy (&buf);
    }
    cr_assert_gt (decoded, 1000, "only %zu mutants decoded", decoded);
    cr_log_info ("100000 mutants: %zu decoded", decoded);
}

//  ---------------------------------------------------------------------------------
//  The same bytes as Python's msgpack.packb of the same dict (the order is the
//  encoder's: get, job, batch, from), and Python's own requests decode.

static const char *s_python_script =
    "import msgpack, sys\n"
    "for line in sys.stdin:\n"
    "    get, job, batch, frm = line.split()\n"
    "    d = {'get': get}\n"
    "    if get == 'totals':\n"
    "        d.update(job=int(job), batch=int(batch))\n"
    "        d['from'] = int(frm)\n"
    "    print(msgpack.packb(d).hex())\n"
    "print(msgpack.packb({'from': 4096, 'batch': 1, 'client': 'subscribe.py', 'job': 2**64 - 1,\n"
    "                     'get': 'totals'}).hex())\n";

Test (snapshot, golden_bytes_from_python_msgpack)
{
    const char *python = "/usr/bin/python3";
    if (system ("/usr/bin/python3 -c 'import msgpack' 2>/dev/null") != 0)
        cr_skip_test ("/usr/bin/python3 has no msgpack module (python3-msgpack)");
    static const tl_snapshot_request_t requests[] = {
        {TL_SNAPSHOT_STATE, 0, 0, 0},
        {TL_SNAPSHOT_TOTALS, 0, 0, 0},
        {TL_SNAPSHOT_TOTALS, UINT64_MAX, 127, 128},
        {TL_SNAPSHOT_TOTALS, 255, 256, 65535},
        {TL_SNAPSHOT_TOTALS, 65536, 1ull << 32, (1ull << 32) - 1},
        {TL_SNAPSHOT_TOTALS, 0x0123456789abcdefull, 1, 123456789},
    };
    size_t n = sizeof requests / sizeof requests[0];
    char dir[] = "/tmp/test_snapshot.XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    char path[512], command[1024];
    snprintf (path, sizeof path, "%s/pack.py", dir);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fputs (s_python_script, file);
    fclose (file);
    snprintf (path, sizeof path, "%s/in", dir);
    file = fopen (path, "w");
    cr_assert_not_null (file);
    for (size_t i = 0; i < n; i++)
        fprintf (file, "%s %llu %llu %llu\n",
                 requests[i].get == TL_SNAPSHOT_STATE ? "state" : "totals",
                 (unsigned long long)requests[i].job, (unsigned long long)requests[i].batch,
                 (unsigned long long)requests[i].from);
    fclose (file);
    snprintf (command, sizeof command, "%s %s/pack.py < %s/in 2>&1", python, dir, dir);
    FILE *run = popen (command, "r");
    cr_assert_not_null (run);
    char line[1024];
    for (size_t i = 0; i <= n; i++) {
        cr_assert_not_null (fgets (line, sizeof line, run), "python gave %zu lines", i);
        line[strcspn (line, "\n")] = 0;
        size_t size = strlen (line) / 2;
        uint8_t bytes[512];
        cr_assert_lt (size, sizeof bytes);
        for (size_t j = 0; j < size; j++) {
            unsigned byte;
            cr_assert_eq (sscanf (line + 2 * j, "%2x", &byte), 1, "python says: %s", line);
            bytes[j] = (uint8_t)byte;
        }
        tl_snapshot_request_t back;
        cr_assert_eq (s_decode (bytes, size, &back), 0, "python's %s", line);
        if (i == n) {
            //  Python's own order, with a key the service does not know.
            cr_assert_eq (back.get, TL_SNAPSHOT_TOTALS);
            cr_assert_eq (back.job, UINT64_MAX);
            cr_assert_eq (back.batch, 1);
            cr_assert_eq (back.from, 4096);
            continue;
        }
        msgpack_sbuffer buf;
        s_encode (&requests[i], &buf);
        cr_assert (buf.size == size && memcmp (buf.data, bytes, size) == 0,
                   "request %zu: C packs %zu bytes, Python %zu (%s)", i, buf.size, size, line);
        cr_assert_eq (back.get, requests[i].get);
        cr_assert_eq (back.job, requests[i].job);
        msgpack_sbuffer_destroy (&buf);
    }
    cr_assert_eq (pclose (run), 0);
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq (system (command), 0);
}
