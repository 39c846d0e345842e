/*  tally-ventilator: reads the input files, cuts them into chunks of whole lines and
    pushes them to the workers; opens the job at the sink and keeps every chunk the
    sink has not acknowledged in a bounded window, sending it again when its answer is
    late (at-least-once delivery; the sink merges each chunk once). Exits 0 only when
    the sink confirms that the whole job is merged.                                    */

#include "tl_bar.h"
#include "tl_clock.h"
#include "tl_files.h"
#include "tl_opts.h"
#include "tl_sock.h"
#include "tl_source.h"
#include "window.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct {
    //  Options
    const char *bind;     //  PUSH endpoint for workers
    const char *sink_ep;  //  Sink's inbound endpoint
    tl_jobspec_t spec;    //  What the job counts and how it is read
    bool quiet;           //  --quiet
    tl_curve_t curve;     //  CURVE keys

    //  State
    tl_files_t files;                //  Inputs
    tl_format_t *file_format;        //  Format of each file (detected on its first chunk)
    zsock_t *push;                   //  Chunks out
    zsock_t *sink;                   //  DEALER to the sink
    zsock_t *monitor;                //  PAIR end of the PUSH socket's monitor: workers come and go
    tl_source_t *source;             //  Reads and cuts the files
    tl_bar_t *progress;              //  Bar or log lines
    uint64_t job;                    //  Job id
    uint8_t secret[TL_SECRET_SIZE];  //  The job's secret: only its holder steers the job
    bool accepted;                   //  Sink accepted the job
    tl_window_t *unacked;            //  Chunks cut and not yet acknowledged, and when to resend
    bool source_done;                //  Every chunk is cut
    bool end_sent;                   //  END told the sink the count
    uint64_t cut_bytes;              //  Payload bytes cut
    double heard_at;                 //  Last message from the sink
    double pinged_at;                //  Last PING or JOB sent
    double bound_at;                 //  When the PUSH socket was bound
    int workers;                     //  Workers connected now (handshake done, not gone)
    int refused;                     //  Connections whose handshake failed, not yet closed
    bool worker_seen;                //  A worker has connected at least once
    double workers_gone_at;          //  When the last worker connected left
    double warned_at;                //  Last "no worker connected" warning (0: none)
} s_vent_t;

static void s_free_buf (void *data, void *hint)
{
    (void)data;
    tl_buf_release ((tl_buf_t *)hint);
}

static void s_msg_init (s_vent_t *self, tl_msg_t *msg, tl_cmd_t cmd)
{
    memset (msg, 0, sizeof *msg);
    msg->cmd = cmd;
    msg->job = self->job;
    if (tl_cmd_has_secret (cmd)) memcpy (msg->secret, self->secret, TL_SECRET_SIZE);
}

static int s_send_to_sink (s_vent_t *self, tl_msg_t *msg)
{
    return tl_send (zsock_resolve (self->sink), NULL, 0, msg, NULL, ZMQ_DONTWAIT);
}

static void s_send_job (s_vent_t *self)
{
    tl_msg_t msg;
    s_msg_init (self, &msg, TL_CMD_JOB);
    tl_str_t *names = calloc (self->files.count, sizeof *names);
    if (!names) return;
    for (size_t i = 0; i < self->files.count; i++)
        names[i] = (tl_str_t){self->files.names[i], strlen (self->files.names[i])};
    msg.u.job = (tl_job_body_t){.version = TL_PROTO_VERSION,
                                .strict = self->spec.strict,
                                .input_bytes = self->files.bytes,
                                .nfiles = (uint32_t)self->files.count,
                                .files = names};
    s_send_to_sink (self, &msg);
    free (names);
    self->pinged_at = tl_now ();
}

//  Sends a chunk from the window without waiting. Returns 0, or -1 when the socket
//  would block.
static int s_send_chunk (s_vent_t *self, const tl_window_slot_t *slot)
{
    tl_msg_t msg;
    s_msg_init (self, &msg, TL_CMD_CHUNK);
    msg.u.chunk = (tl_chunk_body_t){.chunk = slot->id,
                                    .tag = tl_chunk_tag (self->secret, self->job, slot->id),
                                    .file = slot->chunk.file,
                                    .offset = slot->chunk.offset,
                                    .format = self->file_format[slot->chunk.file],
                                    .filter = self->spec.filter};
    zmq_msg_t payload;
    tl_buf_ref (slot->chunk.buf);
    zmq_msg_init_data (&payload, (void *)slot->chunk.data, slot->chunk.size, s_free_buf,
                       slot->chunk.buf);
    if (tl_send (zsock_resolve (self->push), NULL, 0, &msg, &payload, ZMQ_DONTWAIT) != 0) return -1;
    tl_window_sent (self->unacked, slot, tl_now ());
    return 0;
}

