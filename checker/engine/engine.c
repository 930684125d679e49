/* healthplane.checker._engine: tcp and http probes in batches, on one epoll set.
 *
 * The dispatcher adds each check once (add), starts the due ones by id in one
 * call per wake-up (start, a buffer of int64 ids), and drains verdicts into
 * numpy arrays (drain: ids, outcomes, reason codes, latencies): no Python
 * object per probe. Deadlines live in a binary heap and a timerfd armed at the
 * earliest one; the timerfd sits in the engine's own epoll set, so the one fd
 * the asyncio loop watches (fileno, via loop.add_reader) becomes readable for
 * socket events and deadlines alike, and the loop runs poll() only when there
 * is work. Why add_reader and not a step on the dispatcher's grid tick: a
 * verdict is taken when its bytes arrive, so latency and the timeout are
 * measured to the event, not to the next tick, and an idle checker makes no
 * wake-ups at all.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TIMER_TAG UINT64_MAX
#define READ_BUFFER 65536
#define EVENTS_PER_WAIT 256

typedef struct { int64_t deadline; int32_t slot; uint32_t gen; } tick_t;
typedef struct { int64_t id; double latency; int32_t code; int8_t outcome; } result_t;
typedef struct { int64_t at; int64_t late; int64_t id; } planned_t;

typedef struct {
    PyObject_HEAD
    int epfd, tfd;
    /* Each spec has its own allocation: a running probe's reader points at
     * its spec, so adding one (a lone probe's, while others run) must not
     * move the rest. */
    spec_t **specs;
    Py_ssize_t nspecs, capspecs;
    target_t *targets;      /* by probe id */
    Py_ssize_t ntargets, captargets;
    /* Host values (http's Host header), each once, packed: value h is
     * hosts[hoff[h]:hoff[h + 1]]; value 0 is empty. NULL until one is added. */
    char *hosts;
    Py_ssize_t nhosts, caphosts;
    uint32_t *hoff;
    Py_ssize_t nhostv, caphoff;
    probe_t *slots;
    int32_t *free;          /* stack of free slot indices */
    int32_t nslots, nfree;
    tick_t *heap;
    Py_ssize_t nheap, capheap;
    int64_t armed;          /* deadline the timerfd is set to, 0 when none */
    result_t *res;
    Py_ssize_t rhead, nres, capres;
    char *buf;
    /* Planned starts (plan()): in time order, launched by poll() when due. */
    planned_t *plan;
    Py_ssize_t phead, nplan, capplan;
    int64_t coalesce_ns;    /* a timer waits this long to take the next starts/deadlines too */
    int32_t limit;          /* most probes in flight; due starts wait beyond it */
    int64_t grace_ns;       /* a verdict read later than timeout + grace is a timeout */
    double *late;           /* lateness of each planned start, until taken */
    Py_ssize_t nlate, caplate;
    int64_t launched, missed;
} Engine;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int grow(void **arr, Py_ssize_t *cap, Py_ssize_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    Py_ssize_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = PyMem_Realloc(*arr, (size_t)n * item);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *arr = p;
    *cap = n;
    return 0;
}

/* -- the deadline heap ------------------------------------------------------ */

static int heap_push(Engine *e, tick_t t)
{
    if (grow((void **)&e->heap, &e->capheap, e->nheap + 1, sizeof(tick_t)) < 0)
        return -1;
    Py_ssize_t i = e->nheap++;
    while (i > 0) {
        Py_ssize_t up = (i - 1) / 2;
        if (e->heap[up].deadline <= t.deadline)
            break;
        e->heap[i] = e->heap[up];
        i = up;
    }
    e->heap[i] = t;
    return 0;
}

static void heap_pop(Engine *e)
{
    tick_t last = e->heap[--e->nheap];
    Py_ssize_t i = 0, n = e->nheap;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && e->heap[c + 1].deadline < e->heap[c].deadline)
            c++;
        if (e->heap[c].deadline >= last.deadline)
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0)
        e->heap[i] = last;
}

static int live(Engine *e, tick_t t)
{
    return e->slots[t.slot].fd >= 0 && e->slots[t.slot].gen == t.gen;
}

