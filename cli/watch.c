/*  tally-watch: subscribes to a sink's feed and prints it, readable by default or as
    JSON lines with --json (one object per message, for jq). Readable lines come from
    tl_feed's typed decoder, so they name no key of a body; --json dumps whatever map
    arrives, keys included. Byte-string keys that are not valid UTF-8 are printed in
    JSON with \u00XX escapes for their high bytes.

    Given the feeds of a job's sink shards (several endpoints), it combines them per
    job (tl_feed_join): readable lines show the job's progress, top and done, and
    --until-done waits for the done of every shard. Given one feed, every message is
    shown on its own, as it comes. Either way, a shard whose totals batches came with a
    gap is named on stderr when its done arrives.

    On a terminal (and without --json or --lines) the readable lines give way to a
    live view redrawn in place (watch_view.c).

    A late joiner: once subscribed, it asks each sink's snapshot service (tl_snapshot.h)
    for the state so far, so that it shows at once the jobs running (their progress and
    top) and the last finished ones, instead of waiting for the next message or seeing
    nothing of a job that ended before it started. Those replies go through the same
    path as the feed's messages. A job's end can arrive twice (in the snapshot and on
    the feed): each shard's done or failed is taken once. An end that came in the
    snapshot happened before tally-watch started: it does not end --until-done.     */

#include "tl_bar.h"
#include "tl_clock.h"
#include "tl_feed.h"
#include "tl_format.h"
#include "tl_feed_merge.h"
#include "tl_opts.h"
#include "tl_snapshot.h"
#include "tl_sock.h"
#include "watch_view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Jobs combined at a time: an older job that never ended is forgotten.
#define S_JOBS_MAX 16
//  Shards' ends remembered, so that one that comes twice is taken once.
#define S_ENDS_MAX 256

typedef struct {
    uint64_t job, shard;
} s_end_t;

typedef struct {
    bool json;                    //  --json
    bool until_done;              //  --until-done
    long timeout;                 //  --timeout seconds (0: none)
    tl_curve_t curve;             //  CURVE keys
    size_t feeds;                 //  Endpoints followed: more than one, their shards combined
    tl_feed_join_t *join;         //  The shards' messages per job
    uint64_t warned[S_JOBS_MAX];  //  Jobs told to have more shards than feeds followed
    size_t nwarned;               //  Ever told (the list wraps)
    bool lines;                   //  --lines: readable lines even on a terminal
    bool no_snapshot;             //  --no-snapshot
    tl_watch_view_t *live;        //  The live view, on a terminal
    s_end_t ends[S_ENDS_MAX];     //  Shards' done or failed taken, a ring
    size_t nends;                 //  Ever taken
} s_watch_t;

//  Whether this shard's end of the job was taken already; remembers it when not.
static bool s_ended_before (s_watch_t *self, const tl_feed_msg_t *msg)
{
    size_t kept = self->nends < S_ENDS_MAX ? self->nends : S_ENDS_MAX;
    for (size_t i = 0; i < kept; i++)
        if (self->ends[i].job == msg->job && self->ends[i].shard == msg->shard) return true;
    self->ends[self->nends++ % S_ENDS_MAX] = (s_end_t){msg->job, msg->shard};
    return false;
}

//  Prints bytes as a JSON string: valid UTF-8 passes through, other bytes >= 0x80
//  become \u00XX (their Latin-1 reading), control bytes are escaped.
static void s_json_string (const char *ptr, size_t len)
{
    bool utf8 = tl_utf8_valid ((const unsigned char *)ptr, len);
    putchar ('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ptr[i];
        if (c == '"' || c == '\\')
            printf ("\\%c", c);
        else if (c == '\n')
            fputs ("\\n", stdout);
        else if (c == '\t')
            fputs ("\\t", stdout);
        else if (c < 0x20 || (c >= 0x80 && !utf8))
            printf ("\\u%04x", c);
        else
            putchar (c);
    }
    putchar ('"');
}

