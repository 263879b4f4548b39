/* fstat runs natively in v2 (newfstatat and statx with AT_EMPTY_PATH on a descriptor), and the
 * kernel then follows a non-empty path given with the flag. From every directory descriptor a
 * program can get (the root, /proc's materialised directories, /proc/self/cwd and root), `..`
 * must reach nothing but the root or the descriptor's own filesystem; and a user other than
 * root must not see through the area's `..` whether a root process holds descriptor 77 (Linux
 * keeps /proc/<pid>/fd to its owner). Prints each difference and "done N bypasses". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static int bypasses;
static struct stat root;

/* Every `..` chain from `dir`, stated natively, ends on the root or stays on dir's device. */
static void dotdot_stays(const char *name) {
    int dir = open(name, O_RDONLY | O_DIRECTORY);
    struct stat start, st;
    if (dir < 0 || fstat(dir, &start) != 0) {
        printf("BYPASS? cannot open %s (errno %d)\n", name, errno);
        bypasses++;
        return;
    }
    char path[64] = "..";
    for (int i = 0; i < 8; i++) {
        for (int nofollow = 0; nofollow < 2; nofollow++) {
            int flags = AT_EMPTY_PATH | (nofollow ? AT_SYMLINK_NOFOLLOW : 0);
            struct statx sx;
            if (fstatat(dir, path, &st, flags) == 0 && st.st_dev != start.st_dev &&
                (st.st_dev != root.st_dev || st.st_ino != root.st_ino)) {
                printf("BYPASS fstatat(%s, %s) reached dev %lx ino %lu\n", name, path, st.st_dev, st.st_ino);
                bypasses++;
            }
            if (statx(dir, path, flags, STATX_BASIC_STATS, &sx) == 0 &&
                makedev(sx.stx_dev_major, sx.stx_dev_minor) != start.st_dev && sx.stx_ino != root.st_ino) {
                printf("BYPASS statx(%s, %s) reached ino %llu\n", name, path, (unsigned long long)sx.stx_ino);
                bypasses++;
            }
        }
        strcat(path, "/..");
    }
    close(dir);
}

int main(void) {
    if (stat("/", &root) != 0) return 2;
    const char *dirs[] = {"/", "/tmp", "/proc/self", "/proc/self/fd", "/proc/self/task", "/proc/self/cwd",
                          "/proc/self/root", "/proc/1", NULL};
    for (int i = 0; dirs[i]; i++) dotdot_stays(dirs[i]);

    /* A root process holding descriptor 77, its /proc/self/fd listing materialised. */
    if (dup2(1, 77) != 77) return 2;
    int fds = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    struct stat st;
    if (fds < 0 || fstatat(fds, "77", &st, 0) != 0) {
        printf("root cannot see its own fd 77 (errno %d)\n", errno);
        return 2;
    }
    pid_t child = fork();
    if (child == 0) {
        close(77);
        if (setgroups(0, NULL) != 0 || setresgid(1000, 1000, 1000) != 0 || setresuid(1000, 1000, 1000) != 0) _exit(2);
        int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
        if (self < 0) _exit(2);
        int seen = 0;
        char path[64];
        for (int j = 1; j <= 300; j++) {
            snprintf(path, sizeof path, "../d%d/77", j);
            seen += fstatat(self, path, &st, AT_EMPTY_PATH) == 0;
        }
        _exit(seen ? 1 : 0);
    }
    int status;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 2) {
        printf("the child could not drop to user 1000\n");
        return 2;
    }
    if (WEXITSTATUS(status) == 1) {
        printf("BYPASS user 1000 saw root's fd 77 through the area's ..\n");
        bypasses++;
    }
    printf("done %d bypasses\n", bypasses);
    return bypasses != 0;
}