static void arm(Engine *e, int64_t now)
{
    while (e->nheap && !live(e, e->heap[0]))
        heap_pop(e);        /* finished early: drop it, or the timer fires for nothing */
    /* Deadlines coalesce too: one wake-up ends every probe due within the step. */
    int64_t d = e->nheap ? e->heap[0].deadline + e->coalesce_ns : INT64_MAX;
    if (e->phead < e->nplan) {
        int64_t next = e->plan[e->phead].at;
        if (e->nslots - e->nfree >= e->limit)
            next = now;     /* at the bound: look again one coalescing step later */
        next += e->coalesce_ns;
        if (next < d)
            d = next;
    }
    if (d == INT64_MAX)
        return;
    if (e->armed != 0 && e->armed <= d)
        return;             /* it fires sooner; we look again then */
    struct itimerspec it = {.it_value = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000}};
    if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &it, NULL) == 0)
        e->armed = d;
}

/* -- probes ------------------------------------------------------------------ */

static int emit(Engine *e, int64_t id, int8_t outcome, int32_t code, double latency)
{
    if (e->rhead == e->nres)
        e->rhead = e->nres = 0;
    if (grow((void **)&e->res, &e->capres, e->nres + 1, sizeof(result_t)) < 0)
        return -1;
    e->res[e->nres++] = (result_t){id, latency, code, outcome};
    return 0;
}

/* Free a slot; with `report`, its verdict (or the one given) becomes a result. */
static int release(Engine *e, int32_t slot, int report, int8_t outcome, int32_t code, int64_t now)
{
    probe_t *p = &e->slots[slot];
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->gen++;
    e->targets[p->target].slot = -1;
    e->free[e->nfree++] = slot;
    if (!report)
        return 0;
    double latency = (double)(now - p->t0_ns) / 1e9;
    if (p->rd.done) {
        outcome = p->rd.outcome;
        code = p->rd.code;
        int64_t timeout_ns = e->specs[e->targets[p->target].spec]->timeout_ns;
        if (now - p->t0_ns > timeout_ns + e->grace_ns) {
            /* Read long past its deadline (the process was stopped or
             * starved): the answer predates the pause, as the dispatcher rules
             * for the Python probers. */
            outcome = O_TIMEOUT;
            code = RC_TIMEOUT;
            latency = (double)timeout_ns / 1e9;
        }
    }
    return emit(e, p->target, outcome, code, latency);
}

static int32_t take_slot(Engine *e)
{
    if (e->nfree == 0) {
        int32_t n = e->nslots ? e->nslots * 2 : 256;
        probe_t *s = PyMem_Realloc(e->slots, sizeof(probe_t) * (size_t)n);
        if (s == NULL)
            return -1;
        e->slots = s;
        int32_t *f = PyMem_Realloc(e->free, sizeof(int32_t) * (size_t)n);
        if (f == NULL)
            return -1;
        e->free = f;
        for (int32_t i = n - 1; i >= e->nslots; i--) {
            e->slots[i].fd = -1;
            e->slots[i].gen = 0;
            e->slots[i].req = NULL;
            e->slots[i].req_cap = 0;
            e->free[e->nfree++] = i;
        }
        e->nslots = n;
    }
    return e->free[--e->nfree];
}

/* What probe p sends: the spec's bytes, or (with a host value) its own copy
 * with the target's host spliced in. */
