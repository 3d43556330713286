/* steady: a long-running service for the re-adoption tests
 * (tests/reliability.rs). It prints "tick N" every INTERVAL milliseconds
 * (argument 1, default 100) and reacts to signals sent by the test:
 *
 *   SIGUSR1  calls ptrace(PTRACE_TRACEME), which every built-in profile's
 *            filter denies, and prints "denied <errno>" or "allowed": a
 *            denial recorded after a re-adoption proves the seccomp
 *            listener was taken over
 *   SIGUSR2  sends {"op":"hello"} on fd 3 (solo-control) and prints
 *            "control <reply>": the control socket was taken over
 *   SIGTERM  exits 0
 *
 * Each line is one write(2), flushed at once. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2, term;

static void on(int s) {
    if (s == SIGUSR1) usr1 = 1;
    if (s == SIGUSR2) usr2 = 1;
    if (s == SIGTERM) term = 1;
}

static void say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(1, buf, (size_t)n) < 0) _exit(3);
}

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 100;
    struct sigaction sa = {0};
    sa.sa_handler = on;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (long n = 0;; n++) {
        if (term) return 0;
        if (usr1) {
            usr1 = 0;
            long r = ptrace(PTRACE_TRACEME, 0, 0, 0);
            if (r == -1) say("denied %s", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
            else say("allowed");
        }
        if (usr2) {
            usr2 = 0;
            const char *req = "{\"op\":\"hello\"}";
            char reply[2048];
            if (send(3, req, strlen(req), 0) < 0) {
                say("control send %s", strerrorname_np(errno));
            } else {
                ssize_t k = recv(3, reply, sizeof reply - 1, 0);
                reply[k > 0 ? k : 0] = 0;
                say("control %s", reply);
            }
        }
        say("tick %ld", n);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}
