/*  tally web: subscribes to one or more sinks' feeds (a job's sink shards, combined as
    tally-watch combines them) and serves, over HTTP:

    - /            a live page: running jobs' progress (per shard too), throughput,
                   the top keys, finished jobs with their summary and totals;
    - /events      the state as Server-Sent Events (JSON), the whole of it on connect;
    - /api/state   the same JSON once;
    - /metrics     Prometheus text: jobs, shards, the sinks' own stats, this program's;
    - /jobs/<id>/totals  a finished job's totals, from the sinks' snapshot services.

    It listens on 127.0.0.1:8080 by default: the page shows what is counted, keys
    included, so it is for this machine unless told otherwise (--listen :8080 for every
    interface, behind whatever guards the network).

    A page opened late must show what happened before: at start, and each time a feed
    connects again (a sink restarted, the network came back), the sink's snapshot
    service is asked for its state (the open jobs' progress and top, the recently
    finished jobs' done or failed, its stats), which comes back as feed messages.    */

#include "web.h"

#include "tl_clock.h"
#include "tl_opts.h"
#include "tl_snapshot.h"
#include "tl_sock.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PUBLISH_EVERY 0.25  //  Seconds between two states sent to the pages, at least

//  Splits --listen's [HOST]:PORT (HOST may be [IPv6]). Returns 0 or -1.
static int s_parse_listen (const char *text, char *host, size_t host_size, char *port,
                           size_t port_size)
{
    const char *colon = strrchr (text, ':');
    if (!colon || !colon[1] || strlen (colon + 1) >= port_size) return -1;
    for (const char *c = colon + 1; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    long number = strtol (colon + 1, NULL, 10);
    if (number > 65535) return -1;
    const char *start = text, *stop = colon;
    if (*start == '[') {
        if (stop == start || stop[-1] != ']') return -1;
        start++, stop--;
    }
    if ((size_t)(stop - start) >= host_size) return -1;
    snprintf (host, host_size, "%.*s", (int)(stop - start), start);
    snprintf (port, port_size, "%s", colon + 1);
    return 0;
}

typedef struct {
    zsock_t *sub;       //  The feed
    zsock_t *monitor;   //  The feed's connection events
    zsock_t *snapshot;  //  DEALER to the snapshot service (NULL: none)
} s_link_t;

//  Reads one monitor event: the feed connected (ask for the state) or disconnected.
static void s_on_event (tl_web_t *web, size_t i, s_link_t *link)
{
    zmsg_t *event = zmsg_recv (link->monitor);
    zframe_t *head = event ? zmsg_first (event) : NULL;
    if (!head || zframe_size (head) < 2) {
        zmsg_destroy (&event);
        return;
    }
    uint16_t kind;
    memcpy (&kind, zframe_data (head), sizeof kind);
    zmsg_destroy (&event);
    bool connected = kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
    bool ask =
        connected && link->snapshot && tl_web_ask_state (zsock_resolve (link->snapshot)) == 0;
    pthread_mutex_lock (&web->lock);
    web->feeds[i].connected = connected;
    web->feeds[i].connects += connected;
    web->feeds[i].snapshot_asks += ask;
    web->dirty = true;
    pthread_mutex_unlock (&web->lock);
}

//  Takes up to a few hundred messages waiting on socket (a feed or its snapshot
//  service's replies): the others get their turn.
static void s_drain (tl_web_t *web, size_t i, zsock_t *socket, bool snapshot)
{
    for (int n = 0; n < 256; n++) {
        tl_frames_t in;
        if (tl_frames_recv (zsock_resolve (socket), &in, ZMQ_DONTWAIT) < 0) return;
        size_t topic_size, body_size;
        const void *topic = tl_frames_data (&in, 0, &topic_size);
        const void *body = tl_frames_data (&in, 1, &body_size);
        if (snapshot) {
            pthread_mutex_lock (&web->lock);
            web->feeds[i].replies++;
            pthread_mutex_unlock (&web->lock);
        }
        if (in.nframes == 2 && !in.extra)
            tl_web_add (web, i, topic, topic_size, body, body_size);
        else {
            pthread_mutex_lock (&web->lock);
            web->feeds[i].messages++;
            web->feeds[i].undecodable++;
            pthread_mutex_unlock (&web->lock);
        }
        tl_frames_close (&in);
    }
}

static int s_run (tl_web_t *web, s_link_t *links, size_t n)
{
    zmq_pollitem_t items[3 * TL_SHARDS_MAX];
    double next_sample = tl_now (), published = 0;
    while (!zsys_interrupted) {
        for (size_t i = 0; i < n; i++) {
            items[3 * i] = (zmq_pollitem_t){zsock_resolve (links[i].sub), 0, ZMQ_POLLIN, 0};
            items[3 * i + 1] = (zmq_pollitem_t){zsock_resolve (links[i].monitor), 0, ZMQ_POLLIN, 0};
            //  A feed without a snapshot service polls its own socket twice: harmless.
            void *snapshot = zsock_resolve (links[i].snapshot ? links[i].snapshot : links[i].sub);
            items[3 * i + 2] = (zmq_pollitem_t){snapshot, 0, ZMQ_POLLIN, 0};
        }
        if (zmq_poll (items, (int)(3 * n), 100) == -1 && errno != EINTR) return 1;
        for (size_t i = 0; i < n; i++) {
            if (items[3 * i + 1].revents & ZMQ_POLLIN) s_on_event (web, i, &links[i]);
            if (items[3 * i].revents & ZMQ_POLLIN) s_drain (web, i, links[i].sub, false);
            if (links[i].snapshot && items[3 * i + 2].revents & ZMQ_POLLIN)
                s_drain (web, i, links[i].snapshot, true);
        }
        double now = tl_now ();
        if (now >= next_sample) {
            tl_web_sample (web, now);
            next_sample += 1;
            if (next_sample < now) next_sample = now + 1;
        }
        if (now - published >= S_PUBLISH_EVERY) {
            tl_web_publish (web);
            published = now;
        }
    }
    return 0;
}

//  Opens the feed's sockets. Returns 0, or -1 with a reason in *why.
static int s_link_open (s_link_t *link, size_t i, const char *feed, const char *snapshot,
                        const char **why)
{
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = TL_MAXMSG_DEFAULT;
    cfg.rcvhwm = 100000;
    cfg.linger_ms = 0;
    link->sub = tl_sock_new (ZMQ_SUB, feed, false, false, &cfg, why);
    if (!link->sub) return -1;
    zsock_set_subscribe (link->sub, "");
    char monitor[64];
    snprintf (monitor, sizeof monitor, "inproc://tally-web-monitor-%zu", i);
    if (zmq_socket_monitor (zsock_resolve (link->sub), monitor,
                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(link->monitor = zsock_new_pair (monitor))) {
        *why = "cannot watch the feed's connection";
        return -1;
    }
    zsock_set_rcvhwm (link->monitor, 0);
    //  The SUB socket's monitor is connected to before the connection is made (zmq
    //  connects in the background), so the first HANDSHAKE_SUCCEEDED is not missed.
    if (snapshot) {
        link->snapshot = tl_sock_new (ZMQ_DEALER, snapshot, false, false, &cfg, why);
        if (!link->snapshot) return -1;
    }
    return 0;
}

static void s_link_close (s_link_t *link)
{
    zsock_destroy (&link->snapshot);
    if (link->sub) zmq_socket_monitor (zsock_resolve (link->sub), NULL, 0);
    zsock_destroy (&link->monitor);
    zsock_destroy (&link->sub);
}

int tl_web_main (int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080";
    bool quiet = false;
    tl_curve_t curve = {0};
    tl_opt_t opts[] = {
        TL_OPT ("listen", 'l', "TALLY_LISTEN", TL_OPT_STR, &listen, "[HOST]:PORT",
                "Where to serve (default 127.0.0.1:8080, this machine only; ':8080' for every "
                "interface, port 0 for any free one)",
                0, 0),
        TL_OPTS_CURVE_CLIENT (curve),
        TL_OPT_QUIET (quiet),
    };
    tl_cli_t cli = {
        .program = "tally web",
        .usage = "[OPTIONS] FEED...",
        .summary = "Serves a live page of the sinks' jobs and Prometheus metrics, from their feeds "
                   "(e.g. tcp://localhost:5559).\nGiven the feeds of a job's sink shards (several, "
                   "or FEED0,FEED1,...), combines them per job.",
        .epilog = "Pages: / (live), /events (SSE), /api/state (JSON), /metrics (Prometheus), "
                  "/jobs/ID/totals.\nExample: tally web --listen 127.0.0.1:8080 "
                  "tcp://localhost:5559",
        TL_CLI_OPTS (opts),
        .min_args = 1,
        .max_args = TL_SHARDS_MAX};
    int first = tl_sock_start (&cli, argc, argv, &curve);
    char host[256], port[8];
    if (s_parse_listen (listen, host, sizeof host, port, sizeof port) != 0)
        tl_cli_usage_error (&cli, "--listen %s: give [HOST]:PORT (e.g. 127.0.0.1:8080, :8080)",
                            listen);
    tl_endpoints_t lists[TL_SHARDS_MAX];
    char *feeds[TL_SHARDS_MAX];
    size_t nfeeds = 0;
    int nargs = argc - first;
    for (int i = 0; i < nargs; i++) {
        const char *why;
        if (tl_endpoints_parse (argv[first + i], &lists[i], &why) != 0) {
            for (int j = 0; j < i; j++)
                tl_endpoints_free (&lists[j]);
            tl_cli_usage_error (&cli, "%s: %s", argv[first + i], why);
        }
        if (nfeeds + lists[i].count > TL_SHARDS_MAX) {
            for (int j = 0; j <= i; j++)
                tl_endpoints_free (&lists[j]);
            tl_cli_usage_error (&cli, "more than %d feeds", TL_SHARDS_MAX);
        }
        for (size_t j = 0; j < lists[i].count; j++)
            feeds[nfeeds++] = lists[i].endpoint[j];
    }
    tl_web_t web;
    s_link_t links[TL_SHARDS_MAX] = {{0}};
    int status = 1;
    struct MHD_Daemon *daemon = NULL;
    if (tl_web_init (&web, feeds, nfeeds) != 0) {
        fprintf (stderr, "tally web: out of memory\n");
        goto out;
    }
    web.max_message = TL_MAXMSG_DEFAULT;
    for (size_t i = 0; i < nfeeds; i++) {
        const char *why = NULL;
        web.feeds[i].snapshot = tl_snapshot_endpoint (feeds[i]);
        if (!web.feeds[i].snapshot)
            fprintf (stderr,
                     "tally web: %s: no snapshot service can be derived from it: jobs "
                     "finished before this program started are not shown\n",
                     feeds[i]);
        if (s_link_open (&links[i], i, feeds[i], web.feeds[i].snapshot, &why) != 0) {
            fprintf (stderr, "tally web: %s\n", why);
            status = 2;
            goto out;
        }
    }
    char error[512];
    daemon = tl_web_http_start (&web, host, port, error, sizeof error);
    if (!daemon) {
        fprintf (stderr, "tally web: %s\n", error);
        goto out;
    }
    tl_web_publish (&web);
    if (!quiet) {
        bool v6 = strchr (host, ':') != NULL;
        fprintf (stderr, "tally web: serving http://%s%s%s:%u/ (metrics at /metrics), %zu feed%s\n",
                 v6 ? "[" : "", *host ? host : "localhost", v6 ? "]" : "",
                 tl_web_http_port (daemon), nfeeds, nfeeds == 1 ? "" : "s");
    }
    status = s_run (&web, links, nfeeds);
out:
    tl_web_http_stop (&web, &daemon);
    for (size_t i = 0; i < nfeeds; i++) {
        s_link_close (&links[i]);
        free (web.feeds[i].snapshot);
    }
    tl_web_destroy (&web);
    for (int i = 0; i < nargs; i++)
        tl_endpoints_free (&lists[i]);
    return status;
}
