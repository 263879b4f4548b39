"""The Python probe of the differential contract suite (platform_scaleway.rs): the same file
is served by fnbox and by Scaleway's local framework. The first part of the path says what
to return."""
import base64
import json


def multipart(body, content_type):
    """[name, filename, content] of each part: as little as a handler's own parser does."""
    boundary = "--" + content_type.split("boundary=", 1)[1].strip('"')
    out = []
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith("--"):
            break
        head, _, content = chunk[2:-2].partition("\r\n\r\n")
        disposition = [l for l in head.split("\r\n") if l.lower().startswith("content-disposition")][0]
        fields = dict(p.strip().split("=", 1) for p in disposition.split(";")[1:])
        out.append([fields.get("name", "").strip('"'), fields.get("filename", "").strip('"'), content])
    return out


def as_json(value):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(value)}


def handle(event, context):
    kind = event["path"].strip("/").split("/")[0] or "event"
    headers = event["headers"]
    if kind == "event":
        seen = {"content_type": headers.get("Content-Type"), "probe": headers.get("X-Probe")}
        return as_json({"event": event, "context": context, "seen": seen})
    if kind == "anycase":
        return as_json({
            "lookups": [headers["content-type"], headers["CONTENT-TYPE"], headers.get("x-probe"), "x-probe" in headers],
            "keys": list(headers),
            "multi_header": event["multiValueHeaders"]["x-multi"],
            "multi_query": event["multiValueQueryStringParameters"],
        })
    if kind == "record":
        return {"body": "Hello", "headers": {"Content-Type": ["text/plain"], "X-Multi": ["one", "two"]}}
    if kind == "status":
        return {"statusCode": 201, "body": "made"}
    if kind == "json-body":
        return {"statusCode": 200, "body": {"message": "hello world"}}
    if kind == "dict":
        return {"message": "hello world"}
    if kind == "string":
        return "my Message"
    if kind == "base64":
        return {"body": base64.b64encode(b"\x00\x01binary\xff").decode(), "isBase64Encoded": True,
                "headers": {"Content-Type": "application/octet-stream"}}
    if kind == "cors":
        return {"body": "own", "headers": {"Access-Control-Allow-Origin": "https://example.com"}}
    if kind == "upload":
        return as_json(multipart(event["body"], headers.get("Content-Type")))
    return {"statusCode": 404, "body": f"no probe {kind}"}
