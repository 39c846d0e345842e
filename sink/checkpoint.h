/*  tl_checkpoint: open jobs kept across a sink restart.

    On SIGTERM or SIGINT (docker stop, a restart) the sink writes each open job to
    DIR/tally-sink-JOB.checkpoint and, started again, takes it back and deletes the
    file: the ventilator's next PING finds the job, and chunks it had not seen
    acknowledged are merged once as usual, so the totals stay exact. A sink that dies
    without its shutdown (SIGKILL, a crash) leaves no checkpoint, and the ventilator's
    PING gets "unknown job": the job fails with that message rather than going wrong.

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

//  Rebuilds a job from the bytes of a checkpoint at time now. Returns the job (the
//  caller destroys it), or NULL when the bytes are not a whole, well-formed checkpoint
//  or memory is exhausted.
tl_job_t *tl_checkpoint_restore (const void *data, size_t size, double now);

//  Offered each restored job by tl_checkpoint_load_all: returns 0 when it took the job
//  (and owns it), -1 when it has no room for it.
typedef int (tl_checkpoint_take_fn) (void *arg, tl_job_t *job);

//  Restores every checkpoint in dir and offers each job to take(arg, job); deletes
//  each checkpoint file it read, taken or refused, so that a later crash cannot bring
//  stale state back. Reads nothing when dir is owned by another user or writable by
//  group or others, and only regular files owned by the sink's user (opened with
//  O_NOFOLLOW); what it will not read it leaves in place. Logs what it restored and
//  what it ignored, and why. A missing dir holds none.
void tl_checkpoint_load_all (const char *dir, double now, tl_checkpoint_take_fn *take, void *arg);

#endif
