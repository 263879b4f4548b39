// The Node probe of the differential contract suite (platform_scaleway.rs): the same file is
// served by fnbox and by Scaleway's local framework. The first part of the path says what to
// return.

/** [name, filename, content] of each part: as little as a handler's own parser does. */
function multipart(body, contentType) {
  const boundary = "--" + contentType.split("boundary=")[1].replace(/"/g, "");
  const out = [];
  for (const chunk of body.split(boundary).slice(1)) {
    if (chunk.startsWith("--")) break;
    const inner = chunk.slice(2, -2);
    const i = inner.indexOf("\r\n\r\n");
    const head = inner.slice(0, i);
    const content = inner.slice(i + 4);
    const disposition = head.split("\r\n").find((l) => l.toLowerCase().startsWith("content-disposition"));
    const fields = Object.fromEntries(disposition.split(";").slice(1).map((p) => p.trim().split("=")));
    out.push([(fields.name || "").replace(/"/g, ""), (fields.filename || "").replace(/"/g, ""), content]);
  }
  return out;
}

const asJson = (value) => ({ statusCode: 200, headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) });

exports.handle = async (event, context) => {
  const kind = event.path.replace(/^\/+/, "").split("/")[0] || "event";
  const headers = event.headers;
  switch (kind) {
    case "event":
      return asJson({ event, context, seen: { content_type: headers["content-type"], probe: headers["x-probe"] } });
    case "anycase":
      return asJson({
        lookups: [headers["content-type"], headers["CONTENT-TYPE"], headers["X-Probe"], "x-probe" in headers],
        keys: Object.keys(headers),
        multi_header: event.multiValueHeaders["x-multi"],
        multi_query: event.multiValueQueryStringParameters,
      });
    case "record":
      return { body: "Hello", headers: { "Content-Type": ["text/plain"], "X-Multi": ["one", "two"] } };
    case "status":
      return { statusCode: 201, body: "made" };
    case "json-body":
      return { statusCode: 200, body: { message: "hello world" } };
    case "dict":
      return { message: "hello world" };
    case "string":
      return "my Message";
    case "base64":
      return {
        body: Buffer.from([0, 1, ...Buffer.from("binary"), 255]).toString("base64"),
        isBase64Encoded: true,
        headers: { "Content-Type": "application/octet-stream" },
      };
    case "cors":
      return { body: "own", headers: { "Access-Control-Allow-Origin": "https://example.com" } };
    case "upload":
      return asJson(multipart(event.body, headers["content-type"]));
    default:
      return { statusCode: 404, body: `no probe ${kind}` };
  }
};
