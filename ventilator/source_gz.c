/*  source_gz: inflates gzip files for tl_source, with zlib or isa-l's igzip.

    Decodes every member of a multi-member file (what `cat a.gz b.gz` gives) and checks
    each member's CRC and length. Anything short of a clean end is an error the
    ventilator must see rather than partial data: a stream cut short, bad deflate data,
    a checksum mismatch, or bytes after a member that do not start another member.
    bench/bench_source.c measures both engines; the faster is the default and
    TALLY_INFLATE=zlib|isal overrides it.                                             */

#include "source_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef TALLY_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

typedef enum {
    S_ZLIB,  //  zlib's inflate
    S_ISAL   //  isa-l's isal_inflate
} s_engine_t;

typedef enum {
    S_RUN_OK,          //  Progress (or none possible without more input or output)
    S_RUN_MEMBER_END,  //  A member ended, its checksums good
    S_RUN_ERROR        //  Corrupt data: self->error says how
} s_run_t;

struct _tl__gz_t {
    s_engine_t engine;  //  Which library inflates
    z_stream zs;        //  zlib state (gzip wrapper, windowBits 16 + MAX_WBITS)
    bool zs_ready;      //  zs was initialised
#ifdef TALLY_HAVE_ISAL
    struct inflate_state *isal;  //  isa-l state (big, so on the heap)
#endif
    bool between;               //  At a member boundary: next bytes must start one
    uint64_t members;           //  Members finished in this file
    char error[TL__ERROR_MAX];  //  What went wrong
};

//  isa-l inflates about 3x as fast as zlib here (1.1 vs 0.37 GB/s out, bench/bench_source.c).
#ifdef TALLY_HAVE_ISAL
#define S_DEFAULT_ENGINE S_ISAL
#else
#define S_DEFAULT_ENGINE S_ZLIB
#endif

static s_engine_t s_pick_engine (void)
{
    const char *env = getenv ("TALLY_INFLATE");
    if (env && strcmp (env, "zlib") == 0) return S_ZLIB;
#ifdef TALLY_HAVE_ISAL
    if (env && strcmp (env, "isal") == 0) return S_ISAL;
#endif
    return S_DEFAULT_ENGINE;
}

tl__gz_t *tl__gz_new (void)
{
    tl__gz_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->engine = s_pick_engine ();
#ifdef TALLY_HAVE_ISAL
    if (self->engine == S_ISAL) {
        self->isal = calloc (1, sizeof *self->isal);
        if (!self->isal) {
            free (self);
            return NULL;
        }
        isal_inflate_init (self->isal);
        return self;
    }
#endif
    if (inflateInit2 (&self->zs, 16 + MAX_WBITS) != Z_OK) {
        free (self);
        return NULL;
    }
    self->zs_ready = true;
    return self;
}

void tl__gz_destroy (tl__gz_t **self_p)
{
    tl__gz_t *self = *self_p;
    if (!self) return;
    if (self->zs_ready) inflateEnd (&self->zs);
#ifdef TALLY_HAVE_ISAL
    free (self->isal);
#endif
    free (self);
    *self_p = NULL;
}

const char *tl__gz_engine (tl__gz_t *self)
{
    return self->engine == S_ZLIB ? "zlib" : "isal";
}

void tl__gz_begin (tl__gz_t *self)
{
    self->between = true;
    self->members = 0;
    self->error[0] = 0;
}

//  Starts decoding a member from its header.
static void s_reset (tl__gz_t *self)
{
#ifdef TALLY_HAVE_ISAL
    if (self->engine == S_ISAL) {
        isal_inflate_reset (self->isal);
        self->isal->crc_flag = ISAL_GZIP;  //  Parse the header, verify CRC and length
        return;
    }
#endif
    inflateReset (&self->zs);
}

static s_run_t s_corrupt (tl__gz_t *self, const char *why)
{
    snprintf (self->error, sizeof self->error, "corrupt gzip data (%s)", why);
    return S_RUN_ERROR;
}

//  One zlib call; avail counts are unsigned int, hence the clamps.
static s_run_t s_run_zlib (tl__gz_t *self, const uint8_t **in, size_t *in_len, uint8_t **out,
                           size_t *out_len)
{
    unsigned in_now = *in_len > UINT_MAX ? UINT_MAX : (unsigned)*in_len;
    unsigned out_now = *out_len > UINT_MAX ? UINT_MAX : (unsigned)*out_len;
    self->zs.next_in = (Bytef *)*in;
    self->zs.avail_in = in_now;
    self->zs.next_out = *out;
    self->zs.avail_out = out_now;
    int rc = inflate (&self->zs, Z_NO_FLUSH);
    *in += in_now - self->zs.avail_in;
    *in_len -= in_now - self->zs.avail_in;
    *out += out_now - self->zs.avail_out;
    *out_len -= out_now - self->zs.avail_out;
    if (rc == Z_STREAM_END) return S_RUN_MEMBER_END;
    if (rc == Z_OK || rc == Z_BUF_ERROR) return S_RUN_OK;
    if (rc == Z_MEM_ERROR) return s_corrupt (self, "out of memory");
    return s_corrupt (self, self->zs.msg ? self->zs.msg : "zlib error");
}

