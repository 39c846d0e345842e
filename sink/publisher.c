/*  tl_publisher: the sink's feed, paced by its subscribers (see publisher.h).

    Why XPUB: a PUB socket drops a message for a subscriber whose queue is full and
    never says so, so a small high-water mark with the totals published in one burst
    would lose batches even for a subscriber that keeps up. XPUB with ZMQ_XPUB_NODROP
    refuses the message instead (EAGAIN) while any subscriber it is for has a full
    queue, which is the signal to wait. Its POLLOUT is always set, so the wait is a
    short retry from the loop.

    Every message is sent that way, progress too: a message sent without NODROP to a
    full queue makes libzmq set that queue aside until its subscriber has read half of
    it, and NODROP does not wait for queues set aside, so the subscriber would silently
    miss what follows. That is exactly what is wanted for a subscriber that has taken
    nothing for the grace period, and only for it: one message sent without NODROP
    then sets its queue aside, and everything after waits for the others only.

    XPUB also hands up the subscriptions: they must be read (libzmq keeps them until
    they are), and they tell whether anyone wants totals at all, so a job's totals
    file is not read back and encoded for nobody.                                   */

#include "publisher.h"
#include "tl_clock.h"
#include "tl_sock.h"
#include "totals.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_QUEUE_MAX            64     //  Jobs whose totals, done or failed wait
#define S_LATEST_MAX           256    //  progress and top messages waiting (one per topic and job)
#define S_PREFIXES_MAX         64     //  Subscriptions remembered, one per prefix
#define S_BURST                16     //  Messages sent per call, at most
#define S_BURST_SECONDS        0.005  //  Time spent per call, about
#define S_RETRY_MS             10     //  Wait before trying a full queue again
#define S_HEARTBEAT_TIMEOUT_MS 30000  //  A subscriber silent this long is gone
//  Room a top message keeps for what is not entries: job, shard, headers.
#define S_ENVELOPE (TL_PUBLISHER_MESSAGE_MAX - TL_PUBLISHER_BATCH_BYTES)

//  One finished job on its way out: its totals batches, then done or failed.
typedef struct {
    uint64_t job;                //  Job id
    uint64_t shard, shards;      //  Which sink shard of the job publishes it
    tl_totals_reader_t *reader;  //  The totals file read back; NULL for a failure
    uint64_t batches;            //  Totals batches the job has (0 for a failure)
    uint64_t batch;              //  The next one to send
    bool failed;                 //  Ends with failed (reason), not done
    tl_done_body_t done;         //  done's body (its output is the sink's)
    char *reason;                //  failed's reason
} s_item_t;

//  The latest progress or top of a job, until every subscriber has room for it.
typedef struct {
    const char *topic;     //  TL_FEED_TOPIC_PROGRESS or _TOP (a literal)
    uint64_t job;          //  Job id
    msgpack_sbuffer body;  //  Encoded
} s_latest_t;

struct _tl_publisher_t {
    zsock_t *sock;                      //  XPUB, bound
    size_t batch_keys;                  //  Keys in a totals batch, at most
    s_item_t *queue[S_QUEUE_MAX];       //  Ring of jobs on their way out
    size_t head;                        //  Index of the first
    size_t queued;                      //  How many
    s_latest_t latest[S_LATEST_MAX];    //  progress and top waiting, sent before the queue
    size_t nlatest;                     //  Slots in use, from the start
    bool nodrop;                        //  ZMQ_XPUB_NODROP as last set
    msgpack_sbuffer pending;            //  The head's next message, encoded
    const char *pending_topic;          //  Its topic; NULL when none is encoded
    bool pending_ends;                  //  It is the head's done or failed
    double blocked_at;                  //  Since when a message waits for room (0: none)
    char *prefixes[S_PREFIXES_MAX];     //  Subscribed topic prefixes (NUL-terminated)
    size_t prefix_len[S_PREFIXES_MAX];  //  Their lengths
    size_t nprefixes;                   //  How many
    bool prefixes_lost;                 //  More came than fit: assume all are wanted
};

tl_publisher_t *tl_publisher_new (const char *endpoint, size_t batch_keys, const char **error)
{
    assert (endpoint && batch_keys > 0);
    tl_publisher_t *self = calloc (1, sizeof *self);
    if (!self) {
        *error = "out of memory";
        return NULL;
    }
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.sndhwm = TL_PUBLISHER_HWM;
    cfg.maxmsgsize = 4096;         //  Subscriptions are all that comes in
    cfg.zap_domain = TL_ZAP_FEED;  //  Its own CURVE allow list (--curve-allow-feed)
    //  A heartbeat waits behind what the kernel already holds for the subscriber (some
    //  MB): a slow reader needs time to get to it. A subscriber that stalls is let go
    //  of by the grace period; the heartbeats only find the ones that vanished.
    cfg.heartbeat_timeout = S_HEARTBEAT_TIMEOUT_MS;
    self->sock = tl_sock_new (ZMQ_XPUB, endpoint, true, true, &cfg, error);
    if (!self->sock) {
        free (self);
        return NULL;
    }
    self->batch_keys = batch_keys;
    msgpack_sbuffer_init (&self->pending);
    return self;
}