//  A file's first chunk: picks its format (once, for the warning and the workers alike)
//  and warns when it looks binary.
static void s_first_chunk (s_vent_t *self, const tl_chunk_t *chunk)
{
    tl_format_t format = self->spec.format == TL_FORMAT_AUTO
                             ? tl_format_detect (chunk->data, chunk->size)
                             : self->spec.format;
    if (memchr (chunk->data, 0, chunk->size < 65536 ? chunk->size : 65536))
        zsys_warning ("%s holds NUL bytes: is it a binary file? Its lines are read as %s",
                      self->files.names[chunk->file], tl_format_name (format));
    if (self->spec.format == TL_FORMAT_AUTO) {
        self->file_format[chunk->file] = format;
        if (self->spec.verbose)
            zsys_info ("%s: format %s", self->files.names[chunk->file], tl_format_name (format));
    }
}

//  Cuts the next chunk into the window. Returns its slot, or NULL at the end or on an
//  error (then *failed is set and the reason is in the source).
static const tl_window_slot_t *s_cut (s_vent_t *self, bool *failed)
{
    tl_chunk_t chunk;
    int rc = tl_source_next (self->source, &chunk);
    if (rc <= 0) {
        self->source_done = true;
        *failed = rc < 0;
        return NULL;
    }
    if (chunk.first) s_first_chunk (self, &chunk);
    self->cut_bytes += chunk.size;
    return tl_window_add (self->unacked, &chunk);
}

//  Sends what is ready while the socket takes it: a chunk due again first, then one cut
//  and not sent yet, then a new cut. Returns -1 on a read error.
static int s_pump (s_vent_t *self)
{
    double now = tl_now ();
    while (true) {
        const tl_window_slot_t *slot = tl_window_due (self->unacked, now, self->source_done);
        if (!slot && !self->source_done && tl_window_has_room (self->unacked)) {
            bool failed = false;
            slot = s_cut (self, &failed);
            if (failed) return -1;
        }
        if (!slot) return 0;
        if (s_send_chunk (self, slot) != 0) {
            //  Socket full: the poll tells us when it drains. Or nobody to take it: then
            //  a chunk whose worker left with it loses its attempt all the same.
            if (self->workers == 0) tl_window_undelivered (self->unacked, slot, now);
            return 0;
        }
    }
}

static void s_on_ack (s_vent_t *self, const tl_ack_body_t *ack)
{
    double now = tl_now ();
    for (uint32_t i = 0; i < ack->count; i++)
        tl_window_ack (self->unacked, ack->chunk[i], now);
}

//  A worker came or went. When one's connection closes (it died, stopped, dropped a
//  message over its --max-message, or its host vanished and the heartbeat noticed),
//  whatever was queued to it or being mapped there is lost. A connection that never
//  finished its handshake (a port scan, a worker with the wrong CURVE keys, retrying)
//  was never given a chunk: its close must not make every chunk out suspect, since
//  suspect resends count as attempts. libzmq reports such a handshake's failure just
//  before its close, from the same thread, which is how the two closes are told apart.
static void s_on_monitor (s_vent_t *self)
{
    //  libzmq's monitor events: frame 1 is a 16-bit event and a 32-bit value, frame 2
    //  the peer's endpoint.
    tl_frames_t in;
    if (tl_frames_recv (zsock_resolve (self->monitor), &in, ZMQ_DONTWAIT) < 0) return;
    size_t size;
    const uint8_t *event = tl_frames_data (&in, 0, &size);
    uint16_t id = 0;
    if (event && size >= 2) memcpy (&id, event, sizeof id);
    switch (id) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        self->workers++;
        self->worker_seen = true;
        if (self->spec.verbose) zsys_info ("a worker connected (%d now)", self->workers);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        self->refused++;
        break;
    case ZMQ_EVENT_DISCONNECTED:
        if (self->refused > 0) {
            self->refused--;
            break;
        }
        if (self->workers > 0 && --self->workers == 0) self->workers_gone_at = tl_now ();
        tl_window_disconnected (self->unacked);
        if (self->spec.verbose)
            zsys_info ("a worker disconnected (%d left); chunks it may hold will be sent again",
                       self->workers);
        break;
    default:
        break;
    }
    tl_frames_close (&in);
}

