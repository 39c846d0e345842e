/*  test_mapper: tl_map over each format's good lines, every kind of malformed line,
    CRLF, cut last lines, runs that cross map calls, overflow, filters, and the real
    sample data (and awk rewrites of it into the other formats) checked against totals
    computed independently by awk.                                                      */

#include <criterion/criterion.h>
#include "tl_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_mapper.h"

//  One expected total.
typedef struct {
    const char *key;  //  Key (NUL-terminated); NULL ends a list
    uint64_t count;   //  Its expected total
} s_total_t;

#define S_MAX_TOTALS 8

//  Maps a NUL-terminated string in one call into table, adding to stats.
static int s_map (tl_table_t *table, tl_format_t format, const tl_filter_t *filter,
                  const char *data, tl_map_stats_t *stats)
{
    return tl_map (table, format, filter, data, strlen (data), stats);
}

//  Asserts that table holds exactly the listed totals.
static void s_assert_totals (tl_table_t *table, const s_total_t *totals, const char *name)
{
    size_t expected = 0;
    for (const s_total_t *t = totals; t->key; t++, expected++) {
        size_t len = strlen (t->key);
        uint64_t count = 0;
        cr_assert (tl_table_get (table, t->key, len, &count), "%s: key '%.*s' missing", name,
                   (int)len, t->key);
        cr_assert_eq (count, t->count, "%s: key '%.*s' is %llu, expected %llu", name, (int)len,
                      t->key, (unsigned long long)count, (unsigned long long)t->count);
    }
    cr_assert_eq (tl_table_size (table), expected, "%s: %zu keys, expected %zu", name,
                  tl_table_size (table), expected);
}

//  --------------------------------------------------------------------------------------
//  Good lines

typedef struct {
    const char *name;                    //  What the case shows
    tl_format_t format;                  //  Format to map with
    const char *data;                    //  Input
    uint64_t lines;                      //  Expected stats->lines
    s_total_t totals[S_MAX_TOTALS + 1];  //  Expected table, NULL-terminated
} s_good_case_t;

static const s_good_case_t s_good_cases[] = {
    {"2012 runs",
     TL_FORMAT_NGRAM2012,
     "a\t1999\t5\t3\na\t2000\t7\t2\nb\t2000\t1\t1\nc\t1800\t0\t0\n",
     4,
     {{"a", 12}, {"b", 1}, {"c", 0}}},
    {"2012 key seen again later",
     TL_FORMAT_NGRAM2012,
     "a\t1999\t5\t3\nb\t2000\t1\t1\na\t2000\t7\t2\n",
     3,
     {{"a", 12}, {"b", 1}}},
    {"2012 prefix keys",
     TL_FORMAT_NGRAM2012,
     "ab\t1\t1\t1\na\t1\t2\t1\nab\t1\t4\t1\nabc\t1\t8\t1\na\t1\t16\t1\n",
     5,
     {{"a", 18}, {"ab", 5}, {"abc", 8}}},
    {"2012 multi-word and odd bytes",
     TL_FORMAT_NGRAM2012,
     "the cat\t2000\t3\t1\nthe cat\t2001\t4\t1\n the  cat \t2000\t1\t1\nx\ry\t1\t2\t1\n"
     "\xc3\xa9t\xc3\xa9\t1\t5\t1\na,b\t1\t6\t1\n",
     6,
     {{"the cat", 7}, {" the  cat ", 1}, {"x\ry", 2}, {"\xc3\xa9t\xc3\xa9", 5}, {"a,b", 6}}},
    {"2012 UINT64_MAX and leading zeros",
     TL_FORMAT_NGRAM2012,
     "m\t2000\t18446744073709551615\t18446744073709551615\n"
     "z\t0000000000000000002000\t000000000000000000000000005\t01\n"
     "y\t4294967295\t0\t0\ny\t0\t1\t0\n",
     4,
     {{"m", UINT64_MAX}, {"z", 5}, {"y", 1}}},
    {"2012 CRLF",
     TL_FORMAT_NGRAM2012,
     "a\t1999\t5\t3\r\na\t2000\t7\t2\r\nb\t2000\t1\t1\r\n",
     3,
     {{"a", 12}, {"b", 1}}},
    {"2012 last line without LF",
     TL_FORMAT_NGRAM2012,
     "a\t1999\t5\t3\nb\t2000\t1\t1",
     2,
     {{"a", 5}, {"b", 1}}},
    {"2012 last line CR without LF",
     TL_FORMAT_NGRAM2012,
     "a\t1999\t5\t3\r\nb\t2000\t1\t1\r",
     2,
     {{"a", 5}, {"b", 1}}},
    {"2012 single line", TL_FORMAT_NGRAM2012, "only\t2000\t42\t1", 1, {{"only", 42}}},
    {"2009 runs",
     TL_FORMAT_NGRAM2009,
     "a\t1999\t5\t4\t3\na\t2000\t7\t9\t2\nb\t2000\t1\t1\t1\nthe cat\t1\t2\t2\t2\n",
     4,
     {{"a", 12}, {"b", 1}, {"the cat", 2}}},
    {"2009 UINT64_MAX",
     TL_FORMAT_NGRAM2009,
     "m\t2000\t18446744073709551615\t18446744073709551615\t18446744073709551615\n",
     1,
     {{"m", UINT64_MAX}}},
    {"2009 CRLF, no final LF",
     TL_FORMAT_NGRAM2009,
     "a\t1999\t5\t4\t3\r\nb\t2000\t1\t1\t1",
     2,
     {{"a", 5}, {"b", 1}}},
    {"2020 triples",
     TL_FORMAT_NGRAM2020,
     "a\t1999,5,3\t2000,7,2\t2001,1,1\nb\t2000,4,1\nthe cat\t1,2,2\t2,3,3\n",
     3,
     {{"a", 13}, {"b", 4}, {"the cat", 5}}},
    {"2020 key on consecutive lines",
     TL_FORMAT_NGRAM2020,
     "a\t1999,5,3\na\t2000,7,2\n",
     2,
     {{"a", 12}}},
    {"2020 UINT64_MAX",
     TL_FORMAT_NGRAM2020,
     "m\t2000,18446744073709551615,18446744073709551615\n",
     1,
     {{"m", UINT64_MAX}}},
    {"2020 CRLF, no final LF",
     TL_FORMAT_NGRAM2020,
     "a\t1999,5,3\t2000,1,1\r\nb\t2000,1,1",
     2,
     {{"a", 6}, {"b", 1}}},
    {"text words",
     TL_FORMAT_TEXT,
     "the cat sat on the mat\nthe end\n",
     2,
     {{"the", 3}, {"cat", 1}, {"sat", 1}, {"on", 1}, {"mat", 1}, {"end", 1}}},
    {"text all white space",
     TL_FORMAT_TEXT,
     "  a\tb\r\nc\vd\fa  \n\n\r\n\t\n",
     5,
     {{"a", 2}, {"b", 1}, {"c", 1}, {"d", 1}}},
    {"text last line without LF", TL_FORMAT_TEXT, "a b\nb", 2, {{"a", 1}, {"b", 2}}},
    {"text empty lines count", TL_FORMAT_TEXT, "\n\n\nx", 4, {{"x", 1}}},
    {"text only white space", TL_FORMAT_TEXT, " \t ", 1, {{NULL, 0}}},
    {"text n-gram shaped",
     TL_FORMAT_TEXT,
     "a\t1999\t5\t3\n",
     1,
     {{"a", 1}, {"1999", 1}, {"5", 1}, {"3", 1}}},
    {"text bytes",
     TL_FORMAT_TEXT,
     "\xc3\xa9t\xc3\xa9 caf\xc3\xa9 x_NOUN\n",
     1,
     {{"\xc3\xa9t\xc3\xa9", 1}, {"caf\xc3\xa9", 1}, {"x_NOUN", 1}}},
};

