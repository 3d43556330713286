/*
 * probe: a hostile service. Run by Solo inside its sandbox, it tries one
 * escape after another and prints ONE line per attempt:
 *
 *   PROBE <name> denied <ERRNO|detail>   the kernel (or the sandbox) refused
 *   PROBE <name> killed <SIGNAME>        the attempt's process was killed
 *   PROBE <name> allowed <detail>        it worked, and that may be legitimate
 *                                        under some profiles (outbound network,
 *                                        writing its own /data); the test's
 *                                        table says where it is acceptable
 *   PROBE <name> ESCAPED <detail>        it worked and must never work
 *   PROBE done                           after the last attempt
 *
 * plus "INFO ..." lines with what it could see. Every attempt runs in its
 * own forked child (the parent waits and reports a kill), so that under a
 * kill_process profile one killed attempt does not end the probe; the main
 * process itself only makes syscalls every profile allows.
 *
 * Arguments are key=value words (no leading dashes, so they pass through
 * `solo deploy --arg` unchanged):
 *   state=DIR socket=PATH other-data=DIR other-pid=N daemon-pid=N
 *   other-service=ID (a service it holds no grant to; asked for over solo-control)
 *   tcp=IPv4:PORT (a listener on the host) abstract=NAME (a host abstract
 *   unix socket) tmp-cap-mib=N (stop filling /tmp after N MiB)
 *   die-on=ptrace|mount|unshare   call that syscall in the MAIN process
 *                                 (pid 1) and nothing else
 *   die-on=ptrace-loop            call ptrace 100 times in the MAIN process
 *   marker=NAME                   internal: print "PROBE NAME ESCAPED ..."
 *                                 (used to detect a successful exec)
 *
 * SAFETY: it refuses to run (exit 2) unless it is confined: no capability
 * in the effective or permitted set, a seccomp filter installed (Seccomp: 2),
 * not uid 0. Run as root on a host it would try to mount, load modules and
 * fork-bomb for real.
 *
 * After "PROBE done" it waits for SIGTERM (and exits 0 on it) so the test
 * can still look at the running instance.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* ------------------------------------------------------------ arguments */

static const char *arg_state, *arg_socket, *arg_other_data, *arg_tcp, *arg_abstract, *arg_die_on, *arg_other_service;
static long arg_other_pid, arg_daemon_pid;
static long arg_tmp_cap_mib = 128;
static char **g_envp;
static char g_self[256]; /* the probe's own path in the view (/app/<id>) */

/* ------------------------------------------------------------- output */

static const char *cur; /* the attempt being run */

static const char *errname(int e) {
    static char buf[16];
    const char *n = strerrorname_np(e);
    if (n) return n;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

static const char *signame(int s) {
    static char buf[24];
    const char *n = sigabbrev_np(s);
    if (n) snprintf(buf, sizeof buf, "SIG%s", n);
    else snprintf(buf, sizeof buf, "SIG%d", s);
    return buf;
}

/* One whole line with one write(2): safe from a forked child, never
 * interleaved with the parent's stdio buffer (which is flushed before
 * every fork). */
static void line(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(1, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += w;
        n -= (int)w;
    }
}

static void vresult(const char *kind, const char *fmt, va_list ap) {
    char d[1500];
    vsnprintf(d, sizeof d, fmt, ap);
    line("PROBE %s %s %s", cur, kind, d);
}

static void denied(int e) { line("PROBE %s denied %s", cur, errname(e)); }

__attribute__((format(printf, 1, 2))) static void denied_detail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vresult("denied", fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 1, 2))) static void escaped(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vresult("ESCAPED", fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 1, 2))) static void allowed(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vresult("allowed", fmt, ap);
    va_end(ap);
}

/* A syscall that must fail: denied <errno> if it did, ESCAPED otherwise. */
static void must_fail(long r, const char *what) {
    if (r == -1) denied(errno);
    else escaped("%s returned %ld", what, r);
}

/* --------------------------------------------------------- the runner */

/* Runs fn in a forked child; the child prints its own line. The parent
 * reports a child killed by a signal (kill_process profiles, OOM). */
static void attempt(const char *name, void (*fn)(void)) {
    cur = name;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        line("PROBE %s error fork: %s", name, errname(errno));
        return;
    }
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            line("PROBE %s error waitpid: %s", name, errname(errno));
            return;
        }
    }
    if (WIFSIGNALED(st)) line("PROBE %s killed %s", name, signame(WTERMSIG(st)));
    else if (WEXITSTATUS(st) != 0) line("PROBE %s error child exited %d", name, WEXITSTATUS(st));
}

/* --------------------------------------------------------- helpers */

static int read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = 0;
    close(fd);
    return (int)n;
}

/* The value of "Key:" in /proc/self/status, or NULL. */
static const char *status_field(const char *status, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    for (const char *p = status; p && *p;) {
        if (strncmp(p, key, kl) == 0) {
            p += kl;
            while (*p == ' ' || *p == '\t') p++;
            size_t i = 0;
            while (p[i] && p[i] != '\n' && i + 1 < cap) {
                out[i] = p[i];
                i++;
            }
            out[i] = 0;
            return out;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

static int is_dev_null(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
}

/* Copies the running program into path (mode 0755); 0 or errno. */
static int copy_self(const char *path) {
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno;
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (out < 0) {
        int e = errno;
        close(in);
        return e;
    }
    char buf[65536];
    ssize_t r;
    int e = 0;
    while ((r = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)r) != r) {
            e = errno ? errno : EIO;
            break;
        }
    }
    fchmod(out, 0755);
    close(in);
    close(out);
    return e;
}

/* execve of a copy of the probe in marker mode: if the exec works the
 * marker prints ESCAPED on this attempt's line. */
static void exec_marker(int dirfd, const char *path, int flags) {
    char mark[80];
    snprintf(mark, sizeof mark, "marker=%s", cur);
    char *argv[] = {(char *)"probe", mark, NULL};
    syscall(SYS_execveat, dirfd, path, argv, g_envp, flags);
    denied(errno);
}

/* A TCP/UDP socket to ip:port; connect with a timeout. Returns the errno
 * or 0 when connected. */
static int connect_timeout(int type, int proto, const char *ip, int port, int ms) {
    int s = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (s < 0) return errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return 0;
    if (errno != EINPROGRESS) return errno;
    struct pollfd p = {.fd = s, .events = POLLOUT};
    if (poll(&p, 1, ms) <= 0) return ETIMEDOUT;
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l);
    return err;
}