static int request_for(Engine *e, probe_t *p, const spec_t *s, int64_t id)
{
    p->out = NULL;
    p->out_len = 0;
    if (s->out == NULL)
        return 0;
    const char *out = PyBytes_AS_STRING(s->out);
    uint32_t len = (uint32_t)PyBytes_GET_SIZE(s->out);
    uint32_t h = e->targets[id].host;
    uint32_t host_len = (s->host_at >= 0 && h != 0) ? e->hoff[h + 1] - e->hoff[h] : 0;
    if (host_len == 0) {
        p->out = out;
        p->out_len = len;
        return 0;
    }
    uint32_t need = len + host_len;
    if (need > p->req_cap) {
        char *r = PyMem_Realloc(p->req, need);
        if (r == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        p->req = r;
        p->req_cap = need;
    }
    uint32_t at = (uint32_t)s->host_at;
    memcpy(p->req, out, at);
    memcpy(p->req + at, e->hosts + e->hoff[h], host_len);
    memcpy(p->req + at + host_len, out + at, len - at);
    p->out = p->req;
    p->out_len = need;
    return 0;
}

static int start_one(Engine *e, int64_t id, int64_t now)
{
    if (id < 0 || id >= e->ntargets) {
        PyErr_SetString(PyExc_IndexError, "no such probe id");
        return -1;
    }
    target_t *t = &e->targets[id];
    const spec_t *s = e->specs[t->spec];
    if (t->slot >= 0 && release(e, t->slot, 1, O_TIMEOUT, RC_TIMEOUT, now) < 0)
        return -1;          /* its next slot came: past its timeout, as a cancel is */
    int32_t slot = take_slot(e);
    if (slot < 0) {
        PyErr_NoMemory();
        return -1;
    }
    probe_t *p = &e->slots[slot];
    p->target = (int32_t)id;
    if (request_for(e, p, s, id) < 0) {
        e->free[e->nfree++] = slot;     /* never opened: the slot is free again */
        return -1;
    }
    p->t0_ns = now;
    p->deadline_ns = now + s->timeout_ns;
    t->slot = slot;
    probe_open(p, s, t);
    if (p->fd >= 0 && !p->rd.done) {
        struct epoll_event ev = {.events = PROBE_EVENTS,
                                 .data.u64 = ((uint64_t)p->gen << 32) | (uint32_t)slot};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, p->fd, &ev) < 0) {
            int8_t outcome;
            int32_t code;
            errno_verdict(errno, &outcome, &code);
            reader_finish(&p->rd, outcome, code);
        }
    }
    if (p->rd.done || p->fd < 0)
        return release(e, slot, 1, O_ERROR, RC_CANCELLED, now_ns());
    return heap_push(e, (tick_t){p->deadline_ns, slot, p->gen});
}

/* Start every planned probe that is due: too late (past its bound) is
 * counted missed and skipped, never run late; at the limit the rest wait. */
static int launch_due(Engine *e, int64_t now)
{
    while (e->phead < e->nplan && e->plan[e->phead].at <= now) {
        planned_t *pl = &e->plan[e->phead];
        int64_t late = now - pl->at;
        if (late > pl->late) {
            e->missed++;
        } else {
            if (e->nslots - e->nfree >= e->limit)
                break;
            if (grow((void **)&e->late, &e->caplate, e->nlate + 1, sizeof(double)) < 0)
                return -1;
            e->late[e->nlate++] = (double)late / 1e9;
            e->launched++;
            if (start_one(e, pl->id, now) < 0)
                return -1;
        }
        e->phead++;
    }
    if (e->phead == e->nplan)
        e->phead = e->nplan = 0;
    return 0;
}

/* -- the Python type ------------------------------------------------------- */

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (!PyArg_ParseTuple(args, ":Engine"))
        return NULL;
    (void)kw;
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (e == NULL)
        return NULL;
    e->epfd = e->tfd = -1;
    e->limit = INT32_MAX;
    e->grace_ns = 250000000;
    e->buf = PyMem_Malloc(READ_BUFFER);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    if (e->buf == NULL || e->epfd < 0 || e->tfd < 0
        || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->tfd, &ev) < 0) {
        if (e->buf == NULL)
            PyErr_NoMemory();
        else
            PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(e);
        return NULL;
    }
    return (PyObject *)e;
}

static void close_all(Engine *e)
{
    for (int32_t i = 0; i < e->nslots; i++)
        if (e->slots[i].fd >= 0)
            (void)release(e, i, 0, 0, 0, 0);
    e->nheap = 0;
    e->rhead = e->nres = 0;
    e->phead = e->nplan = 0;
    e->nlate = 0;
}

