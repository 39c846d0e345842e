/*  tally-ventilator: reads the input files, cuts them into chunks of whole lines and
    pushes them to the workers; opens the job at the sink and keeps every chunk the
    sink has not acknowledged in a bounded window, sending it again when its answer is
    late (at-least-once delivery; the sink merges each chunk once). Exits 0 only when
    the sink confirms that the whole job is merged.

    Crash recovery. Chunks are deterministic (the same files and options always give
    the same chunk ids), and the ventilator keeps every chunk's (file, offset, size).
    When the sink restarts (a new incarnation in its PONG, or it no longer knows the
    job), the ventilator opens the job again; the sink lists the chunks it holds (HAVE,
    from its last checkpoint) and the ventilator produces the others again from the
    files (source_replay.c). Started again with the same --job-file, a ventilator takes
    its job up: it cuts the files again and skips every chunk the sink holds.

    Sink shards. With --sink EP0,EP1,... the job has one sink per endpoint, each holding
    the keys that hash to it: the ventilator opens the job at each (JOB names the shard),
    and a chunk is done, and leaves the window, only when every shard has acknowledged
    it. Each shard is followed on its own (its incarnation, the chunks it holds, its
    END and DONE), so one that restarts is brought back as a single sink is.           */

#include "tl_bar.h"
#include "tl_clock.h"
#include "tl_files.h"
#include "tl_opts.h"
#include "tl_sock.h"
#include "tl_source.h"
#include "jobfile.h"
#include "window.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

//  Where a chunk lies: enough to produce it again from the files.
typedef struct {
    uint64_t offset;  //  Byte offset in the (decompressed) file
    uint32_t size;    //  Bytes (chunks are at most 128 MiB and a little)
    uint32_t file;    //  File index
} s_place_t;

//  Chunk ids the sink may list (HAVE) at most: 2^32 chunks, a 512 MiB bitmap.
#define S_HAVE_IDS_MAX (UINT64_C (1) << 32)

//  One sink shard of the job, as the ventilator follows it.
typedef struct {
    const char *endpoint;          //  Its inbound endpoint
    zsock_t *sock;                 //  DEALER to it
    zsock_t *monitor;              //  PAIR end of sock's monitor: the connection comes and goes
    bool connected;                //  The connection is up (ZMTP heartbeats keep it honest)
    bool accepted;                 //  It accepted the job
    uint64_t incarnation;          //  The sink process that accepted it
    bool resync;                   //  It lost state: waiting for its HAVE and ACCEPT
    bool end_sent;                 //  END told it the count
    double heard_at;               //  Last message from it
    double pinged_at;              //  Last PING or JOB sent to it
    uint8_t *have;                 //  Chunks it holds, a bitmap (HAVE, ACKs)
    size_t have_size;              //  Bytes in have
    uint64_t held;                 //  Bits set in have
    uint64_t bytes;                //  Payload bytes of the chunks it counts (tl_shard_counter)
    bool done;                     //  It sent DONE
    bool done_unchecked;           //  ... before this run had cut anything (a job taken up)
    tl_done_body_t result;         //  What DONE said; output points at output
    char output[TL_TEXT_MAX + 1];  //  Its totals file
} s_shard_t;

typedef struct {
    //  Options
    const char *bind;      //  PUSH endpoint for workers
    const char *sink_ep;   //  Sinks' inbound endpoints, "EP0,EP1,..." (one per shard)
    tl_jobspec_t spec;     //  What the job counts and how it is read
    bool quiet;            //  --quiet
    tl_curve_t curve;      //  CURVE keys
    const char *job_file;  //  --job-file: where the job is kept for a restart, or NULL
    const char *merge_to;  //  --merge-to: the file the shards' parts will be merged into

    //  State
    tl_files_t files;                //  Inputs
    tl_format_t *file_format;        //  Format of each file (detected on its first chunk)
    zsock_t *push;                   //  Chunks out
    tl_endpoints_t sink_eps;         //  sink_ep, split
    s_shard_t *shards;               //  The job's sink shards, in shard order
    uint32_t nshards;                //  How many (1: one sink)
    uint64_t seed;                   //  The job's seed of the key split
    zsock_t *monitor;                //  PAIR end of the PUSH socket's monitor: workers come and go
    tl_source_t *source;             //  Reads and cuts the files
    tl_bar_t *progress;              //  Bar or log lines
    uint64_t job;                    //  Job id
    uint8_t secret[TL_SECRET_SIZE];  //  The job's secret: only its holder steers the job
    tl_window_t *unacked;            //  Chunks cut and not yet acknowledged, and when to resend
    bool source_done;                //  Every chunk is cut
    uint64_t cut_bytes;              //  Payload bytes cut
    char error[TL_TEXT_MAX];         //  Why the job cannot go on, when not the source's
    double bound_at;                 //  When the PUSH socket was bound
    int workers;                     //  Workers connected now (handshake done, not gone)
    int refused;                     //  Connections whose handshake failed, not yet closed
    bool worker_seen;                //  A worker has connected at least once
    double workers_gone_at;          //  When the last worker connected left
    double warned_at;                //  Last "no worker connected" warning (0: none)

    //  Crash recovery
    tl_file_id_t *file_ids;    //  Each input's size and mtime when the job started
    char spec_text[256];       //  The options that decide chunks and totals
    tl_replay_t *replay;       //  Produces chunks the sink lost again
    s_place_t *index;          //  Where every chunk cut lies, by chunk id
    size_t nindex, index_cap;  //  Entries, room
    uint64_t *lost;            //  Chunk ids to produce again, ascending
    size_t nlost, lost_at;     //  Entries, next to produce
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

static int s_send_to_shard (s_shard_t *shard, tl_msg_t *msg)
{
    return tl_send (zsock_resolve (shard->sock), NULL, 0, msg, NULL, ZMQ_DONTWAIT);
}

//  Shard i's name in messages: "the sink", or "sink shard i (ENDPOINT)".
static const char *s_shard_name (s_vent_t *self, uint32_t i, char *buf, size_t size)
{
    if (self->nshards == 1)
        snprintf (buf, size, "the sink");
    else
        snprintf (buf, size, "sink shard %u (%s)", i, self->shards[i].endpoint);
    return buf;
}

static void s_send_job (s_vent_t *self, uint32_t shard)
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
                                .files = names,
                                .shard = shard,
                                .shards = self->nshards};
    s_send_to_shard (&self->shards[shard], &msg);
    free (names);
    self->shards[shard].pinged_at = tl_now ();
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
                                    .filter = self->spec.filter,
                                    .shards = self->nshards,
                                    .seed = self->seed};
    zmq_msg_t payload;
    tl_buf_ref (slot->chunk.buf);
    zmq_msg_init_data (&payload, (void *)slot->chunk.data, slot->chunk.size, s_free_buf,
                       slot->chunk.buf);
    if (tl_send (zsock_resolve (self->push), NULL, 0, &msg, &payload, ZMQ_DONTWAIT) != 0) return -1;
    tl_window_sent (self->unacked, slot, tl_now ());
    return 0;
}