static void s_json (const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs ("null", stdout);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs (o->via.boolean ? "true" : "false", stdout);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        printf ("%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        printf ("%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        printf ("%.6g", o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        s_json_string (o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        s_json_string (o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        putchar ('[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) putchar (',');
            s_json (&o->via.array.ptr[i]);
        }
        putchar (']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar ('{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *key = &o->via.map.ptr[i].key;
            if (i) putchar (',');
            if (key->type == MSGPACK_OBJECT_STR || key->type == MSGPACK_OBJECT_BIN)
                s_json (key);
            else {
                fputs ("\"", stdout);
                if (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    printf ("%llu", (unsigned long long)key->via.u64);
                fputs ("\"", stdout);
            }
            putchar (':');
            s_json (&o->via.map.ptr[i].val);
        }
        putchar ('}');
        break;
    default:
        fputs ("null", stdout);
        break;
    }
}

//  Prints key bytes with control bytes escaped, so that no key breaks the line.
static void s_print_key (tl_str_t key)
{
    for (size_t i = 0; i < key.len; i++) {
        unsigned char c = (unsigned char)key.ptr[i];
        if (c < 0x20 || c == 0x7f)
            printf ("\\x%02x", c);
        else
            putchar (c);
    }
}

//  What a readable line says of the shards after the job id: nothing for a job of one
//  shard, " (shard 2/3)" for one shard's message, " (3 shards)" for the job's view of
//  every shard, " (2 of 3 shards)" for a view that lacks some.
typedef struct {
    char text[48];
} s_label_t;

static s_label_t s_shard_label (uint64_t shard, uint64_t shards)
{
    s_label_t label = {""};
    if (shards > 1)
        snprintf (label.text, sizeof label.text, " (shard %llu/%llu)",
                  (unsigned long long)shard + 1, (unsigned long long)shards);
    return label;
}

static s_label_t s_shards_label (uint64_t heard, uint64_t shards)
{
    s_label_t label = {""};
    if (shards > 1 && heard == shards)
        snprintf (label.text, sizeof label.text, " (%llu shards)", (unsigned long long)shards);
    else if (shards > 1)
        snprintf (label.text, sizeof label.text, " (%llu of %llu shards)",
                  (unsigned long long)heard, (unsigned long long)shards);
    return label;
}

static void s_print_progress (unsigned long long job, const char *label,
                              const tl_progress_t *progress)
{
    //  One buffer per number: all three are formatted before printf reads any.
    char bytes[32], input[32], rate[32];
    printf ("%016llx progress%s: %llu/%llu%s chunks, %s of %s, %llu lines, %llu bad, %llu keys, "
            "%s/s, %.1f s\n",
            job, label, (unsigned long long)progress->chunks_done,
            (unsigned long long)progress->chunks_known, progress->chunks_final ? "" : "+",
            tl_human_bytes ((double)progress->bytes, bytes, sizeof bytes),
            tl_human_bytes ((double)progress->input_bytes, input, sizeof input),
            (unsigned long long)progress->lines, (unsigned long long)progress->bad_lines,
            (unsigned long long)progress->keys, tl_human_bytes (progress->rate, rate, sizeof rate),
            progress->seconds);
}

static void s_print_top_entry (bool first, tl_str_t key, uint64_t total)
{
    printf (first ? " " : ", ");
    s_print_key (key);
    printf (" %llu", (unsigned long long)total);
}

static void s_print_top (unsigned long long job, const char *label, tl_feed_entries_t top)
{
    printf ("%016llx top%s:", job, label);
    tl_str_t key;
    uint64_t total;
    for (bool first = true; tl_feed_entries_next (&top, &key, &total); first = false)
        s_print_top_entry (first, key, total);
    printf ("\n");
}

static void s_print_done (unsigned long long job, const char *label, const tl_done_body_t *done,
                          const tl_str_t *outputs, size_t noutputs)
{
    printf ("%016llx done%s: %llu keys, sum %llu, %llu lines, %llu bad, %.2f s, totals in ", job,
            label, (unsigned long long)done->keys, (unsigned long long)done->sum,
            (unsigned long long)done->lines, (unsigned long long)done->bad_lines, done->seconds);
    for (size_t i = 0; i < noutputs; i++)
        printf ("%s%.*s", i ? ", " : "", (int)outputs[i].len, outputs[i].ptr);
    printf ("\n");
}

static void s_print_totals (unsigned long long job, const char *label, const tl_feed_msg_t *msg)
{
    printf ("%016llx totals%s batch %llu/%llu: %u keys\n", job, label,
            (unsigned long long)msg->u.totals.batch + 1, (unsigned long long)msg->u.totals.batches,
            msg->u.totals.entries.count);
}

static void s_print_failed (unsigned long long job, const char *label, const tl_feed_msg_t *msg)
{
    printf ("%016llx failed%s: %.*s\n", job, label, (int)msg->u.reason.len, msg->u.reason.ptr);
}

//  One message on its own (one feed followed): as it came, its shard named when the
//  job has several.
static void s_readable (const tl_feed_msg_t *msg)
{
    unsigned long long job = (unsigned long long)msg->job;
    const char *label = s_shard_label (msg->shard, msg->shards).text;
    switch (msg->topic) {
    case TL_FEED_PROGRESS:
        s_print_progress (job, label, &msg->u.progress);
        break;
    case TL_FEED_TOP:
        s_print_top (job, label, msg->u.top);
        break;
    case TL_FEED_TOTALS:
        s_print_totals (job, label, msg);
        break;
    case TL_FEED_DONE:
        s_print_done (job, label, &msg->u.done, &msg->u.done.output, 1);
        break;
    case TL_FEED_FAILED:
        s_print_failed (job, label, msg);
        break;
    default:
        break;
    }
}

//  A message and its job's view after it (several feeds followed): the job's progress,
//  top and done; a shard's totals batches, done before the others' and failure.
static void s_readable_view (const tl_feed_msg_t *msg, const tl_feed_view_t *view)
{
    unsigned long long job = (unsigned long long)msg->job;
    const char *shard = s_shard_label (view->shard, view->shards).text;
    switch (msg->topic) {
    case TL_FEED_PROGRESS:
        s_print_progress (job, s_shards_label (view->heard, view->shards).text, &view->progress);
        break;
    case TL_FEED_TOP:
        printf ("%016llx top%s:", job, s_shards_label (view->heard, view->shards).text);
        for (size_t i = 0; i < view->ntop; i++)
            s_print_top_entry (i == 0, (tl_str_t){view->top[i].key, view->top[i].len},
                               view->top[i].count);
        printf ("\n");
        break;
    case TL_FEED_TOTALS:
        s_print_totals (job, shard, msg);
        break;
    case TL_FEED_DONE:
        if (view->complete)
            s_print_done (job, s_shards_label (view->shards, view->shards).text, &view->done,
                          view->outputs, view->shards);
        else
            printf ("%016llx done%s: %llu of %llu shards done\n", job, shard,
                    (unsigned long long)view->heard, (unsigned long long)view->shards);
        break;
    case TL_FEED_FAILED:
        s_print_failed (job, shard, msg);
        break;
    default:
        break;
    }
}

//  On a shard's done: names on stderr the totals batches it did not deliver.
static void s_check_batches (const tl_feed_msg_t *msg, const tl_feed_view_t *view)
{
    if (msg->topic != TL_FEED_DONE || (!view->unseen && !view->missed)) return;
    char shard[64] = "";
    if (view->shards > 1)
        snprintf (shard, sizeof shard, " shard %llu/%llu", (unsigned long long)view->shard + 1,
                  (unsigned long long)view->shards);
    if (view->unseen)
        fprintf (stderr, "tally-watch: job %016llx%s: no totals batch arrived before its done\n",
                 (unsigned long long)msg->job, shard);
    else
        fprintf (stderr, "tally-watch: job %016llx%s: %llu totals batch%s missed\n",
                 (unsigned long long)msg->job, shard, (unsigned long long)view->missed,
                 view->missed == 1 ? "" : "es");
}

//  Tells once per job (of the last few) when it has more shards than feeds are followed.
static void s_check_feeds (s_watch_t *self, const tl_feed_msg_t *msg)
{
    if (msg->shards <= self->feeds) return;
    for (size_t i = 0; i < S_JOBS_MAX && i < self->nwarned; i++)
        if (self->warned[i] == msg->job) return;
    self->warned[self->nwarned++ % S_JOBS_MAX] = msg->job;
    if (self->feeds == 1)
        fprintf (stderr,
                 "tally-watch: job %016llx has %llu sink shards: this feed is one shard's "
                 "(give every shard's feed to see the job's)\n",
                 (unsigned long long)msg->job, (unsigned long long)msg->shards);
    else
        fprintf (stderr,
                 "tally-watch: job %016llx has %llu sink shards but %zu feeds are followed: "
                 "its done cannot be complete (give every shard's feed)\n",
                 (unsigned long long)msg->job, (unsigned long long)msg->shards, self->feeds);
}

//  Prints a body as one JSON line, whatever its keys: the generic dump for jq.
//  Returns 0, or -1 when msgpack-c cannot unpack it.
static int s_print_json (const char *name, size_t name_size, const char *data, size_t size,
                         bool from_snapshot)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object body;
    if (msgpack_unpack (data, size, NULL, &zone, &body) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy (&zone);
        return -1;
    }
    printf ("{\"topic\":");
    s_json_string (name, name_size);
    printf (",\"body\":");
    s_json (&body);
    printf (from_snapshot ? ",\"snapshot\":true}\n" : "}\n");
    msgpack_zone_destroy (&zone);
    return 0;
}

//  Whether a message is about a job: not the sinks' stats (published all the time,
//  so they do not count for --timeout) nor the end of a snapshot.
static bool s_of_job (tl_frames_t *in)
{
    size_t size;
    const void *topic = tl_frames_data (in, 0, &size);
    tl_feed_topic_t kind = tl_feed_topic_parse (topic, size);
    return kind != TL_FEED_STATS && kind != TL_FEED_SNAPSHOT;
}

//  Prints one feed message, or one reply of a snapshot service (from_snapshot).
//  Returns 1 when it ended its job: "failed", or "done" (of every shard when several
//  feeds are followed), 2 when that was a failure; else 0. A snapshot's end of a job
//  ended before, not now: 0.
static int s_print (s_watch_t *self, tl_frames_t *in, bool from_snapshot)
{
    size_t topic_size, body_size;
    const char *topic = tl_frames_data (in, 0, &topic_size);
    const char *data = tl_frames_data (in, 1, &body_size);
    if (in->nframes != 2 || in->extra || topic_size > 32 || tl_msgpack_check (data, body_size)) {
        fprintf (stderr, "tally-watch: skipped a malformed message\n");
        return 0;
    }
    char name[33];
    memcpy (name, topic, topic_size);
    name[topic_size] = 0;
    tl_feed_topic_t kind = tl_feed_topic_parse (topic, topic_size);
    tl_feed_msg_t msg;
    bool decoded =
        kind != TL_FEED_INVALID && tl_feed_decode (topic, topic_size, data, body_size, &msg) == 0;
    if (decoded && (kind == TL_FEED_DONE || kind == TL_FEED_FAILED) && s_ended_before (self, &msg))
        return 0;  //  Heard of in the snapshot and on the feed: taken once
    if (decoded && kind == TL_FEED_ERROR) {
        fprintf (stderr, "tally-watch: the snapshot service: %.*s\n", (int)msg.u.reason.len,
                 msg.u.reason.ptr);
        return 0;
    }
    tl_feed_view_t view;
    bool joined = false;
    bool of_job = kind != TL_FEED_STATS && kind != TL_FEED_SNAPSHOT;
    if (decoded && of_job) {
        s_check_feeds (self, &msg);
        if (tl_feed_join_add (self->join, &msg, &view) == 0)
            joined = true;
        else if (self->feeds > 1)
            fprintf (stderr,
                     "tally-watch: job %016llx: a message of shard %llu/%llu not combined (its "
                     "shard count differs from the job's earlier messages, or out of memory)\n",
                     (unsigned long long)msg.job, (unsigned long long)msg.shard + 1,
                     (unsigned long long)msg.shards);
    }
    if (self->live && decoded)
        tl_watch_view_add (self->live, &msg, joined ? &view : NULL, from_snapshot);
    else if (self->live)
        ;  //  Nothing the view shows
    else if (self->json) {
        //  Whatever the body: the generic dump, and whether a snapshot sent it.
        if (s_print_json (name, topic_size, data, body_size, from_snapshot) != 0) {
            fprintf (stderr, "tally-watch: skipped a malformed message\n");
            return 0;
        }
    } else if (kind == TL_FEED_INVALID)
        printf ("%s: (unknown topic)\n", name);
    else if (!decoded) {
        fprintf (stderr, "tally-watch: skipped a malformed message\n");
        return 0;
    } else if (self->feeds == 1)
        s_readable (&msg);
    else if (joined)
        s_readable_view (&msg, &view);
    fflush (stdout);
    //  A snapshot's done: its totals batches went out before tally-watch started.
    if (joined && !from_snapshot) s_check_batches (&msg, &view);
    if (from_snapshot || !of_job) return 0;
    if (self->feeds == 1 || !decoded) {
        //  One feed: every done and failed ends its job, as it comes.
        if (kind == TL_FEED_FAILED) return 2;
        return kind == TL_FEED_DONE;
    }
    if (!joined) return 0;
    if (kind == TL_FEED_FAILED) return 2;
    return kind == TL_FEED_DONE && view.complete;
}

int main (int argc, char **argv)
{
    s_watch_t self = {0};
    tl_opt_t opts[] = {
        TL_OPT ("json", 'j', "TALLY_JSON", TL_OPT_FLAG, &self.json, NULL,
                "Print one JSON object per message (for jq)", 0, 0),
        TL_OPT ("until-done", 'u', "TALLY_UNTIL_DONE", TL_OPT_FLAG, &self.until_done, NULL,
                "Exit after the first done (0; of every shard with several feeds) or failed "
                "(1) message",
                0, 0),
        TL_OPT ("timeout", 't', "TALLY_TIMEOUT", TL_OPT_INT, &self.timeout, "SECONDS",
                "Exit 3 after this long without a message about a job (the sinks' stats do not "
                "count)",
                0, 86400),
        TL_OPT ("lines", 'l', "TALLY_LINES", TL_OPT_FLAG, &self.lines, NULL,
                "Print a line per message even on a terminal (instead of the live view)", 0, 0),
        TL_OPT ("no-snapshot", 0, "TALLY_NO_SNAPSHOT", TL_OPT_FLAG, &self.no_snapshot, NULL,
                "Do not ask the sinks for the state so far: show only what is published from "
                "now on",
                0, 0),
        TL_OPTS_CURVE_CLIENT (self.curve),
    };
    tl_cli_t cli = {.program = "tally-watch",
                    .usage = "[OPTIONS] ENDPOINT...",
                    .summary = "Subscribes to a tally-sink feed (e.g. tcp://localhost:5559) and "
                               "prints progress, top keys, totals and results: on a terminal\n"
                               "as a live view, else (or with --lines) a line per message. "
                               "First asks each sink's snapshot service (the\nfeed's port + 1) "
                               "for the jobs running and the last finished. Given the feeds of a "
                               "job's sink\nshards (several endpoints, or EP0,EP1,...), "
                               "combines them per job.",
                    TL_CLI_OPTS (opts),
                    .min_args = 1,
                    .max_args = TL_SHARDS_MAX};
    int first = tl_sock_start (&cli, argc, argv, &self.curve);
    tl_endpoints_t feeds[TL_SHARDS_MAX];
    int nargs = argc - first;
    const char *why = NULL;
    for (int i = 0; i < nargs; i++) {
        if (tl_endpoints_parse (argv[first + i], &feeds[i], &why) != 0) {
            for (int j = 0; j < i; j++)
                tl_endpoints_free (&feeds[j]);
            tl_cli_usage_error (&cli, "%s: %s", argv[first + i], why);
        }
        self.feeds += feeds[i].count;
    }
    if (self.feeds > TL_SHARDS_MAX)
        tl_cli_usage_error (&cli, "%zu endpoints: at most %d", self.feeds, TL_SHARDS_MAX);
    self.join = tl_feed_join_new (S_JOBS_MAX);
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = TL_MAXMSG_DEFAULT;
    cfg.rcvhwm = 100000;
    cfg.linger_ms = 0;
    //  One SUB socket connected to every feed: messages come fair-queued, each body
    //  naming its shard.
    zsock_t *sub =
        self.join ? tl_sock_new (ZMQ_SUB, feeds[0].endpoint[0], false, false, &cfg, &why) : NULL;
    if (!self.join) why = "out of memory";
    for (int i = 0; sub && i < nargs; i++)
        for (size_t j = i ? 0 : 1; sub && j < feeds[i].count; j++)
            if (zsock_connect (sub, "%s", feeds[i].endpoint[j]) == -1) {
                static char message[512];
                snprintf (message, sizeof message, "cannot connect to %s: %s", feeds[i].endpoint[j],
                          zmq_strerror (zmq_errno ()));
                why = message;
                zsock_destroy (&sub);
            }
    if (sub) zsock_set_subscribe (sub, "");
    //  Subscribed first, then the snapshot asked for (the Clone pattern): whatever is
    //  published after the snapshot was taken comes on the feed.
    zsock_t *snaps[TL_SHARDS_MAX];
    size_t nsnaps = 0;
    for (int i = 0; sub && !self.no_snapshot && i < nargs; i++)
        for (size_t j = 0; j < feeds[i].count; j++) {
            char *endpoint = tl_snapshot_endpoint (feeds[i].endpoint[j]);
            if (!endpoint) {
                fprintf (stderr,
                         "tally-watch: %s has no snapshot service beside it (feed port + "
                         "1): showing what is published from now on\n",
                         feeds[i].endpoint[j]);
                continue;
            }
            const char *ignored;
            zsock_t *dealer = tl_sock_new (ZMQ_DEALER, endpoint, false, false, &cfg, &ignored);
            msgpack_sbuffer request;
            msgpack_sbuffer_init (&request);
            if (dealer &&
                tl_snapshot_request_encode (&(tl_snapshot_request_t){.get = TL_SNAPSHOT_STATE},
                                            &request) == 0 &&
                zmq_send (zsock_resolve (dealer), request.data, request.size, ZMQ_DONTWAIT) >= 0)
                snaps[nsnaps++] = dealer;
            else
                zsock_destroy (&dealer);
            msgpack_sbuffer_destroy (&request);
            free (endpoint);
        }
    char title[256];
    snprintf (title, sizeof title, "%s%s", argv[first], nargs > 1 ? " ..." : "");
    for (int i = 0; i < nargs; i++)
        tl_endpoints_free (&feeds[i]);
    if (!sub) {
        fprintf (stderr, "tally-watch: %s\n", why);
        tl_feed_join_destroy (&self.join);
        return 2;
    }
    if (!self.json && !self.lines && isatty (STDOUT_FILENO))
        self.live = tl_watch_view_new (stdout, title);
    int status = 0;
    double heard = tl_now ();
    while (!zsys_interrupted) {
        zmq_pollitem_t items[1 + TL_SHARDS_MAX] = {{zsock_resolve (sub), 0, ZMQ_POLLIN, 0}};
        for (size_t i = 0; i < nsnaps; i++)
            items[1 + i] = (zmq_pollitem_t){zsock_resolve (snaps[i]), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (items, 1 + (int)nsnaps, 200) == -1 && errno != EINTR) break;
        if (self.live) tl_watch_view_draw (self.live, tl_now (), false);
        if (self.timeout && tl_now () - heard > (double)self.timeout) {
            if (self.live) tl_watch_view_destroy (&self.live);
            fprintf (stderr, "tally-watch: nothing heard for %ld s\n", self.timeout);
            status = 3;
            break;
        }
        int over = 0;
        tl_frames_t in;
        for (size_t i = 0; i < nsnaps; i++)
            if ((items[1 + i].revents & ZMQ_POLLIN) &&
                tl_frames_recv (zsock_resolve (snaps[i]), &in, ZMQ_DONTWAIT) >= 0) {
                if (s_of_job (&in)) heard = tl_now ();
                s_print (&self, &in, true);
                tl_frames_close (&in);
            }
        if ((items[0].revents & ZMQ_POLLIN) &&
            tl_frames_recv (zsock_resolve (sub), &in, ZMQ_DONTWAIT) >= 0) {
            if (s_of_job (&in)) heard = tl_now ();
            over = s_print (&self, &in, false);
            tl_frames_close (&in);
        }
        if (over && self.until_done) {
            status = over == 2 ? 1 : 0;
            break;
        }
    }
    if (self.live) tl_watch_view_draw (self.live, tl_now (), true);
    tl_watch_view_destroy (&self.live);
    for (size_t i = 0; i < nsnaps; i++)
        zsock_destroy (&snaps[i]);
    zsock_destroy (&sub);
    tl_feed_join_destroy (&self.join);
    return status;
}
