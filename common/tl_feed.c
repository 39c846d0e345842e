/*  tl_feed: encodes and decodes the feed's bodies from one table per topic.

    Why it is shaped this way: the keys of a body used to be typed twice, once in an
    encoder and again as strings in tally-watch, and renaming one still compiled while
    the watcher printed zeros. Here a topic is a table of fields (key name, type, where
    the value lives in a tl_feed_msg_t). The encoders fill a tl_feed_msg_t and pack what
    the table lists, in its order; the decoder reads each key of the map, looks it up in
    the same table and stores the value where the table says. The only values that do
    not live in the message are the entries of top and totals: the encoder packs them
    from the caller's tl_entry_t array, the decoder hands them out through an iterator
    over the frame, so decoding allocates nothing whatever the frame claims.        */

#include "tl_feed.h"
#include "tl_msgpack_int.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

//  How a field's value is packed and read.
typedef enum {
    S_U64,     //  uint64_t, packed as the shortest uint
    S_BOOL,    //  bool
    S_DOUBLE,  //  double, packed as float64
    S_TEXT,    //  tl_str_t, packed as str
    S_PAIRS,   //  tl_feed_entries_t: [[key bin, total uint], ...]
    S_MAP      //  tl_feed_entries_t: {key bin: total uint}
} s_type_t;

typedef enum {
    S_REQUIRED,   //  Always there
    S_OPTIONAL,   //  Always written; a body may leave it out (the decoder keeps the default)
    S_OMIT_ZERO,  //  Optional, and written only when it is not 0
} s_presence_t;

typedef struct {
    const char *name;       //  Key in the body map: the one place it is spelled
    s_type_t type;          //  How its value is packed and read
    size_t offset;          //  Where the value lives in a tl_feed_msg_t
    s_presence_t presence;  //  Whether a body may leave it out
} s_field_t;

#define S_AT(member) offsetof (tl_feed_msg_t, member)
#define S_JOB                                                                                      \
    {                                                                                              \
        "job", S_U64, S_AT (job), S_REQUIRED                                                       \
    }
//  Every topic ends with these: optional, since a sink before shards did not send them.
#define S_SHARD                                                                                    \
    {                                                                                              \
        "shard", S_U64, S_AT (shard), S_OPTIONAL                                                   \
    }
#define S_SHARDS                                                                                   \
    {                                                                                              \
        "shards", S_U64, S_AT (shards), S_OPTIONAL                                                 \
    }

static const s_field_t s_progress[] = {
    S_JOB,
    {"chunks_done", S_U64, S_AT (u.progress.chunks_done), S_REQUIRED},
    {"chunks_known", S_U64, S_AT (u.progress.chunks_known), S_REQUIRED},
    {"chunks_final", S_BOOL, S_AT (u.progress.chunks_final), S_REQUIRED},
    {"bytes", S_U64, S_AT (u.progress.bytes), S_REQUIRED},
    {"input_bytes", S_U64, S_AT (u.progress.input_bytes), S_REQUIRED},
    {"lines", S_U64, S_AT (u.progress.lines), S_REQUIRED},
    {"bad_lines", S_U64, S_AT (u.progress.bad_lines), S_REQUIRED},
    {"keys", S_U64, S_AT (u.progress.keys), S_REQUIRED},
    {"rate", S_DOUBLE, S_AT (u.progress.rate), S_REQUIRED},
    {"seconds", S_DOUBLE, S_AT (u.progress.seconds), S_REQUIRED},
    S_SHARD,
    S_SHARDS,
};

static const s_field_t s_top[] = {
    S_JOB,
    {"top", S_PAIRS, S_AT (u.top), S_REQUIRED},
    S_SHARD,
    S_SHARDS,
};

static const s_field_t s_totals[] = {
    S_JOB,
    {"batch", S_U64, S_AT (u.totals.batch), S_REQUIRED},
    {"batches", S_U64, S_AT (u.totals.batches), S_REQUIRED},
    {"entries", S_MAP, S_AT (u.totals.entries), S_REQUIRED},
    {"next", S_U64, S_AT (u.totals.next), S_OMIT_ZERO},
    S_SHARD,
    S_SHARDS,
};

static const s_field_t s_done[] = {
    S_JOB,
    {"keys", S_U64, S_AT (u.done.keys), S_REQUIRED},
    {"sum", S_U64, S_AT (u.done.sum), S_REQUIRED},
    {"lines", S_U64, S_AT (u.done.lines), S_REQUIRED},
    {"bad_lines", S_U64, S_AT (u.done.bad_lines), S_REQUIRED},
    {"filtered", S_U64, S_AT (u.done.filtered), S_REQUIRED},
    {"seconds", S_DOUBLE, S_AT (u.done.seconds), S_REQUIRED},
    {"output", S_TEXT, S_AT (u.done.output), S_REQUIRED},
    S_SHARD,
    S_SHARDS,
};

