/* Opens (through the Sentry), writes and closes a file, then looks at once for the inotify
 * event of that close: it comes only if the program held the file's last reference. Prints
 * "missed N of M". */
#include <fcntl.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(void) {
    const int rounds = 500;
    int missed = 0;
    int in = inotify_init1(IN_NONBLOCK);
    if (in < 0 || inotify_add_watch(in, "/tmp", IN_CLOSE_WRITE) < 0) {
        perror("inotify");
        return 2;
    }
    char buf[4096];
    for (int i = 0; i < rounds; i++) {
        int fd = open("/tmp/lastclose", O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0 || write(fd, "x", 1) != 1) {
            perror("open/write");
            return 2;
        }
        close(fd);
        if (read(in, buf, sizeof buf) <= 0)
            missed++;
        while (read(in, buf, sizeof buf) > 0) {
        }
    }
    printf("missed %d of %d\n", missed, rounds);
    return 0;
}
