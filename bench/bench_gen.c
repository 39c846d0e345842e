/*  bench_gen: writes the deterministic test data of bench/run, shaped like the Google
    Books 2012 1-grams: `ngram TAB year TAB match_count TAB volume_count` lines, each
    key's years on consecutive lines (1 to 120 of them), heavy-tailed (Zipf-like)
    counts, keys of realistic lengths, about two in three POS-tagged (word_NOUN), a few
    in UTF-8 or holding quotes and backslashes. Every key is in two neighbouring files
    and a set of common words is in all of them, so totals must be merged across files.

    The bytes depend only on the seed, the size and the number of files (never on -j):
    every block of lines draws from its own generator, seeded by (seed, file, block).

    Usage: bench_gen [-s TOTAL_MB] [-n FILES] [-j JOBS] [-S SEED] OUTDIR
    Writes OUTDIR/ngram-2012-a.tsv ... (-z, ... past 26 files: ngram-2012-NNN.tsv).  */

#include "gen_common.h"

#include <math.h>
#include <stdbool.h>

#define S_COMMON_BASE  (UINT64_C (1) << 40)  //  Key ids of the words common to every file
#define S_COMMON_EVERY 64                    //  One block in this many is a common word
#define S_COMMON_KEYS  (3 * 1500)            //  Common key ids (word x 3 variants)
#define S_FILE_STRIDE  (UINT64_C (1) << 32)  //  Key ids owned by one file
#define S_KEY_MAX      256                   //  Longest key this generator makes

//  --------------------------------------------------------------------------------------
//  Random numbers: gen_mix, gen_next, gen_unit (gen_common.h).

//  --------------------------------------------------------------------------------------
//  Keys. A key id names a word and a variant: untagged, its main POS tag, another tag.

static const char *s_common_words[] = {
    "the",   "of",    "and",   "to",    "in",    "a",     "is",     "that",  "for",   "it",
    "as",    "was",   "with",  "be",    "by",    "on",    "not",    "he",    "I",     "this",
    "are",   "or",    "his",   "from",  "at",    "which", "but",    "have",  "an",    "had",
    "they",  "you",   "were",  "their", "one",   "all",   "we",     "can",   "her",   "has",
    "there", "been",  "if",    "more",  "when",  "will",  "would",  "who",   "so",    "no",
    "The",   "It",    "In",    "This",  "time",  "man",   "new",    "state", "world", "life",
    "water", "house", "great", "years", "other", "first", "people", "about", "into",  "only"};

static const char *s_onsets[] = {"",   "",   "",   "b",  "c",  "d",  "f", "g",  "h",  "k",
                                 "l",  "l",  "m",  "n",  "n",  "p",  "r", "r",  "s",  "s",
                                 "t",  "t",  "v",  "w",  "y",  "z",  "j", "br", "ch", "cr",
                                 "pl", "st", "th", "tr", "sh", "gr", "qu"};
static const char *s_nuclei[] = {"a", "a", "e", "e",  "e",  "i",  "i",  "o",
                                 "o", "u", "y", "ea", "ou", "io", "ai", "ee"};
static const char *s_codas[] = {"",  "",  "",  "",  "n", "n",  "r",  "r",  "s",  "s",
                                "t", "t", "l", "m", "d", "nd", "st", "ng", "ck", "x"};
//  Latin letters with diacritics (2 bytes each in UTF-8)
static const char *s_accented[] = {"é", "è", "ê", "ü", "ö", "ä", "ø", "å", "á", "í", "ó", "ñ", "ç"};
//  Cyrillic and Greek syllables (4 bytes each)
static const char *s_cyrillic[] = {"ка", "ро", "ли", "ми", "на", "то", "ве", "да", "сл", "ов"};
static const char *s_greek[] = {"λο", "γο", "κα", "μα", "θε", "ος", "πο", "λι"};
//  CJK characters (3 bytes each)
static const char *s_cjk[] = {"中", "国", "人", "大", "学", "日", "本", "文", "字", "山"};
//  POS tags of the 2012 corpus, the first ones most frequent
static const char *s_tags[] = {"_NOUN", "_NOUN", "_NOUN", "_NOUN", "_NOUN", "_VERB",
                               "_VERB", "_ADJ",  "_ADJ",  "_ADV",  "_NUM",  "_X",
                               "_PRT",  "_DET",  "_ADP",  "_PRON", "_CONJ", "_."};

#define S_COUNT(array) (sizeof (array) / sizeof (array)[0])

static char *s_put (char *p, const char *text)
{
    size_t len = strlen (text);
    memcpy (p, text, len);
    return p + len;
}