Test (mapper, good_lines)
{
    tl_table_t *table = tl_table_new (0);
    cr_assert (table);
    for (size_t i = 0; i < sizeof s_good_cases / sizeof s_good_cases[0]; i++) {
        const s_good_case_t *c = &s_good_cases[i];
        tl_table_clear (table);
        tl_map_stats_t stats = {0};
        tl_filter_t none = TL_FILTER_NONE;
        cr_assert_eq (s_map (table, c->format, &none, c->data, &stats), 0, "%s", c->name);
        s_assert_totals (table, c->totals, c->name);
        cr_assert_eq (stats.lines, c->lines, "%s: %llu lines", c->name,
                      (unsigned long long)stats.lines);
        cr_assert_eq (stats.bad_lines, 0, "%s: %llu bad", c->name,
                      (unsigned long long)stats.bad_lines);
        cr_assert_eq (stats.bad_samples, 0, "%s", c->name);
        cr_assert_eq (stats.filtered, 0, "%s", c->name);
        cr_assert_eq (stats.overflows, 0, "%s", c->name);
    }
    tl_table_destroy (&table);
    cr_assert_null (table);
}

Test (mapper, nul_in_key)
{
    static const char data[] = "a\0b\t2000\t3\t1\na\0b\t2001\t4\t1\na\t2000\t1\t1\n";
    tl_table_t *table = tl_table_new (0);
    tl_map_stats_t stats = {0};
    cr_assert_eq (tl_map (table, TL_FORMAT_NGRAM2012, NULL, data, sizeof data - 1, &stats), 0);
    uint64_t count = 0;
    cr_assert (tl_table_get (table, "a\0b", 3, &count));
    cr_assert_eq (count, 7);
    cr_assert (tl_table_get (table, "a", 1, &count));
    cr_assert_eq (count, 1);
    cr_assert_eq (tl_table_size (table), 2);
    cr_assert_eq (stats.lines, 3);
    tl_table_destroy (&table);
}

Test (mapper, empty_input)
{
    tl_table_t *table = tl_table_new (0);
    for (int f = TL_FORMAT_NGRAM2009; f < TL_FORMAT_COUNT_; f++) {
        tl_map_stats_t stats = {0};
        cr_assert_eq (tl_map (table, (tl_format_t)f, NULL, "", 0, &stats), 0);
        cr_assert_eq (stats.lines, 0);
        cr_assert_eq (tl_table_size (table), 0);
    }
    tl_table_destroy (&table);
}

//  --------------------------------------------------------------------------------------
//  Malformed lines: each sits between good lines of keys "aa" and "bb"; it must be
//  counted bad at its offset and change nothing else.

typedef struct {
    tl_format_t format;  //  Format of the surrounding lines
    const char *line;    //  The malformed line, with its LF
    const char *why;     //  What is wrong with it
} s_bad_case_t;

