// openloop: an open-loop HTTP/1.1 load generator with µs pacing, the native
// twin of src/loadtest/open-loop-client.ts (same flags, same JSON line), for
// sub-millisecond tails the Node client cannot see at 20k req/s on 2 cores.
//
//   openloop --port P (--requests FILE | --paths FILE) (--rate R | --schedule FILE)
//            [--host 127.0.0.1] [--connections 50] [--warmup-ms 2000]
//            [--duration-ms 10000] [--ok-below 300] [--timeout-ms 10000]
//            [--spin-us 50] [--out FILE]
//
// Request k is due at t0 + k/R (or at its own offset from --schedule: a
// replay of captured traffic keeps its inter-arrival times) and goes out on the next idle keep-alive
// connection (one request in flight per connection, no pipelining); its
// latency counts from when it was due, so a stalled server cannot hide its
// stall by slowing the generator down (coordinated omission). Pacing: a
// timerfd armed on CLOCK_MONOTONIC (timer slack 1 ns) wakes the loop
// `spin-us` before the next due time, and the loop then polls (epoll_wait
// with a zero timeout) until it is due, so sends are late by µs, not by a
// millisecond timer tick. While any request is in flight it polls too, so
// an answer is read as it lands rather than after an idle CPU wakes up (on
// a quiet machine that took the hello-world's p99 at 10k req/s from 496 µs
// to 173 µs). Between requests it sleeps: the spin before a due time is
// short (50 µs, about a timer wake-up), since on a shared core a client that
// spins longer loses the core for long stretches. --spin-us 0 never polls.
//
// Requests: --requests holds whole requests, each a u32 (big-endian) length
// then its bytes (src/loadtest/open-loop.ts `writeRequests`); --paths holds
// one GET path per line. Both are cycled in order.
//
// Answers need a Content-Length (uWebSockets.js and segd always send one);
// anything else closes the connection and counts as an error. A connection
// closed or reset by the server is reopened (with backoff) and counted; a
// request on it is lost. A request unanswered after --timeout-ms is a timeout
// (its connection is closed and reopened). The run ends by itself: when every
// scheduled request is answered, or at the end of the window plus
// min(timeout, 5 s), whatever is still in flight then counting as lost.
//
// Memory is bounded: four fixed histograms, a per-second timeline sized from
// the duration, a header buffer per connection, and at most MAX_SLOW slow answers.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

// ───────────────────────────── histogram ─────────────────────────────
// Log-linear buckets of µs values: exact below 2048, then 1024 buckets per
// power of two (≤ 0.1 % wide, like a 3-significant-digit HDR histogram).

#define SUB_BITS 10
#define SUB (1u << SUB_BITS)
#define MAX_US ((1ull << 31) - 1)
#define NBUCKETS (2 * SUB + (31 - SUB_BITS - 1) * SUB)

typedef struct {
  uint64_t counts[NBUCKETS];
  uint64_t total;
  uint64_t max;
  double sum;
} hist_t;

static unsigned bucket_of(uint64_t v) {
  if (v > MAX_US) v = MAX_US;
  if (v < 2 * SUB) return (unsigned)v;
  unsigned e = (unsigned)(63 - __builtin_clzll(v)) - SUB_BITS;
  return 2 * SUB + (e - 1) * SUB + (unsigned)((v >> e) - SUB);
}

/** The highest value that falls in bucket i (what an HDR histogram reports). */
static uint64_t bucket_top(unsigned i) {
  if (i < 2 * SUB) return i;
  unsigned e = (i - 2 * SUB) / SUB + 1;
  uint64_t lo = (i - 2 * SUB) % SUB + SUB;
  return ((lo + 1) << e) - 1;
}

static void hist_record(hist_t *h, uint64_t v) {
  h->counts[bucket_of(v)]++;
  h->total++;
  h->sum += (double)v;
  if (v > h->max) h->max = v;
}

static void hist_reset(hist_t *h) { memset(h, 0, sizeof *h); }

static uint64_t hist_pct(const hist_t *h, double p) {
  if (!h->total) return 0;
  uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < NBUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= want) {
      uint64_t top = bucket_top(i);
      return top < h->max ? top : h->max;
    }
  }
  return h->max;
}

