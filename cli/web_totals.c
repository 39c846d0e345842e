/*  GET /jobs/<id>/totals: a finished job's totals file, streamed from the sinks'
    snapshot services.

    Every feed's snapshot service is asked for the job's first batch; each that has the
    job answers with its shard's part (`shard` of `shards`), the others with an error.
    With every shard's part at hand the download starts: each shard's part is already
    sorted as a totals file (total descending, then key bytewise), so a heap of the
    shards' next keys (at most 64) hands out the job's lines in order, and a shard's
    next batch is asked for when its current one runs out. The reply is chunked
    (MHD_create_response_from_callback), so memory stays at a batch per shard whatever
    the job's size.

    The first batches decide the status: 200, 404 when no sink has the job (unknown,
    or no longer kept), 502 when some shards' parts are missing, 504 when no sink
    answered. A sink that stops answering later cuts the reply short (no final
    chunk), which a client sees as an incomplete transfer.                            */

#include "web.h"

#include "tl_snapshot.h"
#include "tl_sock.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FIRST_WAIT_MS 5000   //  Wait for the first batches (every feed at once)
#define S_NEXT_WAIT_MS  15000  //  Wait for a later batch

//  ---------------------------------------------------------------------------------
//  Requests

static int s_ask (void *socket, const tl_snapshot_request_t *request)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    int rc = tl_snapshot_request_encode (request, &buf) == 0 &&
                     zmq_send (socket, buf.data, buf.size, ZMQ_DONTWAIT) == (int)buf.size
                 ? 0
                 : -1;
    msgpack_sbuffer_destroy (&buf);
    return rc;
}

int tl_web_ask_state (void *socket)
{
    return s_ask (socket, &(tl_snapshot_request_t){.get = TL_SNAPSHOT_STATE});
}

int tl_web_ask_totals (void *socket, uint64_t job, uint64_t from, uint64_t batch)
{
    return s_ask (socket, &(tl_snapshot_request_t){
                              .get = TL_SNAPSHOT_TOTALS, .job = job, .from = from, .batch = batch});
}

//  ---------------------------------------------------------------------------------
//  One shard's part, a batch at a time

typedef enum { S_WAITING, S_READY, S_ERROR, S_SILENT, S_MALFORMED } s_answer_t;

typedef struct {
    zsock_t *dealer;       //  To the feed's snapshot service
    const char *endpoint;  //  Its endpoint (for messages)
    s_answer_t answer;     //  What the last request got
    char reason[160];      //  S_ERROR: why
    tl_frames_t reply;     //  The batch in hand (its entries point into it)
    tl_feed_msg_t msg;     //  ... decoded
    tl_str_t key;          //  The shard's next line: key ...
    uint64_t total;        //  ... and total
} s_part_t;

typedef struct {
    tl_web_t *web;                   //  The state (for the feeds' endpoints)
    uint64_t job;                    //  The job
    uint64_t shards;                 //  Its shards
    s_part_t parts[TL_SHARDS_MAX];   //  One per feed asked (the first batches) ...
    size_t nparts;                   //  ... how many
    s_part_t *shard[TL_SHARDS_MAX];  //  Each shard's part
    s_part_t *heap[TL_SHARDS_MAX];   //  Parts with a line to give, the next first
    size_t nheap;                    //  How many
    tl_web_buf_t line;               //  The line being sent
    size_t offset;                   //  Bytes of it sent
    bool broken;                     //  A sink failed to send its part: no more lines
} s_download_t;

static void s_part_close (s_part_t *part)
{
    if (part->reply.nframes) tl_frames_close (&part->reply);
    zsock_destroy (&part->dealer);
}

//  Reads the reply to the last request, when there is one.
static void s_part_receive (s_part_t *part)
{
    if (part->reply.nframes) tl_frames_close (&part->reply);
    if (tl_frames_recv (zsock_resolve (part->dealer), &part->reply, ZMQ_DONTWAIT) < 0) return;
    size_t topic_size, body_size;
    const void *topic = tl_frames_data (&part->reply, 0, &topic_size);
    const void *body = tl_frames_data (&part->reply, 1, &body_size);
    part->answer = S_MALFORMED;
    if (part->reply.nframes != 2 ||
        tl_feed_decode (topic, topic_size, body, body_size, &part->msg) != 0)
        return;
    if (part->msg.topic == TL_FEED_ERROR) {
        part->answer = S_ERROR;
        snprintf (part->reason, sizeof part->reason, "%.*s", (int)part->msg.u.reason.len,
                  part->msg.u.reason.ptr);
    } else if (part->msg.topic == TL_FEED_TOTALS)
        part->answer = S_READY;
}

