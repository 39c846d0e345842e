/*  tl_mapper: the worker's hot loop, from whole lines of one format to a partial
    dictionary (key -> sum of counts).

    Why it is shaped this way: in n-gram files a key's years sit on consecutive lines
    (about 50 lines per key in the 2012 1-grams), so the loop keeps a "run" (the current
    key, pointing into data, and its running sum) and touches the table only when the key
    changes. A new line first tries the run's key as a prefix ("same bytes, then TAB"),
    which settles most lines with one short memcmp and no scan for the TAB. Numbers are
    parsed in one pass that also validates them; a line is only rescanned (for its LF)
    when it turns out bad. The parsing loop is written once and specialised per format
    and per "filter or not" by always-inlined constant arguments.                      */

#include "tl_mapper.h"

#include <assert.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define S_INLINE static inline __attribute__ ((always_inline))

//  The current run of consecutive good lines with one key.
typedef struct {
    const char *key;  //  Key bytes (inside data); NULL before the first good line
    size_t len;       //  Key length in bytes
    uint64_t sum;     //  Sum of the counts of the run's lines that passed the filter
    bool kept;        //  At least one line passed the filter (else nothing to add)
    bool tagged;      //  Key is POS-tagged (only worked out when skip_pos is set)
    bool saturated;   //  sum stopped at UINT64_MAX
} s_run_t;

//  Per-call counters, kept in locals and added to the caller's stats once at the end.
typedef struct {
    uint64_t lines;      //  Lines seen
    uint64_t bad;        //  Malformed lines
    uint64_t filtered;   //  Lines left out by the filter
    uint64_t overflows;  //  Saturated totals
} s_counts_t;

//  Returns the first TAB or LF at or after p, or end. One pass for both bytes (two
//  memchr calls would read a key twice, and memchr for TAB alone would run on through
//  later lines when a line has none).
S_INLINE const char *s_find_tab_or_lf (const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i tab = _mm_set1_epi8 ('\t');
    const __m128i lf = _mm_set1_epi8 ('\n');
    while (end - p >= 16) {
        __m128i bytes = _mm_loadu_si128 ((const __m128i *)p);
        unsigned mask = (unsigned)_mm_movemask_epi8 (
            _mm_or_si128 (_mm_cmpeq_epi8 (bytes, tab), _mm_cmpeq_epi8 (bytes, lf)));
        if (mask) return p + __builtin_ctz (mask);
        p += 16;
    }
#endif
    while (p < end && *p != '\t' && *p != '\n')
        p++;
    return p;
}

//  The careful path of s_parse_u64: no digits, or enough of them that the value may
//  pass 64 bits (leading zeros are fine, so the digit count alone does not decide).
static const char *s_parse_u64_slow (const char *start, const char *stop, uint64_t *value)
{
    if (start == stop) return NULL;
    uint64_t v = 0;
    for (const char *p = start; p < stop; p++)
        if (__builtin_mul_overflow (v, 10, &v) ||
            __builtin_add_overflow (v, (uint64_t)(*p - '0'), &v))
            return NULL;
    *value = v;
    return stop;
}

//  Parses plain decimal digits at p (no sign, no spaces, at least one) into *value.
//  Returns the first byte after them, or NULL when there are none or the value does
//  not fit 64 bits. Up to 19 digits cannot overflow, so the loop itself never checks.
S_INLINE const char *s_parse_u64 (const char *p, const char *end, uint64_t *value)
{
    const char *start = p;
    uint64_t v = 0;
    unsigned digit;
    while (p < end && (digit = (unsigned)(unsigned char)*p - '0') <= 9) {
        v = v * 10 + digit;
        p++;
    }
    //  0 digits wraps to a huge size, so one test covers "none" and "20 or more"
    if (__builtin_expect ((size_t)(p - start) - 1 >= 19, 0))
        return s_parse_u64_slow (start, p, value);
    *value = v;
    return p;
}

//  Returns the start of the next line when q ends the line (LF, CR LF, or the end of
//  data, with or without a CR), or NULL when the line goes on: then it is malformed.
S_INLINE const char *s_line_end (const char *q, const char *end)
{
    if (q == end) return end;
    if (*q == '\n') return q + 1;
    if (*q == '\r') {
        if (q + 1 == end) return end;
        if (q[1] == '\n') return q + 2;
    }
    return NULL;
}

S_INLINE uint64_t s_add_saturating (uint64_t a, uint64_t b, bool *saturated)
{
    uint64_t sum;
    if (__builtin_add_overflow (a, b, &sum)) {
        *saturated = true;
        return UINT64_MAX;
    }
    return sum;
}

