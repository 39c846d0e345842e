/*  tl_proto: encodes every message with msgpack-c's packer and decodes every frame with
    the hostile-input reader of tl_msgpack_int.h, because frames come from the network
    and msgpack-c's unpacker trusts the sizes a header claims (it allocates a map
    header's 2^32 entries before looking at the bytes). The reader checks every claimed
    size against the bytes left, so no decoder allocates more than the frame justifies.

    docs/PROTOCOL.md is the reference for the layouts written here.                    */

#include "tl_proto.h"
#include "tl_msgpack_int.h"

#include <assert.h>
#include <sys/random.h>
#include <xxhash.h>
#include <stdlib.h>
#include <string.h>

static const char *s_cmd_names[TL_CMD_COUNT_] = {
    "INVALID", "JOB",  "ACCEPT", "CHUNK", "PARTIAL", "END",  "ACK",
    "DONE",    "FAIL", "PING",   "PONG",  "CANCEL",  "HAVE",
};

//  Number of elements in each command's frame-1 array.
static const uint32_t s_cmd_fields[TL_CMD_COUNT_] = {
    [TL_CMD_JOB] = 8,  [TL_CMD_ACCEPT] = 3, [TL_CMD_CHUNK] = 11, [TL_CMD_PARTIAL] = 10,
    [TL_CMD_END] = 5,  [TL_CMD_ACK] = 2,    [TL_CMD_DONE] = 10,  [TL_CMD_FAIL] = 2,
    [TL_CMD_PING] = 2, [TL_CMD_PONG] = 4,   [TL_CMD_CANCEL] = 3, [TL_CMD_HAVE] = 3,
};

bool tl_cmd_has_secret (tl_cmd_t cmd)
{
    return cmd == TL_CMD_JOB || cmd == TL_CMD_END || cmd == TL_CMD_PING || cmd == TL_CMD_CANCEL;
}

uint64_t tl_chunk_tag (const uint8_t secret[TL_SECRET_SIZE], uint64_t job, uint64_t chunk)
{
    //  secret, then job and chunk as little-endian bytes: the same tag on any machine.
    uint8_t input[TL_SECRET_SIZE + 16];
    memcpy (input, secret, TL_SECRET_SIZE);
    for (int i = 0; i < 8; i++) {
        input[TL_SECRET_SIZE + i] = (uint8_t)(job >> (8 * i));
        input[TL_SECRET_SIZE + 8 + i] = (uint8_t)(chunk >> (8 * i));
    }
    return XXH3_128bits (input, sizeof input).low64;
}

uint64_t tl_shard_seed (const uint8_t secret[TL_SECRET_SIZE], uint64_t job)
{
    //  The tag of a chunk id no chunk has (ids are below 2^48).
    return tl_chunk_tag (secret, job, UINT64_MAX);
}

uint32_t tl_shard_of (const void *key, size_t len, uint64_t seed, uint32_t shards)
{
    assert (shards > 0);
    return shards == 1 ? 0 : (uint32_t)(XXH3_64bits_withSeed (key, len, seed) % shards);
}

