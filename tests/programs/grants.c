/*
 * grants: a service that looks at what it was granted, run by the launcher
 * tests in tests/sandbox.rs (under the `default` profile). It prints one
 * line per check on stdout (the log pipe), then `GRANT done`:
 *
 *   GRANT <check> <result>
 *
 * Path checks are named "<check>:<path>", e.g. "GRANT read:/srv/a/f allowed hi".
 *
 * Arguments (key=value words):
 *   fds          socket activation: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID
 *                against getpid(); fd 3 a listening socket it accepts one
 *                connection on (and answers "hello from the service"); fd 4
 *                a connected unix stream socket (writes "ping", reads the
 *                test's answer); no other descriptor open from
 *                3 + LISTEN_FDS on (fds-beyond); stdin
 *                /dev/null, stdout and stderr pipes
 *   read=PATH    read the file's first line
 *   create=PATH  create the file and write "written by the service"
 *   write=PATH   open an existing file for writing
 *   exec=PATH    fork and execve the file with argument "exit77" (a copy
 *                of this program exits 77: it ran)
 *   absent=PATH  stat the path (ENOENT expected)
 *   exit77       exit 77 at once (see exec=)
 *
 * Results: "allowed <detail>" or "denied <ERRNO>" (see errname()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EROFS: return "EROFS";
    case EBADF: return "EBADF";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENOEXEC: return "ENOEXEC";
    case ENOTSOCK: return "ENOTSOCK";
    default: return "E?";
    }
}

static void result(const char *check, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result(const char *check, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("GRANT %s %s\n", check, buf);
    fflush(stdout);
}

static int sockopt(int fd, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0) return -errno;
    return v;
}

static const char *kind(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return errname(errno);
    if (S_ISFIFO(st.st_mode)) return "pipe";
    if (S_ISCHR(st.st_mode)) return "chardev";
    if (S_ISSOCK(st.st_mode)) return "socket";
    if (S_ISREG(st.st_mode)) return "file";
    return "other";
}

static void check_fds(void) {
    const char *n = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES"), *pid = getenv("LISTEN_PID");
    result("listen-fds", "%s", n ? n : "unset");
    result("listen-fdnames", "%s", names ? names : "unset");
    result("listen-pid", "%s getpid=%d", pid ? pid : "unset", (int)getpid());
    /* How many LISTEN_ variables the environment holds (a faked one would add). */
    extern char **environ;
    int listen_vars = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LISTEN_", 7) == 0) listen_vars++;
    result("listen-vars", "%d", listen_vars);

    /* fd 3: the listening TCP socket, inheritable, accepting. */
    int fl = fcntl(3, F_GETFD);
    result("fd3", "%s cloexec=%d acceptconn=%d domain=%d type=%d", kind(3), fl < 0 ? -1 : !!(fl & FD_CLOEXEC),
           sockopt(3, SO_ACCEPTCONN), sockopt(3, SO_DOMAIN), sockopt(3, SO_TYPE));
    int c = accept4(3, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
        result("accept", "denied %s", errname(errno));
    } else {
        const char msg[] = "hello from the service\n";
        ssize_t w = write(c, msg, sizeof msg - 1);
        close(c);
        result("accept", "allowed wrote=%zd", w);
    }

    /* fd 4: one end of a unix stream socketpair. */
    fl = fcntl(4, F_GETFD);
    result("fd4", "%s cloexec=%d domain=%d type=%d", kind(4), fl < 0 ? -1 : !!(fl & FD_CLOEXEC),
           sockopt(4, SO_DOMAIN), sockopt(4, SO_TYPE));
    const char ping[] = "ping\n";
    if (write(4, ping, sizeof ping - 1) < 0) {
        result("pair", "denied %s", errname(errno));
    } else {
        char buf[64] = {0};
        ssize_t r = read(4, buf, sizeof buf - 1);
        if (r > 0 && buf[r - 1] == '\n') buf[r - 1] = 0;
        result("pair", "allowed read=%s", r > 0 ? buf : "nothing");
    }

    /* Nothing else open from 3 + LISTEN_FDS on. */
    char open_fds[256] = "none";
    size_t at = 0;
    for (int fd = 3 + (n ? atoi(n) : 0); fd < 4096; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) {
            at += snprintf(open_fds + at, sizeof open_fds - at, "%s%d", at ? "," : "", fd);
            if (at >= sizeof open_fds - 8) break;
        }
    }
    result("fds-beyond", "%s", open_fds);

    /* stdio as before: /dev/null in, the log pipes out. */
    char b;
    ssize_t r = read(0, &b, 1);
    result("stdin", "%s read=%zd", kind(0), r);
    result("stdout", "%s", kind(1));
    result("stderr", "%s", kind(2));
    fprintf(stderr, "GRANT stderr-line ok\n");
}

static char name[512];
static const char *named(const char *check, const char *path) {
    snprintf(name, sizeof name, "%s:%s", check, path);
    return name;
}

static void check_read(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        result(named("read", path), "denied %s", errname(errno));
        return;
    }
    char line[256] = {0};
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    result(named("read", path), "allowed %s", line);
}

static void check_create(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        result(named("create", path), "denied %s", errname(errno));
        return;
    }
    const char msg[] = "written by the service\n";
    ssize_t w = write(fd, msg, sizeof msg - 1);
    close(fd);
    result(named("create", path), "allowed wrote=%zd", w);
}

static void check_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        result(named("write", path), "denied %s", errname(errno));
        return;
    }
    close(fd);
    result(named("write", path), "allowed opened");
}

static void check_exec(const char *path) {
    pid_t p = fork();
    if (p < 0) {
        result(named("exec", path), "denied fork %s", errname(errno));
        return;
    }
    if (p == 0) {
        char *argv[] = {(char *)path, "exit77", NULL};
        char *envp[] = {NULL};
        execve(path, argv, envp);
        _exit(errno & 0x7f);
    }
    int st = 0;
    waitpid(p, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
        result(named("exec", path), "allowed it ran");
    else if (WIFEXITED(st))
        result(named("exec", path), "denied %s", errname(WEXITSTATUS(st)));
    else
        result(named("exec", path), "denied signal %d", WTERMSIG(st));
}

static void check_absent(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0)
        result(named("absent", path), "denied %s", errname(errno));
    else
        result(named("absent", path), "allowed visible");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "exit77") == 0) return 77;
        if (strcmp(a, "fds") == 0) check_fds();
        else if (strncmp(a, "read=", 5) == 0) check_read(a + 5);
        else if (strncmp(a, "create=", 7) == 0) check_create(a + 7);
        else if (strncmp(a, "write=", 6) == 0) check_write(a + 6);
        else if (strncmp(a, "exec=", 5) == 0) check_exec(a + 5);
        else if (strncmp(a, "absent=", 7) == 0) check_absent(a + 7);
        else result("argument", "unknown %s", a);
    }
    result("done", "ok");
    return 0;
}
