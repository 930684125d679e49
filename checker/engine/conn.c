/* One probe's connection and verdict, without Python objects.
 *
 * The reader mirrors the pure-Python probers rule for rule (http.py, tcp.py,
 * stream.py): the response is parsed by llhttp, the parser httptools wraps,
 * driven with the same callbacks, so both paths reach the same verdict on the
 * same bytes; the fuzz test holds them to it. Every network byte goes through
 * llhttp or a bounded KMP search: nothing here indexes by a length the peer
 * chose.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* -- verdicts ------------------------------------------------------------ */

void reader_finish(reader_t *rd, int8_t outcome, int32_t code)
{
    if (rd->done)
        return;             /* the first verdict wins, as in Exchange.finish */
    rd->done = 1;
    rd->outcome = outcome;
    rd->code = code;
}

void errno_verdict(int err, int8_t *outcome, int32_t *code)
{
    /* stream.connect_reason, by errno. */
    switch (err) {
    case ECONNREFUSED:
        *outcome = O_REFUSED; *code = RC_REFUSED; return;
    case ECONNRESET: case EPIPE: case ECONNABORTED: case ESHUTDOWN:
        *outcome = O_RESET; *code = RC_RESET; return;
    case ENETUNREACH: case EHOSTUNREACH: case EHOSTDOWN: case ENETDOWN:
        *outcome = O_UNREACHABLE; *code = RC_UNREACHABLE; return;
    case ETIMEDOUT:
        *outcome = O_TIMEOUT; *code = RC_TIMEOUT; return;
    default:
        *outcome = O_ERROR;
        *code = RC_ERRNO + (err > 0 && err < 1000 ? err : 0);
    }
}

static void finish_errno(reader_t *rd, int err)
{
    int8_t outcome;
    int32_t code;
    errno_verdict(err, &outcome, &code);
    reader_finish(rd, outcome, code);
}

/* -- bounded needle search ------------------------------------------------ */

int32_t *kmp_table(const uint8_t *needle, Py_ssize_t n)
{
    int32_t *fail = PyMem_Malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (fail == NULL)
        return NULL;
    fail[0] = 0;
    int32_t k = 0;
    for (Py_ssize_t i = 1; i < n; i++) {
        while (k > 0 && needle[i] != needle[k])
            k = fail[k - 1];
        if (needle[i] == needle[k])
            k++;
        fail[i] = k;
    }
    return fail;
}

/* Search the first `limit` bytes of a stream for the needle, `n` new bytes at
 * a time: found is healthy, `limit` bytes without it is `missing`. The KMP
 * state carries matches across reads, so a needle split across reads is found
 * and each byte is looked at once. */
static void search(reader_t *rd, const uint8_t *d, size_t n, uint32_t limit, int32_t missing)
{
    const spec_t *s = rd->spec;
    const uint8_t *needle = (const uint8_t *)PyBytes_AS_STRING(s->needle);
    int32_t len = (int32_t)PyBytes_GET_SIZE(s->needle);
    size_t room = limit - rd->searched;
    size_t m = n < room ? n : room;
    int32_t k = rd->match;
    for (size_t i = 0; i < m; i++) {
        while (k > 0 && d[i] != needle[k])
            k = s->fail[k - 1];
        if (d[i] == needle[k])
            k++;
        if (k == len) {
            reader_finish(rd, O_OK, RC_OK);
            return;
        }
    }
    rd->match = k;
    rd->searched += (uint32_t)m;
    if (rd->searched >= limit)
        reader_finish(rd, O_FAILED, missing);
}

/* -- http: llhttp callbacks, as http._Response and _SearchResponse -------- */

static int on_headers_complete(llhttp_t *p)
{
    reader_t *rd = p->data;
    if (!rd->done) {
        unsigned status = p->status_code;
        const char *table = PyBytes_AS_STRING(rd->spec->statuses);
        if (status < 1000 && table[status]) {
            if (rd->spec->needle != NULL)
                rd->in_body = 1;
            else
                reader_finish(rd, O_OK, RC_OK);
        } else {
            reader_finish(rd, O_FAILED, RC_STATUS + (int32_t)(status < 1000 ? status : 999));
        }
    }
    /* httptools skips the body of an upgrade, so llhttp pauses on it. */
    return p->upgrade ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    reader_t *rd = p->data;
    if (!rd->done && rd->in_body)
        search(rd, (const uint8_t *)at, len, SEARCH_LIMIT, RC_SEARCH_MISSING);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    reader_t *rd = p->data;
    if (rd->in_body)
        reader_finish(rd, O_FAILED, RC_SEARCH_MISSING);
    return 0;
}

static llhttp_settings_t http_settings;
static int http_settings_ready;

void reader_init(reader_t *rd, const spec_t *spec)
{
    memset(rd, 0, sizeof(*rd));
    rd->spec = spec;
    if (spec->kind == K_HTTP) {
        if (!http_settings_ready) {
            llhttp_settings_init(&http_settings);
            http_settings.on_headers_complete = on_headers_complete;
            http_settings.on_body = on_body;
            http_settings.on_message_complete = on_message_complete;
            http_settings_ready = 1;
        }
        llhttp_init(&rd->http, HTTP_RESPONSE, &http_settings);
    }
}

