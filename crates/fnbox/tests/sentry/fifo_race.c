/* A user of the sandbox other than root opens a FIFO of its own while another of its threads
 * swaps that name with a symlink to root's 0600 file (renameat2 RENAME_EXCHANGE). Linux
 * resolves the name once, with the caller's ids: the open gets the FIFO, or EACCES on the
 * file. The Sentry must never hand it root's file. openat2 is used so that the Sentry
 * emulates the call even where it lets the kernel run plain opens. Prints each bypass and
 * "done N bypasses". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;

static void *swapper(void *arg) {
    (void)arg;
    while (!stop) syscall(SYS_renameat2, AT_FDCWD, "/tmp/w/a", AT_FDCWD, "/tmp/w/b", 2 /* RENAME_EXCHANGE */);
    return NULL;
}

int main(void) {
    mkdir("/tmp/d", 0755);
    int fd = open("/tmp/d/secret", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "secret\n", 7) != 7) {
        perror("/tmp/d/secret");
        return 2;
    }
    fchmod(fd, 0600);
    close(fd);
    mkdir("/tmp/w", 0777);
    chmod("/tmp/w", 0777);
    if (setgid(1000) || setuid(1000)) {
        perror("setuid");
        return 2;
    }
    if (mkfifo("/tmp/w/a", 0600) || symlink("/tmp/d/secret", "/tmp/w/b")) {
        perror("fifo/symlink");
        return 2;
    }
    pthread_t t;
    pthread_create(&t, NULL, swapper, NULL);
    int bypasses = 0;
    time_t end = time(NULL) + 8;
    for (long i = 0; time(NULL) < end && bypasses == 0; i++) {
        struct open_how how = {.flags = O_RDWR | O_CLOEXEC};
        int f = syscall(SYS_openat2, AT_FDCWD, "/tmp/w/a", &how, sizeof how);
        if (f < 0) continue;
        struct stat st;
        if (fstat(f, &st) == 0 && S_ISREG(st.st_mode)) {
            char buf[16] = {0};
            ssize_t n = read(f, buf, sizeof buf - 1);
            printf("BYPASS opened root's 0600 file for writing as uid 1000 after %ld tries: %zd bytes: %s", i, n,
                   buf);
            bypasses++;
        }
        close(f);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("done %d bypasses\n", bypasses);
    return 0;
}