//  Hands the run's sum to the table. Returns 0, or -1 when the table is out of memory.
static int s_flush (tl_table_t *table, const s_run_t *run, s_counts_t *counts)
{
    if (!run->kept) return 0;
    int rc = tl_table_add (table, run->key, run->len, run->sum);
    if (rc < 0) return -1;
    //  One saturated key counts once, whether the run or the table total saturated
    if (rc == 1 || run->saturated) counts->overflows++;
    return 0;
}

S_INLINE bool s_year_kept (uint64_t year, const tl_filter_t *filter)
{
    return year >= filter->year_min && year <= filter->year_max;
}

//  Parses the fields after the key of a 2009 or 2012 line (q: just past the key's TAB).
//  Sets *year and *count; returns the start of the next line, or NULL when malformed.
S_INLINE const char *s_parse_columns (const char *q, const char *end, bool page_column,
                                      uint64_t *year, uint64_t *count)
{
    uint64_t ignored;
    q = s_parse_u64 (q, end, year);
    if (!q || q == end || *q != '\t' || *year > UINT32_MAX) return NULL;
    q = s_parse_u64 (q + 1, end, count);
    if (!q || q == end || *q != '\t') return NULL;
    if (page_column) {
        q = s_parse_u64 (q + 1, end, &ignored);
        if (!q || q == end || *q != '\t') return NULL;
    }
    q = s_parse_u64 (q + 1, end, &ignored);
    if (!q) return NULL;
    return s_line_end (q, end);
}

//  Parses the triples of a 2020 line (q: just past the key's TAB). Sets *value to the
//  sum of the match counts of the triples the filter keeps (saturating, then sets
//  *saturated) and *kept when there was at least one. Returns the start of the next
//  line, or NULL when malformed.
S_INLINE const char *s_parse_triples (const char *q, const char *end, bool filtering,
                                      const tl_filter_t *filter, uint64_t *value, bool *kept,
                                      bool *saturated)
{
    uint64_t year, match, volume;
    *value = 0;
    *kept = false;
    while (true) {
        q = s_parse_u64 (q, end, &year);
        if (!q || q == end || *q != ',' || year > UINT32_MAX) return NULL;
        q = s_parse_u64 (q + 1, end, &match);
        if (!q || q == end || *q != ',') return NULL;
        q = s_parse_u64 (q + 1, end, &volume);
        if (!q) return NULL;
        if (!filtering || s_year_kept (year, filter)) {
            *value = s_add_saturating (*value, match, saturated);
            *kept = true;
        }
        if (q == end || *q != '\t') break;
        q++;
    }
    return s_line_end (q, end);
}

//  The n-gram loop, specialised by the constant format and filtering arguments.
S_INLINE int s_map_ngram (tl_table_t *table, tl_format_t format, bool filtering,
                          const tl_filter_t *filter, const char *data, size_t size,
                          tl_map_stats_t *stats)
{
    const char *p = data, *end = data + size;
    s_run_t run = {0};
    s_counts_t counts = {0};
    int rc = 0;
    while (p < end) {
        const char *line = p;
        counts.lines++;

        //  The key: most lines repeat the run's key, so try that before scanning
        size_t len;
        bool same;
        if (run.key && (size_t)(end - p) > run.len && p[run.len] == '\t' &&
            memcmp (p, run.key, run.len) == 0) {
            len = run.len;
            same = true;
        } else {
            const char *tab = s_find_tab_or_lf (p, end);
            if (tab == end || *tab != '\t' || tab == p || (size_t)(tab - p) > TL_KEY_MAX) goto bad;
            len = (size_t)(tab - p);
            same = false;
        }

        //  The numbers; all of the line is checked before the filter looks at it
        const char *next;
        uint64_t value;
        bool kept = true, saturated = false;
        if (format == TL_FORMAT_NGRAM2020)
            next = s_parse_triples (p + len + 1, end, filtering, filter, &value, &kept, &saturated);
        else {
            uint64_t year;
            next = s_parse_columns (p + len + 1, end, format == TL_FORMAT_NGRAM2009, &year, &value);
            if (filtering) kept = s_year_kept (year, filter);
        }
        if (!next) goto bad;

        if (!same) {
            if (s_flush (table, &run, &counts)) {
                rc = -1;
                break;
            }
            run = (s_run_t){.key = p, .len = len};
            if (filtering && filter->skip_pos) run.tagged = tl_key_is_pos_tagged (p, len);
        }
        if (filtering && (run.tagged || !kept))
            counts.filtered++;
        else {
            run.sum = s_add_saturating (run.sum, value, &run.saturated);
            run.saturated |= saturated;
            run.kept = true;
        }
        p = next;
        continue;

    bad:
        counts.bad++;
        if (stats->bad_samples < TL_BAD_SAMPLES)
            stats->bad_offset[stats->bad_samples++] = (uint64_t)(line - data);
        const char *lf = memchr (line, '\n', (size_t)(end - line));
        p = lf ? lf + 1 : end;
    }
    if (rc == 0 && s_flush (table, &run, &counts)) rc = -1;
    stats->lines += counts.lines;
    stats->bad_lines += counts.bad;
    stats->filtered += counts.filtered;
    stats->overflows += counts.overflows;
    return rc;
}