static const s_field_t s_failed[] = {
    S_JOB,
    {"reason", S_TEXT, S_AT (u.reason), S_REQUIRED},
    S_SHARD,
    S_SHARDS,
};

//  No job, no shard: the sink's, whatever shard of its jobs it is.
static const s_field_t s_stats[] = {
    {"incarnation", S_U64, S_AT (u.stats.incarnation), S_REQUIRED},
    {"uptime", S_DOUBLE, S_AT (u.stats.uptime), S_REQUIRED},
    {"jobs_open", S_U64, S_AT (u.stats.jobs_open), S_REQUIRED},
    {"jobs_done", S_U64, S_AT (u.stats.jobs_done), S_REQUIRED},
    {"jobs_failed", S_U64, S_AT (u.stats.jobs_failed), S_REQUIRED},
    {"partials", S_U64, S_AT (u.stats.partials), S_REQUIRED},
    {"duplicates", S_U64, S_AT (u.stats.duplicates), S_REQUIRED},
    {"junk", S_U64, S_AT (u.stats.junk), S_REQUIRED},
    {"disconnects", S_U64, S_AT (u.stats.disconnects), S_REQUIRED},
    {"bytes", S_U64, S_AT (u.stats.bytes), S_REQUIRED},
    {"lines", S_U64, S_AT (u.stats.lines), S_REQUIRED},
    {"rate", S_DOUBLE, S_AT (u.stats.rate), S_REQUIRED},
};

static const s_field_t s_snapshot[] = {
    {"open", S_U64, S_AT (u.snapshot.open), S_REQUIRED},
    {"finished", S_U64, S_AT (u.snapshot.finished), S_REQUIRED},
};

static const s_field_t s_error[] = {
    S_JOB,
    {"reason", S_TEXT, S_AT (u.reason), S_REQUIRED},
};

typedef struct {
    const char *name;         //  Topic: frame 0
    const s_field_t *fields;  //  Body keys, in the order the encoder writes them
    size_t nfields;           //  How many (at most 32: the decoder's seen-mask)
} s_topic_t;

#define S_TOPIC(name, fields)                                                                      \
    {                                                                                              \
        name, fields, sizeof fields / sizeof fields[0]                                             \
    }

static const s_topic_t s_topics[TL_FEED_COUNT_] = {
    [TL_FEED_INVALID] = {"", NULL, 0},
    [TL_FEED_PROGRESS] = S_TOPIC (TL_FEED_TOPIC_PROGRESS, s_progress),
    [TL_FEED_TOP] = S_TOPIC (TL_FEED_TOPIC_TOP, s_top),
    [TL_FEED_TOTALS] = S_TOPIC (TL_FEED_TOPIC_TOTALS, s_totals),
    [TL_FEED_DONE] = S_TOPIC (TL_FEED_TOPIC_DONE, s_done),
    [TL_FEED_FAILED] = S_TOPIC (TL_FEED_TOPIC_FAILED, s_failed),
    [TL_FEED_STATS] = S_TOPIC (TL_FEED_TOPIC_STATS, s_stats),
    [TL_FEED_SNAPSHOT] = S_TOPIC (TL_FEED_TOPIC_SNAPSHOT, s_snapshot),
    [TL_FEED_ERROR] = S_TOPIC (TL_FEED_TOPIC_ERROR, s_error),
};

const char *tl_feed_topic_name (tl_feed_topic_t topic)
{
    if (topic <= TL_FEED_INVALID || topic >= TL_FEED_COUNT_) return s_topics[TL_FEED_INVALID].name;
    return s_topics[topic].name;
}

tl_feed_topic_t tl_feed_topic_parse (const void *data, size_t size)
{
    assert (data || size == 0);
    for (int topic = TL_FEED_INVALID + 1; topic < TL_FEED_COUNT_; topic++) {
        const char *name = s_topics[topic].name;
        if (strlen (name) == size && memcmp (name, data, size) == 0) return (tl_feed_topic_t)topic;
    }
    return TL_FEED_INVALID;
}

//  ---------------------------------------------------------------------------------
//  Encoding

//  Packs one entry of top ([key, total]) or totals (key: total).
static int s_pack_entry (msgpack_packer *pk, bool pair, const tl_entry_t *entry)
{
    if (pair && msgpack_pack_array (pk, 2) != 0) return -1;
    if (tl__mp_pack_bin (pk, entry->key, entry->len) != 0) return -1;
    return msgpack_pack_uint64 (pk, entry->count);
}

