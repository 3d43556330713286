/* A well-behaved service: prints a line, exits 0 on SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
int main(int argc, char **argv) {
    signal(SIGTERM, on_term);
    printf("sleeper %s up as pid %d uid %d\n", argc > 1 ? argv[1] : "-", getpid(), getuid());
    fflush(stdout);
    fprintf(stderr, "sleeper stderr line\n");
    while (!stop) pause();
    printf("sleeper got SIGTERM\n");
    return 0;
}
