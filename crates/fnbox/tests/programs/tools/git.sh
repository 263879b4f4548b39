# Run in a sandbox by crates/fnbox/tests/programs/tools.rs, which checks what it prints.
set -e
export HOME=/tmp/home
mkdir -p "$HOME"
git config --global user.name "Fn Box"
git config --global user.email "fn@box.test"
git config --global init.defaultBranch main
# Commits one second apart, so that `git log` order does not depend on timing.
at() { export GIT_AUTHOR_DATE="@$1 +0000" GIT_COMMITTER_DATE="@$1 +0000"; }
cd /tmp
git init -q repo
cd repo
echo one > a.txt
echo two > b.txt
git add a.txt b.txt
at 1700000001
git commit -q -m "first: two files"
git checkout -q -b feature
echo three >> a.txt
at 1700000002
git commit -q -am "feature: extend a"
git checkout -q main
echo new > c.txt
git add c.txt
at 1700000003
git commit -q -m "main: add c"
at 1700000004
git merge -q --no-edit -m "merge feature" feature
echo "--- log"
git log --oneline
echo "--- status"
git status --porcelain
echo untracked > d.txt
echo changed >> b.txt
git status --porcelain
echo "--- checks"
echo "branches: $(git branch --format='%(refname:short)' | tr '\n' ' ')"
echo "merge parents: $(git log -1 --format=%P | wc -w)"
echo "commits: $(git rev-list --count HEAD)"
echo "a.txt: $(tr '\n' ' ' < a.txt)"
git stash -q
echo "after stash: $(git status --porcelain | tr '\n' ' ')"
git gc -q
git fsck --no-progress --no-dangling
echo "fsck: ok"
git clone -q /tmp/repo /tmp/clone
echo "clone: $(git -C /tmp/clone log --format=%s | head -1) $(ls /tmp/clone | tr '\n' ' ')"
