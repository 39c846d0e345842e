/*  tl_msgpack_int: the hostile-input msgpack reader that every decoder in common/ shares
    (tl_proto's commands, tl_feed's bodies), and the two packing helpers their encoders
    share. Internal to libtally_common: the services use the codecs, never these.

    A reader is a cursor over one frame. Every read checks the bytes left before touching
    them, and every header's claimed size against what the rest of the frame could hold,
    so no caller walks or allocates more than the frame justifies. On -1 the cursor is
    somewhere inside the frame: the caller gives up on the frame.                     */

#ifndef TL_MSGPACK_INT_H_INCLUDED
#define TL_MSGPACK_INT_H_INCLUDED

#include "tl_proto.h"

//  Deepest container nesting tl__mp_skip accepts; msgpack-c's unpacker has a stack of
//  the same depth, so whatever passes tl_msgpack_check it can unpack.
#define TL__MP_DEPTH_MAX 32

typedef struct {
    const uint8_t *pos;  //  Next byte to read
    const uint8_t *end;  //  One past the frame's last byte
} tl__mp_reader_t;

//  What a msgpack header announced.
typedef enum {
    TL__MP_NIL,
    TL__MP_BOOL,
    TL__MP_UINT,    //  Any non-negative integer, whatever its encoding
    TL__MP_NEGINT,  //  A negative integer (value not kept: no field accepts one)
    TL__MP_FLOAT,
    TL__MP_STR,
    TL__MP_BIN,
    TL__MP_ARRAY,
    TL__MP_MAP,
    TL__MP_EXT
} tl__mp_kind_t;

typedef struct {
    tl__mp_kind_t kind;  //  Type announced
    uint64_t n;          //  Value (uint, bool), payload bytes (str, bin, ext incl. its
                         //  type byte) or entries (array, map)
    double f;            //  Value of a float
} tl__mp_head_t;

void tl__mp_init (tl__mp_reader_t *r, const void *data, size_t size);

//  True when every byte of the frame has been read.
bool tl__mp_at_end (const tl__mp_reader_t *r);

//  Reads one header (not a str/bin/ext payload, nor a container's elements). Returns 0,
//  or -1 when the frame ends inside the header, the byte is never used (0xc1), or the
//  header claims more than the rest of the frame could hold.
int tl__mp_read_head (tl__mp_reader_t *r, tl__mp_head_t *h);

//  Reads a non-negative integer no larger than max.
int tl__mp_read_uint (tl__mp_reader_t *r, uint64_t max, uint64_t *value);
int tl__mp_read_u64 (tl__mp_reader_t *r, uint64_t *value);
int tl__mp_read_u32 (tl__mp_reader_t *r, uint32_t *value);

//  Reads true or false; nothing else is a bool (not 0/1, not nil).
int tl__mp_read_bool (tl__mp_reader_t *r, bool *value);

//  Reads a float32, float64 or non-negative integer as a double.
int tl__mp_read_double (tl__mp_reader_t *r, double *value);

//  Reads a str or bin of at most max bytes; the result points into the frame.
int tl__mp_read_str (tl__mp_reader_t *r, size_t max, tl_str_t *str);

//  Reads an array header of at most max elements; each is known to have a byte left.
int tl__mp_read_array (tl__mp_reader_t *r, uint32_t max, uint32_t *count);

//  Reads a map header of at most max entries; each is known to have two bytes left.
int tl__mp_read_map (tl__mp_reader_t *r, uint32_t max, uint32_t *count);

//  Skips one object of any type whose containers sit at depth (0 for the frame's own
//  object). Refuses nesting deeper than TL__MP_DEPTH_MAX.
int tl__mp_skip (tl__mp_reader_t *r, int depth);

//  Packs len bytes at ptr (NULL when len is 0) as a str, or as a bin. Returns 0 or -1.
int tl__mp_pack_str (msgpack_packer *pk, const char *ptr, size_t len);
int tl__mp_pack_bin (msgpack_packer *pk, const char *ptr, size_t len);

#endif
