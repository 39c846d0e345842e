/*  tl_snapshot: the sink's snapshot service, beside its feed, for subscribers that join
    late (docs/PROTOCOL.md, section 4, "Late joiners"). The feed only carries what is
    published after a subscriber connects; the snapshot service answers, on request,
    with the state the feed's messages would have built: every open job's latest
    progress and top, the last finished jobs' done or failed, the sink's stats, and,
    batch by batch, a finished job's totals (the ZeroMQ guide's Clone pattern: a
    subscriber subscribes first, then asks for the snapshot, so nothing falls between).

    The service is a ROUTER socket; a client connects a DEALER and sends one frame per
    request, a msgpack map with str keys. Replies are [topic, body] messages exactly as
    the feed's (tl_feed_decode reads them), plus "snapshot" (the end of a state reply)
    and "error" (a request it could not answer).                                    */

#ifndef TL_SNAPSHOT_H_INCLUDED
#define TL_SNAPSHOT_H_INCLUDED

#include "tl_proto.h"

//  The endpoint of the snapshot service beside a feed endpoint: tcp://HOST:PORT ->
//  tcp://HOST:PORT+1, ipc://PATH -> ipc://PATH.snapshot. Returns a new string (the
//  caller frees it), or NULL when the feed endpoint has no such neighbour (another
//  transport, a port that is not a number from 1 to 65534, "*" as the port).
char *tl_snapshot_endpoint (const char *feed);

typedef enum {
    TL_SNAPSHOT_INVALID = 0,
    TL_SNAPSHOT_STATE,   //  {"get": "state"}
    TL_SNAPSHOT_TOTALS,  //  {"get": "totals", "job": J, "batch": B, "from": CURSOR}
} tl_snapshot_get_t;

typedef struct {
    tl_snapshot_get_t get;  //  What is asked for
    uint64_t job;           //  totals: the job
    uint64_t batch;         //  totals: the batch's number (0 first)
    uint64_t from;          //  totals: where it starts: 0, or the previous reply's next
} tl_snapshot_request_t;

//  Largest request frame the service reads.
#define TL_SNAPSHOT_REQUEST_MAX 256

//  Appends the request's frame to buf. Returns 0, or -1 when out of memory or the
//  request is TL_SNAPSHOT_INVALID (buf as it was).
int tl_snapshot_request_encode (const tl_snapshot_request_t *request, msgpack_sbuffer *buf);

//  Decodes a request frame: a map with str keys, "get" one of "state" and "totals";
//  "job", "batch" and "from" uints, required for totals; unknown keys skipped (nested
//  at most 32 deep); no known key twice, nothing after the map, at most
//  TL_SNAPSHOT_REQUEST_MAX bytes. Returns 0, or -1 (then request->get is
//  TL_SNAPSHOT_INVALID).
int tl_snapshot_request_decode (const void *data, size_t size, tl_snapshot_request_t *request);

#endif
