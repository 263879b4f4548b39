// Tries to reach a file of the host from inside a v2 sandbox, every way a path can be
// abused: a second thread rewriting the path buffer while open() is in flight (TOCTOU),
// symlinks and `..` chains, and /proc magic links. Prints "LEAK <how>" if the host file's
// content is ever read, then a summary line.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *secret_path;
static const char *marker;
static char buf[4096];
static volatile int stop;
static long leaks;

static int check(int fd, const char *how) {
    if (fd < 0) return 0;
    char data[256] = {0};
    ssize_t n = read(fd, data, sizeof data - 1);
    close(fd);
    if (n > 0 && strstr(data, marker)) {
        printf("LEAK %s\n", how);
        leaks++;
        return 1;
    }
    return 0;
}

static void *flipper(void *arg) {
    (void)arg;
    const char *a = "/etc/hostname";
    while (!stop) {
        strcpy(buf, a);
        strcpy(buf, secret_path);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    secret_path = argv[1];
    marker = argv[2];
    // 1. TOCTOU: the path buffer changes under open().
    strcpy(buf, "/etc/hostname");
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    long opens = 0;
    for (int i = 0; i < 200000; i++) {
        int fd = open(buf, O_RDONLY);
        if (fd >= 0) opens++;
        check(fd, "toctou");
    }
    stop = 1;
    pthread_join(t, NULL);
    // 2. Symlinks and `..`.
    char dots[4096] = "/tmp";
    for (int i = 0; i < 40; i++) strcat(dots, "/..");
    strcat(dots, secret_path);
    check(open(dots, O_RDONLY), "dotdot");
    symlink(secret_path, "/tmp/abs-link");
    check(open("/tmp/abs-link", O_RDONLY), "absolute symlink");
    char rel[4096] = "";
    for (int i = 0; i < 40; i++) strcat(rel, "../");
    strcat(rel, secret_path + 1);
    symlink(rel, "/tmp/rel-link");
    check(open("/tmp/rel-link", O_RDONLY), "relative symlink");
    mkdir("/tmp/d", 0755);
    symlink("/", "/tmp/d/root");
    char via[4096];
    snprintf(via, sizeof via, "/tmp/d/root/../..%s", secret_path);
    check(open(via, O_RDONLY), "symlink to / then ..");
    // 3. /proc magic links.
    const char *procs[] = {"/proc/1/root", "/proc/self/root", "/proc/self/cwd", "/proc/thread-self/root", "/proc/1/cwd/../../.."};
    for (unsigned i = 0; i < sizeof procs / sizeof *procs; i++) {
        snprintf(via, sizeof via, "%s%s", procs[i], secret_path);
        check(open(via, O_RDONLY), procs[i]);
    }
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    snprintf(via, sizeof via, "/proc/self/fd/%d/../../../..%s", dfd, secret_path);
    check(open(via, O_RDONLY), "/proc/self/fd/N/..");
    snprintf(via, sizeof via, "../../../..%s", secret_path);
    check(openat(dfd, via, O_RDONLY), "openat dirfd ..");
    chdir("/tmp/d");
    check(open(via, O_RDONLY), "relative to cwd");
    // The host's /proc must not show through: pid 1's root is the sandbox's.
    char target[256] = {0};
    readlink("/proc/1/root", target, sizeof target - 1);
    struct stat st;
    int host_only = stat("/proc/1/root/work", &st) == 0 || stat("/proc/1/root/boot", &st) == 0;
    printf("opens %ld leaks %ld root-link %s host-dirs %d\n", opens, leaks, target, host_only);
    return leaks ? 1 : 0;
}
