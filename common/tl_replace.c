/*  tl_replace: a file replaced whole through a temporary file (see replace.h).     */

#include "tl_replace.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _tl_replace_t {
    char *path;  //  The file to replace
    char *temp;  //  The temporary file beside it (mkostemp's name)
    FILE *file;  //  Stream on the temporary file
};

//  Makes a temporary file beside path; sets *temp_p to its name (the caller frees
//  it). Returns its descriptor, or -1 with errno set.
static int s_make_temp (const char *path, char **temp_p)
{
    char *temp;
    if (asprintf (&temp, "%s.tmp.XXXXXX", path) < 0) return -1;
    int fd = mkostemp (temp, O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        free (temp);
        errno = saved;
        return -1;
    }
    *temp_p = temp;
    return fd;
}

//  The process's umask. umask(2) cannot be read without being set: set it back at
//  once (the sink's other threads are libzmq's, which create no files).
static mode_t s_umask (void)
{
    mode_t mask = umask (077);
    umask (mask);
    return mask;
}

tl_replace_t *tl_replace_new (const char *path, mode_t mode)
{
    assert (path);
    tl_replace_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    int fd = -1;
    if ((self->path = strdup (path))) fd = s_make_temp (path, &self->temp);
    //  mkostemp makes the file 0600: widen it to what the caller asked for.
    if (fd >= 0 && (mode & 0777) != 0600 && fchmod (fd, mode & 0777 & ~s_umask ()) != 0) {
        close (fd);
        fd = -1;
    }
    if (fd >= 0 && !(self->file = fdopen (fd, "w"))) close (fd);
    if (!self->file) {
        tl_replace_destroy (&self);
        return NULL;
    }
    return self;
}

void tl_replace_destroy (tl_replace_t **self_p)
{
    assert (self_p);
    tl_replace_t *self = *self_p;
    if (!self) return;
    int saved = errno;
    if (self->file) fclose (self->file);
    if (self->temp) unlink (self->temp);
    free (self->temp);
    free (self->path);
    free (self);
    *self_p = NULL;
    errno = saved;
}

FILE *tl_replace_file (tl_replace_t *self)
{
    assert (self);
    return self->file;
}

//  Fsyncs the folder that holds path, so that a rename there is on disk.
static int s_sync_folder (const char *path)
{
    const char *slash = strrchr (path, '/');
    char *folder =
        slash ? strndup (path, slash == path ? 1 : (size_t)(slash - path)) : strdup (".");
    if (!folder) return -1;
    int fd = open (folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free (folder);
    if (fd < 0) return -1;
    //  A file system that cannot sync a folder says EINVAL: nothing more can be done.
    int rc = fsync (fd) == 0 || errno == EINVAL ? 0 : -1;
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

int tl_replace_commit (tl_replace_t **self_p, int *read_fd)
{
    assert (self_p && *self_p);
    tl_replace_t *self = *self_p;
    if (read_fd) *read_fd = -1;
    FILE *file = self->file;
    self->file = NULL;
    bool ok = fflush (file) == 0 && fsync (fileno (file)) == 0;
    //  Opened before the rename, it reads this content whatever replaces the path later.
    int reader = ok && read_fd ? open (self->temp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    ok = ok && (!read_fd || reader >= 0);
    int saved = errno;
    ok = fclose (file) == 0 && ok;
    if (ok && rename (self->temp, self->path) != 0) ok = false;
    if (!ok) {
        saved = errno;
        if (reader >= 0) close (reader);
        tl_replace_destroy (self_p);
        errno = saved;
        return -1;
    }
    free (self->temp);  //  Renamed: nothing to remove any more
    self->temp = NULL;
    int rc = s_sync_folder (self->path);
    saved = errno;
    if (rc == 0 && read_fd)
        *read_fd = reader;
    else if (reader >= 0)
        close (reader);
    tl_replace_destroy (self_p);
    errno = saved;
    return rc;
}

int tl_replace_check (const char *path)
{
    assert (path);
    struct stat st;
    if (stat (path, &st) == 0 && S_ISDIR (st.st_mode)) {
        errno = EISDIR;
        return -1;
    }
    char *temp;
    int fd = s_make_temp (path, &temp);
    if (fd < 0) return -1;
    close (fd);
    unlink (temp);
    free (temp);
    return 0;
}
