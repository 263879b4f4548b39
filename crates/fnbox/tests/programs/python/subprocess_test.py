# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import subprocess, sys

r = subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True, text=True)
print("run:", r.returncode, r.stdout.strip(), r.stderr.strip())
out = subprocess.check_output([sys.executable, "-c", "import os, sys; print(sys.version_info[0], os.getppid() > 1)"], text=True)
print("python child:", out.strip())
p = subprocess.Popen(["sort"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
o, _ = p.communicate("pear\nfig\napple\n")
print("pipe:", o.split(), p.returncode)
r = subprocess.run("echo $((6 * 7)) | tr 4 X", shell=True, capture_output=True, text=True)
print("shell:", r.stdout.strip())
try:
    subprocess.run(["no-such-program"])
except FileNotFoundError as e:
    print("missing program:", e.errno)
try:
    subprocess.run(["sleep", "10"], timeout=0.5)
except subprocess.TimeoutExpired:
    print("timeout: expired")
r = subprocess.run(["sh", "-c", "kill -TERM $$"])
print("signal:", r.returncode)
r = subprocess.run(["sh", "-c", "cd /tmp && pwd && echo $FNBOX_VAR"], capture_output=True, text=True, cwd="/", env={"FNBOX_VAR": "passed", "PATH": "/usr/bin:/bin"})
print("cwd and env:", r.stdout.split())