// ───────────────────────────── settings ─────────────────────────────

static struct {
  const char *host;
  int port;
  const char *requests_file;
  const char *paths_file;
  const char *out_file;
  const char *schedule_file;
  double rate;
  int connections;
  double warmup_ms, duration_ms, timeout_ms, spin_us;
  int ok_below;
} opt = {"127.0.0.1", 0, NULL, NULL, NULL, NULL, 0, 50, 2000, 10000, 10000, 50, 300};

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("openloop: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double num_arg(const char *name, const char *v, double min, double max) {
  char *end = NULL;
  errno = 0;
  double n = v ? strtod(v, &end) : NAN;
  if (!v || !*v || errno || *end || !(n >= min && n <= max))
    die("--%s must be a number from %g to %g; got \"%s\"", name, min, max, v ? v : "");
  return n;
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) die("unexpected argument \"%s\" (flags take a value)", a);
    const char *name = a + 2, *v = argv[++i];
    if (!strcmp(name, "host")) opt.host = v;
    else if (!strcmp(name, "port")) opt.port = (int)num_arg(name, v, 1, 65535);
    else if (!strcmp(name, "requests")) opt.requests_file = v;
    else if (!strcmp(name, "paths")) opt.paths_file = v;
    else if (!strcmp(name, "out")) opt.out_file = v;
    else if (!strcmp(name, "schedule")) opt.schedule_file = v;
    else if (!strcmp(name, "rate")) opt.rate = num_arg(name, v, 1, 10e6);
    else if (!strcmp(name, "connections")) opt.connections = (int)num_arg(name, v, 1, 10000);
    else if (!strcmp(name, "warmup-ms")) opt.warmup_ms = num_arg(name, v, 0, 3600e3);
    else if (!strcmp(name, "duration-ms")) opt.duration_ms = num_arg(name, v, 1, 3600e3);
    else if (!strcmp(name, "timeout-ms")) opt.timeout_ms = num_arg(name, v, 1, 600e3);
    else if (!strcmp(name, "spin-us")) opt.spin_us = num_arg(name, v, 0, 1e6);
    else if (!strcmp(name, "ok-below")) opt.ok_below = (int)num_arg(name, v, 200, 1000);
    else die("unknown flag --%s", name);
  }
  if (!opt.port) die("--port is required");
  if (!opt.rate && !opt.schedule_file)
    die("--rate R > 0 or --schedule FILE is required (this client runs open loop only)");
  if (!opt.requests_file == !opt.paths_file) die("give exactly one of --requests FILE or --paths FILE");
}

// ───────────────────────────── requests ─────────────────────────────

typedef struct {
  const char *data;
  size_t len;
} req_t;

static req_t *reqs;
static size_t n_reqs;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0) die("%s: %s", path, strerror(errno));
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) die("out of memory reading %s", path);
  size_t got = fread(buf, 1, (size_t)st.st_size, f);
  fclose(f);
  buf[got] = 0;
  *len = got;
  return buf;
}