//  endpoint as a worker elsewhere would name it: a wildcard or localhost host becomes
//  HOST, for the user to fill in. Returns buf.
static const char *s_endpoint_for_worker (const char *endpoint, char *buf, size_t size)
{
    static const char *local[] = {"tcp://*:", "tcp://0.0.0.0:", "tcp://localhost:"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        size_t len = strlen (local[i]);
        if (strncmp (endpoint, local[i], len) == 0) {
            snprintf (buf, size, "tcp://HOST:%s", endpoint + len);
            return buf;
        }
    }
    snprintf (buf, size, "%s", endpoint);
    return buf;
}

//  Chunks wait and no worker has ever connected: says so every 5 s from 3 s on, since a
//  job that waits for nobody looks exactly like a job that hangs. A warning, not
//  progress, so --quiet keeps it; once a worker has come, losing workers is normal. An
//  ack also proves a worker, one that connected before the monitor started.
static void s_warn_no_worker (s_vent_t *self, double now)
{
    if (self->worker_seen || tl_window_acked (self->unacked) > 0) return;
    if (now - self->bound_at < 3 || now - self->warned_at < 5) return;
    char push[256], sink[256];
    tl_bar_clear (self->progress);
    fprintf (stderr,
             "tally-ventilator: no worker connected to %s for %.0f s; start one with: "
             "tally-worker --ventilator %s --sink %s%s\n",
             self->bind, now - self->bound_at,
             s_endpoint_for_worker (self->bind, push, sizeof push),
             s_endpoint_for_worker (self->sink_ep, sink, sizeof sink),
             self->curve.secret_file ? " and its CURVE keys" : "");
    fflush (stderr);
    self->warned_at = now;
}

static void s_print_summary (s_vent_t *self, const tl_done_body_t *done)
{
    char bytes[32], rate[32];
    tl_human_bytes ((double)self->cut_bytes, bytes, sizeof bytes);
    tl_human_bytes (done->seconds > 0 ? (double)self->cut_bytes / done->seconds : 0, rate,
                    sizeof rate);
    printf ("%s in %llu files, %llu lines (%llu bad, %llu filtered out): %llu keys, sum %llu, "
            "in %.2f s (%s/s)\n",
            bytes, (unsigned long long)self->files.count, (unsigned long long)done->lines,
            (unsigned long long)done->bad_lines, (unsigned long long)done->filtered,
            (unsigned long long)done->keys, (unsigned long long)done->sum, done->seconds, rate);
    printf ("totals written to %.*s\n", (int)done->output.len, done->output.ptr);
    fflush (stdout);
    uint64_t resent = tl_window_resent (self->unacked);
    if (resent)
        zsys_info ("%llu chunks were sent again (lost or late workers); each was merged once; "
                   "the most attempts a chunk took: %u (--max-attempts %ld)",
                   (unsigned long long)resent, tl_window_most_attempts (self->unacked),
                   self->spec.max_attempts);
}

static void s_cancel (s_vent_t *self, const char *reason);