/* ------------------------------------------------- filesystem attempts */

static void try_open_read(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { denied(errno); return; }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    escaped("opened %s and read %zd bytes", path, n);
}

static void a_shadow(void) { try_open_read("/etc/shadow"); }

static void try_list(const char *path) {
    DIR *d = opendir(path);
    if (!d) { denied(errno); return; }
    int n = 0;
    char first[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            if (!n) snprintf(first, sizeof first, "%s", e->d_name);
            n++;
        }
    }
    escaped("listed %s: %d entries (first %s)", path, n, first);
}

static void a_list_root(void) { try_list("/root"); }

static void a_state_dir(void) {
    if (!arg_state) { denied_detail("skipped (no state=)"); return; }
    try_list(arg_state);
}

static void a_state_db(void) {
    if (!arg_state) { denied_detail("skipped (no state=)"); return; }
    char p[512];
    snprintf(p, sizeof p, "%s/solo.db", arg_state);
    try_open_read(p);
}

static void a_socket_open(void) {
    if (!arg_socket) { denied_detail("skipped (no socket=)"); return; }
    int fd = open(arg_socket, O_RDWR | O_CLOEXEC);
    must_fail(fd, "open(socket)");
}

static void a_socket_connect(void) {
    if (!arg_socket) { denied_detail("skipped (no socket=)"); return; }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { denied(errno); return; }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", arg_socket);
    must_fail(connect(s, (struct sockaddr *)&a, sizeof a), "connect(daemon socket)");
}

/* Asks the control socket (fd 3, solo-control) for something it was not
 * granted; the supervisor must answer with a refusal and no descriptor. */
static void control_ask(const char *req) {
    const char *names = getenv("LISTEN_FDNAMES");
    if (!names || strncmp(names, "solo-control", 12) != 0) { escaped("no solo-control at fd 3 (%s)", names ? names : "unset"); return; }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(3, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (send(3, req, strlen(req), 0) < 0) { denied(errno); return; }
    char buf[4096], cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(3, &m, MSG_CMSG_CLOEXEC);
    if (n < 0) { denied(errno); return; }
    buf[n] = 0;
    if (CMSG_FIRSTHDR(&m) || strstr(buf, "\"ok\":true")) { escaped("control socket answered %s", buf); return; }
    denied_detail("refused");
}

static void a_control_service(void) {
    if (!arg_other_service) { denied_detail("skipped (no other-service=)"); return; }
    char req[256];
    snprintf(req, sizeof req, "{\"op\":\"connect\",\"service\":\"%s\"}", arg_other_service);
    control_ask(req);
}

static void a_control_tcp(void) {
    if (!arg_tcp) { denied_detail("skipped (no tcp=)"); return; }
    char req[256];
    snprintf(req, sizeof req, "{\"op\":\"connect\",\"tcp\":\"%s\"}", arg_tcp);
    control_ask(req);
}

static void a_control_forged(void) {
    if (!arg_other_service) { denied_detail("skipped (no other-service=)"); return; }
    char req[512];
    snprintf(req, sizeof req,
             "{\"op\":\"connect\",\"service\":\"%s\",\"token\":\"solo1.eyJpZCI6IjAwIn0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
             arg_other_service);
    control_ask(req);
}

static void a_other_data_read(void) {
    if (!arg_other_data) { denied_detail("skipped (no other-data=)"); return; }
    try_list(arg_other_data);
}

static void a_other_data_write(void) {
    if (!arg_other_data) { denied_detail("skipped (no other-data=)"); return; }
    char p[512];
    snprintf(p, sizeof p, "%s/probe-was-here", arg_other_data);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    must_fail(fd, "create in the other service's data dir");
}

/* Positive control: the service's own data dir is writable. */
static void a_own_data_write(void) {
    int fd = open("/data/probe-own", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) { denied(errno); return; }
    ssize_t w = write(fd, "ok\n", 3);
    allowed("wrote %zd bytes to /data/probe-own", w);
}

static void try_create(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) { denied(errno); return; }
    unlink(path);
    escaped("created %s", path);
}

static void a_write_usr(void) { try_create("/usr/solo-probe"); }
static void a_write_root(void) { try_create("/solo-probe"); }

/* An existing read-only system file, present in every profile's view. */
static void a_write_etc(void) {
    int fd = open("/etc/ld.so.cache", O_WRONLY | O_APPEND | O_CLOEXEC);
    must_fail(fd, "open(/etc/ld.so.cache, O_WRONLY)");
}

static void a_write_app(void) {
    int fd = open(g_self, O_WRONLY | O_CLOEXEC);
    if (fd < 0) { denied(errno); return; }
    escaped("opened the artifact %s for writing", g_self);
}

/* CVE-2019-5736: overwrite the binary the supervisor runs. */
static void a_exe_write(void) {
    int fd = open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
    if (fd < 0) { denied(errno); return; }
    escaped("opened /proc/self/exe for writing");
}

static void a_tmp_exec(void) {
    int e = copy_self("/tmp/probe-copy");
    if (e) { denied_detail("copy failed %s", errname(e)); return; }
    exec_marker(AT_FDCWD, "/tmp/probe-copy", 0);
}