static int s_map_2009 (tl_table_t *table, const tl_filter_t *filter, const char *data, size_t size,
                       tl_map_stats_t *stats)
{
    return s_map_ngram (table, TL_FORMAT_NGRAM2009, false, filter, data, size, stats);
}

static int s_map_2009_filtered (tl_table_t *table, const tl_filter_t *filter, const char *data,
                                size_t size, tl_map_stats_t *stats)
{
    return s_map_ngram (table, TL_FORMAT_NGRAM2009, true, filter, data, size, stats);
}

static int s_map_2012 (tl_table_t *table, const tl_filter_t *filter, const char *data, size_t size,
                       tl_map_stats_t *stats)
{
    return s_map_ngram (table, TL_FORMAT_NGRAM2012, false, filter, data, size, stats);
}

static int s_map_2012_filtered (tl_table_t *table, const tl_filter_t *filter, const char *data,
                                size_t size, tl_map_stats_t *stats)
{
    return s_map_ngram (table, TL_FORMAT_NGRAM2012, true, filter, data, size, stats);
}

static int s_map_2020 (tl_table_t *table, const tl_filter_t *filter, const char *data, size_t size,
                       tl_map_stats_t *stats)
{
    return s_map_ngram (table, TL_FORMAT_NGRAM2020, false, filter, data, size, stats);
}

static int s_map_2020_filtered (tl_table_t *table, const tl_filter_t *filter, const char *data,
                                size_t size, tl_map_stats_t *stats)
{
    return s_map_ngram (table, TL_FORMAT_NGRAM2020, true, filter, data, size, stats);
}

#ifndef __SSE2__
//  White space for text: the C locale's isspace, as a table.
static const bool s_space[256] = {
    [' '] = true, ['\t'] = true, ['\n'] = true, ['\r'] = true, ['\v'] = true, ['\f'] = true,
};
#endif

//  Text: every word counts 1. Lines are counted for progress only; none is ever bad.
//  A "word" longer than TL_KEY_MAX cannot be a key and is left out.
//
//  The words are found 64 bytes at a time: a bit mask of the white space in the block
//  (SSE2 compares where there are, else the table), from which the starts and ends of
//  words are bits found by counting trailing zeros, not bytes tested one by one (a byte
//  loop mispredicts a branch at every word boundary, two per word). Each word is hashed
//  and its slot prefetched S_AHEAD words before it is added, so that the cache misses
//  of the rare words (a chunk's table is larger than L2) overlap instead of queueing.
//  Measured with bench_mapper on the bench/peers text: 140-160 MB/s before, 210-300
//  after (a noisy machine; about 1.6x).
#define S_AHEAD 8  //  Words hashed and prefetched before they are added (a power of 2)

typedef struct {
    tl_table_t *table;
    struct {
        const unsigned char *key;
        size_t len;
        uint64_t hash;
    } ring[S_AHEAD];
    size_t n;  //  Words prepared so far; the last S_AHEAD of them are in ring
    uint64_t overflows;
    int rc;
} s_words_t;

//  Adds the word prepared S_AHEAD words ago, if any.
S_INLINE void s_word_add (s_words_t *w, size_t i)
{
    int added =
        tl_table_add_prepared (w->table, w->ring[i].hash, w->ring[i].key, w->ring[i].len, 1);
    if (added < 0)
        w->rc = -1;
    else
        w->overflows += (uint64_t)added;
}

S_INLINE void s_word (s_words_t *w, const unsigned char *start, const unsigned char *stop)
{
    size_t len = (size_t)(stop - start);
    if (len > TL_KEY_MAX) return;
    size_t i = w->n++ & (S_AHEAD - 1);
    if (w->n > S_AHEAD) s_word_add (w, i);
    w->ring[i].key = start;
    w->ring[i].len = len;
    w->ring[i].hash = tl_table_prepare (w->table, start, len);
}

