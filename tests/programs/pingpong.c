/*
 * pingpong: service-to-service round trips over a granted channel, for
 * `cargo bench --bench capabilities` (docs/benchmarks.md, "Capabilities").
 *
 *   pingpong serve
 *       Reads its control socket (the descriptor LISTEN_FDNAMES names
 *       "solo-control"); every descriptor pushed on it (another service
 *       connecting) is echoed byte for byte, by a thread of its own doing
 *       blocking reads and writes, until its peer closes it.
 *   pingpong ping NAME N [M SERVICE]
 *       On the granted descriptor NAME: N one-byte write/read round trips,
 *       then N 64-byte ones (after N/10 untimed ones each, at least 100),
 *       each timed with CLOCK_MONOTONIC; then M {"op":"hello"} and M
 *       {"op":"connect","service":SERVICE} requests on the control socket
 *       (the descriptor a connect returns is closed). Prints
 *         rtt_ns size=1 p50=… p90=… p99=… p999=… min=… mean=… n=…
 *         rtt_ns size=64 …
 *         control_hello_us p50=… p90=… p99=… min=… n=…
 *         control_connect_us …
 *         pingpong done
 *       then sleeps until killed.
 *   pingpong selftest N [same|cross]
 *       The same round trips between this process and a forked child over
 *       socketpair(AF_UNIX, SOCK_STREAM), the child echoing as a served
 *       connection is echoed: no supervisor, no sandbox. With
 *       "same" both are pinned to CPU 0, with "cross" to CPUs 0 and 1.
 *       Prints the two rtt_ns lines and `pingpong done`, then exits.
 *
 * With PINGPONG_CPU=C in the environment, every mode first pins itself (and
 * so every thread it starts) to CPU C. With PINGPONG_POLL=1, every read of
 * a round trip (both ends; selftest's child inherits it) spins on
 * recv(MSG_DONTWAIT) instead of sleeping in read(2): what a latency-bound
 * service on a core of its own does, and the cost of the channel itself.
 *
 * Exit status 2 on bad usage, 1 on a failed system call or request.
 *
 * cflags: -pthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* PINGPONG_POLL=1: reads spin on MSG_DONTWAIT instead of sleeping, so a
 * round trip costs the channel, not two wake-ups of a sleeping process. */
static int polling;

/* read(2), or with `polling` a spin on recv(MSG_DONTWAIT) until data (or
 * the end, or an error other than EAGAIN) comes. */
static ssize_t read_some(int fd, void *buf, size_t n) {
    if (!polling) return read(fd, buf, n);
    for (;;) {
        ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return r;
    }
}