static void a_data_exec(void) {
    int e = copy_self("/data/probe-copy");
    if (e) { denied_detail("copy failed %s", errname(e)); return; }
    exec_marker(AT_FDCWD, "/data/probe-copy", 0);
}

static void a_shm_exec(void) {
    int e = copy_self("/dev/shm/probe-copy");
    if (e) { denied(e); return; }
    exec_marker(AT_FDCWD, "/dev/shm/probe-copy", 0);
}

/* Executing from an anonymous memory file bypasses noexec mounts. */
static void a_memfd_exec(void) {
    int m = (int)syscall(SYS_memfd_create, "probe", 0);
    if (m < 0) { denied_detail("memfd_create %s", errname(errno)); return; }
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (in < 0) { denied_detail("read self %s", errname(errno)); return; }
    char buf[65536];
    ssize_t r;
    while ((r = read(in, buf, sizeof buf)) > 0)
        if (write(m, buf, (size_t)r) != r) { denied_detail("memfd write %s", errname(errno)); return; }
    exec_marker(m, "", AT_EMPTY_PATH);
}

/* ----------------------------------------------------- mounts, namespaces */

static void a_mount(void) { must_fail(mount("none", "/tmp", "tmpfs", 0, "size=1m"), "mount"); }
static void a_fsopen(void) { must_fail(syscall(SYS_fsopen, "tmpfs", 0), "fsopen"); }
static void a_umount(void) { must_fail(umount2("/proc", MNT_DETACH), "umount2"); }
static void a_chroot(void) { must_fail(chroot("/tmp"), "chroot"); }
static void a_pivot_root(void) { must_fail(syscall(SYS_pivot_root, "/tmp", "/tmp"), "pivot_root"); }
static void a_unshare_user(void) { must_fail(unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)"); }
static void a_unshare_mount(void) { must_fail(unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)"); }

static void raw_clone(unsigned long flags, const char *what) {
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, 0);
    must_fail(r, what);
}

static void a_clone_newuser(void) { raw_clone(CLONE_NEWUSER, "clone(CLONE_NEWUSER)"); }
static void a_clone_newpid(void) { raw_clone(CLONE_NEWPID | CLONE_NEWNS, "clone(CLONE_NEWPID|CLONE_NEWNS)"); }

struct probe_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
        cgroup;
};

static void a_clone3_newuser(void) {
    struct probe_clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_NEWUSER;
    a.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, 0);
    must_fail(r, "clone3(CLONE_NEWUSER)");
}

static void a_setns(void) {
    int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { denied_detail("open ns %s", errname(errno)); return; }
    must_fail(setns(fd, 0), "setns");
}

/* ------------------------------------------------------ processes */

static void a_ptrace_parent(void) {
    pid_t pp = getppid();
    must_fail(ptrace(PTRACE_ATTACH, pp, 0, 0), "ptrace(PTRACE_ATTACH, parent)");
}

static void a_ptrace_traceme(void) { must_fail(ptrace(PTRACE_TRACEME, 0, 0, 0), "ptrace(PTRACE_TRACEME)"); }

static void a_process_vm_readv(void) {
    char dst[8], src[8] = "x";
    struct iovec l = {dst, sizeof dst}, r = {src, sizeof src};
    must_fail(process_vm_readv(getppid(), &l, 1, &r, 1, 0), "process_vm_readv");
}

static void a_kill_daemon(void) {
    if (arg_daemon_pid <= 0) { denied_detail("skipped (no daemon-pid=)"); return; }
    /* Signal 0: the full permission check, nothing delivered. */
    must_fail(kill((pid_t)arg_daemon_pid, 0), "kill(daemon, 0)");
}

static void a_pidfd_daemon(void) {
    if (arg_daemon_pid <= 0) { denied_detail("skipped (no daemon-pid=)"); return; }
    must_fail(syscall(SYS_pidfd_open, arg_daemon_pid, 0), "pidfd_open(daemon)");
}

static void a_kill_other(void) {
    if (arg_other_pid <= 0) { denied_detail("skipped (no other-pid=)"); return; }
    must_fail(kill((pid_t)arg_other_pid, 0), "kill(other service, 0)");
}

/* Broadcast: reaches every process the caller may signal in its pid
 * namespace but itself and that namespace's init. Run when nothing else
 * of the probe is alive, so ESRCH means nothing else is visible. */
static void a_kill_all(void) {
    long r = kill(-1, SIGKILL);
    if (r == -1) { denied(errno); return; }
    allowed("kill(-1, SIGKILL) delivered to something");
}

static void a_host_pids(void) {
    DIR *d = opendir("/proc");
    if (!d) { denied(errno); return; }
    int n = 0;
    char list[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        n++;
        size_t l = strlen(list);
        if (l + strlen(e->d_name) + 2 < sizeof list) snprintf(list + l, sizeof list - l, "%s%s", l ? "," : "", e->d_name);
    }
    if (n <= 3) denied_detail("visible=%d (%s)", n, list);
    else escaped("visible=%d (%s)", n, list);
}

/* ------------------------------------------------------ network */

static void a_packet_socket(void) {
    must_fail(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003)), "socket(AF_PACKET, SOCK_RAW)");
}

static void a_raw_socket(void) {
    must_fail(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP), "socket(AF_INET, SOCK_RAW)");
}

/* Address families no built-in profile allows: each must be refused by the
 * filter itself (EPERM from the supervisor), not left to whether the host
 * has the module loaded. AF_VSOCK reaches the hypervisor on a VM. */