static void load_requests(void) {
  size_t len;
  if (opt.requests_file) {
    char *all = read_file(opt.requests_file, &len);
    size_t cap = 0;
    for (size_t at = 0; at + 4 <= len;) {
      uint32_t n = ((uint32_t)(uint8_t)all[at] << 24) | ((uint32_t)(uint8_t)all[at + 1] << 16) |
                   ((uint32_t)(uint8_t)all[at + 2] << 8) | (uint32_t)(uint8_t)all[at + 3];
      if (at + 4 + n > len) die("%s: truncated request %zu", opt.requests_file, n_reqs + 1);
      if (n_reqs == cap) {
        cap = cap ? cap * 2 : 1024;
        reqs = realloc(reqs, cap * sizeof *reqs);
        if (!reqs) die("out of memory");
      }
      reqs[n_reqs++] = (req_t){all + at + 4, n};
      at += 4 + n;
    }
  } else {
    char *all = read_file(opt.paths_file, &len);
    size_t cap = 0;
    for (char *line = strtok(all, "\r\n"); line; line = strtok(NULL, "\r\n")) {
      if (!*line) continue;
      size_t n = strlen(line) + strlen(opt.host) + 32;
      char *r = malloc(n);
      if (!r) die("out of memory");
      int w = snprintf(r, n, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", line, opt.host);
      if (n_reqs == cap) {
        cap = cap ? cap * 2 : 1024;
        reqs = realloc(reqs, cap * sizeof *reqs);
        if (!reqs) die("out of memory");
      }
      reqs[n_reqs++] = (req_t){r, (size_t)w};
    }
  }
  if (!n_reqs) die("%s: no requests", opt.requests_file ? opt.requests_file : opt.paths_file);
}

// ───────────────────────────── clock ─────────────────────────────

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/** ns → µs, rounded, at least 1 for latencies (like the Node client). */
static inline uint64_t us_of(int64_t ns, int64_t min) {
  int64_t us = (ns + 500) / 1000;
  return (uint64_t)(us < min ? min : us);
}

// ───────────────────────────── run state ─────────────────────────────

enum { C_WAIT, C_CONNECTING, C_IDLE, C_BUSY };
#define HDR_CAP 8192

typedef struct {
  int fd;
  int state;
  int want_out;           // EPOLLOUT registered
  int64_t intended, sent; // ns
  int64_t retry_at;       // C_WAIT: when to reconnect
  int64_t backoff;        // ns
  const char *wbuf;       // unsent rest of the request
  size_t wlen;
  char hdr[HDR_CAP];
  size_t hlen;
  int64_t body_left;      // -1: reading headers
  int status;
  int in_ring;            // listed in the idle ring (perhaps stale)
} conn_t;

static conn_t *conns;
static struct sockaddr_storage addr;
static socklen_t addr_len;
static int ep, tfd;

static int64_t t0, measure_from, measure_to;
static double interval_ns;
static uint64_t total_k, next_k;
static int in_flight;

static hist_t *lat, *svc, *lag, *own_lag, *sec_h;
static uint64_t conn_waits; // in-window requests that went out on a connection as it freed up, none other idle
static int n_idle;          // connections in C_IDLE
static uint64_t completed, non2xx, ok_count, lost, conn_events, connect_failures;
static uint64_t fail_conn, fail_timeout, fail_other; // requests in the window that got no usable answer
static uint64_t status_counts[1000];
static uint64_t decade_buckets[100]; // 10 per decade of µs, for the report's histogram

typedef struct {
  uint64_t requests, errors, p50, p99, max;
} second_t;
static second_t *timeline;
static size_t n_seconds, cap_seconds;
static int64_t sec_end; // end of the second being filled
static uint64_t sec_errors;

static inline int in_window(int64_t intended) { return intended >= measure_from && intended < measure_to; }

// The slow answers with when they ended (wall clock, ms), for laying them
// against the server's event timeline, as the Node client's Recorder keeps
// them: every answer at or above the running 98th percentile (recomputed each
// second; every answer of the first second), at most MAX_SLOW (16 bytes each).
#define MAX_SLOW 2000000
static double *slow_end_ms;
static uint64_t *slow_us;
static size_t n_slow;
static int slow_truncated;
static uint64_t slow_floor;
static double wall_minus_mono_ms; // CLOCK_REALTIME − CLOCK_MONOTONIC, read once at the start

static void keep_if_slow(uint64_t l, int64_t now) {
  if (l < slow_floor) return;
  if (n_slow >= MAX_SLOW) {
    slow_truncated = 1;
    return;
  }
  slow_end_ms[n_slow] = wall_minus_mono_ms + (double)now / 1e6;
  slow_us[n_slow++] = l;
}

static void close_second(void) {
  if (n_seconds < cap_seconds)
    timeline[n_seconds++] = (second_t){sec_h->total, sec_errors, hist_pct(sec_h, 50), hist_pct(sec_h, 99), sec_h->max};
  hist_reset(sec_h);
  sec_errors = 0;
  sec_end += 1000000000;
  slow_floor = hist_pct(lat, 98);
}

/** Closes every second that ended by `now`; `final` also closes the partial one if anything fell in it. */
static void roll_to(int64_t now, int final) {
  while (now >= sec_end) close_second();
  if (final && (sec_h->total || sec_errors)) close_second();
}

static void note_failure(uint64_t *kind, int64_t now) {
  (*kind)++;
  if (now >= measure_from) {
    roll_to(now, 0);
    sec_errors++;
  }
}

static void idle_push(conn_t *c);

static void set_state(conn_t *c, int state) {
  n_idle += (state == C_IDLE) - (c->state == C_IDLE);
  c->state = state;
}

static void ep_set(conn_t *c, int out) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.u64 = (uint64_t)(c - conns)};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  c->want_out = out;
}