//  ---------------------------------------------------------------------------------
//  What the sink holds, and what it lost

static bool s_have (const s_shard_t *shard, uint64_t id)
{
    return id / 8 < shard->have_size && (shard->have[id / 8] >> (id % 8) & 1);
}

//  Marks chunk id as held by shard. Returns 1 when it was not yet, 0 when it was, -1
//  when out of memory or id is past S_HAVE_IDS_MAX.
static int s_have_set (s_shard_t *shard, uint64_t id)
{
    if (id >= S_HAVE_IDS_MAX) return -1;
    if (id / 8 >= shard->have_size) {
        size_t size = shard->have_size ? shard->have_size : 4096;
        while (size <= id / 8)
            size *= 2;
        uint8_t *have = realloc (shard->have, size);
        if (!have) return -1;
        memset (have + shard->have_size, 0, size - shard->have_size);
        shard->have = have;
        shard->have_size = size;
    }
    uint8_t bit = (uint8_t)(1u << (id % 8));
    if (shard->have[id / 8] & bit) return 0;
    shard->have[id / 8] |= bit;
    shard->held++;
    return 1;
}

//  Forgets what shard held (it lost state).
static void s_have_clear (s_shard_t *shard)
{
    if (shard->have) memset (shard->have, 0, shard->have_size);
    shard->held = 0;
}

//  Whether chunks may go out: every shard has accepted the job (or finished it).
static bool s_accepted (s_vent_t *self)
{
    for (uint32_t i = 0; i < self->nshards; i++)
        if (!self->shards[i].accepted && !self->shards[i].done) return false;
    return true;
}

//  Whether chunk id is done: every shard holds it (a shard that finished the job holds
//  every chunk).
static bool s_complete (s_vent_t *self, uint64_t id)
{
    for (uint32_t i = 0; i < self->nshards; i++)
        if (!self->shards[i].done && !s_have (&self->shards[i], id)) return false;
    return true;
}

//  Records where the chunk just cut lies; its id is the entry's index. Returns 0 or -1
//  when out of memory.
static int s_index_add (s_vent_t *self, const tl_chunk_t *chunk)
{
    if (self->nindex == self->index_cap) {
        size_t cap = self->index_cap ? 2 * self->index_cap : 4096;
        s_place_t *index = realloc (self->index, cap * sizeof *index);
        if (!index) return -1;
        self->index = index;
        self->index_cap = cap;
    }
    self->index[self->nindex++] =
        (s_place_t){.offset = chunk->offset, .size = (uint32_t)chunk->size, .file = chunk->file};
    return 0;
}

//  A shard lost state (it restarted, from a checkpoint or without one): open the job
//  there again, and hear which chunks it holds before sending what it lacks.
static void s_begin_resync (s_vent_t *self, uint32_t i, const char *why)
{
    s_shard_t *shard = &self->shards[i];
    if (shard->resync) return;
    shard->resync = true;
    s_have_clear (shard);
    char name[TL_TEXT_MAX];
    tl_bar_clear (self->progress);
    zsys_warning ("%s %s: opening the job there again", s_shard_name (self, i, name, sizeof name),
                  why);
    shard->pinged_at = 0;  //  JOB at once
}

//  A shard's ACCEPT after a restart: chunks in the window that every shard holds are
//  done, the others go out again at once; every other chunk cut that a shard lacks is
//  produced again from the files. Returns -1 when out of memory.
static int s_apply_resync (s_vent_t *self, uint32_t i)
{
    self->shards[i].resync = false;
    for (uint32_t j = 0; j < self->nshards; j++)
        self->shards[j].end_sent = false;
    double now = tl_now ();
    uint64_t held = 0, held_bytes = 0;
    free (self->lost);
    self->lost = NULL;
    self->nlost = self->lost_at = 0;
    size_t cap = 0;
    for (uint64_t id = 0; id < self->nindex; id++) {
        bool in_window = tl_window_holds (self->unacked, id);
        if (s_complete (self, id)) {
            if (in_window) tl_window_ack (self->unacked, id, now);
            held++;
            held_bytes += self->index[id].size;
        } else if (!in_window) {
            if (self->nlost == cap) {
                cap = cap ? 2 * cap : 1024;
                uint64_t *lost = realloc (self->lost, cap * sizeof *lost);
                if (!lost) return -1;
                self->lost = lost;
            }
            self->lost[self->nlost++] = id;
        }
    }
    tl_window_restart (self->unacked, now);
    tl_window_set_acked (self->unacked, held, held_bytes);
    tl_bar_clear (self->progress);
    char name[TL_TEXT_MAX];
    zsys_info ("%s holds %llu of the %llu chunks cut so far; %zu go out again, and %zu more "
               "produced again from the files",
               s_shard_name (self, i, name, sizeof name), (unsigned long long)self->shards[i].held,
               (unsigned long long)self->nindex, tl_window_inflight (self->unacked), self->nlost);
    return 0;
}

