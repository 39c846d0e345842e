/*  tl_proto: every message the services exchange, defined once. docs/PROTOCOL.md is
    the reference a client in another language is written from.

    A message is multipart. Frame 0 is the command name in ASCII ("CHUNK", "PARTIAL",
    ...). Frame 1 is a msgpack array holding the command's fields in a fixed order.
    CHUNK has a frame 2 with the raw lines (never copied into msgpack); PARTIAL has a
    frame 2 holding a msgpack map key (bin) -> count (uint).

    Decoding treats every frame as hostile: wrong types, truncated data, containers
    that claim more entries than the frame could hold, and trailing bytes are errors
    (-1), never a crash or an allocation larger than the frame justifies.

    The feed that the sink publishes ([topic, msgpack map]) is tl_feed.h.            */

#ifndef TL_PROTO_H_INCLUDED
#define TL_PROTO_H_INCLUDED

#include "tl_format.h"
#include "tl_table.h"
#include <msgpack.h>

//  Version carried in JOB; a sink refuses a job of another version. 2: JOB lost format
//  and filters, CHUNK lost path (nothing read them); job control carries the job's
//  secret, chunks and partials a tag derived from it, DONE the chunks and bytes merged.
//  3: ACCEPT and PONG carry the sink's incarnation and merged count, PONG whether the
//  sink knows the job; HAVE lists the chunks a sink holds (crash recovery). 4: sink
//  shards: JOB says which shard of how many the sink is, CHUNK how many shards and the
//  job's seed of the key split, PARTIAL which shard's part it carries.
#define TL_PROTO_VERSION 4
//  Most sink shards a job may have.
#define TL_SHARDS_MAX 64
//  Bytes of a job's secret: drawn at random by the ventilator, sent to the sink in JOB
//  and never published; END, PING and CANCEL without it are not obeyed.
#define TL_SECRET_SIZE 16
//  Chunk ids at or past this are refused: no count of chunks can wrap around.
#define TL_CHUNK_ID_MAX (UINT64_C (1) << 48)
//  Most chunk ids one ACK carries.
#define TL_ACK_MAX 64
//  Most bytes of chunk bitmap in one HAVE (so one HAVE covers 512 Ki chunk ids).
#define TL_HAVE_MAX 65536
//  Most files in one job.
#define TL_FILES_MAX 65536
//  Most bytes of a FAIL/CANCEL reason, a file name or an output path that decoding
//  accepts.
#define TL_TEXT_MAX 4096

typedef enum {
    TL_CMD_INVALID = 0,
    TL_CMD_JOB,      //  ventilator -> sink: open a job
    TL_CMD_ACCEPT,   //  sink -> ventilator: job opened
    TL_CMD_CHUNK,    //  ventilator -> worker: lines to map (+ payload frame)
    TL_CMD_PARTIAL,  //  worker -> sink: a chunk's partial dictionary (+ map frame)
    TL_CMD_END,      //  ventilator -> sink: the job has this many chunks
    TL_CMD_ACK,      //  sink -> ventilator: these chunks are merged
    TL_CMD_DONE,     //  sink -> ventilator: every chunk merged, totals written
    TL_CMD_FAIL,     //  sink -> ventilator: the job failed (reason)
    TL_CMD_PING,     //  ventilator -> sink: is my job alive?
    TL_CMD_PONG,     //  sink -> ventilator: the job's state at this sink
    TL_CMD_CANCEL,   //  ventilator -> sink: drop the job (reason)
    TL_CMD_HAVE,     //  sink -> ventilator: which chunks of a range the sink holds
    TL_CMD_COUNT_
} tl_cmd_t;

//  A byte string borrowed from a decoded frame: valid while the frame is.
typedef struct {
    const char *ptr;  //  Bytes, not NUL-terminated
    size_t len;       //  Length
} tl_str_t;

//  A JOB of another version than TL_PROTO_VERSION decodes with only job and version
//  set (every version starts with those two), so that the sink can say why it refuses
//  it: check version before anything else.
typedef struct {
    uint32_t version;      //  TL_PROTO_VERSION, or the peer's when it speaks another
    bool strict;           //  Malformed lines fail the job instead of being skipped
    uint64_t input_bytes;  //  Sum of the input files' sizes (on disk)
    uint32_t nfiles;       //  Number of files
    tl_str_t *files;       //  File names; array owned by the message (tl_msg_reset)
    uint32_t shard;        //  Which shard of the job this sink is, 0 .. shards-1
    uint32_t shards;       //  The job's sink shards, 1 .. TL_SHARDS_MAX
} tl_job_body_t;

