/* The DNS front's UDP loop in C: recvmmsg, the fast path, sendmmsg.
 *
 * serve(fd, entries, rng, stats, limit) reads up to `limit` datagrams from
 * the non-blocking UDP socket fd, 64 per system call, answers those whose
 * question has an entry in `entries` (the dict of .fastpath.FastAnswers,
 * read exactly as FastAnswers.answer reads it), sends the answers 64 per
 * system call straight from the prebuilt bytes (scatter-gather: no copy),
 * and returns the others as a list of (bytes, address) for the Python paths
 * (which also build the entries this one only reads). entries None: every
 * datagram is returned.
 *
 * Every network byte is bounds checked before it is read; a Python error on
 * one datagram (none is expected) hands that datagram to Python instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
/* One past the front's MAX_QUERY: a longer datagram is FORMERR or dropped on
 * its first four bytes alone, so its cut copy gets the same answer. */
#define RECV_SIZE 4097
#define MAX_QUERY 4096
#define OPT_LEN 11
#define FORM_SIZE 9

static const unsigned char ONE_QUESTION[8] = {0, 1, 0, 0, 0, 0, 0, 0};
static const unsigned char ONE_QUESTION_OPT[8] = {0, 1, 0, 0, 0, 0, 0, 1};
static const unsigned char OPT_HEAD[3] = {0, 0, 0x29};

/* One set of buffers for every call: calls never overlap (busy says so, as
 * choice.index runs Python code, which could let another thread in). */
static int busy;
static unsigned char rbuf[BATCH][RECV_SIZE];
static struct sockaddr_storage raddr[BATCH];
static struct iovec riov[BATCH];
static struct mmsghdr rmsg[BATCH];
static struct iovec siov[BATCH][4];
static struct mmsghdr smsg[BATCH];
static PyObject *held[BATCH];

static PyObject *s_index;      /* "index" */
static PyObject *s_truncated;  /* "truncated" */
static PyObject *s_udp_error;  /* "udp_error" */

/* stats[key] += by, as collections.Counter does. 0 or -1 with an exception. */
static int bump(PyObject *stats, PyObject *key, long by)
{
    PyObject *old = PyDict_GetItemWithError(stats, key);   /* borrowed */
    long n = 0;
    if (old != NULL) {
        n = PyLong_AsLong(old);
        if (n == -1 && PyErr_Occurred())
            return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *value = PyLong_FromLong(n + by);
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(stats, key, value);
    Py_DECREF(value);
    return rc;
}

/* The answer to one datagram: 1 with iov[0..4) and *hold (a new reference)
 * set, 0 to hand it to Python, -1 with an exception (also handed over). */
static int answer_one(PyObject *entries, PyObject *rng, PyObject *stats,
                      const unsigned char *w, Py_ssize_t n, struct iovec *iov,
                      PyObject **hold)
{
    if (n < 17 || n > MAX_QUERY || (w[2] & 0xF8))   /* QR, or an opcode but QUERY */
        return 0;
    const unsigned char *end = memchr(w + 12, 0, (size_t)(n - 12));
    if (end == NULL)
        return 0;
    Py_ssize_t qe = (end - w) + 5;       /* past the name's end, type and class */
    int form_at;
    long payload;
    if (n == qe) {
        if (memcmp(w + 4, ONE_QUESTION, 8) != 0)
            return 0;
        form_at = 0;
        payload = 0;
    } else if (n == qe + OPT_LEN) {
        if (memcmp(w + 4, ONE_QUESTION_OPT, 8) != 0 || memcmp(w + qe, OPT_HEAD, 3) != 0
            || w[qe + 6] || w[qe + 9] || w[qe + 10])
            return 0;                    /* EDNS version above 0, or options */
        form_at = 1;
        payload = (long)w[qe + 3] << 8 | w[qe + 4];
    } else {
        return 0;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)w + 12, qe - 12);
    if (key == NULL)
        return -1;
    unsigned char *k = (unsigned char *)PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < qe - 12; i++) {
        if (k[i] >= 'A' && k[i] <= 'Z')  /* bytes.lower(): ASCII only */
            k[i] = (unsigned char)(k[i] + 32);
    }
    PyObject *entry = PyDict_GetItemWithError(entries, key);   /* borrowed */
    Py_DECREF(key);
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2)
        return 0;
    /* Held until sent: the dict (and so the bytes the iov points at) may change
     * while choice.index runs Python code. */
    Py_INCREF(entry);
    PyObject *choice = PyTuple_GET_ITEM(entry, 0);
    PyObject *answers = PyTuple_GET_ITEM(entry, 1);
    Py_ssize_t at = 0;
    if (choice != Py_None) {
        PyObject *r = PyObject_CallMethodOneArg(choice, s_index, rng);
        if (r == NULL)
            goto error;
        at = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (at == -1 && PyErr_Occurred())
            goto error;
    }
    if (!PyTuple_Check(answers) || at < 0 || at >= PyTuple_GET_SIZE(answers))
        goto decline;
    PyObject *forms = PyTuple_GET_ITEM(answers, at);
    if (!PyTuple_Check(forms) || PyTuple_GET_SIZE(forms) != 2)
        goto decline;
    PyObject *form = PyTuple_GET_ITEM(forms, form_at);
    if (!PyTuple_Check(form) || PyTuple_GET_SIZE(form) != FORM_SIZE)
        goto decline;
    long need = PyLong_AsLong(PyTuple_GET_ITEM(form, 0));
    if (need == -1 && PyErr_Occurred())
        goto error;
    int fits = payload >= need;
    int rd = w[2] & 1;
    PyObject *head = PyTuple_GET_ITEM(form, fits ? 3 + rd : 6 + rd);
    PyObject *tail = PyTuple_GET_ITEM(form, fits ? 5 : 8);
    if (!PyBytes_Check(head) || PyBytes_GET_SIZE(head) != 10 || !PyBytes_Check(tail))
        goto decline;
    if (bump(stats, PyTuple_GET_ITEM(form, 2), 1) < 0
        || (!fits && bump(stats, s_truncated, 1) < 0))
        goto error;
    iov[0].iov_base = (void *)w;
    iov[0].iov_len = 2;                                  /* the query's id */
    iov[1].iov_base = PyBytes_AS_STRING(head);
    iov[1].iov_len = 10;                                 /* flags and counts */
    iov[2].iov_base = (void *)(w + 12);
    iov[2].iov_len = (size_t)(qe - 12);                  /* the question as sent */
    iov[3].iov_base = PyBytes_AS_STRING(tail);
    iov[3].iov_len = (size_t)PyBytes_GET_SIZE(tail);     /* records and OPT */
    *hold = entry;
    return 1;
