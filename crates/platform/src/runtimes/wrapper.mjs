// fnbox's Node runtime: serves a Scaleway-style handler over HTTP/1.1 on a Unix socket.
//
// handle(event, context, callback): the result is the return value, a Promise, or the
// callback's second argument: {statusCode, headers, body, isBase64Encoded} | string | object.
//
// The contract follows Scaleway's (their docs, and their local framework,
// @scaleway/serverless-functions, where the docs say nothing): an object with `body` or
// `statusCode` is a response record (status 200 by default; a header given as an array is
// sent once per value), any other object is JSON; event.headers answers in any case and shows
// canonical names (Content-Type); repeated headers and query keys come as the framework gives
// them (joined by Node's rules; an array), all of them in the multiValue* fields.
//
// Two ways to start:
// * `wrapper.mjs --zygote [--warm-up]` (what fnbox serve runs): Node starts and this module
//   loads before any function is known, in a pre-warmed sandbox (which also runs the request
//   path once: --warm-up, see warmUp). Descriptor 0 is a socket to fnbox serve:
//   the zygote says it is ready, waits for one bind request (handler, environment with the
//   secrets, check or serve), then sets the environment, changes to /code, imports the handler
//   and serves. Node cannot fork a running VM, so the zygote process itself becomes the
//   instance (Python's zygote forks instead).
// * `wrapper.mjs HANDLER`: loads the handler and serves at once (benchmarks, FNBOX_LISTEN_TCP).
const T0 = Number(process.hrtime.bigint()) / 1e9;

import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";

const MAX_BODY = 6 << 20;
// The gateway's limit on a request's header block: it answers 431 above it and never forwards
// such a request. Node counts fewer bytes of a block (no separators), so it takes all it gets.
const MAX_HEAD = 64 << 10;
// Where the warm-up request goes: an abstract name, private to the sandbox's network namespace.
const WARM_SOCK = "\0fnbox-warm-up";
// The zygote protocol's version (crates/platform/src/instances/zygote/protocol.rs, where the
// messages are declared): fnbox serve refuses an answer of another, and this a request.
const PROTOCOL = 1;
// The most of a failed load's reason and stack an answer carries: fnbox serve reads at most
// 64 KiB of a line, and shows the stack's last lines (all of it is printed to stderr).
const REASON_MAX = 2048;
const DETAIL_MAX = 4096;
const now = () => Number(process.hrtime.bigint()) / 1e9;

/** The handler is not where the spec says: no stack trace needed. */
class LookupError extends Error {}

async function loadHandler(spec) {
  const dot = spec.lastIndexOf(".");
  const modulePath = spec.slice(0, dot);
  const func = spec.slice(dot + 1);
  const base = path.join(process.cwd(), modulePath);
  const file = [".js", ".mjs", ".cjs"].map((e) => base + e).find((f) => fs.existsSync(f));
  if (!file) throw new LookupError(`${modulePath}.js (or .mjs, .cjs) does not exist in the code directory`);
  const mod = await import(pathToFileURL(file).href);
  const fn = mod[func] ?? mod.default?.[func];
  if (typeof fn !== "function") throw new LookupError(`${path.basename(file)} exports no function '${func}'`);
  return fn;
}

/** "content-type" -> "Content-Type". */
const canonical = (name) =>
  name.split("-").map((p) => p.charAt(0).toUpperCase() + p.slice(1).toLowerCase()).join("-");

const own = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

/** Request headers: found in any case (headers["content-type"], headers["Content-Type"]),
 * stored under their canonical names, which is what iterating and JSON.stringify show. */
function caseless(entries) {
  const target = {};
  for (const [k, v] of entries) target[canonical(k)] = v;
  const key = (t, k) => (typeof k === "string" && !own(t, k) && own(t, canonical(k)) ? canonical(k) : k);
  return new Proxy(target, {
    get: (t, k) => t[key(t, k)],
    set: (t, k, v) => {
      t[typeof k === "string" ? canonical(k) : k] = v;
      return true;
    },
    has: (t, k) => key(t, k) in t,
    deleteProperty: (t, k) => delete t[key(t, k)],
    getOwnPropertyDescriptor: (t, k) => Reflect.getOwnPropertyDescriptor(t, key(t, k)),
  });
}

