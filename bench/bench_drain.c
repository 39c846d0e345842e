/*  bench_drain: a consumer that drops chunks, to time tally-ventilator on its own.

    It plays both peers of the ventilator: the workers (a PULL socket connected to the
    ventilator's PUSH endpoint, every CHUNK counted and dropped unmapped) and the sink
    (a ROUTER bound where the ventilator's DEALER connects: JOB gets ACCEPT, each chunk
    drained is acknowledged at once, PING gets PONG, and once END has come and every
    chunk is in, DONE). So the ventilator runs its real protocol, window and all, and
    its speed is the reading, inflating, cutting and sending alone.

    Usage: bench_drain SINK_BIND_ENDPOINT VENTILATOR_ENDPOINT
    Prints: drain: C chunks (D duplicates), B bytes, S s from JOB to DONE, R MB/s
    Exits 0 after DONE, 1 on CANCEL or a socket error.                                  */

#include "tl_clock.h"
#include "tl_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_IDENTITY_MAX 256  //  Longest ROUTER identity kept

typedef struct {
    zsock_t *router;                //  Plays the sink
    zsock_t *pull;                  //  Plays the workers
    tl_table_t *seen;               //  Chunk ids drained (8-byte keys)
    bool have_job;                  //  JOB came
    uint64_t job;                   //  Its id
    uint8_t owner[S_IDENTITY_MAX];  //  Ventilator's ROUTER identity
    size_t owner_size;              //  Its length
    bool ended;                     //  END came
    uint64_t total;                 //  Chunks in the job (from END)
    uint64_t chunks;                //  Distinct chunks drained
    uint64_t duplicates;            //  Chunks that came again
    uint64_t bytes;                 //  Payload bytes of distinct chunks
    uint64_t ack[TL_ACK_MAX];       //  Chunk ids to acknowledge
    uint32_t nack;                  //  How many
    double started;                 //  JOB arrival
    bool done;                      //  DONE sent
    int failed;                     //  CANCEL or error
} s_drain_t;

static void s_reply (s_drain_t *self, tl_msg_t *msg)
{
    tl_send (zsock_resolve (self->router), self->owner, self->owner_size, msg, NULL, 0);
}

static void s_flush_acks (s_drain_t *self)
{
    if (!self->nack) return;
    tl_msg_t msg = {.cmd = TL_CMD_ACK, .job = self->job};
    msg.u.ack.count = self->nack;
    memcpy (msg.u.ack.chunk, self->ack, self->nack * sizeof *self->ack);
    s_reply (self, &msg);
    self->nack = 0;
}

//  Handles one message from the ventilator's DEALER.
static void s_on_control (s_drain_t *self, tl_frames_t *in)
{
    size_t owner_size;
    const void *owner = tl_frames_data (in, 0, &owner_size);
    tl_msg_t msg;
    tl_cmd_t cmd = tl_frames_decode (in, 1, &msg);
    if (cmd == TL_CMD_INVALID || owner_size > S_IDENTITY_MAX) return;
    if (cmd == TL_CMD_JOB && !self->have_job) {
        self->have_job = true;
        self->job = msg.job;
        self->started = tl_now ();
    }
    if (self->have_job && msg.job == self->job) {
        memcpy (self->owner, owner, owner_size);
        self->owner_size = owner_size;
        tl_msg_t reply = {.job = self->job};
        if (cmd == TL_CMD_JOB) {
            reply.cmd = TL_CMD_ACCEPT;
            s_reply (self, &reply);
        } else if (cmd == TL_CMD_PING) {
            reply.cmd = TL_CMD_PONG;
            reply.u.state = (tl_state_body_t){.merged = self->chunks, .known = true};
            s_reply (self, &reply);
        } else if (cmd == TL_CMD_END) {
            self->ended = true;
            self->total = msg.u.end.chunks;
        } else if (cmd == TL_CMD_CANCEL) {
            fprintf (stderr, "bench_drain: job cancelled: %.*s\n", (int)msg.u.reason.len,
                     msg.u.reason.ptr);
            self->failed = 1;
        }
    }
    tl_msg_reset (&msg);
}