//  A pronounceable lowercase word of 1 to max_syllables syllables.
static char *s_put_syllables (char *p, uint64_t *rng, int max_syllables, bool accents)
{
    unsigned pick = (unsigned)(gen_next (rng) % 100);
    int syllables = pick < 30 ? 1 : pick < 72 ? 2 : pick < 92 ? 3 : pick < 98 ? 4 : 5;
    if (syllables > max_syllables) syllables = max_syllables;
    for (int i = 0; i < syllables; i++) {
        uint64_t bits = gen_next (rng);
        p = s_put (p, s_onsets[bits % S_COUNT (s_onsets)]);
        bits /= S_COUNT (s_onsets);
        if (accents && bits % 2)
            p = s_put (p, s_accented[(bits / 2) % S_COUNT (s_accented)]);
        else
            p = s_put (p, s_nuclei[(bits / 2) % S_COUNT (s_nuclei)]);
        bits /= 2 * 16;
        if ((i == syllables - 1 && bits % 3 != 0) || bits % 5 == 0)
            p = s_put (p, s_codas[(bits / 3) % S_COUNT (s_codas)]);
    }
    return p;
}

//  Writes word number `word` (its spelling depends only on the number) and returns the
//  end. Common words are short; a few words are numbers, abbreviations, UTF-8 or hold
//  quotes, apostrophes, hyphens or backslashes, as the real corpus does.
static char *s_put_word (char *p, uint64_t word, bool common)
{
    uint64_t rng = gen_mix (word ^ (common ? UINT64_C (0xC0FFEE) : 0));
    if (common && word < S_COUNT (s_common_words)) return s_put (p, s_common_words[word]);
    if (common) return s_put_syllables (p, &rng, 2, false);
    char *start = p;
    unsigned kind = (unsigned)(gen_next (&rng) % 1000);
    if (kind < 15)  //  Latin with diacritics
        p = s_put_syllables (p, &rng, 4, true);
    else if (kind < 20) {  //  Cyrillic or Greek
        bool greek = kind < 17;
        int n = 1 + (int)(gen_next (&rng) % 4);
        for (int i = 0; i < n; i++)
            p = s_put (p, greek ? s_greek[gen_next (&rng) % S_COUNT (s_greek)]
                                : s_cyrillic[gen_next (&rng) % S_COUNT (s_cyrillic)]);
    } else if (kind < 22) {  //  CJK
        int n = 1 + (int)(gen_next (&rng) % 3);
        for (int i = 0; i < n; i++)
            p = s_put (p, s_cjk[gen_next (&rng) % S_COUNT (s_cjk)]);
    } else if (kind < 50) {  //  Numbers: 1847, 3.14, 12,000
        uint64_t bits = gen_next (&rng);
        p += sprintf (p, "%u", (unsigned)(bits % 100000));
        if (bits % 7 == 0)
            p += sprintf (p, ".%u", (unsigned)((bits >> 20) % 100));
        else if (bits % 7 == 1)
            p += sprintf (p, ",%03u", (unsigned)((bits >> 20) % 1000));
    } else if (kind < 80) {  //  Apostrophes: word's, don't, O'Brien
        p = s_put_syllables (p, &rng, 3, false);
        p = s_put (p, kind < 60 ? "'s" : kind < 70 ? "n't" : "'");
    } else if (kind < 85) {  //  Double quotes inside or around
        if (kind % 2) p = s_put (p, "\"");
        p = s_put_syllables (p, &rng, 3, false);
        p = s_put (p, "\"");
    } else if (kind < 87) {  //  Backslash
        p = s_put_syllables (p, &rng, 2, false);
        p = s_put (p, "\\");
        p = s_put_syllables (p, &rng, 2, false);
    } else if (kind < 110) {  //  Hyphenated
        p = s_put_syllables (p, &rng, 3, false);
        p = s_put (p, "-");
        p = s_put_syllables (p, &rng, 3, false);
    } else if (kind < 130) {  //  Abbreviations: A.J.B.
        int n = 1 + (int)(gen_next (&rng) % 4);
        for (int i = 0; i < n; i++) {
            *p++ = (char)('A' + gen_next (&rng) % 26);
            *p++ = '.';
        }
    } else
        p = s_put_syllables (p, &rng, 5, false);
    uint64_t bits = gen_next (&rng);
    if (bits % 100 < 15 && *start >= 'a' && *start <= 'z')
        *start = (char)(*start - 'a' + 'A');
    else if (bits % 100 == 15)
        for (char *c = start; c < p; c++)
            if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    return p;
}

//  Writes key `id` into out (at least S_KEY_MAX bytes) and returns its length.
static size_t s_key (uint64_t id, char *out)
{
    bool common = id >= S_COMMON_BASE;
    uint64_t local = common ? id - S_COMMON_BASE : id;
    uint64_t word = local / 3;
    unsigned variant = (unsigned)(local % 3);
    char *p = s_put_word (out, word, common);
    if (variant > 0) {
        size_t tag = gen_mix (word ^ UINT64_C (0x7A6)) % S_COUNT (s_tags);
        if (variant == 2)  //  Another tag than the main one
            tag = (tag + 5 + gen_mix (word) % 7) % S_COUNT (s_tags);
        p = s_put (p, s_tags[tag]);
    }
    return (size_t)(p - out);
}

