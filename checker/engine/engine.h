/* The compiled probe engine: shared types of conn.c (sockets and verdicts)
 * and engine.c (the Python type, the deadline heap and the epoll loop).
 *
 * A *spec* is one check's precomputed probe (address, request, rules), added
 * once; a *probe* is one running attempt of a spec, alive from start() to its
 * verdict. Verdicts are (outcome, reason code) pairs; the Python side maps a
 * code to the same reason text the pure-Python probers produce.
 */
#ifndef HEALTHPLANE_ENGINE_H
#define HEALTHPLANE_ENGINE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <netinet/in.h>
#include <stdint.h>

#include "llhttp/llhttp.h"

/* Outcome values: healthplane.checker.probes.base.Outcome. */
enum { O_OK = 0, O_FAILED = 1, O_TIMEOUT = 2, O_REFUSED = 3, O_RESET = 4,
       O_UNREACHABLE = 5, O_ERROR = 9 };

/* Reason codes: healthplane.checker.probes.engine.reason_text. */
enum { RC_OK = 0, RC_TIMEOUT = 1, RC_REFUSED = 2, RC_RESET = 3, RC_CLOSED = 4,
       RC_UNREACHABLE = 5, RC_BAD_RESPONSE = 6, RC_SEARCH_MISSING = 7,
       RC_HEADERS_OVER = 8, RC_EXPECT_MISSING = 9, RC_CANCELLED = 10,
       RC_STATUS = 1000,   /* + the status code, 0..999 */
       RC_ERRNO = 2000 };  /* + errno: "connect error: <strerror>" */

/* Probe kinds. */
enum { K_CONNECT = 0,     /* tcp: healthy once connected */
       K_TALK = 1,        /* tcp with send and/or expect */
       K_HTTP = 2 };      /* http: request, status, optional search */

#define SEARCH_LIMIT 5120   /* body bytes searched (http.SEARCH_LIMIT) */
#define EXPECT_LIMIT 5120   /* stream bytes searched (tcp.EXPECT_LIMIT) */
#define HEADER_LIMIT 16384  /* bytes read before the headers end */

/* How a probe runs. Checks probed the same way (the same request, text
 * and timeout) share one: a check itself is only a target_t. */
typedef struct {
    uint8_t kind;
    uint8_t expect;         /* K_TALK: wait for the needle */
    int64_t timeout_ns;
    PyObject *out;          /* bytes sent once connected, or NULL */
    int32_t host_at;        /* where in out each target's host value goes; -1: none */
    PyObject *needle;       /* search / expect string, or NULL */
    PyObject *statuses;     /* 1000 bytes, 1 where the status is healthy */
    int32_t *fail;          /* KMP failure table of the needle */
} spec_t;

/* Where one check's probes go, and its running probe: 32 bytes, as a
 * checker holds one per check (the sockaddr is built per connect). */
typedef struct {
    uint8_t ip[16];         /* network order; IPv4 in the first 4 bytes */
    uint16_t port;          /* network order */
    uint8_t v6;
    int32_t spec;           /* index of its spec_t */
    uint32_t host;          /* its host value, 0 for none */
    int32_t slot;           /* the running probe, -1 when none */
} target_t;

/* What a probe reads: the verdict logic, independent of sockets. */
typedef struct {
    const spec_t *spec;
    llhttp_t http;
    uint32_t seen;          /* bytes received */
    uint32_t searched;      /* body (http) or stream (tcp) bytes searched */
    int32_t match;          /* KMP state: needle bytes matched */
    uint8_t in_body;        /* http: status healthy, waiting for the needle */
    uint8_t done;
    int8_t outcome;
    int32_t code;
} reader_t;

typedef struct {
    int fd;                 /* -1 when the slot is free */
    int32_t target;
    uint32_t gen;           /* bumped on every reuse: stale events are ignored */
    uint8_t connected;
    uint32_t sent;
    const char *out;        /* what this probe sends: the spec's bytes, or req */
    uint32_t out_len;
    char *req;              /* the slot's own copy of a request with a host in it */
    uint32_t req_cap;
    int64_t t0_ns;
    int64_t deadline_ns;
    reader_t rd;
} probe_t;

/* conn.c */
void reader_init(reader_t *rd, const spec_t *spec);
void reader_feed(reader_t *rd, const char *data, size_t len);
void reader_eof(reader_t *rd);
void reader_finish(reader_t *rd, int8_t outcome, int32_t code);
void errno_verdict(int err, int8_t *outcome, int32_t *code);
int32_t *kmp_table(const uint8_t *needle, Py_ssize_t n);

/* Open the socket and start connecting; on return either p->fd >= 0 or the
 * reader holds a verdict. */
void probe_open(probe_t *p, const spec_t *spec, const target_t *target);
/* React to epoll events (`tag` is the fd's epoll data, for re-arming); on
 * return the reader may hold a verdict. */
void probe_event(probe_t *p, const spec_t *spec, uint32_t events, int epfd, uint64_t tag,
                 char *buf, size_t cap);
/* Every registration asks for the same events, edge-triggered. */
#define PROBE_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* engine.c */
extern PyTypeObject EngineType;
int spec_fill(spec_t *s, int kind, PyObject *out, PyObject *needle, PyObject *statuses);

#endif