static void family(int domain, int type, long proto, const char *what) {
    must_fail(syscall(SYS_socket, (long)domain, (long)(type | SOCK_CLOEXEC), proto), what);
}
static void a_vsock_socket(void) { family(AF_VSOCK, SOCK_STREAM, 0, "socket(AF_VSOCK)"); }
static void a_netlink_audit(void) { family(AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */, "socket(AF_NETLINK, NETLINK_AUDIT)"); }
static void a_netlink_uevent(void) { family(AF_NETLINK, SOCK_DGRAM, 15 /* NETLINK_KOBJECT_UEVENT */, "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)"); }
static void a_alg_socket(void) { family(AF_ALG, SOCK_SEQPACKET, 0, "socket(AF_ALG)"); }
static void a_xdp_socket(void) { family(AF_XDP, SOCK_RAW, 0, "socket(AF_XDP)"); }
static void a_key_socket(void) { family(AF_KEY, SOCK_RAW, 2 /* PF_KEY_V2 */, "socket(AF_KEY)"); }
static void a_rds_socket(void) { family(AF_RDS, SOCK_SEQPACKET, 0, "socket(AF_RDS)"); }
static void a_tipc_socket(void) { family(AF_TIPC, SOCK_RDM, 0, "socket(AF_TIPC)"); }
static void a_can_socket(void) { family(AF_CAN, SOCK_RAW, 1 /* CAN_RAW */, "socket(AF_CAN)"); }
static void a_bluetooth_socket(void) { family(AF_BLUETOOTH, SOCK_RAW, 1 /* BTPROTO_HCI */, "socket(AF_BLUETOOTH)"); }
static void a_sctp_socket(void) { family(AF_INET, SOCK_STREAM, IPPROTO_SCTP, "socket(AF_INET, IPPROTO_SCTP)"); }
/* The kernel reads int arguments from the low half of the register: upper
 * bits must not carry a family or protocol past the filter. */
static void a_vsock_high_bits(void) {
    must_fail(syscall(SYS_socket, (1L << 32) | AF_VSOCK, (long)(SOCK_STREAM | SOCK_CLOEXEC), 0L),
              "socket(AF_VSOCK | 1 << 32)");
}
static void a_mptcp_high_bits(void) {
    must_fail(syscall(SYS_socket, (long)AF_INET, (long)(SOCK_STREAM | SOCK_CLOEXEC), (1L << 32) | IPPROTO_MPTCP),
              "socket(AF_INET, IPPROTO_MPTCP | 1 << 32)");
}
static void a_socketpair_inet(void) {
    int sv[2];
    must_fail(socketpair(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair(AF_INET)");
}
/* Families a profile may allow: reported as allowed where they work. */
static void created(int domain, int type, int proto, const char *what) {
    int s = socket(domain, type | SOCK_CLOEXEC, proto);
    if (s < 0) { denied(errno); return; }
    allowed("%s", what);
}
static void a_inet_socket(void) { created(AF_INET, SOCK_STREAM, 0, "socket(AF_INET, SOCK_STREAM)"); }
static void a_inet6_socket(void) { created(AF_INET6, SOCK_DGRAM, 0, "socket(AF_INET6, SOCK_DGRAM)"); }
static void a_netlink_route(void) { created(AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */, "socket(AF_NETLINK, NETLINK_ROUTE)"); }
static void a_unix_socket(void) { created(AF_UNIX, SOCK_STREAM, 0, "socket(AF_UNIX, SOCK_STREAM)"); }
static void a_socketpair_unix(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) { denied(errno); return; }
    allowed("socketpair(AF_UNIX)");
}

static void a_tcp_connect_host(void) {
    if (!arg_tcp) { denied_detail("skipped (no tcp=)"); return; }
    char ip[64];
    snprintf(ip, sizeof ip, "%s", arg_tcp);
    char *colon = strrchr(ip, ':');
    if (!colon) { denied_detail("bad tcp="); return; }
    *colon = 0;
    int e = connect_timeout(SOCK_STREAM, 0, ip, atoi(colon + 1), 3000);
    if (e) { denied(e); return; }
    allowed("connected to %s", arg_tcp);
}

static void a_tcp_connect_internet(void) {
    int e = connect_timeout(SOCK_STREAM, 0, "1.1.1.1", 53, 2000);
    if (e) { denied(e); return; }
    allowed("connected to 1.1.1.1:53");
}

static void a_udp_send_internet(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) { denied(errno); return; }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "1.1.1.1", &a.sin_addr);
    if (sendto(s, "", 0, 0, (struct sockaddr *)&a, sizeof a) < 0) { denied(errno); return; }
    allowed("sent a UDP datagram to 1.1.1.1:53");
}

/* Binding a port on every interface: a listener the profile may not want. */
static void bind_any(int type, int proto, const char *what, int do_listen) {
    int s = socket(AF_INET, type | SOCK_CLOEXEC, proto);
    if (s < 0) { denied_detail("%s (socket)", errname(errno)); return; }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { denied(errno); return; }
    if (do_listen && listen(s, 1) < 0) { denied(errno); return; }
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    allowed("%s bound 0.0.0.0:%d", what, ntohs(a.sin_port));
}

static void a_tcp_bind(void) { bind_any(SOCK_STREAM, 0, "TCP", 1); }
static void a_udp_bind(void) { bind_any(SOCK_DGRAM, 0, "UDP", 0); }
static void a_mptcp_bind(void) { bind_any(SOCK_STREAM, IPPROTO_MPTCP, "MPTCP", 1); }

/* listen() on an unbound TCP socket binds an ephemeral port itself. */
static void a_tcp_listen_autobind(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { denied_detail("%s (socket)", errname(errno)); return; }
    if (listen(s, 1) < 0) { denied(errno); return; }
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    allowed("TCP listening on 0.0.0.0:%d without bind()", ntohs(a.sin_port));
}

static void a_abstract_unix(void) {
    if (!arg_abstract) { denied_detail("skipped (no abstract=)"); return; }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { denied(errno); return; }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(arg_abstract);
    if (n + 1 > sizeof a.sun_path) n = sizeof a.sun_path - 1;
    memcpy(a.sun_path + 1, arg_abstract, n);
    must_fail(connect(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)),
              "connect(host abstract socket)");
}