static void start_connect(conn_t *c, int64_t now) {
  c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->hlen = 0;
  c->body_left = -1;
  c->wlen = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u64 = (uint64_t)(c - conns)};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  c->want_out = 1;
  set_state(c, C_CONNECTING);
  // Loopback may connect at once; otherwise (done or refused) epoll reports it.
  if (connect(c->fd, (struct sockaddr *)&addr, addr_len) == 0) {
    set_state(c, C_IDLE);
    ep_set(c, 0);
    idle_push(c);
  }
  (void)now;
}

/** The connection is gone (closed, reset, refused, a bad answer): count it, lose its request, reopen later. */
static void lose(conn_t *c, int64_t now, uint64_t *why) {
  if (c->state == C_WAIT) return;
  if (c->state == C_CONNECTING) connect_failures++;
  else conn_events++;
  if (c->state == C_BUSY) {
    in_flight--;
    if (in_window(c->intended)) {
      lost++;
      note_failure(why, now);
    }
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  set_state(c, C_WAIT);
  c->backoff = c->backoff ? (c->backoff * 2 > 100000000 ? 100000000 : c->backoff * 2) : 1000000;
  c->retry_at = now + c->backoff;
}

static void flush(conn_t *c, int64_t now) {
  while (c->wlen) {
    ssize_t w = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      c->wbuf += w;
      c->wlen -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->want_out) ep_set(c, 1);
      return;
    } else {
      lose(c, now, &fail_conn);
      return;
    }
  }
  if (c->want_out) ep_set(c, 0);
}

// --schedule FILE (a replay): request k is due at its own offset, a u32
// big-endian count of µs from the start, non-decreasing, one per request.
static uint64_t *sched_ns;
static uint64_t n_sched;

static void read_schedule(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) die("%s: %s", file, strerror(errno));
  uint64_t cap = 1 << 16;
  sched_ns = malloc(cap * sizeof *sched_ns);
  unsigned char b[4];
  uint64_t prev = 0;
  while (fread(b, 1, 4, f) == 4) {
    uint64_t us = ((uint64_t)b[0] << 24) | ((uint64_t)b[1] << 16) | ((uint64_t)b[2] << 8) | b[3];
    if (us < prev) die("%s: offsets must not decrease (entry %llu)", file, (unsigned long long)n_sched);
    prev = us;
    if (n_sched == cap) sched_ns = realloc(sched_ns, (cap *= 2) * sizeof *sched_ns);
    if (!sched_ns) die("out of memory reading %s", file);
    sched_ns[n_sched++] = us * 1000;
  }
  fclose(f);
  if (!n_sched) die("%s: no entries", file);
}

/** When request k is due: by the schedule, or every 1/rate. */
static inline int64_t due_at(uint64_t k) {
  return sched_ns ? t0 + (int64_t)sched_ns[k] : t0 + (int64_t)((double)k * interval_ns);
}

/**
 * Sends request k on idle connection c. `freed`: c just became free and takes
 * a request already due; with no other connection idle, that request waited
 * for a connection (the server was slow) rather than for the generator.
 */
static void send_req(conn_t *c, uint64_t k, int64_t now, int freed) {
  const req_t *r = &reqs[k % n_reqs];
  int waited = freed && n_idle == 1;
  set_state(c, C_BUSY);
  c->intended = due_at(k);
  c->sent = now;
  c->wbuf = r->data;
  c->wlen = r->len;
  in_flight++;
  if (in_window(c->intended)) {
    uint64_t l = us_of(now - c->intended, 0);
    hist_record(lag, l);
    if (waited) conn_waits++;
    else hist_record(own_lag, l);
  }
  flush(c, now);
}

static inline uint64_t due_count(int64_t now) {
  if (now < t0) return 0;
  if (sched_ns) {
    // Requests are sent in order, so the count only grows: scan on from the last one.
    static uint64_t n;
    while (n < total_k && (int64_t)sched_ns[n] <= now - t0) n++;
    return n;
  }
  uint64_t d = (uint64_t)((double)(now - t0) / interval_ns) + 1;
  return d < total_k ? d : total_k;
}

