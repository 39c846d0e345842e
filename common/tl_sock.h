/*  tl_sock: socket setup and whole-message send/receive for Tally's services.

    Every socket is made here, so every one gets the same care: high-water marks,
    ZMTP heartbeats (a vanished host is noticed in seconds, not TCP's minutes), a
    maximum message size on receiving sockets, a linger that lets final messages out
    (CZMQ's default is 0), and optional CURVE keys. Messages are read whole, as at most
    TL_FRAMES_MAX frames; anything longer is drained and reported as junk.            */

#ifndef TL_SOCK_H_INCLUDED
#define TL_SOCK_H_INCLUDED

#include "tl_opts.h"
#include "tl_proto.h"
#include "tl_zap.h"
#include <czmq.h>

//  Frames a message may have (identity + command + body + payload).
#define TL_FRAMES_MAX 4

//  A list of sink shards' endpoints, as --sink takes it: "EP0,EP1,..." (shard i is
//  entry i).
typedef struct {
    size_t count;                   //  Endpoints, 1 .. TL_SHARDS_MAX
    char *endpoint[TL_SHARDS_MAX];  //  Each its own string
} tl_endpoints_t;

//  Splits a comma-separated list into *list. Returns 0, or -1 with *error set (an
//  empty entry, more than TL_SHARDS_MAX, out of memory); *list holds nothing then.
int tl_endpoints_parse (const char *text, tl_endpoints_t *list, const char **error);

//  Frees the strings of list.
void tl_endpoints_free (tl_endpoints_t *list);

typedef struct {
    int sndhwm;              //  Send high-water mark (0: libzmq default)
    int rcvhwm;              //  Receive high-water mark (0: libzmq default)
    int linger_ms;           //  Linger on close (-1: forever)
    int64_t maxmsgsize;      //  Largest inbound frame (0: no limit)
    bool immediate;          //  Queue only to completed connections
    int heartbeat_ivl_ms;    //  ZMTP heartbeat interval (0: off; off where the receive
                             //  queue fills by design: see worker.c)
    int heartbeat_timeout;   //  Heartbeat timeout in ms
    int keepalive_ms;        //  TCP keepalive and user timeout instead: a vanished peer
                             //  host is noticed after about this long (0: off)
    const char *zap_domain;  //  A CURVE server's allow list: TL_ZAP_INBOUND or TL_ZAP_FEED
} tl_sock_cfg_t;

//  Defaults: heartbeats every second, 5 s timeout, linger 2 s, libzmq HWMs, the
//  inbound allow list.
tl_sock_cfg_t tl_sock_cfg_default (void);

//  Keys for CURVE. A server has its secret key and an optional allow-list folder;
//  a client has its own certificate and the server's public key.
typedef struct {
    const char *secret_file;  //  This side's certificate (zcert secret file), NULL: off
    const char *server_key;   //  Server's public key (Z85, or a zcert file) for clients
    const char *allow_dir;    //  Folder of allowed clients' public certificates (servers)
    const char *allow_feed;   //  The same for the feed's subscribers (NULL: allow_dir's)
} tl_curve_t;

//  The CURVE options every program shares, as tl_opts table entries over a tl_curve_t.
#define TL_OPT_CURVE_SECRET(curve)                                                                 \
    TL_OPT ("curve-secret", 0, "TALLY_CURVE_SECRET", TL_OPT_STR, &(curve).secret_file, "FILE",     \
            "This side's CURVE certificate, as `tally keygen` writes it (turns encryption on)", 0, \
            0)
#define TL_OPT_CURVE_SERVER(curve)                                                                 \
    TL_OPT ("curve-server", 0, "TALLY_CURVE_SERVER", TL_OPT_STR, &(curve).server_key, "KEY",       \
            "The servers' public key (Z85 text or its certificate file)", 0, 0)
#define TL_OPT_CURVE_ALLOW(curve)                                                                  \
    TL_OPT ("curve-allow", 0, "TALLY_CURVE_ALLOW", TL_OPT_STR, &(curve).allow_dir, "DIR",          \
            "Folder of the public certificates of clients allowed to connect", 0, 0)