//  Waits up to ms for the parts still waiting. Returns when none is.
static void s_parts_wait (s_part_t **parts, size_t n, int ms)
{
    double deadline = zclock_mono () + ms;
    while (true) {
        zmq_pollitem_t items[TL_SHARDS_MAX];
        s_part_t *waiting[TL_SHARDS_MAX];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (parts[i]->answer == S_WAITING) {
                waiting[k] = parts[i];
                items[k++] = (zmq_pollitem_t){zsock_resolve (parts[i]->dealer), 0, ZMQ_POLLIN, 0};
            }
        long left = (long)(deadline - zclock_mono ());
        if (!k) return;
        if (left <= 0 || zsys_interrupted) break;
        //  In slices, so that a program told to stop is not held up.
        if (zmq_poll (items, (int)k, left < 200 ? left : 200) < 0) break;
        for (size_t i = 0; i < k; i++)
            if (items[i].revents & ZMQ_POLLIN) s_part_receive (waiting[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (parts[i]->answer == S_WAITING) parts[i]->answer = S_SILENT;
}

//  Asks for the shard's next batch and waits for it. Returns 0 or -1.
static int s_part_next_batch (s_part_t *part, uint64_t job)
{
    part->answer = S_WAITING;
    if (tl_web_ask_totals (zsock_resolve (part->dealer), job, part->msg.u.totals.next,
                           part->msg.u.totals.batch + 1) != 0)
        return -1;
    s_parts_wait (&part, 1, S_NEXT_WAIT_MS);
    return part->answer == S_READY ? 0 : -1;
}

//  Moves the part to its next line, asking for batches as they run out. Returns 1 when
//  it has one, 0 when its lines are over, -1 when its sink failed to send them.
static int s_part_advance (s_part_t *part, uint64_t job)
{
    while (!tl_feed_entries_next (&part->msg.u.totals.entries, &part->key, &part->total)) {
        if (part->msg.u.totals.batch + 1 >= part->msg.u.totals.batches) return 0;
        if (s_part_next_batch (part, job) != 0) return -1;
    }
    return 1;
}

//  ---------------------------------------------------------------------------------
//  The heap of the shards' next lines

//  True when a's line comes before b's in a totals file.
static bool s_before (const s_part_t *a, const s_part_t *b)
{
    if (a->total != b->total) return a->total > b->total;
    size_t common = a->key.len < b->key.len ? a->key.len : b->key.len;
    int order = memcmp (a->key.ptr, b->key.ptr, common);
    return order ? order < 0 : a->key.len < b->key.len;
}

static void s_heap_push (s_download_t *self, s_part_t *part)
{
    size_t i = self->nheap++;
    self->heap[i] = part;
    while (i > 0 && s_before (self->heap[i], self->heap[(i - 1) / 2])) {
        s_part_t *swap = self->heap[i];
        self->heap[i] = self->heap[(i - 1) / 2];
        self->heap[(i - 1) / 2] = swap;
        i = (i - 1) / 2;
    }
}

static void s_heap_fix_top (s_download_t *self)
{
    size_t i = 0;
    while (true) {
        size_t best = i, left = 2 * i + 1, right = left + 1;
        if (left < self->nheap && s_before (self->heap[left], self->heap[best])) best = left;
        if (right < self->nheap && s_before (self->heap[right], self->heap[best])) best = right;
        if (best == i) return;
        s_part_t *swap = self->heap[i];
        self->heap[i] = self->heap[best];
        self->heap[best] = swap;
        i = best;
    }
}

//  Stops the download: the client sees its reply cut short.
static void s_break (s_download_t *self, const char *why)
{
    self->broken = true;
    fprintf (stderr, "tally web: job %016llx: totals download cut short: %s\n",
             (unsigned long long)self->job, why);
}

//  Makes the job's next line. Returns 1, 0 when every line was made, -1 when there is
//  none to give (a sink failed to send its part).
static int s_next_line (s_download_t *self)
{
    if (self->broken) return -1;
    if (!self->nheap) return 0;
    s_part_t *part = self->heap[0];
    self->line.len = 0;
    self->offset = 0;
    tl_web_buf_add (&self->line, part->key.ptr, part->key.len);
    tl_web_buf_printf (&self->line, "\t%llu\n", (unsigned long long)part->total);
    if (self->line.failed) {
        s_break (self, "out of memory");
        return -1;
    }
    int rc = s_part_advance (part, self->job);
    if (rc < 0) {
        //  The line made is sent; the part's next one is gone with its reply.
        s_break (self, "a sink stopped sending its part");
        return 1;
    }
    if (rc == 0) self->heap[0] = self->heap[--self->nheap];
    s_heap_fix_top (self);
    return 1;
}

static ssize_t s_download_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    s_download_t *self = cls;
    size_t filled = 0;
    while (filled < max) {
        if (self->offset == self->line.len) {
            int rc = s_next_line (self);
            if (rc < 0) return filled ? (ssize_t)filled : MHD_CONTENT_READER_END_WITH_ERROR;
            if (rc == 0) break;
        }
        size_t n = self->line.len - self->offset;
        if (n > max - filled) n = max - filled;
        memcpy (buf + filled, self->line.data + self->offset, n);
        self->offset += n;
        filled += n;
    }
    return filled ? (ssize_t)filled : MHD_CONTENT_READER_END_OF_STREAM;
}

static void s_download_free (void *cls)
{
    s_download_t *self = cls;
    for (size_t i = 0; i < self->nparts; i++)
        s_part_close (&self->parts[i]);
    tl_web_buf_free (&self->line);
    free (self);
}

//  ---------------------------------------------------------------------------------

static enum MHD_Result s_text (struct MHD_Connection *connection, unsigned status, const char *text)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  Asks every feed's snapshot service for the job's first batch. Returns the status to
//  answer with when the download cannot start (message in text), or 0 when it can.
static unsigned s_download_open (s_download_t *self, char *text, size_t size)
{
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = self->web->max_message;
    cfg.linger_ms = 0;
    s_part_t *asked[TL_SHARDS_MAX];
    pthread_mutex_lock (&self->web->lock);
    for (size_t i = 0; i < self->web->nfeeds; i++) {
        const char *endpoint = self->web->feeds[i].snapshot;
        if (!endpoint) continue;
        const char *why;
        s_part_t *part = &self->parts[self->nparts];
        part->endpoint = endpoint;
        part->dealer = tl_sock_new (ZMQ_DEALER, endpoint, false, false, &cfg, &why);
        if (!part->dealer) continue;
        part->answer = S_WAITING;
        if (tl_web_ask_totals (zsock_resolve (part->dealer), self->job, 0, 0) != 0)
            part->answer = S_SILENT;
        asked[self->nparts] = part;
        self->nparts++;
    }
    pthread_mutex_unlock (&self->web->lock);
    if (!self->nparts) {
        snprintf (text, size, "no snapshot service to ask for the totals of job %016llx\n",
                  (unsigned long long)self->job);
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    s_parts_wait (asked, self->nparts, S_FIRST_WAIT_MS);
    size_t ready = 0, errors = 0;
    const char *reason = "";
    for (size_t i = 0; i < self->nparts; i++) {
        s_part_t *part = &self->parts[i];
        if (part->answer == S_ERROR) {
            errors++;
            reason = part->reason;
        }
        if (part->answer != S_READY) continue;
        tl_feed_msg_t *msg = &part->msg;
        if (!self->shards) self->shards = msg->shards;
        if (msg->shards != self->shards || self->shard[msg->shard]) continue;
        self->shard[msg->shard] = part;
        ready++;
    }
    if (!ready && errors) {
        snprintf (text, size,
                  "job %016llx is not known to the sinks, or its totals are no longer kept "
                  "(a sink keeps its last finished jobs'): %s\n",
                  (unsigned long long)self->job, reason);
        return MHD_HTTP_NOT_FOUND;
    }
    if (!ready) {
        snprintf (text, size, "no sink answered for job %016llx within %d s\n",
                  (unsigned long long)self->job, S_FIRST_WAIT_MS / 1000);
        return MHD_HTTP_GATEWAY_TIMEOUT;
    }
    if (ready < self->shards) {
        int len = snprintf (text, size, "job %016llx has %llu sink shards; no part came from",
                            (unsigned long long)self->job, (unsigned long long)self->shards);
        for (uint64_t s = 0; s < self->shards && len > 0 && (size_t)len < size; s++)
            if (!self->shard[s])
                len += snprintf (text + len, size - (size_t)len, " %llu", (unsigned long long)s);
        if (len > 0 && (size_t)len < size)
            snprintf (text + len, size - (size_t)len, " (give tally web every shard's feed)\n");
        return MHD_HTTP_BAD_GATEWAY;
    }
    for (uint64_t s = 0; s < self->shards; s++) {
        int rc = s_part_advance (self->shard[s], self->job);
        if (rc < 0) {
            snprintf (text, size, "job %016llx: shard %llu stopped sending its totals\n",
                      (unsigned long long)self->job, (unsigned long long)s);
            return MHD_HTTP_BAD_GATEWAY;
        }
        if (rc > 0) s_heap_push (self, self->shard[s]);
    }
    return 0;
}

int tl_web_totals_answer (tl_web_t *self, struct MHD_Connection *connection, const char *path)
{
    //  <id>/totals, the id in hexadecimal as the page and tally-watch show it.
    char *end;
    unsigned long long job = strtoull (path, &end, 16);
    if (end == path || *path == '-' || *path == '+' || strcmp (end, "/totals") != 0 ||
        end - path > 16)
        return s_text (connection, MHD_HTTP_NOT_FOUND,
                       "not found: a job's totals are at /jobs/<job id in hex>/totals\n");
    s_download_t *download = calloc (1, sizeof *download);
    if (!download) return MHD_NO;
    download->web = self;
    download->job = job;
    char text[512];
    unsigned status = s_download_open (download, text, sizeof text);
    if (status) {
        s_download_free (download);
        return s_text (connection, status, text);
    }
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, 64 * 1024, s_download_read, download, s_download_free);
    if (!response) {
        s_download_free (download);
        return MHD_NO;
    }
    char name[96];
    snprintf (name, sizeof name, "attachment; filename=\"totals-%016llx.tsv\"", job);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             "text/tab-separated-values; charset=utf-8");
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_DISPOSITION, name);
    enum MHD_Result rc = MHD_queue_response (connection, MHD_HTTP_OK, response);
    MHD_destroy_response (response);
    return rc;
}