typedef struct {
    uint64_t chunk;      //  Chunk id, 0.. in the order the ventilator cut them
    uint64_t tag;        //  tl_chunk_tag of the chunk: the worker returns it in PARTIAL
    uint32_t file;       //  Index of the source file in the job
    uint64_t offset;     //  Byte offset of the first line in the (decompressed) file
    tl_format_t format;  //  Concrete format of these lines
    tl_filter_t filter;  //  Filters to apply
    uint32_t shards;     //  The job's sink shards, 1 .. TL_SHARDS_MAX: parts to split into
    uint64_t seed;       //  The job's seed of the key split (tl_shard_of)
} tl_chunk_body_t;

typedef struct {
    uint64_t chunk;                       //  Chunk id
    uint64_t tag;                         //  The CHUNK's tag, returned as it came
    uint32_t file;                        //  Source file index
    uint64_t bytes;                       //  Payload bytes mapped
    uint64_t lines;                       //  Lines seen
    uint64_t bad_lines;                   //  Malformed lines skipped
    uint64_t filtered;                    //  Lines left out by filters
    uint32_t bad_samples;                 //  How many bad_offset are set
    uint64_t bad_offset[TL_BAD_SAMPLES];  //  File offsets of the first bad lines
    uint32_t shard;                       //  Which shard's part of the chunk this is
} tl_partial_body_t;

typedef struct {
    uint64_t chunks;     //  Number of chunks in the job
    uint64_t bytes;      //  Payload bytes sent over all chunks
    uint64_t bad_lines;  //  Lines the ventilator itself skipped (longer than --max-line)
} tl_end_body_t;

typedef struct {
    uint32_t count;              //  Chunk ids in this ACK
    uint64_t chunk[TL_ACK_MAX];  //  Merged (or duplicate) chunk ids
} tl_ack_body_t;

typedef struct {
    uint64_t keys;       //  Distinct keys
    uint64_t sum;        //  Sum of all totals
    uint64_t lines;      //  Lines seen
    uint64_t bad_lines;  //  Malformed lines skipped
    uint64_t filtered;   //  Lines left out by filters
    double seconds;      //  From JOB to DONE
    tl_str_t output;     //  Totals file written
    uint64_t chunks;     //  Chunks merged (the ventilator checks it is what it sent)
    uint64_t bytes;      //  Payload bytes merged (likewise)
} tl_done_body_t;

//  ACCEPT and PONG: the job as this sink holds it. A sink draws a new incarnation
//  each time it starts: a ventilator that sees another one than before knows the sink
//  restarted, and may have lost what it merged after its last checkpoint.
typedef struct {
    uint64_t incarnation;  //  The sink process's random id
    uint64_t merged;       //  Chunks merged so far
    bool known;            //  PONG: the sink has the job (ACCEPT: always true)
} tl_state_body_t;

//  HAVE: bit i of bits (byte i / 8, bit i % 8, least significant first) says whether
//  chunk first + i is merged. A sink sends HAVEs covering every chunk id it merged,
//  then an ACCEPT whose merged count their set bits add up to.
typedef struct {
    uint64_t first;  //  Chunk id of bit 0
    tl_str_t bits;   //  Bitmap, 1 to TL_HAVE_MAX bytes
} tl_have_body_t;

typedef struct {
    tl_cmd_t cmd;                    //  Which body is set
    uint64_t job;                    //  Job id (every command has one)
    uint8_t secret[TL_SECRET_SIZE];  //  The job's secret: JOB, END, PING, CANCEL
    union {
        tl_job_body_t job;
        tl_chunk_body_t chunk;
        tl_partial_body_t partial;
        tl_end_body_t end;
        tl_ack_body_t ack;
        tl_done_body_t done;
        tl_str_t reason;        //  FAIL, CANCEL
        tl_state_body_t state;  //  ACCEPT, PONG
        tl_have_body_t have;    //  HAVE
    } u;
} tl_msg_t;