#define TL_OPT_CURVE_ALLOW_FEED(curve)                                                             \
    TL_OPT ("curve-allow-feed", 0, "TALLY_CURVE_ALLOW_FEED", TL_OPT_STR, &(curve).allow_feed,      \
            "DIR",                                                                                 \
            "Folder of the public certificates of the feed's subscribers (default: "               \
            "--curve-allow's); their keys then cannot reach the inbound socket",                   \
            0, 0)
//  The CURVE entries of a program that only connects (worker, watcher) and of the sink.
#define TL_OPTS_CURVE_CLIENT(curve) TL_OPT_CURVE_SECRET (curve), TL_OPT_CURVE_SERVER (curve)
#define TL_OPTS_CURVE_SERVER(curve)                                                                \
    TL_OPT_CURVE_SECRET (curve), TL_OPT_CURVE_ALLOW (curve), TL_OPT_CURVE_ALLOW_FEED (curve)

//  How every program that opens sockets starts: parses its options (tl_cli_parse:
//  exits on --help, --version and bad usage), sends CZMQ's logs to stderr (stdout is
//  for results) under the program's name, and sets up CURVE from curve (NULL: off),
//  exiting 2 when the keys cannot be loaded. Returns the index in argv of the first
//  positional argument.
int tl_sock_start (const tl_cli_t *cli, int argc, char **argv, const tl_curve_t *curve);

//  --max-message, which the sink and the worker take: the largest inbound frame.
#define TL_OPT_MAX_MESSAGE(bytes, help)                                                            \
    TL_OPT ("max-message", 0, "TALLY_MAX_MESSAGE", TL_OPT_SIZE, &(bytes), "BYTES", help, 4096,     \
            INT32_MAX)

//  Creates a socket of the given type, applies cfg (and CURVE if set up), then binds
//  (bind true) or connects to endpoint. Returns NULL with a message in *error
//  (static storage) on failure. A bind to an address in use is tried again for 5 s.
zsock_t *tl_sock_new (int type, const char *endpoint, bool bind, bool curve_server,
                      const tl_sock_cfg_t *cfg, const char **error);

//  One whole message as received.
typedef struct {
    zmq_msg_t frame[TL_FRAMES_MAX];  //  Frames, initialised up to nframes
    int nframes;                     //  How many frames are held
    size_t extra;                    //  Frames beyond TL_FRAMES_MAX, drained
} tl_frames_t;

//  Receives one whole message (flags: 0 or ZMQ_DONTWAIT). Returns the number of
//  frames, or -1 (errno from libzmq: EAGAIN, EINTR, ETERM). Close with tl_frames_close.
int tl_frames_recv (void *socket, tl_frames_t *in, int flags);

void tl_frames_close (tl_frames_t *in);

//  Pointer and size of frame i (NULL, 0 past the end).
const void *tl_frames_data (tl_frames_t *in, int i, size_t *size);

//  Decodes frames first (command) and first+1 (body) into msg. Returns the command,
//  or TL_CMD_INVALID when either is not well-formed.
tl_cmd_t tl_frames_decode (tl_frames_t *in, int first, tl_msg_t *msg);

//  Sends [identity?] command body [payload?]. identity may be NULL (DEALER/PUSH);
//  payload, when not NULL, is sent as the last frame and taken over (closed) whatever
//  happens. flags: 0 or ZMQ_DONTWAIT. Returns 0 or -1 (errno from libzmq).
int tl_send (void *socket, const void *identity, size_t identity_size, const tl_msg_t *msg,
             zmq_msg_t *payload, int flags);

//  The next event of a socket monitor's PAIR end (libzmq's zmq_socket_monitor: frame 1
//  a 16-bit event and a 32-bit value, frame 2 the peer's endpoint), without waiting;
//  0 when none could be read.
uint16_t tl_monitor_event (zsock_t *monitor);

//  Publishes [topic, body] on a PUB socket. Returns 0 or -1.
int tl_publish (void *socket, const char *topic, const msgpack_sbuffer *body);

//  Message size limit (bytes) a worker and sink accept by default.
#define TL_MAXMSG_DEFAULT ((int64_t)256 << 20)

#endif
