/*  tl_checkpoint: open jobs kept across a sink restart, even a SIGKILL.

    The sink writes each open job to DIR/tally-sink-JOB.checkpoint every
    --checkpoint-interval seconds (from a forked child: sink.c) and on SIGTERM or
    SIGINT, always whole (tl_replace: temporary file, fsync, rename, folder fsync).
    Started again, it takes every checkpoint back. A checkpoint is a consistent state
    from the past: the ventilator, told by HAVE which chunks it holds, sends again the
    ones merged after it, so the totals stay exact. A job's file is removed when the
    job ends; a restored job's file stays until its next checkpoint replaces it.

    DIR is the sink's own state folder: a checkpoint is the state of someone's job, so
    the sink writes and reads checkpoints only in a folder that its user owns and
    nobody else may write, and reads only regular files of its user.                */
#ifndef TL_CHECKPOINT_H_INCLUDED
#define TL_CHECKPOINT_H_INCLUDED

#include "job.h"

//  Writes job to DIR/tally-sink-ID.checkpoint (through a temporary file: tl_replace),
//  with its age taken at time now. Makes dir (mode 0700) when it is missing, and
//  writes nothing in a dir that another user owns or that group or others may write.
//  Returns 0 or -1; logs either way.
int tl_checkpoint_save (const char *dir, tl_job_t *job, double now);

//  The same, logging only failures; sets *bytes (when not NULL) to the file's size.
//  Takes the folder dir (made when missing, mode 0700) for this sink alone: a lock held
//  until the process ends, so that two sinks never restore, write or remove each
//  other's checkpoints. Returns the lock's descriptor; -2 when another process holds
//  it, -1 on another error (why set in both cases).
int tl_checkpoint_lock (const char *dir, char *why, size_t size);

int tl_checkpoint_write (const char *dir, tl_job_t *job, double now, uint64_t *bytes);

//  Removes job id's checkpoint from dir, if there is one.
void tl_checkpoint_remove (const char *dir, uint64_t id);

//  Rebuilds a job from the bytes of a checkpoint at time now. Returns the job (the
//  caller destroys it), or NULL when the bytes are not a whole, well-formed checkpoint
//  or memory is exhausted.
tl_job_t *tl_checkpoint_restore (const void *data, size_t size, double now);

//  Offered each restored job by tl_checkpoint_load_all: returns 0 when it took the job
//  (and owns it), -1 when it has no room for it.
typedef int (tl_checkpoint_take_fn) (void *arg, tl_job_t *job);

//  Restores every checkpoint in dir and offers each job to take(arg, job); deletes
//  the files it refused (malformed, no room) and temporary files left by a writer that
//  was killed, and keeps those taken. Reads nothing when dir is owned by another user or writable
//  by group or others, and only regular files owned by the sink's user (opened with O_NOFOLLOW);
//  what it will not read it leaves in place. Logs what it restored and what it ignored, and why. A
//  missing dir holds none.
void tl_checkpoint_load_all (const char *dir, double now, tl_checkpoint_take_fn *take, void *arg);

#endif
