/*  tl_sock: socket setup and whole-message send/receive for Tally's services.  */

#include "tl_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static zcert_t *s_cert;     //  This process's CURVE certificate, NULL: CURVE off
static char *s_server_key;  //  Server public key (Z85) for client sockets
static tl_zap_t *s_zap;     //  Checks clients against each socket's allow list

tl_sock_cfg_t tl_sock_cfg_default (void)
{
    return (tl_sock_cfg_t){.sndhwm = 0,
                           .rcvhwm = 0,
                           .linger_ms = 2000,
                           .maxmsgsize = 0,
                           .immediate = false,
                           .heartbeat_ivl_ms = 1000,
                           .heartbeat_timeout = 5000,
                           .zap_domain = TL_ZAP_INBOUND};
}

static void s_curve_free (void)
{
    tl_zap_destroy (&s_zap);
    zcert_destroy (&s_cert);
    zstr_free (&s_server_key);
}

//  Sets up CURVE from the options once per process; returns 0 or -1 with a message on
//  stderr. A NULL or empty secret_file leaves CURVE off.
static int s_curve_setup (const tl_curve_t *curve, const char *program)
{
    if (!curve || !curve->secret_file || !*curve->secret_file) return 0;
    s_cert = zcert_load (curve->secret_file);
    if (!s_cert) {
        fprintf (stderr, "%s: cannot load CURVE certificate '%s'\n", program, curve->secret_file);
        return -1;
    }
    if (curve->server_key && *curve->server_key) {
        if (strlen (curve->server_key) == 40)
            s_server_key = strdup (curve->server_key);
        else {
            zcert_t *server = zcert_load (curve->server_key);
            if (!server) {
                fprintf (stderr,
                         "%s: cannot load server key '%s' (a 40-character Z85 key or "
                         "a certificate file)\n",
                         program, curve->server_key);
                return -1;
            }
            s_server_key = strdup (zcert_public_txt (server));
            zcert_destroy (&server);
        }
    }
    const char *feed =
        curve->allow_feed && *curve->allow_feed ? curve->allow_feed : curve->allow_dir;
    if ((curve->allow_dir && *curve->allow_dir) || (feed && *feed)) {
        const char *why;
        s_zap = tl_zap_new (curve->allow_dir, feed, &why);
        if (!s_zap) {
            fprintf (stderr, "%s: %s\n", program, why);
            return -1;
        }
    }
    atexit (s_curve_free);
    return 0;
}

int tl_endpoints_parse (const char *text, tl_endpoints_t *list, const char **error)
{
    assert (text && list && error);
    memset (list, 0, sizeof *list);
    const char *at = text;
    for (;;) {
        size_t len = strcspn (at, ",");
        //  Blanks around an entry are for people ("a, b"): not part of the endpoint.
        const char *start = at, *end = at + len;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (start == end) {
            *error = "an empty endpoint in the list (write EP0,EP1,...)";
            goto fail;
        }
        if (list->count == TL_SHARDS_MAX) {
            *error = "more than 64 sink endpoints (shards)";
            goto fail;
        }
        list->endpoint[list->count] = strndup (start, (size_t)(end - start));
        if (!list->endpoint[list->count]) {
            *error = "out of memory";
            goto fail;
        }
        list->count++;
        if (!at[len]) return 0;
        at += len + 1;
    }
fail:
    tl_endpoints_free (list);
    return -1;
}

void tl_endpoints_free (tl_endpoints_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free (list->endpoint[i]);
    memset (list, 0, sizeof *list);
}

int tl_sock_start (const tl_cli_t *cli, int argc, char **argv, const tl_curve_t *curve)
{
    int first = tl_cli_parse (cli, argc, argv);
    zsys_init ();
    zsys_set_logstream (stderr);
    zsys_set_logident (cli->program);
    if (s_curve_setup (curve, cli->program) != 0) exit (2);
    return first;
}

#define S_RECONNECT_IVL_MS     10   //  First retry of a connect that failed
#define S_RECONNECT_IVL_MAX_MS 100  //  Retries back off to this (libzmq's fixed interval)

