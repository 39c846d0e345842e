/*  tally web: a live page and Prometheus metrics of the sinks' feeds (see web.c).

    The pieces: web.c reads the feeds (main thread) into a tl_web_t; web_state.c keeps
    that state and renders it as JSON (the page, /events, /api/state) and as the
    Prometheus text format (/metrics); web_http.c serves it with libmicrohttpd;
    web_totals.c streams a finished job's totals from the sinks' snapshot service.   */

#ifndef TL_WEB_H_INCLUDED
#define TL_WEB_H_INCLUDED

#include "tl_feed.h"
#include "tl_feed_merge.h"

#include <pthread.h>
#include <stdarg.h>

//  The `tally web` command: argv[0] is "web". Returns the exit status.
int tl_web_main (int argc, char **argv);

//  ---------------------------------------------------------------------------------
//  A growing text buffer (JSON, metrics, HTTP bodies).

typedef struct {
    char *data;   //  Text, NUL-terminated once anything was added
    size_t len;   //  Bytes used (without the NUL)
    size_t cap;   //  Bytes allocated
    bool failed;  //  An allocation failed: the text is incomplete
} tl_web_buf_t;

void tl_web_buf_add (tl_web_buf_t *self, const void *data, size_t len);
void tl_web_buf_printf (tl_web_buf_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
//  Bytes as a JSON string, quotes included: valid UTF-8 passes through (escaped where
//  JSON needs it); a key that is not valid UTF-8 has each byte >= 0x80 as \u00XX.
void tl_web_buf_json_string (tl_web_buf_t *self, const char *data, size_t len);
//  A double as a JSON number (null when not finite).
void tl_web_buf_json_number (tl_web_buf_t *self, double value);
//  Bytes as a Prometheus label value, quotes included (\\, \" and \n escaped).
void tl_web_buf_label (tl_web_buf_t *self, const char *data, size_t len);
void tl_web_buf_free (tl_web_buf_t *self);

//  ---------------------------------------------------------------------------------
//  The state of the feeds, shared by the feed reader and the HTTP threads.

#define TL_WEB_JOBS_MAX 32   //  Jobs kept (the oldest finished one is forgotten first)
#define TL_WEB_HISTORY  300  //  Throughput samples kept, one a second

typedef enum { TL_WEB_RUNNING, TL_WEB_DONE, TL_WEB_FAILED } tl_web_status_t;

typedef struct {
    uint64_t id;                               //  Job id
    uint64_t shards;                           //  Its sink shards
    tl_web_status_t status;                    //  Running, done or failed
    double first_heard;                        //  When this program first heard of it
    double last_heard;                         //  ... and last
    bool has_progress;                         //  progress is set
    tl_progress_t progress;                    //  The job's (shards combined)
    uint64_t shard_heard;                      //  Bit s: shard[s] is set
    tl_progress_t shard[TL_SHARDS_MAX];        //  Each shard's latest progress
    tl_entry_t *top;                           //  The job's top, keys in the same block
    size_t ntop;                               //  Entries in top
    uint64_t done_heard;                       //  Bit s: shard_done[s] is set
    tl_done_body_t shard_done[TL_SHARDS_MAX];  //  Each shard's done (no output)
    tl_done_body_t done;                       //  The job's, once every shard's is in
    char *reason;                              //  Why it failed (NULL: it did not)
} tl_web_job_t;

typedef struct {
    char *endpoint;          //  The feed, as given
    char *snapshot;          //  Its snapshot service (NULL: none can be derived)
    bool connected;          //  The feed's connection is up
    uint64_t connects;       //  Connections made (the first and each reconnection)
    uint64_t messages;       //  Feed messages received
    uint64_t undecodable;    //  ... that could not be decoded
    uint64_t snapshot_asks;  //  State snapshots asked for
    uint64_t replies;        //  Snapshot replies received
    bool has_stats;          //  stats is set
    double stats_heard;      //  When
    tl_feed_stats_t stats;   //  The sink's last stats
} tl_web_feed_t;

typedef struct {
    pthread_mutex_t lock;    //  Guards everything below
    pthread_cond_t changed;  //  Signalled when json changes or on stopping
    bool stopping;           //  The program is ending: SSE streams end
    uint64_t version;        //  Bumped each time json is replaced
    char *json;              //  The latest state as JSON
    size_t json_len;         //  Its length
    bool dirty;              //  Changed since json was made
    double started;          //  When this program started
    tl_feed_join_t *join;    //  The shards' messages combined per job
    tl_web_job_t *jobs[TL_WEB_JOBS_MAX];
    size_t njobs;
    tl_web_feed_t feeds[TL_SHARDS_MAX];
    size_t nfeeds;
    double history_t[TL_WEB_HISTORY];     //  Throughput samples: time ...
    double history_rate[TL_WEB_HISTORY];  //  ... and bytes/s of the running jobs
    size_t nhistory;                      //  Samples held
    size_t history_next;                  //  Slot of the next sample
    int64_t max_message;                  //  Largest snapshot reply accepted (bytes)
} tl_web_t;

//  Sets up an empty state for the given feeds. Returns 0, or -1 when out of memory.
int tl_web_init (tl_web_t *self, char **feeds, size_t nfeeds);
void tl_web_destroy (tl_web_t *self);

//  Takes one message [topic, body] from feed i (live or from its snapshot service).
//  Locks. Returns 0, or -1 when it could not be decoded (counted).
int tl_web_add (tl_web_t *self, size_t feed, const void *topic, size_t topic_size, const void *body,
                size_t body_size);

//  Takes a throughput sample (locks).
void tl_web_sample (tl_web_t *self, double now);

//  Remakes the JSON when something changed, wakes the SSE streams (locks).
void tl_web_publish (tl_web_t *self);

//  Renders (the caller holds the lock).
void tl_web_render_json (tl_web_t *self, tl_web_buf_t *out);
void tl_web_render_metrics (tl_web_t *self, tl_web_buf_t *out);

//  ---------------------------------------------------------------------------------
//  HTTP (web_http.c) and the totals download (web_totals.c).

struct MHD_Daemon;

//  Serves self on host (NULL or "": every interface) and port. Returns the daemon,
//  or NULL with a reason in error.
struct MHD_Daemon *tl_web_http_start (tl_web_t *self, const char *host, const char *port,
                                      char *error, size_t size);
//  The port it listens on.
unsigned tl_web_http_port (struct MHD_Daemon *daemon);
//  Ends the SSE streams and stops the daemon.
void tl_web_http_stop (tl_web_t *self, struct MHD_Daemon **daemon_p);

struct MHD_Connection;
//  Answers GET /jobs/<id>/totals (path: what follows "/jobs/"). Returns MHD_YES/NO.
int tl_web_totals_answer (tl_web_t *self, struct MHD_Connection *connection, const char *path);

//  A request to the snapshot service, as one msgpack frame: {"get": "state"}, or
//  {"get": "totals", "job", "from", "batch"}. Returns 0 or -1 (out of memory).
int tl_web_ask_state (void *socket);
int tl_web_ask_totals (void *socket, uint64_t job, uint64_t from, uint64_t batch);

#endif
