/* listfds: prints the descriptors it was started with, one line:
 *   FDS 0=/dev/null 1=pipe:[..] 2=pipe:[..] 3=socket:[..]
 *   ENV LISTEN_FDS=.. LISTEN_FDNAMES=..
 * then waits for SIGTERM (exit 0). Reads /proc/self/fd through a
 * descriptor it opens itself, which it leaves out of the list. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_term(int s) {
    (void)s;
    _exit(0);
}

int main(void) {
    char out[8192] = "FDS";
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        printf("FDS error opendir /proc/self/fd\n");
        fflush(stdout);
    } else {
        int own = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == own) continue;
            char p[300], t[256];
            snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
            ssize_t n = readlink(p, t, sizeof t - 1);
            t[n > 0 ? n : 0] = 0;
            size_t l = strlen(out);
            snprintf(out + l, sizeof out - l, " %s=%s", e->d_name, t);
        }
        closedir(d);
        printf("%s\n", out);
    }
    const char *fds = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
    printf("ENV LISTEN_FDS=%s LISTEN_FDNAMES=%s\n", fds ? fds : "", names ? names : "");
    fflush(stdout);
    signal(SIGTERM, on_term);
    for (;;) pause();
}