static void s_item_destroy (s_item_t **item_p)
{
    s_item_t *item = *item_p;
    if (!item) return;
    tl_totals_reader_destroy (&item->reader);
    free (item->reason);
    free (item);
    *item_p = NULL;
}

void tl_publisher_destroy (tl_publisher_t **self_p)
{
    assert (self_p);
    tl_publisher_t *self = *self_p;
    if (!self) return;
    if (self->queued)
        zsys_warning ("feed: stopped with %zu job(s) not fully published", self->queued);
    for (size_t i = 0; i < self->queued; i++)
        s_item_destroy (&self->queue[(self->head + i) % S_QUEUE_MAX]);
    for (size_t i = 0; i < self->nprefixes; i++)
        free (self->prefixes[i]);
    for (size_t i = 0; i < self->nlatest; i++)
        msgpack_sbuffer_destroy (&self->latest[i].body);
    msgpack_sbuffer_destroy (&self->pending);
    zsock_destroy (&self->sock);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------------
//  Subscriptions

static void s_subscription (tl_publisher_t *self, const uint8_t *data, size_t size)
{
    if (size == 0 || data[0] > 1) return;  //  Not a subscription message
    const char *prefix = (const char *)data + 1;
    size_t len = size - 1;
    for (size_t i = 0; i < self->nprefixes; i++)
        if (self->prefix_len[i] == len && memcmp (self->prefixes[i], prefix, len) == 0) {
            if (data[0] == 0) {  //  The last subscriber to it left
                free (self->prefixes[i]);
                self->prefixes[i] = self->prefixes[--self->nprefixes];
                self->prefix_len[i] = self->prefix_len[self->nprefixes];
            }
            return;
        }
    if (data[0] == 0) return;
    char *copy = self->nprefixes < S_PREFIXES_MAX ? strndup (prefix, len) : NULL;
    if (!copy) {
        self->prefixes_lost = true;
        return;
    }
    self->prefixes[self->nprefixes] = copy;
    self->prefix_len[self->nprefixes++] = len;
}

//  Reads the subscriptions that came in (XPUB hands each new one up, and keeps them
//  until they are read).
static void s_read_subscriptions (tl_publisher_t *self)
{
    for (int n = 0; n < 1000; n++) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, zsock_resolve (self->sock), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            return;
        }
        s_subscription (self, zmq_msg_data (&msg), zmq_msg_size (&msg));
        zmq_msg_close (&msg);
    }
}

//  Whether some subscriber takes messages of topic.
static bool s_wanted (tl_publisher_t *self, const char *topic)
{
    if (self->prefixes_lost) return true;
    size_t len = strlen (topic);
    for (size_t i = 0; i < self->nprefixes; i++)
        if (self->prefix_len[i] <= len &&
            memcmp (self->prefixes[i], topic, self->prefix_len[i]) == 0)
            return true;
    return false;
}

bool tl_publisher_wanted (tl_publisher_t *self, const char *topic)
{
    assert (self);
    assert (topic);
    s_read_subscriptions (self);
    return s_wanted (self, topic);
}

//  ---------------------------------------------------------------------------------
//  Sending

//  Sends [topic, body] with or without ZMQ_XPUB_NODROP. Returns 0, or -1 with errno
//  (EAGAIN: with nodrop, a subscriber it is for has a full queue).
static int s_send (tl_publisher_t *self, const char *topic, const msgpack_sbuffer *body,
                   bool nodrop)
{
    if (self->nodrop != nodrop) {
        int value = nodrop;
        zmq_setsockopt (zsock_resolve (self->sock), ZMQ_XPUB_NODROP, &value, sizeof value);
        self->nodrop = nodrop;
    }
    //  With NODROP the body cannot be refused once the topic went: room is counted in
    //  whole messages.
    return tl_publish (zsock_resolve (self->sock), topic, body);
}

