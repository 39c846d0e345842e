/*  tally-ventilator: reads the input files, cuts them into chunks of whole lines and
    pushes them to the workers; opens the job at the sink and keeps every chunk the
    sink has not acknowledged in a bounded window, sending it again when its answer is
    late (at-least-once delivery; the sink merges each chunk once). Exits 0 only when
    the sink confirms that the whole job is merged.                                    */

#include "tl_files.h"
#include "tl_opts.h"
#include "tl_bar.h"
#include "tl_sock.h"
#include "tl_source.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

//  One chunk in the window: cut, maybe sent, not yet acknowledged.
typedef struct {
    bool used;         //  Slot holds a chunk
    uint64_t id;       //  Chunk id
    tl_chunk_t chunk;  //  Lines (one buffer reference held here)
    double sent_at;    //  Last send, 0 when never sent
    uint32_t sends;    //  Times sent
    bool suspect;      //  A worker left since it was sent: it may be lost
} s_slot_t;

typedef struct {
    //  Options
    const char *bind;           //  PUSH endpoint for workers
    const char *sink_ep;        //  Sink's inbound endpoint
    const char *format_name;    //  --format
    const char *io_name;        //  --io
    const char *progress_name;  //  --progress
    size_t chunk_size;          //  --chunk-size
    size_t max_line;            //  --max-line
    long window;                //  --window
    long year_min, year_max;    //  --year-min, --year-max
    bool skip_pos;              //  --skip-pos
    bool strict;                //  --strict
    double retry;               //  --retry: least seconds before a resend
    double timeout;             //  --timeout: seconds of sink silence that fail the job
    bool quiet;                 //  --quiet
    bool verbose;               //  --verbose
    tl_curve_t curve;           //  CURVE keys

    //  State
    tl_files_t files;          //  Inputs
    tl_format_t format;        //  Requested format
    tl_format_t *file_format;  //  Format of each file (detected on its first chunk)
    tl_filter_t filter;        //  Filters for the workers
    zsock_t *push;             //  Chunks out
    zsock_t *sink;             //  DEALER to the sink
    zsock_t *monitor;          //  PAIR end of the PUSH socket's monitor: worker disconnects
    tl_source_t *source;       //  Reads and cuts the files
    tl_bar_t *progress;        //  Bar or log lines
    uint64_t job;              //  Job id
    bool accepted;             //  Sink accepted the job
    s_slot_t *slots;           //  The window
    size_t inflight;           //  Slots in use
    s_slot_t *unsent;          //  Cut chunk waiting for the socket, or NULL
    uint64_t next_id;          //  Next chunk id
    bool source_done;          //  Every chunk is cut
    bool end_sent;             //  END told the sink the count
    uint64_t cut_bytes;        //  Payload bytes cut
    uint64_t acked;            //  Chunks acknowledged
    uint64_t acked_bytes;      //  Payload bytes acknowledged
    uint64_t resent;           //  Chunks sent again
    double latency;            //  Smoothed send-to-ack seconds
    double heard_at;           //  Last message from the sink
    double pinged_at;          //  Last PING or JOB sent
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
                                .strict = self->strict,
                                .input_bytes = self->files.bytes,
                                .nfiles = (uint32_t)self->files.count,
                                .files = names};
    s_send_to_sink (self, &msg);
    free (names);
    self->pinged_at = tl_now ();
}

//  Sends a chunk without waiting. Returns 0, or -1 when the socket would block.
static int s_send_chunk (s_vent_t *self, s_slot_t *slot)
{
    tl_msg_t msg;
    s_msg_init (self, &msg, TL_CMD_CHUNK);
    msg.u.chunk = (tl_chunk_body_t){.chunk = slot->id,
                                    .file = slot->chunk.file,
                                    .offset = slot->chunk.offset,
                                    .format = self->file_format[slot->chunk.file],
                                    .filter = self->filter};
    zmq_msg_t payload;
    tl_buf_ref (slot->chunk.buf);
    zmq_msg_init_data (&payload, (void *)slot->chunk.data, slot->chunk.size, s_free_buf,
                       slot->chunk.buf);
    if (tl_send (zsock_resolve (self->push), NULL, 0, &msg, &payload, ZMQ_DONTWAIT) != 0) return -1;
    if (slot->sends++) self->resent++;
    slot->sent_at = tl_now ();
    slot->suspect = false;
    return 0;
}

static s_slot_t *s_free_slot (s_vent_t *self)
{
    for (long i = 0; i < self->window; i++)
        if (!self->slots[i].used) return &self->slots[i];
    return NULL;
}