//  Handles one message from the sink. Returns 1 when the job is over (exit code in
//  *status), 0 otherwise.
static int s_on_sink (s_vent_t *self, int *status)
{
    tl_frames_t in;
    if (tl_frames_recv (zsock_resolve (self->sink), &in, ZMQ_DONTWAIT) < 0) return 0;
    tl_msg_t msg;
    tl_cmd_t cmd = tl_frames_decode (&in, 0, &msg);
    int over = 0;
    if (cmd == TL_CMD_INVALID || msg.job != self->job) {
        if (cmd != TL_CMD_INVALID) tl_msg_reset (&msg);
        tl_frames_close (&in);
        return 0;
    }
    self->heard_at = tl_now ();
    tl_window_heard (self->unacked, self->heard_at);
    switch (cmd) {
    case TL_CMD_ACCEPT:
        if (!self->accepted && self->spec.verbose)
            zsys_info ("job %016llx accepted by %s", (unsigned long long)self->job, self->sink_ep);
        self->accepted = true;
        break;
    case TL_CMD_ACK:
        s_on_ack (self, &msg.u.ack);
        break;
    case TL_CMD_PONG:
        if (msg.u.merged < tl_window_acked (self->unacked)) {
            tl_bar_finish (self->progress);
            fprintf (stderr,
                     "tally-ventilator: the sink reports %llu chunks merged, but had acknowledged "
                     "%llu: it lost merged chunks (did it restart without its checkpoint?)\n",
                     (unsigned long long)msg.u.merged,
                     (unsigned long long)tl_window_acked (self->unacked));
            s_cancel (self, "the sink lost merged chunks");
            *status = 1;
            over = 1;
        }
        break;
    case TL_CMD_DONE:
        if (msg.u.done.chunks != tl_window_added (self->unacked) ||
            msg.u.done.bytes != self->cut_bytes) {
            tl_bar_finish (self->progress);
            fprintf (stderr,
                     "tally-ventilator: the sink reports %llu chunks and %llu bytes merged, but "
                     "this job sent %llu chunks and %llu bytes: its totals are not trusted\n",
                     (unsigned long long)msg.u.done.chunks, (unsigned long long)msg.u.done.bytes,
                     (unsigned long long)tl_window_added (self->unacked),
                     (unsigned long long)self->cut_bytes);
            *status = 1;
            over = 1;
            break;
        }
        tl_bar_update (self->progress, self->files.bytes, tl_window_acked_bytes (self->unacked),
                       tl_window_acked (self->unacked), tl_window_added (self->unacked), true);
        tl_bar_finish (self->progress);
        if (!self->quiet) s_print_summary (self, &msg.u.done);
        *status = 0;
        over = 1;
        break;
    case TL_CMD_FAIL:
        tl_bar_finish (self->progress);
        fprintf (stderr, "tally-ventilator: the sink failed the job: %.*s\n", (int)msg.u.reason.len,
                 msg.u.reason.ptr);
        *status = 1;
        over = 1;
        break;
    default:
        break;
    }
    tl_msg_reset (&msg);
    tl_frames_close (&in);
    return over;
}

static void s_cancel (s_vent_t *self, const char *reason)
{
    tl_msg_t msg;
    s_msg_init (self, &msg, TL_CMD_CANCEL);
    msg.u.reason = (tl_str_t){reason, strlen (reason)};
    s_send_to_sink (self, &msg);
}

//  A chunk failed every attempt it may take: names it and what usually causes it, and
//  cancels the job at the sink. The job cannot complete without the chunk.
static void s_fail_chunk (s_vent_t *self, const tl_window_slot_t *slot, double now)
{
    const tl_chunk_t *chunk = &slot->chunk;
    uint32_t attempts = tl_window_attempts (self->unacked, slot);
    uint32_t sends = tl_window_sends (self->unacked, slot);
    char size[32], times[64], stranded[128] = "";
    tl_human_bytes ((double)chunk->size, size, sizeof size);
    snprintf (times, sizeof times, "%u time%s", sends, sends == 1 ? "" : "s");
    //  Fewer sends than attempts: its last attempts found no worker to take them, as when
    //  a worker drops a message over its --max-message and never reconnects. More: backup
    //  copies.
    if (sends < attempts && self->workers == 0)
        snprintf (stranded, sizeof stranded,
                  "; no worker has been connected to take it again for %.0f s",
                  now - self->workers_gone_at);
    else if (sends != attempts)
        snprintf (times + strlen (times), sizeof times - strlen (times), " (%u attempts)",
                  attempts);
    tl_bar_finish (self->progress);
    fprintf (stderr,
             "tally-ventilator: chunk %llu (%s, bytes %llu..%llu, %s) was sent %s and never "
             "merged%s. Likely causes: the chunk is larger than a worker's --max-message (lower "
             "--chunk-size or raise the worker's --max-message), or a worker crashes or runs "
             "out of memory on these lines (see the workers' logs).\n",
             (unsigned long long)slot->id, self->files.names[chunk->file],
             (unsigned long long)chunk->offset,
             (unsigned long long)(chunk->offset + chunk->size - 1), size, times, stranded);
    char reason[96];
    snprintf (reason, sizeof reason, "chunk %llu not merged after %u attempts",
              (unsigned long long)slot->id, attempts);
    s_cancel (self, reason);
}

