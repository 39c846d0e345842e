/*  tl_format: the input formats Tally reads, their detection and line filters.

    Google Books Ngram 2009  ngram TAB year TAB match_count TAB page_count TAB volume_count
    Google Books Ngram 2012  ngram TAB year TAB match_count TAB volume_count
    Google Books Ngram 2020  ngram TAB year,match_count,volume_count TAB year,match,volume ...
    text                     words separated by white space, each counting 1

    The key of an n-gram line is the exact bytes before the first TAB (spaces allowed,
    any bytes); its value is match_count (summed over the triples for 2020).          */

#ifndef TL_FORMAT_H_INCLUDED
#define TL_FORMAT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TL_FORMAT_AUTO = 0,   //  Detect from the data
    TL_FORMAT_NGRAM2009,  //  5 columns
    TL_FORMAT_NGRAM2012,  //  4 columns
    TL_FORMAT_NGRAM2020,  //  key, then year,match,volume triples
    TL_FORMAT_TEXT,       //  white-space separated words
    TL_FORMAT_COUNT_      //  Number of values (not a format)
} tl_format_t;

//  Optional filters on n-gram lines (ignored for text).
typedef struct {
    uint32_t year_min;  //  Keep years >= year_min (0: no lower bound)
    uint32_t year_max;  //  Keep years <= year_max (UINT32_MAX: no upper bound)
    bool skip_pos;      //  Leave out POS-tagged keys (word_NOUN, _NOUN_, ...)
} tl_filter_t;

//  How many malformed lines' positions are kept per chunk (mapped, then reported).
#define TL_BAD_SAMPLES 4

//  A filter that keeps everything.
#define TL_FILTER_NONE ((tl_filter_t){0, UINT32_MAX, false})

//  Name of a format: "auto", "ngram2009", "ngram2012", "ngram2020", "text".
const char *tl_format_name (tl_format_t format);

//  Parses a format name into *format. Returns 0, or -1 for an unknown name.
int tl_format_parse (const char *name, tl_format_t *format);

//  Guesses the format from the first lines of data (a file's first bytes; the last
//  line may be cut). Never returns TL_FORMAT_AUTO: text when nothing else fits.
tl_format_t tl_format_detect (const char *data, size_t size);

//  True when the filter keeps everything (so the mapper can skip checking it).
bool tl_filter_is_none (const tl_filter_t *filter);

//  True when an n-gram key holds a POS-tagged token: a token (space-separated) ending
//  in _NOUN, _VERB, _ADJ, _ADV, _PRON, _DET, _ADP, _NUM, _CONJ, _PRT, _X or _. after at
//  least one byte, or a bare tag token such as _NOUN_, _ROOT_, _START_, _END_.
bool tl_key_is_pos_tagged (const char *key, size_t len);

//  Whether data[0..n) is well-formed UTF-8 (as far as lead and continuation bytes go:
//  what a JSON writer needs to know before it passes bytes through unescaped).
bool tl_utf8_valid (const void *data, size_t n);

#endif