// Idle connections, FIFO (so every connection stays warm): a ring of indices.
static int *idle_ring;
static size_t idle_head, idle_n;

static void idle_push(conn_t *c) {
  if (c->in_ring) return; // its entry is still there, and valid again
  c->in_ring = 1;
  idle_ring[(idle_head + idle_n) % (size_t)opt.connections] = (int)(c - conns);
  idle_n++;
}

static conn_t *idle_take(void) {
  while (idle_n) {
    conn_t *c = &conns[idle_ring[idle_head]];
    idle_head = (idle_head + 1) % (size_t)opt.connections;
    idle_n--;
    c->in_ring = 0;
    if (c->state == C_IDLE) return c;
  }
  return NULL;
}

/** An answer is complete: record it, and send the next due request on this connection. */
static void answered(conn_t *c, int64_t now) {
  set_state(c, C_IDLE);
  c->backoff = 0;
  in_flight--;
  if (in_window(c->intended)) {
    uint64_t l = us_of(now - c->intended, 1);
    completed++;
    hist_record(lat, l);
    hist_record(svc, us_of(now - c->sent, 1));
    roll_to(now, 0);
    hist_record(sec_h, l);
    keep_if_slow(l, now);
    int b = (int)floor(log10((double)l) * 10);
    if (b >= 0 && b < 100) decade_buckets[b]++;
    int s = c->status;
    if (s < 200 || s > 299) non2xx++;
    if (s >= 200 && s < opt.ok_below) ok_count++;
    else {
      status_counts[s >= 0 && s < 1000 ? s : 0]++;
      sec_errors++;
    }
  }
  if (next_k < due_count(now)) send_req(c, next_k++, now, 1);
  else idle_push(c);
}

/** Consumes bytes read from a connection; returns 0 when the connection was lost. */
static int consume(conn_t *c, const char *p, size_t n, int64_t now) {
  while (n) {
    if (c->body_left < 0) {
      size_t take = n < HDR_CAP - c->hlen ? n : HDR_CAP - c->hlen;
      size_t from = c->hlen >= 3 ? c->hlen - 3 : 0;
      memcpy(c->hdr + c->hlen, p, take);
      c->hlen += take;
      char *end = memmem(c->hdr + from, c->hlen - from, "\r\n\r\n", 4);
      if (!end) {
        if (c->hlen == HDR_CAP) {
          lose(c, now, &fail_other);
          return 0;
        }
        return 1;
      }
      size_t head = (size_t)(end - c->hdr) + 4;
      if (c->state != C_BUSY || head < 12 || strncmp(c->hdr, "HTTP/1.", 7) != 0) {
        lose(c, now, &fail_other);
        return 0;
      }
      c->status = (c->hdr[9] - '0') * 100 + (c->hdr[10] - '0') * 10 + (c->hdr[11] - '0');
      long long cl = -1;
      for (char *q = c->hdr; q < c->hdr + head - 2;) {
        char *eol = memmem(q, (size_t)(c->hdr + head - q), "\r\n", 2);
        if (!eol) break;
        if (eol - q > 15 && !strncasecmp(q, "content-length:", 15)) cl = strtoll(q + 15, NULL, 10);
        q = eol + 2;
      }
      if (cl < 0) {
        lose(c, now, &fail_other); // chunked or close-delimited answers are not supported
        return 0;
      }
      size_t rest = take - (c->hlen - head); // bytes of this chunk that belong to the headers
      p += rest;
      n -= rest;
      c->hlen = 0;
      c->body_left = cl;
    }
    size_t b = (int64_t)n < c->body_left ? n : (size_t)c->body_left;
    p += b;
    n -= b;
    c->body_left -= (int64_t)b;
    if (c->body_left == 0) {
      c->body_left = -1;
      answered(c, now);
      if (c->state == C_WAIT) return 0; // its next request could not be written
      if (n && c->state != C_BUSY) {
        lose(c, now, &fail_other); // an answer to no request
        return 0;
      }
    }
  }
  return 1;
}