//  Bit i set when block[i] is white space; lines gets the LFs of the block.
S_INLINE uint64_t s_space_mask (const unsigned char *block, uint64_t *lines)
{
#ifdef __SSE2__
    uint64_t space = 0, lf = 0;
    const __m128i sp = _mm_set1_epi8 (' '), nl = _mm_set1_epi8 ('\n');
    const __m128i nine = _mm_set1_epi8 (9), four = _mm_set1_epi8 (4);
    for (int i = 0; i < 4; i++) {
        __m128i b = _mm_loadu_si128 ((const __m128i *)(block + 16 * i));
        //  TAB LF VT FF CR are 9..13: b - 9 <= 4, unsigned
        __m128i t = _mm_sub_epi8 (b, nine);
        __m128i ctl = _mm_cmpeq_epi8 (_mm_min_epu8 (t, four), t);
        __m128i s = _mm_or_si128 (ctl, _mm_cmpeq_epi8 (b, sp));
        space |= (uint64_t)(unsigned)_mm_movemask_epi8 (s) << (16 * i);
        lf |= (uint64_t)(unsigned)_mm_movemask_epi8 (_mm_cmpeq_epi8 (b, nl)) << (16 * i);
    }
    //  No POPCNT in baseline x86-64: count the bits of the (usually one or two) LFs
    while (lf) {
        lf &= lf - 1;
        (*lines)++;
    }
    return space;
#else
    uint64_t space = 0;
    for (int i = 0; i < 64; i++) {
        space |= (uint64_t)s_space[block[i]] << i;
        *lines += block[i] == '\n';
    }
    return space;
#endif
}

static int s_map_text (tl_table_t *table, const char *data, size_t size, tl_map_stats_t *stats)
{
    const unsigned char *p = (const unsigned char *)data, *end = p + size;
    s_words_t w = {.table = table};
    uint64_t lines = 0;
    const unsigned char *start = NULL;  //  The word being read, when one is
    uint64_t word_before = 0;           //  1 when the byte before the block is a word's
    unsigned char tail[64];
    while (p < end && w.rc == 0) {
        const unsigned char *block = p;
        size_t have = (size_t)(end - p);
        if (have < 64) {
            //  The last bytes, padded with spaces (words still point into data)
            memset (tail, ' ', sizeof tail);
            memcpy (tail, p, have);
            block = tail;
        }
        uint64_t word = ~s_space_mask (block, &lines);
        uint64_t shifted = (word << 1) | word_before;
        uint64_t starts = word & ~shifted, ends = ~word & shifted;
        word_before = word >> 63;
        for (;;) {
            if (start) {
                if (!ends) break;
                s_word (&w, start, p + __builtin_ctzll (ends));
                ends &= ends - 1;
                start = NULL;
            }
            if (!starts) break;
            start = p + __builtin_ctzll (starts);
            starts &= starts - 1;
        }
        p += have < 64 ? have : 64;
    }
    if (start && w.rc == 0) s_word (&w, start, end);
    for (size_t k = w.n > S_AHEAD ? w.n - S_AHEAD : 0; k < w.n && w.rc == 0; k++)
        s_word_add (&w, k & (S_AHEAD - 1));
    //  A last line without its LF still counts
    if (w.rc == 0 && size > 0 && data[size - 1] != '\n') lines++;
    stats->lines += lines;
    stats->overflows += w.overflows;
    return w.rc;
}

int tl_map (tl_table_t *table, tl_format_t format, const tl_filter_t *filter, const char *data,
            size_t size, tl_map_stats_t *stats)
{
    assert (table);
    assert (stats);
    assert (data || size == 0);
    assert (format > TL_FORMAT_AUTO && format < TL_FORMAT_COUNT_);
    if (size == 0) return 0;
    //  No filter given behaves as TL_FILTER_NONE
    tl_filter_t none = TL_FILTER_NONE;
    if (!filter) filter = &none;
    bool filtering = !tl_filter_is_none (filter);
    switch (format) {
    case TL_FORMAT_NGRAM2009:
        return filtering ? s_map_2009_filtered (table, filter, data, size, stats)
                         : s_map_2009 (table, filter, data, size, stats);
    case TL_FORMAT_NGRAM2012:
        return filtering ? s_map_2012_filtered (table, filter, data, size, stats)
                         : s_map_2012 (table, filter, data, size, stats);
    case TL_FORMAT_NGRAM2020:
        return filtering ? s_map_2020_filtered (table, filter, data, size, stats)
                         : s_map_2020 (table, filter, data, size, stats);
    case TL_FORMAT_TEXT:
        return s_map_text (table, data, size, stats);
    default:
        return -1;
    }
}
