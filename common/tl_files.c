/*  tl_files: the input file list of a job, expanded and checked up front.  */

#include "tl_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int s_push (tl_files_t *files, size_t *capacity, const char *name)
{
    if (files->count == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 16;
        char **names = realloc (files->names, grown * sizeof *names);
        if (!names) return -1;
        files->names = names;
        *capacity = grown;
    }
    if (!(files->names[files->count] = strdup (name))) return -1;
    files->count++;
    return 0;
}

static int s_compare (const void *a, const void *b)
{
    return strcmp (*(char *const *)a, *(char *const *)b);
}

//  Opens the file to prove it is readable, and adds its size.
static int s_check (tl_files_t *files, const char *name, char *error, size_t size)
{
    int fd = open (name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd == -1 || fstat (fd, &st) == -1) {
        snprintf (error, size, "cannot read '%s': %s", name, strerror (errno));
        if (fd != -1) close (fd);
        return -1;
    }
    close (fd);
    if (!S_ISREG (st.st_mode) && !S_ISFIFO (st.st_mode) && !S_ISCHR (st.st_mode)) {
        snprintf (error, size, "cannot read '%s': not a regular file", name);
        return -1;
    }
    if (S_ISREG (st.st_mode)) files->bytes += (uint64_t)st.st_size;
    return 0;
}

static int s_expand_dir (tl_files_t *files, size_t *capacity, const char *path, char *error,
                         size_t size)
{
    DIR *dir = opendir (path);
    if (!dir) {
        snprintf (error, size, "cannot read folder '%s': %s", path, strerror (errno));
        return -1;
    }
    size_t first = files->count;
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir (dir))) {
        if (entry->d_name[0] == '.') continue;
        char *name;
        if (asprintf (&name, "%s/%s", path, entry->d_name) < 0) {
            rc = -1;
            break;
        }
        struct stat st;
        if (stat (name, &st) == 0 && S_ISREG (st.st_mode)) rc = s_push (files, capacity, name);
        free (name);
    }
    closedir (dir);
    if (rc != 0) {
        snprintf (error, size, "out of memory listing '%s'", path);
        return -1;
    }
    if (files->count == first) {
        snprintf (error, size, "folder '%s' holds no files", path);
        return -1;
    }
    qsort (files->names + first, files->count - first, sizeof *files->names, s_compare);
    for (size_t i = first; i < files->count; i++)
        if (s_check (files, files->names[i], error, size) != 0) return -1;
    return 0;
}

int tl_files_expand (tl_files_t *files, char *const *paths, size_t npaths, char *error, size_t size)
{
    memset (files, 0, sizeof *files);
    size_t capacity = 0;
    for (size_t i = 0; i < npaths; i++) {
        struct stat st;
        if (stat (paths[i], &st) == 0 && S_ISDIR (st.st_mode)) {
            if (s_expand_dir (files, &capacity, paths[i], error, size) != 0) goto failed;
        } else if (s_check (files, paths[i], error, size) != 0 ||
                   s_push (files, &capacity, paths[i]) != 0)
            goto failed;
    }
    return 0;
failed:
    tl_files_free (files);
    return -1;
}

void tl_files_free (tl_files_t *files)
{
    for (size_t i = 0; i < files->count; i++)
        free (files->names[i]);
    free (files->names);
    memset (files, 0, sizeof *files);
}