static void on_event(conn_t *c, uint32_t ev) {
  int64_t now = now_ns();
  if (c->state == C_WAIT) return;
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err || (ev & (EPOLLERR | EPOLLHUP))) {
      lose(c, now, &fail_conn);
      return;
    }
    if (ev & EPOLLOUT) {
      set_state(c, C_IDLE);
      ep_set(c, 0);
      if (t0 && next_k < due_count(now)) send_req(c, next_k++, now, 1);
      else idle_push(c);
    }
    return;
  }
  if (ev & EPOLLIN) {
    char buf[65536];
    for (;;) {
      ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) {
        if (!consume(c, buf, (size_t)r, now)) return;
        if ((size_t)r < sizeof buf) break;
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        lose(c, now, &fail_conn); // closed (r == 0) or reset
        return;
      }
    }
  }
  if (ev & (EPOLLERR | EPOLLHUP)) {
    lose(c, now, &fail_conn);
    return;
  }
  if ((ev & EPOLLOUT) && c->state == C_BUSY) flush(c, now);
}

// ───────────────────────────── output ─────────────────────────────

static void pct_json(FILE *f, const char *name, const hist_t *h) {
  fprintf(f,
          "\"%s\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,\"mean\":%.3f}", name,
          (unsigned long long)hist_pct(h, 50), (unsigned long long)hist_pct(h, 90),
          (unsigned long long)hist_pct(h, 99), (unsigned long long)hist_pct(h, 99.9), (unsigned long long)h->max,
          h->total ? h->sum / (double)h->total : 0.0);
}

static void write_json(FILE *f) {
  double seconds = opt.duration_ms / 1000;
  uint64_t transport = fail_conn + fail_timeout + fail_other;
  uint64_t error_count = completed - ok_count + transport;
  fprintf(f,
          "{\"client\":\"native\",\"rate\":%g,\"connections\":%d,\"completed\":%llu,\"seconds\":%g,\"rps\":%.3f,"
          "\"errors\":%llu,\"connectFailures\":%llu,\"non2xx\":%llu,\"lost\":%llu,",
          opt.rate, opt.connections, (unsigned long long)completed, seconds, (double)completed / seconds,
          (unsigned long long)conn_events, (unsigned long long)connect_failures, (unsigned long long)non2xx,
          (unsigned long long)lost);
  pct_json(f, "latencyUs", lat);
  fputc(',', f);
  pct_json(f, "serviceUs", svc);
  fputc(',', f);
  pct_json(f, "sendLagUs", lag);
  fputc(',', f);
  pct_json(f, "ownLagUs", own_lag);
  fprintf(f, ",\"connWaits\":%llu", (unsigned long long)conn_waits);
  fprintf(f, ",\"figures\":{\"requests\":%llu,\"ok\":%llu,\"seconds\":%g,\"rps\":%.3f,\"errors\":{\"status\":{",
          (unsigned long long)completed, (unsigned long long)ok_count, seconds, (double)completed / seconds);
  int first = 1;
  for (int s = 0; s < 1000; s++)
    if (status_counts[s]) {
      fprintf(f, "%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)status_counts[s]);
      first = 0;
    }
  fprintf(f, "},\"timeouts\":%llu,\"connection\":%llu,\"other\":%llu},\"errorCount\":%llu,\"errorRate\":%.9g,",
          (unsigned long long)fail_timeout, (unsigned long long)fail_conn, (unsigned long long)fail_other,
          (unsigned long long)error_count,
          (double)error_count / (double)(completed + transport ? completed + transport : 1));
  pct_json(f, "latencyUs", lat);
  fputs(",\"timeline\":[", f);
  for (size_t i = 0; i < n_seconds; i++) {
    const second_t *s = &timeline[i];
    fprintf(f, "%s{\"t\":%zu,\"requests\":%llu,\"rps\":%llu,\"errors\":%llu,\"p50Us\":%llu,\"p99Us\":%llu,\"maxUs\":%llu}",
            i ? "," : "", i + 1, (unsigned long long)s->requests, (unsigned long long)s->requests,
            (unsigned long long)s->errors, (unsigned long long)s->p50, (unsigned long long)s->p99,
            (unsigned long long)s->max);
  }
  fputs("],\"histogram\":[", f);
  first = 1;
  for (int b = 0; b < 100; b++)
    if (decade_buckets[b]) {
      fprintf(f, "%s{\"fromUs\":%.6g,\"toUs\":%.6g,\"count\":%llu}", first ? "" : ",", pow(10, b / 10.0),
              pow(10, (b + 1) / 10.0), (unsigned long long)decade_buckets[b]);
      first = 0;
    }
  // The fine histogram's non-empty buckets as [top µs, count]: runs measured
  // in rounds are pooled from these (rounds.ts), exactly, not from percentiles.
  fputs("],\"counts\":[", f);
  first = 1;
  for (unsigned i = 0; i < NBUCKETS; i++)
    if (lat->counts[i]) {
      fprintf(f, "%s[%llu,%llu]", first ? "" : ",", (unsigned long long)bucket_top(i),
              (unsigned long long)lat->counts[i]);
      first = 0;
    }
  fprintf(f, "],\"startMs\":%.3f,\"slow\":{\"endMs\":[", wall_minus_mono_ms + (double)measure_from / 1e6);
  for (size_t i = 0; i < n_slow; i++) fprintf(f, "%s%.3f", i ? "," : "", slow_end_ms[i]);
  fputs("],\"us\":[", f);
  for (size_t i = 0; i < n_slow; i++) fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)slow_us[i]);
  fprintf(f, "],\"truncated\":%s}}}\n", slow_truncated ? "true" : "false");
}