static void Engine_dealloc(Engine *e)
{
    close_all(e);
    for (Py_ssize_t i = 0; i < e->nspecs; i++) {
        Py_XDECREF(e->specs[i]->out);
        Py_XDECREF(e->specs[i]->needle);
        Py_XDECREF(e->specs[i]->statuses);
        PyMem_Free(e->specs[i]->fail);
        PyMem_Free(e->specs[i]);
    }
    PyMem_Free(e->specs);
    PyMem_Free(e->targets);
    PyMem_Free(e->hosts);
    PyMem_Free(e->hoff);
    for (int32_t i = 0; i < e->nslots; i++)
        PyMem_Free(e->slots[i].req);
    PyMem_Free(e->slots);
    PyMem_Free(e->free);
    PyMem_Free(e->heap);
    PyMem_Free(e->res);
    PyMem_Free(e->buf);
    PyMem_Free(e->plan);
    PyMem_Free(e->late);
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->tfd >= 0)
        close(e->tfd);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* Fill a spec from Python values; shared by add() and the judge functions. */
int spec_fill(spec_t *s, int kind, PyObject *out, PyObject *needle, PyObject *statuses)
{
    memset(s, 0, sizeof(*s));
    s->host_at = -1;
    if (kind < K_CONNECT || kind > K_HTTP) {
        PyErr_SetString(PyExc_ValueError, "unknown probe kind");
        return -1;
    }
    s->kind = (uint8_t)kind;
    if (out == Py_None)
        out = NULL;
    if (needle == Py_None || (needle != NULL && PyBytes_Check(needle) && PyBytes_GET_SIZE(needle) == 0))
        needle = NULL;
    if (statuses == Py_None)
        statuses = NULL;
    if ((out && !PyBytes_Check(out)) || (needle && !PyBytes_Check(needle))
        || (statuses && (!PyBytes_Check(statuses) || PyBytes_GET_SIZE(statuses) != 1000))
        || (kind == K_HTTP && (statuses == NULL || out == NULL))) {
        PyErr_SetString(PyExc_ValueError,
                        "out and needle must be bytes; http needs out and 1000 status bytes");
        return -1;
    }
    if (needle != NULL && PyBytes_GET_SIZE(needle) > INT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "needle too long");
        return -1;
    }
    s->expect = kind == K_TALK && needle != NULL;
    if (needle != NULL) {
        s->fail = kmp_table((const uint8_t *)PyBytes_AS_STRING(needle), PyBytes_GET_SIZE(needle));
        if (s->fail == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_XINCREF(out);
    Py_XINCREF(needle);
    Py_XINCREF(statuses);
    s->out = out;
    s->needle = needle;
    s->statuses = statuses;
    return 0;
}

/* A new spec; its index. */
static Py_ssize_t add_spec(Engine *e, double timeout, int kind, PyObject *out, PyObject *needle,
                           PyObject *statuses, Py_ssize_t host_at)
{
    if (!(timeout > 0 && timeout < 1e6)) {
        PyErr_SetString(PyExc_ValueError, "timeout out of range");
        return -1;
    }
    if (grow((void **)&e->specs, &e->capspecs, e->nspecs + 1, sizeof(spec_t *)) < 0)
        return -1;
    spec_t *s = PyMem_Malloc(sizeof(spec_t));
    if (s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (spec_fill(s, kind, out, needle, statuses) < 0) {
        PyMem_Free(s);
        return -1;
    }
    if (host_at >= 0) {
        if (s->out == NULL || host_at > PyBytes_GET_SIZE(s->out)) {
            Py_XDECREF(s->out);
            Py_XDECREF(s->needle);
            Py_XDECREF(s->statuses);
            PyMem_Free(s->fail);
            PyMem_Free(s);
            PyErr_SetString(PyExc_ValueError, "host_at is past the end of out");
            return -1;
        }
        s->host_at = (int32_t)host_at;
    }
    s->timeout_ns = (int64_t)(timeout * 1e9);
    e->specs[e->nspecs] = s;
    return e->nspecs++;
}

/* A new host value (http's Host header); its id. Value 0 is the empty one. */
static Py_ssize_t add_host(Engine *e, const char *host, Py_ssize_t len)
{
    if (len == 0)
        return 0;
    if (len > UINT16_MAX || e->nhosts + len > UINT32_MAX || e->nhostv >= UINT32_MAX - 2) {
        PyErr_SetString(PyExc_ValueError, "host value too long");
        return -1;
    }
    if (e->hoff == NULL) {
        e->hoff = PyMem_Calloc(64, sizeof(uint32_t));   /* value 0: hoff[0] = hoff[1] = 0 */
        if (e->hoff == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        e->caphoff = 64;
        e->nhostv = 1;
    }
    if (grow((void **)&e->hoff, &e->caphoff, e->nhostv + 2, sizeof(uint32_t)) < 0
        || grow((void **)&e->hosts, &e->caphosts, e->nhosts + len, 1) < 0)
        return -1;
    memcpy(e->hosts + e->nhosts, host, (size_t)len);
    e->nhosts += len;
    e->hoff[e->nhostv + 1] = (uint32_t)e->nhosts;
    return e->nhostv++;
}

/* A new target probed by spec `spec`, with host value `host`; its probe id. */
static Py_ssize_t add_target(Engine *e, const char *ip, int port, Py_ssize_t spec,
                             Py_ssize_t host)
{
    if (host < 0 || host >= (e->hoff == NULL ? 1 : e->nhostv)) {
        PyErr_SetString(PyExc_IndexError, "no such host value");
        return -1;
    }
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    if (spec < 0 || spec >= e->nspecs) {
        PyErr_SetString(PyExc_IndexError, "no such spec");
        return -1;
    }
    if (e->ntargets >= INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "too many probes");
        return -1;
    }
    if (grow((void **)&e->targets, &e->captargets, e->ntargets + 1, sizeof(target_t)) < 0)
        return -1;
    target_t *t = &e->targets[e->ntargets];
    memset(t, 0, sizeof(*t));
    t->spec = (int32_t)spec;
    t->host = (uint32_t)host;
    t->slot = -1;
    t->port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, t->ip) == 1) {
        t->v6 = 0;
    } else if (inet_pton(AF_INET6, ip, t->ip) == 1) {
        t->v6 = 1;
    } else {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", ip);
        return -1;
    }
    return e->ntargets++;
}