//  Cuts the next chunk into a free slot. Returns the slot, or NULL at the end or on
//  an error (then *failed is set and the reason is in the source).
static s_slot_t *s_cut (s_vent_t *self, bool *failed)
{
    s_slot_t *slot = s_free_slot (self);
    assert (slot);
    int rc = tl_source_next (self->source, &slot->chunk);
    if (rc <= 0) {
        self->source_done = true;
        *failed = rc < 0;
        return NULL;
    }
    if (slot->chunk.first &&
        memchr (slot->chunk.data, 0, slot->chunk.size < 65536 ? slot->chunk.size : 65536))
        zsys_warning ("%s holds NUL bytes: is it a binary file? Its lines are read as %s",
                      self->files.names[slot->chunk.file],
                      tl_format_name (self->format == TL_FORMAT_AUTO
                                          ? tl_format_detect (slot->chunk.data, slot->chunk.size)
                                          : self->format));
    if (slot->chunk.first && self->format == TL_FORMAT_AUTO) {
        tl_format_t detected = tl_format_detect (slot->chunk.data, slot->chunk.size);
        self->file_format[slot->chunk.file] = detected;
        if (self->verbose)
            zsys_info ("%s: format %s", self->files.names[slot->chunk.file],
                       tl_format_name (detected));
    }
    slot->used = true;
    slot->id = self->next_id++;
    slot->sent_at = 0;
    slot->sends = 0;
    self->inflight++;
    self->cut_bytes += slot->chunk.size;
    return slot;
}

//  Seconds after which an unacknowledged chunk goes out again: generous while the job
//  streams, short at the tail, where the last few chunks decide the finish (backup
//  tasks, as MapReduce does for stragglers).
static double s_resend_after (s_vent_t *self)
{
    double typical = self->latency > 0 ? self->latency : 0.5;
    if (self->source_done && !self->unsent) return fmax (self->retry / 4, 4 * typical);
    return fmax (self->retry, 10 * typical);
}

static s_slot_t *s_due_resend (s_vent_t *self, double now)
{
    double after = s_resend_after (self);
    //  A chunk out since before a worker left goes again as soon as a live worker
    //  would have answered it: a lost worker costs a moment, not a timeout.
    double suspect_after = fmax (0.25, 3 * self->latency);
    s_slot_t *oldest = NULL;
    for (long i = 0; i < self->window; i++) {
        s_slot_t *slot = &self->slots[i];
        if (slot->used && slot->sent_at > 0 &&
            now - slot->sent_at >= (slot->suspect ? suspect_after : after) &&
            (!oldest || slot->sent_at < oldest->sent_at))
            oldest = slot;
    }
    return oldest;
}

//  Sends what is ready while the socket takes it. Returns -1 on a read error.
static int s_pump (s_vent_t *self)
{
    double now = tl_now ();
    while (true) {
        s_slot_t *slot = s_due_resend (self, now);
        if (!slot && self->unsent) slot = self->unsent;
        if (!slot && !self->source_done && self->inflight < (size_t)self->window) {
            bool failed = false;
            slot = s_cut (self, &failed);
            if (failed) return -1;
            self->unsent = slot;
        }
        if (!slot) return 0;
        if (s_send_chunk (self, slot) != 0)
            return 0;  //  Socket full: the poll tells us when it drains
        if (slot == self->unsent) self->unsent = NULL;
    }
}

static void s_on_ack (s_vent_t *self, const tl_ack_body_t *ack)
{
    double now = tl_now ();
    for (uint32_t i = 0; i < ack->count; i++)
        for (long j = 0; j < self->window; j++) {
            s_slot_t *slot = &self->slots[j];
            if (!slot->used || slot->id != ack->chunk[i]) continue;
            if (slot->sends == 1) {
                double sample = now - slot->sent_at;
                self->latency = self->latency ? 0.9 * self->latency + 0.1 * sample : sample;
            }
            if (slot == self->unsent) self->unsent = NULL;
            self->acked++;
            self->acked_bytes += slot->chunk.size;
            tl_buf_release (slot->chunk.buf);
            memset (slot, 0, sizeof *slot);
            self->inflight--;
            break;
        }
}

