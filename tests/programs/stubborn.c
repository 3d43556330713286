/* Ignores SIGTERM and leaves a grandchild behind that also ignores it. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    signal(SIGTERM, SIG_IGN);
    pid_t p = fork();
    if (p == 0) { setsid(); for (;;) pause(); }
    printf("stubborn pid %d grandchild %d\n", getpid(), p);
    fflush(stdout);
    for (;;) pause();
}
