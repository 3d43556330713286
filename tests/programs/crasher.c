/* Exits with argv[1] (default 3) after argv[2] milliseconds (default 20). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 3;
    int ms = argc > 2 ? atoi(argv[2]) : 20;
    printf("crasher will exit %d in %d ms\n", code, ms);
    fflush(stdout);
    usleep(ms * 1000);
    return code;
}