//  Mean match count per year of a key: Zipf over the common words' ranks, a Pareto
//  tail (alpha 0.8, capped) for the rest, so most keys are rare and a few are huge.
static double s_weight (uint64_t id)
{
    if (id >= S_COMMON_BASE) {
        uint64_t local = id - S_COMMON_BASE;
        static const double variant_share[] = {1.0, 0.6, 0.1};
        return 3e8 / pow ((double)(local / 3 + 1), 1.05) * variant_share[local % 3];
    }
    double w = pow (gen_unit (gen_mix (id ^ UINT64_C (0x5EED))), -1.0 / 0.8);
    return w < 1e7 ? w : 1e7;
}

//  --------------------------------------------------------------------------------------
//  Output

//  Writes one key's block: its years, ascending, on consecutive lines.
static uint64_t s_block (gen_out_t *out, uint64_t seed, unsigned file, uint64_t block, uint64_t id)
{
    uint64_t rng = gen_mix (seed ^ gen_mix (((uint64_t)file << 40) ^ block));
    char key[S_KEY_MAX];
    size_t len = s_key (id, key);
    double weight = s_weight (id) * (0.5 + gen_unit (gen_next (&rng)));
    unsigned years;
    if (id >= S_COMMON_BASE)
        years = 90 + (unsigned)(gen_next (&rng) % 31);
    else {
        double u = gen_unit (gen_next (&rng));
        years = 1 + (unsigned)(119 * u * u * u);
        if (weight > 10) years += (unsigned)(10 * log10 (weight));
        if (years > 120) years = 120;
    }
    //  Years end at 2008 or a little before, with a few gaps, never before 1505.
    unsigned gaps = (unsigned)(gen_next (&rng) % (3 * years + 1));
    unsigned end = 2008 - (unsigned)(gen_next (&rng) % 4 == 0 ? gen_next (&rng) % 60 : 0);
    if (end - 1505 + 1 < years + gaps) gaps = end - 1505 + 1 - years;
    unsigned year = end - (years - 1) - gaps;

    for (unsigned i = 0; i < years; i++) {
        if (out->size + len + 64 > GEN_BUFFER) gen_flush (out);
        uint64_t bits = gen_next (&rng);
        uint64_t match = 1 + (uint64_t)(weight * (0.25 + 1.5 * gen_unit (bits)));
        uint64_t volume = 1 + match / (1 + (bits & 7));
        if (volume > match) volume = match;
        char *p = out->data + out->size;
        memcpy (p, key, len);
        p += len;
        *p++ = '\t';
        p = gen_put_u64 (p, year);
        *p++ = '\t';
        p = gen_put_u64 (p, match);
        *p++ = '\t';
        p = gen_put_u64 (p, volume);
        *p++ = '\n';
        size_t line = (size_t)(p - (out->data + out->size));
        out->size += line;
        out->total += line;
        //  Spend the gaps early or late, never past the end year
        unsigned skip = 0;
        if (gaps && (bits >> 40) % 3 == 0) {
            skip = 1 + (unsigned)((bits >> 44) % 3);
            skip = skip < gaps ? skip : gaps;
            gaps -= skip;
        }
        year += 1 + skip;
    }
    return years;
}

//  Key id of a file's block: common words now and then; else, alternately, a key of
//  this file's own range and one of the next file's, so each key is in two files.
static uint64_t s_block_key (unsigned file, unsigned files, uint64_t block)
{
    if (block % S_COMMON_EVERY == 0)
        return S_COMMON_BASE + (block / S_COMMON_EVERY * 7 + file * 131) % S_COMMON_KEYS;
    uint64_t half = block / 2;
    unsigned owner = block % 2 ? (file + 1) % files : file;
    return (uint64_t)owner * S_FILE_STRIDE + half;
}

static void s_name (char *path, size_t size, const char *dir, unsigned file, unsigned files)
{
    if (files <= 26)
        snprintf (path, size, "%s/ngram-2012-%c.tsv", dir, 'a' + file);
    else
        snprintf (path, size, "%s/ngram-2012-%03u.tsv", dir, file);
}

//  Fills one file: blocks of keys until it holds target bytes.
static void s_fill (gen_out_t *out, unsigned file, unsigned files, uint64_t target, uint64_t seed,
                    gen_stats_t *stats)
{
    uint64_t block = 0;
    while (out->total < target && !out->failed) {
        stats->lines += s_block (out, seed, file, block, s_block_key (file, files, block));
        block++;
    }
    stats->units = block;
}

int main (int argc, char *argv[])
{
    static const gen_spec_t spec = {.name = "bench_gen",
                                    .default_mb = 1600,
                                    .default_files = 26,
                                    .max_files = 1000,
                                    .units = "key blocks",
                                    .name_file = s_name,
                                    .fill = s_fill};
    return gen_main (argc, argv, &spec);
}