/* ------------------------------------------------------ kernel surface */

static void a_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    must_fail(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr), "bpf(BPF_MAP_CREATE)");
}

static void a_perf_event_open(void) {
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    pe.disabled = 1;
    pe.exclude_kernel = 1;
    must_fail(syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0), "perf_event_open");
}

static void a_keyctl(void) {
    /* KEYCTL_GET_KEYRING_ID (0), KEY_SPEC_SESSION_KEYRING (-3), create. */
    must_fail(syscall(SYS_keyctl, 0, -3, 1), "keyctl");
}

static void a_add_key(void) {
    /* KEY_SPEC_PROCESS_KEYRING (-2). */
    must_fail(syscall(SYS_add_key, "user", "probe", "x", 1, -2), "add_key");
}

static void a_userfaultfd(void) { must_fail(syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */), "userfaultfd"); }

static void a_io_uring(void) {
    char params[120];
    memset(params, 0, sizeof params);
    must_fail(syscall(SYS_io_uring_setup, 1, params), "io_uring_setup");
}

static void a_kexec_load(void) { must_fail(syscall(SYS_kexec_load, 0, 0, NULL, 0), "kexec_load"); }
static void a_init_module(void) { must_fail(syscall(SYS_init_module, NULL, 0, ""), "init_module"); }
static void a_finit_module(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    must_fail(syscall(SYS_finit_module, fd, "", 0), "finit_module");
}

/* The "shocker" escape: open a host file by handle. */
static void a_open_by_handle(void) {
    struct {
        unsigned int bytes;
        int type;
        unsigned char h[8];
    } fh = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
    int mfd = open("/", O_RDONLY | O_CLOEXEC);
    must_fail(syscall(SYS_open_by_handle_at, mfd, &fh, O_RDONLY), "open_by_handle_at");
}

static void a_mknod(void) {
    must_fail(mknod("/tmp/probe-disk", S_IFBLK | 0600, makedev(8, 0)), "mknod(block device)");
}

static void a_iopl(void) { must_fail(syscall(SYS_iopl, 3), "iopl"); }

static void a_settime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the current time: harmless if it passed */
    must_fail(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts), "clock_settime");
}

static void a_syslog(void) { must_fail(syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0), "syslog"); }

static void a_dev_kmsg(void) { try_open_read("/dev/kmsg"); }

/* Masked /proc files must be /dev/null (or absent/unreadable). */
static void masked(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) { denied(errno); return; }
    if (is_dev_null(fd)) { denied_detail("masked by /dev/null"); return; }
    /* Never write to it: just report that it could be opened. */
    escaped("opened the real %s (%s)", path, (flags & O_ACCMODE) == O_RDONLY ? "read" : "write");
}

static void a_proc_kmsg(void) { masked("/proc/kmsg", O_RDONLY); }
static void a_sysrq(void) { masked("/proc/sysrq-trigger", O_WRONLY); }

static void a_proc_masks(void) {
    static const char *files[] = {"/proc/kcore", "/proc/keys", "/proc/key-users", "/proc/latency_stats",
                                  "/proc/timer_list", "/proc/sched_debug", "/proc/kallsyms", NULL};
    char bad[512] = "";
    int masked_n = 0, absent = 0;
    for (int i = 0; files[i]; i++) {
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            absent++;
            continue;
        }
        if (is_dev_null(fd)) masked_n++;
        else {
            size_t l = strlen(bad);
            snprintf(bad + l, sizeof bad - l, "%s%s", l ? "," : "", files[i]);
        }
        close(fd);
    }
    if (bad[0]) escaped("readable unmasked: %s", bad);
    else denied_detail("masked=%d unopenable=%d", masked_n, absent);
}

/* Writing core_pattern is a classic root escape (a pipe handler runs as
 * host root). Never writes: opening for write is the failure. */
static void a_core_pattern(void) {
    int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC);
    if (fd < 0) { denied(errno); return; }
    escaped("opened /proc/sys/kernel/core_pattern for writing");
}

static void a_raw_disk(void) {
    static const char *devs[] = {"/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/xvda", "/dev/mem", "/dev/port", NULL};
    int first = 0;
    for (int i = 0; devs[i]; i++) {
        int fd = open(devs[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0) { escaped("opened %s", devs[i]); return; }
        if (errno != ENOENT && !first) first = errno;
    }
    denied(first ? first : ENOENT);
}

static void a_sys_cgroup(void) {
    int fd = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) { denied(errno); return; }
    escaped("opened /sys/fs/cgroup/cgroup.procs for writing");
}

/* In a cgroup namespace every hierarchy's path is the namespace root "/". */
static void a_cgroup_view(void) {
    char buf[2048];
    if (read_file("/proc/self/cgroup", buf, sizeof buf) < 0) { denied(errno); return; }
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        char *path = strrchr(l, ':');
        if (!path || strcmp(path, ":/") != 0) { escaped("host cgroup path visible: %s", l); return; }
    }
    denied_detail("every hierarchy at /");
}

/* ------------------------------------------------------ credentials, limits */

static void a_setrlimit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0) { denied_detail("getrlimit %s", errname(errno)); return; }
    rlim_t hard = r.rlim_max;
    r.rlim_max = hard + 1024;
    r.rlim_cur = hard + 1024;
    must_fail(setrlimit(RLIMIT_NOFILE, &r), "setrlimit(RLIMIT_NOFILE above hard)");
}

static void a_setuid0(void) { must_fail(syscall(SYS_setuid, 0), "setuid(0)"); }

static void a_capset(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = 1u << CAP_SYS_ADMIN;
    must_fail(syscall(SYS_capset, &h, d), "capset(CAP_SYS_ADMIN)");
}

