/*  tally merge: merges totals files that hold disjoint keys (the parts a job's sink
    shards write, say) into one totals file, in one streaming pass.

    Every part is sorted as a totals file is (total descending, then key bytes
    ascending), so a k-way merge of their lines, one line per part in memory, is the
    totals file of their union: memory is bounded by the longest line, whatever the
    parts' sizes. The parts are read as untrusted input: a line that is not KEY TAB
    TOTAL, a total that is not a decimal number of at most 64 bits, a part that is not
    sorted, or a key twice is an error that names the file and the line; the output is
    then not written (it appears whole, by tl_replace, or not at all).

    Keys of different parts must differ. A key in two parts with the same total is
    found (the two lines meet); with different totals it cannot be without holding
    every key, so it is the caller's promise, as it is of a job's shards.               */

#include "merge.h"
#include "tl_bar.h"
#include "tl_opts.h"
#include "tl_replace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  One part being read: its current line and the one before it (for the order check).
typedef struct {
    const char *path;   //  File name
    FILE *file;         //  Open for reading
    char *line[2];      //  getline buffers: the current line and the previous one
    size_t cap[2];      //  Their sizes
    int cur;            //  Which buffer holds the current line
    size_t key_len[2];  //  Key bytes of each
    uint64_t total[2];  //  Total of each
    uint64_t lineno;    //  Line number of the current line
} s_part_t;

typedef struct {
    s_part_t *parts;         //  Every part
    size_t nparts;           //  How many
    s_part_t **heap;         //  Parts with a current line, the next to write on top
    size_t nheap;            //  How many
    char error[4096 + 256];  //  What went wrong, naming the file
} s_merge_t;

//  Whether line a (key_a, total_a) comes before line b in a totals file.
static int s_compare (const char *key_a, size_t len_a, uint64_t total_a, const char *key_b,
                      size_t len_b, uint64_t total_b)
{
    if (total_a != total_b) return total_a > total_b ? -1 : 1;
    size_t len = len_a < len_b ? len_a : len_b;
    int rc = memcmp (key_a, key_b, len);
    if (rc) return rc < 0 ? -1 : 1;
    return len_a < len_b ? -1 : len_a > len_b ? 1 : 0;
}

static int s_part_compare (const s_part_t *a, const s_part_t *b)
{
    return s_compare (a->line[a->cur], a->key_len[a->cur], a->total[a->cur], b->line[b->cur],
                      b->key_len[b->cur], b->total[b->cur]);
}

static int s_fail (s_merge_t *self, const s_part_t *part, const char *why)
{
    snprintf (self->error, sizeof self->error, "%s:%llu: %s", part->path,
              (unsigned long long)part->lineno, why);
    return -1;
}

//  Parses a total: 1 to 20 decimal digits, at most 2^64 - 1. Returns 0 or -1.
static int s_parse_total (const char *digits, size_t len, uint64_t *total)
{
    if (len == 0 || len > 20) return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9') return -1;
        uint64_t digit = (uint64_t)(digits[i] - '0');
        if (n > (UINT64_MAX - digit) / 10) return -1;
        n = n * 10 + digit;
    }
    *total = n;
    return 0;
}

//  Reads the part's next line. Returns 1 with it current, 0 at the end of the file, or
//  -1 with the error set (unreadable, malformed, out of order).
static int s_advance (s_merge_t *self, s_part_t *part)
{
    int next = part->lineno ? !part->cur : part->cur;
    errno = 0;
    ssize_t len = getline (&part->line[next], &part->cap[next], part->file);
    if (len < 0) {
        if (errno && !feof (part->file)) return s_fail (self, part, strerror (errno));
        return 0;
    }
    part->lineno++;
    char *line = part->line[next];
    if (line[len - 1] == '\n') line[--len] = 0;
    char *tab = memrchr (line, '\t', (size_t)len);
    uint64_t total;
    if (!tab) return s_fail (self, part, "not KEY<TAB>TOTAL (no TAB)");
    if (s_parse_total (tab + 1, (size_t)(line + len - (tab + 1)), &total) != 0)
        return s_fail (self, part, "the total is not a decimal number below 2^64");
    part->key_len[next] = (size_t)(tab - line);
    part->total[next] = total;
    if (part->lineno > 1) {
        int prev = !next;
        int order = s_compare (part->line[prev], part->key_len[prev], part->total[prev], line,
                               part->key_len[next], total);
        if (order == 0) return s_fail (self, part, "the key of the line before, again");
        if (order > 0)
            return s_fail (self, part,
                           "not sorted as a totals file is (total descending, then key)");
    }
    part->cur = next;
    return 1;
}

