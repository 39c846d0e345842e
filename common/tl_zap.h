/*  tl_zap: who may connect to which CURVE socket. A ZAP handler (ZeroMQ RFC 27) that
    keeps one allow list per ZAP domain, so that a process's sockets can admit
    different clients: the sink's inbound socket admits workers and ventilators
    (domain TL_ZAP_INBOUND), its feed admits subscribers (TL_ZAP_FEED), and a watcher's
    key given for the feed cannot reach the inbound socket. An allow list is a folder
    of public certificates (`tally keygen` writes them); it is read again when the
    folder changes. A domain without a list admits any client that completes the CURVE
    handshake (encryption without a list of who).                                  */

#ifndef TL_ZAP_H_INCLUDED
#define TL_ZAP_H_INCLUDED

#include <czmq.h>

//  ZAP domains of the sockets that bind: inbound (workers, ventilators) and the feed.
#define TL_ZAP_INBOUND "tally"
#define TL_ZAP_FEED    "tally-feed"

typedef struct _tl_zap_t tl_zap_t;

//  Starts the handler with the allow-list folders of the two domains (either may be
//  NULL: that domain admits any CURVE client). Returns NULL with a message in *error
//  when a folder is missing or the handler cannot start.
tl_zap_t *tl_zap_new (const char *inbound_dir, const char *feed_dir, const char **error);

//  Stops the handler; sets *self_p to NULL. Harmless on NULL.
void tl_zap_destroy (tl_zap_t **self_p);

#endif
