/* cflags: -nostdlib -fno-stack-protector
 * A syscall-bound loop for the benchmark's seccomp cost (benches/supervisor.rs):
 * `syscall_loop N C` makes N getppid() calls in C chunks of N/C and prints
 * "syscall_loop getppid n=N ns=T chunks=t1,t2,...\n": T is the whole
 * loop's wall time in nanoseconds, t1.. each chunk's (clock_gettime
 * (CLOCK_MONOTONIC) as a raw syscall at every chunk boundary). On a shared
 * machine the fastest chunks are the least disturbed ones.
 *
 * No libc, static: the only syscalls are the loop's, two clock_gettime,
 * one write and exit_group, so the same binary runs unchanged directly, as
 * a Solo service (inside its seccomp filter) and under bwrap. getppid is
 * allowed by every built-in profile (@default) and has no side effect; in
 * a Solo service (pid 1 of its pid namespace) it returns 0. */
#include <sys/syscall.h>

static long sys1(long n, long a) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory");
    return r;
}
static long sys2(long n, long a, long b) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

struct ts { long sec, nsec; };

static unsigned long now_ns(void) {
    struct ts t;
    sys2(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)&t);
    return (unsigned long)t.sec * 1000000000ul + (unsigned long)t.nsec;
}

static unsigned long parse(const char *s) {
    unsigned long v = 0;
    while (s && *s >= '0' && *s <= '9') v = v * 10 + (unsigned long)(*s++ - '0');
    return v;
}

static char *put(char *p, const char *s) {
    while (*s) *p++ = *s++;
    return p;
}

static char *put_num(char *p, unsigned long v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

__attribute__((used)) void cmain(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    unsigned long n = argc > 1 ? parse(argv[1]) : 10000000ul;
    unsigned long chunks = argc > 2 ? parse(argv[2]) : 1;
    if (chunks < 1) chunks = 1;
    if (chunks > 32) chunks = 32;
    unsigned long per = n / chunks, t[33];
    t[0] = now_ns();
    for (unsigned long c = 0; c < chunks; c++) {
        for (unsigned long i = 0; i < per; i++) {
            long r;
            __asm__ volatile("syscall" : "=a"(r) : "a"((long)SYS_getppid) : "rcx", "r11", "memory");
            (void)r;
        }
        t[c + 1] = now_ns();
    }
    char buf[1024], *p = buf;
    p = put(p, "syscall_loop getppid n=");
    p = put_num(p, per * chunks);
    p = put(p, " ns=");
    p = put_num(p, t[chunks] - t[0]);
    p = put(p, " chunks=");
    for (unsigned long c = 0; c < chunks; c++) {
        if (c) *p++ = ',';
        p = put_num(p, t[c + 1] - t[c]);
    }
    *p++ = '\n';
    sys3(SYS_write, 1, (long)buf, p - buf);
    for (;;) sys1(SYS_exit_group, 0);
}

/* The kernel starts us with argc at the stack pointer. */
__asm__(".globl _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call cmain\n"
        "  hlt\n");
