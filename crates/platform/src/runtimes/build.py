"""fnbox's build step (`fnbox deploy --build`), run in a sandbox with egress on the function's
own runtime image: installs the function's dependencies into /code (its copy-on-write layer),
packs /code into a zip, and serves that zip once on the socket fnbox handed it
($FNBOX_LISTEN_FD). The zip is all that leaves the sandbox; fnbox checks it as it checks any
upload (docs/architecture.md, "Builds").

    python3 build.py python3|node
"""

import importlib.util
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time
import zipfile

CODE = "/code"
# On the sandbox's disk layer (capped), not in /tmp (memory in sandbox v2) nor under /code
# (it would be packed).
WORK = "/var/tmp/fnbox-build"
ZIP = WORK + "/code.zip"


def fail(msg, code=1):
    # A line starting "fnbox: " is the reason fnbox gives for a failed build.
    print("fnbox: " + msg, file=sys.stderr, flush=True)
    sys.exit(code)


def command(runtime):
    if runtime == "python3":
        if importlib.util.find_spec("pip") is None:
            fail("pip is not installed in the runtime image: the server's operator installs it (Debian: python3-pip)")
        pip = ["pip", "install", "-r", "requirements.txt", "--target", "package", "--upgrade", "--no-cache-dir",
               "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--root-user-action=ignore"]
        return [sys.executable, "-m"] + pip, pip
    if runtime == "node":
        npm = shutil.which("npm")
        if npm is None:
            fail("npm is not installed in the runtime image: the server's operator installs it (Debian: npm)")
        args = ["ci", "--omit=dev", "--no-audit", "--no-fund", "--no-update-notifier"]
        return [npm] + args, ["npm"] + args
    fail("runtime %r has no build step: use python3 or node" % runtime)


def entry(name, mode, mtime):
    info = zipfile.ZipInfo(name, time.gmtime(max(mtime, 315532800))[:6])
    info.create_system = 3
    info.external_attr = mode << 16
    # Info-ZIP's extended timestamp, which fnbox restores: Python's byte-code cache holds only
    # for a source with the modification time it recorded.
    info.extra = struct.pack("<HHBI", 0x5455, 5, 1, min(max(int(mtime), 0), 0xFFFFFFFF))
    return info


def pack():
    """/code into ZIP, sorted, symlinks as symlinks (fnbox refuses those that leave the tree)."""
    files = 0
    with zipfile.ZipFile(ZIP, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for top, dirs, names in os.walk(CODE):
            dirs.sort()
            for name in sorted(dirs + names):
                path = os.path.join(top, name)
                rel = os.path.relpath(path, CODE)
                st = os.lstat(path)
                perm = stat.S_IMODE(st.st_mode) & 0o777
                if stat.S_ISLNK(st.st_mode):
                    info = entry(rel, stat.S_IFLNK | 0o777, st.st_mtime)
                    z.writestr(info, os.readlink(path))
                elif stat.S_ISDIR(st.st_mode):
                    info = entry(rel + "/", stat.S_IFDIR | perm, st.st_mtime)
                    info.external_attr |= 0x10
                    z.writestr(info, b"")
                elif stat.S_ISREG(st.st_mode):
                    info = entry(rel, stat.S_IFREG | perm, st.st_mtime)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(path, "rb") as src, z.open(info, "w", force_zip64=True) as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    files += 1
                else:
                    print("fnbox build: %s is a special file (socket, fifo or device): left out" % rel, flush=True)
    return files


def serve():
    """Hands the zip to fnbox: listening on the socket it bound for us is the signal."""
    listener = socket.socket(fileno=int(os.environ["FNBOX_LISTEN_FD"]))
    listener.listen(1)
    conn, _ = listener.accept()
    with conn, open(ZIP, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)


def main():
    runtime = sys.argv[1] if len(sys.argv) > 1 else ""
    cmd, shown = command(runtime)
    for d in ("home", "tmp", "npm-cache"):
        os.makedirs(os.path.join(WORK, d), exist_ok=True)
    print("$ " + " ".join(shown), flush=True)
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=CODE, stdin=subprocess.DEVNULL)
    except OSError as e:
        fail("%s could not be started: %s" % (shown[0], e))
    if done.returncode != 0:
        fail("%s exited with code %d" % (" ".join(shown[:2]), done.returncode))
    files = pack()
    print("fnbox build: %s took %.1f s; packed %d files (%d KiB zipped)"
          % (" ".join(shown[:2]), time.monotonic() - t0, files, os.path.getsize(ZIP) >> 10), flush=True)
    serve()


if __name__ == "__main__":
    main()
