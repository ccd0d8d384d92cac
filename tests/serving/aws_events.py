"""Real Lambda event shapes (as documented by AWS) for API Gateway REST v1, HTTP API v2 and
Function URLs, carrying a given request. Used to drive the handler exactly as Lambda does."""

from __future__ import annotations

import base64
from typing import Any

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def _body(body: bytes | str | None, b64: bool) -> tuple[str | None, bool]:
    if body is None:
        return None, False
    if b64:
        raw = body.encode() if isinstance(body, str) else body
        return base64.b64encode(raw).decode("ascii"), True
    return (body.decode("utf-8") if isinstance(body, bytes) else body), False


def v1_event(
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    b64: bool = True,
    query: dict[str, str] | None = None,
    stage: str = "dev",
) -> dict[str, Any]:
    """API Gateway REST API (Lambda proxy integration, payload 1.0)."""
    headers = {
        "Accept": "*/*",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "insomnia/2023.5.8",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    text, encoded = _body(body, b64)
    return {
        "resource": "/{proxy+}" if path != "/" else "/",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/",
            "httpMethod": method,
            "extendedRequestId": "JJbxmHEHoAMFnfA=",
            "requestTime": "10/Mar/2020:00:03:59 +0000",
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1583798639428,
            "requestId": REQUEST_ID,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": headers["User-Agent"]},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def v2_event(
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    b64: bool = True,
    query: dict[str, str] | None = None,
    stage: str = "$default",
    function_url: bool = False,
) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0); with function_url=True a Lambda Function URL event
    (same format; routeKey/stage are $default and the domain is a lambda-url one)."""
    headers = {
        "accept": "*/*",
        "user-agent": "insomnia/2023.5.8",
        "x-forwarded-proto": "https",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    domain = (
        "abcdefg.lambda-url.us-east-1.on.aws"
        if function_url
        else "r3pmxmplak.execute-api.us-east-1.amazonaws.com"
    )
    headers["host"] = domain
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    text, encoded = _body(body, b64)
    qs = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default" if function_url else f"ANY {path}",
        "rawPath": raw_path,
        "rawQueryString": qs,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012" if not function_url else "anonymous",
            "apiId": "r3pmxmplak",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": headers["user-agent"],
            },
            "requestId": REQUEST_ID,
            "routeKey": "$default",
            "stage": stage,
            "time": "10/Mar/2020:05:16:23 +0000",
            "timeEpoch": 1583817383220,
        },
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = query
    if text is not None:
        event["body"] = text
    return event