static PyObject *Engine_spec(Engine *e, PyObject *args)
{
    int kind;
    double timeout;
    PyObject *out, *needle, *statuses;
    Py_ssize_t host_at = -1;
    if (!PyArg_ParseTuple(args, "diOOO|n:spec", &timeout, &kind, &out, &needle, &statuses,
                          &host_at))
        return NULL;
    Py_ssize_t id = add_spec(e, timeout, kind, out, needle, statuses, host_at);
    return id < 0 ? NULL : PyLong_FromSsize_t(id);
}

static PyObject *Engine_host(Engine *e, PyObject *args)
{
    const char *host;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "y#:host", &host, &len))
        return NULL;
    Py_ssize_t id = add_host(e, host, len);
    return id < 0 ? NULL : PyLong_FromSsize_t(id);
}

static PyObject *Engine_target(Engine *e, PyObject *args)
{
    const char *ip;
    int port;
    Py_ssize_t spec, host = 0;
    if (!PyArg_ParseTuple(args, "sin|n:target", &ip, &port, &spec, &host))
        return NULL;
    Py_ssize_t id = add_target(e, ip, port, spec, host);
    return id < 0 ? NULL : PyLong_FromSsize_t(id);
}

static PyObject *Engine_add(Engine *e, PyObject *args)
{
    const char *ip;
    int port, kind;
    double timeout;
    PyObject *out, *needle, *statuses;
    Py_ssize_t host_at = -1, host_len = 0;
    const char *host = "";
    if (!PyArg_ParseTuple(args, "sidiOOO|ny#:add", &ip, &port, &timeout, &kind, &out, &needle,
                          &statuses, &host_at, &host, &host_len))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return NULL;
    }
    Py_ssize_t spec = add_spec(e, timeout, kind, out, needle, statuses, host_at);
    if (spec < 0)
        return NULL;
    Py_ssize_t hid = add_host(e, host, host_len);
    Py_ssize_t id = hid < 0 ? -1 : add_target(e, ip, port, spec, hid);
    if (id < 0) {
        /* The spec was the last one added: take it back. */
        spec_t *s = e->specs[--e->nspecs];
        Py_XDECREF(s->out);
        Py_XDECREF(s->needle);
        Py_XDECREF(s->statuses);
        PyMem_Free(s->fail);
        PyMem_Free(s);
        return NULL;
    }
    return PyLong_FromSsize_t(id);
}

