/* cflags: -nostdlib -fno-stack-protector
 * The smallest static service: no libc, waits for a signal. Used by the
 * benchmark so the measurement is the supervisor, not the program. */
#include <sys/syscall.h>
static long sys0(long n) { long r; __asm__ volatile("syscall" : "=a"(r) : "a"(n) : "rcx", "r11", "memory"); return r; }
void _start(void) { for (;;) sys0(SYS_pause); }
