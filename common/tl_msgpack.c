/*  tl_msgpack: the hostile-input msgpack reader (tl_msgpack_int.h) shared by tl_proto
    and tl_feed, and their packing helpers. Hand-written rather than msgpack-c's unpacker, because
   that one trusts the sizes a header claims (it allocates a map header's 2^32 entries before
   looking at the bytes); this one checks every claimed size against the bytes left.       */

#include "tl_msgpack_int.h"

#include <assert.h>
#include <string.h>

void tl__mp_init (tl__mp_reader_t *r, const void *data, size_t size)
{
    r->pos = (const uint8_t *)data;
    r->end = r->pos + size;
}

static size_t s_left (const tl__mp_reader_t *r)
{
    return (size_t)(r->end - r->pos);
}

//  Reads an n-byte big-endian unsigned number at p (n <= 8).
static uint64_t s_be (const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

//  Consumes n bytes following a one-byte tag and returns them as a number, or -1 when
//  the frame ends first.
static int s_tail (tl__mp_reader_t *r, size_t n, uint64_t *v)
{
    if (s_left (r) < n) return -1;
    *v = s_be (r->pos, n);
    r->pos += n;
    return 0;
}

//  Reads a signed big-endian integer of n bytes: TL__MP_UINT when >= 0, else TL__MP_NEGINT.
static int s_signed (tl__mp_reader_t *r, size_t n, tl__mp_head_t *h)
{
    if (s_tail (r, n, &h->n) == -1) return -1;
    bool negative = (h->n >> (8 * n - 1)) & 1;
    h->kind = negative ? TL__MP_NEGINT : TL__MP_UINT;
    return 0;
}

//  Sets a header whose size the tag itself gave (fixmap, fixarray, fixstr, fixext),
//  checking it against the bytes left as the longer forms are.
static int s_fits (tl__mp_reader_t *r, tl__mp_kind_t kind, uint64_t n, tl__mp_head_t *h)
{
    uint64_t min_bytes = kind == TL__MP_MAP ? 2 * n : n;
    if (min_bytes > s_left (r)) return -1;
    h->kind = kind;
    h->n = n;
    return 0;
}

//  Reads a length of n bytes for a payload (str, bin, ext) and checks that the payload
//  (plus extra bytes, the ext type) fits in what is left.
static int s_payload (tl__mp_reader_t *r, size_t n, uint64_t extra, tl__mp_kind_t kind,
                      tl__mp_head_t *h)
{
    uint64_t len;
    if (s_tail (r, n, &len) == -1) return -1;
    return s_fits (r, kind, len + extra, h);
}

//  Reads a container count of n bytes; each array element needs at least one byte and
//  each map entry two, which bounds the count by the bytes left.
static int s_container (tl__mp_reader_t *r, size_t n, tl__mp_kind_t kind, tl__mp_head_t *h)
{
    uint64_t count;
    if (s_tail (r, n, &count) == -1) return -1;
    return s_fits (r, kind, count, h);
}

static int s_float (tl__mp_reader_t *r, size_t n, tl__mp_head_t *h)
{
    uint64_t bits;
    if (s_tail (r, n, &bits) == -1) return -1;
    if (n == 4) {
        uint32_t bits32 = (uint32_t)bits;
        float f;
        memcpy (&f, &bits32, sizeof f);
        h->f = f;
    } else
        memcpy (&h->f, &bits, sizeof h->f);
    h->kind = TL__MP_FLOAT;
    return 0;
}

//  Reads one header (not a str/bin/ext payload, nor a container's elements). Returns 0,
//  or -1 when the frame ends inside the header, the byte is never used (0xc1), or the
//  header claims more than the rest of the frame could hold.
int tl__mp_read_head (tl__mp_reader_t *r, tl__mp_head_t *h)
{
    if (r->pos == r->end) return -1;
    uint8_t tag = *r->pos++;
    if (tag <= 0x7f) {
        h->kind = TL__MP_UINT;
        h->n = tag;
        return 0;
    }
    if (tag >= 0xe0) {
        h->kind = TL__MP_NEGINT;
        return 0;
    }
    if (tag <= 0x8f) return s_fits (r, TL__MP_MAP, tag & 0x0f, h);
    if (tag <= 0x9f) return s_fits (r, TL__MP_ARRAY, tag & 0x0f, h);
    if (tag <= 0xbf) return s_fits (r, TL__MP_STR, tag & 0x1f, h);
    switch (tag) {
    case 0xc0:
        h->kind = TL__MP_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        h->kind = TL__MP_BOOL;
        h->n = tag == 0xc3;
        return 0;
    case 0xc4:
        return s_payload (r, 1, 0, TL__MP_BIN, h);
    case 0xc5:
        return s_payload (r, 2, 0, TL__MP_BIN, h);
    case 0xc6:
        return s_payload (r, 4, 0, TL__MP_BIN, h);
    case 0xc7:
        return s_payload (r, 1, 1, TL__MP_EXT, h);
    case 0xc8:
        return s_payload (r, 2, 1, TL__MP_EXT, h);
    case 0xc9:
        return s_payload (r, 4, 1, TL__MP_EXT, h);
    case 0xca:
        return s_float (r, 4, h);
    case 0xcb:
        return s_float (r, 8, h);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        h->kind = TL__MP_UINT;
        return s_tail (r, (size_t)1 << (tag - 0xcc), &h->n);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        return s_signed (r, (size_t)1 << (tag - 0xd0), h);
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return s_fits (r, TL__MP_EXT, 1 + ((uint64_t)1 << (tag - 0xd4)), h);
    case 0xd9:
        return s_payload (r, 1, 0, TL__MP_STR, h);
    case 0xda:
        return s_payload (r, 2, 0, TL__MP_STR, h);
    case 0xdb:
        return s_payload (r, 4, 0, TL__MP_STR, h);
    case 0xdc:
        return s_container (r, 2, TL__MP_ARRAY, h);
    case 0xdd:
        return s_container (r, 4, TL__MP_ARRAY, h);
    case 0xde:
        return s_container (r, 2, TL__MP_MAP, h);
    case 0xdf:
        return s_container (r, 4, TL__MP_MAP, h);
    default:  //  0xc1: never used
        return -1;
    }
}

//  Reads a non-negative integer no larger than max.
int tl__mp_read_uint (tl__mp_reader_t *r, uint64_t max, uint64_t *value)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1 || h.kind != TL__MP_UINT || h.n > max) return -1;
    *value = h.n;
    return 0;
}