static PyObject *Engine_start(Engine *e, PyObject *arg)
{
    int64_t now = now_ns();
    if (PyLong_Check(arg)) {
        long long id = PyLong_AsLongLong(arg);
        if (id == -1 && PyErr_Occurred())
            return NULL;
        if (start_one(e, id, now) < 0)
            return NULL;
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            return NULL;
        if (view.itemsize != 8 || view.format == NULL
            || (strcmp(view.format, "q") != 0 && strcmp(view.format, "l") != 0)) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_TypeError, "ids must be a contiguous int64 buffer");
            return NULL;
        }
        const int64_t *ids = view.buf;
        Py_ssize_t n = view.len / 8;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (start_one(e, ids[i], now) < 0) {
                PyBuffer_Release(&view);
                return NULL;
            }
        }
        PyBuffer_Release(&view);
    }
    arm(e, now);
    return PyLong_FromSsize_t(e->nres - e->rhead);
}

static PyObject *Engine_cancel(Engine *e, PyObject *arg)
{
    Py_ssize_t id = PyLong_AsSsize_t(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    if (id >= 0 && id < e->ntargets && e->targets[id].slot >= 0)
        (void)release(e, e->targets[id].slot, 0, 0, 0, 0);
    Py_RETURN_NONE;
}

static PyObject *Engine_poll(Engine *e, PyObject *Py_UNUSED(ignored))
{
    struct epoll_event evs[EVENTS_PER_WAIT];
    Py_ssize_t before = e->nres - e->rhead;
    for (int round = 0; round < 16; round++) {
        int n = epoll_wait(e->epfd, evs, EVENTS_PER_WAIT, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TIMER_TAG) {
                uint64_t fired;
                (void)!read(e->tfd, &fired, sizeof(fired));
                e->armed = 0;
                continue;
            }
            int32_t slot = (int32_t)(uint32_t)tag;
            if (slot < 0 || slot >= e->nslots)
                continue;
            probe_t *p = &e->slots[slot];
            if (p->fd < 0 || p->gen != (uint32_t)(tag >> 32))
                continue;   /* finished earlier in this batch */
            probe_event(p, e->specs[e->targets[p->target].spec], evs[i].events, e->epfd, tag, e->buf, READ_BUFFER);
            if (p->rd.done && release(e, slot, 1, 0, 0, now_ns()) < 0)
                return NULL;
        }
        if (n < EVENTS_PER_WAIT)
            break;
    }
    int64_t now = now_ns();
    while (e->nheap && e->heap[0].deadline <= now) {
        tick_t t = e->heap[0];
        heap_pop(e);
        if (live(e, t) && release(e, t.slot, 1, O_TIMEOUT, RC_TIMEOUT, now) < 0)
            return NULL;
    }
    if (launch_due(e, now) < 0)
        return NULL;
    arm(e, now);
    return PyLong_FromSsize_t(e->nres - e->rhead - before);
}