// Media types whose bodies reach the handler as text even when they are not valid UTF-8 (the
// invalid bytes replaced), as Scaleway's frameworks give them: a multipart upload's parser
// reads the text. Any other body that is not UTF-8 comes base64-encoded (isBase64Encoded).
const TEXT_TYPES = ["multipart/", "text/", "application/json", "application/x-www-form-urlencoded", "application/xml"];

function makeEvent(req, body) {
  const url = new URL(req.url, "http://fnbox");
  const multiQuery = {};
  for (const [k, v] of url.searchParams) (multiQuery[k] ??= []).push(v);
  const query = {};
  for (const [k, vs] of Object.entries(multiQuery)) query[k] = vs.length === 1 ? vs[0] : vs;
  const text = body.toString("utf8");
  const type = String(req.headers["content-type"] || "").toLowerCase();
  const binary = !Buffer.from(text, "utf8").equals(body) && !TEXT_TYPES.some((t) => type.startsWith(t));
  return {
    resource: "",
    path: url.pathname,
    httpMethod: req.method,
    headers: caseless(Object.entries(req.headers)),
    multiValueHeaders: caseless(Object.entries(req.headersDistinct)),
    queryStringParameters: query,
    multiValueQueryStringParameters: multiQuery,
    pathParameters: null,
    stageVariables: {},
    requestContext: {
      accountId: "", resourceId: "", stage: "", requestId: req.headers["x-request-id"] || "",
      resourcePath: "", authorizer: null, httpMethod: req.method, apiId: "",
    },
    body: binary ? body.toString("base64") : text,
    isBase64Encoded: binary,
  };
}

function call(handler, event, context) {
  return new Promise((resolve, reject) => {
    const callback = (err, result) => (err ? reject(err) : resolve(result));
    let out;
    try {
      out = handler(event, context, callback);
    } catch (e) {
      return reject(e);
    }
    if (out && typeof out.then === "function") out.then(resolve, reject);
    else if (out !== undefined || handler.length < 3) resolve(out);
  });
}

/** Set by the wrapper, whatever the handler says. */
const HOP = ["content-length", "connection", "transfer-encoding"];

/** A record's headers for writeHead: an array value gives one line per item (as Scaleway's
 * frameworks send it); null and undefined none. */
function headerLines(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers || {})) {
    if (HOP.includes(k.toLowerCase())) continue;
    const items = (Array.isArray(v) ? v : [v]).filter((x) => x !== null && x !== undefined).map(String);
    if (items.length) out[k] = items.length === 1 ? items[0] : items;
  }
  return out;
}

const hasType = (headers) => Object.keys(headers).some((k) => k.toLowerCase() === "content-type");

function toResponse(result) {
  if (result && typeof result === "object" && !Buffer.isBuffer(result) && ("body" in result || "statusCode" in result)) {
    const headers = headerLines(result.headers);
    let body = result.body ?? "";
    if (typeof body === "object" && !Buffer.isBuffer(body)) {
      body = Buffer.from(JSON.stringify(body));
      if (!hasType(headers)) headers["Content-Type"] = "application/json";
    } else if (Buffer.isBuffer(body)) {
      // as is
    } else if (result.isBase64Encoded) body = Buffer.from(String(body), "base64");
    else body = Buffer.from(String(body));
    if (!hasType(headers)) headers["Content-Type"] = "text/plain; charset=utf-8";
    return [Number(result.statusCode) || 200, headers, body];
  }
  if (result === undefined || result === null) return [200, {}, Buffer.alloc(0)];
  if (Buffer.isBuffer(result)) return [200, { "Content-Type": "application/octet-stream" }, result];
  if (typeof result === "string") return [200, { "Content-Type": "text/plain; charset=utf-8" }, Buffer.from(result)];
  return [200, { "Content-Type": "application/json" }, Buffer.from(JSON.stringify(result))];
}

