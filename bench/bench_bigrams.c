/*  bench_bigrams: writes the deterministic high-cardinality input of bench/cardinality:
    synthetic 2-grams in the Google Books 2012 format (`w1 w2 TAB year TAB match_count
    TAB volume_count`), each key on 1 to 4 consecutive lines (its years, ascending) and
    in one place only, so that the number of distinct keys, not the number of lines,
    is what a counter has to carry: 45,964,061 keys in the default 2 GB.

    Every key is distinct by construction. Key number k (k = block * FILES + file) goes
    through a keyed Feistel permutation of [0, 2^36) to a pair (a, b) of word numbers
    below 2^18, and word number i is spelled as a bijective base-300 numeral of
    syllables (onset, vowel, optional coda, from disjoint letter sets, so the spelling
    parses back to i): distinct k give distinct pairs give distinct keys. About one key
    in twelve has its first word capitalized (which keeps them distinct: the lowercase
    spellings already differ). Counts have a heavy tail, so most totals are small and
    many keys tie: the tie-break of the sorted totals (key bytes) carries real weight.

    The bytes depend only on the seed, the size and the number of files (never on -j):
    each key's lines come from a generator seeded by (seed, k).

    Usage: bench_bigrams [-s TOTAL_MB] [-n FILES] [-j JOBS] [-S SEED] OUTDIR
    Writes OUTDIR/bigram-2012-00.tsv ... (one file per -n, each about TOTAL_MB / FILES). */

#include "gen_common.h"

#include <math.h>
#include <stdbool.h>

#define S_HALF_BITS 18                                   //  Bits of a word number
#define S_HALF_MASK ((UINT64_C (1) << S_HALF_BITS) - 1)  //  Its mask
#define S_KEYS_MAX  (UINT64_C (1) << (2 * S_HALF_BITS))  //  Key numbers the permutation covers
#define S_ROUNDS    4                                    //  Feistel rounds
#define S_KEY_MAX   64                                   //  Longest key is 19 bytes

//  --------------------------------------------------------------------------------------
//  Random numbers: gen_mix, gen_next, gen_unit (gen_common.h).

//  A permutation of [0, 2^36) keyed by the seed: a balanced Feistel network on two
//  18-bit halves. Distinct key numbers give distinct pairs of word numbers.
static uint64_t s_permute (uint64_t k, uint64_t seed)
{
    uint64_t left = (k >> S_HALF_BITS) & S_HALF_MASK, right = k & S_HALF_MASK;
    for (uint64_t round = 0; round < S_ROUNDS; round++) {
        uint64_t f = gen_mix (seed ^ (round << 56) ^ right) & S_HALF_MASK;
        uint64_t next = left ^ f;
        left = right;
        right = next;
    }
    return (left << S_HALF_BITS) | right;
}

//  --------------------------------------------------------------------------------------
//  Words. A syllable is an onset, a vowel and maybe a coda; the three letter sets are
//  disjoint, so a word splits back into its syllables one way only: 12 x 5 x (4 + 1) =
//  300 syllables of 2 or 3 letters.

static const char s_onsets[] = "bdfgklmprstv";
static const char s_vowels[] = "aeiou";
static const char s_codas[] = "nhxz";

#define S_ONSETS    (sizeof s_onsets - 1)
#define S_VOWELS    (sizeof s_vowels - 1)
#define S_CODAS     (sizeof s_codas)  //  A coda or none
#define S_SYLLABLES (S_ONSETS * S_VOWELS * S_CODAS)

//  Writes word number `word` as a bijective base-300 numeral (1 to 3 syllables below
//  2^18: 300 words of one syllable, 90,000 of two, the rest of three) and returns the
//  end. `capital` capitalizes its first letter.
static char *s_put_word (char *p, uint64_t word, bool capital)
{
    char *start = p;
    uint64_t n = word + 1;
    while (n > 0) {
        n--;
        unsigned digit = (unsigned)(n % S_SYLLABLES);
        n /= S_SYLLABLES;
        *p++ = s_onsets[digit % S_ONSETS];
        digit /= S_ONSETS;
        *p++ = s_vowels[digit % S_VOWELS];
        digit /= S_VOWELS;
        if (digit) *p++ = s_codas[digit - 1];
    }
    if (capital) *start = (char)(*start - 'a' + 'A');
    return p;
}