decline:
    Py_DECREF(entry);
    return 0;
error:
    Py_DECREF(entry);
    return -1;
}

/* The sender's address as Python's socket module gives it, or NULL. */
static PyObject *address(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    PyErr_SetString(PyExc_OSError, "datagram from an address family other than IP");
    return NULL;
}

/* Send smsg[0..count); a failed message is dropped and counted. 0 or -1. */
static int send_all(int fd, int count, PyObject *stats)
{
    int off = 0;
    long failed = 0;
    while (off < count) {
        int sent = sendmmsg(fd, smsg + off, (unsigned int)(count - off), MSG_DONTWAIT);
        if (sent > 0) {
            off += sent;
        } else if (sent < 0 && errno == EINTR) {
            continue;
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            failed += count - off;       /* the socket buffer is full: UDP drops */
            break;
        } else {
            failed += 1;                 /* this one cannot go (an odd address): skip it */
            off += 1;
        }
    }
    return failed ? bump(stats, s_udp_error, failed) : 0;
}

static PyObject *serve(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *entries, *rng, *stats;
    Py_ssize_t limit;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOOO!n", &fd, &entries, &rng, &PyDict_Type, &stats, &limit))
        return NULL;
    if (entries != Py_None && !PyDict_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "entries must be a dict or None");
        return NULL;
    }
    if (busy) {
        PyErr_SetString(PyExc_RuntimeError, "serve() is already running");
        return NULL;
    }
    PyObject *declined = PyList_New(0);
    if (declined == NULL)
        return NULL;
    busy = 1;
    Py_ssize_t total = 0;
    while (total < limit) {
        for (int i = 0; i < BATCH; i++) {
            riov[i].iov_base = rbuf[i];
            riov[i].iov_len = RECV_SIZE;
            memset(&rmsg[i], 0, sizeof rmsg[i]);
            rmsg[i].msg_hdr.msg_name = &raddr[i];
            rmsg[i].msg_hdr.msg_namelen = sizeof raddr[i];
            rmsg[i].msg_hdr.msg_iov = &riov[i];
            rmsg[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && bump(stats, s_udp_error, 1) < 0)
                goto fail;
            break;                        /* nothing more to read now */
        }
        int k = 0;
        for (int i = 0; i < got; i++) {
            Py_ssize_t n = (Py_ssize_t)rmsg[i].msg_len;
            if (n > RECV_SIZE)
                n = RECV_SIZE;
            int r = 0;
            if (entries != Py_None && !(rmsg[i].msg_hdr.msg_flags & MSG_TRUNC))
                r = answer_one(entries, rng, stats, rbuf[i], n, siov[k], &held[k]);
            if (r == 1) {
                memset(&smsg[k], 0, sizeof smsg[k]);
                smsg[k].msg_hdr.msg_name = &raddr[i];
                smsg[k].msg_hdr.msg_namelen = rmsg[i].msg_hdr.msg_namelen;
                smsg[k].msg_hdr.msg_iov = siov[k];
                smsg[k].msg_hdr.msg_iovlen = 4;
                k++;
                continue;
            }
            if (r < 0)
                PyErr_Clear();            /* Python's paths answer it, and log any bug */
            PyObject *addr = address(&raddr[i], rmsg[i].msg_hdr.msg_namelen);
            if (addr == NULL) {
                PyErr_Clear();            /* nowhere to answer: dropped */
                continue;
            }
            PyObject *item = Py_BuildValue("(y#N)", (const char *)rbuf[i], n, addr);
            if (item == NULL || PyList_Append(declined, item) < 0) {
                Py_XDECREF(item);
                for (int j = 0; j < k; j++)
                    Py_DECREF(held[j]);
                goto fail;
            }
            Py_DECREF(item);
        }
        int rc = send_all(fd, k, stats);
        for (int j = 0; j < k; j++)
            Py_DECREF(held[j]);
        if (rc < 0)
            goto fail;
        total += got;
        if (got < BATCH)
            break;
    }
    busy = 0;
    return declined;
fail:
    busy = 0;
    Py_DECREF(declined);
    return NULL;
}

static PyMethodDef methods[] = {
    {"serve", serve, METH_VARARGS,
     "serve(fd, entries, rng, stats, limit) -> [(bytes, address)]: answer what the fast "
     "path can from up to limit datagrams of fd; the rest are returned."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastdns", "The DNS front's UDP fast path in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastdns(void)
{
    s_index = PyUnicode_InternFromString("index");
    s_truncated = PyUnicode_InternFromString("truncated");
    s_udp_error = PyUnicode_InternFromString("udp_error");
    if (s_index == NULL || s_truncated == NULL || s_udp_error == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "BATCH", BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
