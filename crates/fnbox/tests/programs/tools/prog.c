/* Compiled with gcc and run inside a sandbox by tools/gcc.sh (crates/fnbox/tests/programs/tools.rs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int by_length(const void *a, const void *b) {
    return (int)strlen(*(char *const *)a) - (int)strlen(*(char *const *)b);
}

int main(int argc, char **argv) {
    size_t n = 1000000;
    long *numbers = malloc(n * sizeof *numbers);
    if (!numbers)
        return 1;
    long sum = 0;
    for (size_t i = 0; i < n; i++)
        numbers[i] = (long)i;
    for (size_t i = 0; i < n; i++)
        sum += numbers[i];
    free(numbers);
    printf("malloc sum: %ld\n", sum);

    const char *words[] = {"sandbox", "fn", "compiled", "gcc"};
    qsort(words, 4, sizeof words[0], by_length);
    printf("qsort: %s %s %s %s\n", words[0], words[1], words[2], words[3]);
    volatile double two = 2.0;
    printf("libm: %.6f\n", sqrt(two));

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        FILE *f = fopen("from-child.txt", "w");
        if (!f)
            _exit(2);
        fprintf(f, "written by child %d\n", getppid() > 0);
        fclose(f);
        _exit(7);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        return 1;
    }
    printf("child exit: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    char line[64] = "";
    FILE *f = fopen("from-child.txt", "r");
    if (!f || !fgets(line, sizeof line, f)) {
        perror("read from-child.txt");
        return 1;
    }
    fclose(f);
    printf("child wrote: %s", line);
    f = fopen("out.txt", "w");
    fprintf(f, "argc=%d first=%s\n", argc, argc > 1 ? argv[1] : "-");
    fclose(f);
    return 0;
}
