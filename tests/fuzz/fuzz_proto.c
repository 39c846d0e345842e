/*  libFuzzer target for every protocol decoder: the first byte picks a command and a
    feed topic, the rest is the command's frame 1 and the topic's body; the same bytes
    also go to the PARTIAL map merger and the generic msgpack checker. A decoder may
    reject anything but must never crash, leak or allocate more than the frame
    justifies; what it accepts must respect the protocol's limits (chunk ids, no secret
    outside JOB/END/PING/CANCEL) and encode again and decode to the same message.

    Seeds (tests/fuzz/corpus-proto): the first byte is the command's index - 1 (JOB 0,
    ACCEPT 1, CHUNK 2, PARTIAL 3, END 4, ACK 5, DONE 6, FAIL 7, PING 8, PONG 9, CANCEL 10),
    then the frame 1 of docs/PROTOCOL.md (job-v1, job-v2: JOBs of earlier versions);
    feed-* seeds pick a topic the same way. The rest also goes to the snapshot
    service's request decoder (snapshot-* seeds: requests after a first byte).       */

#include "tl_feed.h"
#include "tl_proto.h"
#include "tl_snapshot.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  What the decoder promises about what it accepted: chunk ids below TL_CHUNK_ID_MAX, a
//  chunk count at most that, no secret but in the commands that carry one, shard counts
//  1 .. TL_SHARDS_MAX and shards below them (a JOB of another version: none read).
static void s_check_limits (const tl_msg_t *msg)
{
    static const uint8_t zero[TL_SECRET_SIZE];
    if (!tl_cmd_has_secret (msg->cmd) && !tl_secret_equal (msg->secret, zero)) abort ();
    const tl_job_body_t *job = &msg->u.job;
    if (msg->cmd == TL_CMD_JOB && job->version == TL_PROTO_VERSION &&
        (job->shards == 0 || job->shards > TL_SHARDS_MAX || job->shard >= job->shards))
        abort ();
    if (msg->cmd == TL_CMD_JOB && job->version != TL_PROTO_VERSION &&
        (job->shard || job->shards || job->nfiles || !tl_secret_equal (msg->secret, zero)))
        abort ();
    if (msg->cmd == TL_CMD_CHUNK &&
        (msg->u.chunk.shards == 0 || msg->u.chunk.shards > TL_SHARDS_MAX))
        abort ();
    if (msg->cmd == TL_CMD_PARTIAL && msg->u.partial.shard >= TL_SHARDS_MAX) abort ();
    if (msg->cmd == TL_CMD_CHUNK && msg->u.chunk.chunk >= TL_CHUNK_ID_MAX) abort ();
    if (msg->cmd == TL_CMD_PARTIAL && msg->u.partial.chunk >= TL_CHUNK_ID_MAX) abort ();
    if (msg->cmd == TL_CMD_END && msg->u.end.chunks > TL_CHUNK_ID_MAX) abort ();
}

//  The job id, the secret, chunk ids, tags and counts survive a re-encoding.
static bool s_same_guarded (const tl_msg_t *a, const tl_msg_t *b)
{
    if (a->job != b->job || !tl_secret_equal (a->secret, b->secret)) return false;
    switch (a->cmd) {
    case TL_CMD_JOB:
        return a->u.job.version == b->u.job.version &&
               (a->u.job.version != TL_PROTO_VERSION ||
                (a->u.job.shard == b->u.job.shard && a->u.job.shards == b->u.job.shards));
    case TL_CMD_CHUNK:
        return a->u.chunk.chunk == b->u.chunk.chunk && a->u.chunk.tag == b->u.chunk.tag &&
               a->u.chunk.shards == b->u.chunk.shards && a->u.chunk.seed == b->u.chunk.seed;
    case TL_CMD_PARTIAL:
        return a->u.partial.chunk == b->u.partial.chunk && a->u.partial.tag == b->u.partial.tag &&
               a->u.partial.shard == b->u.partial.shard;
    case TL_CMD_END:
        return a->u.end.chunks == b->u.end.chunks && a->u.end.bytes == b->u.end.bytes;
    case TL_CMD_DONE:
        return a->u.done.chunks == b->u.done.chunks && a->u.done.bytes == b->u.done.bytes;
    default:
        return true;
    }
}

static void s_fuzz_msg (uint8_t pick, const uint8_t *frame, size_t size)
{
    tl_cmd_t cmd = (tl_cmd_t)(1 + pick % (TL_CMD_COUNT_ - 1));
    tl_msg_t msg;
    if (tl_msg_decode (cmd, frame, size, &msg) != 0) return;
    s_check_limits (&msg);
    //  A JOB of another version decodes as [job, version]: shards 0, which the encoder
    //  refuses in every JOB. One shard lets it encode (and decode as the same version).
    if (cmd == TL_CMD_JOB && msg.u.job.version != TL_PROTO_VERSION) msg.u.job.shards = 1;
    msgpack_sbuffer again;
    msgpack_sbuffer_init (&again);
    if (tl_msg_encode (&msg, &again) != 0) abort ();
    tl_msg_t back;
    if (tl_msg_decode (cmd, again.data, again.size, &back) != 0 || !s_same_guarded (&msg, &back))
        abort ();
    tl_msg_reset (&back);
    msgpack_sbuffer_destroy (&again);
    tl_msg_reset (&msg);
}