static void a_nice(void) { must_fail(setpriority(PRIO_PROCESS, 0, -10), "setpriority(-10)"); }

/* Setuid-root binaries in the view must not raise privileges: the system
 * mounts are nosuid and the process has no_new_privs; each is also exec'd
 * (with --version) while the parent samples the child's euid from
 * /proc/<pid>/status: it must never differ from the probe's uid. The
 * sampling is best effort (a short-lived program may exit between two
 * samples); the mount flags and no_new_privs are the deterministic part. */
static void a_setuid_binaries(void) {
    static const char *cands[] = {"/usr/bin/su", "/usr/bin/passwd", "/usr/bin/newgrp", "/usr/bin/mount",
                                  "/usr/bin/umount", "/usr/bin/chsh", "/usr/bin/chfn", "/usr/bin/gpasswd",
                                  "/usr/bin/sudo", "/usr/lib/openssh/ssh-keysign", NULL};
    int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    int found = 0, sampled = 0;
    char names[512] = "";
    for (int i = 0; cands[i]; i++) {
        struct stat st;
        /* Any owner: in a user namespace root shows as the overflow uid. */
        if (stat(cands[i], &st) < 0 || !(st.st_mode & S_ISUID)) continue;
        found++;
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? "," : "", cands[i]);
        struct statvfs vfs;
        if (statvfs(cands[i], &vfs) < 0) { denied_detail("statvfs %s", errname(errno)); return; }
        if (!(vfs.f_flag & ST_NOSUID) && nnp != 1)
            { escaped("%s is setuid-root on a suid mount without no_new_privs", cands[i]); return; }
        if (!(vfs.f_flag & ST_NOSUID)) { escaped("%s is setuid-root on a mount without nosuid", cands[i]); return; }
        /* Active check: exec it and sample /proc/<pid>/status while it runs. */
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) {
            int nul = open("/dev/null", O_RDWR);
            dup2(nul, 1);
            dup2(nul, 2);
            char *argv[] = {(char *)cands[i], (char *)"--version", NULL};
            execve(cands[i], argv, g_envp);
            _exit(127);
        }
        if (c < 0) continue;
        char path[64], buf[4096], uid[128];
        snprintf(path, sizeof path, "/proc/%d/status", c);
        for (int k = 0; k < 20000; k++) {
            if (read_file(path, buf, sizeof buf) <= 0) break;
            char name[64];
            if (!status_field(buf, "Name:", name, sizeof name) || strcmp(name, "probe") == 0) continue;
            if (status_field(buf, "State:", name, sizeof name) && name[0] == 'Z') break;
            if (!status_field(buf, "Uid:", uid, sizeof uid)) continue;
            sampled++;
            unsigned r, e;
            if (sscanf(uid, "%u %u", &r, &e) == 2 && e != (unsigned)getuid()) {
                kill(c, SIGKILL);
                waitpid(c, NULL, 0);
                { escaped("%s ran with euid %u", cands[i], e); return; }
            }
        }
        waitpid(c, NULL, 0);
    }
    if (!found) { denied_detail("no setuid binary in the view"); return; }
    denied_detail("nosuid+no_new_privs=%d (%d setuid: %s; %d samples after exec, euid never changed)", nnp, found, names,
                  sampled);
}

static void a_hostname(void) {
    must_fail(sethostname("pwned", 5), "sethostname");
}

/* ------------------------------------------------------ resources */

static void a_fork_bomb(void) {
    static pid_t kids[4096];
    int n = 0, err = 0;
    while (n < 1000) {
        pid_t p = fork();
        if (p < 0) {
            err = errno;
            break;
        }
        if (p == 0) {
            for (;;) pause();
        }
        kids[n++] = p;
    }
    for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
    if (!err) { escaped("forked %d processes without a limit", n); return; }
    denied_detail("%s forks=%d", errname(err), n);
}

static void a_tmp_fill(void) {
    int fd = open("/tmp/probe-fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) { denied_detail("open %s", errname(errno)); return; }
    static char chunk[1 << 20];
    memset(chunk, 'x', sizeof chunk);
    long total = 0;
    int err = 0;
    while (total < arg_tmp_cap_mib * (long)sizeof chunk) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w < 0) {
            err = errno;
            break;
        }
        total += w;
        if (w < (ssize_t)sizeof chunk) {
            /* A short write: the next one says why. */
            continue;
        }
    }
    close(fd);
    unlink("/tmp/probe-fill");
    if (!err) { escaped("wrote %ld MiB to /tmp without hitting a limit", total >> 20); return; }
    denied_detail("%s wrote=%ldMiB", errname(err), total >> 20);
}

static void a_memory_bomb(void) {
    long mib = 0;
    while (mib < 4096) {
        char *p = malloc(1 << 20);
        if (!p) { denied_detail("ENOMEM after %ld MiB", mib); return; }
        memset(p, 0x5a, 1 << 20);
        mib++;
    }
    escaped("allocated %ld MiB without being stopped", mib);
}

/* ------------------------------------------------------ the main process */

static void on_term(int s) {
    (void)s;
    _exit(0);
}

/* die-on=NAME: the main process (pid 1 of the namespace) itself makes a
 * forbidden syscall, then prints whether it survived and waits. Under
 * kill_process the service must be quarantined (after the profile's grace:
 * the "survived" line is printed first), and at once with ptrace-loop. */