//  Counts and drops one CHUNK, and queues its acknowledgement.
static void s_on_chunk (s_drain_t *self, tl_frames_t *in)
{
    tl_msg_t msg;
    if (in->nframes != 3 || tl_frames_decode (in, 0, &msg) != TL_CMD_CHUNK) return;
    uint64_t id = msg.u.chunk.chunk;
    bool ours = self->have_job && msg.job == self->job;
    tl_msg_reset (&msg);
    if (!ours) return;
    size_t size;
    tl_frames_data (in, 2, &size);
    uint64_t count;
    if (tl_table_get (self->seen, &id, sizeof id, &count))
        self->duplicates++;
    else {
        tl_table_add (self->seen, &id, sizeof id, 1);
        self->chunks++;
        self->bytes += size;
    }
    self->ack[self->nack++] = id;
    if (self->nack == TL_ACK_MAX) s_flush_acks (self);
}

static void s_send_done (s_drain_t *self)
{
    tl_msg_t msg = {.cmd = TL_CMD_DONE, .job = self->job};
    const char *output = "(dropped by bench_drain)";
    msg.u.done = (tl_done_body_t){.seconds = tl_now () - self->started,
                                  .output = {output, strlen (output)},
                                  .chunks = self->chunks,
                                  .bytes = self->bytes};
    s_reply (self, &msg);
    self->done = true;
}

int main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: bench_drain SINK_BIND_ENDPOINT VENTILATOR_ENDPOINT\n");
        return 2;
    }
    zsys_init ();
    zsys_set_logident ("bench_drain");
    s_drain_t self = {0};
    const char *why = NULL;
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.rcvhwm = 10000;  //  As the sink
    cfg.sndhwm = 10000;
    self.router = tl_sock_new (ZMQ_ROUTER, argv[1], true, false, &cfg, &why);
    cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = TL_MAXMSG_DEFAULT;
    self.pull = self.router ? tl_sock_new (ZMQ_PULL, argv[2], false, false, &cfg, &why) : NULL;
    self.seen = tl_table_new (1 << 12);
    if (!self.router || !self.pull || !self.seen) {
        fprintf (stderr, "bench_drain: %s\n", why ? why : "out of memory");
        return 1;
    }
    while (!self.done && !self.failed && !zsys_interrupted) {
        zmq_pollitem_t items[] = {{zsock_resolve (self.router), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve (self.pull), 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, 100) == -1 && errno != EINTR) {
            self.failed = 1;
            break;
        }
        tl_frames_t in;
        while (tl_frames_recv (zsock_resolve (self.router), &in, ZMQ_DONTWAIT) >= 0) {
            s_on_control (&self, &in);
            tl_frames_close (&in);
        }
        for (int n = 0;
             n < 256 && tl_frames_recv (zsock_resolve (self.pull), &in, ZMQ_DONTWAIT) >= 0; n++) {
            s_on_chunk (&self, &in);
            tl_frames_close (&in);
        }
        s_flush_acks (&self);
        if (self.ended && self.chunks == self.total) s_send_done (&self);
    }
    double seconds = self.have_job ? tl_now () - self.started : 0;
    printf ("drain: %llu chunks (%llu duplicates), %llu bytes, %.3f s from JOB to DONE, "
            "%.1f MB/s\n",
            (unsigned long long)self.chunks, (unsigned long long)self.duplicates,
            (unsigned long long)self.bytes, seconds,
            seconds > 0 ? (double)self.bytes / 1e6 / seconds : 0.0);
    tl_table_destroy (&self.seen);
    zsock_destroy (&self.pull);
    zsock_destroy (&self.router);  //  Lingers until DONE is out
    return self.failed || !self.done;
}
