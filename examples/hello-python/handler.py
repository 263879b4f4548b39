def handle(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain"},
        "body": f"hello, {name}, from python\n",
    }
