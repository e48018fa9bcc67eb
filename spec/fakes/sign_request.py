"""Signs and sends one request to a fake cloud, written apart from the fakes' verifiers (and
from myapiserver's Lua signers) so that a bug in one cannot hide a bug in the other.

    sign_request.py aws URL --key AK --secret S [--token T] --region R [--service ec2]
                    [--param Name=Value ...] [--method POST|GET] [--time-offset SEC]
                    [--unsigned-token] [--no-token-header] [--no-auth] [--tamper signature|body|date]
                    [--header 'Name: value' ...] [--timeout SEC]
    sign_request.py tc3 URL --secret-id ID --secret-key K [--token T] --action A --version V
                    [--region R] [--service cvm] --body JSON [--time-offset SEC] [--skip-auth]
                    [--sign-header name ...] [--tamper signature|body] [--timeout SEC]
    sign_request.py get URL [--header 'Name: value' ...] [--timeout SEC]
    sign_request.py --self-test [VECTOR_DIR]    # reproduce the published signatures

Prints one JSON object: status (null without an HTTP answer), body, headers, error
("timeout", "reset", "closed", "refused" or null), elapsed (seconds), sent (request headers).
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse


def _quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _mac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


# ------------------------------------------------------------------ AWS SigV4 (signing side)

def aws_sign(method, path, query, headers, body, key, secret, region, service, stamp, token=None,
             sign_token=True):
    """headers: dict name -> value (must include Host). stamp: 'YYYYMMDDTHHMMSSZ'.
    Returns the headers to add: X-Amz-Date, Authorization (+ X-Amz-Security-Token)."""
    add = {"X-Amz-Date": stamp}
    to_sign = dict(headers)
    to_sign["X-Amz-Date"] = stamp
    if token and sign_token:
        to_sign["X-Amz-Security-Token"] = token
    canon = {}
    for name, value in to_sign.items():
        canon[name.lower()] = " ".join(str(value).split())
    names = sorted(canon)
    query_items = []
    for item in filter(None, query.split("&")):
        k, _, v = item.partition("=")
        query_items.append((_quote(urllib.parse.unquote(k)), _quote(urllib.parse.unquote(v))))
    canonical = "\n".join([
        method,
        path or "/",
        "&".join(k + "=" + v for k, v in sorted(query_items)),
        "".join(n + ":" + canon[n] + "\n" for n in names),
        ";".join(names),
        _sha(body),
    ])
    day = stamp[:8]
    scope = "/".join([day, region, service, "aws4_request"])
    to_sign_text = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (stamp, scope, _sha(canonical.encode()))
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = _mac(k, part)
    signature = hmac.new(k, to_sign_text.encode(), hashlib.sha256).hexdigest()
    add["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key, scope, ";".join(names), signature)
    if token:
        add["X-Amz-Security-Token"] = token
    return add, signature


# ------------------------------------------------------------------ Tencent TC3 (signing side)

def tc3_sign(headers, body, secret_id, secret_key, service, timestamp, signed_names=("content-type", "host")):
    names = sorted(set(n.lower() for n in signed_names))
    lower = {n.lower(): v for n, v in headers.items()}
    canonical = "POST\n/\n\n" + "".join("%s:%s\n" % (n, lower[n].strip().lower()) for n in names) + "\n" + \
        ";".join(names) + "\n" + _sha(body)
    day = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    scope = "%s/%s/tc3_request" % (day, service)
    text = "TC3-HMAC-SHA256\n%d\n%s\n%s" % (timestamp, scope, _sha(canonical.encode()))
    k = _mac(("TC3" + secret_key).encode(), day)
    k = _mac(k, service)
    k = _mac(k, "tc3_request")
    signature = hmac.new(k, text.encode(), hashlib.sha256).hexdigest()
    return "TC3-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        secret_id, scope, ";".join(names), signature), signature


# ------------------------------------------------------------------ sending

def send(url, method, path_and_query, headers, body, timeout):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    started = time.time()
    result = {"status": None, "body": None, "headers": {}, "error": None,
              "sent": {k: ("<redacted>" if k.lower() in ("x-amz-security-token", "x-tc-token") else v)
                       for k, v in headers.items()}}
    try:
        conn.putrequest(method, path_and_query, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        result["status"] = resp.status
        result["headers"] = {k.lower(): v for k, v in resp.getheaders()}
        result["body"] = resp.read().decode("utf-8", "replace")
    except socket.timeout:
        result["error"] = "timeout"
    except http.client.RemoteDisconnected:
        result["error"] = "closed"
    except ConnectionRefusedError:
        result["error"] = "refused"
    except ConnectionResetError:
        result["error"] = "reset"
    except (OSError, http.client.HTTPException) as exc:
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        conn.close()
    result["elapsed"] = round(time.time() - started, 3)
    return result


def host_of(url):
    parts = urllib.parse.urlsplit(url)
    return parts.netloc


def extra_headers(items):
    out = {}
    for item in items or []:
        name, _, value = item.partition(":")
        out[name.strip()] = value.strip()
    return out


def cmd_aws(a):
    now = time.time() + a.time_offset
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    params = "&".join(_quote(k) + "=" + _quote(v) for k, _, v in (p.partition("=") for p in a.param))
    path = urllib.parse.urlsplit(a.url).path or "/"
    headers = {"Host": host_of(a.url)}
    if a.method == "POST":
        body, query = params.encode(), ""
        headers["Content-Type"] = a.content_type
    else:
        body, query = b"", params
    headers.update(extra_headers(a.header))
    if not a.no_auth:
        add, _ = aws_sign(a.method, path, query, headers, body, a.key, a.secret, a.region, a.service, stamp,
                          token=a.token, sign_token=not a.unsigned_token)
        if a.no_token_header:
            add.pop("X-Amz-Security-Token", None)
        if a.tamper == "signature":
            add["Authorization"] = add["Authorization"][:-1] + ("0" if add["Authorization"][-1] != "0" else "1")
        elif a.tamper == "date":
            add["X-Amz-Date"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + 1))
        headers.update(add)
    if a.tamper == "body":
        body = body + b"&X=1"
    if body:
        headers["Content-Length"] = str(len(body))
    return send(a.url, a.method, path + ("?" + query if query else ""), headers, body, a.timeout)


def cmd_tc3(a):
    ts = int(time.time() + a.time_offset)
    body = a.body.encode("utf-8")
    headers = {"Host": host_of(a.url), "Content-Type": a.content_type, "X-TC-Action": a.action,
               "X-TC-Version": a.version, "X-TC-Timestamp": str(ts)}
    if a.region:
        headers["X-TC-Region"] = a.region
    if a.token:
        headers["X-TC-Token"] = a.token
    if a.skip_auth:
        headers["Authorization"] = "SKIP"
    else:
        names = ["content-type", "host"] + [n.lower() for n in a.sign_header]
        auth, _ = tc3_sign(headers, body, a.secret_id, a.secret_key, a.service, ts, names)
        if a.tamper == "signature":
            auth = auth[:-1] + ("0" if auth[-1] != "0" else "1")
        headers["Authorization"] = auth
    if a.tamper == "body":
        body = body + b" "
    headers["Content-Length"] = str(len(body))
    return send(a.url, "POST", "/", headers, body, a.timeout)


def cmd_get(a):
    parts = urllib.parse.urlsplit(a.url)
    headers = {"Host": parts.netloc}
    headers.update(extra_headers(a.header))
    return send(a.url, "GET", (parts.path or "/") + ("?" + parts.query if parts.query else ""), headers, b"",
                a.timeout)


# ------------------------------------------------------------------ self-test against vectors

def parse_request_file(data):
    head, _, body = data.partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line.strip():
            name, _, value = line.partition(":")
            headers[name] = value.strip()
    return method, target, headers, body


def self_test(vector_dir):
    if not vector_dir:
        here = os.path.dirname(os.path.abspath(__file__))
        vector_dir = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "testvectors"))
    failures, count = 0, 0
    root = os.path.join(vector_dir, "aws-sigv4")
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, "context.json")):
            continue
        ctx = json.load(open(os.path.join(d, "context.json")))
        method, target, headers, body = parse_request_file(open(os.path.join(d, "request.txt"), "rb").read())
        path, _, query = target.partition("?")
        if ctx.get("sign_body"):
            headers["x-amz-content-sha256"] = _sha(body)
        ts = ctx["timestamp"]
        stamp = ts.replace("-", "").replace(":", "")
        c = ctx["credentials"]
        _, sig = aws_sign(method, path, query, headers, body, c["access_key_id"], c["secret_access_key"],
                          ctx["region"], ctx["service"], stamp, token=c.get("token"),
                          sign_token=not ctx.get("omit_session_token"))
        want = open(os.path.join(d, "header-signature.txt")).read().strip()
        count += 1
        if sig != want:
            failures += 1
            print("FAIL aws %s: %s != %s" % (name, sig, want))
    legacy = os.path.join(root, "legacy-aws-sig-v4-test-suite")
    for name in sorted(os.listdir(legacy)):
        data = open(os.path.join(legacy, name, name + ".req"), "rb").read()
        method, target, headers, body = parse_request_file(data)
        stamp = headers.pop("X-Amz-Date")
        token = headers.pop("X-Amz-Security-Token", None)
        path, _, query = target.partition("?")
        _, sig = aws_sign(method, path, query, headers, body, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          "us-east-1", "service", stamp, token=token)
        want = open(os.path.join(legacy, name, name + ".authz")).read().strip().rsplit("=", 1)[1]
        count += 1
        if sig != want:
            failures += 1
            print("FAIL aws legacy %s: %s != %s" % (name, sig, want))
    doc = json.load(open(os.path.join(vector_dir, "tencent-tc3.json")))
    base = doc["vectors"][0]["inputs"]
    for vec in doc["vectors"]:
        inp = dict(base, **vec["inputs"])
        headers = {"Content-Type": inp["content_type"], "Host": inp["host"]}
        auth, sig = tc3_sign(headers, inp["payload"].encode(), inp["SecretId"], inp["SecretKey"], inp["service"],
                             inp["timestamp"])
        count += 1
        if auth != vec["expected"]["authorization"]:
            failures += 1
            print("FAIL tc3 %s: %s" % (vec["name"], auth))
    print("sign_request self-test: %d signatures, %d failures" % (count, failures))
    return 1 if failures else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--self-test":
        sys.exit(self_test(sys.argv[2] if len(sys.argv) > 2 else None))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for name in ("aws", "tc3", "get"):
        s = sub.add_parser(name)
        s.add_argument("url")
        s.add_argument("--timeout", type=float, default=10)
        s.add_argument("--header", action="append", default=[])
        s.add_argument("--time-offset", type=float, default=0)
        s.add_argument("--tamper", choices=["signature", "body", "date"])
        s.add_argument("--token")
        if name == "aws":
            s.add_argument("--key")
            s.add_argument("--secret")
            s.add_argument("--region", default="us-east-1")
            s.add_argument("--service", default="ec2")
            s.add_argument("--param", action="append", default=[])
            s.add_argument("--method", default="POST", choices=["POST", "GET"])
            s.add_argument("--content-type", default="application/x-www-form-urlencoded; charset=utf-8")
            s.add_argument("--unsigned-token", action="store_true")
            s.add_argument("--no-token-header", action="store_true")
            s.add_argument("--no-auth", action="store_true")
        elif name == "tc3":
            s.add_argument("--secret-id")
            s.add_argument("--secret-key")
            s.add_argument("--action", required=True)
            s.add_argument("--version", default="2017-03-12")
            s.add_argument("--region")
            s.add_argument("--service", default="cvm")
            s.add_argument("--body", default="{}")
            s.add_argument("--content-type", default="application/json; charset=utf-8")
            s.add_argument("--skip-auth", action="store_true")
            s.add_argument("--sign-header", action="append", default=[])
    a = p.parse_args()
    result = {"aws": cmd_aws, "tc3": cmd_tc3, "get": cmd_get}[a.kind](a)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
