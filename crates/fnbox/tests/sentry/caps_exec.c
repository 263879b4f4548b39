/* Root drops the capabilities overriding file permissions from its bounding set, then execs a
 * program (what `capsh --drop=...` and `setpriv --bounding-set` do): the program starts without
 * them. Its first calls, made at once, must not read or change another user's 0600 file
 * through the Sentry with the capabilities root held before the exec. openat2 and chmod are
 * used so that the Sentry emulates them. Prints each bypass and "done N bypasses". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int probe(void) {
    int bypasses = 0;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC};
    int f = syscall(SYS_openat2, AT_FDCWD, "/tmp/x/secret", &how, sizeof how);
    if (f >= 0) {
        printf("BYPASS openat2 of another user's 0600 file right after exec\n");
        bypasses++;
        close(f);
    }
    if (chmod("/tmp/x/secret", 0600) == 0) {
        printf("BYPASS chmod of another user's file right after exec\n");
        bypasses++;
    }
    return bypasses;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "after") == 0) {
        int quick = probe();
        usleep(200 * 1000);
        int later = probe();
        if (later) printf("the capabilities were not dropped at all: the probe is broken\n");
        printf("done %d bypasses\n", quick + later);
        return 0;
    }
    mkdir("/tmp/x", 0755);
    int fd = open("/tmp/x/secret", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "secret\n", 7) != 7 || fchown(fd, 1000, 1000) || fchmod(fd, 0600)) {
        perror("/tmp/x/secret");
        return 2;
    }
    close(fd);
    /* CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_DAC_READ_SEARCH 2, CAP_FOWNER 3. */
    for (int cap = 0; cap <= 3; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) {
            perror("PR_CAPBSET_DROP");
            return 2;
        }
    }
    /* Nor inheritable nor ambient: root's exec then leaves them out of every set. */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d)) {
        perror("capget");
        return 2;
    }
    d[0].inheritable = d[1].inheritable = 0;
    if (syscall(SYS_capset, &h, d)) {
        perror("capset");
        return 2;
    }
    /* Warm the Sentry's view of this thread (a call it emulates with our current set). */
    struct stat st;
    stat("/tmp/x/secret", &st);
    execl(argv[0], argv[0], "after", (char *)NULL);
    perror("exec");
    return 2;
}
