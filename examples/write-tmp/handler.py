import os


def handle(event, context):
    """Writes the request body to a file in /tmp and reads the directory back."""
    path = "/tmp/note.txt"
    with open(path, "a") as f:
        f.write((event["body"] or "hello") + "\n")
    with open(path) as f:
        lines = f.read().splitlines()
    st = os.statvfs("/tmp")
    return {"lines": lines, "tmp_free_mb": st.f_bavail * st.f_frsize >> 20}
