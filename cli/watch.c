/*  tally-watch: subscribes to a sink's feed and prints it, readable by default or as
    JSON lines with --json (one object per message, for jq). Readable lines come from
    tl_feed's typed decoder, so they name no key of a body; --json dumps whatever map
    arrives, keys included. Byte-string keys that are not valid UTF-8 are printed in
    JSON with \u00XX escapes for their high bytes.                                   */

#include "tl_bar.h"
#include "tl_clock.h"
#include "tl_feed.h"
#include "tl_opts.h"
#include "tl_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bool json;         //  --json
    bool until_done;   //  --until-done
    long timeout;      //  --timeout seconds (0: none)
    tl_curve_t curve;  //  CURVE keys
} s_watch_t;

static bool s_utf8_valid (const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        for (size_t j = 1; j < len; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

//  Prints bytes as a JSON string: valid UTF-8 passes through, other bytes >= 0x80
//  become \u00XX (their Latin-1 reading), control bytes are escaped.
static void s_json_string (const char *ptr, size_t len)
{
    bool utf8 = s_utf8_valid ((const unsigned char *)ptr, len);
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

static void s_print_progress (unsigned long long job, const tl_progress_t *progress)
{
    //  One buffer per number: all three are formatted before printf reads any.
    char bytes[32], input[32], rate[32];
    printf ("%016llx progress: %llu/%llu%s chunks, %s of %s, %llu lines, %llu bad, %llu keys, "
            "%s/s, %.1f s\n",
            job, (unsigned long long)progress->chunks_done,
            (unsigned long long)progress->chunks_known, progress->chunks_final ? "" : "+",
            tl_human_bytes ((double)progress->bytes, bytes, sizeof bytes),
            tl_human_bytes ((double)progress->input_bytes, input, sizeof input),
            (unsigned long long)progress->lines, (unsigned long long)progress->bad_lines,
            (unsigned long long)progress->keys, tl_human_bytes (progress->rate, rate, sizeof rate),
            progress->seconds);
}

static void s_print_top (unsigned long long job, tl_feed_entries_t top)
{
    printf ("%016llx top:", job);
    tl_str_t key;
    uint64_t total;
    for (bool first = true; tl_feed_entries_next (&top, &key, &total); first = false) {
        printf (first ? " " : ", ");
        s_print_key (key);
        printf (" %llu", (unsigned long long)total);
    }
    printf ("\n");
}

static void s_readable (const tl_feed_msg_t *msg)
{
    unsigned long long job = (unsigned long long)msg->job;
    switch (msg->topic) {
    case TL_FEED_PROGRESS:
        s_print_progress (job, &msg->u.progress);
        break;
    case TL_FEED_TOP:
        s_print_top (job, msg->u.top);
        break;
    case TL_FEED_TOTALS:
        printf ("%016llx totals batch %llu/%llu: %u keys\n", job,
                (unsigned long long)msg->u.totals.batch + 1,
                (unsigned long long)msg->u.totals.batches, msg->u.totals.entries.count);
        break;
    case TL_FEED_DONE: {
        const tl_done_body_t *done = &msg->u.done;
        printf ("%016llx done: %llu keys, sum %llu, %llu lines, %llu bad, %.2f s, totals in %.*s\n",
                job, (unsigned long long)done->keys, (unsigned long long)done->sum,
                (unsigned long long)done->lines, (unsigned long long)done->bad_lines, done->seconds,
                (int)done->output.len, done->output.ptr);
        break;
    }
    case TL_FEED_FAILED:
        printf ("%016llx failed: %.*s\n", job, (int)msg->u.reason.len, msg->u.reason.ptr);
        break;
    default:
        break;
    }
}

//  Prints a body as one JSON line, whatever its keys: the generic dump for jq.
//  Returns 0, or -1 when msgpack-c cannot unpack it.
static int s_print_json (const char *name, size_t name_size, const char *data, size_t size)
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
    printf ("}\n");
    msgpack_zone_destroy (&zone);
    return 0;
}

//  Prints one feed message. Returns 1 when it was "done" or "failed".
static int s_print (s_watch_t *self, tl_frames_t *in)
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
    if (self->json) {
        if (s_print_json (name, topic_size, data, body_size) != 0) {
            fprintf (stderr, "tally-watch: skipped a malformed message\n");
            return 0;
        }
    } else if (kind == TL_FEED_INVALID)
        printf ("%s: (unknown topic)\n", name);
    else if (tl_feed_decode (topic, topic_size, data, body_size, &msg) == 0)
        s_readable (&msg);
    else {
        fprintf (stderr, "tally-watch: skipped a malformed message\n");
        return 0;
    }
    fflush (stdout);
    return kind == TL_FEED_DONE || kind == TL_FEED_FAILED;
}

int main (int argc, char **argv)
{
    s_watch_t self = {0};
    tl_opt_t opts[] = {
        TL_OPT ("json", 'j', "TALLY_JSON", TL_OPT_FLAG, &self.json, NULL,
                "Print one JSON object per message (for jq)", 0, 0),
        TL_OPT ("until-done", 'u', "TALLY_UNTIL_DONE", TL_OPT_FLAG, &self.until_done, NULL,
                "Exit after the first done (0) or failed (1) message", 0, 0),
        TL_OPT ("timeout", 't', "TALLY_TIMEOUT", TL_OPT_INT, &self.timeout, "SECONDS",
                "Exit 3 after this long without a message", 0, 86400),
        TL_OPTS_CURVE_CLIENT (self.curve),
    };
    tl_cli_t cli = {.program = "tally-watch",
                    .usage = "[OPTIONS] ENDPOINT",
                    .summary = "Subscribes to a tally-sink feed (e.g. tcp://localhost:5559) and "
                               "prints progress, top keys, totals and results.",
                    TL_CLI_OPTS (opts),
                    .min_args = 1,
                    .max_args = 1};
    int first = tl_sock_start (&cli, argc, argv, &self.curve);
    const char *why;
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = TL_MAXMSG_DEFAULT;
    cfg.rcvhwm = 100000;
    cfg.linger_ms = 0;
    zsock_t *sub = tl_sock_new (ZMQ_SUB, argv[first], false, false, &cfg, &why);
    if (!sub) {
        fprintf (stderr, "tally-watch: %s\n", why);
        return 2;
    }
    zsock_set_subscribe (sub, "");
    int status = 0;
    double heard = tl_now ();
    while (!zsys_interrupted) {
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 200) == -1 && errno != EINTR) break;
        if (self.timeout && tl_now () - heard > (double)self.timeout) {
            fprintf (stderr, "tally-watch: nothing heard for %ld s\n", self.timeout);
            status = 3;
            break;
        }
        tl_frames_t in;
        if (!(item.revents & ZMQ_POLLIN) ||
            tl_frames_recv (zsock_resolve (sub), &in, ZMQ_DONTWAIT) < 0)
            continue;
        heard = tl_now ();
        size_t size;
        const char *topic = tl_frames_data (&in, 0, &size);
        bool failed = tl_feed_topic_parse (topic, size) == TL_FEED_FAILED;
        int over = s_print (&self, &in);
        tl_frames_close (&in);
        if (over && self.until_done) {
            status = failed ? 1 : 0;
            break;
        }
    }
    zsock_destroy (&sub);
    return status;
}
