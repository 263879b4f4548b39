// fnbox's Node runtime: serves a Scaleway-style handler over HTTP/1.1 on a Unix socket.
//
// handle(event, context, callback): the result is the return value, a Promise, or the
// callback's second argument: {statusCode, headers, body, isBase64Encoded} | string | object.
const T0 = Number(process.hrtime.bigint()) / 1e9;

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const MAX_BODY = 6 << 20;
const SOCK = process.env.FNBOX_SOCKET || "/run/fnbox/fn.sock";
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

function makeEvent(req, body) {
  const url = new URL(req.url, "http://fnbox");
  const headers = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers[req.rawHeaders[i]] = req.rawHeaders[i + 1];
  const text = body.toString("utf8");
  const binary = !Buffer.from(text, "utf8").equals(body);
  return {
    resource: "",
    path: url.pathname,
    httpMethod: req.method,
    headers,
    multiValueHeaders: null,
    queryStringParameters: Object.fromEntries(url.searchParams),
    multiValueQueryStringParameters: null,
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

function toResponse(result) {
  if (result && typeof result === "object" && !Buffer.isBuffer(result) && "statusCode" in result) {
    const headers = { ...(result.headers || {}) };
    let body = result.body ?? "";
    if (typeof body === "object" && !Buffer.isBuffer(body)) {
      body = Buffer.from(JSON.stringify(body));
      headers["Content-Type"] ??= "application/json";
    } else if (Buffer.isBuffer(body)) {
      // as is
    } else if (result.isBase64Encoded) body = Buffer.from(String(body), "base64");
    else body = Buffer.from(String(body));
    if (!Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) headers["Content-Type"] = "text/plain; charset=utf-8";
    return [Number(result.statusCode) || 200, headers, body];
  }
  if (result === undefined || result === null) return [200, {}, Buffer.alloc(0)];
  if (Buffer.isBuffer(result)) return [200, { "Content-Type": "application/octet-stream" }, result];
  if (typeof result === "string") return [200, { "Content-Type": "text/plain; charset=utf-8" }, Buffer.from(result)];
  return [200, { "Content-Type": "application/json" }, Buffer.from(JSON.stringify(result))];
}

async function main() {
  const check = process.argv[2] === "--check";
  const spec = process.argv[process.argv.length - 1];
  let handler;
  try {
    handler = await loadHandler(spec);
  } catch (e) {
    if (e instanceof LookupError) console.error(`fnbox: ${e.message}`);
    else {
      console.error(e);
      console.error(`fnbox: ${e && e.name ? e.name + ": " : ""}${e && e.message ? e.message : e}`);
    }
    process.exit(1);
  }
  if (check) return;
  const imported = now();
  const context = {
    memoryLimitInMb: Number(process.env.FNBOX_MEMORY_MB || 0),
    functionName: process.env.FNBOX_FUNCTION_NAME || "",
    functionVersion: process.env.FNBOX_FUNCTION_VERSION || "",
  };
  const server = http.createServer((req, res) => {
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
        [status, headers, body] = toResponse(await call(handler, makeEvent(req, Buffer.concat(chunks)), context));
      } catch (e) {
        console.error(e);
        status = 500;
        headers = { "Content-Type": "application/json" };
        body = Buffer.from(JSON.stringify({ error: `${e && e.name ? e.name : "Error"}: ${e && e.message ? e.message : e}`, type: "handler_error" }));
      }
      headers["Content-Length"] = body.length;
      res.writeHead(status, headers).end(body);
    });
  });
  // The gateway keeps its connections open between requests: never time them out here.
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  const tcp = process.env.FNBOX_LISTEN_TCP;
  if (tcp) {
    const i = tcp.lastIndexOf(":");
    server.listen(Number(tcp.slice(i + 1)), tcp.slice(0, i));
    return;
  }
  const tmp = SOCK + ".tmp";
  fs.rmSync(tmp, { force: true });
  server.listen(tmp, () => {
    const ready = path.join(path.dirname(SOCK), "ready.json");
    fs.writeFileSync(ready + ".tmp", JSON.stringify({ started: T0, imported, listening: now() }));
    fs.renameSync(ready + ".tmp", ready);
    fs.renameSync(tmp, SOCK);
  });
}

main();
