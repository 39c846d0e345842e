/*  tally-worker: pulls chunks from a ventilator, maps each into a partial dictionary
    (key -> sum of counts) and pushes it, msgpack-encoded, to the sink. Stateless: a
    worker killed at any moment loses nothing the ventilator cannot send again, and any
    number of workers may join or leave at any time, also mid-job.                     */

#include "tl_clock.h"
#include "tl_mapper.h"
#include "tl_opts.h"
#include "tl_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  How long a worker waits after a chunk of a job whose sink shards it does not have.
#define S_MISFIT_PAUSE_MS 1000

typedef struct {
    const char *vent_ep;           //  Ventilator's PUSH endpoint
    const char *sink_ep;           //  Sinks' inbound endpoints, "EP0,EP1,..." (one per shard)
    tl_endpoints_t sinks;          //  The same, split
    size_t max_msg;                //  Largest chunk accepted
    bool quiet;                    //  --quiet
    tl_curve_t curve;              //  CURVE keys
    zsock_t *pull;                 //  Chunks in
    zsock_t *sink[TL_SHARDS_MAX];  //  Partials out, one socket per shard
    tl_table_t *table;             //  The chunk's partial dictionary, reused
    uint64_t chunks;               //  Chunks mapped
    uint64_t junk;                 //  Malformed messages dropped
    double junk_logged_at;         //  Last junk log line (rate limit)
    uint64_t misfit;               //  Chunks of jobs with another number of shards, dropped
    double misfit_logged_at;       //  Last such log line (rate limit)
} s_worker_t;

static void s_free_sbuffer (void *data, void *hint)
{
    (void)hint;
    free (data);
}

static void s_junk (s_worker_t *self, const char *what)
{
    self->junk++;
    double now = tl_now ();
    if (now - self->junk_logged_at >= 1.0) {
        zsys_warning ("dropped a malformed message (%s); %llu so far", what,
                      (unsigned long long)self->junk);
        self->junk_logged_at = now;
    }
}

//  Maps one chunk and sends its partial. Returns 0, or -1 when the sink socket
//  failed (interrupted).
static int s_handle (s_worker_t *self, tl_frames_t *in)
{
    tl_msg_t msg;
    if (in->nframes != 3 || in->extra || tl_frames_decode (in, 0, &msg) != TL_CMD_CHUNK) {
        s_junk (self, in->nframes != 3 ? "wrong frame count" : "not a CHUNK");
        return 0;
    }
    const tl_chunk_body_t *chunk = &msg.u.chunk;
    if (chunk->format == TL_FORMAT_AUTO) {
        s_junk (self, "chunk without a concrete format");
        tl_msg_reset (&msg);
        return 0;
    }
    if (chunk->shards != self->sinks.count) {
        //  Split another way, the parts would reach the wrong shards: leave the chunk to
        //  workers started with the job's list (the ventilator sends it again).
        self->misfit++;
        double now = tl_now ();
        if (now - self->misfit_logged_at >= 5.0) {
            zsys_error ("job %016llx has %u sink shard%s, but this worker was started with %zu "
                        "(--sink %s): its chunks are left to workers started with the job's "
                        "list of shards; %llu dropped so far",
                        (unsigned long long)msg.job, chunk->shards, chunk->shards == 1 ? "" : "s",
                        self->sinks.count, self->sink_ep, (unsigned long long)self->misfit);
            self->misfit_logged_at = now;
        }
        tl_msg_reset (&msg);
        //  Taking the next chunk at once would make this worker the ventilator's fastest
        //  taker of the job's chunks, each one lost for an attempt. Waiting, it holds the
        //  few its queue has room for, and the others go to workers that can count them.
        zclock_sleep (S_MISFIT_PAUSE_MS);
        return 0;
    }
    size_t size;
    const char *data = tl_frames_data (in, 2, &size);
    tl_map_stats_t stats = {0};
    tl_table_clear (self->table);
    if (tl_map (self->table, chunk->format, &chunk->filter, data, size, &stats) != 0) {
        zsys_error ("out of memory mapping chunk %llu", (unsigned long long)chunk->chunk);
        tl_msg_reset (&msg);
        return 0;  //  Not answered: the ventilator sends it again, maybe to another worker
    }

    uint32_t shards = chunk->shards;
    uint32_t counter = tl_shard_counter (chunk->chunk, shards);
    tl_msg_t out = {.cmd = TL_CMD_PARTIAL, .job = msg.job};
    tl_partial_body_t counted = {.chunk = chunk->chunk,
                                 .tag = chunk->tag,
                                 .file = chunk->file,
                                 .bytes = size,
                                 .lines = stats.lines,
                                 .bad_lines = stats.bad_lines,
                                 .filtered = stats.filtered,
                                 .bad_samples = stats.bad_samples};
    for (uint32_t i = 0; i < stats.bad_samples; i++)
        counted.bad_offset[i] = chunk->offset + stats.bad_offset[i];
    uint64_t seed = chunk->seed;
    tl_msg_reset (&msg);

    msgpack_sbuffer map[TL_SHARDS_MAX];
    for (uint32_t i = 0; i < shards; i++)
        msgpack_sbuffer_init (&map[i]);
    int rc = 0;
    if (tl_map_encode_split (self->table, seed, shards, map) != 0) {
        zsys_error ("out of memory encoding a partial");
        shards = 0;  //  Nothing sent: the ventilator sends the chunk again
    }
    for (uint32_t i = 0; i < shards && rc == 0; i++) {
        //  One shard counts the chunk's bytes and lines; the others get its keys only.
        out.u.partial = i == counter ? counted
                                     : (tl_partial_body_t){.chunk = counted.chunk,
                                                           .tag = counted.tag,
                                                           .file = counted.file};
        out.u.partial.shard = i;
        //  The encoded map goes out as its own frame without a copy; libzmq frees it.
        zmq_msg_t payload;
        size_t map_size = map[i].size;
        char *map_data = msgpack_sbuffer_release (&map[i]);
        if (zmq_msg_init_data (&payload, map_data, map_size, s_free_sbuffer, NULL) != 0) {
            free (map_data);
            break;
        }
        if (tl_send (zsock_resolve (self->sink[i]), NULL, 0, &out, &payload, 0) != 0) rc = -1;
    }
    for (uint32_t i = 0; i < TL_SHARDS_MAX && i < self->sinks.count; i++)
        msgpack_sbuffer_destroy (&map[i]);
    if (rc == 0 && shards) self->chunks++;
    return rc;
}

