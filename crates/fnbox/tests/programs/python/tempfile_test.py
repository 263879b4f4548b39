# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import os
import stat
import tempfile

print("gettempdir:", tempfile.gettempdir())
with tempfile.NamedTemporaryFile("w+", suffix=".txt") as f:
    f.write("named contents")
    f.flush()
    f.seek(0)
    with open(f.name) as again:
        print("named:", os.path.dirname(f.name), f.name.endswith(".txt"), again.read(), oct(stat.S_IMODE(os.stat(f.name).st_mode)))
    name = f.name
print("named removed:", not os.path.exists(name))
with tempfile.TemporaryDirectory(prefix="fnbox-") as d:
    os.makedirs(os.path.join(d, "a", "b"))
    with open(os.path.join(d, "a", "b", "c.txt"), "w") as f:
        f.write("deep")
    os.symlink("a/b/c.txt", os.path.join(d, "link"))
    print("directory:", os.path.basename(d).startswith("fnbox-"), sorted(os.listdir(d)), oct(stat.S_IMODE(os.stat(d).st_mode)))
    print("walk:", sorted(os.path.relpath(os.path.join(r, x), d) for r, ds, fs in os.walk(d) for x in ds + fs))
    saved = d
print("directory removed:", not os.path.exists(saved))
fd, path = tempfile.mkstemp(prefix="ms-", suffix=".bin", dir=".")
os.write(fd, b"\x00\x01mkstemp")
os.close(fd)
with open(path, "rb") as f:
    print("mkstemp:", os.path.dirname(os.path.abspath(path)), os.path.basename(path).startswith("ms-"), f.read(), oct(stat.S_IMODE(os.stat(path).st_mode)))
os.unlink(path)
d = tempfile.mkdtemp()
print("mkdtemp:", os.path.dirname(d), oct(stat.S_IMODE(os.stat(d).st_mode)))
os.rmdir(d)
before = sorted(os.listdir("/tmp"))
with tempfile.TemporaryFile() as f:
    f.write(b"anonymous")
    f.seek(0)
    # An unnamed file (O_TMPFILE): nothing appears in /tmp.
    print("anonymous:", f.read(), sorted(os.listdir("/tmp")) == before)
with tempfile.SpooledTemporaryFile(max_size=10) as f:
    f.write(b"x" * 5)
    before = f._rolled
    f.write(b"y" * 20)
    f.seek(0)
    print("spooled:", before, f._rolled, len(f.read()))