static int writable(PyObject *obj, Py_buffer *v, Py_ssize_t item, const char *formats)
{
    if (PyObject_GetBuffer(obj, v, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (v->itemsize != item || v->format == NULL || strchr(formats, v->format[0]) == NULL
        || v->format[1] != '\0') {
        PyBuffer_Release(v);
        PyErr_SetString(PyExc_TypeError, "drain wants int64, int8, int32, float64 arrays");
        return -1;
    }
    return 0;
}

static PyObject *Engine_drain(Engine *e, PyObject *args)
{
    PyObject *o[4];
    if (!PyArg_ParseTuple(args, "OOOO:drain", &o[0], &o[1], &o[2], &o[3]))
        return NULL;
    Py_buffer v[4];
    static const Py_ssize_t items[4] = {8, 1, 4, 8};
    static const char *fmts[4] = {"ql", "bc", "i", "d"};
    for (int i = 0; i < 4; i++) {
        if (writable(o[i], &v[i], items[i], fmts[i]) < 0) {
            while (--i >= 0)
                PyBuffer_Release(&v[i]);
            return NULL;
        }
    }
    Py_ssize_t n = e->nres - e->rhead;
    for (int i = 0; i < 4; i++)
        if (v[i].len / items[i] < n)
            n = v[i].len / items[i];
    int64_t *ids = v[0].buf;
    int8_t *outcomes = v[1].buf;
    int32_t *codes = v[2].buf;
    double *lat = v[3].buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        result_t *r = &e->res[e->rhead + i];
        ids[i] = r->id;
        outcomes[i] = r->outcome;
        codes[i] = r->code;
        lat[i] = r->latency;
    }
    e->rhead += n;
    for (int i = 0; i < 4; i++)
        PyBuffer_Release(&v[i]);
    return PyLong_FromSsize_t(n);
}

static int int64_view(PyObject *obj, Py_buffer *v)
{
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (v->itemsize != 8 || v->format == NULL
        || (strcmp(v->format, "q") != 0 && strcmp(v->format, "l") != 0)) {
        PyBuffer_Release(v);
        PyErr_SetString(PyExc_TypeError, "plan wants contiguous int64 arrays");
        return -1;
    }
    return 0;
}

static PyObject *Engine_plan(Engine *e, PyObject *args)
{
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO:plan", &o[0], &o[1], &o[2]))
        return NULL;
    Py_buffer v[3];
    for (int i = 0; i < 3; i++) {
        if (int64_view(o[i], &v[i]) < 0) {
            while (--i >= 0)
                PyBuffer_Release(&v[i]);
            return NULL;
        }
    }
    Py_ssize_t n = v[0].len / 8;
    PyObject *ret = NULL;
    if (v[1].len / 8 != n || v[2].len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "plan arrays differ in length");
        goto done;
    }
    const int64_t *at = v[0].buf, *ids = v[1].buf, *late = v[2].buf;
    if (e->phead > 0) {
        /* Windows are planned before the last one has run out, so the queue
         * is never empty when one is added: drop what has been launched, or
         * the queue would grow by every start ever planned. */
        memmove(e->plan, e->plan + e->phead, (size_t)(e->nplan - e->phead) * sizeof(planned_t));
        e->nplan -= e->phead;
        e->phead = 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= e->ntargets) {
            PyErr_SetString(PyExc_IndexError, "no such probe id");
            goto done;
        }
        if (e->nplan > e->phead && at[i] < e->plan[e->nplan - 1].at) {
            PyErr_SetString(PyExc_ValueError, "planned starts must come in time order");
            goto done;
        }
        if (grow((void **)&e->plan, &e->capplan, e->nplan + 1, sizeof(planned_t)) < 0)
            goto done;
        e->plan[e->nplan++] = (planned_t){at[i], late[i], ids[i]};
    }
    int64_t now = now_ns();
    if (launch_due(e, now) < 0)
        goto done;
    arm(e, now);
    ret = PyLong_FromSsize_t(e->nres - e->rhead);
done:
    for (int i = 0; i < 3; i++)
        PyBuffer_Release(&v[i]);
    return ret;
}

static PyObject *Engine_take_schedule(Engine *e, PyObject *arg)
{
    Py_buffer v;
    if (writable(arg, &v, 8, "d") < 0)
        return NULL;
    Py_ssize_t n = v.len / 8 < e->nlate ? v.len / 8 : e->nlate;
    memcpy(v.buf, e->late, (size_t)n * sizeof(double));
    memmove(e->late, e->late + n, (size_t)(e->nlate - n) * sizeof(double));
    e->nlate -= n;
    PyBuffer_Release(&v);
    PyObject *r = Py_BuildValue("(nLL)", n, (long long)e->launched, (long long)e->missed);
    e->launched = e->missed = 0;
    return r;
}

static PyObject *Engine_configure(Engine *e, PyObject *args)
{
    int limit;
    double coalesce, grace;
    if (!PyArg_ParseTuple(args, "idd:configure", &limit, &coalesce, &grace))
        return NULL;
    if (limit < 1 || !(coalesce >= 0 && coalesce < 10) || !(grace >= 0 && grace < 1e6)) {
        PyErr_SetString(PyExc_ValueError, "limit >= 1, 0 <= coalesce < 10 s, grace >= 0");
        return NULL;
    }
    e->limit = limit;
    e->coalesce_ns = (int64_t)(coalesce * 1e9);
    e->grace_ns = (int64_t)(grace * 1e9);
    Py_RETURN_NONE;
}