static const s_bad_case_t s_bad_cases[] = {
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\n", "too few columns (3)"},
    {TL_FORMAT_NGRAM2012, "x\t2000\n", "too few columns (2)"},
    {TL_FORMAT_NGRAM2012, "x\n", "no TAB"},
    {TL_FORMAT_NGRAM2012, "aa\n", "no TAB, run key"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t1\t9\n", "too many columns (5)"},
    {TL_FORMAT_NGRAM2012, "aa\t2000\t5\t1\t\n", "too many columns (empty 5th), run key"},
    {TL_FORMAT_NGRAM2012, "x\t+2000\t5\t1\n", "sign in year"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t-5\t1\n", "minus in count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t+5\t1\n", "plus in count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t-1\n", "minus in volume count"},
    {TL_FORMAT_NGRAM2012, "x\t 2000\t5\t1\n", "space before year"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t 5\t1\n", "space before count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5 \t1\n", "space after count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t1 \n", "space after volume count"},
    {TL_FORMAT_NGRAM2012, "aa\t2000\t5\t1 \n", "space at the end, run key"},
    {TL_FORMAT_NGRAM2012, "x\t20a0\t5\t1\n", "letter in year"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5x\t1\n", "letter in count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\tone\n", "letters in volume count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t0x5\t1\n", "hex count"},
    {TL_FORMAT_NGRAM2012, "x\t\t5\t1\n", "empty year"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t\t1\n", "empty count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t\n", "empty volume count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t18446744073709551616\t1\n", "count UINT64_MAX + 1"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t99999999999999999999\t1\n", "20-digit count"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t18446744073709551616\n", "volume count past 64 bits"},
    {TL_FORMAT_NGRAM2012, "aa\t2000\t123456789012345678901\t1\n", "21-digit count, run key"},
    {TL_FORMAT_NGRAM2012, "x\t4294967296\t5\t1\n", "year past 32 bits"},
    {TL_FORMAT_NGRAM2012, "x\t99999999999999999999\t5\t1\n", "year past 64 bits"},
    {TL_FORMAT_NGRAM2012, "\t2000\t5\t1\n", "empty key"},
    {TL_FORMAT_NGRAM2012, "\n", "empty line"},
    {TL_FORMAT_NGRAM2012, "\r\n", "empty CRLF line"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\r\t1\n", "CR inside"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t1\r\r\n", "two CRs"},
    {TL_FORMAT_NGRAM2012, "x\t2000,5,1\n", "2020 line"},
    {TL_FORMAT_NGRAM2012, "x\t2000\t5\t4\t1\n", "2009 line"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5\t1\n", "too few columns (4)"},
    {TL_FORMAT_NGRAM2009, "x\t2000\n", "too few columns (2)"},
    {TL_FORMAT_NGRAM2009, "x\n", "no TAB"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5\t1\t1\t1\n", "too many columns (6)"},
    {TL_FORMAT_NGRAM2009, "x\t-2000\t5\t1\t1\n", "sign in year"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t+5\t1\t1\n", "sign in count"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5\t-1\t1\n", "sign in page count"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5 \t1\t1\n", "space in count"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5\t1\t 1\n", "space in volume count"},
    {TL_FORMAT_NGRAM2009, "x\t2000\tfive\t1\t1\n", "letters in count"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5\tp\t1\n", "letter in page count"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t5\t\t1\n", "empty page count"},
    {TL_FORMAT_NGRAM2009, "x\t\t5\t1\t1\n", "empty year"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t18446744073709551616\t1\t1\n", "count past 64 bits"},
    {TL_FORMAT_NGRAM2009, "x\t2000\t1\t99999999999999999999\t1\n", "page count past 64 bits"},
    {TL_FORMAT_NGRAM2009, "x\t4294967296\t5\t1\t1\n", "year past 32 bits"},
    {TL_FORMAT_NGRAM2009, "\t2000\t5\t1\t1\n", "empty key"},
    {TL_FORMAT_NGRAM2009, "\n", "empty line"},
    {TL_FORMAT_NGRAM2020, "x\n", "no TAB"},
    {TL_FORMAT_NGRAM2020, "x\t\n", "no triple"},
    {TL_FORMAT_NGRAM2020, "x\t2000\n", "one number"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5\n", "two numbers"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5,1,7\n", "four numbers"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5,1\t\n", "empty last triple"},
    {TL_FORMAT_NGRAM2020, "aa\t2000,5,1\t2001,5\n", "short second triple, run key"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5,1 2001,5,1\n", "triples split by a space"},
    {TL_FORMAT_NGRAM2020, "x\t2000;5;1\n", "wrong separator"},
    {TL_FORMAT_NGRAM2020, "x\t-2000,5,1\n", "sign in year"},
    {TL_FORMAT_NGRAM2020, "x\t2000,+5,1\n", "sign in count"},
    {TL_FORMAT_NGRAM2020, "x\t2000, 5,1\n", "space in count"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5a,1\n", "letter in count"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5,v\n", "letter in volume count"},
    {TL_FORMAT_NGRAM2020, "x\t,5,1\n", "empty year"},
    {TL_FORMAT_NGRAM2020, "x\t2000,,1\n", "empty count"},
    {TL_FORMAT_NGRAM2020, "x\t2000,5,\n", "empty volume count"},
    {TL_FORMAT_NGRAM2020, "x\t2000,18446744073709551616,1\n", "count past 64 bits"},
    {TL_FORMAT_NGRAM2020, "x\t1,1,1\t2000,99999999999999999999,1\n", "second count past 64 bits"},
    {TL_FORMAT_NGRAM2020, "x\t4294967296,5,1\n", "year past 32 bits"},
    {TL_FORMAT_NGRAM2020, "x\t2000\t5\t1\n", "2012 line"},
    {TL_FORMAT_NGRAM2020, "\t2000,5,1\n", "empty key"},
    {TL_FORMAT_NGRAM2020, "\n", "empty line"},
};

//  The good lines around a malformed one, per format: aa 7 before; aa 3 and bb 5 after.
static void s_good_around (tl_format_t format, const char **before, const char **after)
{
    switch (format) {
    case TL_FORMAT_NGRAM2009:
        *before = "aa\t2000\t7\t1\t1\n";
        *after = "aa\t2001\t3\t1\t1\nbb\t2000\t5\t1\t1\n";
        break;
    case TL_FORMAT_NGRAM2020:
        *before = "aa\t2000,7,1\n";
        *after = "aa\t2001,3,1\nbb\t2000,5,1\n";
        break;
    default:
        *before = "aa\t2000\t7\t1\n";
        *after = "aa\t2001\t3\t1\nbb\t2000\t5\t1\n";
    }
}

Test (mapper, malformed_lines)
{
    tl_table_t *table = tl_table_new (0);
    s_total_t totals[] = {{"aa", 10}, {"bb", 5}, {NULL, 0}};
    for (size_t i = 0; i < sizeof s_bad_cases / sizeof s_bad_cases[0]; i++) {
        const s_bad_case_t *c = &s_bad_cases[i];
        const char *before, *after;
        s_good_around (c->format, &before, &after);
        char data[256];
        snprintf (data, sizeof data, "%s%s%s", before, c->line, after);
        char name[128];
        snprintf (name, sizeof name, "%s: %s", tl_format_name (c->format), c->why);

        tl_table_clear (table);
        tl_map_stats_t stats = {0};
        cr_assert_eq (s_map (table, c->format, NULL, data, &stats), 0, "%s", name);
        cr_assert_eq (stats.bad_lines, 1, "%s: %llu bad", name,
                      (unsigned long long)stats.bad_lines);
        cr_assert_eq (stats.bad_samples, 1, "%s", name);
        cr_assert_eq (stats.bad_offset[0], strlen (before), "%s: offset %llu", name,
                      (unsigned long long)stats.bad_offset[0]);
        cr_assert_eq (stats.lines, 4, "%s: %llu lines", name, (unsigned long long)stats.lines);
        cr_assert_eq (stats.filtered, 0, "%s", name);
        cr_assert_eq (stats.overflows, 0, "%s", name);
        s_assert_totals (table, totals, name);

        //  The same line last, without its LF, is just as bad
        snprintf (data, sizeof data, "%s%.*s", before, (int)strlen (c->line) - 1, c->line);
        tl_table_clear (table);
        memset (&stats, 0, sizeof stats);
        cr_assert_eq (s_map (table, c->format, NULL, data, &stats), 0, "%s", name);
        bool empty_tail = strlen (c->line) == 1;  //  "\n" minus its LF is no line at all
        cr_assert_eq (stats.bad_lines, empty_tail ? 0 : 1, "%s (last, no LF)", name);
        cr_assert_eq (stats.lines, empty_tail ? 1 : 2, "%s (last, no LF)", name);
        s_total_t aa_only[] = {{"aa", 7}, {NULL, 0}};
        s_assert_totals (table, aa_only, name);
    }
    tl_table_destroy (&table);
}

Test (mapper, bad_samples_and_stats_accumulate)
{
    tl_table_t *table = tl_table_new (0);
    //  Six bad lines: all counted, the first TL_BAD_SAMPLES offsets remembered
    const char *data = "a\t1\t1\t1\nbad\nb\t1\t1\t1\nbad\nbad\nbad\nc\t1\t1\t1\nbad\nbad\n";
    tl_map_stats_t stats = {0};
    cr_assert_eq (s_map (table, TL_FORMAT_NGRAM2012, NULL, data, &stats), 0);
    cr_assert_eq (stats.lines, 9);
    cr_assert_eq (stats.bad_lines, 6);
    cr_assert_eq (stats.bad_samples, TL_BAD_SAMPLES);
    static const uint64_t offsets[] = {8, 20, 24, 28};
    for (int i = 0; i < TL_BAD_SAMPLES && i < 4; i++)
        cr_assert_eq (stats.bad_offset[i], offsets[i], "sample %d: %llu", i,
                      (unsigned long long)stats.bad_offset[i]);
    s_total_t totals[] = {{"a", 1}, {"b", 1}, {"c", 1}, {NULL, 0}};
    s_assert_totals (table, totals, "six bad");

    //  A second call adds to the stats; its offsets are within its own data
    tl_map_stats_t more = {0};
    cr_assert_eq (s_map (table, TL_FORMAT_NGRAM2012, NULL, "a\t1\t1\t1\nbad\n", &more), 0);
    cr_assert_eq (s_map (table, TL_FORMAT_NGRAM2012, NULL, "x\nd\t1\t2\t1\n", &more), 0);
    cr_assert_eq (more.lines, 4);
    cr_assert_eq (more.bad_lines, 2);
    cr_assert_eq (more.bad_samples, 2);
    cr_assert_eq (more.bad_offset[0], 8);
    cr_assert_eq (more.bad_offset[1], 0);
    s_total_t after[] = {{"a", 2}, {"b", 1}, {"c", 1}, {"d", 2}, {NULL, 0}};
    s_assert_totals (table, after, "second calls");
    tl_table_destroy (&table);
}

Test (mapper, text_has_no_bad_lines)
{
    tl_table_t *table = tl_table_new (0);
    tl_map_stats_t stats = {0};
    cr_assert_eq (s_map (table, TL_FORMAT_TEXT, NULL, "\n\t\n+-5\n\r\n x\t\t\n", &stats), 0);
    cr_assert_eq (stats.bad_lines, 0);
    cr_assert_eq (stats.lines, 5);
    s_total_t totals[] = {{"+-5", 1}, {"x", 1}, {NULL, 0}};
    s_assert_totals (table, totals, "text");
    tl_table_destroy (&table);
}

//  Random bytes, many of them white space, at every length around the text mapper's
//  64-byte blocks, its own last-block path and its add-ahead ring (words cross blocks,
//  start or end at a block's first or last byte, fill or not the ring). The totals are
//  compared with a byte-by-byte tokenizer written here, and the lines with a count of LFs.
Test (mapper, text_random_bytes_equal_a_byte_by_byte_tokenizer)
{
    static const unsigned char alphabet[] = {'a',  'b',  'c',  ' ',  '\t', '\n', '\r', '\v',
                                             '\f', 0x00, 0x80, 0xff, 0x1f, 0x21, 0x08, 0x0e};
    unsigned char data[600];
    uint64_t rng = 2012;
    tl_table_t *table = tl_table_new (0);
    tl_table_t *expected = tl_table_new (0);
    for (int round = 0; round < 3000; round++) {
        size_t size = (size_t)(round % 300);
        if (round >= 1500) size = 300 + (size_t)(round % 300);
        for (size_t i = 0; i < size; i++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            //  Mostly word bytes: words of several letters, runs of white space
            unsigned r = (unsigned)(rng >> 33);
            data[i] = r % 3 ? alphabet[r / 3 % 3] : alphabet[r / 3 % sizeof alphabet];
        }
        tl_table_clear (table);
        tl_table_clear (expected);
        tl_map_stats_t stats = {0};
        cr_assert_eq (tl_map (table, TL_FORMAT_TEXT, NULL, (const char *)data, size, &stats), 0);
        uint64_t lines = 0, words = 0;
        size_t i = 0;
        while (i < size) {
            lines += data[i] == '\n';
            if (strchr (" \t\n\r\v\f", data[i]) && data[i] != 0) {
                i++;
                continue;
            }
            size_t start = i;
            while (i < size && !(strchr (" \t\n\r\v\f", data[i]) && data[i] != 0))
                i++;
            cr_assert_geq (tl_table_add (expected, data + start, i - start, 1), 0);
            words++;
        }
        if (size > 0 && data[size - 1] != '\n') lines++;
        cr_assert_eq (stats.lines, lines, "round %d (%zu bytes): %llu lines, expected %llu", round,
                      size, (unsigned long long)stats.lines, (unsigned long long)lines);
        cr_assert_eq (tl_table_size (table), tl_table_size (expected), "round %d (%zu bytes)",
                      round, size);
        cr_assert_eq (tl_table_sum (table), words, "round %d (%zu bytes)", round, size);
        size_t cursor = 0;
        tl_entry_t entry;
        while (tl_table_next (expected, &cursor, &entry)) {
            uint64_t count = 0;
            cr_assert (tl_table_get (table, entry.key, entry.len, &count),
                       "round %d: word '%.*s' missing", round, (int)entry.len, entry.key);
            cr_assert_eq (count, entry.count, "round %d: word '%.*s'", round, (int)entry.len,
                          entry.key);
        }
    }
    tl_table_destroy (&table);
    tl_table_destroy (&expected);
}

//  --------------------------------------------------------------------------------------
//  Long keys

Test (mapper, key_length_limit)
{
    size_t cap = TL_KEY_MAX + 64;
    char *data = malloc (cap);
    cr_assert (data);
    tl_table_t *table = tl_table_new (0);
    for (int f = TL_FORMAT_NGRAM2009; f <= TL_FORMAT_NGRAM2020; f++) {
        static const char *tails[] = {"", "\t2000\t5\t1\t1\n", "\t2000\t5\t1\n", "\t2000,5,1\n"};
        for (size_t len = TL_KEY_MAX; len <= TL_KEY_MAX + 1; len++) {
            memset (data, 'k', len);
            size_t size = len + (size_t)sprintf (data + len, "%s", tails[f]);
            tl_table_clear (table);
            tl_map_stats_t stats = {0};
            cr_assert_eq (tl_map (table, (tl_format_t)f, NULL, data, size, &stats), 0);
            bool fits = len <= TL_KEY_MAX;
            cr_assert_eq (stats.bad_lines, fits ? 0 : 1, "%s, key of %zu bytes",
                          tl_format_name ((tl_format_t)f), len);
            cr_assert_eq (tl_table_size (table), fits ? 1 : 0);
            uint64_t count = 0;
            if (fits) {
                cr_assert (tl_table_get (table, data, len, &count));
                cr_assert_eq (count, 5);
            }
        }
    }
    //  Text cannot call a line bad: an impossible word is left out, the others count
    memset (data, 'w', TL_KEY_MAX + 1);
    memcpy (data + TL_KEY_MAX + 1, " ok\n", 4);
    tl_table_clear (table);
    tl_map_stats_t stats = {0};
    cr_assert_eq (tl_map (table, TL_FORMAT_TEXT, NULL, data, TL_KEY_MAX + 5, &stats), 0);
    cr_assert_eq (stats.bad_lines, 0);
    cr_assert_eq (tl_table_size (table), 1);
    tl_table_destroy (&table);
    free (data);
}

//  --------------------------------------------------------------------------------------
//  Runs across map calls: every split of the data at a line boundary gives the same totals

Test (mapper, runs_split_across_calls)
{
    static const struct {
        tl_format_t format;                  //  Format
        const char *data;                    //  Lines with runs
        s_total_t totals[S_MAX_TOTALS + 1];  //  Expected table
    } cases[] = {
        {TL_FORMAT_NGRAM2012,
         "a\t1\t1\t1\na\t2\t2\t1\na\t3\t4\t1\nb\t1\t8\t1\nb\t2\t16\t1\na\t4\t32\t1\n",
         {{"a", 39}, {"b", 24}}},
        {TL_FORMAT_NGRAM2009,
         "a\t1\t1\t1\t1\na\t2\t2\t1\t1\na\t3\t4\t1\t1\nb\t1\t8\t1\t1\n",
         {{"a", 7}, {"b", 8}}},
        {TL_FORMAT_NGRAM2020,
         "a\t1,1,1\na\t2,2,1\t3,4,1\nb\t1,8,1\nb\t2,16,1\n",
         {{"a", 7}, {"b", 24}}},
        {TL_FORMAT_TEXT, "a a\na\nb a\nb\n", {{"a", 4}, {"b", 2}}},
    };
    tl_table_t *table = tl_table_new (0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *data = cases[i].data;
        size_t size = strlen (data);
        for (size_t cut = 0; cut <= size; cut++) {
            if (cut > 0 && data[cut - 1] != '\n') continue;
            tl_table_clear (table);
            tl_map_stats_t stats = {0};
            cr_assert_eq (tl_map (table, cases[i].format, NULL, data, cut, &stats), 0);
            cr_assert_eq (tl_map (table, cases[i].format, NULL, data + cut, size - cut, &stats), 0);
            char name[64];
            snprintf (name, sizeof name, "%s cut at %zu", tl_format_name (cases[i].format), cut);
            s_assert_totals (table, cases[i].totals, name);
            cr_assert_eq (stats.bad_lines, 0, "%s", name);
        }
    }
    tl_table_destroy (&table);
}

//  --------------------------------------------------------------------------------------
//  Overflow

Test (mapper, overflow_saturates)
{
    static const struct {
        const char *name;    //  What the case shows
        tl_format_t format;  //  Format
        const char *first;   //  First map call
        const char *second;  //  Second map call (NULL: none)
        uint64_t m;          //  Expected total of key m
        uint64_t overflows;  //  Expected stats->overflows
    } cases[] = {
        {"within a run", TL_FORMAT_NGRAM2012, "m\t1\t18446744073709551615\t1\nm\t2\t1\t1\n", NULL,
         UINT64_MAX, 1},
        {"within a long run, counted once", TL_FORMAT_NGRAM2012,
         "m\t1\t18446744073709551615\t1\nm\t2\t1\t1\nm\t3\t5\t1\n", NULL, UINT64_MAX, 1},
        {"exactly UINT64_MAX", TL_FORMAT_NGRAM2012, "m\t1\t18446744073709551614\t1\nm\t2\t1\t1\n",
         NULL, UINT64_MAX, 0},
        {"in the table", TL_FORMAT_NGRAM2012, "m\t1\t18446744073709551615\t1\n", "m\t2\t1\t1\n",
         UINT64_MAX, 1},
        {"run and table, counted once", TL_FORMAT_NGRAM2012, "m\t1\t1\t1\n",
         "m\t1\t18446744073709551615\t1\nm\t2\t1\t1\n", UINT64_MAX, 1},
        {"2009 within a run", TL_FORMAT_NGRAM2009,
         "m\t1\t18446744073709551615\t1\t1\nm\t2\t9\t1\t1\n", NULL, UINT64_MAX, 1},
        {"2020 within a line", TL_FORMAT_NGRAM2020, "m\t1,18446744073709551615,1\t2,1,1\n", NULL,
         UINT64_MAX, 1},
        {"2020 across lines", TL_FORMAT_NGRAM2020, "m\t1,18446744073709551615,1\nm\t2,1,1\n", NULL,
         UINT64_MAX, 1},
    };
    tl_table_t *table = tl_table_new (0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_table_clear (table);
        tl_map_stats_t stats = {0};
        cr_assert_eq (s_map (table, cases[i].format, NULL, cases[i].first, &stats), 0);
        if (cases[i].second)
            cr_assert_eq (s_map (table, cases[i].format, NULL, cases[i].second, &stats), 0);
        uint64_t m = 0;
        cr_assert (tl_table_get (table, "m", 1, &m), "%s", cases[i].name);
        cr_assert_eq (m, cases[i].m, "%s: %llu", cases[i].name, (unsigned long long)m);
        cr_assert_eq (stats.overflows, cases[i].overflows, "%s: %llu overflows", cases[i].name,
                      (unsigned long long)stats.overflows);
        cr_assert_eq (stats.bad_lines, 0, "%s", cases[i].name);
    }
    tl_table_destroy (&table);
}

//  --------------------------------------------------------------------------------------
//  Filters

typedef struct {
    const char *name;                    //  What the case shows
    tl_format_t format;                  //  Format
    tl_filter_t filter;                  //  Filter
    const char *data;                    //  Input
    uint64_t filtered;                   //  Expected stats->filtered
    uint64_t bad;                        //  Expected stats->bad_lines
    s_total_t totals[S_MAX_TOTALS + 1];  //  Expected table
} s_filter_case_t;

#define S_YEARS_2012                                                                               \
    "a\t1998\t1\t1\na\t1999\t2\t1\na\t2000\t4\t1\na\t2001\t8\t1\na\t2002\t16\t1\n"                 \
    "b\t1990\t32\t1\nc\t2001\t64\t1\n"
#define S_YEARS_2009                                                                               \
    "a\t1998\t1\t9\t1\na\t1999\t2\t9\t1\na\t2000\t4\t9\t1\na\t2001\t8\t9\t1\na\t2002\t16\t9\t1\n"  \
    "b\t1990\t32\t9\t1\nc\t2001\t64\t9\t1\n"
#define S_YEARS_2020                                                                               \
    "a\t1998,1,1\t1999,2,1\t2000,4,1\t2001,8,1\t2002,16,1\nb\t1990,32,1\nc\t2001,64,1\n"
#define S_TAGGED                                                                                   \
    "cat_NOUN\t2000\t1\t1\ncat_NOUN\t2001\t1\t1\ncat\t2000\t2\t1\ncat\t2001\t2\t1\n"               \
    "the_DET cat\t2000\t4\t1\nthe cat\t2000\t8\t1\n_START_ cat\t2000\t16\t1\n"                     \
    "cat _END_\t2000\t32\t1\nthe _NOUN_\t1999\t64\t1\nrun_VERB\t1\t1\t1\nx_.\t1\t1\t1\n"           \
    "_._\t1\t1\t1\nNew_York\t2000\t128\t1\n"

static const s_filter_case_t s_filter_cases[] = {
    {"2012 year range",
     TL_FORMAT_NGRAM2012,
     {1999, 2001, false},
     S_YEARS_2012,
     3,
     0,
     {{"a", 14}, {"c", 64}}},
    {"2012 year_min only",
     TL_FORMAT_NGRAM2012,
     {2001, UINT32_MAX, false},
     S_YEARS_2012,
     4,
     0,
     {{"a", 24}, {"c", 64}}},
    {"2012 year_max only",
     TL_FORMAT_NGRAM2012,
     {0, 1999, false},
     S_YEARS_2012,
     4,
     0,
     {{"a", 3}, {"b", 32}}},
    {"2012 one year", TL_FORMAT_NGRAM2012, {2000, 2000, false}, S_YEARS_2012, 6, 0, {{"a", 4}}},
    {"2012 nothing kept",
     TL_FORMAT_NGRAM2012,
     {3000, 4000, false},
     S_YEARS_2012,
     7,
     0,
     {{NULL, 0}}},
    {"2012 year 0 kept by year_max",
     TL_FORMAT_NGRAM2012,
     {0, 10, false},
     "z\t0\t5\t1\nz\t11\t5\t1\n",
     1,
     0,
     {{"z", 5}}},
    {"2009 year range",
     TL_FORMAT_NGRAM2009,
     {1999, 2001, false},
     S_YEARS_2009,
     3,
     0,
     {{"a", 14}, {"c", 64}}},
    {"2020 year range",
     TL_FORMAT_NGRAM2020,
     {1999, 2001, false},
     S_YEARS_2020,
     1,
     0,
     {{"a", 14}, {"c", 64}}},
    {"2020 year_max only",
     TL_FORMAT_NGRAM2020,
     {0, 1998, false},
     S_YEARS_2020,
     1,
     0,
     {{"a", 1}, {"b", 32}}},
    {"2020 nothing kept",
     TL_FORMAT_NGRAM2020,
     {3000, 4000, false},
     S_YEARS_2020,
     3,
     0,
     {{NULL, 0}}},
    {"skip_pos",
     TL_FORMAT_NGRAM2012,
     {0, UINT32_MAX, true},
     S_TAGGED,
     9,
     0,
     {{"cat", 4}, {"the cat", 8}, {"New_York", 128}}},
    {"skip_pos and years",
     TL_FORMAT_NGRAM2012,
     {2000, 2000, true},
     S_TAGGED,
     10,
     0,
     {{"cat", 2}, {"the cat", 8}, {"New_York", 128}}},
    {"skip_pos 2009",
     TL_FORMAT_NGRAM2009,
     {0, UINT32_MAX, true},
     "a_NOUN\t1\t1\t1\t1\nb\t1\t2\t1\t1\n",
     1,
     0,
     {{"b", 2}}},
    {"skip_pos 2020",
     TL_FORMAT_NGRAM2020,
     {0, UINT32_MAX, true},
     "a_NOUN\t1,1,1\t2,1,1\nb\t1,2,1\nthe _ROOT_\t1,4,1\n",
     2,
     0,
     {{"b", 2}}},
    {"bad before filtered (year)",
     TL_FORMAT_NGRAM2012,
     {2000, 2001, false},
     "a\t2000\t1\t1\nx\t1990\t5x\t1\ny\t1990\t5\n",
     0,
     2,
     {{"a", 1}}},
    {"bad before filtered (POS)",
     TL_FORMAT_NGRAM2012,
     {0, UINT32_MAX, true},
     "a_NOUN\t2000\tz\t1\na\t2000\t1\t1\n",
     0,
     1,
     {{"a", 1}}},
    {"bad before filtered (2020)",
     TL_FORMAT_NGRAM2020,
     {2000, 2001, false},
     "x\t1990,1,1\t1991,-1,1\na\t2000,1,1\n",
     0,
     1,
     {{"a", 1}}},
    {"bad in a tagged run",
     TL_FORMAT_NGRAM2012,
     {0, UINT32_MAX, true},
     "a_NOUN\t1\t1\t1\na_NOUN\t2\t1\na_NOUN\t3\t1\t1\n",
     2,
     1,
     {{NULL, 0}}},
    {"text ignores filters",
     TL_FORMAT_TEXT,
     {3000, 4000, true},
     "a_NOUN 1999 _ROOT_ a\n",
     0,
     0,
     {{"a_NOUN", 1}, {"1999", 1}, {"_ROOT_", 1}, {"a", 1}}},
};

Test (mapper, filters)
{
    tl_table_t *table = tl_table_new (0);
    for (size_t i = 0; i < sizeof s_filter_cases / sizeof s_filter_cases[0]; i++) {
        const s_filter_case_t *c = &s_filter_cases[i];
        cr_assert_not (tl_filter_is_none (&c->filter), "%s", c->name);
        tl_table_clear (table);
        tl_map_stats_t stats = {0};
        cr_assert_eq (s_map (table, c->format, &c->filter, c->data, &stats), 0, "%s", c->name);
        cr_assert_eq (stats.filtered, c->filtered, "%s: %llu filtered", c->name,
                      (unsigned long long)stats.filtered);
        cr_assert_eq (stats.bad_lines, c->bad, "%s: %llu bad", c->name,
                      (unsigned long long)stats.bad_lines);
        s_assert_totals (table, c->totals, c->name);
    }
    tl_table_destroy (&table);
}

//  --------------------------------------------------------------------------------------
//  Real data: data/sample and awk rewrites of it, against totals computed by awk

//  The sample files as one shell word list.
static const char *s_sample_glob (void)
{
    static char glob[1024];
    snprintf (glob, sizeof glob, "'%s/data/sample/'googlebooks-eng-all-1gram-20120701-*.tsv",
              tl_test_source_dir ());
    return glob;
}

//  Runs command and returns its output as an unsigned number.
static uint64_t s_popen_number (const char *command)
{
    FILE *pipe = popen (command, "r");
    cr_assert (pipe, "%s", command);
    unsigned long long value = 0;
    cr_assert_eq (fscanf (pipe, "%llu", &value), 1, "%s", command);
    cr_assert_eq (pclose (pipe), 0, "%s", command);
    return value;
}

//  Maps a file into table in line-aligned pieces of about piece bytes (0: whole file),
//  as the ventilator cuts chunks, so runs cross map calls. Adds to stats.
static void s_map_file (tl_table_t *table, tl_format_t format, const char *path, size_t piece,
                        tl_map_stats_t *stats)
{
    size_t size;
    char *data = tl_test_read_file (path, &size);
    size_t at = 0;
    while (at < size) {
        size_t stop = piece ? at + piece : size;
        if (stop >= size)
            stop = size;
        else {
            const char *lf = memchr (data + stop, '\n', size - stop);
            stop = lf ? (size_t)(lf - data) + 1 : size;
        }
        cr_assert_eq (tl_map (table, format, NULL, data + at, stop - at, stats), 0, "%s", path);
        at = stop;
    }
    free (data);
}

//  Asserts that table holds exactly the totals awk prints ("key TAB total" lines).
static void s_assert_awk_totals (tl_table_t *table, const char *program, const char *files,
                                 size_t min_keys)
{
    char command[4096];
    snprintf (command, sizeof command,
              "LC_ALL=C awk %s END {for (k in s) printf \"%%s\\t%%.0f\\n\", k, s[k]}' %s", program,
              files);
    FILE *pipe = popen (command, "r");
    cr_assert (pipe, "%s", command);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    size_t keys = 0;
    while ((got = getline (&line, &cap, pipe)) > 0) {
        if (line[got - 1] == '\n') line[--got] = 0;
        char *tab = strrchr (line, '\t');
        cr_assert (tab, "awk printed '%s'", line);
        uint64_t expected = strtoull (tab + 1, NULL, 10);
        uint64_t count = 0;
        size_t len = (size_t)(tab - line);
        cr_assert (tl_table_get (table, line, len, &count), "key '%.*s' missing", (int)len, line);
        cr_assert_eq (count, expected, "key '%.*s': %llu, awk says %llu", (int)len, line,
                      (unsigned long long)count, (unsigned long long)expected);
        keys++;
    }
    free (line);
    cr_assert_eq (pclose (pipe), 0, "%s", command);
    cr_assert_geq (keys, min_keys, "awk found only %zu keys", keys);
    cr_assert_eq (tl_table_size (table), keys, "table has %zu keys, awk %zu", tl_table_size (table),
                  keys);
}

//  The awk programs for each format's totals, left open: the END block closes them.
#define S_AWK_TOTALS_2012 "-F'\\t' '{s[$1] += $3}"
#define S_AWK_TOTALS_2020                                                                          \
    "-F'\\t' '{for (i = 2; i <= NF; i++) {split($i, t, \",\"); s[$1] += t[2]}}"
#define S_AWK_TOTALS_TEXT "'{for (i = 1; i <= NF; i++) s[$i]++}"

Test (mapper, sample_2012_matches_awk, .timeout = 120)
{
    char files[1024];
    snprintf (files, sizeof files, "%s", s_sample_glob ());
    //  Whole files, then pieces of 4 KiB and 100 bytes: the same totals every time
    static const size_t pieces[] = {0, 4096, 100};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        tl_table_t *table = tl_table_new (0);
        tl_map_stats_t stats = {0};
        for (char letter = 'a'; letter <= 'z'; letter++) {
            char path[1024];
            snprintf (path, sizeof path,
                      "%s/data/sample/googlebooks-eng-all-1gram-20120701-%c.head10k.tsv",
                      tl_test_source_dir (), letter);
            s_map_file (table, TL_FORMAT_NGRAM2012, path, pieces[i], &stats);
        }
        s_assert_awk_totals (table, S_AWK_TOTALS_2012, files, 1000);
        char command[1200];
        snprintf (command, sizeof command, "cat %s | wc -l", files);
        cr_assert_eq (stats.lines, s_popen_number (command), "pieces of %zu", pieces[i]);
        cr_assert_eq (stats.bad_lines, 0);
        cr_assert_eq (stats.overflows, 0);
        tl_table_destroy (&table);
    }
}

//  Writes the sample rewritten by an awk program into path.
static void s_rewrite_sample (const char *program, const char *path)
{
    char command[4096];
    snprintf (command, sizeof command, "LC_ALL=C awk -F'\\t' -v OFS='\\t' '%s' %s > '%s'", program,
              s_sample_glob (), path);
    cr_assert_eq (system (command), 0, "%s", command);
}

Test (mapper, sample_rewrites_match_awk, .timeout = 120)
{
    static const struct {
        tl_format_t format;  //  Format the rewrite writes
        const char *write;   //  awk program turning the 2012 sample into it
        const char *totals;  //  awk program summing it independently
    } rewrites[] = {
        //  2009: a page_count column before the volume count
        {TL_FORMAT_NGRAM2009, "{print $1, $2, $3, $4 + NR % 3, $4}", S_AWK_TOTALS_2012},
        //  2020: a key's consecutive lines joined into one line of triples
        {TL_FORMAT_NGRAM2020,
         "$1 != k {if (NR > 1) print line; k = $1; line = $1 \"\\t\" $2 \",\" $3 \",\" $4; next}"
         " {line = line \"\\t\" $2 \",\" $3 \",\" $4} END {print line}",
         S_AWK_TOTALS_2020},
        //  2012 with CRLF line ends
        {TL_FORMAT_NGRAM2012, "{printf \"%s\\r\\n\", $0}", S_AWK_TOTALS_2012},
        //  text: each key match_count % 5 times, spaces and tabs, some empty lines
        {TL_FORMAT_TEXT,
         "{line = NR % 3 ? \"\" : \" \"; for (i = 0; i < $3 % 5; i++) line = line $1 (i % 2 ? "
         "\"\\t\" : \" \"); print line}",
         S_AWK_TOTALS_TEXT},
    };
    char dir[] = "/tmp/tally-test-mapper-XXXXXX";
    cr_assert (mkdtemp (dir));
    for (size_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
        char path[256];
        snprintf (path, sizeof path, "%s/rewrite.%zu", dir, i);
        s_rewrite_sample (rewrites[i].write, path);
        tl_table_t *table = tl_table_new (0);
        tl_map_stats_t stats = {0};
        s_map_file (table, rewrites[i].format, path, 8192, &stats);
        char quoted[300];
        snprintf (quoted, sizeof quoted, "'%s'", path);
        s_assert_awk_totals (table, rewrites[i].totals, quoted, 1000);
        char command[400];
        snprintf (command, sizeof command, "wc -l < '%s'", path);
        cr_assert_eq (stats.lines, s_popen_number (command), "%s lines",
                      tl_format_name (rewrites[i].format));
        cr_assert_eq (stats.bad_lines, 0, "%s", tl_format_name (rewrites[i].format));
        tl_table_destroy (&table);
        remove (path);
    }
    remove (dir);
}