int tl__mp_read_u64 (tl__mp_reader_t *r, uint64_t *value)
{
    return tl__mp_read_uint (r, UINT64_MAX, value);
}

int tl__mp_read_u32 (tl__mp_reader_t *r, uint32_t *value)
{
    uint64_t v;
    if (tl__mp_read_uint (r, UINT32_MAX, &v) == -1) return -1;
    *value = (uint32_t)v;
    return 0;
}

int tl__mp_read_bool (tl__mp_reader_t *r, bool *value)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1 || h.kind != TL__MP_BOOL) return -1;
    *value = h.n != 0;
    return 0;
}

//  Reads a float32, float64 or non-negative integer as a double.
int tl__mp_read_double (tl__mp_reader_t *r, double *value)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1) return -1;
    if (h.kind == TL__MP_FLOAT)
        *value = h.f;
    else if (h.kind == TL__MP_UINT)
        *value = (double)h.n;
    else
        return -1;
    return 0;
}

//  Reads a str or bin of at most max bytes; the result points into the frame.
int tl__mp_read_str (tl__mp_reader_t *r, size_t max, tl_str_t *str)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1 || (h.kind != TL__MP_STR && h.kind != TL__MP_BIN) ||
        h.n > max)
        return -1;
    str->ptr = (const char *)r->pos;
    str->len = (size_t)h.n;
    r->pos += h.n;
    return 0;
}

//  Reads an array header of at most max elements.
int tl__mp_read_array (tl__mp_reader_t *r, uint32_t max, uint32_t *count)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1 || h.kind != TL__MP_ARRAY || h.n > max) return -1;
    *count = (uint32_t)h.n;
    return 0;
}

//  Skips one object of any type whose containers sit at depth (0 for the frame's).
int tl__mp_read_map (tl__mp_reader_t *r, uint32_t max, uint32_t *count)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1 || h.kind != TL__MP_MAP || h.n > max) return -1;
    *count = (uint32_t)h.n;
    return 0;
}

bool tl__mp_at_end (const tl__mp_reader_t *r)
{
    return r->pos == r->end;
}

int tl__mp_skip (tl__mp_reader_t *r, int depth)
{
    tl__mp_head_t h;
    if (tl__mp_read_head (r, &h) == -1) return -1;
    switch (h.kind) {
    case TL__MP_STR:
    case TL__MP_BIN:
    case TL__MP_EXT:
        r->pos += h.n;  //  tl__mp_read_head checked that the payload fits
        return 0;
    case TL__MP_ARRAY:
    case TL__MP_MAP: {
        if (depth >= TL__MP_DEPTH_MAX) return -1;
        uint64_t objects = h.kind == TL__MP_MAP ? 2 * h.n : h.n;
        for (uint64_t i = 0; i < objects; i++)
            if (tl__mp_skip (r, depth + 1) == -1) return -1;
        return 0;
    }
    default:
        return 0;
    }
}
int tl__mp_pack_str (msgpack_packer *pk, const char *ptr, size_t len)
{
    assert (ptr || len == 0);
    if (msgpack_pack_str (pk, len) != 0) return -1;
    return len ? msgpack_pack_str_body (pk, ptr, len) : 0;
}

int tl__mp_pack_bin (msgpack_packer *pk, const char *ptr, size_t len)
{
    assert (ptr || len == 0);
    if (msgpack_pack_bin (pk, len) != 0) return -1;
    return len ? msgpack_pack_bin_body (pk, ptr, len) : 0;
}
