# Run in a sandbox by crates/fnbox/tests/programs/tools.rs, which checks what it prints.
set -e
mkdir -p /tmp/bb && cd /tmp/bb
cat > words.txt <<'WORDS'
pear
apple
fig
apple
pear
apple
WORDS
echo "counts: $(busybox sort words.txt | busybox uniq -c | busybox sort -rn | busybox awk '{printf "%s=%s ", $2, $1}')"
echo "lines: $(busybox wc -l < words.txt) unique: $(busybox sort -u words.txt | busybox wc -l)"
i=0 total=0
while [ "$i" -lt 10 ]; do i=$((i + 1)); total=$((total + i)); done
echo "loop total: $total"
for name in a b c; do echo "file $name" > "part-$name.txt"; done
echo "find: $(busybox find . -name 'part-*.txt' | busybox sort | busybox xargs busybox cat | busybox tr '\n' ',')"
echo "sed: $(busybox sed -n 's/^file \(.*\)/<\1>/p' part-b.txt)"
busybox tar -cf parts.tar part-a.txt part-b.txt part-c.txt
mkdir out
busybox tar -xf parts.tar -C out
echo "tar: $(busybox tar -tf parts.tar | busybox wc -l) entries, $(busybox cat out/part-c.txt)"
busybox cmp part-a.txt out/part-a.txt && echo "cmp: same"
inner=$( (cd out && echo "subshell in $(pwd)"; exit 3) || echo "subshell status $?")
echo "$inner" | busybox tr '\n' ';'; echo
echo "cwd after subshell: $(pwd)"
busybox awk -F: '$1 == "root" { print "awk passwd:", $7 }' /etc/passwd
busybox cat <<DOC | busybox sed 's/^/doc: /'
expanded $((2 + 3)) in $(basename "$PWD")
DOC
exec 3> fd3.txt
echo "through fd 3" >&3
exec 3>&-
echo "fd3: $(cat fd3.txt)"
printf '%s\n' 3 1 2 | busybox sort -n | busybox tr '\n' ' ' | busybox sed 's/ $/\n/'
busybox sh -c 'trap "echo trap ran" EXIT; exit 0'
case "$(busybox uname -s)" in Linux) echo "case: linux" ;; *) echo "case: other" ;; esac
{ echo one; echo two; } | busybox wc -l | busybox sed 's/^/group lines: /'
busybox gzip -c words.txt | busybox gunzip -c | busybox md5sum | busybox cut -c1-8 | busybox sed 's/^/gzip roundtrip md5: /'
busybox md5sum words.txt | busybox cut -c1-8 | busybox sed 's/^/words md5: /'
