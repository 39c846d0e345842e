/*  test_format: format names, detection (hand-made cases and the real sample files,
    also rewritten into the other formats) and the POS-tag test behind skip_pos.     */

#include <criterion/criterion.h>
#include "tl_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_format.h"

//  --------------------------------------------------------------------------------------
//  Names

Test (format, names_round_trip)
{
    static const struct {
        tl_format_t format;  //  A format
        const char *name;    //  Its name
    } cases[] = {
        {TL_FORMAT_AUTO, "auto"},           {TL_FORMAT_NGRAM2009, "ngram2009"},
        {TL_FORMAT_NGRAM2012, "ngram2012"}, {TL_FORMAT_NGRAM2020, "ngram2020"},
        {TL_FORMAT_TEXT, "text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_str_eq (tl_format_name (cases[i].format), cases[i].name);
        tl_format_t parsed = TL_FORMAT_COUNT_;
        cr_assert_eq (tl_format_parse (cases[i].name, &parsed), 0, "%s", cases[i].name);
        cr_assert_eq (parsed, cases[i].format, "%s", cases[i].name);
    }
}

Test (format, parse_rejects_unknown)
{
    static const char *bad[] = {"", "ngram", "NGRAM2012", "ngram2012 ", "2012", "txt"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_format_t parsed = TL_FORMAT_TEXT;
        cr_assert_eq (tl_format_parse (bad[i], &parsed), -1, "'%s'", bad[i]);
        cr_assert_eq (parsed, TL_FORMAT_TEXT, "'%s' changed the output", bad[i]);
    }
}

Test (format, filter_is_none)
{
    tl_filter_t none = TL_FILTER_NONE;
    cr_assert (tl_filter_is_none (&none));
    tl_filter_t f = none;
    f.year_min = 1;
    cr_assert_not (tl_filter_is_none (&f));
    f = none;
    f.year_max = 2000;
    cr_assert_not (tl_filter_is_none (&f));
    f = none;
    f.skip_pos = true;
    cr_assert_not (tl_filter_is_none (&f));
}

//  --------------------------------------------------------------------------------------
//  POS tags

Test (format, pos_tagged)
{
    static const struct {
        const char *key;  //  An n-gram key
        bool tagged;      //  What tl_key_is_pos_tagged must say
    } cases[] = {
        //  Every tag after at least one byte
        {"word_NOUN", true},
        {"run_VERB", true},
        {"big_ADJ", true},
        {"fast_ADV", true},
        {"he_PRON", true},
        {"the_DET", true},
        {"of_ADP", true},
        {"one_NUM", true},
        {"and_CONJ", true},
        {"up_PRT", true},
        {"etc_X", true},
        {"._.", true},
        {",_.", true},
        {"A'Aang_NOUN", true},
        {"I'Antiquit\xc3\xa9_NOUN", true},
        {"New_York_NOUN", true},
        //  Bare tag tokens
        {"_NOUN_", true},
        {"_VERB_", true},
        {"_X_", true},
        {"_._", true},
        {"_ROOT_", true},
        {"_START_", true},
        {"_END_", true},
        //  Multi-word n-grams with one tagged token
        {"the_DET cat", true},
        {"the cat_NOUN", true},
        {"the big_ADJ cat", true},
        {"_START_ the", true},
        {"the _NOUN_", true},
        {"the cat _END_", true},
        {" cat_NOUN", true},
        {"cat_NOUN ", true},
        //  Not tagged
        {"", false},
        {"word", false},
        {"_", false},
        {"__", false},
        {"_NOUN", false},  //  nothing before the tag
        {"_X", false},
        {"_.", false},
        {"word_", false},
        {"word_noun", false},
        {"word_NOUNS", false},
        {"word_NOUN_", false},
        {"NOUN", false},
        {"New_York", false},
        {"x_Xylophone", false},
        {"a_.b", false},
        {"_ROOT", false},
        {"ROOT_", false},
        {"_START", false},
        {"_FOO_", false},
        {"the cat", false},
        {"the _NOUN cat", false},
        {"the\tcat_NOUN_x", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq (tl_key_is_pos_tagged (cases[i].key, strlen (cases[i].key)), cases[i].tagged,
                      "'%s' should be %s", cases[i].key, cases[i].tagged ? "tagged" : "untagged");
}

Test (format, pos_tagged_uses_length_not_nul)
{
    //  The key is bytes and a length: what follows must not matter
    const char *key = "word_NOUN";
    cr_assert_not (tl_key_is_pos_tagged (key, 4));
    cr_assert_not (tl_key_is_pos_tagged (key, 8));  //  "word_NOU"
    cr_assert (tl_key_is_pos_tagged (key, 9));
    cr_assert (tl_key_is_pos_tagged ("x_NOUN\0junk", 6));
}

//  --------------------------------------------------------------------------------------
//  Detection on hand-made data

Test (format, detect_cases)
{
    static const struct {
        const char *name;      //  What the case shows
        const char *data;      //  A file's first bytes
        tl_format_t expected;  //  What detection must say
    } cases[] = {
        {"2012", "a\t1999\t5\t3\na\t2000\t7\t2\nb\t2000\t1\t1\n", TL_FORMAT_NGRAM2012},
        {"2009", "a\t1999\t5\t4\t3\na\t2000\t7\t5\t2\nb\t2000\t1\t1\t1\n", TL_FORMAT_NGRAM2009},
        {"2020", "a\t1999,5,3\t2000,7,2\nb\t2000,1,1\n", TL_FORMAT_NGRAM2020},
        {"2020 one triple", "a\t1999,5,3\n", TL_FORMAT_NGRAM2020},
        {"text", "the cat sat\non the mat\n", TL_FORMAT_TEXT},
        {"empty", "", TL_FORMAT_TEXT},
        {"only LFs", "\n\n\n", TL_FORMAT_TEXT},
        {"text with tabs", "a\tb\tc\nd\te\tf\n", TL_FORMAT_TEXT},
        {"4 columns not digits", "a\tb\t5\t3\nc\td\t1\t1\n", TL_FORMAT_TEXT},
        {"5 columns of 2012 shape", "a\t1999\t5\t3\tx\nb\t1999\t5\t3\tx\n", TL_FORMAT_TEXT},
        {"multi-word keys", "the cat\t1999\t5\t3\nthe dog\t2000\t7\t2\n", TL_FORMAT_NGRAM2012},
        {"CRLF 2012", "a\t1999\t5\t3\r\nb\t2000\t7\t2\r\n", TL_FORMAT_NGRAM2012},
        {"CRLF 2009", "a\t1999\t5\t4\t3\r\nb\t2000\t7\t5\t2\r\n", TL_FORMAT_NGRAM2009},
        {"cut last line ignored", "a\t1999\t5\t3\nb\t2000\t7\t2\nc\t20", TL_FORMAT_NGRAM2012},
        {"cut last line ignored 2009", "a\t1\t5\t4\t3\nb\t2\t7\t5\t2\nc\t2\t7\t5",
         TL_FORMAT_NGRAM2009},
        {"only a cut line", "a\t1999\t5\t3", TL_FORMAT_NGRAM2012},
        {"only a cut 2020 line", "a\t1999,5,3\t2000,1", TL_FORMAT_NGRAM2020},
        {"one odd header line",
         "ngram\tyear\tmatch\tvolume\na\t1\t5\t3\nb\t2\t7\t2\nc\t3\t1\t1\nd\t4\t1\t1\n",
         TL_FORMAT_NGRAM2012},
        {"one odd line of two", "a\t1999\t5\t3\nsome words here\n", TL_FORMAT_NGRAM2012},
        {"one odd line in the middle", "a\t1,5,3\nb\t2,5,3\nc\tx\nd\t3,5,3\n", TL_FORMAT_NGRAM2020},
        {"empty lines do not vote", "\n\na\t1999\t5\t3\n\nb\t2000\t7\t2\n", TL_FORMAT_NGRAM2012},
        {"mostly text", "a\t1999\t5\t3\nhello there\nmore words\nand more\n", TL_FORMAT_TEXT},
        {"half and half", "a\t1999\t5\t3\nb\t2000\t7\t2\nhello\nthere\n", TL_FORMAT_TEXT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_format_t got = tl_format_detect (cases[i].data, strlen (cases[i].data));
        cr_assert_eq (got, cases[i].expected, "%s: got %s, expected %s", cases[i].name,
                      tl_format_name (got), tl_format_name (cases[i].expected));
    }
}

Test (format, detect_looks_at_first_lines_only)
{
    //  25 lines of 2012, then text: the text must not matter
    char data[4096] = "";
    for (int i = 0; i < 25; i++)
        strcat (data, "key\t2000\t1\t1\n");
    for (int i = 0; i < 40; i++)
        strcat (data, "plain words\n");
    cr_assert_eq (tl_format_detect (data, strlen (data)), TL_FORMAT_NGRAM2012);

    //  And the other way round: 20 text lines hide the 2012 lines after them
    char text[4096] = "";
    for (int i = 0; i < 20; i++)
        strcat (text, "plain words\n");
    for (int i = 0; i < 40; i++)
        strcat (text, "key\t2000\t1\t1\n");
    cr_assert_eq (tl_format_detect (text, strlen (text)), TL_FORMAT_TEXT);
}

Test (format, detect_bounded_by_size)
{
    //  Only size bytes are read: a 2012 file cut after its first line
    const char *data = "a\t1999\t5\t3\nhello world\n";
    cr_assert_eq (tl_format_detect (data, 11), TL_FORMAT_NGRAM2012);
    cr_assert_eq (tl_format_detect (data, 0), TL_FORMAT_TEXT);
}

//  --------------------------------------------------------------------------------------
//  Detection on the real sample files, and on the same data rewritten with awk

//  Runs an awk program over one sample file into path.
static void s_rewrite (const char *program, const char *sample, const char *path)
{
    char command[4096];
    snprintf (command, sizeof command, "LC_ALL=C awk -F'\\t' -v OFS='\\t' '%s' '%s' > '%s'",
              program, sample, path);
    cr_assert_eq (system (command), 0, "%s", command);
}

Test (format, detect_sample_files)
{
    static const struct {
        const char *program;   //  awk program turning a 2012 file into another format
        tl_format_t expected;  //  The format it writes
    } rewrites[] = {
        {"{print}", TL_FORMAT_NGRAM2012},
        {"{print $1, $2, $3, $4 + 1, $4}", TL_FORMAT_NGRAM2009},
        {"$1 != k {if (NR > 1) print line; k = $1; line = $1 \"\\t\" $2 \",\" $3 \",\" $4; next}"
         " {line = line \"\\t\" $2 \",\" $3 \",\" $4} END {print line}",
         TL_FORMAT_NGRAM2020},
        {"{for (i = 0; i < $3 % 5; i++) printf \"%s \", $1; print \"\"}", TL_FORMAT_TEXT},
    };
    char dir[] = "/tmp/tally-test-format-XXXXXX";
    cr_assert (mkdtemp (dir));
    for (char letter = 'a'; letter <= 'z'; letter++) {
        char sample[1024];
        snprintf (sample, sizeof sample,
                  "%s/data/sample/googlebooks-eng-all-1gram-20120701-%c.head10k.tsv",
                  tl_test_source_dir (), letter);
        for (size_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
            char path[1100];
            snprintf (path, sizeof path, "%s/%c.%zu", dir, letter, i);
            s_rewrite (rewrites[i].program, sample, path);
            size_t size;
            char *data = tl_test_read_file (path, &size);
            //  Detection gets a file's first bytes: the last line is usually cut
            size_t head = size < 1000 ? size : 1000;
            tl_format_t got = tl_format_detect (data, head);
            cr_assert_eq (got, rewrites[i].expected, "%c, rewrite %zu: got %s", letter, i,
                          tl_format_name (got));
            free (data);
            remove (path);
        }
    }
    remove (dir);
}