//  True for the commands that carry the job's secret (JOB, END, PING, CANCEL).
bool tl_cmd_has_secret (tl_cmd_t cmd);

//  The tag of chunk `chunk` of job `job` whose secret is `secret`: the sink merges a
//  PARTIAL only with the tag of its chunk, so a peer that never saw the CHUNK cannot
//  make one up. A keyed hash, not a cryptographic MAC: it keeps out peers that see no
//  chunks (the feed's readers, strangers); workers, who see them, are trusted to count.
uint64_t tl_chunk_tag (const uint8_t secret[TL_SECRET_SIZE], uint64_t job, uint64_t chunk);

//  The seed of job's key split: the same for every worker of the job (it comes with
//  each CHUNK), drawn from the secret so that no one outside the job can predict it.
uint64_t tl_shard_seed (const uint8_t secret[TL_SECRET_SIZE], uint64_t job);

//  The shard, 0 .. shards-1, that holds key in a job split shards ways with seed:
//  XXH3_64bits_withSeed (key, len, seed) % shards.
uint32_t tl_shard_of (const void *key, size_t len, uint64_t seed, uint32_t shards);

//  The shard that counts chunk's bytes, lines and bad lines: every shard merges a part
//  of every chunk, and one of them counts what the chunk holds.
static inline uint32_t tl_shard_counter (uint64_t chunk, uint32_t shards)
{
    return (uint32_t)(chunk % shards);
}

//  Compares two secrets in time that does not depend on where they differ. True when
//  equal.
bool tl_secret_equal (const uint8_t a[TL_SECRET_SIZE], const uint8_t b[TL_SECRET_SIZE]);

//  Fills secret with random bytes (getrandom). Returns 0 or -1.
int tl_secret_new (uint8_t secret[TL_SECRET_SIZE]);

//  The command's name for frame 0 ("JOB", "CHUNK", ...).
const char *tl_cmd_name (tl_cmd_t cmd);

//  Parses frame 0. TL_CMD_INVALID for anything else.
tl_cmd_t tl_cmd_parse (const void *data, size_t size);

//  Appends msg's frame 1 (msgpack array) to buf. Returns 0 or -1 (out of memory).
int tl_msg_encode (const tl_msg_t *msg, msgpack_sbuffer *buf);

//  Decodes frame 1 of a message whose frame 0 said cmd. Strings point into data.
//  Returns 0, or -1 when the frame is not a well-formed body of that command (then
//  msg holds nothing that needs freeing). Call tl_msg_reset when done with msg.
int tl_msg_decode (tl_cmd_t cmd, const void *data, size_t size, tl_msg_t *msg);

//  Frees what decoding allocated (the JOB file array) and zeroes msg.
void tl_msg_reset (tl_msg_t *msg);

//  Appends a PARTIAL frame 2 (map key bin -> count uint) for every entry of table.
int tl_map_encode (tl_table_t *table, msgpack_sbuffer *buf);

//  Splits table's entries into shards maps by tl_shard_of (key, seed), appending map i
//  to bufs[i] (every one gets a map, empty or not). Returns 0 or -1 (out of memory, or
//  more than 2^32-1 entries); on failure every buffer is cut back.
int tl_map_encode_split (tl_table_t *table, uint64_t seed, uint32_t shards, msgpack_sbuffer *bufs);

//  The same map through any packer (a file, say), without building it in memory.
//  Returns 0 or -1 (the packer's write failed, or more than 2^32-1 entries).
int tl_map_pack (tl_table_t *table, msgpack_packer *pk);

//  Validates a PARTIAL frame 2 completely, then adds its entries into table: either
//  every entry is merged or none is. Sets *entries to the map's size. Returns 0; -1
//  for a malformed frame or out of memory (table unchanged); 1 when a total saturated.
int tl_map_merge (const void *data, size_t size, tl_table_t *table, uint64_t *entries);

//  Checks that data holds exactly one well-formed msgpack object (any type) whose
//  containers' claimed sizes fit in the bytes, nested at most 32 deep. Returns 0 or -1.
//  Call it before handing a hostile frame to msgpack_unpack.
int tl_msgpack_check (const void *data, size_t size);

#endif
