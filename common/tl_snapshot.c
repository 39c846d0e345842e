/*  tl_snapshot: the snapshot service's endpoint rule and its request frame. */

#include "tl_snapshot.h"
#include "tl_msgpack_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tl_snapshot_endpoint (const char *feed)
{
    if (!feed) return NULL;
    if (strncmp (feed, "ipc://", 6) == 0 && feed[6]) {
        size_t len = strlen (feed);
        char *endpoint = malloc (len + sizeof ".snapshot");
        if (endpoint) snprintf (endpoint, len + sizeof ".snapshot", "%s.snapshot", feed);
        return endpoint;
    }
    if (strncmp (feed, "tcp://", 6) != 0) return NULL;
    const char *colon = strrchr (feed + 6, ':');
    if (!colon || colon == feed + 6 || !colon[1] || strlen (colon + 1) > 5) return NULL;
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') return NULL;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65534) return NULL;
    size_t head = (size_t)(colon - feed), size = head + 8;
    char *endpoint = malloc (size);
    if (endpoint) snprintf (endpoint, size, "%.*s:%ld", (int)head, feed, port + 1);
    return endpoint;
}

static const char *s_gets[] = {[TL_SNAPSHOT_STATE] = "state", [TL_SNAPSHOT_TOTALS] = "totals"};

int tl_snapshot_request_encode (const tl_snapshot_request_t *request, msgpack_sbuffer *buf)
{
    assert (request && buf);
    if (request->get != TL_SNAPSHOT_STATE && request->get != TL_SNAPSHOT_TOTALS) return -1;
    size_t start = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    bool totals = request->get == TL_SNAPSHOT_TOTALS;
    const char *get = s_gets[request->get];
    int rc = msgpack_pack_map (&pk, totals ? 4 : 1) || tl__mp_pack_str (&pk, "get", 3) ||
             tl__mp_pack_str (&pk, get, strlen (get));
    if (totals && rc == 0)
        rc = tl__mp_pack_str (&pk, "job", 3) || msgpack_pack_uint64 (&pk, request->job) ||
             tl__mp_pack_str (&pk, "batch", 5) || msgpack_pack_uint64 (&pk, request->batch) ||
             tl__mp_pack_str (&pk, "from", 4) || msgpack_pack_uint64 (&pk, request->from);
    if (rc != 0) buf->size = start;
    return rc != 0 ? -1 : 0;
}

static bool s_is (tl_str_t name, const char *known)
{
    return strlen (known) == name.len && memcmp (known, name.ptr, name.len) == 0;
}

//  Reads the map into request; returns 0 or -1.
static int s_decode (tl__mp_reader_t *r, tl_snapshot_request_t *request)
{
    enum { GET = 1, JOB = 2, BATCH = 4, FROM = 8 };
    uint32_t keys, seen = 0;
    if (tl__mp_read_map (r, UINT32_MAX, &keys) == -1) return -1;
    for (uint32_t i = 0; i < keys; i++) {
        tl_str_t name, value;
        if (tl__mp_read_str (r, SIZE_MAX, &name) == -1) return -1;
        uint32_t bit = s_is (name, "get")     ? GET
                       : s_is (name, "job")   ? JOB
                       : s_is (name, "batch") ? BATCH
                       : s_is (name, "from")  ? FROM
                                              : 0;
        if (bit & seen) return -1;
        seen |= bit;
        int rc = 0;
        if (bit == GET) {
            rc = tl__mp_read_str (r, 16, &value);
            if (rc == 0 && s_is (value, s_gets[TL_SNAPSHOT_STATE]))
                request->get = TL_SNAPSHOT_STATE;
            else if (rc == 0 && s_is (value, s_gets[TL_SNAPSHOT_TOTALS]))
                request->get = TL_SNAPSHOT_TOTALS;
            else
                rc = -1;
        } else if (bit)
            rc = tl__mp_read_u64 (r, bit == JOB     ? &request->job
                                     : bit == BATCH ? &request->batch
                                                    : &request->from);
        else
            rc = tl__mp_skip (r, 1);
        if (rc == -1) return -1;
    }
    if (!(seen & GET) || !tl__mp_at_end (r)) return -1;
    uint32_t need = JOB | BATCH | FROM;
    if (request->get == TL_SNAPSHOT_TOTALS && (seen & need) != need) return -1;
    return 0;
}

int tl_snapshot_request_decode (const void *data, size_t size, tl_snapshot_request_t *request)
{
    assert (data || size == 0);
    assert (request);
    memset (request, 0, sizeof *request);
    tl__mp_reader_t r;
    tl__mp_init (&r, data, size);
    if (size > TL_SNAPSHOT_REQUEST_MAX || s_decode (&r, request) == -1) {
        memset (request, 0, sizeof *request);
        return -1;
    }
    return 0;
}