//  Writes key number k (its two words, a space between) into out (at least S_KEY_MAX
//  bytes) and returns its length.
static size_t s_key (uint64_t k, uint64_t seed, char *out)
{
    uint64_t pair = s_permute (k, seed);
    bool capital = gen_mix (seed ^ k ^ UINT64_C (0xCA9)) % 12 == 0;
    char *p = s_put_word (out, pair >> S_HALF_BITS, capital);
    *p++ = ' ';
    p = s_put_word (p, pair & S_HALF_MASK, false);
    return (size_t)(p - out);
}

//  --------------------------------------------------------------------------------------
//  Output

//  Writes key number k's lines: 1 to 4 years (mean 1.75), ascending, a gap now and
//  then, between 1800 and 2008; match counts from a Pareto tail (alpha 1.1, so most
//  are 1 or 2 digits and a few reach millions), volume counts not above them. Returns
//  the number of lines.
static unsigned s_key_lines (gen_out_t *out, uint64_t seed, uint64_t k)
{
    uint64_t rng = gen_mix (seed ^ gen_mix (k ^ UINT64_C (0xB16A)));
    char key[S_KEY_MAX];
    size_t len = s_key (k, seed, key);
    unsigned pick = (unsigned)(gen_next (&rng) % 100);
    unsigned years = pick < 50 ? 1 : pick < 80 ? 2 : pick < 95 ? 3 : 4;
    double weight = pow (gen_unit (gen_next (&rng)), -1.0 / 1.1);
    if (weight > 1e6) weight = 1e6;
    unsigned year = 1800 + (unsigned)(gen_next (&rng) % (2008 - 1800 - 3 * 4 + 1));
    if (out->size + 4 * (len + 64) > GEN_BUFFER) gen_flush (out);
    char *p = out->data + out->size;
    for (unsigned i = 0; i < years; i++) {
        uint64_t bits = gen_next (&rng);
        uint64_t match = 1 + (uint64_t)(weight * gen_unit (bits));
        uint64_t volume = 1 + match / (1 + (bits & 7));
        if (volume > match) volume = match;
        memcpy (p, key, len);
        p += len;
        *p++ = '\t';
        p = gen_put_u64 (p, year);
        *p++ = '\t';
        p = gen_put_u64 (p, match);
        *p++ = '\t';
        p = gen_put_u64 (p, volume);
        *p++ = '\n';
        year += 1 + (unsigned)((bits >> 40) % 8 == 0 ? 1 + (bits >> 44) % 3 : 0);
    }
    size_t bytes = (size_t)(p - (out->data + out->size));
    out->size += bytes;
    out->total += bytes;
    return years;
}

static void s_name (char *path, size_t size, const char *dir, unsigned file, unsigned files)
{
    (void)files;
    snprintf (path, size, "%s/bigram-2012-%02u.tsv", dir, file);
}

//  Fills one file: keys file, file + files, ... until it holds target bytes.
static void s_fill (gen_out_t *out, unsigned file, unsigned files, uint64_t target, uint64_t seed,
                    gen_stats_t *stats)
{
    uint64_t block = 0;
    while (out->total < target && !out->failed) {
        uint64_t k = block * files + file;
        if (k >= S_KEYS_MAX) {
            fprintf (stderr, "bench_bigrams: more than 2^36 keys: make the input smaller\n");
            out->failed = 1;
            break;
        }
        stats->lines += s_key_lines (out, seed, k);
        block++;
    }
    stats->units = block;
}

int main (int argc, char *argv[])
{
    static const gen_spec_t spec = {.name = "bench_bigrams",
                                    .default_mb = 2000,
                                    .default_files = 16,
                                    .max_files = 100,
                                    .units = "distinct keys",
                                    .name_file = s_name,
                                    .fill = s_fill};
    return gen_main (argc, argv, &spec);
}
