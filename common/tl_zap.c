/*  tl_zap: the ZAP handler behind per-socket CURVE allow lists (see tl_zap.h).

    libzmq asks the handler bound at inproc://zeromq.zap.01 about every client that
    completes a handshake with a socket that has a ZAP domain. The request names the
    domain and, for CURVE, carries the client's 32-byte public key; the answer is 200
    (admit) or 400 (refuse). CZMQ's zauth keeps one list for every domain, which would
    let a watcher's key into the sink's inbound socket; this handler keeps one list
    (a zcertstore over a folder) per domain.                                        */

#include "tl_zap.h"

#include <string.h>

#define S_ENDPOINT "inproc://zeromq.zap.01"

struct _tl_zap_t {
    zactor_t *actor;  //  The handler's thread
};

typedef struct {
    const char *domain;   //  ZAP domain
    zcertstore_t *store;  //  Allowed clients' certificates; NULL: any client
} s_list_t;

//  Answers one ZAP request on handler (a REP socket).
static void s_answer (zsock_t *handler, s_list_t *lists, size_t nlists)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request) return;
    //  version, request id, domain, address, routing id, mechanism, credentials...
    char *version = zmsg_popstr (request), *id = zmsg_popstr (request);
    char *domain = zmsg_popstr (request), *address = zmsg_popstr (request);
    zframe_t *routing = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *key = zmsg_pop (request);
    bool ok = false;
    if (version && strcmp (version, "1.0") == 0 && domain && mechanism &&
        strcmp (mechanism, "CURVE") == 0 && key && zframe_size (key) == 32) {
        for (size_t i = 0; i < nlists; i++) {
            if (strcmp (lists[i].domain, domain) != 0) continue;
            if (!lists[i].store)
                ok = true;
            else {
                char text[41];
                zmq_z85_encode (text, zframe_data (key), 32);
                ok = zcertstore_lookup (lists[i].store, text) != NULL;
            }
        }
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_addstr (reply, id ? id : "");
    zmsg_addstr (reply, ok ? "200" : "400");
    zmsg_addstr (reply, ok ? "OK" : "not on this socket's allow list");
    zmsg_addstr (reply, "");
    zmsg_addmem (reply, "", 0);
    zmsg_send (&reply, handler);
    zstr_free (&version);
    zstr_free (&id);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&mechanism);
    zframe_destroy (&routing);
    zframe_destroy (&key);
    zmsg_destroy (&request);
}

//  The handler's thread: args is a NULL-terminated array of folder names, inbound's
//  then feed's (each may be an empty string: no list).
static void s_actor (zsock_t *pipe, void *args)
{
    char **dirs = (char **)args;
    s_list_t lists[] = {{TL_ZAP_INBOUND, NULL}, {TL_ZAP_FEED, NULL}};
    for (size_t i = 0; i < 2; i++)
        if (dirs[i] && *dirs[i]) lists[i].store = zcertstore_new (dirs[i]);
    zsock_t *handler = zsock_new_rep (NULL);
    bool bound = handler && zsock_bind (handler, S_ENDPOINT) == 0;
    zsock_signal (pipe, bound ? 0 : 1);
    zpoller_t *poller = bound ? zpoller_new (pipe, handler, NULL) : NULL;
    while (poller) {
        zsock_t *which = (zsock_t *)zpoller_wait (poller, -1);
        if (which == handler)
            s_answer (handler, lists, 2);
        else
            break;  //  $TERM on the pipe, or the context is ending
    }
    zpoller_destroy (&poller);
    zsock_destroy (&handler);
    for (size_t i = 0; i < 2; i++)
        zcertstore_destroy (&lists[i].store);
}

tl_zap_t *tl_zap_new (const char *inbound_dir, const char *feed_dir, const char **error)
{
    const char *dirs[] = {inbound_dir, feed_dir};
    for (size_t i = 0; i < 2; i++)
        if (dirs[i] && *dirs[i] && !zsys_file_exists (dirs[i])) {
            static char message[4200];
            snprintf (message, sizeof message, "allow-list folder '%s' not found", dirs[i]);
            *error = message;
            return NULL;
        }
    tl_zap_t *self = calloc (1, sizeof *self);
    //  The actor reads the names before zactor_new returns (it waits for the signal).
    char *args[] = {(char *)(inbound_dir ? inbound_dir : ""), (char *)(feed_dir ? feed_dir : ""),
                    NULL};
    if (self) self->actor = zactor_new (s_actor, args);
    if (!self || !self->actor) {
        *error = "cannot start the ZAP handler";
        free (self);
        return NULL;
    }
    return self;
}

void tl_zap_destroy (tl_zap_t **self_p)
{
    assert (self_p);
    if (!*self_p) return;
    zactor_destroy (&(*self_p)->actor);
    free (*self_p);
    *self_p = NULL;
}