int main (int argc, char **argv)
{
    s_worker_t self = {.vent_ep = "tcp://localhost:5557",
                       .sink_ep = "tcp://localhost:5558",
                       .max_msg = TL_MAXMSG_DEFAULT};
    tl_opt_t opts[] = {
        TL_OPT ("ventilator", 'v', "TALLY_VENTILATOR", TL_OPT_STR, &self.vent_ep, "ENDPOINT",
                "Where to pull chunks from (default tcp://localhost:5557)", 0, 0),
        TL_OPT ("sink", 's', "TALLY_SINK", TL_OPT_STR, &self.sink_ep, "ENDPOINT",
                "Where to push partial results: the sink, or the job's sink shards as a "
                "comma-separated list in shard order, the same as the ventilator's --sink "
                "(default tcp://localhost:5558)",
                0, 0),
        TL_OPT_MAX_MESSAGE (self.max_msg, "Largest chunk accepted (default 256M)"),
        TL_OPT_QUIET (self.quiet),
        TL_OPTS_CURVE_CLIENT (self.curve),
    };
    tl_cli_t cli = {.program = "tally-worker",
                    .usage = "[OPTIONS]",
                    .summary = "Pulls chunks from tally-ventilator, counts their keys and pushes "
                               "the partial totals to tally-sink.",
                    TL_CLI_OPTS (opts)};
    tl_sock_start (&cli, argc, argv, &self.curve);
    const char *why;
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    //  One chunk queued here at most: the rest stay with the ventilator for others.
    cfg.rcvhwm = 1;
    cfg.maxmsgsize = (int64_t)self.max_msg;
    cfg.linger_ms = 0;
    //  No ZMTP heartbeats of its own on this socket: its queue of one is full whenever
    //  the worker is busy, and libzmq 4.3.4 aborts (stream_engine_base.cpp:331,
    //  !_io_error) when a heartbeat falls due on a connection whose peer closed while its
    //  input was stopped: a ventilator that exits or dies while this worker maps a chunk
    //  or holds one. TCP keepalive notices a vanished ventilator host instead, so that
    //  the worker connects again when a ventilator comes back there.
    cfg.heartbeat_ivl_ms = 0;
    cfg.keepalive_ms = 5000;
    self.pull = tl_sock_new (ZMQ_PULL, self.vent_ep, false, false, &cfg, &why);
    if (tl_endpoints_parse (self.sink_ep, &self.sinks, &why) != 0)
        tl_cli_usage_error (&cli, "--sink: %s", why);
    cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = 1 << 20;
    bool ready = self.pull != NULL;
    for (size_t i = 0; ready && i < self.sinks.count; i++) {
        self.sink[i] = tl_sock_new (ZMQ_DEALER, self.sinks.endpoint[i], false, false, &cfg, &why);
        ready = self.sink[i] != NULL;
    }
    self.table = tl_table_new (1 << 12);
    if (!ready || !self.table) {
        fprintf (stderr, "tally-worker: %s\n", self.table ? why : "out of memory");
        return 1;
    }
    if (!self.quiet) zsys_info ("pulling from %s, pushing to %s", self.vent_ep, self.sink_ep);

    while (!zsys_interrupted) {
        tl_frames_t in;
        if (tl_frames_recv (zsock_resolve (self.pull), &in, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            break;
        }
        int rc = s_handle (&self, &in);
        tl_frames_close (&in);
        if (rc != 0) break;
    }
    if (!self.quiet) zsys_info ("stopping after %llu chunks", (unsigned long long)self.chunks);
    tl_table_destroy (&self.table);
    zsock_destroy (&self.pull);
    for (size_t i = 0; i < self.sinks.count; i++)
        zsock_destroy (&self.sink[i]);
    tl_endpoints_free (&self.sinks);
    return 0;
}
