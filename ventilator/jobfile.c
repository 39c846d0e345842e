/*  tl_jobfile: the ventilator's job file (see jobfile.h).                           */

#include "jobfile.h"
#include "tl_replace.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HEADER "tally-ventilator job 1"

void tl_jobfile_free (tl_jobfile_t *job)
{
    assert (job);
    free (job->spec);
    for (size_t i = 0; i < job->nfiles && job->names; i++)
        free (job->names[i]);
    free (job->names);
    free (job->ids);
    memset (job, 0, sizeof *job);
}

//  Reads one line into *line (growing it), without its LF (the file's last line may
//  lack it). Returns its length, or -1 at the end of the file or for a line that holds
//  a NUL byte.
static ssize_t s_line (FILE *file, char **line, size_t *cap)
{
    ssize_t len = getline (line, cap, file);
    if (len <= 0) return -1;
    if ((*line)[len - 1] == '\n') (*line)[--len] = 0;
    return strlen (*line) == (size_t)len ? len : -1;
}

static int s_hex_digit (char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

//  Exactly 2 x bytes lower-case hex digits into out.
static int s_hex (const char *text, uint8_t *out, size_t bytes)
{
    if (strlen (text) != 2 * bytes) return -1;
    for (size_t i = 0; i < bytes; i++) {
        int high = s_hex_digit (text[2 * i]), low = s_hex_digit (text[2 * i + 1]);
        if (high < 0 || low < 0) return -1;
        out[i] = (uint8_t)(high << 4 | low);
    }
    return 0;
}

//  A decimal number (with a '-' in front when signed allows it) that fits in 64 bits,
//  unsigned or signed, followed by one space; advances *at past the space. Returns 0
//  or -1.
static int s_number (const char **at, bool is_signed, uint64_t *value)
{
    const char *p = *at;
    bool minus = is_signed && *p == '-';
    if (minus) p++;
    uint64_t n = 0;
    const char *digits = p;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (n > (UINT64_MAX - digit) / 10) return -1;
        n = n * 10 + digit;
    }
    if (p == digits || *p != ' ') return -1;
    if (is_signed && n > (minus ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) return -1;
    *value = minus ? (uint64_t)0 - n : n;  //  Two's complement: as int64, -n
    *at = p + 1;
    return 0;
}

int tl_jobfile_read (const char *path, tl_jobfile_t *job, char *error, size_t size)
{
    assert (path && job && error);
    memset (job, 0, sizeof *job);
    FILE *file = fopen (path, "re");
    if (!file) {
        if (errno == ENOENT) return 0;
        snprintf (error, size, "cannot read %s: %s", path, strerror (errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;
    char hex[2 * TL_SECRET_SIZE + 2];
    unsigned long long id;
    size_t nfiles;
    int used = 0;
    if (s_line (file, &line, &cap) < 0 || strcmp (line, S_HEADER) != 0) goto bad;
    if (s_line (file, &line, &cap) < 0 || sscanf (line, "id %16llx%n", &id, &used) != 1 ||
        line[used])
        goto bad;
    job->id = id;
    if (s_line (file, &line, &cap) < 0 || strncmp (line, "secret ", 7) != 0 ||
        strlen (line + 7) >= sizeof hex)
        goto bad;
    snprintf (hex, sizeof hex, "%s", line + 7);
    if (s_hex (hex, job->secret, TL_SECRET_SIZE) != 0) goto bad;
    if (s_line (file, &line, &cap) < 0 || strncmp (line, "spec ", 5) != 0) goto bad;
    if (!(job->spec = strdup (line + 5))) goto oom;
    used = 0;
    if (s_line (file, &line, &cap) < 0 || sscanf (line, "files %zu%n", &nfiles, &used) != 1 ||
        line[used] || nfiles == 0 || nfiles > TL_FILES_MAX)
        goto bad;
    job->names = calloc (nfiles, sizeof *job->names);
    job->ids = calloc (nfiles, sizeof *job->ids);
    if (!job->names || !job->ids) goto oom;
    for (size_t i = 0; i < nfiles; i++) {
        uint64_t fsize, sec, nsec;
        if (s_line (file, &line, &cap) < 0) goto bad;
        const char *at = line;
        //  SIZE SECONDS NANOSECONDS NAME, one space each: the name is the rest of the
        //  line as it is, blanks included
        if (s_number (&at, false, &fsize) || s_number (&at, true, &sec) ||
            s_number (&at, false, &nsec) || nsec > 999999999 || !*at)
            goto bad;
        job->ids[i] =
            (tl_file_id_t){.size = fsize, .mtime = (int64_t)sec, .mtime_ns = (int64_t)nsec};
        if (!(job->names[i] = strdup (at))) goto oom;
        job->nfiles = i + 1;
    }
    if (fgetc (file) != EOF) goto bad;  //  Nothing after the last file
    rc = 1;
    goto done;
oom:
    snprintf (error, size, "%s: out of memory", path);
    goto done;
bad:
    snprintf (error, size, "%s is not a job file this ventilator wrote", path);
done:
    free (line);
    fclose (file);
    if (rc != 1) tl_jobfile_free (job);
    return rc;
}

int tl_jobfile_write (const char *path, const tl_jobfile_t *job, char *error, size_t size)
{
    assert (path && job && error);
    for (size_t i = 0; i < job->nfiles; i++)
        if (strchr (job->names[i], '\n')) {
            snprintf (error, size, "a file name holds a line feed: it cannot be kept in %s", path);
            return -1;
        }
    tl_replace_t *replace = tl_replace_new (path, 0600);
    if (!replace) {
        snprintf (error, size, "cannot write %s: %s", path, strerror (errno));
        return -1;
    }
    FILE *file = tl_replace_file (replace);
    fprintf (file, "%s\nid %016llx\nsecret ", S_HEADER, (unsigned long long)job->id);
    for (size_t i = 0; i < TL_SECRET_SIZE; i++)
        fprintf (file, "%02x", job->secret[i]);
    fprintf (file, "\nspec %s\nfiles %zu\n", job->spec, job->nfiles);
    for (size_t i = 0; i < job->nfiles; i++)
        fprintf (file, "%" PRIu64 " %" PRId64 " %" PRId64 " %s\n", job->ids[i].size,
                 job->ids[i].mtime, job->ids[i].mtime_ns, job->names[i]);
    if (ferror (file) || tl_replace_commit (&replace, NULL) != 0) {
        snprintf (error, size, "cannot write %s: %s", path, strerror (errno));
        tl_replace_destroy (&replace);
        return -1;
    }
    return 0;
}
