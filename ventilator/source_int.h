/*  source_int: the private interface between tl_source's parts.

    source.c (public API, chunker, buffers) pulls blocks of file bytes from one reader
    backend, chosen once in tl_source_new: source_uring.c (io_uring, reads queued ahead)
    or source_sync.c (read(2)). Gzip files go through source_gz.c (zlib or isa-l). Every
    block lives in a pooled tl_buf with free headroom in front of its data, so the chunker
    can put the previous block's unfinished line there instead of copying the block.   */

#ifndef SOURCE_INT_H_INCLUDED
#define SOURCE_INT_H_INCLUDED

#include "tl_source.h"

#include <stdatomic.h>

#define TL__ERROR_MAX (4096 + 256)  //  Bytes for an error message: a whole path and why

//  --------------------------------------------------------------------------
//  Buffers (source.c)

typedef struct _tl__pool_t tl__pool_t;

struct _tl_buf_t {
    atomic_uint refs;  //  Holders; the last release recycles or frees
    tl__pool_t *pool;  //  Pool to recycle into, NULL for a one-off buffer
    char *mem;         //  Storage (page aligned in pool buffers)
    size_t cap;        //  Bytes at mem
};

//  A one-off buffer of cap bytes (not pooled) with one reference, or NULL when out of
//  memory.
tl_buf_t *tl__buf_new (size_t cap);

//  Pool of equal buffers of cap bytes; keeps at most keep idle ones for reuse.
tl__pool_t *tl__pool_new (size_t cap, unsigned keep);

//  A buffer from the pool (recycled or new) with one reference, or NULL when out of
//  memory. Only the source's thread calls this.
tl_buf_t *tl__pool_get (tl__pool_t *pool);

//  The source lets go of the pool; it is freed when its last buffer comes back.
void tl__pool_close (tl__pool_t **pool_p);

//  --------------------------------------------------------------------------
//  Reader backends: file bytes in order, one block per read

typedef struct {
    uint32_t file;    //  Index into the file list
    uint64_t offset;  //  Byte offset of data in the file (decompressed, after inflating)
    tl_buf_t *buf;    //  Holds data, one reference owned by the receiver; NULL if size 0
    char *data;       //  First byte, at least the pool's headroom past buf->mem
    size_t size;      //  Bytes at data; 0 only in a block that ends its file
    bool eof;         //  Last block of its file
} tl__block_t;

typedef struct {
    char *const *files;  //  File names (the source's copy)
    size_t nfiles;       //  Entries in files
    tl__pool_t *pool;    //  Where read buffers come from
    size_t headroom;     //  Bytes left free in front of each block's data
    size_t block_size;   //  Bytes per read
    unsigned depth;      //  Reads in flight (io_uring)
} tl__reader_cfg_t;

typedef struct _tl__reader_t tl__reader_t;

typedef struct {
    const char *name;  //  "io_uring" or "sync"
    //  Next block: 1 with *block set, 0 after the last file, -1 on error (self->error
    //  names the file). Blocks of a file come in order and every block is full
    //  (block_size bytes) except the file's last, so chunking does not depend on the
    //  backend. An empty file gives one empty eof block.
    int (*next) (tl__reader_t *self, tl__block_t *block);
    //  Waits for reads in flight, closes files and frees the reader.
    void (*destroy) (tl__reader_t *self);
} tl__reader_ops_t;

//  Backends start their struct with this.
struct _tl__reader_t {
    const tl__reader_ops_t *ops;  //  Backend methods
    tl__reader_cfg_t cfg;         //  What to read, into what
    uint64_t bytes_read;          //  Bytes delivered in blocks so far
    char error[TL__ERROR_MAX];    //  "FILE: why" after next returned -1
};

//  io_uring reader, or NULL with *err = -errno (-EPERM, -ENOSYS, -ENOMEM when the kernel
//  or a seccomp profile refuses io_uring).
tl__reader_t *tl__uring_new (const tl__reader_cfg_t *cfg, int *err);

//  read(2) reader, or NULL when out of memory.
tl__reader_t *tl__sync_new (const tl__reader_cfg_t *cfg);

//  An open input file: regular files are read up to the size they had when opened, so
//  that both backends cut the same blocks; others (pipes) until read returns 0.
typedef struct {
    int fd;         //  Open descriptor
    bool sized;     //  Regular file: size is known
    uint64_t size;  //  Bytes to read when sized
} tl__file_t;

//  Opens files[index] of cfg. Returns 0, or -1 with "FILE: strerror" in error.
int tl__file_open (const tl__reader_cfg_t *cfg, uint32_t index, tl__file_t *file, char *error);

//  Whether a read that asked for want bytes at offset and got got ends the file.
static inline bool tl__read_ends_file (const tl__file_t *file, uint64_t offset, size_t want,
                                       size_t got)
{
    return got < want || (file->sized && offset + got >= file->size);
}

//  How many bytes to ask for at offset.
static inline size_t tl__read_want (const tl__file_t *file, const tl__reader_cfg_t *cfg,
                                    uint64_t offset)
{
    if (file->sized && file->size - offset < cfg->block_size) return (size_t)(file->size - offset);
    return cfg->block_size;
}

//  --------------------------------------------------------------------------
//  Gzip inflating (source_gz.c)

typedef struct _tl__gz_t tl__gz_t;

typedef enum {
    TL__GZ_NEED_INPUT,   //  All input used, the stream goes on
    TL__GZ_OUTPUT_FULL,  //  No output space left
    TL__GZ_END,          //  The last member ended with the input
    TL__GZ_ERROR         //  Truncated or corrupt: tl__gz_error says how
} tl__gz_status_t;

//  An inflater: isa-l or zlib as TALLY_INFLATE says, else the faster (measured by
//  bench/bench_source.c). NULL when out of memory.
tl__gz_t *tl__gz_new (void);
void tl__gz_destroy (tl__gz_t **self_p);

//  "zlib" or "isal".
const char *tl__gz_engine (tl__gz_t *self);

//  Prepares for a new file (which starts with the gzip magic bytes).
void tl__gz_begin (tl__gz_t *self);

//  Inflates from *in into *out, advancing both and shrinking *in_len and *out_len.
//  in_last says the input ends the file: then a member cut short is an error.
tl__gz_status_t tl__gz_inflate (tl__gz_t *self, const uint8_t **in, size_t *in_len, bool in_last,
                                uint8_t **out, size_t *out_len);

//  What went wrong (without the file name).
const char *tl__gz_error (tl__gz_t *self);

#endif
