/* Allocates and touches memory 1 MiB at a time until the kernel stops it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    size_t total = 0;
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) { printf("malloc failed at %zu MiB\n", total >> 20); fflush(stdout); pause(); }
        memset(p, 1, 1 << 20);
        total += 1 << 20;
        if ((total >> 20) % 16 == 0) { printf("holding %zu MiB\n", total >> 20); fflush(stdout); }
    }
}