static int die_on(const char *what) {
    printf("PROBE die-on %s calling from pid %d\n", what, getpid());
    fflush(stdout);
    long r;
    if (!strcmp(what, "ptrace-loop")) {
        /* Goes on probing after the first refusal: 100 forbidden calls. */
        int refused = 0;
        for (int i = 0; i < 100; i++)
            if (ptrace(PTRACE_TRACEME, 0, 0, 0) == -1) refused++;
        printf("PROBE die-on %s survived: %d calls refused\n", what, refused);
        fflush(stdout);
        signal(SIGTERM, on_term);
        for (;;) pause();
    }
    if (!strcmp(what, "ptrace")) r = ptrace(PTRACE_TRACEME, 0, 0, 0);
    else if (!strcmp(what, "mount")) r = mount("none", "/tmp", "tmpfs", 0, NULL);
    else if (!strcmp(what, "unshare")) r = unshare(CLONE_NEWUSER);
    else {
        printf("PROBE die-on unknown %s\n", what);
        return 2;
    }
    printf("PROBE die-on %s survived: %s\n", what, r == -1 ? errname(errno) : "succeeded");
    fflush(stdout);
    signal(SIGTERM, on_term);
    for (;;) pause();
}

int main(int argc, char **argv, char **envp) {
    g_envp = envp;
    /* Before anything opens a descriptor: is anything open beyond 0-2 and
     * the descriptors passed by socket activation (LISTEN_FDS, for this
     * pid)? (CVE-2024-21626: a leaked directory fd of the host.) */
    int leaked[16], nleaked = 0, passed = 0;
    const char *lpid = getenv("LISTEN_PID"), *lfds = getenv("LISTEN_FDS");
    if (lpid && lfds && atoi(lpid) == getpid()) passed = atoi(lfds);
    for (int fd = 3 + passed; fd < 4096 && nleaked < 16; fd++)
        if (fcntl(fd, F_GETFD) != -1) leaked[nleaked++] = fd;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strncmp(a, "marker=", 7)) {
            /* Reached only through a successful exec of a copy. */
            printf("PROBE %s ESCAPED exec of a copy of the probe ran\n", a + 7);
            fflush(stdout);
            return 0;
        }
        if (!strncmp(a, "state=", 6)) arg_state = a + 6;
        else if (!strncmp(a, "socket=", 7)) arg_socket = a + 7;
        else if (!strncmp(a, "other-data=", 11)) arg_other_data = a + 11;
        else if (!strncmp(a, "other-service=", 14)) arg_other_service = a + 14;
        else if (!strncmp(a, "other-pid=", 10)) arg_other_pid = atol(a + 10);
        else if (!strncmp(a, "daemon-pid=", 11)) arg_daemon_pid = atol(a + 11);
        else if (!strncmp(a, "tcp=", 4)) arg_tcp = a + 4;
        else if (!strncmp(a, "abstract=", 9)) arg_abstract = a + 9;
        else if (!strncmp(a, "tmp-cap-mib=", 12)) arg_tmp_cap_mib = atol(a + 12);
        else if (!strncmp(a, "die-on=", 7)) arg_die_on = a + 7;
        else {
            fprintf(stderr, "probe: unknown argument %s\n", a);
            return 2;
        }
    }

    /* SAFETY: refuse to attack anything unless confined. */
    char status[8192], v[256];
    if (read_file("/proc/self/status", status, sizeof status) <= 0) {
        printf("probe: refusing to run: cannot read /proc/self/status\n");
        return 2;
    }
    const char *capeff = status_field(status, "CapEff:", v, sizeof v);
    int caps = !capeff || strspn(capeff, "0") != strlen(capeff);
    const char *capprm = status_field(status, "CapPrm:", v, sizeof v);
    caps |= !capprm || strspn(capprm, "0") != strlen(capprm);
    const char *sec = status_field(status, "Seccomp:", v, sizeof v);
    int filtered = sec && atoi(sec) == 2;
    if (caps || !filtered || geteuid() == 0 || getuid() == 0) {
        printf("probe: refusing to run outside a sandbox (capabilities %s, seccomp %s, uid %d): "
               "it would attack this machine for real\n",
               caps ? "held" : "none", filtered ? "on" : "off", (int)geteuid());
        fflush(stdout);
        return 2;
    }
    signal(SIGTERM, on_term);

    if (arg_die_on) return die_on(arg_die_on);

    ssize_t sl = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    g_self[sl > 0 ? sl : 0] = 0;

    /* What it sees. */
    struct utsname u;
    uname(&u);
    printf("INFO pid=%d ppid=%d uid=%d gid=%d hostname=%s exe=%s\n", getpid(), getppid(), (int)getuid(), (int)getgid(),
           u.nodename, g_self);
    static const char *keys[] = {"Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:",
                                 "NoNewPrivs:", "Seccomp:", "Seccomp_filters:", NULL};
    for (int i = 0; keys[i]; i++) {
        const char *x = status_field(status, keys[i], v, sizeof v);
        printf("INFO %s %s\n", keys[i], x ? x : "?");
    }
    char buf[16384];
    if (read_file("/proc/self/cgroup", buf, sizeof buf) > 0)
        for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) printf("INFO cgroup %s\n", l);
    if (read_file("/proc/self/mountinfo", buf, sizeof buf) > 0)
        for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) printf("INFO mount %s\n", l);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("INFO nofile soft=%llu hard=%llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    /* A crash goes to the host's core_pattern; a "|handler" pattern ignores
     * RLIMIT_CORE (except 1) and runs the handler as host root. */
    getrlimit(RLIMIT_CORE, &rl);
    char pattern[256] = "?";
    if (read_file("/proc/sys/kernel/core_pattern", pattern, sizeof pattern) > 0) pattern[strcspn(pattern, "\n")] = 0;
    printf("INFO core soft=%llu hard=%llu dumpable=%d core_pattern=%s\n", (unsigned long long)rl.rlim_cur,
           (unsigned long long)rl.rlim_max, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), pattern);
    fflush(stdout);

    cur = "inherited-fds";
    if (nleaked) {
        char d[512] = "", p[64], t[200];
        for (int i = 0; i < nleaked; i++) {
            snprintf(p, sizeof p, "/proc/self/fd/%d", leaked[i]);
            ssize_t n = readlink(p, t, sizeof t - 1);
            t[n > 0 ? n : 0] = 0;
            size_t l = strlen(d);
            snprintf(d + l, sizeof d - l, "%s%d->%s", l ? "," : "", leaked[i], t);
        }
        escaped("open at start: %s", d);
    } else {
        denied_detail("none");
    }

    /* Filesystem. */
    attempt("shadow", a_shadow);
    attempt("list-root", a_list_root);
    attempt("state-dir", a_state_dir);
    attempt("state-db", a_state_db);
    attempt("daemon-socket-open", a_socket_open);
    attempt("daemon-socket-connect", a_socket_connect);
    attempt("control-service", a_control_service);
    attempt("control-tcp", a_control_tcp);
    attempt("control-forged-token", a_control_forged);
    attempt("other-data-read", a_other_data_read);
    attempt("other-data-write", a_other_data_write);
    attempt("own-data-write", a_own_data_write);
    attempt("write-usr", a_write_usr);
    attempt("write-root", a_write_root);
    attempt("write-etc", a_write_etc);
    attempt("write-app", a_write_app);
    attempt("exe-write", a_exe_write);
    attempt("tmp-exec", a_tmp_exec);
    attempt("data-exec", a_data_exec);
    attempt("shm-exec", a_shm_exec);
    attempt("memfd-exec", a_memfd_exec);
    /* Mounts and namespaces. */
    attempt("mount", a_mount);
    attempt("fsopen", a_fsopen);
    attempt("umount-proc", a_umount);
    attempt("chroot", a_chroot);
    attempt("pivot-root", a_pivot_root);
    attempt("unshare-user", a_unshare_user);
    attempt("unshare-mount", a_unshare_mount);
    attempt("clone-newuser", a_clone_newuser);
    attempt("clone-newpid", a_clone_newpid);
    attempt("clone3-newuser", a_clone3_newuser);
    attempt("setns", a_setns);
    /* Processes. */
    attempt("ptrace-parent", a_ptrace_parent);
    attempt("ptrace-traceme", a_ptrace_traceme);
    attempt("process-vm-readv", a_process_vm_readv);
    attempt("kill-daemon", a_kill_daemon);
    attempt("pidfd-daemon", a_pidfd_daemon);
    attempt("kill-other-service", a_kill_other);
    attempt("kill-all", a_kill_all);
    attempt("host-pids", a_host_pids);
    /* Network. */
    attempt("packet-socket", a_packet_socket);
    attempt("raw-socket", a_raw_socket);
    attempt("vsock-socket", a_vsock_socket);
    attempt("vsock-high-bits", a_vsock_high_bits);
    attempt("netlink-audit", a_netlink_audit);
    attempt("netlink-uevent", a_netlink_uevent);
    attempt("alg-socket", a_alg_socket);
    attempt("xdp-socket", a_xdp_socket);
    attempt("key-socket", a_key_socket);
    attempt("rds-socket", a_rds_socket);
    attempt("tipc-socket", a_tipc_socket);
    attempt("can-socket", a_can_socket);
    attempt("bluetooth-socket", a_bluetooth_socket);
    attempt("sctp-socket", a_sctp_socket);
    attempt("mptcp-high-bits", a_mptcp_high_bits);
    attempt("socketpair-inet", a_socketpair_inet);
    attempt("inet-socket", a_inet_socket);
    attempt("inet6-socket", a_inet6_socket);
    attempt("netlink-route", a_netlink_route);
    attempt("unix-socket", a_unix_socket);
    attempt("socketpair-unix", a_socketpair_unix);
    attempt("tcp-connect-host", a_tcp_connect_host);
    attempt("tcp-connect-internet", a_tcp_connect_internet);
    attempt("udp-send-internet", a_udp_send_internet);
    attempt("tcp-bind", a_tcp_bind);
    attempt("tcp-listen-autobind", a_tcp_listen_autobind);
    attempt("udp-bind", a_udp_bind);
    attempt("mptcp-bind", a_mptcp_bind);
    attempt("abstract-unix", a_abstract_unix);
    /* Kernel attack surface. */
    attempt("bpf", a_bpf);
    attempt("perf-event-open", a_perf_event_open);
    attempt("keyctl", a_keyctl);
    attempt("add-key", a_add_key);
    attempt("userfaultfd", a_userfaultfd);
    attempt("io-uring", a_io_uring);
    attempt("kexec-load", a_kexec_load);
    attempt("init-module", a_init_module);
    attempt("finit-module", a_finit_module);
    attempt("open-by-handle", a_open_by_handle);
    attempt("mknod", a_mknod);
    attempt("iopl", a_iopl);
    attempt("settime", a_settime);
    attempt("syslog", a_syslog);
    attempt("dev-kmsg", a_dev_kmsg);
    attempt("proc-kmsg", a_proc_kmsg);
    attempt("sysrq-trigger", a_sysrq);
    attempt("proc-masks", a_proc_masks);
    attempt("core-pattern", a_core_pattern);
    attempt("raw-disk", a_raw_disk);
    attempt("sys-cgroup", a_sys_cgroup);
    attempt("cgroup-view", a_cgroup_view);
    /* Credentials. */
    attempt("setrlimit-nofile", a_setrlimit);
    attempt("setuid0", a_setuid0);
    attempt("capset", a_capset);
    attempt("nice", a_nice);
    attempt("setuid-binaries", a_setuid_binaries);
    attempt("hostname", a_hostname);
    /* Resources, last: they take the longest. */
    attempt("fork-bomb", a_fork_bomb);
    attempt("tmp-fill", a_tmp_fill);
    attempt("memory-bomb", a_memory_bomb);

    printf("PROBE done\n");
    fflush(stdout);
    for (;;) pause();
}