//  Encodes a decoded feed message again (its shard too); entries are copied
//  out of the frame into a block of their count (which the frame's size bounds).
static int s_feed_encode (const tl_feed_msg_t *msg, msgpack_sbuffer *buf)
{
    tl_feed_entries_t list = {0};
    if (msg->topic == TL_FEED_TOP) list = msg->u.top;
    if (msg->topic == TL_FEED_TOTALS) list = msg->u.totals.entries;
    tl_entry_t *entries = calloc (list.count ? list.count : 1, sizeof *entries);
    if (!entries) abort ();
    size_t n = 0;
    tl_str_t key;
    uint64_t total;
    while (tl_feed_entries_next (&list, &key, &total))
        entries[n++] = (tl_entry_t){key.ptr, (uint32_t)key.len, total};
    if (n != list.count) abort ();  //  Walking checked entries cannot fail
    int rc = tl_feed_encode (msg, entries, n, buf);
    free (entries);
    return rc;
}

static void s_fuzz_feed (uint8_t pick, const uint8_t *body, size_t size)
{
    tl_feed_topic_t topic = (tl_feed_topic_t)(1 + pick % (TL_FEED_COUNT_ - 1));
    const char *name = tl_feed_topic_name (topic);
    tl_feed_msg_t msg;
    if (tl_feed_decode (name, strlen (name), body, size, &msg) != 0) return;
    //  What the typed decoder takes, tally-watch's generic check takes too.
    if (tl_msgpack_check (body, size) != 0) abort ();
    msgpack_sbuffer again;
    msgpack_sbuffer_init (&again);
    if (s_feed_encode (&msg, &again) != 0) abort ();
    tl_feed_msg_t back;
    if (tl_feed_decode (name, strlen (name), again.data, again.size, &back) != 0 ||
        back.topic != msg.topic || back.job != msg.job || back.shard != msg.shard ||
        back.shards != msg.shards)
        abort ();
    if (topic == TL_FEED_TOP && back.u.top.count != msg.u.top.count) abort ();
    if (topic == TL_FEED_TOTALS && back.u.totals.entries.count != msg.u.totals.entries.count)
        abort ();
    msgpack_sbuffer_destroy (&again);
}

//  A snapshot request: what decodes is a state or a totals request of at most
//  TL_SNAPSHOT_REQUEST_MAX bytes that tally-watch's generic check takes too, and
//  encodes again to a request that decodes the same; what does not is zeroed.
static void s_fuzz_snapshot (const uint8_t *frame, size_t size)
{
    static const tl_snapshot_request_t zero;
    tl_snapshot_request_t request;
    if (tl_snapshot_request_decode (frame, size, &request) != 0) {
        if (memcmp (&request, &zero, sizeof zero) != 0) abort ();
        return;
    }
    if (request.get != TL_SNAPSHOT_STATE && request.get != TL_SNAPSHOT_TOTALS) abort ();
    if (size > TL_SNAPSHOT_REQUEST_MAX || tl_msgpack_check (frame, size) != 0) abort ();
    msgpack_sbuffer again;
    msgpack_sbuffer_init (&again);
    tl_snapshot_request_t back;
    if (tl_snapshot_request_encode (&request, &again) != 0 ||
        tl_snapshot_request_decode (again.data, again.size, &back) != 0 || back.get != request.get)
        abort ();
    if (request.get == TL_SNAPSHOT_TOTALS &&
        (back.job != request.job || back.batch != request.batch || back.from != request.from))
        abort ();
    msgpack_sbuffer_destroy (&again);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    s_fuzz_msg (data[0], data + 1, size - 1);
    s_fuzz_feed (data[0], data + 1, size - 1);
    s_fuzz_snapshot (data + 1, size - 1);
    tl_table_t *table = tl_table_new (0);
    uint64_t entries = 0;
    if (tl_map_merge (data + 1, size - 1, table, &entries) < 0 && tl_table_size (table) != 0)
        abort ();  //  A rejected frame merges nothing
    tl_table_destroy (&table);
    tl_cmd_parse (data, size);
    tl_feed_topic_parse (data, size);
    if (tl_msgpack_check (data + 1, size - 1) == 0) {
        msgpack_zone zone;
        msgpack_zone_init (&zone, 2048);
        msgpack_object object;
        msgpack_unpack ((const char *)data + 1, size - 1, NULL, &zone, &object);
        msgpack_zone_destroy (&zone);
    }
    return 0;
}
