/* Spins on the CPU forever (one thread): the resource monitor's CPU test
 * load. Prints one line first, so a test can see it started. */
#include <stdio.h>
int main(void) {
    printf("spinning\n");
    fflush(stdout);
    volatile unsigned long n = 0;
    for (;;) n++;
}