zsock_t *tl_sock_new (int type, const char *endpoint, bool bind, bool curve_server,
                      const tl_sock_cfg_t *cfg, const char **error)
{
    assert (endpoint && cfg);
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        *error = "cannot create a socket";
        return NULL;
    }
    if (cfg->sndhwm) zsock_set_sndhwm (sock, cfg->sndhwm);
    if (cfg->rcvhwm) zsock_set_rcvhwm (sock, cfg->rcvhwm);
    zsock_set_linger (sock, cfg->linger_ms);
    if (cfg->maxmsgsize)
        zsock_set_maxmsgsize (sock,
                              (int)(cfg->maxmsgsize > INT32_MAX ? INT32_MAX : cfg->maxmsgsize));
    if (cfg->immediate) zsock_set_immediate (sock, 1);
    if (!bind) {
        //  The services start together (tally run, compose), and a connect that comes
        //  before the other side's bind is tried again after 10 ms, then 20, 40, 80 and
        //  every 100 ms: not after libzmq's fixed 100 ms, a tenth of a short job.
        zsock_set_reconnect_ivl (sock, S_RECONNECT_IVL_MS);
        zsock_set_reconnect_ivl_max (sock, S_RECONNECT_IVL_MAX_MS);
    }
    if (cfg->heartbeat_ivl_ms) {
        zsock_set_heartbeat_ivl (sock, cfg->heartbeat_ivl_ms);
        zsock_set_heartbeat_timeout (sock, cfg->heartbeat_timeout);
        zsock_set_heartbeat_ttl (sock, cfg->heartbeat_timeout);
    }
    if (cfg->keepalive_ms > 0) {
        //  Probes after 2 s of silence, one a second; unacknowledged data is given up
        //  on after the same time (TCP_USER_TIMEOUT), so either way about keepalive_ms.
        int probes = cfg->keepalive_ms / 1000 - 2;
        zsock_set_tcp_keepalive (sock, 1);
        zsock_set_tcp_keepalive_idle (sock, 2);
        zsock_set_tcp_keepalive_intvl (sock, 1);
        zsock_set_tcp_keepalive_cnt (sock, probes > 0 ? probes : 1);
        zsock_set_tcp_maxrt (sock, cfg->keepalive_ms);
    }
    if (s_cert) {
        zcert_apply (s_cert, sock);
        if (curve_server) {
            zsock_set_curve_server (sock, 1);
            zsock_set_zap_domain (sock, cfg->zap_domain ? cfg->zap_domain : TL_ZAP_INBOUND);
        } else if (s_server_key)
            zsock_set_curve_serverkey (sock, s_server_key);
    }
    int rc = bind ? zsock_bind (sock, "%s", endpoint) : zsock_connect (sock, "%s", endpoint);
    //  A port still held for a moment by a process that just died (a service killed and
    //  started again at once, by hand or by a restart policy) is waited for, 5 s at most.
    for (int tries = 0; bind && rc == -1 && zmq_errno () == EADDRINUSE && tries < 50; tries++) {
        if (tries == 0) zsys_info ("%s is in use; waiting for it to be free", endpoint);
        zclock_sleep (100);
        rc = zsock_bind (sock, "%s", endpoint);
    }
    if (rc == -1) {
        static char message[512];
        snprintf (message, sizeof message, "cannot %s %s: %s", bind ? "bind" : "connect to",
                  endpoint, zmq_strerror (zmq_errno ()));
        *error = message;
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

int tl_frames_recv (void *socket, tl_frames_t *in, int flags)
{
    in->nframes = 0;
    in->extra = 0;
    zmq_msg_t scratch;
    bool more = true;
    while (more) {
        zmq_msg_t *frame = in->nframes < TL_FRAMES_MAX ? &in->frame[in->nframes] : &scratch;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, socket, in->nframes || in->extra ? 0 : flags) == -1) {
            int saved = errno;
            zmq_msg_close (frame);
            tl_frames_close (in);
            errno = saved;
            return -1;
        }
        more = zmq_msg_more (frame);
        if (frame == &scratch) {
            zmq_msg_close (frame);
            in->extra++;
        } else
            in->nframes++;
    }
    return in->nframes;
}

void tl_frames_close (tl_frames_t *in)
{
    for (int i = 0; i < in->nframes; i++)
        zmq_msg_close (&in->frame[i]);
    in->nframes = 0;
}

const void *tl_frames_data (tl_frames_t *in, int i, size_t *size)
{
    if (i < 0 || i >= in->nframes) {
        *size = 0;
        return NULL;
    }
    *size = zmq_msg_size (&in->frame[i]);
    return zmq_msg_data (&in->frame[i]);
}

tl_cmd_t tl_frames_decode (tl_frames_t *in, int first, tl_msg_t *msg)
{
    size_t size;
    const void *data = tl_frames_data (in, first, &size);
    tl_cmd_t cmd = data ? tl_cmd_parse (data, size) : TL_CMD_INVALID;
    if (cmd == TL_CMD_INVALID) return TL_CMD_INVALID;
    data = tl_frames_data (in, first + 1, &size);
    if (!data || tl_msg_decode (cmd, data, size, msg) != 0) return TL_CMD_INVALID;
    return cmd;
}

int tl_send (void *socket, const void *identity, size_t identity_size, const tl_msg_t *msg,
             zmq_msg_t *payload, int flags)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    const char *name = tl_cmd_name (msg->cmd);
    int rc = tl_msg_encode (msg, &body);
    if (rc == 0 && identity)
        rc = zmq_send (socket, identity, identity_size, flags | ZMQ_SNDMORE) == -1 ? -1 : 0;
    //  Once the first frame is out, the rest go without DONTWAIT: a multipart message is
    //  queued whole or not at all.
    if (rc == 0)
        rc = zmq_send (socket, name, strlen (name), (identity ? 0 : flags) | ZMQ_SNDMORE) == -1 ? -1
                                                                                                : 0;
    if (rc == 0)
        rc = zmq_send (socket, body.data, body.size, payload ? ZMQ_SNDMORE : 0) == -1 ? -1 : 0;
    if (rc == 0 && payload) rc = zmq_msg_send (payload, socket, 0) == -1 ? -1 : 0;
    if (payload && rc != 0) zmq_msg_close (payload);
    int saved = errno;
    msgpack_sbuffer_destroy (&body);
    errno = saved;
    return rc;
}

int tl_publish (void *socket, const char *topic, const msgpack_sbuffer *body)
{
    if (zmq_send (socket, topic, strlen (topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) return -1;
    return zmq_send (socket, body->data, body->size, 0) == -1 ? -1 : 0;
}

uint16_t tl_monitor_event (zsock_t *monitor)
{
    tl_frames_t in;
    if (tl_frames_recv (zsock_resolve (monitor), &in, ZMQ_DONTWAIT) < 0) return 0;
    size_t size;
    const uint8_t *event = tl_frames_data (&in, 0, &size);
    uint16_t id = 0;
    if (event && size >= 2) memcpy (&id, event, sizeof id);
    tl_frames_close (&in);
    return id;
}