static void s_sift_down (s_merge_t *self, size_t at)
{
    s_part_t **heap = self->heap;
    for (;;) {
        size_t left = 2 * at + 1, best = at;
        if (left < self->nheap && s_part_compare (heap[left], heap[best]) < 0) best = left;
        if (left + 1 < self->nheap && s_part_compare (heap[left + 1], heap[best]) < 0)
            best = left + 1;
        if (best == at) return;
        s_part_t *swap = heap[at];
        heap[at] = heap[best];
        heap[best] = swap;
        at = best;
    }
}

//  Writes the merged lines to out. Returns 0 or -1 (error set).
static int s_merge (s_merge_t *self, FILE *out, tl_bar_t *bar, uint64_t input_bytes, uint64_t *keys,
                    uint64_t *sum)
{
    for (size_t i = 0; i < self->nparts; i++) {
        int rc = s_advance (self, &self->parts[i]);
        if (rc < 0) return -1;
        if (rc) self->heap[self->nheap++] = &self->parts[i];
    }
    for (size_t i = self->nheap; i-- > 0;)
        s_sift_down (self, i);
    //  The line written last, for the check that no key comes from two parts
    char *last = NULL;
    size_t last_cap = 0, last_len = 0;
    uint64_t last_total = 0;
    const char *last_path = NULL;
    uint64_t read_bytes = 0;
    int rc = 0;
    while (self->nheap > 0 && rc == 0) {
        s_part_t *top = self->heap[0];
        const char *key = top->line[top->cur];
        size_t len = top->key_len[top->cur];
        uint64_t total = top->total[top->cur];
        if (*keys > 0 && last_total == total && last_len == len && memcmp (last, key, len) == 0) {
            snprintf (self->error, sizeof self->error,
                      "%s:%llu: its key is in %s too: the parts must hold different keys (as a "
                      "job's shards do)",
                      top->path, (unsigned long long)top->lineno, last_path);
            rc = -1;
            break;
        }
        if (fwrite (key, 1, len, out) != len ||
            fprintf (out, "\t%llu\n", (unsigned long long)total) < 0) {
            snprintf (self->error, sizeof self->error, "cannot write: %s", strerror (errno));
            rc = -1;
            break;
        }
        if (len + 1 > last_cap) {
            char *grown = realloc (last, len + 1);
            if (!grown) {
                snprintf (self->error, sizeof self->error, "out of memory");
                rc = -1;
                break;
            }
            last = grown;
            last_cap = len + 1;
        }
        memcpy (last, key, len);
        last_len = len;
        last_total = total;
        last_path = top->path;
        (*keys)++;
        *sum = *sum + total < *sum ? UINT64_MAX : *sum + total;
        read_bytes += len + 22;  //  About: the bar needs no exact count
        if ((*keys & 0xffff) == 0) {
            uint64_t at = read_bytes < input_bytes ? read_bytes : input_bytes;
            tl_bar_update (bar, at, at, self->nparts - self->nheap, self->nparts, true);
        }
        int more = s_advance (self, top);
        if (more < 0)
            rc = -1;
        else if (!more)
            self->heap[0] = self->heap[--self->nheap];
        if (self->nheap) s_sift_down (self, 0);
    }
    free (last);
    return rc;
}

