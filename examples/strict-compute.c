/* strict-compute: a computation that runs under the `strict` profile.
 *
 * Build it static (strict's view has /usr and /lib, but a static binary
 * needs neither) and deploy it:
 *
 *   gcc -O2 -static -o strict-compute examples/strict-compute.c
 *   solo deploy primes --exec strict-compute --profile strict --restart never
 *   solo logs primes
 *
 * It forks one worker per slice of the range, each counts the primes in
 * its slice and sends the count back through a pipe; the parent reads its
 * own /proc/self/status, prints each count and the total, and exits 0.
 * Everything it uses is in strict's allow list: files (/proc included),
 * memory, fork/wait, pipes, signals, timers.
 *
 * What a program must avoid under strict (docs/profiles.md, "strict"):
 * sockets of any kind (no @network-io: not even Unix sockets), System V
 * IPC and POSIX message queues, native AIO, chown, fsync and friends
 * (@sync), anything of the deny-only groups (mount, namespaces, ptrace,
 * bpf, ...), more than 8 processes or threads, more than 64 MiB of memory
 * and 16 MiB in /tmp. A forbidden call fails with EPERM; the process then
 * has one second to exit on its own (write its error, flush its output)
 * before it is killed and the service is quarantined.
 *
 *   solo deploy primes-net --exec strict-compute --profile strict --restart never --arg --try-network
 *
 * shows that: it prints its results, then its socket(2) call is denied; it
 * reports the error and exits 3. `solo status primes-net` says "exited with
 * code 3 after its filter denied socket(AF_INET) (profile strict)", and
 * `solo logs primes-net` has a `solo` line saying the same. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 3
#define LIMIT 200000L

static long count_primes(long from, long to) {
    long n = 0;
    for (long i = from < 2 ? 2 : from; i < to; i++) {
        int prime = 1;
        for (long d = 2; d * d <= i; d++)
            if (i % d == 0) {
                prime = 0;
                break;
            }
        n += prime;
    }
    return n;
}

/* The VmRSS line of /proc/self/status, or "?". */
static void rss(char *out, size_t cap) {
    snprintf(out, cap, "?");
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(out, cap, "%s", line + 6 + strspn(line + 6, " \t"));
        }
    fclose(f);
}

int main(int argc, char **argv) {
    int try_network = argc > 1 && !strcmp(argv[1], "--try-network");
    printf("strict-compute: counting primes below %ld with %d workers\n", LIMIT, WORKERS);
    int fds[WORKERS][2];
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        if (pipe(fds[w]) < 0) {
            perror("strict-compute: pipe");
            return 1;
        }
        fflush(stdout);
        pids[w] = fork();
        if (pids[w] < 0) {
            perror("strict-compute: fork");
            return 1;
        }
        if (pids[w] == 0) {
            close(fds[w][0]);
            long slice = LIMIT / WORKERS, from = w * slice, to = w == WORKERS - 1 ? LIMIT : from + slice;
            long n = count_primes(from, to);
            if (write(fds[w][1], &n, sizeof n) != sizeof n) _exit(1);
            _exit(0);
        }
        close(fds[w][1]);
    }
    long total = 0;
    for (int w = 0; w < WORKERS; w++) {
        long n = 0;
        if (read(fds[w][0], &n, sizeof n) != sizeof n) {
            fprintf(stderr, "strict-compute: worker %d sent nothing\n", w);
            return 1;
        }
        int st;
        waitpid(pids[w], &st, 0);
        printf("worker %d (pid %d): %ld primes\n", w, (int)pids[w], n);
        total += n;
    }
    char mem[64];
    rss(mem, sizeof mem);
    printf("total: %ld primes below %ld (VmRSS %s)\n", total, LIMIT, mem);
    if (try_network) {
        /* Forbidden under strict: fails with EPERM, and the supervisor
         * records it. Report it and exit before the grace runs out. */
        if (socket(AF_INET, SOCK_STREAM, 0) < 0) {
            printf("strict-compute: socket: %s (strict allows no sockets)\n", strerror(errno));
            return 3;
        }
        printf("strict-compute: socket created (not under strict)\n");
    }
    printf("done\n");
    return 0;
}
