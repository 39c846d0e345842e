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

typedef struct {
    const char *vent_ep;    //  Ventilator's PUSH endpoint
    const char *sink_ep;    //  Sink's inbound endpoint
    size_t max_msg;         //  Largest chunk accepted
    bool quiet;             //  --quiet
    tl_curve_t curve;       //  CURVE keys
    zsock_t *pull;          //  Chunks in
    zsock_t *sink;          //  Partials out
    tl_table_t *table;      //  The chunk's partial dictionary, reused
    uint64_t chunks;        //  Chunks mapped
    uint64_t junk;          //  Malformed messages dropped
    double junk_logged_at;  //  Last junk log line (rate limit)
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
    size_t size;
    const char *data = tl_frames_data (in, 2, &size);
    tl_map_stats_t stats = {0};
    tl_table_clear (self->table);
    if (tl_map (self->table, chunk->format, &chunk->filter, data, size, &stats) != 0) {
        zsys_error ("out of memory mapping chunk %llu", (unsigned long long)chunk->chunk);
        tl_msg_reset (&msg);
        return 0;  //  Not answered: the ventilator sends it again, maybe to another worker
    }

    tl_msg_t out = {.cmd = TL_CMD_PARTIAL, .job = msg.job};
    out.u.partial = (tl_partial_body_t){.chunk = chunk->chunk,
                                        .tag = chunk->tag,
                                        .file = chunk->file,
                                        .bytes = size,
                                        .lines = stats.lines,
                                        .bad_lines = stats.bad_lines,
                                        .filtered = stats.filtered,
                                        .bad_samples = stats.bad_samples};
    for (uint32_t i = 0; i < stats.bad_samples; i++)
        out.u.partial.bad_offset[i] = chunk->offset + stats.bad_offset[i];
    tl_msg_reset (&msg);

    msgpack_sbuffer map;
    msgpack_sbuffer_init (&map);
    if (tl_map_encode (self->table, &map) != 0) {
        msgpack_sbuffer_destroy (&map);
        zsys_error ("out of memory encoding a partial");
        return 0;
    }
    //  The encoded map goes out as its own frame without a copy; libzmq frees it.
    zmq_msg_t payload;
    size_t map_size = map.size;
    char *map_data = msgpack_sbuffer_release (&map);
    if (zmq_msg_init_data (&payload, map_data, map_size, s_free_sbuffer, NULL) != 0) {
        free (map_data);
        return 0;
    }
    if (tl_send (zsock_resolve (self->sink), NULL, 0, &out, &payload, 0) != 0) return -1;
    self->chunks++;
    return 0;
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
                "Where to push partial results (default tcp://localhost:5558)", 0, 0),
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
    self.pull = tl_sock_new (ZMQ_PULL, self.vent_ep, false, false, &cfg, &why);
    cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = 1 << 20;
    self.sink = self.pull ? tl_sock_new (ZMQ_DEALER, self.sink_ep, false, false, &cfg, &why) : NULL;
    self.table = tl_table_new (1 << 16);
    if (!self.pull || !self.sink || !self.table) {
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
    zsock_destroy (&self.sink);
    return 0;
}
