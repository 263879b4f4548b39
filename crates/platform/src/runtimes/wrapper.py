"""fnbox's Python runtime: serves a Scaleway-style handler over HTTP/1.1 on a Unix socket.

handle(event, context) -> {"statusCode", "headers", "body", "isBase64Encoded"} | str | dict | None

The contract follows Scaleway's (their docs, and their local framework,
scaleway-functions-python, where the docs say nothing): a dict with "body" or "statusCode" is
a response record (status 200 by default; a header given as a list is sent once per value),
any other dict is JSON; event["headers"] answers in any case and shows canonical names
(Content-Type); repeated headers and query keys come as the framework gives them (joined with
","; the first value), all of them in the multiValue* fields. `package/` (pip install
--target package) next to the handler or at the root of the code is importable.

Two ways to start:

* `wrapper.py --zygote [--warm-up]` (what fnbox serve runs): the interpreter starts and this
  module is imported before any function is known, in a pre-warmed sandbox (which also runs
  the request path once: --warm-up, see warm_up). Descriptor 0 is a socket to
  fnbox serve: the zygote says it is ready, waits for one bind request (handler, environment
  with the secrets, check or serve), then becomes the instance, as Node's does: it sets the
  environment, changes to /code, imports the handler and serves. A pre-warmed sandbox serves
  one instance, so nothing is gained by forking it from the zygote, and a fork cost the
  cold start a copy of the interpreter's page tables and a fault on every page it wrote.
* `wrapper.py HANDLER`: loads the handler and serves at once (benchmarks, FNBOX_LISTEN_TCP).

A small keep-alive server (one thread per connection; the gateway keeps its connections open)
rather than http.server, which costs a thread and a parse of every header through the email
package per request. Also runnable on TCP for benchmarks (FNBOX_LISTEN_TCP=host:port).
"""
import time

T0 = time.monotonic()

import base64
import gc
import importlib.util
import json
import os
import socket
import sys
import threading
import traceback
from urllib.parse import parse_qsl

MAX_BODY = 6 << 20
# The gateway's limit on a request's header block (request line to blank line, as sent here):
# it answers 431 above it and never forwards such a request. Keep the two equal.
MAX_HEAD = 64 << 10
# The zygote protocol's version (crates/platform/src/instances/zygote/protocol.rs, where the
# messages are declared): fnbox serve refuses an answer of another, and this a request.
PROTOCOL = 1
# The most of a failed load's reason and traceback an answer carries: fnbox serve reads at most
# 64 KiB of a line, and shows the traceback's last lines (all of it is printed to stderr).
REASON_MAX, DETAIL_MAX = 2048, 4096


def load_handler(spec):
    """'src/handler.handle' -> the function handle of /code/src/handler.py."""
    module_path, _, func = spec.rpartition(".")
    code = os.getcwd()
    file = os.path.join(code, module_path + ".py")
    pkg_init = os.path.join(code, module_path, "__init__.py")
    if not os.path.exists(file) and os.path.exists(pkg_init):
        file = pkg_init
    if not os.path.exists(file):
        raise LookupError(f"{module_path}.py does not exist in the code directory")
    # Where PYTHONPATH would put them (before the standard library), in this order: the
    # handler's directory, the code's root, and the package/ directories Scaleway's packaging
    # guide has users fill with `pip install --target package` (set here, in the instance,
    # rather than in PYTHONPATH, which would cost the zygote).
    here = os.path.dirname(file)
    dirs = [here, code] + [p for p in (os.path.join(here, "package"), os.path.join(code, "package")) if os.path.isdir(p)]
    sys.path[:0] = [d for i, d in enumerate(dirs) if d not in sys.path and d not in dirs[:i]]
    name = module_path.replace("/", ".")
    mspec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(mspec)
    sys.modules[name] = module
    mspec.loader.exec_module(module)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise LookupError(f"{module_path}.py has no function '{func}'")
    return fn