/** "Name: message" for an error thrown by the user's code. */
const describe = (e) => `${e && e.name ? e.name + ": " : ""}${e && e.message ? e.message : e}`;

/** The handler, or {reason, detail} when it cannot be loaded (detail: the error's stack, for
 * errors in the user's code, printed to stderr as well). */
async function loadOrExplain(spec) {
  try {
    return { handler: await loadHandler(spec) };
  } catch (e) {
    if (e instanceof LookupError) return { reason: e.message, detail: "" };
    console.error(e);
    const detail = e && e.stack ? String(e.stack) : String(e);
    return { reason: describe(e), detail };
  }
}

/** An HTTP server calling `instance.handler` (set once the handler is loaded). */
function makeServer(instance) {
  const server = http.createServer({ maxHeaderSize: MAX_HEAD }, (req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on("end", async () => {
      if (size > MAX_BODY) {
        res.writeHead(413, { "Content-Type": "text/plain" }).end("request body over 6 MiB\n");
        return;
      }
      let status, headers, body;
      try {
        const event = makeEvent(req, Buffer.concat(chunks));
        [status, headers, body] = toResponse(await call(instance.handler, event, instance.context));
      } catch (e) {
        console.error(e);
        status = 500;
        headers = { "Content-Type": "application/json" };
        body = Buffer.from(JSON.stringify({ error: `${e && e.name ? e.name : "Error"}: ${e && e.message ? e.message : e}`, type: "handler_error" }));
      }
      // The handler's status and headers travel as data, never as HTTP (Node would throw on a
      // bad value or status and end the instance): the gateway checks them, see wrapper.py.
      const meta = Buffer.from(JSON.stringify({ statusCode: status, headers })).toString("base64");
      res.writeHead(200, { "X-Fnbox-Result": meta, "Content-Length": body.length }).end(body);
    });
  });
  // The gateway keeps its connections open between requests: never time them out here.
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  return server;
}

function contextFromEnv() {
  return {
    memoryLimitInMb: Number(process.env.FNBOX_MEMORY_MB || 0),
    functionName: process.env.FNBOX_FUNCTION_NAME || "",
    functionVersion: process.env.FNBOX_FUNCTION_VERSION || "",
  };
}

/** Listens on the socket fnbox made ($FNBOX_LISTEN_FD, or FNBOX_LISTEN_TCP); resolves once
 * listening. */
function listen(server) {
  return new Promise((resolve) => {
    const tcp = process.env.FNBOX_LISTEN_TCP;
    if (tcp) {
      const i = tcp.lastIndexOf(":");
      server.listen(Number(tcp.slice(i + 1)), tcp.slice(0, i), resolve);
      return;
    }
    server.listen({ fd: Number(process.env.FNBOX_LISTEN_FD) }, resolve);
  });
}

/** One line from the control socket (fnbox serve sends one and waits for the answer). */
function readLine(sock) {
  return new Promise((resolve) => {
    // Bytes first, decoded once: a UTF-8 character may be split across two reads.
    const chunks = [];
    const onData = (d) => {
      const i = d.indexOf(10);
      chunks.push(i >= 0 ? d.subarray(0, i) : d);
      if (i >= 0) {
        sock.off("data", onData);
        sock.off("end", onEnd);
        resolve(Buffer.concat(chunks).toString("utf8"));
      }
    };
    const onEnd = () => resolve(null);
    sock.on("data", onData);
    sock.on("end", onEnd);
  });
}

/** A string without lone UTF-16 surrogates (a cut pair, or one in an error's message), each
 * replaced by U+FFFD: JSON.stringify escapes a lone one as \udXXX, which is not Unicode and
 * which fnbox serve refuses, failing the whole answer. */
const wellFormed = (s) =>
  s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");

/** One line of the zygote protocol to fnbox serve. */
const answer = (sock, event, fields = {}) =>
  new Promise((resolve) => sock.write(JSON.stringify({ v: PROTOCOL, event, ...fields }) + "\n", resolve));

