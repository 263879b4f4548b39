"""fnbox's Python runtime: serves a Scaleway-style handler over HTTP/1.1 on a Unix socket.

handle(event, context) -> {"statusCode", "headers", "body", "isBase64Encoded"} | str | dict | None

A small keep-alive server (one thread per connection; the gateway keeps its connections open)
rather than http.server, which costs a thread and a parse of every header through the email
package per request. Also runnable on TCP for benchmarks (FNBOX_LISTEN_TCP=host:port).
"""
import time

T0 = time.monotonic()

import base64
import importlib.util
import json
import os
import socket
import sys
import threading
import traceback

MAX_BODY = 6 << 20
SOCK = os.environ.get("FNBOX_SOCKET", "/run/fnbox/fn.sock")
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
           302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
           422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


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
    for d in (os.path.dirname(file), code):
        if d not in sys.path:
            sys.path.insert(0, d)
    name = module_path.replace("/", ".")
    mspec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(mspec)
    sys.modules[name] = module
    mspec.loader.exec_module(module)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise LookupError(f"{module_path}.py has no function '{func}'")
    return fn


def make_event(method, target, headers, body, request_id):
    path, _, query = target.partition("?")
    params = {}
    if query:
        from urllib.parse import parse_qsl
        for k, v in parse_qsl(query, keep_blank_values=True):
            params[k] = v
    try:
        text, b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": "",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": None,
        "queryStringParameters": params,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": {},
        "requestContext": {"accountId": "", "resourceId": "", "stage": "", "requestId": request_id,
                           "resourcePath": "", "authorizer": None, "httpMethod": method, "apiId": ""},
        "body": text,
        "isBase64Encoded": b64,
    }


def to_response(result):
    """The handler's result as (status, headers, body bytes)."""
    if isinstance(result, dict) and "statusCode" in result:
        status = int(result.get("statusCode") or 200)
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        body = result.get("body", "")
        if body is None:
            body = b""
        elif isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, bytes):
            pass
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(body)
        else:
            body = str(body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return status, headers, body
    if result is None:
        return 200, {}, b""
    if isinstance(result, bytes):
        return 200, {"Content-Type": "application/octet-stream"}, result
    if isinstance(result, str):
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, result.encode()
    return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()


def render(status, headers, body, keep_alive):
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"]
    for k, v in headers.items():
        if k.lower() not in ("content-length", "connection", "transfer-encoding"):
            head.append(f"{k}: {v}\r\n")
    head.append(f"Content-Length: {len(body)}\r\n")
    if not keep_alive:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    return "".join(head).encode("latin-1") + body


class Connection:
    def __init__(self, sock, handler, context):
        self.sock, self.handler, self.context = sock, handler, context
        self.buf = b""

    def read_request(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > 64 * 1024:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head = self.buf[:end].decode("latin-1")
        self.buf = self.buf[end + 4:]
        lines = head.split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip()] = v.strip()
        lower = {k.lower(): v for k, v in headers.items()}
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
                method, target, headers, lower, body = req
                keep_alive = lower.get("connection", "").lower() != "close"
                if body is None:
                    self.sock.sendall(render(413, {}, b"request body over 6 MiB\n", False))
                    return
                event = make_event(method, target, headers, body, lower.get("x-request-id", ""))
                try:
                    status, rh, rb = to_response(self.handler(event, self.context))
                except Exception as e:  # the handler's failure is the caller's 500, not the instance's end
                    traceback.print_exc()
                    sys.stderr.flush()
                    status, rh = 500, {"Content-Type": "application/json"}
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
    tmp = SOCK + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(tmp)
    srv.listen(1024)
    return srv, None


def main():
    check = sys.argv[1] == "--check"
    spec = sys.argv[-1]
    try:
        handler = load_handler(spec)
    except LookupError as e:
        print(f"fnbox: {e}", file=sys.stderr)
        sys.exit(1)
    except BaseException as e:  # SyntaxError, ImportError, SystemExit at import: all are the user's to fix
        traceback.print_exc()
        print(f"fnbox: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if check:
        return
    imported = time.monotonic()
    context = {
        "memoryLimitInMb": int(os.environ.get("FNBOX_MEMORY_MB", "0")),
        "functionName": os.environ.get("FNBOX_FUNCTION_NAME", ""),
        "functionVersion": os.environ.get("FNBOX_FUNCTION_VERSION", ""),
    }
    srv, tune = listen()
    if not os.environ.get("FNBOX_LISTEN_TCP"):
        ready = os.path.join(os.path.dirname(SOCK), "ready.json")
        with open(ready + ".tmp", "w") as f:
            json.dump({"started": T0, "imported": imported, "listening": time.monotonic()}, f)
        os.rename(ready + ".tmp", ready)
        os.rename(SOCK + ".tmp", SOCK)
    while True:
        conn, _ = srv.accept()
        if tune:
            tune(conn)
        threading.Thread(target=Connection(conn, handler, context).serve, daemon=True).start()


if __name__ == "__main__":
    main()
