# Run in a sandbox by crates/fnbox/tests/programs/tools.rs, which checks what it prints.
set -e
gcc -O2 -Wall -Werror -o /tmp/prog /code/prog.c -lm
/tmp/prog hello
echo "out.txt: $(cat out.txt)"
echo "binary: $(head -c 4 /tmp/prog | od -An -c | tr -d ' ')"