static void die(const char *what) {
    printf("pingpong: %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

/* The descriptor systemd socket activation names NAME, or -1. */
static int named_fd(const char *name) {
    const char *n = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
    if (!n || !names) return -1;
    int count = atoi(n), i = 0;
    size_t len = strlen(name);
    for (const char *p = names; i < count; i++) {
        const char *end = strchr(p, ':');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == len && memcmp(p, name, len) == 0) return 3 + i;
        if (!end) break;
        p = end + 1;
    }
    return -1;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One message from a control socket and the descriptors it carries (closed
 * unless `fd` is non-NULL, which gets the first). Returns its length. */
static ssize_t recv_msg(int ctl, char *buf, size_t cap, int *fd) {
    char cbuf[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = {buf, cap - 1};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    ssize_t n;
    do n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    buf[n] = 0;
    if (fd) *fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *fds = (int *)CMSG_DATA(c);
        for (int i = 0; i < k; i++) {
            if (fd && *fd < 0) *fd = fds[i];
            else close(fds[i]);
        }
    }
    return n;
}

/* Echoes everything read on fd until its peer closes it. */
static void echo(int fd) {
    char buf[65536];
    for (;;) {
        ssize_t r = read_some(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || write_all(fd, buf, (size_t)r) < 0) break;
    }
    close(fd);
}

static void *echo_thread(void *arg) {
    echo((int)(long)arg);
    return NULL;
}

/* Takes connections from the control socket, one echo thread each; returns
 * when the control socket closes. */
static void serve(int ctl) {
    char buf[65536];
    int seen = 0, refused = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    for (;;) {
        int fd;
        if (recv_msg(ctl, buf, sizeof buf, &fd) <= 0) return;
        if (!seen++) {
            printf("pingpong: first message: %s\n", buf);
            fflush(stdout);
        }
        if (fd < 0) continue;
        pthread_t t;
        /* Over the service's task limit: the connection is refused (closed). */
        int e = pthread_create(&t, &attr, echo_thread, (void *)(long)fd);
        if (e != 0) {
            if (!refused++) {
                printf("pingpong: no thread for a connection (closed): %s\n", strerror(e));
                fflush(stdout);
            }
            close(fd);
        }
    }
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static long long pct(const long long *v, int n, double p) {
    int rank = (int)(p / 100.0 * n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

static void report(const char *what, long long *v, int n, double scale) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)v[i];
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    printf("%s p50=%.1f p90=%.1f p99=%.1f p999=%.1f min=%.1f mean=%.1f n=%d\n", what, pct(v, n, 50) / scale,
           pct(v, n, 90) / scale, pct(v, n, 99) / scale, pct(v, n, 99.9) / scale, v[0] / scale, sum / n / scale, n);
    fflush(stdout);
}

/* n timed write/read round trips of `size` bytes on fd, after some untimed. */
static void round_trips(int fd, int size, int n, long long *v) {
    char out[64], in[64];
    int warm = n / 10 > 100 ? n / 10 : 100;
    memset(out, 'x', sizeof out);
    for (int i = -warm; i < n; i++) {
        long long t0 = now_ns();
        if (write_all(fd, out, (size_t)size) < 0) die("write");
        for (int got = 0; got < size;) {
            ssize_t r = read_some(fd, in + got, (size_t)(size - got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) die(r == 0 ? "read: the peer closed the channel" : "read");
            got += (int)r;
        }
        long long t1 = now_ns();
        if (i >= 0) v[i] = t1 - t0;
    }
}

static void rtts(int fd, int n) {
    long long *v = malloc(sizeof(long long) * (size_t)n);
    if (!v) die("malloc");
    int sizes[2] = {1, 64};
    for (int k = 0; k < 2; k++) {
        char what[32];
        round_trips(fd, sizes[k], n, v);
        snprintf(what, sizeof what, "rtt_ns size=%d", sizes[k]);
        report(what, v, n, 1.0);
    }
    free(v);
}

/* One control request; the reply must say "ok":true. Returns its time. */
static long long request(int ctl, const char *req) {
    char buf[65536];
    long long t0 = now_ns();
    if (send(ctl, req, strlen(req), 0) < 0) die("send on the control socket");
    for (;;) {
        if (recv_msg(ctl, buf, sizeof buf, NULL) <= 0) die("recv on the control socket");
        if (!strstr(buf, "\"event\"")) break; /* an unsolicited push: not the reply */
    }
    long long t = now_ns() - t0;
    if (!strstr(buf, "\"ok\":true")) {
        printf("pingpong: %s -> %s\n", req, buf);
        fflush(stdout);
        exit(1);
    }
    return t;
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) < 0) die("sched_setaffinity");
}

int main(int argc, char **argv) {
    /* The benchmark pins services this way (their threads inherit it). */
    const char *cpu = getenv("PINGPONG_CPU"), *poll = getenv("PINGPONG_POLL");
    if (cpu && *cpu) pin(atoi(cpu));
    polling = poll && strcmp(poll, "1") == 0;
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        int ctl = named_fd("solo-control");
        if (ctl < 0) {
            printf("pingpong: no descriptor named solo-control\n");
            return 1;
        }
        printf("pingpong: serving\n");
        fflush(stdout);
        serve(ctl);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "ping") == 0) {
        int fd = named_fd(argv[2]), n = atoi(argv[3]);
        int m = argc >= 6 ? atoi(argv[4]) : 0;
        if (fd < 0 || n <= 0) {
            printf("pingpong: no descriptor named %s (or a bad N)\n", argv[2]);
            return 1;
        }
        rtts(fd, n);
        if (m > 0) {
            int ctl = named_fd("solo-control");
            char connect[256];
            if (ctl < 0) {
                printf("pingpong: no descriptor named solo-control\n");
                return 1;
            }
            snprintf(connect, sizeof connect, "{\"op\":\"connect\",\"service\":\"%s\"}", argv[5]);
            long long *v = malloc(sizeof(long long) * (size_t)m);
            if (!v) die("malloc");
            for (int i = -m / 10; i < m; i++) {
                long long t = request(ctl, "{\"op\":\"hello\"}");
                if (i >= 0) v[i] = t;
            }
            report("control_hello_us", v, m, 1000.0);
            for (int i = -m / 10; i < m; i++) {
                long long t = request(ctl, connect);
                if (i >= 0) v[i] = t;
            }
            report("control_connect_us", v, m, 1000.0);
            free(v);
        }
        printf("pingpong done\n");
        fflush(stdout);
        for (;;) pause();
    }
    if (argc >= 3 && strcmp(argv[1], "selftest") == 0) {
        int n = atoi(argv[2]), sv[2];
        const char *mode = argc >= 4 ? argv[3] : "";
        if (n <= 0) return 2;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
        pid_t child = fork();
        if (child < 0) die("fork");
        if (child == 0) {
            close(sv[0]);
            if (strcmp(mode, "same") == 0) pin(0);
            if (strcmp(mode, "cross") == 0) pin(1);
            echo(sv[1]);
            _exit(0);
        }
        close(sv[1]);
        if (strcmp(mode, "same") == 0 || strcmp(mode, "cross") == 0) pin(0);
        rtts(sv[0], n);
        close(sv[0]);
        int st;
        if (waitpid(child, &st, 0) < 0) die("waitpid");
        printf("pingpong done\n");
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
    }
    fprintf(stderr, "usage: pingpong serve | ping NAME N [M SERVICE] | selftest N [same|cross]\n");
    return 2;
}