static PyObject *Engine_fileno(Engine *e, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(e->epfd);
}

static PyObject *Engine_stop(Engine *e, PyObject *Py_UNUSED(ignored))
{
    close_all(e);
    Py_RETURN_NONE;
}

static PyObject *Engine_get_in_flight(Engine *e, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(e->nslots - e->nfree);
}

static PyObject *Engine_get_pending(Engine *e, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(e->nres - e->rhead);
}

static PyMethodDef Engine_methods[] = {
    {"add", (PyCFunction)Engine_add, METH_VARARGS,
     "add(ip, port, timeout, kind, out, needle, statuses[, host_at, host]) -> id: "
     "one check's probe, once (spec and target in one)."},
    {"spec", (PyCFunction)Engine_spec, METH_VARARGS,
     "spec(timeout, kind, out, needle, statuses[, host_at]) -> spec id: how probes run, "
     "shared by the targets given it; each target's host goes into out at host_at."},
    {"host", (PyCFunction)Engine_host, METH_VARARGS,
     "host(value) -> host id: a Host header value, for targets of specs that take one."},
    {"target", (PyCFunction)Engine_target, METH_VARARGS,
     "target(ip, port, spec[, host id]) -> id: one check's probe, run as that spec says."},
    {"start", (PyCFunction)Engine_start, METH_O,
     "start(ids): start a probe for each id (an int64 buffer, or one int); "
     "a probe of the same id still running ends as a timeout. Returns results pending."},
    {"cancel", (PyCFunction)Engine_cancel, METH_O, "cancel(id): drop a running probe, no result."},
    {"poll", (PyCFunction)Engine_poll, METH_NOARGS,
     "poll() -> n: handle ready sockets and passed deadlines without blocking."},
    {"drain", (PyCFunction)Engine_drain, METH_VARARGS,
     "drain(ids, outcomes, codes, latencies) -> n: move up to len results into the arrays."},
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "The epoll fd to watch for reading."},
    {"plan", (PyCFunction)Engine_plan, METH_VARARGS,
     "plan(at_ns, ids, late_ns): start each id at CLOCK_MONOTONIC at_ns (in time order), "
     "or count it missed when more than late_ns late."},
    {"take_schedule", (PyCFunction)Engine_take_schedule, METH_O,
     "take_schedule(lateness) -> (n, launched, missed): planned starts' lateness (seconds) "
     "into the float64 array, and the counts since the last call."},
    {"configure", (PyCFunction)Engine_configure, METH_VARARGS,
     "configure(limit, coalesce, grace): most probes in flight; seconds a timer may wait so "
     "that one wake-up serves several starts or deadlines; seconds past its timeout a "
     "verdict may be read before it counts as a timeout."},
    {"stop", (PyCFunction)Engine_stop, METH_NOARGS, "Drop every running probe and result."},
    {NULL, NULL, 0, NULL},
};

static PyObject *Engine_get_plan_capacity(Engine *e, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(e->capplan);
}

static PyObject *Engine_get_targets(Engine *e, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(e->ntargets);
}

static PyObject *Engine_get_specs(Engine *e, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(e->nspecs);
}

static PyGetSetDef Engine_getset[] = {
    {"in_flight", (getter)Engine_get_in_flight, NULL, "probes running", NULL},
    {"pending", (getter)Engine_get_pending, NULL, "results not drained yet", NULL},
    {"plan_capacity", (getter)Engine_get_plan_capacity, NULL,
     "planned starts the queue has room for (it holds only those not launched)", NULL},
    {"specs", (getter)Engine_get_specs, NULL, "distinct ways of probing added", NULL},
    {"targets", (getter)Engine_get_targets, NULL, "probe ids added", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "healthplane.checker._engine.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A batch of tcp and http probes on one epoll set.",
    .tp_new = Engine_new,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_getset = Engine_getset,
};