// ───────────────────────────── main loop ─────────────────────────────

static void resolve_host(void) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  char port[16];
  snprintf(port, sizeof port, "%d", opt.port);
  int rc = getaddrinfo(opt.host, port, &hints, &res);
  if (rc != 0 || !res) die("%s: %s", opt.host, gai_strerror(rc));
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  addr_len = res->ai_addrlen;
  freeaddrinfo(res);
}

static void arm_timer(int64_t at) {
  static int64_t armed = -1;
  if (at == armed) return;
  armed = at;
  struct itimerspec its = {.it_value = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000}};
  if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) die("timerfd_settime: %s", strerror(errno));
}

#define TIMER_ID UINT64_MAX
#define MAX_EVENTS 256

/** Waits for I/O up to `until` (ns, monotonic); 0 polls once. */
static void poll_io(int64_t until, int64_t now) {
  struct epoll_event evs[MAX_EVENTS];
  int timeout = 0;
  if (until > now) {
    arm_timer(until);
    timeout = 1000; // the timer wakes the loop; this only bounds a lost wake-up
  }
  int n = epoll_wait(ep, evs, MAX_EVENTS, timeout);
  if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
  for (int i = 0; i < n; i++) {
    if (evs[i].data.u64 == TIMER_ID) {
      uint64_t x;
      ssize_t r = read(tfd, &x, sizeof x);
      (void)r;
      continue;
    }
    on_event(&conns[evs[i].data.u64], evs[i].events);
  }
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  load_requests();
  resolve_host();
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); // wake-ups on time, not up to 50 µs late

  lat = calloc(1, sizeof *lat);
  svc = calloc(1, sizeof *svc);
  lag = calloc(1, sizeof *lag);
  own_lag = calloc(1, sizeof *own_lag);
  sec_h = calloc(1, sizeof *sec_h);
  conns = calloc((size_t)opt.connections, sizeof *conns);
  idle_ring = calloc((size_t)opt.connections, sizeof *idle_ring);
  int64_t grace_ns = (int64_t)((opt.timeout_ms < 5000 ? opt.timeout_ms : 5000) * 1e6);
  cap_seconds = (size_t)ceil(opt.duration_ms / 1000) + (size_t)ceil((double)grace_ns / 1e9) + 2;
  timeline = calloc(cap_seconds, sizeof *timeline);
  slow_end_ms = malloc(MAX_SLOW * sizeof *slow_end_ms);
  slow_us = malloc(MAX_SLOW * sizeof *slow_us);
  if (!lat || !svc || !lag || !own_lag || !sec_h || !conns || !idle_ring || !timeline || !slow_end_ms || !slow_us)
    die("out of memory");

  ep = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (ep < 0 || tfd < 0) die("epoll/timerfd: %s", strerror(errno));
  struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_ID};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

  // Every connection open before the schedule starts (up to 5 s).
  int64_t now = now_ns();
  for (int i = 0; i < opt.connections; i++) start_connect(&conns[i], now);
  int64_t connect_by = now + 5000000000LL;
  int open = 0;
  while (open < opt.connections && (now = now_ns()) < connect_by) {
    for (int i = 0; i < opt.connections; i++)
      if (conns[i].state == C_WAIT && conns[i].retry_at <= now) start_connect(&conns[i], now);
    poll_io(now + 10000000, now);
    open = 0;
    for (int i = 0; i < opt.connections; i++) open += conns[i].state == C_IDLE;
  }
  if (!open) die("cannot connect to %s:%d", opt.host, opt.port);

  if (opt.schedule_file) read_schedule(opt.schedule_file);
  interval_ns = opt.rate ? 1e9 / opt.rate : 0;
  {
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    wall_minus_mono_ms = (double)wall.tv_sec * 1e3 + wall.tv_nsec / 1e6 - (double)now_ns() / 1e6;
  }
  t0 = now_ns();
  measure_from = t0 + (int64_t)(opt.warmup_ms * 1e6);
  measure_to = measure_from + (int64_t)(opt.duration_ms * 1e6);
  sec_end = measure_from + 1000000000;
  if (sched_ns) {
    // The schedule's requests inside warm-up + duration; the rate reported is theirs.
    uint64_t end_ns = (uint64_t)((opt.warmup_ms + opt.duration_ms) * 1e6);
    while (total_k < n_sched && sched_ns[total_k] < end_ns) total_k++;
    opt.rate = (double)total_k / ((opt.warmup_ms + opt.duration_ms) / 1000);
  } else
    total_k = (uint64_t)ceil((opt.warmup_ms + opt.duration_ms) / 1000 * opt.rate);
  int64_t drain_until = measure_to + grace_ns;
  int64_t spin_ns = (int64_t)(opt.spin_us * 1000);
  int64_t timeout_ns = (int64_t)(opt.timeout_ms * 1e6);
  int64_t next_housekeeping = t0;

  for (;;) {
    now = now_ns();
    uint64_t due = due_count(now);
    while (next_k < due) {
      conn_t *c = idle_take();
      if (!c) break;
      send_req(c, next_k++, now, 0);
    }
    if (next_k >= total_k && in_flight == 0) break;
    if (now >= drain_until) break;
    if (now >= next_housekeeping) {
      next_housekeeping = now + 1000000;
      for (int i = 0; i < opt.connections; i++) {
        conn_t *c = &conns[i];
        if (c->state == C_BUSY && now - c->sent > timeout_ns) lose(c, now, &fail_timeout);
        else if (c->state == C_WAIT && c->retry_at <= now) start_connect(c, now);
      }
    }
    // Sleep on the timer until spin_ns before the next due request, then poll.
    int64_t wake = next_housekeeping;
    if (next_k < total_k && next_k >= due_count(now)) {
      int64_t next_due = due_at(next_k);
      if (next_due - spin_ns < wake) wake = next_due - spin_ns;
    }
    // An answer can only arrive while a request is in flight: poll for it
    // then, since waking an idle (virtual) CPU adds tens of µs to every
    // latency. --spin-us 0 never polls (for a core shared with other work).
    if (in_flight > 0 && spin_ns > 0) wake = 0;
    poll_io(wake, now_ns());
  }

  now = now_ns();
  // Whatever is still in flight or was never sent counts as lost.
  for (int i = 0; i < opt.connections; i++) {
    conn_t *c = &conns[i];
    if (c->state == C_BUSY && in_window(c->intended)) {
      lost++;
      note_failure(&fail_timeout, now);
    }
    if (c->fd >= 0 && c->state != C_WAIT) close(c->fd);
  }
  for (uint64_t k = next_k; k < total_k; k++)
    if (in_window(due_at(k))) {
      lost++;
      fail_timeout++;
    }
  roll_to(now < measure_to ? measure_to : now, 1);

  FILE *out = stdout;
  if (opt.out_file && !(out = fopen(opt.out_file, "w"))) die("%s: %s", opt.out_file, strerror(errno));
  write_json(out);
  if (out != stdout) fclose(out);
  return 0;
}
