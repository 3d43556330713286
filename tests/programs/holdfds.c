/* holdfds: starts a program holding descriptors it should never pass on,
 * as a careless parent would (a shell script's pipe, an open file, a
 * socket, a high-numbered descriptor): none is close-on-exec.
 *
 *   holdfds PROGRAM [ARG...]
 *
 * Opens, without O_CLOEXEC: fd 3 and 4 (the two ends of a pipe, at the
 * numbers passed descriptors get in a service), fd 5 (a file), fd 9 (a
 * Unix socket), fd 1003 (the file again), then execs PROGRAM. Prints
 * nothing; exits 111 if it cannot set this up. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static void place(int fd, int at) {
    if (fd < 0 || (fd != at && dup2(fd, at) < 0)) {
        perror("holdfds");
        _exit(111);
    }
    if (fd != at) close(fd);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: holdfds PROGRAM [ARG...]\n");
        return 111;
    }
    int p[2], sv[2];
    if (pipe(p) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("holdfds");
        return 111;
    }
    /* Move them out of the way first, then into place. */
    int r = fcntl(p[0], F_DUPFD, 100), w = fcntl(p[1], F_DUPFD, 100), s = fcntl(sv[0], F_DUPFD, 100);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    int f = open("/etc/hostname", O_RDONLY);
    if (f < 0) f = open("/dev/null", O_RDONLY);
    int f2 = fcntl(f, F_DUPFD, 100);
    place(r, 3);
    place(w, 4);
    place(f2, 5);
    place(s, 9);
    place(f, 1003);
    execv(argv[1], argv + 1);
    perror("holdfds: exec");
    return 111;
}