//  Whether chunks wait to go out: some cut and never sent, or more to cut with room for
//  them. Resends are found by the clock, so only these wait on POLLOUT.
static bool s_chunks_wait (s_vent_t *self)
{
    return self->accepted && (!tl_window_all_sent (self->unacked) ||
                              (!self->source_done && tl_window_has_room (self->unacked)));
}

static int s_run (s_vent_t *self)
{
    self->heard_at = tl_now ();
    s_send_job (self);
    int status = -1;
    while (status < 0) {
        if (zsys_interrupted) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: interrupted; job cancelled\n");
            s_cancel (self, "ventilator interrupted");
            return 130;
        }
        double now = tl_now ();
        if (now - self->heard_at > self->spec.timeout) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: no answer from the sink at %s for %.0f s%s\n",
                     self->sink_ep, self->spec.timeout, self->accepted ? "; job abandoned" : "");
            s_cancel (self, "sink silent");
            return 1;
        }
        if (now - self->pinged_at >= 1.0) {
            if (self->accepted) {
                tl_msg_t ping;
                s_msg_init (self, &ping, TL_CMD_PING);
                s_send_to_sink (self, &ping);
                self->pinged_at = now;
                self->end_sent = false;  //  END again until DONE: it is idempotent
            } else
                s_send_job (self);
        }
        const tl_window_slot_t *lost = tl_window_failed (self->unacked, now, self->source_done);
        if (lost) {
            s_fail_chunk (self, lost, now);
            return 1;
        }
        if (self->accepted && s_pump (self) != 0) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: %s\n", tl_source_error (self->source));
            s_cancel (self, tl_source_error (self->source));
            return 1;
        }
        if (self->accepted && self->source_done && tl_window_all_sent (self->unacked) &&
            !self->end_sent) {
            tl_msg_t end;
            s_msg_init (self, &end, TL_CMD_END);
            end.u.end = (tl_end_body_t){.chunks = tl_window_added (self->unacked),
                                        .bytes = self->cut_bytes,
                                        .bad_lines = tl_source_skipped_lines (self->source)};
            if (s_send_to_sink (self, &end) == 0) self->end_sent = true;
        }
        tl_bar_update (self->progress, tl_source_bytes_read (self->source),
                       tl_window_acked_bytes (self->unacked), tl_window_acked (self->unacked),
                       tl_window_added (self->unacked), self->source_done);

        bool want_out = s_chunks_wait (self);
        if (want_out) s_warn_no_worker (self, now);
        zmq_pollitem_t items[] = {{zsock_resolve (self->sink), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve (self->push), 0, want_out ? ZMQ_POLLOUT : 0, 0},
                                  {zsock_resolve (self->monitor), 0, ZMQ_POLLIN, 0}};
        //  A short timeout: resends, pings and the progress bar need the clock.
        if (zmq_poll (items, 3, 100) == -1 && errno != EINTR) return 1;
        if (items[2].revents & ZMQ_POLLIN) s_on_monitor (self);
        while (status < 0 && (zsock_events (self->sink) & ZMQ_POLLIN))
            if (s_on_sink (self, &status)) break;
    }
    return status;
}