static int s_pack_entries (msgpack_packer *pk, bool pairs, const tl_entry_t *entries, size_t n)
{
    if ((pairs ? msgpack_pack_array (pk, n) : msgpack_pack_map (pk, n)) != 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (s_pack_entry (pk, pairs, &entries[i]) != 0) return -1;
    return 0;
}

//  Packs one field: its key, then its value from msg (or, for the entry lists, from
//  entries).
static int s_pack_field (msgpack_packer *pk, const s_field_t *field, const tl_feed_msg_t *msg,
                         const tl_entry_t *entries, size_t n)
{
    const char *at = (const char *)msg + field->offset;
    if (tl__mp_pack_str (pk, field->name, strlen (field->name)) != 0) return -1;
    switch (field->type) {
    case S_U64:
        return msgpack_pack_uint64 (pk, *(const uint64_t *)at);
    case S_BOOL:
        return *(const bool *)at ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
    case S_DOUBLE:
        return msgpack_pack_double (pk, *(const double *)at);
    case S_TEXT: {
        const tl_str_t *text = (const tl_str_t *)at;
        return tl__mp_pack_str (pk, text->ptr, text->len);
    }
    case S_PAIRS:
    case S_MAP:
        return s_pack_entries (pk, field->type == S_PAIRS, entries, n);
    }
    return -1;
}

static bool s_omitted (const s_field_t *field, const tl_feed_msg_t *msg)
{
    return field->presence == S_OMIT_ZERO &&
           *(const uint64_t *)((const char *)msg + field->offset) == 0;
}

//  Appends msg's body to buf, the entry lists from entries[0..n). On failure buf is cut
//  back to where it was.
static int s_encode (const tl_feed_msg_t *msg, const tl_entry_t *entries, size_t n,
                     msgpack_sbuffer *buf)
{
    assert (buf);
    assert (entries || n == 0);
    assert (msg->topic > TL_FEED_INVALID && msg->topic < TL_FEED_COUNT_);
    //  What the decoder would refuse is not sent: it could not be read back.
    if (n > UINT32_MAX) return -1;
    for (size_t i = 0; i < n; i++)
        if (entries[i].len > TL_KEY_MAX) return -1;
    tl_feed_msg_t copy = *msg;
    if (copy.shards == 0) copy.shards = 1;  //  Not sharded: the one shard of one
    if (copy.shards > TL_SHARDS_MAX || copy.shard >= copy.shards) return -1;
    msg = &copy;
    const s_topic_t *topic = &s_topics[msg->topic];
    size_t start = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    uint32_t nfields = 0;
    for (size_t i = 0; i < topic->nfields; i++)
        nfields += !s_omitted (&topic->fields[i], msg);
    int rc = msgpack_pack_map (&pk, nfields);
    for (size_t i = 0; i < topic->nfields && rc == 0; i++)
        if (!s_omitted (&topic->fields[i], msg))
            rc = s_pack_field (&pk, &topic->fields[i], msg, entries, n);
    if (rc != 0) {
        buf->size = start;
        return -1;
    }
    return 0;
}

int tl_feed_encode (const tl_feed_msg_t *msg, const tl_entry_t *entries, size_t n,
                    msgpack_sbuffer *buf)
{
    assert (msg);
    return s_encode (msg, entries, n, buf);
}

int tl_feed_progress (const tl_progress_t *progress, msgpack_sbuffer *buf)
{
    assert (progress);
    tl_feed_msg_t msg = {.topic = TL_FEED_PROGRESS,
                         .job = progress->job,
                         .shard = progress->shard,
                         .shards = progress->shards};
    msg.u.progress = *progress;
    return s_encode (&msg, NULL, 0, buf);
}

//  ---------------------------------------------------------------------------------
//  Decoding

//  Reads one entry of top ([key, total], exactly two elements) or totals (key: total):
//  a str or bin key of at most TL_KEY_MAX bytes and a non-negative integer.
static int s_read_entry (tl__mp_reader_t *r, bool pair, tl_str_t *key, uint64_t *total)
{
    uint32_t elements;
    if (pair && (tl__mp_read_array (r, 2, &elements) == -1 || elements != 2)) return -1;
    if (tl__mp_read_str (r, TL_KEY_MAX, key) == -1 || tl__mp_read_u64 (r, total) == -1) return -1;
    return 0;
}

//  Reads an entry list's header, remembers where its entries start, and checks every
//  entry, so that walking them later cannot fail.
static int s_read_entries (tl__mp_reader_t *r, bool pairs, tl_feed_entries_t *entries)
{
    uint32_t count;
    if ((pairs ? tl__mp_read_array (r, UINT32_MAX, &count)
               : tl__mp_read_map (r, UINT32_MAX, &count)) == -1)
        return -1;
    *entries = (tl_feed_entries_t){r->pos, r->end, count, count, pairs};
    tl_str_t key;
    uint64_t total;
    for (uint32_t i = 0; i < count; i++)
        if (s_read_entry (r, pairs, &key, &total) == -1) return -1;
    return 0;
}

bool tl_feed_entries_next (tl_feed_entries_t *self, tl_str_t *key, uint64_t *total)
{
    assert (self);
    assert (key);
    assert (total);
    if (self->left == 0) return false;
    tl__mp_reader_t r = {self->pos, self->end};
    if (s_read_entry (&r, self->pairs, key, total) == -1) return false;
    self->pos = r.pos;
    self->left--;
    return true;
}

//  Reads a field's value into msg where the table says.
static int s_read_value (tl__mp_reader_t *r, const s_field_t *field, tl_feed_msg_t *msg)
{
    char *at = (char *)msg + field->offset;
    switch (field->type) {
    case S_U64:
        return tl__mp_read_u64 (r, (uint64_t *)at);
    case S_BOOL:
        return tl__mp_read_bool (r, (bool *)at);
    case S_DOUBLE:
        return tl__mp_read_double (r, (double *)at);
    case S_TEXT:
        //  No limit but the frame's: the text is not copied.
        return tl__mp_read_str (r, SIZE_MAX, (tl_str_t *)at);
    case S_PAIRS:
    case S_MAP:
        return s_read_entries (r, field->type == S_PAIRS, (tl_feed_entries_t *)at);
    }
    return -1;
}

static const s_field_t *s_field_named (const s_topic_t *topic, tl_str_t name)
{
    for (size_t i = 0; i < topic->nfields; i++) {
        const char *known = topic->fields[i].name;
        if (strlen (known) == name.len && memcmp (known, name.ptr, name.len) == 0)
            return &topic->fields[i];
    }
    return NULL;
}

static int s_decode_body (const s_topic_t *topic, const void *body, size_t size, tl_feed_msg_t *msg)
{
    assert (topic->nfields <= 32);
    tl__mp_reader_t r;
    tl__mp_init (&r, body, size);
    uint32_t keys;
    if (tl__mp_read_map (&r, UINT32_MAX, &keys) == -1) return -1;
    uint32_t seen = 0;  //  Bit i: the topic's field i was read
    for (uint32_t i = 0; i < keys; i++) {
        tl_str_t name;
        if (tl__mp_read_str (&r, SIZE_MAX, &name) == -1) return -1;
        const s_field_t *field = s_field_named (topic, name);
        if (!field) {
            //  A key of a later version, or of another implementation: not ours to judge
            //  beyond it being well-formed. The body map is depth 0, its values depth 1.
            if (tl__mp_skip (&r, 1) == -1) return -1;
            continue;
        }
        uint32_t bit = 1u << (field - topic->fields);
        //  A key twice: which value is meant is anyone's guess, so neither is taken.
        if (seen & bit) return -1;
        seen |= bit;
        if (s_read_value (&r, field, msg) == -1) return -1;
    }
    uint32_t required = 0;
    for (size_t i = 0; i < topic->nfields; i++)
        if (topic->fields[i].presence == S_REQUIRED) required |= 1u << i;
    if ((seen & required) != required || !tl__mp_at_end (&r)) return -1;
    return 0;
}

int tl_feed_decode (const void *topic, size_t topic_size, const void *body, size_t size,
                    tl_feed_msg_t *msg)
{
    assert (topic || topic_size == 0);
    assert (body || size == 0);
    assert (msg);
    memset (msg, 0, sizeof *msg);
    tl_feed_topic_t which = tl_feed_topic_parse (topic, topic_size);
    if (which == TL_FEED_INVALID) return -1;
    msg->topic = which;
    msg->shards = 1;  //  A body without the shard keys: the one shard of one
    if (s_decode_body (&s_topics[which], body, size, msg) == -1 || msg->shards == 0 ||
        msg->shards > TL_SHARDS_MAX || msg->shard >= msg->shards) {
        memset (msg, 0, sizeof *msg);
        return -1;
    }
    if (which == TL_FEED_PROGRESS) {
        msg->u.progress.job = msg->job;
        msg->u.progress.shard = msg->shard;
        msg->u.progress.shards = msg->shards;
    }
    return 0;
}