#ifdef TALLY_HAVE_ISAL
static const char *s_isal_strerror (int rc)
{
    switch (rc) {
    case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
        return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER:
        return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
        return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM:
        return "incorrect data check";
    case ISAL_NEED_DICT:
        return "needs a dictionary";
    default:
        return "isa-l inflate error";
    }
}

//  One isa-l call; its avail counts are 32 bits.
static s_run_t s_run_isal (tl__gz_t *self, const uint8_t **in, size_t *in_len, uint8_t **out,
                           size_t *out_len)
{
    struct inflate_state *st = self->isal;
    uint32_t in_now = *in_len > UINT32_MAX ? UINT32_MAX : (uint32_t)*in_len;
    uint32_t out_now = *out_len > UINT32_MAX ? UINT32_MAX : (uint32_t)*out_len;
    st->next_in = (uint8_t *)*in;
    st->avail_in = in_now;
    st->next_out = *out;
    st->avail_out = out_now;
    int rc = isal_inflate (st);
    //  At a member's end isa-l hands back input it read ahead, so next_in is exact
    *in += in_now - st->avail_in;
    *in_len -= in_now - st->avail_in;
    *out += out_now - st->avail_out;
    *out_len -= out_now - st->avail_out;
    if (rc != ISAL_DECOMP_OK) return s_corrupt (self, s_isal_strerror (rc));
    if (st->block_state == ISAL_BLOCK_FINISH) return S_RUN_MEMBER_END;
    return S_RUN_OK;
}
#endif

static s_run_t s_run (tl__gz_t *self, const uint8_t **in, size_t *in_len, uint8_t **out,
                      size_t *out_len)
{
#ifdef TALLY_HAVE_ISAL
    if (self->engine == S_ISAL) return s_run_isal (self, in, in_len, out, out_len);
#endif
    return s_run_zlib (self, in, in_len, out, out_len);
}

static tl__gz_status_t s_fail (tl__gz_t *self, const char *why)
{
    snprintf (self->error, sizeof self->error, "%s", why);
    return TL__GZ_ERROR;
}

//  At a member boundary: starts the next member if the input holds one. Returns
//  TL__GZ_OUTPUT_FULL to mean "go on" (a member started), or the status to return.
static tl__gz_status_t s_next_member (tl__gz_t *self, const uint8_t *in, size_t in_len,
                                      bool in_last)
{
    if (in_len == 0) return in_last ? TL__GZ_END : TL__GZ_NEED_INPUT;
    //  A lone 0x1f at the end of a block is checked by the header parser instead
    if (in[0] != 0x1f || (in_len >= 2 && in[1] != 0x8b))
        return s_fail (self,
                       self->members ? "trailing garbage after gzip member" : "not gzip data");
    if (in_len == 1 && in_last)
        return s_fail (self, "truncated gzip data (unexpected end of file)");
    s_reset (self);
    self->between = false;
    return TL__GZ_OUTPUT_FULL;
}

tl__gz_status_t tl__gz_inflate (tl__gz_t *self, const uint8_t **in, size_t *in_len, bool in_last,
                                uint8_t **out, size_t *out_len)
{
    for (;;) {
        if (self->between) {
            tl__gz_status_t status = s_next_member (self, *in, *in_len, in_last);
            if (status != TL__GZ_OUTPUT_FULL) return status;
        }
        if (*out_len == 0) return TL__GZ_OUTPUT_FULL;
        size_t in_before = *in_len, out_before = *out_len;
        s_run_t run = s_run (self, in, in_len, out, out_len);
        if (run == S_RUN_ERROR) return TL__GZ_ERROR;
        if (run == S_RUN_MEMBER_END) {
            self->between = true;
            self->members++;
            continue;
        }
        if (*out_len == 0) return TL__GZ_OUTPUT_FULL;
        if (*in_len == 0) {
            if (in_last) return s_fail (self, "truncated gzip data (unexpected end of file)");
            return TL__GZ_NEED_INPUT;
        }
        //  Input and output room left, yet nothing moved: never spin on it
        if (*in_len == in_before && *out_len == out_before)
            return s_fail (self, "corrupt gzip data (inflate made no progress)");
    }
}

const char *tl__gz_error (tl__gz_t *self)
{
    return self->error;
}
