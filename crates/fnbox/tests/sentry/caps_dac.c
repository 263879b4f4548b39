/* Root that has dropped the capabilities which override file permissions (CAP_CHOWN,
 * CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: an OCI container's `capabilities: []`)
 * works on another user's 0600 file: every call must be refused, as Linux refuses it, also
 * while a sibling that kept every capability calls all along (the Sentry keeps the capabilities
 * it held for a caller: they must never serve another). Prints each difference and
 * "done N bypasses". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int bypasses;

static void check(const char *what, int r) {
    if (r >= 0) {
        printf("BYPASS %s\n", what);
        bypasses++;
    }
}

int main(void) {
    int fd = open("/tmp/u1000", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "secret\n", 7) != 7 || fchown(fd, 1000, 1000) < 0 || fchmod(fd, 0600) < 0) {
        perror("/tmp/u1000");
        return 2;
    }
    close(fd);
    pid_t sibling = fork();
    if (sibling < 0) return 2;
    if (sibling == 0) {
        for (;;) {
            int f = open("/tmp/u1000", O_RDONLY);
            if (f >= 0) close(f);
        }
    }
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return 2;
    unsigned drop = 1u << CAP_CHOWN | 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH | 1u << CAP_FOWNER;
    d[0].effective &= ~drop;
    d[0].permitted &= ~drop;
    d[0].inheritable &= ~drop;
    if (syscall(SYS_capset, &h, d) < 0) {
        perror("capset");
        return 2;
    }
    for (int round = 0; round < 200; round++) {
        check("open(/tmp/u1000)", open("/tmp/u1000", O_RDONLY));
        check("open(/proc/self/root/tmp/u1000)", open("/proc/self/root/tmp/u1000", O_RDONLY));
        check("open(/proc/self/cwd/tmp/u1000)", (chdir("/"), open("/proc/self/cwd/tmp/u1000", O_RDONLY)));
        check("chmod(/tmp/u1000)", chmod("/tmp/u1000", 0644));
        check("chown(/tmp/u1000)", chown("/tmp/u1000", 0, 0));
        check("chmod(/proc/self/root/tmp/u1000)", chmod("/proc/self/root/tmp/u1000", 0644));
    }
    kill(sibling, SIGKILL);
    waitpid(sibling, NULL, 0);
    struct stat st;
    if (stat("/tmp/u1000", &st) == 0 && (st.st_uid != 1000 || (st.st_mode & 0777) != 0600)) {
        printf("BYPASS the file is now %o, owner %d\n", st.st_mode & 0777, st.st_uid);
        bypasses++;
    }
    printf("done %d bypasses\n", bypasses);
    return 0;
}
