"""A handler the Python zygote loads and calls once before any function is bound (see
warm_up in wrapper.py): the first import and request of a real function then find their code
paths already run."""


def handle(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "warm"}