int tl_merge_main (int argc, char **argv)
{
    const char *output = "totals.tsv", *progress_name = "auto";
    bool quiet = false;
    tl_opt_t opts[] = {
        TL_OPT ("output", 'o', "TALLY_OUTPUT", TL_OPT_STR, &output, "FILE",
                "The merged totals file, written whole or not at all; - for standard output "
                "(default totals.tsv)",
                0, 0),
        TL_OPT ("progress", 0, "TALLY_PROGRESS", TL_OPT_STR, &progress_name, "MODE",
                "auto (a bar on a terminal, log lines otherwise), bar, log or none", 0, 0),
        TL_OPT_QUIET (quiet),
    };
    tl_cli_t cli = {.program = "tally merge",
                    .usage = "[OPTIONS] PART...",
                    .summary = "Merges totals files that hold different keys (the parts of a job's "
                               "sink shards) into one,\nsorted as a totals file is, in one "
                               "streaming pass.",
                    TL_CLI_OPTS (opts),
                    .min_args = 1,
                    .max_args = -1};
    int first = tl_cli_parse (&cli, argc, argv);
    tl_bar_mode_t mode;
    if (tl_bar_mode_parse (progress_name, &mode) != 0)
        tl_cli_usage_error (&cli, "--progress must be auto, bar, log or none");
    if (!*output) tl_cli_usage_error (&cli, "--output is empty");
    bool to_stdout = strcmp (output, "-") == 0;

    s_merge_t self = {.nparts = (size_t)(argc - first)};
    self.parts = calloc (self.nparts, sizeof *self.parts);
    self.heap = calloc (self.nparts, sizeof *self.heap);
    if (!self.parts || !self.heap) {
        fprintf (stderr, "tally merge: out of memory\n");
        return 1;
    }
    int status = 1;
    uint64_t input_bytes = 0;
    for (size_t i = 0; i < self.nparts; i++) {
        s_part_t *part = &self.parts[i];
        part->path = argv[first + (int)i];
        struct stat st;
        if (!(part->file = fopen (part->path, "re")) || fstat (fileno (part->file), &st) != 0) {
            fprintf (stderr, "tally merge: %s: %s\n", part->path, strerror (errno));
            goto done;
        }
        if (S_ISDIR (st.st_mode)) {
            fprintf (stderr, "tally merge: %s: %s\n", part->path, strerror (EISDIR));
            goto done;
        }
        input_bytes += (uint64_t)st.st_size;
    }
    tl_replace_t *replace = NULL;
    FILE *out = stdout;
    if (!to_stdout) {
        if (!(replace = tl_replace_new (output, 0666))) {
            fprintf (stderr, "tally merge: cannot write %s: %s\n", output, strerror (errno));
            goto done;
        }
        out = tl_replace_file (replace);
    }
    tl_bar_t *bar = tl_bar_new ("merge", input_bytes, quiet ? TL_BAR_NONE : mode);
    tl_bar_set_unit (bar, "parts done");
    uint64_t keys = 0, sum = 0;
    int rc = s_merge (&self, out, bar, input_bytes, &keys, &sum);
    if (rc == 0) tl_bar_update (bar, input_bytes, input_bytes, self.nparts, self.nparts, true);
    tl_bar_finish (bar);
    tl_bar_destroy (&bar);
    if (rc == 0 && to_stdout && fflush (stdout) != 0) {
        snprintf (self.error, sizeof self.error, "cannot write: %s", strerror (errno));
        rc = -1;
    }
    if (rc == 0 && replace && tl_replace_commit (&replace, NULL) != 0) {
        snprintf (self.error, sizeof self.error, "cannot write %s: %s", output, strerror (errno));
        rc = -1;
    }
    tl_replace_destroy (&replace);
    if (rc != 0) {
        fprintf (stderr, "tally merge: %s%s\n", self.error, to_stdout ? "" : "; nothing written");
        goto done;
    }
    if (!quiet)
        fprintf (to_stdout ? stderr : stdout, "%zu parts merged: %llu keys, sum %llu%s%s\n",
                 self.nparts, (unsigned long long)keys, (unsigned long long)sum,
                 to_stdout ? "" : " -> ", to_stdout ? "" : output);
    status = 0;
done:
    for (size_t i = 0; i < self.nparts; i++) {
        if (self.parts[i].file) fclose (self.parts[i].file);
        free (self.parts[i].line[0]);
        free (self.parts[i].line[1]);
    }
    free (self.parts);
    free (self.heap);
    return status;
}