void reader_feed(reader_t *rd, const char *data, size_t len)
{
    if (rd->done)
        return;
    if (rd->spec->kind != K_HTTP) {
        if (rd->spec->expect)
            search(rd, (const uint8_t *)data, len, EXPECT_LIMIT, RC_EXPECT_MISSING);
        return;
    }
    size_t total = (size_t)rd->seen + len;   /* saturates just past the limit */
    rd->seen = total > HEADER_LIMIT ? HEADER_LIMIT + 1u : (uint32_t)total;
    /* The probe may have moved in memory since the last read (slots grow). */
    rd->http.data = rd;
    llhttp_errno_t err = llhttp_execute(&rd->http, data, len);
    if (err != HPE_OK)      /* HttpParserUpgrade and HttpParserError alike */
        reader_finish(rd, O_FAILED, RC_BAD_RESPONSE);
    if (rd->seen > HEADER_LIMIT && !rd->in_body)
        reader_finish(rd, O_FAILED, RC_HEADERS_OVER);
}

void reader_eof(reader_t *rd)
{
    if (rd->spec->kind == K_HTTP)
        /* A body delimited by the end of the connection ends here. */
        reader_finish(rd, rd->in_body ? O_FAILED : O_RESET,
                      rd->in_body ? RC_SEARCH_MISSING : RC_CLOSED);
    else if (rd->spec->expect)
        reader_finish(rd, O_FAILED, RC_EXPECT_MISSING);
    else
        reader_finish(rd, O_RESET, RC_CLOSED);
}

/* -- sockets -------------------------------------------------------------- */

static void write_more(probe_t *p, const spec_t *s)
{
    const char *out = p->out;
    uint32_t len = p->out_len;
    while (p->sent < len) {
        ssize_t n = send(p->fd, out + p->sent, len - p->sent, MSG_NOSIGNAL);
        if (n > 0) {
            p->sent += (uint32_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            /* A failed write ends the probe, as the transport's would;
             * tcp send without expect is judged on the connect alone. */
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
                && (s->kind == K_HTTP || s->expect))
                finish_errno(&p->rd, errno);
            return;
        }
    }
}

static void on_connected(probe_t *p, const spec_t *s)
{
    p->connected = 1;
    if (s->kind == K_CONNECT) {
        reader_finish(&p->rd, O_OK, RC_OK);
        return;
    }
    if (s->out != NULL)
        write_more(p, s);
    if (s->kind == K_TALK && !s->expect)
        reader_finish(&p->rd, O_OK, RC_OK);
}

/* Whether a connect in progress has completed: one cheap syscall. */
static int settled(int fd)
{
    struct sockaddr_in6 peer;
    socklen_t len = sizeof(peer);
    return getpeername(fd, (struct sockaddr *)&peer, &len) == 0;
}

void probe_open(probe_t *p, const spec_t *s, const target_t *t)
{
    p->connected = 0;
    p->sent = 0;
    reader_init(&p->rd, s);
    union { struct sockaddr_in v4; struct sockaddr_in6 v6; } addr;
    memset(&addr, 0, sizeof(addr));
    socklen_t addrlen;
    int family;
    if (t->v6) {
        family = addr.v6.sin6_family = AF_INET6;
        addr.v6.sin6_port = t->port;
        memcpy(&addr.v6.sin6_addr, t->ip, 16);
        addrlen = sizeof(struct sockaddr_in6);
    } else {
        family = addr.v4.sin_family = AF_INET;
        addr.v4.sin_port = t->port;
        memcpy(&addr.v4.sin_addr, t->ip, 4);
        addrlen = sizeof(struct sockaddr_in);
    }
    p->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        finish_errno(&p->rd, errno);
        return;
    }
    /* Close with a reset, as every probe does (no TIME_WAIT per probe). */
    struct linger reset = {1, 0};
    (void)setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    int r;
    do {
        r = connect(p->fd, (const struct sockaddr *)&addr, addrlen);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        on_connected(p, s);
    } else if (errno != EINPROGRESS) {
        finish_errno(&p->rd, errno);
    } else if (settled(p->fd)) {
        /* On loopback (and a near target) the handshake is done before
         * connect returns: talking now saves the probe a wake-up. */
        on_connected(p, s);
    }
}

/* Reads per event before yielding to other probes; an edge-triggered fd
 * that still has data is then re-armed so none is lost. */
#define READS_PER_EVENT 16

void probe_event(probe_t *p, const spec_t *s, uint32_t events, int epfd, uint64_t tag,
                 char *buf, size_t cap)
{
    reader_t *rd = &p->rd;
    if (!p->connected) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err != 0)
                finish_errno(rd, err);
            else
                reader_finish(rd, O_RESET, RC_CLOSED);
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        on_connected(p, s);
    } else if ((events & EPOLLOUT) && s->out != NULL) {
        write_more(p, s);
    }
    if (rd->done || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    int closing = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = recv(p->fd, buf, cap, 0);
        if (n > 0) {
            reader_feed(rd, buf, (size_t)n);
            if (rd->done)
                return;
            /* A short read emptied the socket: the next bytes bring a new
             * edge. Unless the peer is closing, whose end is read now. */
            if ((size_t)n < cap && !closing)
                return;
        } else if (n == 0) {
            reader_eof(rd);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            finish_errno(rd, errno);
            return;
        }
    }
    struct epoll_event ev = {.events = PROBE_EVENTS, .data.u64 = tag};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &ev) < 0)
        finish_errno(rd, errno);
}