//  A worker's connection closed (it died, stopped, or its host vanished and the
//  heartbeat noticed): whatever was queued to it or being mapped there is lost.
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
    if (id == ZMQ_EVENT_DISCONNECTED) {
        for (long i = 0; i < self->window; i++)
            if (self->slots[i].used && self->slots[i].sent_at > 0) self->slots[i].suspect = true;
        if (self->verbose)
            zsys_info ("a worker disconnected; chunks it may hold will be sent again");
    }
    tl_frames_close (&in);
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
    if (self->resent)
        zsys_info ("%llu chunks were sent again (lost or late workers); each was merged once",
                   (unsigned long long)self->resent);
}

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
    switch (cmd) {
    case TL_CMD_ACCEPT:
        if (!self->accepted && self->verbose)
            zsys_info ("job %016llx accepted by %s", (unsigned long long)self->job, self->sink_ep);
        self->accepted = true;
        break;
    case TL_CMD_ACK:
        s_on_ack (self, &msg.u.ack);
        break;
    case TL_CMD_DONE:
        tl_bar_update (self->progress, self->files.bytes, self->acked_bytes, self->acked,
                       self->next_id, true);
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
        if (now - self->heard_at > self->timeout) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: no answer from the sink at %s for %.0f s%s\n",
                     self->sink_ep, self->timeout, self->accepted ? "; job abandoned" : "");
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
        if (self->accepted && s_pump (self) != 0) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: %s\n", tl_source_error (self->source));
            s_cancel (self, tl_source_error (self->source));
            return 1;
        }
        if (self->accepted && self->source_done && !self->unsent && !self->end_sent) {
            tl_msg_t end;
            s_msg_init (self, &end, TL_CMD_END);
            end.u.end = (tl_end_body_t){.chunks = self->next_id,
                                        .bytes = self->cut_bytes,
                                        .bad_lines = tl_source_skipped_lines (self->source)};
            if (s_send_to_sink (self, &end) == 0) self->end_sent = true;
        }
        tl_bar_update (self->progress, tl_source_bytes_read (self->source), self->acked_bytes,
                       self->acked, self->next_id, self->source_done);

        //  Resends are found by the clock, so only new or stalled chunks wait on POLLOUT.
        bool want_out =
            self->accepted &&
            (self->unsent || (!self->source_done && self->inflight < (size_t)self->window));
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
    s_vent_t self = {.bind = "tcp://*:5557",
                     .sink_ep = "tcp://localhost:5558",
                     .format_name = "auto",
                     .io_name = "auto",
                     .progress_name = "auto",
                     .chunk_size = 1 << 20,
                     .max_line = 16 << 20,
                     .window = 64,
                     .year_min = 0,
                     .year_max = UINT32_MAX,
                     .retry = 5,
                     .timeout = 60};
    tl_opt_t opts[] = {
        {"bind", 'b', "TALLY_BIND", TL_OPT_STR, &self.bind, "ENDPOINT",
         "Where workers connect for chunks (default tcp://*:5557)", 0, 0},
        {"sink", 's', "TALLY_SINK", TL_OPT_STR, &self.sink_ep, "ENDPOINT",
         "The sink's inbound endpoint (default tcp://localhost:5558)", 0, 0},
        {"format", 'f', "TALLY_FORMAT", TL_OPT_STR, &self.format_name, "FORMAT",
         "auto, ngram2009, ngram2012, ngram2020 or text (default auto: per file)", 0, 0},
        {"chunk-size", 'c', "TALLY_CHUNK_SIZE", TL_OPT_SIZE, &self.chunk_size, "BYTES",
         "Bytes of whole lines per chunk (default 1M)", 0, 0},
        {"max-line", 0, "TALLY_MAX_LINE", TL_OPT_SIZE, &self.max_line, "BYTES",
         "Longer lines are skipped and counted as bad (default 16M)", 0, 0},
        {"window", 'w', "TALLY_WINDOW", TL_OPT_INT, &self.window, "N",
         "Chunks in flight, unacknowledged, at most (default 64)", 1, 65536},
        {"io", 0, "TALLY_IO", TL_OPT_STR, &self.io_name, "BACKEND",
         "auto, uring or sync (default auto: io_uring where the kernel allows)", 0, 0},
        {"year-min", 0, "TALLY_YEAR_MIN", TL_OPT_INT, &self.year_min, "YEAR",
         "Count only years from YEAR on", 0, UINT32_MAX},
        {"year-max", 0, "TALLY_YEAR_MAX", TL_OPT_INT, &self.year_max, "YEAR",
         "Count only years up to YEAR", 0, UINT32_MAX},
        {"skip-pos", 0, "TALLY_SKIP_POS", TL_OPT_FLAG, &self.skip_pos, NULL,
         "Leave out POS-tagged keys (word_NOUN): their untagged row holds the total", 0, 0},
        {"strict", 0, "TALLY_STRICT", TL_OPT_FLAG, &self.strict, NULL,
         "A malformed line fails the job (default: skipped and counted)", 0, 0},
        {"retry", 0, "TALLY_RETRY", TL_OPT_REAL, &self.retry, "SECONDS",
         "Least time before an unacknowledged chunk is sent again (default 5)", 0, 0},
        {"timeout", 0, "TALLY_TIMEOUT", TL_OPT_REAL, &self.timeout, "SECONDS",
         "Give up when the sink is silent this long (default 60)", 0, 0},
        {"progress", 0, "TALLY_PROGRESS", TL_OPT_STR, &self.progress_name, "MODE",
         "auto, bar, log or none (default auto: a bar on a terminal)", 0, 0},
        {"quiet", 'q', "TALLY_QUIET", TL_OPT_FLAG, &self.quiet, NULL, "Print only errors", 0, 0},
        {"verbose", 'v', "TALLY_VERBOSE", TL_OPT_FLAG, &self.verbose, NULL,
         "Also log each file's format and the job's steps", 0, 0},
        TL_OPT_CURVE_SECRET (self.curve),
        TL_OPT_CURVE_SERVER (self.curve),
        TL_OPT_CURVE_ALLOW (self.curve),
    };
    tl_cli_t cli = {.program = "tally-ventilator",
                    .usage = "[OPTIONS] FILE|FOLDER...",
                    .summary = "Reads the files, cuts them into chunks of whole lines and pushes "
                               "them to tally-worker processes;\nexits 0 once tally-sink has "
                               "merged the whole job.",
                    .opts = opts,
                    .nopts = sizeof opts / sizeof *opts,
                    .min_args = 1,
                    .max_args = -1};
    int first = tl_cli_parse (&cli, argc, argv);
    if (tl_format_parse (self.format_name, &self.format) != 0)
        tl_cli_usage_error (&cli, "unknown format '%s'", self.format_name);
    tl_bar_mode_t progress_mode;
    if (tl_bar_mode_parse (self.progress_name, &progress_mode) != 0)
        tl_cli_usage_error (&cli, "unknown progress mode '%s'", self.progress_name);
    tl_source_opts_t source_opts = {.chunk_size = self.chunk_size, .max_line = self.max_line};
    if (strcmp (self.io_name, "auto") == 0)
        source_opts.io = TL_IO_AUTO;
    else if (strcmp (self.io_name, "uring") == 0 || strcmp (self.io_name, "io_uring") == 0)
        source_opts.io = TL_IO_URING;
    else if (strcmp (self.io_name, "sync") == 0)
        source_opts.io = TL_IO_SYNC;
    else
        tl_cli_usage_error (&cli, "unknown I/O backend '%s' (auto, uring or sync)", self.io_name);
    if (self.chunk_size < 1 || self.chunk_size > (64 << 20))
        tl_cli_usage_error (&cli, "--chunk-size must be from 1 byte to 64M");
    if (self.max_line < self.chunk_size && self.max_line < 4096)
        tl_cli_usage_error (&cli, "--max-line must be at least 4K");
    if (self.max_line > (128 << 20)) tl_cli_usage_error (&cli, "--max-line must be at most 128M");
    if (self.year_min > self.year_max) tl_cli_usage_error (&cli, "--year-min is after --year-max");
    self.filter = (tl_filter_t){(uint32_t)self.year_min, (uint32_t)self.year_max, self.skip_pos};

    char error[1024];
    if (tl_files_expand (&self.files, argv + first, (size_t)(argc - first), error, sizeof error))
        tl_cli_usage_error (&cli, "%s", error);
    if (self.files.count > TL_FILES_MAX)
        tl_cli_usage_error (&cli, "too many files (%zu; at most %d)", self.files.count,
                            TL_FILES_MAX);

    zsys_init ();
    zsys_set_logstream (stderr);  //  Logs on stderr: stdout is for results
    zsys_set_logident ("tally-ventilator");
    if (tl_curve_setup (&self.curve, cli.program) != 0) return 2;
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
    //  libzmq's own socket monitor rather than CZMQ's zmonitor actor: no thread of ours
    //  to stop, and nothing to trip over when a signal comes during start-up.
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://tally-monitor-%p", (void *)&self);
    if (zmq_socket_monitor (zsock_resolve (self.push), monitor_ep, ZMQ_EVENT_DISCONNECTED) != 0 ||
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
    self.slots = calloc ((size_t)self.window, sizeof *self.slots);
    self.file_format = calloc (self.files.count, sizeof *self.file_format);
    if (!self.slots || !self.file_format) {
        fprintf (stderr, "tally-ventilator: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < self.files.count; i++)
        self.file_format[i] = self.format;
    self.progress =
        tl_bar_new ("tally", self.files.bytes, self.quiet ? TL_BAR_NONE : progress_mode);

    int status = s_run (&self);

    for (long i = 0; i < self.window; i++)
        if (self.slots[i].used) tl_buf_release (self.slots[i].chunk.buf);
    free (self.slots);
    free (self.file_format);
    tl_bar_destroy (&self.progress);
    zsock_destroy (&self.monitor);
    zsock_destroy (&self.push);
    zsock_destroy (&self.sink);
    tl_source_destroy (&self.source);
    tl_files_free (&self.files);
    return status;
}