/** The bind request, in this wrapper's version of the protocol (or the zygote ends, saying why:
 * fnbox serve reads its "fnbox: " line as the reason). */
function bindRequest(line) {
  const req = JSON.parse(line);
  if (req.v !== PROTOCOL || req.op !== "bind") {
    // Not the line itself: it holds the function's secrets.
    const said = (x) => JSON.stringify(String(x).slice(0, 20));
    console.error(`fnbox: the Node runtime speaks version ${PROTOCOL} of the zygote protocol and was sent a ` +
      `${said(req.op)} request of version ${said(req.v)}: fnbox serve and its runtime wrappers must come from one fnbox installation`);
    process.exit(1);
  }
  return req;
}

/** Runs the paths a cold start takes once, before any function is bound: a handler import
 * (the CommonJS loader behind import()) and a request through the server (the HTTP parser,
 * makeEvent, call, toResponse). V8 compiles them lazily, at a cost of tens of milliseconds
 * that the bound instance would otherwise pay under its CPU quota. */
async function warmUp(instance) {
  const cwd = process.cwd();
  process.chdir(path.dirname(new URL(import.meta.url).pathname));
  const loaded = await loadOrExplain("warmup.handle");
  process.chdir(cwd);
  instance.handler = loaded.handler ?? (async () => "warm");
  instance.context = contextFromEnv();
  // Through a server of its own: the instance's socket is only the gateway's to connect to.
  const server = makeServer(instance);
  const up = await new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(WARM_SOCK, () => resolve(true));
  });
  if (up) await new Promise((resolve) => {
    const body = JSON.stringify({ warm: true });
    const headers = { "Content-Type": "application/json", "Content-Length": body.length, Connection: "close" };
    const req = http.request({ socketPath: WARM_SOCK, path: "/warm?up=1", method: "POST", headers, agent: false }, (res) => {
      res.resume();
      res.on("end", resolve);
      res.on("error", resolve);
    });
    req.on("error", resolve);
    req.end(body);
  });
  server.close();
  instance.handler = null;
}

async function zygote(warm) {
  const ctl = new net.Socket({ fd: 0, readable: true, writable: true });
  const instance = { handler: null, context: null };
  const server = makeServer(instance);
  await listen(server);
  if (warm) await warmUp(instance);
  await answer(ctl, "ready", { started: T0 });
  const line = await readLine(ctl);
  if (line === null) process.exit(0); // fnbox serve let this sandbox go unused
  const bound = now();
  const req = bindRequest(line);
  let loaded;
  try {
    Object.assign(process.env, req.env);
    process.chdir(req.workdir);
    loaded = await loadOrExplain(req.handler);
  } catch (e) {
    loaded = { reason: describe(e), detail: String(e && e.stack) };
  }
  if (!loaded.handler) {
    const reason = wellFormed(String(loaded.reason).slice(0, REASON_MAX));
    await answer(ctl, "error", { reason, detail: wellFormed(String(loaded.detail).slice(-DETAIL_MAX)) });
    process.exit(1);
  }
  if (req.check) {
    await answer(ctl, "checked");
    process.exit(0);
  }
  instance.handler = loaded.handler;
  instance.context = contextFromEnv();
  // Node cannot fork: the instance's process is the zygote, from the request's receipt on.
  await answer(ctl, "bound", { received: bound, forked: bound, imported: now() });
  // The control socket stays open (so descriptor 0 is not reused) but unread: fnbox serve
  // closes its end, and the handler reads end of file on stdin, as from /dev/null.
  ctl.pause();
  ctl.unref();
}

async function main() {
  if (process.argv[2] === "--zygote") return zygote(process.argv.includes("--warm-up"));
  const loaded = await loadOrExplain(process.argv[process.argv.length - 1]);
  if (!loaded.handler) {
    console.error(`fnbox: ${loaded.reason}`);
    process.exit(1);
  }
  await listen(makeServer({ handler: loaded.handler, context: contextFromEnv() }));
}

main();
