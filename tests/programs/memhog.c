/* Allocates and touches memory 1 MiB at a time until the kernel stops it,
 * or, given a number of MiB as its argument, until it holds that much
 * (then it waits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    size_t total = 0;
    size_t target = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) << 20 : 0;
    for (;;) {
        if (target && total >= target) {
            printf("holding %zu MiB, done\n", total >> 20);
            fflush(stdout);
            for (;;) pause();
        }
        char *p = malloc(1 << 20);
        if (!p) { printf("malloc failed at %zu MiB\n", total >> 20); fflush(stdout); pause(); }
        memset(p, 1, 1 << 20);
        total += 1 << 20;
        if ((total >> 20) % 16 == 0) { printf("holding %zu MiB\n", total >> 20); fflush(stdout); }
    }
}