def canonical(name):
    """'content-type' -> 'Content-Type': how Scaleway's framework names request headers."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class Headers(dict):
    """Request headers: found in any case (headers["content-type"], headers["Content-Type"]),
    stored under their canonical names, which is what iterating, dict(), and json.dumps
    show."""

    def __init__(self, pairs=()):
        super().__init__()
        for k, v in pairs:
            self[k] = v

    @staticmethod
    def _key(k):
        return canonical(k) if isinstance(k, str) else k

    def __getitem__(self, k):
        return dict.__getitem__(self, self._key(k))

    def __setitem__(self, k, v):
        dict.__setitem__(self, self._key(k), v)

    def __delitem__(self, k):
        dict.__delitem__(self, self._key(k))

    def __contains__(self, k):
        return dict.__contains__(self, self._key(k))

    def get(self, k, default=None):
        return dict.get(self, self._key(k), default)

    def pop(self, k, *default):
        return dict.pop(self, self._key(k), *default)

    def setdefault(self, k, default=None):
        return dict.setdefault(self, self._key(k), default)

    def update(self, other=(), **kw):
        for k, v in (other.items() if hasattr(other, "items") else other):
            self[k] = v
        for k, v in kw.items():
            self[k] = v

    def copy(self):
        return Headers(self.items())

    def __reduce__(self):
        return (Headers, (list(self.items()),))


# Media types whose bodies reach the handler as text even when they are not valid UTF-8 (the
# invalid bytes replaced), as Scaleway's frameworks give them: a multipart upload's parser
# reads the text. Any other body that is not UTF-8 comes base64-encoded (isBase64Encoded).
TEXT_TYPES = ("multipart/", "text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


def make_event(method, target, pairs, body, request_id):
    path, _, query = target.partition("?")
    multi_query = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        multi_query.setdefault(k, []).append(v)
    multi_headers = Headers()
    for k, v in pairs:
        multi_headers.setdefault(k, []).append(v)
    # Repeated headers joined as the framework does (cookies as a browser sends them).
    headers = Headers((k, ("; " if k == "Cookie" else ",").join(vs)) for k, vs in multi_headers.items())
    try:
        text, b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        if headers.get("content-type", "").lower().startswith(TEXT_TYPES):
            text, b64 = body.decode("utf-8", "replace"), False
        else:
            text, b64 = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": "",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: vs[0] for k, vs in multi_query.items()},
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": None,
        "stageVariables": {},
        "requestContext": {"accountId": "", "resourceId": "", "stage": "", "requestId": request_id,
                           "resourcePath": "", "authorizer": None, "httpMethod": method, "apiId": ""},
        "body": text,
        "isBase64Encoded": b64,
    }


def header_lines(headers):
    """A record's headers as (name, value) pairs: a list value gives one line per item (as
    Scaleway's frameworks send it), None none."""
    out = []
    for k, v in (headers or {}).items():
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            if item is not None:
                out.append((str(k), str(item)))
    return out


def to_response(result):
    """The handler's result as (status, [(name, value)], body bytes)."""
    if isinstance(result, dict) and ("body" in result or "statusCode" in result):
        status = int(result.get("statusCode") or 200)
        headers = header_lines(result.get("headers"))
        has_type = any(k.lower() == "content-type" for k, _ in headers)
        body = result.get("body", "")
        if body is None:
            body = b""
        elif isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            if not has_type:
                headers.append(("Content-Type", "application/json"))
                has_type = True
        elif isinstance(body, bytes):
            pass
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(body)
        else:
            body = str(body).encode()
        if not has_type:
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return status, headers, body
    if result is None:
        return 200, [], b""
    if isinstance(result, bytes):
        return 200, [("Content-Type", "application/octet-stream")], result
    if isinstance(result, str):
        return 200, [("Content-Type", "text/plain; charset=utf-8")], result.encode()
    return 200, [("Content-Type", "application/json")], json.dumps(result).encode()


