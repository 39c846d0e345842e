/*  tally web's HTTP side (libmicrohttpd): the page, its event stream, the state as
    JSON, the metrics and the totals downloads.

    Threading: MHD runs its own listening thread and one thread per connection
    (MHD_USE_THREAD_PER_CONNECTION); the feeds are read by the main thread, which
    owns every ZeroMQ socket it polls, and the two share tl_web_t under its mutex. One
    thread per connection lets an SSE stream simply wait on the state's condition
    variable, and a totals download wait for a sink's reply in a plain poll, without
    suspending and resuming connections; a page has few viewers and scrapes are rare,
    so the threads are few, and MHD_OPTION_CONNECTION_LIMIT caps them. Driving MHD from
    the zmq_poll loop instead would put a slow sink reply for one download in the way
    of the feeds and of every other request.                                          */

#include "web.h"

#include "tl_clock.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  The page: cli/web/page.html as bytes (web_page.h is made from it by CMake).
#include "web_page.h"

#define S_CONNECTIONS_MAX 64   //  Threads at most (one per connection)
#define S_KEEPALIVE       15   //  Seconds between SSE comments when nothing changes
#define S_IDLE_TIMEOUT    120  //  Seconds a connection may stay silent

//  Answers with a copy of text.
static enum MHD_Result s_answer (struct MHD_Connection *connection, unsigned status,
                                 const char *type, const void *text, size_t len)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer (len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result s_text (struct MHD_Connection *connection, unsigned status, const char *text)
{
    return s_answer (connection, status, "text/plain; charset=utf-8", text, strlen (text));
}

//  ---------------------------------------------------------------------------------
//  GET /events: Server-Sent Events, one "state" event with the whole JSON each time it
//  changes (at most as often as tl_web_publish makes it), the current one at once.

typedef struct {
    tl_web_t *web;         //  The state
    uint64_t sent;         //  Version of the JSON sent last (0: none yet)
    tl_web_buf_t pending;  //  The event being sent
    size_t offset;         //  Bytes of it sent
} s_stream_t;

static ssize_t s_stream_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    s_stream_t *self = cls;
    if (self->offset == self->pending.len) {
        tl_web_t *web = self->web;
        self->pending.len = 0;
        self->offset = 0;
        pthread_mutex_lock (&web->lock);
        struct timespec deadline;
        clock_gettime (CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += S_KEEPALIVE;
        int rc = 0;
        while (!web->stopping && (web->version == self->sent || !web->json) && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait (&web->changed, &web->lock, &deadline);
        if (web->stopping) {
            pthread_mutex_unlock (&web->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (web->version != self->sent && web->json) {
            if (!self->sent) tl_web_buf_add (&self->pending, "retry: 2000\n", 12);
            tl_web_buf_add (&self->pending, "event: state\ndata: ", 19);
            tl_web_buf_add (&self->pending, web->json, web->json_len);
            tl_web_buf_add (&self->pending, "\n\n", 2);
            self->sent = web->version;
        } else
            tl_web_buf_add (&self->pending, ": keepalive\n\n", 13);
        pthread_mutex_unlock (&web->lock);
        if (self->pending.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = self->pending.len - self->offset;
    if (n > max) n = max;
    memcpy (buf, self->pending.data + self->offset, n);
    self->offset += n;
    return (ssize_t)n;
}

static void s_stream_free (void *cls)
{
    s_stream_t *self = cls;
    tl_web_buf_free (&self->pending);
    free (self);
}

static enum MHD_Result s_events (tl_web_t *web, struct MHD_Connection *connection)
{
    s_stream_t *stream = calloc (1, sizeof *stream);
    if (!stream) return MHD_NO;
    stream->web = web;
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, 64 * 1024, s_stream_read, stream, s_stream_free);
    if (!response) {
        free (stream);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    //  Tells a proxy such as nginx not to hold the events back.
    MHD_add_response_header (response, "X-Accel-Buffering", "no");
    enum MHD_Result rc = MHD_queue_response (connection, MHD_HTTP_OK, response);
    MHD_destroy_response (response);
    return rc;
}

//  ---------------------------------------------------------------------------------

static enum MHD_Result s_state (tl_web_t *web, struct MHD_Connection *connection)
{
    tl_web_buf_t out = {0};
    pthread_mutex_lock (&web->lock);
    if (web->json)
        tl_web_buf_add (&out, web->json, web->json_len);
    else
        tl_web_render_json (web, &out);
    pthread_mutex_unlock (&web->lock);
    enum MHD_Result rc =
        out.failed ? s_text (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n")
                   : s_answer (connection, MHD_HTTP_OK, "application/json", out.data, out.len);
    tl_web_buf_free (&out);
    return rc;
}

static enum MHD_Result s_metrics (tl_web_t *web, struct MHD_Connection *connection)
{
    tl_web_buf_t out = {0};
    pthread_mutex_lock (&web->lock);
    tl_web_render_metrics (web, &out);
    pthread_mutex_unlock (&web->lock);
    enum MHD_Result rc =
        out.failed ? s_text (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n")
                   : s_answer (connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                               out.data, out.len);
    tl_web_buf_free (&out);
    return rc;
}

static enum MHD_Result s_page (struct MHD_Connection *connection)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        sizeof s_web_page, (void *)s_web_page, MHD_RESPMEM_PERSISTENT);
    if (!response) return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    //  Everything the page needs is in it: nothing may be loaded from elsewhere.
    MHD_add_response_header (response, "Content-Security-Policy",
                             "default-src 'none'; script-src 'unsafe-inline'; "
                             "style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
    MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response (connection, MHD_HTTP_OK, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result s_route (void *cls, struct MHD_Connection *connection, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload;
    tl_web_t *web = cls;
    //  MHD calls once with the headers, then for any body: answer on the first call.
    if (!*con_cls) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;  //  No request here has a body: drop it
        return MHD_YES;
    }
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp (url, "/") == 0 || strcmp (url, "/index.html") == 0) return s_page (connection);
    if (strcmp (url, "/events") == 0) return s_events (web, connection);
    if (strcmp (url, "/api/state") == 0) return s_state (web, connection);
    if (strcmp (url, "/metrics") == 0) return s_metrics (web, connection);
    if (strncmp (url, "/jobs/", 6) == 0)
        return tl_web_totals_answer (web, connection, url + 6) ? MHD_YES : MHD_NO;
    return s_text (connection, MHD_HTTP_NOT_FOUND,
                   "not found: this server has /, /events, /api/state, /metrics and "
                   "/jobs/<id>/totals\n");
}

static void s_log (void *cls, const char *fmt, va_list args)
{
    (void)cls;
    fputs ("tally web: ", stderr);
    vfprintf (stderr, fmt, args);
}

struct MHD_Daemon *tl_web_http_start (tl_web_t *self, const char *host, const char *port,
                                      char *error, size_t size)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    struct addrinfo *found = NULL;
    if (host && *host) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        int rc = getaddrinfo (host, port, &hints, &found);
        if (rc != 0) {
            snprintf (error, size, "cannot listen on %s:%s: %s", host, port, gai_strerror (rc));
            return NULL;
        }
        if (found->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    }
    unsigned short number = (unsigned short)atoi (port);
    struct MHD_Daemon *daemon = NULL;
    //  The logger first, so that MHD's own messages go through it too.
    if (found)
        daemon = MHD_start_daemon (
            flags, number, NULL, NULL, s_route, self, MHD_OPTION_EXTERNAL_LOGGER, s_log, NULL,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)S_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)S_IDLE_TIMEOUT, MHD_OPTION_SOCK_ADDR, found->ai_addr, MHD_OPTION_END);
    //  Every interface: IPv6 and IPv4 on one socket, or IPv4 alone where there is no IPv6.
    for (int attempt = 0; !found && attempt < 2 && !daemon; attempt++)
        daemon = MHD_start_daemon (flags | (attempt == 0 ? MHD_USE_DUAL_STACK : 0), number, NULL,
                                   NULL, s_route, self, MHD_OPTION_EXTERNAL_LOGGER, s_log, NULL,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)S_CONNECTIONS_MAX,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S_IDLE_TIMEOUT,
                                   MHD_OPTION_END);
    if (!daemon)
        snprintf (error, size, "cannot listen on %s:%s (%s)", host && *host ? host : "*", port,
                  strerror (errno));
    if (found) freeaddrinfo (found);
    return daemon;
}

unsigned tl_web_http_port (struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void tl_web_http_stop (tl_web_t *self, struct MHD_Daemon **daemon_p)
{
    if (!*daemon_p) return;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    MHD_stop_daemon (*daemon_p);
    *daemon_p = NULL;
}