bool tl_secret_equal (const uint8_t a[TL_SECRET_SIZE], const uint8_t b[TL_SECRET_SIZE])
{
    uint8_t diff = 0;
    for (size_t i = 0; i < TL_SECRET_SIZE; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

int tl_secret_new (uint8_t secret[TL_SECRET_SIZE])
{
    return getrandom (secret, TL_SECRET_SIZE, 0) == TL_SECRET_SIZE ? 0 : -1;
}

const char *tl_cmd_name (tl_cmd_t cmd)
{
    if (cmd <= TL_CMD_INVALID || cmd >= TL_CMD_COUNT_) return s_cmd_names[TL_CMD_INVALID];
    return s_cmd_names[cmd];
}

tl_cmd_t tl_cmd_parse (const void *data, size_t size)
{
    assert (data || size == 0);
    for (int cmd = TL_CMD_INVALID + 1; cmd < TL_CMD_COUNT_; cmd++) {
        const char *name = s_cmd_names[cmd];
        if (strlen (name) == size && memcmp (name, data, size) == 0) return (tl_cmd_t)cmd;
    }
    return TL_CMD_INVALID;
}

//  ---------------------------------------------------------------------------------
//  Readers of the protocol's own field types, on top of the generic reader.

//  Reads a concrete format's name: "auto" is for people, the ventilator resolves it.
static int s_read_format (tl__mp_reader_t *r, tl_format_t *format)
{
    tl_str_t name;
    if (tl__mp_read_str (r, 32, &name) == -1) return -1;
    for (int f = TL_FORMAT_AUTO + 1; f < TL_FORMAT_COUNT_; f++) {
        const char *known = tl_format_name ((tl_format_t)f);
        if (strlen (known) == name.len && memcmp (known, name.ptr, name.len) == 0) {
            *format = (tl_format_t)f;
            return 0;
        }
    }
    return -1;
}

static int s_read_filter (tl__mp_reader_t *r, tl_filter_t *filter)
{
    if (tl__mp_read_u32 (r, &filter->year_min) == -1 ||
        tl__mp_read_u32 (r, &filter->year_max) == -1 ||
        tl__mp_read_bool (r, &filter->skip_pos) == -1)
        return -1;
    return 0;
}

int tl_msgpack_check (const void *data, size_t size)
{
    assert (data || size == 0);
    tl__mp_reader_t r;
    tl__mp_init (&r, data, size);
    if (tl__mp_skip (&r, 0) == -1 || !tl__mp_at_end (&r)) return -1;
    return 0;
}

//  ---------------------------------------------------------------------------------
//  Frame-1 decoders, one per body layout. Each reads the fields that follow the job id;
//  tl_msg_decode has checked the array's element count, except JOB's.

//  Reads a job's secret: a bin (or str) of exactly TL_SECRET_SIZE bytes.
static int s_read_secret (tl__mp_reader_t *r, uint8_t *secret)
{
    tl_str_t bytes;
    if (tl__mp_read_str (r, TL_SECRET_SIZE, &bytes) == -1 || bytes.len != TL_SECRET_SIZE) return -1;
    memcpy (secret, bytes.ptr, TL_SECRET_SIZE);
    return 0;
}

//  Reads a chunk id, refusing ids at or past TL_CHUNK_ID_MAX.
static int s_read_chunk_id (tl__mp_reader_t *r, uint64_t *chunk)
{
    return tl__mp_read_uint (r, TL_CHUNK_ID_MAX - 1, chunk);
}

//  Reads a shard count: 1 .. TL_SHARDS_MAX.
static int s_read_shards (tl__mp_reader_t *r, uint32_t *shards)
{
    if (tl__mp_read_u32 (r, shards) == -1 || *shards == 0 || *shards > TL_SHARDS_MAX) return -1;
    return 0;
}

//  Reads a JOB's fields; fields is the array's element count, job id included.
static int s_decode_job (tl__mp_reader_t *r, uint32_t fields, uint8_t *secret, tl_job_body_t *job)
{
    if (fields < 2 || tl__mp_read_u32 (r, &job->version) == -1) return -1;
    if (job->version != TL_PROTO_VERSION) {
        //  Every version starts JOB with [job, version]. The rest of another version's
        //  layout is only checked to be msgpack, so that the sink can answer with a FAIL
        //  that names both versions instead of dropping the JOB as malformed (which
        //  would leave the ventilator waiting for its timeout).
        for (uint32_t i = 2; i < fields; i++)
            if (tl__mp_skip (r, 1) == -1) return -1;
        return 0;
    }
    uint32_t nfiles;
    if (fields != s_cmd_fields[TL_CMD_JOB] || s_read_secret (r, secret) == -1 ||
        tl__mp_read_bool (r, &job->strict) == -1 || tl__mp_read_u64 (r, &job->input_bytes) == -1 ||
        tl__mp_read_array (r, TL_FILES_MAX, &nfiles) == -1)
        return -1;
    if (nfiles > 0) {
        //  tl__mp_read_array checked that each file has a byte in the frame, so this is at
        //  most sizeof (tl_str_t) times the frame's size.
        job->files = calloc (nfiles, sizeof (tl_str_t));
        if (!job->files) return -1;
    }
    job->nfiles = nfiles;
    for (uint32_t i = 0; i < nfiles; i++)
        if (tl__mp_read_str (r, TL_TEXT_MAX, &job->files[i]) == -1) return -1;
    if (tl__mp_read_u32 (r, &job->shard) == -1 || s_read_shards (r, &job->shards) == -1 ||
        job->shard >= job->shards)
        return -1;
    return 0;
}

static int s_decode_chunk (tl__mp_reader_t *r, tl_chunk_body_t *chunk)
{
    if (s_read_chunk_id (r, &chunk->chunk) == -1 || tl__mp_read_u64 (r, &chunk->tag) == -1 ||
        tl__mp_read_u32 (r, &chunk->file) == -1 || tl__mp_read_u64 (r, &chunk->offset) == -1 ||
        s_read_format (r, &chunk->format) == -1 || s_read_filter (r, &chunk->filter) == -1 ||
        s_read_shards (r, &chunk->shards) == -1 || tl__mp_read_u64 (r, &chunk->seed) == -1)
        return -1;
    return 0;
}

static int s_decode_partial (tl__mp_reader_t *r, tl_partial_body_t *partial)
{
    if (s_read_chunk_id (r, &partial->chunk) == -1 || tl__mp_read_u64 (r, &partial->tag) == -1 ||
        tl__mp_read_u32 (r, &partial->file) == -1 || tl__mp_read_u64 (r, &partial->bytes) == -1 ||
        tl__mp_read_u64 (r, &partial->lines) == -1 ||
        tl__mp_read_u64 (r, &partial->bad_lines) == -1 ||
        tl__mp_read_u64 (r, &partial->filtered) == -1 ||
        tl__mp_read_array (r, TL_BAD_SAMPLES, &partial->bad_samples) == -1)
        return -1;
    for (uint32_t i = 0; i < partial->bad_samples; i++)
        if (tl__mp_read_u64 (r, &partial->bad_offset[i]) == -1) return -1;
    if (tl__mp_read_u32 (r, &partial->shard) == -1 || partial->shard >= TL_SHARDS_MAX) return -1;
    return 0;
}

static int s_decode_end (tl__mp_reader_t *r, tl_end_body_t *end)
{
    if (tl__mp_read_uint (r, TL_CHUNK_ID_MAX, &end->chunks) == -1 ||
        tl__mp_read_u64 (r, &end->bytes) == -1 || tl__mp_read_u64 (r, &end->bad_lines) == -1)
        return -1;
    return 0;
}

static int s_decode_ack (tl__mp_reader_t *r, tl_ack_body_t *ack)
{
    if (tl__mp_read_array (r, TL_ACK_MAX, &ack->count) == -1) return -1;
    for (uint32_t i = 0; i < ack->count; i++)
        if (tl__mp_read_u64 (r, &ack->chunk[i]) == -1) return -1;
    return 0;
}

static int s_decode_done (tl__mp_reader_t *r, tl_done_body_t *done)
{
    if (tl__mp_read_u64 (r, &done->keys) == -1 || tl__mp_read_u64 (r, &done->sum) == -1 ||
        tl__mp_read_u64 (r, &done->lines) == -1 || tl__mp_read_u64 (r, &done->bad_lines) == -1 ||
        tl__mp_read_u64 (r, &done->filtered) == -1 ||
        tl__mp_read_double (r, &done->seconds) == -1 ||
        tl__mp_read_str (r, TL_TEXT_MAX, &done->output) == -1 ||
        tl__mp_read_u64 (r, &done->chunks) == -1 || tl__mp_read_u64 (r, &done->bytes) == -1)
        return -1;
    return 0;
}

static int s_decode_have (tl__mp_reader_t *r, tl_have_body_t *have)
{
    //  Bits past TL_CHUNK_ID_MAX name no chunk: the ventilator bounds what it keeps.
    if (s_read_chunk_id (r, &have->first) == -1 ||
        tl__mp_read_str (r, TL_HAVE_MAX, &have->bits) == -1 || have->bits.len == 0)
        return -1;
    return 0;
}

static int s_decode_body (tl__mp_reader_t *r, uint32_t fields, tl_msg_t *msg)
{
    //  END, PING and CANCEL carry the secret right after the job id; JOB after its version.
    if (msg->cmd != TL_CMD_JOB && tl_cmd_has_secret (msg->cmd) &&
        s_read_secret (r, msg->secret) == -1)
        return -1;
    switch (msg->cmd) {
    case TL_CMD_JOB:
        return s_decode_job (r, fields, msg->secret, &msg->u.job);
    case TL_CMD_CHUNK:
        return s_decode_chunk (r, &msg->u.chunk);
    case TL_CMD_PARTIAL:
        return s_decode_partial (r, &msg->u.partial);
    case TL_CMD_END:
        return s_decode_end (r, &msg->u.end);
    case TL_CMD_ACK:
        return s_decode_ack (r, &msg->u.ack);
    case TL_CMD_DONE:
        return s_decode_done (r, &msg->u.done);
    case TL_CMD_FAIL:
    case TL_CMD_CANCEL:
        return tl__mp_read_str (r, TL_TEXT_MAX, &msg->u.reason);
    case TL_CMD_ACCEPT:
        msg->u.state.known = true;
        return tl__mp_read_u64 (r, &msg->u.state.incarnation) == -1 ||
                       tl__mp_read_u64 (r, &msg->u.state.merged) == -1
                   ? -1
                   : 0;
    case TL_CMD_PONG:
        return tl__mp_read_u64 (r, &msg->u.state.incarnation) == -1 ||
                       tl__mp_read_u64 (r, &msg->u.state.merged) == -1 ||
                       tl__mp_read_bool (r, &msg->u.state.known) == -1
                   ? -1
                   : 0;
    case TL_CMD_HAVE:
        return s_decode_have (r, &msg->u.have);
    default:  //  PING: the job id is all
        return 0;
    }
}

int tl_msg_decode (tl_cmd_t cmd, const void *data, size_t size, tl_msg_t *msg)
{
    assert (data || size == 0);
    assert (msg);
    memset (msg, 0, sizeof *msg);
    if (cmd <= TL_CMD_INVALID || cmd >= TL_CMD_COUNT_) return -1;
    msg->cmd = cmd;
    tl__mp_reader_t r;
    tl__mp_init (&r, data, size);
    uint32_t fields;
    bool counted = cmd != TL_CMD_JOB;  //  s_decode_job checks JOB's count by its version
    if (tl__mp_read_array (&r, UINT32_MAX, &fields) == -1 || fields < 1 ||
        (counted && fields != s_cmd_fields[cmd]) || tl__mp_read_u64 (&r, &msg->job) == -1 ||
        s_decode_body (&r, fields, msg) == -1 || !tl__mp_at_end (&r)) {
        tl_msg_reset (msg);
        return -1;
    }
    return 0;
}

void tl_msg_reset (tl_msg_t *msg)
{
    assert (msg);
    if (msg->cmd == TL_CMD_JOB) free (msg->u.job.files);
    memset (msg, 0, sizeof *msg);
}

//  ---------------------------------------------------------------------------------
//  Encoders. Each checks first that its decoder would accept the body (so nothing is
//  sent that the peer must refuse), then packs; on failure the buffer is cut back to
//  where it was, so a caller never sends half a frame.

static int s_pack_format (msgpack_packer *pk, tl_format_t format)
{
    const char *name = tl_format_name (format);
    return tl__mp_pack_str (pk, name, strlen (name));
}

static int s_pack_filter (msgpack_packer *pk, const tl_filter_t *filter)
{
    if (msgpack_pack_uint32 (pk, filter->year_min) != 0 ||
        msgpack_pack_uint32 (pk, filter->year_max) != 0)
        return -1;
    return filter->skip_pos ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
}

static int s_pack_secret (msgpack_packer *pk, const uint8_t *secret)
{
    return tl__mp_pack_bin (pk, (const char *)secret, TL_SECRET_SIZE);
}

//  True when the body holds something its decoder refuses for its size or value.
static bool s_body_refused (const tl_msg_t *msg)
{
    switch (msg->cmd) {
    case TL_CMD_JOB:
        assert (msg->u.job.files || msg->u.job.nfiles == 0);
        if (msg->u.job.nfiles > TL_FILES_MAX) return true;
        for (uint32_t i = 0; i < msg->u.job.nfiles; i++)
            if (msg->u.job.files[i].len > TL_TEXT_MAX) return true;
        //  A JOB of another version holds only its id and version (as decoded).
        return msg->u.job.version == TL_PROTO_VERSION &&
               (msg->u.job.shards == 0 || msg->u.job.shards > TL_SHARDS_MAX ||
                msg->u.job.shard >= msg->u.job.shards);
    case TL_CMD_CHUNK:
        return msg->u.chunk.format == TL_FORMAT_AUTO || msg->u.chunk.chunk >= TL_CHUNK_ID_MAX ||
               msg->u.chunk.shards == 0 || msg->u.chunk.shards > TL_SHARDS_MAX;
    case TL_CMD_PARTIAL:
        return msg->u.partial.chunk >= TL_CHUNK_ID_MAX || msg->u.partial.shard >= TL_SHARDS_MAX;
    case TL_CMD_END:
        return msg->u.end.chunks > TL_CHUNK_ID_MAX;
    case TL_CMD_DONE:
        return msg->u.done.output.len > TL_TEXT_MAX;
    case TL_CMD_FAIL:
    case TL_CMD_CANCEL:
        return msg->u.reason.len > TL_TEXT_MAX;
    case TL_CMD_HAVE:
        return msg->u.have.bits.len == 0 || msg->u.have.bits.len > TL_HAVE_MAX ||
               msg->u.have.first >= TL_CHUNK_ID_MAX;
    default:
        return false;
    }
}

static int s_encode_body (msgpack_packer *pk, const tl_msg_t *msg)
{
    int rc = 0;
    switch (msg->cmd) {
    case TL_CMD_JOB: {
        const tl_job_body_t *job = &msg->u.job;
        rc |= msgpack_pack_uint32 (pk, job->version);
        rc |= s_pack_secret (pk, msg->secret);
        rc |= job->strict ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
        rc |= msgpack_pack_uint64 (pk, job->input_bytes);
        rc |= msgpack_pack_array (pk, job->nfiles);
        for (uint32_t i = 0; i < job->nfiles && rc == 0; i++)
            rc |= tl__mp_pack_str (pk, job->files[i].ptr, job->files[i].len);
        rc |= msgpack_pack_uint32 (pk, job->shard);
        rc |= msgpack_pack_uint32 (pk, job->shards);
        break;
    }
    case TL_CMD_CHUNK: {
        const tl_chunk_body_t *chunk = &msg->u.chunk;
        rc |= msgpack_pack_uint64 (pk, chunk->chunk);
        rc |= msgpack_pack_uint64 (pk, chunk->tag);
        rc |= msgpack_pack_uint32 (pk, chunk->file);
        rc |= msgpack_pack_uint64 (pk, chunk->offset);
        rc |= s_pack_format (pk, chunk->format);
        rc |= s_pack_filter (pk, &chunk->filter);
        rc |= msgpack_pack_uint32 (pk, chunk->shards);
        rc |= msgpack_pack_uint64 (pk, chunk->seed);
        break;
    }
    case TL_CMD_PARTIAL: {
        const tl_partial_body_t *partial = &msg->u.partial;
        assert (partial->bad_samples <= TL_BAD_SAMPLES);
        rc |= msgpack_pack_uint64 (pk, partial->chunk);
        rc |= msgpack_pack_uint64 (pk, partial->tag);
        rc |= msgpack_pack_uint32 (pk, partial->file);
        rc |= msgpack_pack_uint64 (pk, partial->bytes);
        rc |= msgpack_pack_uint64 (pk, partial->lines);
        rc |= msgpack_pack_uint64 (pk, partial->bad_lines);
        rc |= msgpack_pack_uint64 (pk, partial->filtered);
        rc |= msgpack_pack_array (pk, partial->bad_samples);
        for (uint32_t i = 0; i < partial->bad_samples; i++)
            rc |= msgpack_pack_uint64 (pk, partial->bad_offset[i]);
        rc |= msgpack_pack_uint32 (pk, partial->shard);
        break;
    }
    case TL_CMD_END:
        rc |= s_pack_secret (pk, msg->secret);
        rc |= msgpack_pack_uint64 (pk, msg->u.end.chunks);
        rc |= msgpack_pack_uint64 (pk, msg->u.end.bytes);
        rc |= msgpack_pack_uint64 (pk, msg->u.end.bad_lines);
        break;
    case TL_CMD_ACK:
        assert (msg->u.ack.count <= TL_ACK_MAX);
        rc |= msgpack_pack_array (pk, msg->u.ack.count);
        for (uint32_t i = 0; i < msg->u.ack.count; i++)
            rc |= msgpack_pack_uint64 (pk, msg->u.ack.chunk[i]);
        break;
    case TL_CMD_DONE: {
        const tl_done_body_t *done = &msg->u.done;
        rc |= msgpack_pack_uint64 (pk, done->keys);
        rc |= msgpack_pack_uint64 (pk, done->sum);
        rc |= msgpack_pack_uint64 (pk, done->lines);
        rc |= msgpack_pack_uint64 (pk, done->bad_lines);
        rc |= msgpack_pack_uint64 (pk, done->filtered);
        rc |= msgpack_pack_double (pk, done->seconds);
        rc |= tl__mp_pack_str (pk, done->output.ptr, done->output.len);
        rc |= msgpack_pack_uint64 (pk, done->chunks);
        rc |= msgpack_pack_uint64 (pk, done->bytes);
        break;
    }
    case TL_CMD_CANCEL:
        rc |= s_pack_secret (pk, msg->secret);
        rc |= tl__mp_pack_str (pk, msg->u.reason.ptr, msg->u.reason.len);
        break;
    case TL_CMD_FAIL:
        rc |= tl__mp_pack_str (pk, msg->u.reason.ptr, msg->u.reason.len);
        break;
    case TL_CMD_ACCEPT:
        rc |= msgpack_pack_uint64 (pk, msg->u.state.incarnation);
        rc |= msgpack_pack_uint64 (pk, msg->u.state.merged);
        break;
    case TL_CMD_PONG:
        rc |= msgpack_pack_uint64 (pk, msg->u.state.incarnation);
        rc |= msgpack_pack_uint64 (pk, msg->u.state.merged);
        rc |= msg->u.state.known ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
        break;
    case TL_CMD_HAVE:
        rc |= msgpack_pack_uint64 (pk, msg->u.have.first);
        rc |= tl__mp_pack_bin (pk, msg->u.have.bits.ptr, msg->u.have.bits.len);
        break;
    case TL_CMD_PING:
        rc |= s_pack_secret (pk, msg->secret);
        break;
    default:
        break;
    }
    return rc ? -1 : 0;
}

int tl_msg_encode (const tl_msg_t *msg, msgpack_sbuffer *buf)
{
    assert (msg);
    assert (buf);
    assert (msg->cmd > TL_CMD_INVALID && msg->cmd < TL_CMD_COUNT_);
    assert (msg->cmd != TL_CMD_CHUNK || msg->u.chunk.format < TL_FORMAT_COUNT_);
    if (s_body_refused (msg)) return -1;
    size_t start = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    if (msgpack_pack_array (&pk, s_cmd_fields[msg->cmd]) != 0 ||
        msgpack_pack_uint64 (&pk, msg->job) != 0 || s_encode_body (&pk, msg) == -1) {
        buf->size = start;
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------
//  PARTIAL frame 2: the sink's hot path.

int tl_map_pack (tl_table_t *table, msgpack_packer *pk)
{
    assert (table);
    assert (pk);
    size_t entries = tl_table_size (table);
    if (entries > UINT32_MAX) return -1;
    int rc = msgpack_pack_map (pk, entries);
    size_t cursor = 0;
    tl_entry_t entry;
    while (rc == 0 && tl_table_next (table, &cursor, &entry))
        rc = tl__mp_pack_bin (pk, entry.key, entry.len) | msgpack_pack_uint64 (pk, entry.count);
    return rc ? -1 : 0;
}

//  Room for n more bytes in buf, grown by doubling as msgpack_sbuffer_write grows it.
static int s_reserve (msgpack_sbuffer *buf, size_t n)
{
    if (buf->alloc - buf->size >= n) return 0;
    size_t alloc = buf->alloc ? buf->alloc : MSGPACK_SBUFFER_INIT_SIZE;
    while (alloc - buf->size < n) {
        if (alloc > SIZE_MAX / 2) return -1;
        alloc *= 2;
    }
    char *data = realloc (buf->data, alloc);
    if (!data) return -1;
    buf->data = data;
    buf->alloc = alloc;
    return 0;
}

//  Appends one entry (bin key, unsigned count) in the bytes msgpack-c's packer writes
//  for them, without its three buffer writes and their checks per entry: this runs
//  once per key of every partial.
static inline int s_put_entry (msgpack_sbuffer *buf, const char *key, size_t len, uint64_t count)
{
    if (__builtin_expect (buf->alloc - buf->size < len + 14, 0) && s_reserve (buf, len + 14))
        return -1;
    unsigned char *p = (unsigned char *)buf->data + buf->size;
    if (len < 256) {
        *p++ = 0xc4;
        *p++ = (unsigned char)len;
    } else if (len < 65536) {
        *p++ = 0xc5;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = 0xc6;
        for (int shift = 24; shift >= 0; shift -= 8)
            *p++ = (unsigned char)(len >> shift);
    }
    if (len) memcpy (p, key, len);
    p += len;
    int bytes;
    if (count < 128) {
        *p++ = (unsigned char)count;
        bytes = 0;
    } else if (count < 256) {
        *p++ = 0xcc;
        bytes = 1;
    } else if (count < 65536) {
        *p++ = 0xcd;
        bytes = 2;
    } else if (count < (UINT64_C (1) << 32)) {
        *p++ = 0xce;
        bytes = 4;
    } else {
        *p++ = 0xcf;
        bytes = 8;
    }
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (unsigned char)(count >> (8 * i));
    buf->size = (size_t)((char *)p - buf->data);
    return 0;
}

//  A map header whose count is filled in later: map32 (0xdf and 4 bytes, big-endian),
//  which every msgpack reader takes for any count.
static int s_map_head_reserve (msgpack_sbuffer *buf)
{
    static const char head[5] = {(char)0xdf, 0, 0, 0, 0};
    return msgpack_sbuffer_write (buf, head, sizeof head);
}

static void s_map_head_fill (msgpack_sbuffer *buf, size_t at, uint32_t count)
{
    unsigned char *p = (unsigned char *)buf->data + at + 1;
    p[0] = (unsigned char)(count >> 24);
    p[1] = (unsigned char)(count >> 16);
    p[2] = (unsigned char)(count >> 8);
    p[3] = (unsigned char)count;
}

int tl_map_encode (tl_table_t *table, msgpack_sbuffer *buf)
{
    return tl_map_encode_split (table, 0, 1, buf);
}

int tl_map_encode_split (tl_table_t *table, uint64_t seed, uint32_t shards, msgpack_sbuffer *bufs)
{
    assert (table);
    assert (bufs);
    assert (shards > 0 && shards <= TL_SHARDS_MAX);
    if (tl_table_size (table) > UINT32_MAX) return -1;
    size_t start[TL_SHARDS_MAX];
    uint32_t count[TL_SHARDS_MAX] = {0};
    int rc = 0;
    for (uint32_t i = 0; i < shards; i++) {
        start[i] = bufs[i].size;
        if (shards == 1) {
            //  The count known now: msgpack's smallest header for it (fixmap, map16, map32)
            msgpack_packer pk;
            msgpack_packer_init (&pk, &bufs[i], msgpack_sbuffer_write);
            rc |= msgpack_pack_map (&pk, tl_table_size (table));
        } else
            rc |= s_map_head_reserve (&bufs[i]);
        //  Most keys of a partial are short words: room for that many, grown if not
        rc |= s_reserve (&bufs[i], tl_table_size (table) / shards * 16);
    }
    size_t cursor = 0;
    tl_entry_t entry;
    while (rc == 0 && tl_table_next (table, &cursor, &entry)) {
        uint32_t shard = shards == 1 ? 0 : tl_shard_of (entry.key, entry.len, seed, shards);
        count[shard]++;
        rc = s_put_entry (&bufs[shard], entry.key, entry.len, entry.count);
    }
    for (uint32_t i = 0; i < shards; i++) {
        if (rc != 0)
            bufs[i].size = start[i];
        else if (shards > 1)
            s_map_head_fill (&bufs[i], start[i], count[i]);
    }
    return rc ? -1 : 0;
}

//  Reads one entry of a map frame: a str or bin key of at most TL_KEY_MAX bytes and a
//  non-negative integer.
//  The forms workers write for short keys and small counts (bin8, str8 or fixstr, then a
//  positive fixint or uint8/16/32/64) are read inline here, each byte checked against the
//  frame's end as the general reader checks it; anything else goes to that reader.
static inline int s_read_entry (tl__mp_reader_t *r, tl_str_t *key, uint64_t *count)
{
    const uint8_t *p = r->pos;
    size_t left = (size_t)(r->end - p);
    size_t len, at;
    if (left >= 2 && (p[0] == 0xc4 || p[0] == 0xd9)) {
        len = p[1];
        at = 2;
    } else if (left >= 1 && (p[0] & 0xe0) == 0xa0) {
        len = p[0] & 0x1f;
        at = 1;
    } else
        goto general;
    if (left - at <= len) goto general;  //  No room for the key and a count byte
    const uint8_t *c = p + at + len;
    left -= at + len;
    uint64_t value;
    size_t bytes;
    if (c[0] < 0x80) {
        value = c[0];
        bytes = 0;
    } else if (c[0] >= 0xcc && c[0] <= 0xcf) {
        bytes = (size_t)1 << (c[0] - 0xcc);
        if (left <= bytes) goto general;
        value = 0;
        for (size_t i = 1; i <= bytes; i++)
            value = value << 8 | c[i];
    } else
        goto general;
    key->ptr = (const char *)p + at;
    key->len = len;
    *count = value;
    r->pos = c + 1 + bytes;
    return 0;

general:
    if (tl__mp_read_str (r, TL_KEY_MAX, key) == -1 || tl__mp_read_u64 (r, count) == -1) return -1;
    return 0;
}

int tl_map_merge (const void *data, size_t size, tl_table_t *table, uint64_t *entries)
{
    assert (data || size == 0);
    assert (table);
    if (entries) *entries = 0;
    tl__mp_reader_t r;
    tl__mp_head_t h;
    tl_str_t key;
    uint64_t count;

    //  Pass 1: validate everything, so a bad frame merges nothing.
    tl__mp_init (&r, data, size);
    if (tl__mp_read_head (&r, &h) == -1 || h.kind != TL__MP_MAP) return -1;
    uint64_t n = h.n;
    for (uint64_t i = 0; i < n; i++)
        if (s_read_entry (&r, &key, &count) == -1) return -1;
    if (!tl__mp_at_end (&r)) return -1;

    //  Pass 2: merge. Only running out of memory can fail now, and the table API has
    //  no undo: the entries added so far stay (the caller drops the job anyway).
    tl__mp_init (&r, data, size);
    (void)tl__mp_read_head (&r, &h);
    //  In batches, so that the lookups' cache misses in a large totals table overlap.
    int rc = 0;
    tl_kv_t batch[TL_TABLE_BATCH];
    for (uint64_t i = 0; i < n;) {
        size_t m = 0;
        for (; m < TL_TABLE_BATCH && i < n; m++, i++) {
            (void)s_read_entry (&r, &key, &count);
            batch[m] = (tl_kv_t){key.ptr, key.len, count};
        }
        int added = tl_table_add_batch (table, batch, m);
        if (added == -1) return -1;
        if (added > 0) rc = 1;
    }
    if (entries) *entries = n;
    return rc;
}