//  Sends [topic, body] once every subscriber it is for has room, at time now, unless
//  one has had none for the grace period: then it is sent to the others, which sets
//  that subscriber's queue aside until it reads again. Returns 0 when it went, -1 when
//  it must wait (EAGAIN) or was interrupted (EINTR).
static int s_offer (tl_publisher_t *self, const char *topic, const msgpack_sbuffer *body,
                    double now)
{
    if (s_send (self, topic, body, true) == 0) {
        self->blocked_at = 0;
        return 0;
    }
    if (errno == EINTR) return -1;
    if (errno != EAGAIN) return 0;  //  Refused for good (the socket is closing): dropped
    if (!self->blocked_at) self->blocked_at = now;
    if (now - self->blocked_at < TL_PUBLISHER_GRACE) return -1;
    zsys_warning ("feed: a subscriber has taken nothing for %.0f s; it misses what is "
                  "published until it reads again",
                  now - self->blocked_at);
    s_send (self, topic, body, false);
    self->blocked_at = 0;
    return 0;
}

void tl_publisher_send (tl_publisher_t *self, const char *topic, uint64_t job,
                        const msgpack_sbuffer *body)
{
    assert (self && topic && body);
    s_latest_t *slot = NULL;
    for (size_t i = 0; i < self->nlatest && !slot; i++)
        if (self->latest[i].job == job && strcmp (self->latest[i].topic, topic) == 0)
            slot = &self->latest[i];  //  An older one still waits: this one replaces it
    if (!slot && self->nlatest == S_LATEST_MAX) return;  //  Dropped: another comes soon
    if (!slot) {
        slot = &self->latest[self->nlatest++];
        msgpack_sbuffer_init (&slot->body);
    }
    slot->topic = topic;
    slot->job = job;
    msgpack_sbuffer_clear (&slot->body);
    if (msgpack_sbuffer_write (&slot->body, body->data, body->size) != 0)
        msgpack_sbuffer_clear (&slot->body);
}

//  Sends the progress and top messages that wait, oldest first. Returns 0 when none
//  waits any more, -1 when the rest must wait.
static int s_send_latest (tl_publisher_t *self, double now)
{
    size_t sent = 0;
    while (sent < self->nlatest &&
           s_offer (self, self->latest[sent].topic, &self->latest[sent].body, now) == 0)
        sent++;
    //  The rest stay in order, at the start.
    for (size_t i = 0; i < sent; i++)
        msgpack_sbuffer_destroy (&self->latest[i].body);
    memmove (self->latest, self->latest + sent, (self->nlatest - sent) * sizeof *self->latest);
    self->nlatest -= sent;
    return self->nlatest ? -1 : 0;
}

//  ---------------------------------------------------------------------------------
//  The queue

static int s_encode_end (const s_item_t *item, msgpack_sbuffer *buf);

static void s_enqueue (tl_publisher_t *self, s_item_t *item)
{
    if (self->queued == S_QUEUE_MAX) {
        //  Out of room only when jobs end faster than the subscribers take their totals:
        //  this one's totals are not published; its done or failed is, first.
        zsys_warning ("feed: %d jobs wait to be published; job %016llx's totals are not",
                      S_QUEUE_MAX, (unsigned long long)item->job);
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        int rc = s_encode_end (item, &body);
        if (rc == 0)
            tl_publisher_send (self, item->failed ? TL_FEED_TOPIC_FAILED : TL_FEED_TOPIC_DONE,
                               item->job, &body);
        msgpack_sbuffer_destroy (&body);
        s_item_destroy (&item);
        return;
    }
    self->queue[(self->head + self->queued++) % S_QUEUE_MAX] = item;
}

uint64_t tl_publisher_totals (tl_publisher_t *self, const tl_feed_msg_t *done, int fd,
                              const tl_entry_t *entries, size_t n)
{
    assert (self && fd >= 0 && done);
    uint64_t job = done->job;
    size_t max_bytes = TL_PUBLISHER_BATCH_BYTES;
    s_item_t *item = calloc (1, sizeof *item);
    if (item) item->reader = tl_totals_reader_new (fd, self->batch_keys, max_bytes);
    if (!item || !item->reader) {
        if (!item) close (fd);  //  Else the reader closed it
        free (item);
        zsys_error ("feed: out of memory; job %016llx's totals are not published",
                    (unsigned long long)job);
        return 0;
    }
    item->job = job;
    item->shard = done->shard;
    item->shards = done->shards;
    item->batches = tl_totals_batches (entries, n, self->batch_keys, max_bytes);
    item->done = done->u.done;
    uint64_t batches = item->batches;
    s_enqueue (self, item);
    return batches;
}