//  Removes the job file: the job is over, at the sink too.
static void s_forget_job (s_vent_t *self)
{
    if (self->job_file && unlink (self->job_file) != 0 && errno != ENOENT)
        zsys_warning ("cannot remove %s: %s", self->job_file, strerror (errno));
}

//  The options that decide which chunks the files give and how they count.
static void s_spec_text (s_vent_t *self)
{
    snprintf (self->spec_text, sizeof self->spec_text,
              "format=%s chunk=%zu max_line=%zu year_min=%ld year_max=%ld skip_pos=%d strict=%d "
              "shards=%u",
              tl_format_name (self->spec.format), self->spec.chunk_size, self->spec.max_line,
              self->spec.year_min, self->spec.year_max, self->spec.skip_pos, self->spec.strict,
              self->nshards);
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
//  Chunks the sink holds already (a job taken up again) are counted and skipped, for
//  at most 50 ms per call; then NULL returns with nothing set, and the caller comes
//  back.
static const tl_window_slot_t *s_cut (s_vent_t *self, bool *failed)
{
    double until = tl_now () + 0.05;
    for (;;) {
        tl_chunk_t chunk;
        int rc = tl_source_next (self->source, &chunk);
        if (rc <= 0) {
            self->source_done = true;
            *failed = rc < 0;
            return NULL;
        }
        if (chunk.first) s_first_chunk (self, &chunk);
        self->cut_bytes += chunk.size;
        self->shards[tl_shard_counter (self->nindex, self->nshards)].bytes += chunk.size;
        if (s_index_add (self, &chunk) != 0) {
            tl_buf_release (chunk.buf);
            self->source_done = true;
            *failed = true;
            snprintf (self->error, sizeof self->error, "out of memory");
            return NULL;
        }
        if (!s_complete (self, tl_window_added (self->unacked)))
            return tl_window_add (self->unacked, &chunk);
        tl_window_skip (self->unacked, chunk.size);
        tl_buf_release (chunk.buf);
        if (tl_now () >= until) return NULL;
    }
}

//  Produces the next chunk the sink lost into the window, skipping those it has had
//  since. Returns its slot, NULL when none is left, or NULL with *failed set when a
//  file cannot give it again (error set).
static const tl_window_slot_t *s_reproduce (s_vent_t *self, bool *failed)
{
    while (self->lost_at < self->nlost) {
        uint64_t id = self->lost[self->lost_at++];
        if (s_complete (self, id) || tl_window_holds (self->unacked, id)) continue;
        const s_place_t *place = &self->index[id];
        tl_chunk_t chunk;
        if (tl_replay_chunk (self->replay, place->file, place->offset, place->size, &chunk) != 0) {
            snprintf (self->error, sizeof self->error, "%s", tl_replay_error (self->replay));
            *failed = true;
            return NULL;
        }
        return tl_window_add_id (self->unacked, &chunk, id);
    }
    return NULL;
}

//  Sends what is ready while the socket takes it: a chunk due again first, then one cut
//  and not sent yet, then a new cut. Returns -1 on a read error.
static int s_pump (s_vent_t *self)
{
    double now = tl_now ();
    while (true) {
        const tl_window_slot_t *slot = tl_window_due (self->unacked, now, self->source_done);
        bool failed = false;
        if (!slot && self->lost_at < self->nlost && tl_window_has_room (self->unacked))
            slot = s_reproduce (self, &failed);
        if (!slot && !failed && !self->source_done && tl_window_has_room (self->unacked))
            slot = s_cut (self, &failed);
        if (failed) return -1;
        if (!slot) return 0;
        if (s_send_chunk (self, slot) != 0) {
            //  Socket full: the poll tells us when it drains. Or nobody to take it: then
            //  a chunk whose worker left with it loses its attempt all the same.
            if (self->workers == 0) tl_window_undelivered (self->unacked, slot, now);
            return 0;
        }
    }
}

//  Every chunk acknowledged is recorded as held by its shard, so that a copy's second
//  ack (a sink acknowledges every copy) counts nothing. A chunk is done when every shard
//  holds it; one done that is not in the window (merged from a copy that was still out
//  when a shard restarted, or one a previous run of this job sent) is counted: it is
//  not produced again, and not sent when the cut reaches it.
static void s_on_ack (s_vent_t *self, s_shard_t *shard, const tl_ack_body_t *ack)
{
    double now = tl_now ();
    for (uint32_t i = 0; i < ack->count; i++) {
        uint64_t id = ack->chunk[i];
        if (s_have_set (shard, id) != 1 || !s_complete (self, id)) continue;
        if (tl_window_ack (self->unacked, id, now) == 0) continue;
        if (id < self->nindex)
            tl_window_set_acked (self->unacked, tl_window_acked (self->unacked) + 1,
                                 tl_window_acked_bytes (self->unacked) + self->index[id].size);
    }
}

//  A HAVE: the shard holds the chunks of these bits.
static void s_on_have (s_vent_t *self, s_shard_t *shard, const tl_have_body_t *have)
{
    (void)self;
    //  Only an answer to a JOB counts: a late copy of one would mark chunks of the window
    //  as held, and their acks would then be taken for copies'.
    if (shard->accepted && !shard->resync) return;
    for (size_t i = 0; i < have->bits.len; i++) {
        uint8_t byte = (uint8_t)have->bits.ptr[i];
        for (int bit = 0; byte && bit < 8; bit++)
            if (byte >> bit & 1 && s_have_set (shard, have->first + 8 * i + (uint64_t)bit) < 0) {
                zsys_warning ("a HAVE names chunk ids this ventilator cannot keep: ignored");
                return;
            }
    }
}

//  An ACCEPT: shard i has the job, holding state->merged chunks, which the HAVEs before
//  it listed. Returns -1 when the job cannot go on.
static int s_on_accept (s_vent_t *self, uint32_t i, const tl_state_body_t *state)
{
    s_shard_t *shard = &self->shards[i];
    char name[TL_TEXT_MAX];
    s_shard_name (self, i, name, sizeof name);
    if (shard->held != state->merged) {
        //  A HAVE of an earlier answer, or one missing: ask again
        zsys_warning ("%s says it holds %llu chunks but listed %llu: asking again", name,
                      (unsigned long long)state->merged, (unsigned long long)shard->held);
        s_have_clear (shard);
        shard->pinged_at = 0;
        return 0;
    }
    if (!shard->accepted) {
        shard->accepted = true;
        shard->incarnation = state->incarnation;
        if (self->spec.verbose)
            zsys_info ("job %016llx accepted by %s", (unsigned long long)self->job, name);
        if (state->merged) {
            tl_bar_clear (self->progress);
            zsys_info ("job %016llx taken up again: %s holds %llu chunks of it, which are not "
                       "sent again",
                       (unsigned long long)self->job, name, (unsigned long long)state->merged);
        }
        return 0;
    }
    if (!shard->resync) return 0;  //  A copy of an ACCEPT we acted on
    shard->incarnation = state->incarnation;
    if (s_apply_resync (self, i) != 0) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    return 0;
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
    switch (tl_monitor_event (self->monitor)) {
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
}

//  endpoint as a worker elsewhere would name it: a wildcard or localhost host becomes
//  HOST, for the user to fill in. Appends to buf (of size bytes, holding a string).
static void s_endpoint_for_worker (const char *endpoint, char *buf, size_t size)
{
    static const char *local[] = {"tcp://*:", "tcp://0.0.0.0:", "tcp://localhost:"};
    size_t used = strlen (buf);
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        size_t len = strlen (local[i]);
        if (strncmp (endpoint, local[i], len) == 0) {
            snprintf (buf + used, size - used, "tcp://HOST:%s", endpoint + len);
            return;
        }
    }
    snprintf (buf + used, size - used, "%s", endpoint);
}

//  Chunks wait and no worker has ever connected: says so every 5 s from 3 s on, since a
//  job that waits for nobody looks exactly like a job that hangs. A warning, not
//  progress, so --quiet keeps it; once a worker has come, losing workers is normal. An
//  ack also proves a worker, one that connected before the monitor started.
static void s_warn_no_worker (s_vent_t *self, double now)
{
    if (self->worker_seen || tl_window_acked (self->unacked) > 0) return;
    if (now - self->bound_at < 3 || now - self->warned_at < 5) return;
    char push[256] = "", sink[2048] = "";
    s_endpoint_for_worker (self->bind, push, sizeof push);
    for (uint32_t i = 0; i < self->nshards; i++) {
        if (i) strncat (sink, ",", sizeof sink - strlen (sink) - 1);
        s_endpoint_for_worker (self->shards[i].endpoint, sink, sizeof sink);
    }
    tl_bar_clear (self->progress);
    fprintf (stderr,
             "tally-ventilator: no worker connected to %s for %.0f s; start one with: "
             "tally-worker --ventilator %s --sink %s%s\n",
             self->bind, now - self->bound_at, push, sink,
             self->curve.secret_file ? " and its CURVE keys" : "");
    fflush (stderr);
    self->warned_at = now;
}

static void s_cancel (s_vent_t *self, const char *reason);

//  The job's result: every shard's DONE added up (their keys are disjoint; each chunk's
//  lines are counted by one shard).
static tl_done_body_t s_result (s_vent_t *self)
{
    tl_done_body_t all = {0};
    for (uint32_t i = 0; i < self->nshards; i++) {
        const tl_done_body_t *done = &self->shards[i].result;
        all.keys += done->keys;
        all.sum = all.sum + done->sum < all.sum ? UINT64_MAX : all.sum + done->sum;
        all.lines += done->lines;
        all.bad_lines += done->bad_lines;
        all.filtered += done->filtered;
        all.chunks += done->chunks;
        all.bytes += done->bytes;
        if (done->seconds > all.seconds) all.seconds = done->seconds;
    }
    all.output = self->shards[0].result.output;
    return all;
}

static void s_print_summary (s_vent_t *self)
{
    tl_done_body_t done = s_result (self);
    char bytes[32], rate[32];
    tl_human_bytes ((double)self->cut_bytes, bytes, sizeof bytes);
    tl_human_bytes (done.seconds > 0 ? (double)self->cut_bytes / done.seconds : 0, rate,
                    sizeof rate);
    printf ("%s in %llu files, %llu lines (%llu bad, %llu filtered out): %llu keys, sum %llu, "
            "in %.2f s (%s/s)\n",
            bytes, (unsigned long long)self->files.count, (unsigned long long)done.lines,
            (unsigned long long)done.bad_lines, (unsigned long long)done.filtered,
            (unsigned long long)done.keys, (unsigned long long)done.sum, done.seconds, rate);
    if (self->nshards == 1)
        printf ("totals written to %s\n", self->shards[0].output);
    else if (self->merge_to)
        printf ("totals written in %u parts, one per sink shard, to be merged into %s\n",
                self->nshards, self->merge_to);
    else {
        printf ("totals written in %u parts, one per sink shard (tally merge makes one file of "
                "them):\n",
                self->nshards);
        for (uint32_t i = 0; i < self->nshards; i++)
            printf ("  shard %u: %s: %s (%llu keys)\n", i, self->shards[i].endpoint,
                    self->shards[i].output, (unsigned long long)self->shards[i].result.keys);
    }
    fflush (stdout);
    uint64_t resent = tl_window_resent (self->unacked);
    if (resent)
        zsys_info ("%llu chunks were sent again (lost or late workers); each was merged once; "
                   "the most attempts a chunk took: %u (--max-attempts %ld)",
                   (unsigned long long)resent, tl_window_most_attempts (self->unacked),
                   self->spec.max_attempts);
}

//  Shard i's DONE. Returns 1 when the job is over (every shard done, or this one's
//  counts do not match what was sent), 0 when others are still at work.
static int s_on_done (s_vent_t *self, uint32_t i, const tl_done_body_t *done, int *status)
{
    s_shard_t *shard = &self->shards[i];
    if (shard->done) return 0;  //  A repeated DONE (END and PING are answered with it)
    shard->done = true;
    shard->done_unchecked = !shard->accepted;
    shard->result = *done;
    snprintf (shard->output, sizeof shard->output, "%.*s", (int)done->output.len, done->output.ptr);
    shard->result.output = (tl_str_t){shard->output, strlen (shard->output)};
    if (!shard->done_unchecked &&
        (done->chunks != tl_window_added (self->unacked) || done->bytes != shard->bytes)) {
        char name[TL_TEXT_MAX];
        tl_bar_finish (self->progress);
        fprintf (stderr,
                 "tally-ventilator: %s reports %llu chunks and %llu bytes merged, but this job "
                 "sent %llu chunks and %llu bytes%s: its totals are not trusted\n",
                 s_shard_name (self, i, name, sizeof name), (unsigned long long)done->chunks,
                 (unsigned long long)done->bytes,
                 (unsigned long long)tl_window_added (self->unacked),
                 (unsigned long long)shard->bytes, self->nshards > 1 ? " for it to count" : "");
        s_cancel (self, "a sink shard's totals are not trusted");
        s_forget_job (self);
        *status = 1;
        return 1;
    }
    for (uint32_t j = 0; j < self->nshards; j++)
        if (!self->shards[j].done) return 0;  //  Chunks the others lack keep going out
    s_forget_job (self);
    bool unchecked = true;
    for (uint32_t j = 0; j < self->nshards; j++)
        unchecked = unchecked && self->shards[j].done_unchecked;
    if (unchecked) {
        //  Taken up again after the sinks had finished it: the totals are there,
        //  counted by the run that was killed.
        tl_bar_finish (self->progress);
        if (!self->quiet) {
            printf ("job %016llx had already finished: ", (unsigned long long)self->job);
            self->cut_bytes = 0;
            for (uint32_t j = 0; j < self->nshards; j++)
                self->cut_bytes += self->shards[j].result.bytes;
            s_print_summary (self);
        }
        *status = 0;
        return 1;
    }
    tl_bar_update (self->progress, self->files.bytes, tl_window_acked_bytes (self->unacked),
                   tl_window_acked (self->unacked), tl_window_added (self->unacked), true);
    tl_bar_finish (self->progress);
    if (!self->quiet) s_print_summary (self);
    *status = 0;
    return 1;
}

//  Handles one message from shard i. Returns 1 when the job is over (exit code in
//  *status), 0 otherwise.
static int s_on_sink (s_vent_t *self, uint32_t i, int *status)
{
    s_shard_t *shard = &self->shards[i];
    tl_frames_t in;
    if (tl_frames_recv (zsock_resolve (shard->sock), &in, ZMQ_DONTWAIT) < 0) return 0;
    tl_msg_t msg;
    tl_cmd_t cmd = tl_frames_decode (&in, 0, &msg);
    int over = 0;
    if (cmd == TL_CMD_INVALID || msg.job != self->job) {
        if (cmd != TL_CMD_INVALID) tl_msg_reset (&msg);
        tl_frames_close (&in);
        return 0;
    }
    shard->heard_at = tl_now ();
    tl_window_heard (self->unacked, shard->heard_at);
    char name[TL_TEXT_MAX];
    s_shard_name (self, i, name, sizeof name);
    switch (cmd) {
    case TL_CMD_HAVE:
        s_on_have (self, shard, &msg.u.have);
        break;
    case TL_CMD_ACCEPT:
        if (s_on_accept (self, i, &msg.u.state) != 0) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: %s\n", self->error);
            s_cancel (self, self->error);
            s_forget_job (self);
            *status = 1;
            over = 1;
        }
        break;
    case TL_CMD_ACK:
        s_on_ack (self, shard, &msg.u.ack);
        break;
    case TL_CMD_PONG:
        if (shard->done) break;
        if (!msg.u.state.known) {
            s_begin_resync (self, i,
                            "does not have this job (it restarted before the job's first "
                            "checkpoint)");
            break;
        }
        if (msg.u.state.incarnation != shard->incarnation) {
            s_begin_resync (self, i, "restarted");
            break;
        }
        if (!shard->resync && msg.u.state.merged < shard->held) {
            tl_bar_finish (self->progress);
            fprintf (stderr,
                     "tally-ventilator: %s reports %llu chunks merged, but had acknowledged "
                     "%llu: it lost merged chunks (did it restart without its checkpoint?)\n",
                     name, (unsigned long long)msg.u.state.merged, (unsigned long long)shard->held);
            s_cancel (self, "a sink lost merged chunks");
            s_forget_job (self);
            *status = 1;
            over = 1;
        }
        break;
    case TL_CMD_DONE:
        over = s_on_done (self, i, &msg.u.done, status);
        break;
    case TL_CMD_FAIL:
        s_forget_job (self);
        tl_bar_finish (self->progress);
        fprintf (stderr, "tally-ventilator: %s failed the job: %.*s\n", name, (int)msg.u.reason.len,
                 msg.u.reason.ptr);
        shard->done = true;  //  Nothing more to tell it
        s_cancel (self, "another sink shard failed the job");
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

//  Tells every shard still at the job to drop it.
static void s_cancel (s_vent_t *self, const char *reason)
{
    tl_msg_t msg;
    s_msg_init (self, &msg, TL_CMD_CANCEL);
    msg.u.reason = (tl_str_t){reason, strlen (reason)};
    for (uint32_t i = 0; i < self->nshards; i++)
        if (!self->shards[i].done) s_send_to_shard (&self->shards[i], &msg);
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
             "out of memory on these lines%s (see the workers' logs).\n",
             (unsigned long long)slot->id, self->files.names[chunk->file],
             (unsigned long long)chunk->offset,
             (unsigned long long)(chunk->offset + chunk->size - 1), size, times, stranded,
             self->nshards > 1
                 ? ", or the workers were started with another --sink list than this job's sink "
                   "shards (the same endpoints, in the same order)"
                 : ", or the workers were started with a list of several sinks (--sink) where "
                   "this job has one");
    char reason[96];
    snprintf (reason, sizeof reason, "chunk %llu not merged after %u attempts",
              (unsigned long long)slot->id, attempts);
    s_cancel (self, reason);
    s_forget_job (self);
}

//  Whether chunks wait to go out: some cut and never sent, or more to cut with room for
//  them. Resends are found by the clock, so only these wait on POLLOUT.
static bool s_chunks_wait (s_vent_t *self)
{
    bool more = !self->source_done || self->lost_at < self->nlost;
    return s_accepted (self) &&
           (!tl_window_all_sent (self->unacked) || (more && tl_window_has_room (self->unacked)));
}

//  Draws a new job id and secret, or takes them from the job file when it holds this
//  job (same files, unchanged, and options); writes the job file for a new job.
//  Returns 0, or -1 after saying why.
static int s_open_job (s_vent_t *self)
{
    self->file_ids = calloc (self->files.count ? self->files.count : 1, sizeof *self->file_ids);
    if (!self->file_ids) {
        fprintf (stderr, "tally-ventilator: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < self->files.count; i++)
        if (tl_file_id (self->files.names[i], &self->file_ids[i]) != 0) {
            fprintf (stderr, "tally-ventilator: %s: %s\n", self->files.names[i], strerror (errno));
            return -1;
        }
    s_spec_text (self);
    char error[TL_TEXT_MAX + 256];
    tl_jobfile_t kept;
    int rc = self->job_file ? tl_jobfile_read (self->job_file, &kept, error, sizeof error) : 0;
    if (rc < 0) {
        fprintf (stderr, "tally-ventilator: %s\n", error);
        return -1;
    }
    if (rc == 1) {
        bool same = kept.nfiles == self->files.count && strcmp (kept.spec, self->spec_text) == 0;
        for (size_t i = 0; same && i < kept.nfiles; i++)
            same = strcmp (kept.names[i], self->files.names[i]) == 0;
        const char *changed = NULL;
        for (size_t i = 0; same && !changed && i < kept.nfiles; i++)
            if (memcmp (&kept.ids[i], &self->file_ids[i], sizeof kept.ids[i]) != 0)
                changed = self->files.names[i];
        if (!same || changed) {
            if (changed)
                fprintf (stderr,
                         "tally-ventilator: %s changed since job %016llx started (size or "
                         "modification time): its totals cannot be finished. Remove %s to count "
                         "the files as they are now.\n",
                         changed, (unsigned long long)kept.id, self->job_file);
            else
                fprintf (stderr,
                         "tally-ventilator: %s holds job %016llx, of other files or options; "
                         "remove it to start a new job, or give the same files and options to "
                         "take that one up\n",
                         self->job_file, (unsigned long long)kept.id);
            tl_jobfile_free (&kept);
            return -1;
        }
        self->job = kept.id;
        memcpy (self->secret, kept.secret, TL_SECRET_SIZE);
        tl_jobfile_free (&kept);
        if (!self->quiet)
            zsys_info ("taking job %016llx up again (%s)", (unsigned long long)self->job,
                       self->job_file);
        return 0;
    }
    if (getrandom (&self->job, sizeof self->job, 0) != sizeof self->job)
        self->job = (uint64_t)tl_now () * 1000003u ^ (uint64_t)getpid ();
    if (tl_secret_new (self->secret) != 0) {
        fprintf (stderr, "tally-ventilator: cannot draw the job's secret: %s\n", strerror (errno));
        return -1;
    }
    if (!self->job_file) return 0;
    tl_jobfile_t job = {.id = self->job,
                        .spec = self->spec_text,
                        .nfiles = self->files.count,
                        .names = self->files.names,
                        .ids = self->file_ids};
    memcpy (job.secret, self->secret, TL_SECRET_SIZE);
    if (tl_jobfile_write (self->job_file, &job, error, sizeof error) != 0) {
        fprintf (stderr, "tally-ventilator: %s\n", error);
        return -1;
    }
    return 0;
}

//  Every second: PING each shard at work (JOB to one that has not accepted, or lost
//  state); END to each once every chunk is out.
static void s_keep_in_touch (s_vent_t *self, double now)
{
    bool all_out = s_accepted (self) && self->source_done && tl_window_all_sent (self->unacked) &&
                   self->lost_at == self->nlost;
    for (uint32_t i = 0; i < self->nshards; i++) {
        s_shard_t *shard = &self->shards[i];
        if (shard->done) continue;
        if (now - shard->pinged_at >= 1.0) {
            if (shard->accepted && !shard->resync) {
                tl_msg_t ping;
                s_msg_init (self, &ping, TL_CMD_PING);
                s_send_to_shard (shard, &ping);
                shard->pinged_at = now;
                shard->end_sent = false;  //  END again until DONE: it is idempotent
            } else
                s_send_job (self, i);
        }
        if (all_out && shard->accepted && !shard->resync && !shard->end_sent) {
            tl_msg_t end;
            s_msg_init (self, &end, TL_CMD_END);
            //  The lines the ventilator itself dropped are counted once, by shard 0.
            end.u.end =
                (tl_end_body_t){.chunks = tl_window_added (self->unacked),
                                .bytes = shard->bytes,
                                .bad_lines = i == 0 ? tl_source_skipped_lines (self->source) : 0};
            if (s_send_to_shard (shard, &end) == 0) shard->end_sent = true;
        }
    }
}

//  Longest a sink that holds every chunk may stay silent while its connection is up:
//  it sorts and writes the totals in its loop (a minute for 46 million keys here), and
//  answers nothing meanwhile. Its heartbeats say it is there.
#define S_END_PHASE_MAX 3600.0

//  The connection to shard i came up or went down.
static void s_on_shard_monitor (s_vent_t *self, uint32_t i)
{
    s_shard_t *shard = &self->shards[i];
    uint16_t id = tl_monitor_event (shard->monitor);
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) shard->connected = true;
    if (id == ZMQ_EVENT_DISCONNECTED) shard->connected = false;
}

//  A shard at work that has been silent too long, or -1. The timeout is --timeout,
//  or S_END_PHASE_MAX for a shard that holds every chunk of the job and is still
//  connected: it is writing the totals.
static int s_silent_shard (s_vent_t *self, double now)
{
    bool all_cut = self->source_done && self->lost_at == self->nlost;
    for (uint32_t i = 0; i < self->nshards; i++) {
        s_shard_t *shard = &self->shards[i];
        if (shard->done) continue;
        double limit = self->spec.timeout;
        if (all_cut && shard->connected && shard->accepted && !shard->resync &&
            shard->held >= tl_window_added (self->unacked) && limit < S_END_PHASE_MAX)
            limit = S_END_PHASE_MAX;
        if (now - shard->heard_at > limit) return (int)i;
    }
    return -1;
}

//  Once every chunk is merged the counts stand still while the sinks sort and write
//  the totals: the bar says so, and how many shards are done.
static void s_bar_status (s_vent_t *self)
{
    if (!self->source_done || self->lost_at < self->nlost ||
        tl_window_acked (self->unacked) < tl_window_added (self->unacked)) {
        tl_bar_set_status (self->progress, NULL);
        return;
    }
    uint32_t done = 0;
    for (uint32_t i = 0; i < self->nshards; i++)
        done += self->shards[i].done;
    char status[96];
    if (self->nshards == 1)
        snprintf (status, sizeof status, "merged; the sink sorts and writes the totals");
    else
        snprintf (status, sizeof status,
                  "merged; the sinks sort and write the totals (%u of %u done)", done,
                  self->nshards);
    tl_bar_set_status (self->progress, status);
}

static int s_run (s_vent_t *self)
{
    double start = tl_now ();
    for (uint32_t i = 0; i < self->nshards; i++) {
        self->shards[i].heard_at = start;
        s_send_job (self, i);
    }
    int status = -1;
    zmq_pollitem_t *items = calloc (2 * self->nshards + 2, sizeof *items);
    if (!items) return 1;
    while (status < 0) {
        if (zsys_interrupted) {
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: interrupted; job cancelled\n");
            s_cancel (self, "ventilator interrupted");
            s_forget_job (self);
            status = 130;
            break;
        }
        double now = tl_now ();
        int silent = s_silent_shard (self, now);
        if (silent >= 0) {
            s_shard_t *shard = &self->shards[silent];
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: no answer from the sink at %s for %.0f s%s%s%s\n",
                     shard->endpoint, self->spec.timeout, shard->accepted ? "; job abandoned" : "",
                     self->job_file ? "; run again with --job-file " : "",
                     self->job_file ? self->job_file : "");
            s_cancel (self, "sink silent");
            status = 1;
            break;
        }
        const tl_window_slot_t *lost = tl_window_failed (self->unacked, now, self->source_done);
        if (lost) {
            s_fail_chunk (self, lost, now);
            status = 1;
            break;
        }
        if (s_accepted (self) && s_pump (self) != 0) {
            const char *why = self->error[0] ? self->error : tl_source_error (self->source);
            tl_bar_finish (self->progress);
            fprintf (stderr, "tally-ventilator: %s\n", why);
            s_cancel (self, why);
            s_forget_job (self);
            status = 1;
            break;
        }
        s_keep_in_touch (self, now);
        s_bar_status (self);
        tl_bar_update (self->progress, tl_source_bytes_read (self->source),
                       tl_window_acked_bytes (self->unacked), tl_window_acked (self->unacked),
                       tl_window_added (self->unacked), self->source_done);

        bool want_out = s_chunks_wait (self);
        if (want_out) s_warn_no_worker (self, now);
        items[0] = (zmq_pollitem_t){zsock_resolve (self->push), 0, want_out ? ZMQ_POLLOUT : 0, 0};
        items[1] = (zmq_pollitem_t){zsock_resolve (self->monitor), 0, ZMQ_POLLIN, 0};
        uint32_t n = self->nshards;
        for (uint32_t i = 0; i < n; i++) {
            items[2 + i] = (zmq_pollitem_t){zsock_resolve (self->shards[i].sock), 0, ZMQ_POLLIN, 0};
            items[2 + n + i] =
                (zmq_pollitem_t){zsock_resolve (self->shards[i].monitor), 0, ZMQ_POLLIN, 0};
        }
        //  A short timeout: resends, pings and the progress bar need the clock.
        if (zmq_poll (items, 2 * (int)n + 2, 100) == -1 && errno != EINTR) {
            status = 1;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) s_on_monitor (self);
        for (uint32_t i = 0; i < n; i++)
            if (items[2 + n + i].revents & ZMQ_POLLIN) s_on_shard_monitor (self, i);
        for (uint32_t i = 0; status < 0 && i < self->nshards; i++)
            while (status < 0 && (zsock_events (self->shards[i].sock) & ZMQ_POLLIN))
                if (s_on_sink (self, i, &status)) break;
    }
    free (items);
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
                "The sink's inbound endpoint, or the job's sink shards' as a comma-separated "
                "list, shard 0 first: EP0,EP1,... (default tcp://localhost:5558)",
                0, 0),
        TL_JOBSPEC_OPTS (self.spec),
        TL_OPT ("job-file", 0, "TALLY_JOB_FILE", TL_OPT_STR, &self.job_file, "FILE",
                "Keep the job's id and secret in FILE while it runs; started again with the same "
                "FILE, files and options, take the job up where the sink stands (removed when "
                "the job ends)",
                0, 0),
        TL_OPT ("merge-to", 0, "TALLY_MERGE_TO", TL_OPT_STR, &self.merge_to, "FILE",
                "With sink shards: their parts will be merged into FILE (as tally run does); "
                "the summary names it rather than each part",
                0, 0),
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

    int status = 1;
    const char *why = NULL;
    if (tl_endpoints_parse (self.sink_ep, &self.sink_eps, &why) != 0)
        tl_cli_usage_error (&cli, "--sink: %s", why);
    self.nshards = (uint32_t)self.sink_eps.count;
    self.shards = calloc (self.nshards, sizeof *self.shards);
    if (!self.shards) {
        fprintf (stderr, "tally-ventilator: out of memory\n");
        goto done;
    }
    for (uint32_t i = 0; i < self.nshards; i++)
        self.shards[i].endpoint = self.sink_eps.endpoint[i];
    //  The job first: a job file that holds another job is said before anything binds.
    if (s_open_job (&self) != 0) goto done;
    self.seed = tl_shard_seed (self.secret, self.job);
    self.source =
        tl_source_new ((const char *const *)self.files.names, self.files.count, &source_opts, &why);
    if (!self.source) {
        fprintf (stderr, "tally-ventilator: %s\n", why ? why : "cannot start reading");
        goto done;
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
        goto done;
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
        goto done;
    }
    cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = 1 << 20;
    for (uint32_t i = 0; i < self.nshards; i++) {
        self.shards[i].sock =
            tl_sock_new (ZMQ_DEALER, self.shards[i].endpoint, false, false, &cfg, &why);
        if (!self.shards[i].sock) {
            fprintf (stderr, "tally-ventilator: %s: %s\n", self.shards[i].endpoint, why);
            goto done;
        }
        snprintf (monitor_ep, sizeof monitor_ep, "inproc://tally-sink-monitor-%p-%u", (void *)&self,
                  i);
        if (zmq_socket_monitor (zsock_resolve (self.shards[i].sock), monitor_ep,
                                ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0 ||
            !(self.shards[i].monitor = zsock_new_pair (monitor_ep))) {
            fprintf (stderr, "tally-ventilator: cannot monitor the sink socket\n");
            goto done;
        }
    }

    self.replay = tl_replay_new ((const char *const *)self.files.names, self.file_ids,
                                 self.files.count, &source_opts);
    self.unacked =
        tl_window_new ((size_t)self.spec.window, self.spec.retry, (uint32_t)self.spec.max_attempts);
    self.file_format = calloc (self.files.count, sizeof *self.file_format);
    if (!self.unacked || !self.file_format || !self.replay) {
        fprintf (stderr, "tally-ventilator: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < self.files.count; i++)
        self.file_format[i] = self.spec.format;
    self.progress =
        tl_bar_new ("tally", self.files.bytes, self.quiet ? TL_BAR_NONE : self.spec.progress);

    status = s_run (&self);

done:
    tl_window_destroy (&self.unacked);
    tl_replay_destroy (&self.replay);
    free (self.file_ids);
    free (self.index);
    for (uint32_t i = 0; self.shards && i < self.nshards; i++) {
        free (self.shards[i].have);
        zsock_destroy (&self.shards[i].monitor);
        zsock_destroy (&self.shards[i].sock);
    }
    free (self.shards);
    tl_endpoints_free (&self.sink_eps);
    free (self.lost);
    free (self.file_format);
    tl_bar_destroy (&self.progress);
    zsock_destroy (&self.monitor);
    zsock_destroy (&self.push);
    tl_source_destroy (&self.source);
    tl_files_free (&self.files);
    return status;
}
