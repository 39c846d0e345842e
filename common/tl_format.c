/*  tl_format: format names, detection from a file's first lines, and the POS-tag test
    behind the skip_pos filter. The line parsing itself lives in tl_mapper.c, where it
    is fused with the counting loop.                                                  */

#include "tl_format.h"

#include <assert.h>
#include <string.h>

//  How many complete lines detection looks at.
#define S_DETECT_LINES 20

static const char *s_names[TL_FORMAT_COUNT_] = {
    [TL_FORMAT_AUTO] = "auto",           [TL_FORMAT_NGRAM2009] = "ngram2009",
    [TL_FORMAT_NGRAM2012] = "ngram2012", [TL_FORMAT_NGRAM2020] = "ngram2020",
    [TL_FORMAT_TEXT] = "text",
};

const char *tl_format_name (tl_format_t format)
{
    assert (format >= TL_FORMAT_AUTO && format < TL_FORMAT_COUNT_);
    return s_names[format];
}

int tl_format_parse (const char *name, tl_format_t *format)
{
    assert (name);
    assert (format);
    for (int i = 0; i < TL_FORMAT_COUNT_; i++)
        if (strcmp (name, s_names[i]) == 0) {
            *format = (tl_format_t)i;
            return 0;
        }
    return -1;
}

bool tl_filter_is_none (const tl_filter_t *filter)
{
    assert (filter);
    return filter->year_min == 0 && filter->year_max == UINT32_MAX && !filter->skip_pos;
}

//  --------------------------------------------------------------------------------------
//  Detection: each line votes for the format its shape fits; a format needs a majority
//  (or all lines but one, so a single odd line among two does not flip the guess).

static bool s_all_digits (const char *p, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)(p[i] - '0') > 9) return false;
    return true;
}

//  True for "digits,digits,digits" (the 2020 year,match_count,volume_count triple).
static bool s_is_triple (const char *p, size_t len)
{
    const char *end = p + len;
    for (int part = 0; part < 3; part++) {
        const char *start = p;
        while (p < end && (unsigned char)(*p - '0') <= 9)
            p++;
        if (p == start) return false;
        if (part < 2) {
            if (p == end || *p != ',') return false;
            p++;
        }
    }
    return p == end;
}

//  The format one line (without its LF) looks like; TL_FORMAT_AUTO for an empty line.
static tl_format_t s_classify_line (const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r') len--;
    if (len == 0) return TL_FORMAT_AUTO;

    //  Field boundaries: the first 6 are enough to tell the formats apart
    const char *field[6];
    size_t field_len[6];
    size_t fields = 0;
    const char *p = line, *end = line + len;
    while (true) {
        const char *tab = memchr (p, '\t', (size_t)(end - p));
        const char *stop = tab ? tab : end;
        if (fields < 6) {
            field[fields] = p;
            field_len[fields] = (size_t)(stop - p);
        }
        fields++;
        if (!tab) break;
        p = tab + 1;
    }
    if (fields < 2 || field_len[0] == 0) return TL_FORMAT_TEXT;
    if (fields == 5 && s_all_digits (field[1], field_len[1]) &&
        s_all_digits (field[2], field_len[2]) && s_all_digits (field[3], field_len[3]) &&
        s_all_digits (field[4], field_len[4]))
        return TL_FORMAT_NGRAM2009;
    if (fields == 4 && s_all_digits (field[1], field_len[1]) &&
        s_all_digits (field[2], field_len[2]) && s_all_digits (field[3], field_len[3]))
        return TL_FORMAT_NGRAM2012;
    if (s_is_triple (field[1], field_len[1])) return TL_FORMAT_NGRAM2020;
    return TL_FORMAT_TEXT;
}

tl_format_t tl_format_detect (const char *data, size_t size)
{
    assert (data || size == 0);
    size_t votes[TL_FORMAT_COUNT_] = {0};
    size_t lines = 0;
    const char *p = data, *end = data + size;
    while (p < end && lines < S_DETECT_LINES) {
        const char *nl = memchr (p, '\n', (size_t)(end - p));
        //  A cut last line only counts when it is all there is
        if (!nl && lines > 0) break;
        const char *stop = nl ? nl : end;
        tl_format_t vote = s_classify_line (p, (size_t)(stop - p));
        if (vote != TL_FORMAT_AUTO) {
            votes[vote]++;
            lines++;
        }
        p = nl ? nl + 1 : end;
    }
    tl_format_t best = TL_FORMAT_NGRAM2009;
    for (int f = TL_FORMAT_NGRAM2012; f <= TL_FORMAT_NGRAM2020; f++)
        if (votes[f] > votes[best]) best = (tl_format_t)f;
    if (votes[best] > 0 && (votes[best] * 2 > lines || votes[best] + 1 >= lines)) return best;
    return TL_FORMAT_TEXT;
}

//  --------------------------------------------------------------------------------------
//  POS tags of the 2012 and 2020 corpora: "word_NOUN" tokens and bare "_NOUN_" tokens.

typedef struct {
    const char *suffix;  //  "_NOUN": the ending of a tagged token
    size_t len;          //  Length of suffix
} s_tag_t;

#define S_TAG(s)                                                                                   \
    {                                                                                              \
        s, sizeof (s) - 1                                                                          \
    }
static const s_tag_t s_tags[] = {
    S_TAG ("_NOUN"), S_TAG ("_VERB"), S_TAG ("_ADJ"), S_TAG ("_ADV"),
    S_TAG ("_PRON"), S_TAG ("_DET"),  S_TAG ("_ADP"), S_TAG ("_NUM"),
    S_TAG ("_CONJ"), S_TAG ("_PRT"),  S_TAG ("_X"),   S_TAG ("_."),
};
//  Bare tokens that are not a tag with an underscore appended
static const s_tag_t s_bare_extra[] = {
    S_TAG ("_ROOT_"),
    S_TAG ("_START_"),
    S_TAG ("_END_"),
};
#undef S_TAG

static bool s_token_is_tagged (const char *tok, size_t len)
{
    //  Every tag and bare token ends in '_', '.', or an upper-case letter
    if (len < 2) return false;
    for (size_t i = 0; i < sizeof s_tags / sizeof s_tags[0]; i++) {
        const s_tag_t *tag = &s_tags[i];
        //  "word_NOUN": at least one byte before the tag
        if (len > tag->len && memcmp (tok + len - tag->len, tag->suffix, tag->len) == 0)
            return true;
        //  "_NOUN_": the tag alone, closed by an underscore
        if (len == tag->len + 1 && tok[len - 1] == '_' && memcmp (tok, tag->suffix, tag->len) == 0)
            return true;
    }
    for (size_t i = 0; i < sizeof s_bare_extra / sizeof s_bare_extra[0]; i++)
        if (len == s_bare_extra[i].len && memcmp (tok, s_bare_extra[i].suffix, len) == 0)
            return true;
    return false;
}

bool tl_key_is_pos_tagged (const char *key, size_t len)
{
    assert (key || len == 0);
    //  Cheap exit for the common untagged key: no underscore at all
    if (len == 0 || !memchr (key, '_', len)) return false;
    const char *p = key, *end = key + len;
    while (p < end) {
        const char *space = memchr (p, ' ', (size_t)(end - p));
        const char *stop = space ? space : end;
        if (s_token_is_tagged (p, (size_t)(stop - p))) return true;
        p = space ? space + 1 : end;
    }
    return false;
}

bool tl_utf8_valid (const void *data, size_t n)
{
    const unsigned char *s = data;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        for (size_t j = 1; j < len; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}