def render(status, headers, body, keep_alive):
    # The handler's status and headers travel as data (base64 JSON in X-Fnbox-Result), never as
    # HTTP: a "\r\n" in a value cannot split the answer, a status of 1000 cannot break it, and
    # the gateway checks them in one place for every runtime (a 500 if they are not valid).
    # Repeated names (a list-valued header) keep every value, in order.
    merged = {}
    for k, v in headers:
        merged.setdefault(k, []).append(v)
    result = {"statusCode": status, "headers": merged}
    meta = base64.b64encode(json.dumps(result).encode()).decode("ascii")
    close = "" if keep_alive else "Connection: close\r\n"
    head = f"HTTP/1.1 200 OK\r\nX-Fnbox-Result: {meta}\r\nContent-Length: {len(body)}\r\n{close}\r\n"
    return head.encode("ascii") + body


class Connection:
    def __init__(self, sock, handler, context):
        self.sock, self.handler, self.context = sock, handler, context
        self.buf = b""

    def read_request(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end + 4 > MAX_HEAD or (end < 0 and len(self.buf) >= MAX_HEAD):
                return "431"
            if end >= 0:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head = self.buf[:end].decode("latin-1")
        self.buf = self.buf[end + 4:]
        lines = head.split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        lower = {k.lower(): v for k, v in headers}
        length = int(lower.get("content-length", "0") or 0)
        if length > MAX_BODY:
            return method, target, headers, lower, None
        while len(self.buf) < length:
            chunk = self.sock.recv(max(65536, length - len(self.buf)))
            if not chunk:
                return None
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return method, target, headers, lower, body

    def serve(self):
        try:
            while True:
                req = self.read_request()
                if req is None:
                    return
                if req == "431":
                    self.sock.sendall(render(431, {}, b"request header block over 64 KiB\n", False))
                    return
                method, target, headers, lower, body = req
                keep_alive = lower.get("connection", "").lower() != "close"
                if body is None:
                    self.sock.sendall(render(413, [], b"request body over 6 MiB\n", False))
                    return
                event = make_event(method, target, headers, body, lower.get("x-request-id", ""))
                try:
                    status, rh, rb = to_response(self.handler(event, self.context))
                except Exception as e:  # the handler's failure is the caller's 500, not the instance's end
                    traceback.print_exc()
                    sys.stderr.flush()
                    status, rh = 500, [("Content-Type", "application/json")]
                    rb = json.dumps({"error": f"{type(e).__name__}: {e}", "type": "handler_error"}).encode()
                self.sock.sendall(render(status, rh, rb, keep_alive))
                if not keep_alive:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self.sock.close()


def listen():
    tcp = os.environ.get("FNBOX_LISTEN_TCP")
    if tcp:
        host, _, port = tcp.rpartition(":")
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, int(port)))
        srv.listen(1024)
        return srv, lambda c: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # fnbox made the socket and bound it where only fnbox can reach it: listen on it.
    fd = int(os.environ["FNBOX_LISTEN_FD"])
    os.set_inheritable(fd, False)
    srv = socket.socket(fileno=fd)
    srv.listen(1024)
    return srv, None


def serve(srv, tune, handler):
    context = {
        "memoryLimitInMb": int(os.environ.get("FNBOX_MEMORY_MB", "0")),
        "functionName": os.environ.get("FNBOX_FUNCTION_NAME", ""),
        "functionVersion": os.environ.get("FNBOX_FUNCTION_VERSION", ""),
    }
    while True:
        conn, _ = srv.accept()
        if tune:
            tune(conn)
        threading.Thread(target=Connection(conn, handler, context).serve, daemon=True).start()


def load_or_explain(spec):
    """The handler, or (reason, detail) when it cannot be loaded (the detail: a traceback for
    errors in the user's code, printed to stderr as well)."""
    try:
        return load_handler(spec), None
    except LookupError as e:
        return None, (str(e), "")
    except BaseException as e:  # SyntaxError, ImportError, SystemExit at import: all are the user's to fix
        detail = traceback.format_exc()
        sys.stderr.write(detail)
        sys.stderr.flush()
        return None, (f"{type(e).__name__}: {e}", detail)