void tl_publisher_failed (tl_publisher_t *self, const tl_feed_msg_t *failed)
{
    assert (self && failed);
    uint64_t job = failed->job;
    s_item_t *item = calloc (1, sizeof *item);
    if (item && !(item->reason = strndup (failed->u.reason.ptr, failed->u.reason.len)))
        free (item), item = NULL;
    if (!item) {
        zsys_error ("feed: out of memory; job %016llx's failure is not published",
                    (unsigned long long)job);
        return;
    }
    item->job = job;
    item->shard = failed->shard;
    item->shards = failed->shards;
    item->failed = true;
    s_enqueue (self, item);
}

//  Appends the item's last message, done or failed, to buf. Returns 0 or -1.
static int s_encode_end (const s_item_t *item, msgpack_sbuffer *buf)
{
    tl_feed_msg_t msg = {.topic = item->failed ? TL_FEED_FAILED : TL_FEED_DONE,
                         .job = item->job,
                         .shard = item->shard,
                         .shards = item->shards};
    if (item->failed)
        msg.u.reason = (tl_str_t){item->reason, strlen (item->reason)};
    else
        msg.u.done = item->done;
    return tl_feed_encode (&msg, NULL, 0, buf);
}

//  Drops the head job.
static void s_dequeue (tl_publisher_t *self)
{
    s_item_destroy (&self->queue[self->head]);
    self->head = (self->head + 1) % S_QUEUE_MAX;
    self->queued--;
}

//  Encodes the head job's next message into pending: its next totals batch, else its
//  done or failed. Returns 0, or -1 when nothing is queued.
static int s_encode_next (tl_publisher_t *self)
{
    while (self->queued) {
        s_item_t *item = self->queue[self->head];
        msgpack_sbuffer_clear (&self->pending);
        if (item->batch < item->batches && !s_wanted (self, TL_FEED_TOPIC_TOTALS))
            item->batch = item->batches;  //  Nobody would get them
        if (item->batch < item->batches) {
            const tl_entry_t *entries;
            size_t n;
            tl_feed_msg_t msg = {.topic = TL_FEED_TOTALS,
                                 .job = item->job,
                                 .shard = item->shard,
                                 .shards = item->shards};
            msg.u.totals.batch = item->batch;
            msg.u.totals.batches = item->batches;
            if (tl_totals_reader_next (item->reader, &entries, &n) == 0 &&
                tl_feed_encode (&msg, entries, n, &self->pending) == 0) {
                self->pending_topic = TL_FEED_TOPIC_TOTALS;
                self->pending_ends = false;
                return 0;
            }
            zsys_error ("feed: job %016llx: cannot read back its totals file: %s",
                        (unsigned long long)item->job, strerror (errno));
            item->batch = item->batches;
        }
        int rc = s_encode_end (item, &self->pending);
        if (rc == 0) {
            self->pending_topic = item->failed ? TL_FEED_TOPIC_FAILED : TL_FEED_TOPIC_DONE;
            self->pending_ends = true;
            return 0;
        }
        s_dequeue (self);  //  Out of memory: give it up
    }
    return -1;
}

//  The pending message went out (or was given up): on to the next.
static void s_sent (tl_publisher_t *self)
{
    s_item_t *item = self->queue[self->head];
    self->pending_topic = NULL;
    if (!self->pending_ends) {
        item->batch++;
        return;
    }
    uint64_t skipped = item->reader ? tl_totals_reader_skipped (item->reader) : 0;
    if (skipped)
        zsys_warning ("feed: job %016llx: %llu lines of its totals file were not KEY TAB TOTAL",
                      (unsigned long long)item->job, (unsigned long long)skipped);
    s_dequeue (self);
}

long tl_publisher_pump (tl_publisher_t *self, double now)
{
    assert (self);
    s_read_subscriptions (self);
    if (s_send_latest (self, now) != 0) return S_RETRY_MS;
    double started = tl_now ();
    for (int sent = 0; sent < S_BURST; sent++) {
        if (sent && tl_now () - started > S_BURST_SECONDS) return 0;
        if (!self->pending_topic && s_encode_next (self) != 0) return -1;
        if (s_offer (self, self->pending_topic, &self->pending, now) != 0) return S_RETRY_MS;
        s_sent (self);
    }
    return 0;
}

size_t tl_publisher_top_fit (const tl_entry_t *entries, size_t n)
{
    assert (entries || n == 0);
    size_t bytes = S_ENVELOPE, fit = 0;
    //  Each entry is a [key, total] array: one byte more than in a totals map.
    while (fit < n) {
        bytes += tl_totals_entry_bytes (&entries[fit]) + 1;
        if (fit && bytes > TL_PUBLISHER_MESSAGE_MAX) break;
        fit++;
    }
    return fit;
}