int main (int argc, char **argv)
{
    s_vent_t self = {
        .bind = "tcp://*:5557", .sink_ep = "tcp://localhost:5558", .spec = tl_jobspec_defaults ()};
    tl_opt_t opts[] = {
        TL_OPT ("bind", 'b', "TALLY_BIND", TL_OPT_STR, &self.bind, "ENDPOINT",
                "Where workers connect for chunks (default tcp://*:5557)", 0, 0),
        TL_OPT ("sink", 's', "TALLY_SINK", TL_OPT_STR, &self.sink_ep, "ENDPOINT",
                "The sink's inbound endpoint (default tcp://localhost:5558)", 0, 0),
        TL_JOBSPEC_OPTS (self.spec),
        TL_OPT_QUIET (self.quiet),
        TL_OPT_CURVE_SECRET (self.curve),
        TL_OPT_CURVE_SERVER (self.curve),
        TL_OPT_CURVE_ALLOW (self.curve),
    };
    tl_cli_t cli = {.program = "tally-ventilator",
                    .usage = "[OPTIONS] FILE|FOLDER...",
                    .summary = "Reads the files, cuts them into chunks of whole lines and pushes "
                               "them to tally-worker processes;\nexits 0 once tally-sink has "
                               "merged the whole job.",
                    TL_CLI_OPTS (opts),
                    .min_args = 1,
                    .max_args = -1};
    int first = tl_sock_start (&cli, argc, argv, &self.curve);
    tl_jobspec_check (&cli, &self.spec);
    tl_source_opts_t source_opts = {
        .io = self.spec.io, .chunk_size = self.spec.chunk_size, .max_line = self.spec.max_line};

    char error[1024];
    if (tl_files_expand (&self.files, argv + first, (size_t)(argc - first), error, sizeof error))
        tl_cli_usage_error (&cli, "%s", error);
    if (self.files.count > TL_FILES_MAX)
        tl_cli_usage_error (&cli, "too many files (%zu; at most %d)", self.files.count,
                            TL_FILES_MAX);

    const char *why = NULL;
    self.source =
        tl_source_new ((const char *const *)self.files.names, self.files.count, &source_opts, &why);
    if (!self.source) {
        fprintf (stderr, "tally-ventilator: %s\n", why ? why : "cannot start reading");
        return 1;
    }
    if (!self.quiet) {
        const char *why_sync = tl_source_fallback (self.source);
        zsys_info ("%zu files, %llu bytes, reading with %s%s%s%s", self.files.count,
                   (unsigned long long)self.files.bytes, tl_source_backend (self.source),
                   why_sync ? " (" : "", why_sync ? why_sync : "", why_sync ? ")" : "");
    }

    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    //  Small queues toward workers: a slow or late-joining worker is not pre-loaded with
    //  a large share of the job, and the window (not libzmq) holds what is in flight.
    cfg.sndhwm = 2;
    cfg.immediate = true;
    self.push = tl_sock_new (ZMQ_PUSH, self.bind, true, true, &cfg, &why);
    if (!self.push) {
        fprintf (stderr, "tally-ventilator: %s\n", why);
        return 1;
    }
    self.bound_at = tl_now ();
    //  libzmq's own socket monitor rather than CZMQ's zmonitor actor: no thread of ours
    //  to stop, and nothing to trip over when a signal comes during start-up.
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://tally-monitor-%p", (void *)&self);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_DISCONNECTED;
    if (zmq_socket_monitor (zsock_resolve (self.push), monitor_ep, events) != 0 ||
        !(self.monitor = zsock_new_pair (monitor_ep))) {
        fprintf (stderr, "tally-ventilator: cannot monitor the worker socket\n");
        return 1;
    }
    cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = 1 << 20;
    self.sink = tl_sock_new (ZMQ_DEALER, self.sink_ep, false, false, &cfg, &why);
    if (!self.sink) {
        fprintf (stderr, "tally-ventilator: %s\n", why);
        return 1;
    }

    uint64_t job;
    if (getrandom (&job, sizeof job, 0) != sizeof job)
        job = (uint64_t)tl_now () * 1000003u ^ (uint64_t)getpid ();
    self.job = job;
    if (tl_secret_new (self.secret) != 0) {
        fprintf (stderr, "tally-ventilator: cannot draw the job's secret: %s\n", strerror (errno));
        return 1;
    }
    self.unacked =
        tl_window_new ((size_t)self.spec.window, self.spec.retry, (uint32_t)self.spec.max_attempts);
    self.file_format = calloc (self.files.count, sizeof *self.file_format);
    if (!self.unacked || !self.file_format) {
        fprintf (stderr, "tally-ventilator: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < self.files.count; i++)
        self.file_format[i] = self.spec.format;
    self.progress =
        tl_bar_new ("tally", self.files.bytes, self.quiet ? TL_BAR_NONE : self.spec.progress);

    int status = s_run (&self);

    tl_window_destroy (&self.unacked);
    free (self.file_format);
    tl_bar_destroy (&self.progress);
    zsock_destroy (&self.monitor);
    zsock_destroy (&self.push);
    zsock_destroy (&self.sink);
    tl_source_destroy (&self.source);
    tl_files_free (&self.files);
    return status;
}