def answer(sock, event, **fields):
    """One line of the zygote protocol to fnbox serve."""
    line = json.dumps({"v": PROTOCOL, "event": event, **fields}, ensure_ascii=False)
    sock.sendall(line.encode("utf-8", "replace") + b"\n")


def bind_request(line):
    """The bind request, in this wrapper's version of the protocol (or the zygote ends, saying
    why: fnbox serve reads its "fnbox: " line as the reason)."""
    req = json.loads(line)
    if req.get("v") != PROTOCOL or req.get("op") != "bind":
        # Not the line itself: it holds the function's secrets.
        sys.stderr.write(f"fnbox: the Python runtime speaks version {PROTOCOL} of the zygote protocol and was sent a "
                         f"{str(req.get('op'))[:20]!r} request of version {str(req.get('v'))[:20]}: fnbox serve and its "
                         "runtime wrappers must come from one fnbox installation\n")
        sys.exit(1)
    return req


def read_line(sock):
    """One line: fnbox serve sends one and waits for the answer, so nothing is read past it."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    return buf


def warm_up():
    """Runs the paths a cold start takes once, before any function is bound: a handler import
    (warmup.py, next to this file) and a request through Connection in its own thread. The
    instance (this process, once bound) finds them run: caches filled, lazy imports done."""
    cwd, path = os.getcwd(), list(sys.path)
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    handler, failed = load_or_explain("warmup.handle")
    os.chdir(cwd)
    # Leave no trace a function could see: its sys.path and modules are its own.
    sys.path[:] = path
    sys.modules.pop("warmup", None)
    if failed:
        handler = lambda event, context: "warm"
    ours, theirs = socket.socketpair()
    t = threading.Thread(target=Connection(ours, handler, {}).serve, daemon=True)
    t.start()
    theirs.sendall(b"POST /warm?up=1 HTTP/1.1\r\nHost: fnbox\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    while theirs.recv(65536):
        pass
    theirs.close()
    t.join()


def zygote(warm):
    ctl = socket.socket(fileno=0)
    srv, tune = listen()
    if warm:
        warm_up()
    answer(ctl, "ready", started=T0)
    line = read_line(ctl)
    if not line:
        sys.exit(0)  # fnbox serve let this sandbox go unused
    received = time.monotonic()
    req = bind_request(line)
    # The zygote becomes the instance (a pre-warmed sandbox serves one instance, then is
    # gone): no fork, so no copy of the interpreter's page tables and no copy-on-write fault
    # on every page the instance then writes. Objects made so far stay in the oldest
    # generation: the collector does not walk them on the instance's first collections.
    gc.freeze()
    try:
        os.environ.update(req["env"])
        os.chdir(req["workdir"])
        handler, failed = load_or_explain(req["handler"])
    except BaseException as e:
        handler, failed = None, (f"{type(e).__name__}: {e}", traceback.format_exc())
    if failed:
        answer(ctl, "error", reason=failed[0][:REASON_MAX], detail=failed[1][-DETAIL_MAX:])
        os._exit(1)
    if req["check"]:
        answer(ctl, "checked")
        os._exit(0)
    answer(ctl, "bound", received=received, forked=received, imported=time.monotonic())
    # The control socket is done with: the handler's stdin is /dev/null, as in any instance.
    ctl.detach()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    serve(srv, tune, handler)


def main():
    if sys.argv[1] == "--zygote":
        return zygote("--warm-up" in sys.argv)
    handler, failed = load_or_explain(sys.argv[-1])
    if failed:
        print(f"fnbox: {failed[0]}", file=sys.stderr)
        sys.exit(1)
    srv, tune = listen()
    serve(srv, tune, handler)


if __name__ == "__main__":
    main()
