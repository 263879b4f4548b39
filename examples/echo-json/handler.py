import base64
import json


def handle(event, context):
    """Answers with what the function was given, as JSON."""
    body = event["body"]
    if event["isBase64Encoded"]:
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return {"statusCode": 400, "body": {"error": "the body is not JSON"}}
    return {
        "method": event["httpMethod"],
        "path": event["path"],
        "query": event["queryStringParameters"],
        "json": parsed,
        "request_id": event["headers"].get("X-Request-Id") or event["headers"].get("x-request-id"),
        "function": context["functionName"],
        "memory_mb": context["memoryLimitInMb"],
    }
