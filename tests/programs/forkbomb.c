/* Forks until fork fails, reports how many it got, then every child waits. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    int made = 0;
    for (;;) {
        pid_t p = fork();
        if (p == 0) { pause(); _exit(0); }
        if (p < 0) {
            printf("fork failed after %d children: %s\n", made, strerror(errno));
            fflush(stdout);
            break;
        }
        made++;
    }
    for (;;) pause();
}
