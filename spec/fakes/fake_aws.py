"""A fake AWS for specs: EC2 Query API (RebootInstances, DescribeInstances) with SigV4
verification, STS AssumeRoleWithWebIdentity (IRSA) and the EKS Pod Identity agent.

    python3 spec/fakes/fake_aws.py --config FILE [--lifetime 900]
    python3 spec/fakes/fake_aws.py --self-test [VECTOR_DIR]   # SigV4 verifier vs published vectors

Prints {"port": N, "control_port": M, "pid": P[, "pod_identity_port": Q]} when ready.
Written from ../shared/docs/cloud-apis.md section 1, not from myapiserver's signer.
See spec/fakes/README.md ("Fake cloud APIs").
"""

import base64
import hashlib
import hmac
import json
import os
import random
import re
import string
import sys
import time
import urllib.parse
from xml.sax.saxutils import escape

sys.dont_write_bytecode = True  # keep spec/fakes free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloud_common as cc  # noqa: E402

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
EC2_ACTIONS = {"RebootInstances", "DescribeInstances"}
STS_UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity"}
INSTANCE_ID = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$")
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
# Default HTTP status for a fault that names only a code.
FAULT_STATUS = {"RequestLimitExceeded": 503, "Unavailable": 503, "ServiceUnavailable": 503,
                "InternalError": 500, "InternalFailure": 500, "Throttling": 400, "RequestExpired": 400}

DEFAULT_SETTINGS = {
    "max_skew": 300,             # seconds X-Amz-Date may be off the fake's clock
    "clock_offset": 0,           # the fake's clock = real time + this
    "sts_expiry_seconds": 3600,  # lifetime of STS credentials when DurationSeconds is absent
    "dry_run_checks_instances": True,
    "expired_token_code": "RequestExpired",   # EC2's answer for expired temporary credentials
    "endpoint_region": None,     # when set, the scope region must be this (one regional endpoint)
}


# --------------------------------------------------------------------------- SigV4 (verifier)

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def uri_encode(raw):
    """RFC 3986 encoding of bytes: unreserved kept, everything else %XX upper-case."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in raw)


def canonical_uri(raw_path):
    """Non-S3 rule: remove dot segments and empty segments, encode each segment as received."""
    if not raw_path or raw_path == b"/":
        return "/"
    out = []
    for seg in raw_path.split(b"/")[1:]:
        if seg in (b"", b"."):
            continue
        if seg == b"..":
            if out:
                out.pop()
            continue
        out.append(seg)
    path = "/" + "/".join(uri_encode(s) for s in out)
    if raw_path.endswith(b"/") and out:
        path += "/"
    return path


def canonical_query(raw_query):
    pairs = []
    for part in raw_query.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        pairs.append((uri_encode(urllib.parse.unquote_to_bytes(key)),
                      uri_encode(urllib.parse.unquote_to_bytes(value))))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def canonical_headers(headers, signed):
    """name:value lines for the signed names, in the listed order; values trimmed, runs of
    spaces collapsed, repeated headers joined with ','."""
    values = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(re.sub(" +", " ", value.strip()))
    return "".join("%s:%s\n" % (name, ",".join(values.get(name, []))) for name in signed)


def hmac256(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = hmac256(("AWS4" + secret).encode("utf-8"), date)
    k = hmac256(k, region)
    k = hmac256(k, service)
    return hmac256(k, "aws4_request")


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)


def parse_authorization(value):
    m = AUTH_RE.match(value or "")
    if not m:
        return None
    fields = {}
    for part in m.group(1).split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key.strip()] = val.strip()
    if not all(k in fields for k in ("Credential", "SignedHeaders", "Signature")):
        return None
    return fields


def amz_date_to_unix(value):
    import calendar
    return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))


def verify_sigv4(method, raw_path, raw_query, headers, body, lookup, now, service, max_skew=300,
                 endpoint_region=None):
    """Verifies a header-signed SigV4 request. lookup(access_key) -> credential dict with
    'secret' (or None). Returns a dict: ok, code/status/message on failure, why (detail),
    access_key, region, service, date, signed_headers, canonical_request, string_to_sign, cred."""
    out = {"ok": False}

    def fail(status, code, message, why=None):
        out.update(status=status, code=code, message=message, why=why or message)
        return out

    hdr = {}
    for name, value in headers:
        hdr.setdefault(name.lower(), []).append(value)
    auth_value = ",".join(hdr.get("authorization", [])) or None
    if auth_value is None:
        return fail(401, "MissingAuthenticationToken",
                    "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
                    "no Authorization header")
    fields = parse_authorization(auth_value)
    if fields is None:
        return fail(400, "IncompleteSignature",
                    "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters "
                    "and the algorithm AWS4-HMAC-SHA256.", "malformed Authorization: %r" % auth_value[:80])
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        return fail(400, "IncompleteSignature", "Credential must have exactly 5 slash-delimited elements.")
    access_key, date, region, scope_service, terminator = scope
    signed = fields["SignedHeaders"].split(";")
    out.update(access_key=access_key, region=region, service=scope_service, date=date, signed_headers=signed)
    amz_date = ",".join(hdr.get("x-amz-date", [])) or None
    if amz_date is None:
        return fail(400, "IncompleteSignature", "Authorization header requires existence of X-Amz-Date.")
    try:
        signed_at = amz_date_to_unix(amz_date)
    except ValueError:
        return fail(400, "IncompleteSignature", "X-Amz-Date %r is not YYYYMMDD'T'HHMMSS'Z'." % amz_date)
    out["amz_date"] = amz_date
    if abs(now - signed_at) > max_skew:
        return fail(400, "RequestExpired",
                    "Request has expired. Timestamp date is %s, server time is %s." % (
                        amz_date, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))),
                    "X-Amz-Date %s is %+d s from the fake's clock (max %s)" % (amz_date, signed_at - now, max_skew))
    if "host" not in signed or "x-amz-date" not in signed:
        return fail(403, "SignatureDoesNotMatch",
                    "'Host' and 'X-Amz-Date' must be signed.", "SignedHeaders %s lacks host or x-amz-date" % signed)
    if date != amz_date[:8]:
        return fail(403, "SignatureDoesNotMatch",
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                    "'%s' != '%s', from '%s'." % (date, amz_date[:8], amz_date))
    if terminator != "aws4_request":
        return fail(403, "SignatureDoesNotMatch",
                    "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'." % terminator)
    if scope_service != service:
        return fail(403, "SignatureDoesNotMatch",
                    "Credential should be scoped to correct service: '%s'." % service)
    if not REGION.match(region) or (endpoint_region and region != endpoint_region):
        return fail(403, "SignatureDoesNotMatch",
                    "Credential should be scoped to a valid region, not '%s'." % region)
    cred = lookup(access_key)
    if cred is None:
        return fail(401, "AuthFailure", "AWS was not able to validate the provided access credentials",
                    "unknown access key %s" % access_key)
    out["cred"] = cred
    creq = "\n".join([method, canonical_uri(raw_path), canonical_query(raw_query),
                      canonical_headers(headers, signed), ";".join(signed), hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join(scope[1:]),
                     hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    want = hmac.new(signing_key(cred["secret"], date, region, scope_service), sts.encode("utf-8"),
                    hashlib.sha256).hexdigest()
    out.update(canonical_request=creq, string_to_sign=sts, expected_signature=want)
    if not hmac.compare_digest(want, fields["Signature"].lower()):
        return fail(403, "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided. "
                    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
                    "for details.", "signature mismatch (see canonical_request / string_to_sign)")
    out["ok"] = True
    out["token_signed"] = "x-amz-security-token" in signed
    return out


# --------------------------------------------------------------------------- XML answers

def ec2_error(status, code, message, rid):
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>%s</Code>"
            "<Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>"
            % (escape(code), escape(message), rid))
    return cc.Reply(status, body, "text/xml;charset=UTF-8", [("Server", "AmazonEC2")])


def sts_error(status, code, message, rid):
    kind = "Receiver" if status >= 500 else "Sender"
    body = ("<ErrorResponse xmlns=\"%s\">\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n"
            "    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n"
            % (STS_NS, kind, escape(code), escape(message), rid))
    return cc.Reply(status, body, "text/xml", [("x-amzn-RequestId", rid)])


def random_id(prefix, n, alphabet=string.ascii_uppercase + string.digits):
    return prefix + "".join(random.choice(alphabet) for _ in range(n))


# --------------------------------------------------------------------------- the fake

class FakeAws:
    def __init__(self, cfg):
        self.store = cc.Store(cfg, DEFAULT_SETTINGS)
        self.credentials = {}
        self.instances = {}
        self.roles = {}
        self.pod_identity = {}
        self.sts_calls = []
        self.ports = {}
        self.set_credentials(cfg.get("credentials") or {})
        self.set_instances(cfg.get("instances") or {})
        self.set_roles(cfg.get("roles") or {})
        self.set_pod_identity(cfg.get("pod_identity") or {})

    # ---- configuration
    def set_credentials(self, table, replace=True):
        with self.store.lock:
            if replace:
                self.credentials = {}
            for key, cred in table.items():
                cred = dict(cred)
                if "secret" not in cred:
                    raise ValueError("credential %s has no secret" % key)
                cred["expires"] = cc.parse_time(cred.get("expires"))
                cred.setdefault("account", "111122223333")
                cred.setdefault("source", "static")
                self.credentials[key] = cred

    def set_instances(self, table, replace=True):
        if isinstance(table, list):
            table = {i["id"]: i for i in table}
        with self.store.lock:
            if replace:
                self.instances = {}
            for iid, inst in table.items():
                inst = dict(inst)
                if "region" not in inst:
                    raise ValueError("instance %s has no region" % iid)
                inst.setdefault("state", "running")
                inst.setdefault("az", inst["region"] + "a")
                self.instances[iid] = inst

    def set_roles(self, table):
        with self.store.lock:
            self.roles = {}
            for arn, role in table.items():
                role = dict(role)
                tokens = role.get("tokens") or []
                if isinstance(tokens, list):
                    tokens = {t: {} for t in tokens}
                role["tokens"] = tokens
                m = re.match(r"^arn:aws[-a-z]*:iam::(\d{12}):role/(.+)$", arn)
                if not m:
                    raise ValueError("role ARN %r is not arn:aws:iam::<12 digits>:role/<name>" % arn)
                role.setdefault("account", m.group(1))
                role["name"] = m.group(2).rsplit("/", 1)[-1]
                self.roles[arn] = role

    def set_pod_identity(self, cfg):
        with self.store.lock:
            cfg = dict(cfg)
            cfg.setdefault("path", "/v1/credentials")
            cfg["tokens"] = dict(cfg.get("tokens") or {})
            self.pod_identity = cfg

    def issue(self, source, account, expiry_seconds, extra):
        now = self.store.now()
        key = random_id("ASIA", 16)
        cred = {
            "secret": random_id("", 40, string.ascii_letters + string.digits + "+/"),
            "session_token": base64.b64encode(os.urandom(96)).decode(),
            "account": account,
            "expires": now + float(expiry_seconds),
            "issued": now,
            "source": source,
        }
        cred.update({k: v for k, v in extra.items() if v is not None})
        with self.store.lock:
            self.credentials[key] = cred
        return key, cred

    # ---- request entry point
    def handle(self, req):
        entry = {"port": req.port, "method": req.method, "path": req.path,
                 "query": req.raw_query.decode("latin-1")}
        pod_path = self.pod_identity.get("path")
        if req.path == pod_path or (self.ports.get("pod_identity_port") == req.port):
            entry["action"] = "PodIdentity"
            entry["headers"] = cc.redact_headers(req.headers, {"authorization"})
            self.store.log(entry)
            reply = self.pod_identity_credentials(req, entry)
        else:
            entry["headers"] = cc.redact_headers(req.headers, {"x-amz-security-token", "authorization"})
            params = self.params(req)
            entry["params"] = {k: (cc.digest(v) if k == "WebIdentityToken" else v) for k, v in params.items()}
            action = params.get("Action")
            entry["action"] = action
            self.store.log(entry)
            reply = self.query_api(req, params, action, entry)
        entry["status"] = reply.status
        if reply.hang or reply.reset or reply.close:
            entry["status"] = None
        return reply

    @staticmethod
    def params(req):
        params = dict(req.query_params())
        if req.body and req.method == "POST":
            params.update(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        return params

    def fault_reply(self, fault, action, rid, shape):
        """The reply a fault asks for (None: answer normally, after the transport directives)."""
        if "body" in fault:
            reply = cc.Reply(int(fault.get("status", 200)), fault["body"],
                             fault.get("content_type", "text/xml;charset=UTF-8"))
        elif fault.get("code") or fault.get("status"):
            code = fault.get("code") or "InternalError"
            status = int(fault.get("status") or FAULT_STATUS.get(code, 400))
            message = fault.get("message") or {
                "RequestLimitExceeded": "Request limit exceeded.",
                "Unavailable": "The service is unavailable. Please try again shortly.",
                "InternalError": "An internal error has occurred",
            }.get(code, "Injected fault %s for %s" % (code, action))
            reply = shape(status, code, message, rid)
        else:
            return None
        for name, value in (fault.get("headers") or {}).items():
            reply.headers.append((name, str(value)))
        return reply

    def with_fault(self, action, entry, rid, shape, run):
        """Runs run() -> Reply under the fault table: a fault may delay/hang/reset/close,
        replace the answer, and with record_before_delay lets the action happen first."""
        fault = self.store.take_fault(action)
        if not fault:
            return run()
        entry["fault"] = {k: v for k, v in fault.items() if k != "body"}
        if fault.get("record_before_delay"):
            normal = run()
            override = self.fault_reply(fault, action, rid, shape)
            return cc.apply_transport(override or normal, fault)
        override = self.fault_reply(fault, action, rid, shape)
        if override is None:
            # transport-only fault (delay/hang/reset/close) before the action runs
            reply = cc.apply_transport(cc.Reply(), fault)
            if reply.delay and not (reply.hang or reply.reset or reply.close):
                time.sleep(reply.delay)
                return run()
            return reply
        return cc.apply_transport(override, fault)

    # ---- EC2 / STS query API
    def query_api(self, req, params, action, entry):
        rid = cc.request_id()
        entry["request_id"] = rid
        if action in STS_UNSIGNED_ACTIONS:
            return self.with_fault(action, entry, rid, sts_error,
                                   lambda: self.assume_role_with_web_identity(params, rid, entry))
        now = self.store.now()
        s = self.store.settings
        auth = verify_sigv4(req.method, req.raw_path, req.raw_query, req.headers, req.body,
                            self.credentials.get, now, "ec2", float(s["max_skew"]), s.get("endpoint_region"))
        entry["auth"] = {k: v for k, v in auth.items() if k not in ("cred", "expected_signature")}
        if not auth["ok"]:
            return ec2_error(auth["status"], auth["code"], auth["message"], rid)
        cred = auth["cred"]
        token = req.header("X-Amz-Security-Token")
        entry["auth"]["source"] = cred.get("source")
        if cred.get("session_token"):
            if token is None or not hmac.compare_digest(token, cred["session_token"]):
                entry["auth"].update(ok=False, why="temporary key without its session token" if token is None
                                     else "session token does not belong to this access key")
                return ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials",
                                 rid)
        elif token is not None:
            entry["auth"].update(ok=False, why="session token sent with a long-term access key")
            return ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials", rid)
        if cred.get("expires") is not None and now >= cred["expires"]:
            entry["auth"].update(ok=False, why="credentials expired at %s" % cc.iso8601(cred["expires"]))
            code = s.get("expired_token_code") or "RequestExpired"
            msg = "Request has expired." if code == "RequestExpired" else "The security token included in the " \
                "request is expired"
            return ec2_error(400, code, msg, rid)
        entry["access_key"] = auth["access_key"]
        region = auth["region"]
        if action is None:
            return ec2_error(400, "MissingAction", "The request must contain the parameter Action", rid)
        if action not in EC2_ACTIONS:
            return ec2_error(400, "InvalidAction", "The action %s is not valid for this web service." % action, rid)
        if not params.get("Version"):
            return ec2_error(400, "MissingParameter", "The request must contain the parameter Version", rid)
        entry["region"] = region
        if action == "RebootInstances":
            run = lambda: self.reboot_instances(params, region, auth["access_key"], cred, rid, entry)  # noqa: E731
        else:
            run = lambda: self.describe_instances(params, region, auth["access_key"], cred, rid)  # noqa: E731
        return self.with_fault(action, entry, rid, ec2_error, run)

    @staticmethod
    def instance_ids(params):
        ids = []
        n = 1
        while "InstanceId.%d" % n in params:
            ids.append(params["InstanceId.%d" % n])
            n += 1
        return ids

    def unauthorized(self, cred, access_key, action, region, ids):
        deny = cred.get("deny") or []
        if isinstance(deny, str):
            deny = [deny]
        allowed_regions = cred.get("allowed_regions")
        allowed_instances = cred.get("allowed_instances")
        bad = None
        if "*" in deny or action in deny or ("ec2:" + action) in deny:
            bad = ids[0] if ids else "*"
        elif allowed_regions and region not in allowed_regions:
            bad = ids[0] if ids else "*"
        elif allowed_instances is not None:
            bad = next((i for i in ids if i not in allowed_instances), None)
        if bad is None:
            return None
        who = cred.get("arn") or ("arn:aws:iam::%s:user/%s" % (cred.get("account"), access_key))
        encoded = base64.b64encode(os.urandom(48)).decode()
        return ("You are not authorized to perform this operation. User: %s is not authorized to perform: ec2:%s "
                "on resource: arn:aws:ec2:%s:%s:instance/%s because no identity-based policy allows the ec2:%s "
                "action. Encoded authorization failure message: %s"
                % (who, action, region, cred.get("account"), bad, action, encoded))

    def lookup(self, ids, region):
        """(found, missing): instances that exist in this region."""
        found, missing = [], []
        with self.store.lock:
            for iid in ids:
                inst = self.instances.get(iid)
                if inst is None or inst["region"] != region:
                    missing.append(iid)
                else:
                    found.append((iid, inst))
        return found, missing

    def reboot_instances(self, params, region, access_key, cred, rid, entry):
        ids = self.instance_ids(params)
        if not ids:
            return ec2_error(400, "MissingParameter", "The request must contain the parameter InstanceId", rid)
        malformed = [i for i in ids if not INSTANCE_ID.match(i)]
        if malformed:
            return ec2_error(400, "InvalidInstanceID.Malformed",
                             "Invalid id: \"%s\" (expecting \"i-...\")" % malformed[0], rid)
        denied = self.unauthorized(cred, access_key, "RebootInstances", region, ids)
        if denied:
            return ec2_error(403, "UnauthorizedOperation", denied, rid)
        dry_run = (params.get("DryRun") or "").lower() == "true"
        found, missing = self.lookup(ids, region)
        if missing and (not dry_run or self.store.settings.get("dry_run_checks_instances")):
            if len(missing) == 1:
                msg = "The instance ID '%s' does not exist" % missing[0]
            else:
                msg = "The instance IDs '%s' do not exist" % ", ".join(missing)
            return ec2_error(400, "InvalidInstanceID.NotFound", msg, rid)
        if dry_run:
            entry["dry_run"] = True
            return ec2_error(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", rid)
        for iid, inst in found:
            if inst.get("reboot_error"):
                err = inst["reboot_error"]
                return ec2_error(int(err.get("status", 400)), err.get("code", "IncorrectState"),
                                 err.get("message", "The instance '%s' is not in a state from which it can be "
                                         "rebooted." % iid), rid)
            if inst["state"] not in ("running", "terminated"):
                return ec2_error(400, "IncorrectState",
                                 "The instance '%s' is not in a state from which it can be rebooted." % iid, rid)
        now = self.store.now()
        with self.store.lock:
            for iid, inst in found:
                if inst["state"] == "terminated":
                    entry.setdefault("ignored", []).append(iid)  # AWS ignores reboots of terminated instances
                    continue
                self.store.reboots.append({
                    "instance": iid, "region": region, "access_key": access_key, "account": cred.get("account"),
                    "source": cred.get("source"), "role_arn": cred.get("role_arn"), "time": now,
                    "time_iso": cc.iso8601(now), "request_id": rid, "action": "RebootInstances",
                })
                inst["reboots"] = inst.get("reboots", 0) + 1
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<RebootInstancesResponse xmlns=\"%s\">"
                "<requestId>%s</requestId><return>true</return></RebootInstancesResponse>" % (EC2_NS, rid))
        return cc.Reply(200, body, "text/xml;charset=UTF-8", [("Server", "AmazonEC2")])

    def describe_instances(self, params, region, access_key, cred, rid):
        ids = self.instance_ids(params)
        malformed = [i for i in ids if not INSTANCE_ID.match(i)]
        if malformed:
            return ec2_error(400, "InvalidInstanceID.Malformed",
                             "Invalid id: \"%s\" (expecting \"i-...\")" % malformed[0], rid)
        denied = self.unauthorized(cred, access_key, "DescribeInstances", region, ids)
        if denied:
            return ec2_error(403, "UnauthorizedOperation", denied, rid)
        if (params.get("DryRun") or "").lower() == "true":
            return ec2_error(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", rid)
        if ids:
            found, missing = self.lookup(ids, region)
            if missing:
                return ec2_error(400, "InvalidInstanceID.NotFound",
                                 "The instance ID '%s' does not exist" % "', '".join(missing), rid)
        else:
            with self.store.lock:
                found = [(i, x) for i, x in sorted(self.instances.items()) if x["region"] == region]
        items = []
        for iid, inst in found:
            items.append(
                "<item><reservationId>r-%s</reservationId><ownerId>%s</ownerId><groupSet/><instancesSet><item>"
                "<instanceId>%s</instanceId><instanceState><code>%d</code><name>%s</name></instanceState>"
                "<placement><availabilityZone>%s</availabilityZone></placement></item></instancesSet></item>"
                % (iid[2:], cred.get("account"), iid, STATE_CODES.get(inst["state"], 16), inst["state"],
                   inst["az"]))
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"%s\">"
                "<requestId>%s</requestId><reservationSet>%s</reservationSet></DescribeInstancesResponse>"
                % (EC2_NS, rid, "".join(items)))
        return cc.Reply(200, body, "text/xml;charset=UTF-8", [("Server", "AmazonEC2")])

    # ---- STS AssumeRoleWithWebIdentity (unsigned)
    def assume_role_with_web_identity(self, params, rid, entry):
        call = {"kind": "AssumeRoleWithWebIdentity", "time": time.time(), "request_id": rid,
                "role_arn": params.get("RoleArn"), "session_name": params.get("RoleSessionName"),
                "token_digest": cc.digest(params.get("WebIdentityToken")),
                "duration": params.get("DurationSeconds")}
        with self.store.lock:
            self.sts_calls.append(call)
        reply = self.assume_role_inner(params, rid, call)
        call["status"] = reply.status
        entry["sts_call"] = call
        return reply

    def assume_role_inner(self, params, rid, call):
        def err(status, code, message):
            call["code"] = code
            return sts_error(status, code, message, rid)

        if params.get("Version") != "2011-06-15":
            return err(400, "InvalidAction", "Could not find operation AssumeRoleWithWebIdentity for version %s"
                       % params.get("Version"))
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not params.get(name):
                return err(400, "ValidationError", "1 validation error detected: Value null at '%s%s' failed to "
                           "satisfy constraint: Member must not be null" % (name[0].lower(), name[1:]))
        session = params["RoleSessionName"]
        if not re.match(r"^[\w+=,.@-]{2,64}$", session):
            return err(400, "ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed "
                       "to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*" % session)
        role = self.roles.get(params["RoleArn"])
        duration = params.get("DurationSeconds")
        if duration is not None:
            try:
                duration = int(duration)
            except ValueError:
                return err(400, "ValidationError", "DurationSeconds must be an integer")
            if not 900 <= duration <= 43200:
                return err(400, "ValidationError", "1 validation error detected: Value '%s' at 'durationSeconds' "
                           "failed to satisfy constraint: Member must have value between 900 and 43200" % duration)
        token = params["WebIdentityToken"]
        if role is None:
            return err(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        token_cfg = role["tokens"].get(token)
        if token_cfg is None:
            return err(400, "InvalidIdentityToken", "The web identity token that was passed could not be validated "
                       "by AWS. Get a new identity token from the identity provider and then retry the request.")
        if token_cfg.get("expired"):
            return err(400, "ExpiredTokenException", "Token expired: current date/time %s must be before the "
                       "expiration date/time" % cc.iso8601(time.time()))
        if role.get("session_name") and not re.fullmatch(role["session_name"], session):
            return err(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        max_duration = int(role.get("max_session_duration", 3600))
        if duration is not None and duration > max_duration:
            return err(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set "
                       "for this role.")
        expiry = role.get("expiry_seconds") or duration or self.store.settings["sts_expiry_seconds"]
        assumed_arn = "arn:aws:sts::%s:assumed-role/%s/%s" % (role["account"], role["name"], session)
        key, cred = self.issue("sts", role["account"], expiry, {
            "role_arn": params["RoleArn"], "arn": assumed_arn, "session_name": session,
            "deny": role.get("deny"), "allowed_regions": role.get("allowed_regions"),
            "allowed_instances": role.get("allowed_instances")})
        call["access_key"] = key
        subject = token_cfg.get("subject", "system:serviceaccount:default:myapiserver")
        body = """<AssumeRoleWithWebIdentityResponse xmlns="%s">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>%s</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>%s</Arn>
      <AssumedRoleId>AROA%s:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>%s</SessionToken>
      <SecretAccessKey>%s</SecretAccessKey>
      <Expiration>%s</Expiration>
      <AccessKeyId>%s</AccessKeyId>
    </Credentials>
    <Provider>%s</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>%s</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""" % (STS_NS, escape(subject), escape(assumed_arn), key[4:], escape(session), cred["session_token"],
            cred["secret"], cc.iso8601(cred["expires"]), key,
            escape(role.get("provider", "arn:aws:iam::%s:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FAKE"
                            % role["account"])), rid)
        return cc.Reply(200, body, "text/xml", [("x-amzn-RequestId", rid)])

    # ---- EKS Pod Identity agent
    def pod_identity_credentials(self, req, entry):
        rid = cc.request_id()
        token = req.header("Authorization")
        call = {"kind": "PodIdentity", "time": time.time(), "request_id": rid,
                "token_digest": cc.digest(token)}
        with self.store.lock:
            self.sts_calls.append(call)
        entry["sts_call"] = call

        def err(status, code, message):
            call.update(status=status, code=code)
            return cc.json_reply({"code": code, "message": message}, status)

        def run():
            if req.method != "GET":
                return err(405, "MethodNotAllowed", "only GET is supported")
            if not token:
                return err(401, "Unauthorized", "Authorization header is required (the service account token)")
            cfg = self.pod_identity["tokens"].get(token)
            if cfg is None:
                return err(403, "AccessDenied", "the service account token is not valid for any association")
            account = cfg.get("account", "111122223333")
            key, cred = self.issue("pod-identity", account, cfg.get("expiry_seconds", 3600), {
                "role_arn": cfg.get("role_arn"), "arn": cfg.get("role_arn") and (
                    "arn:aws:sts::%s:assumed-role/%s/eks-pod-identity" % (account, cfg["role_arn"].rsplit("/", 1)[-1])),
                "deny": cfg.get("deny"), "allowed_regions": cfg.get("allowed_regions"),
                "allowed_instances": cfg.get("allowed_instances")})
            call.update(status=200, access_key=key)
            return cc.json_reply({"AccessKeyId": key, "SecretAccessKey": cred["secret"],
                                  "Token": cred["session_token"], "AccountId": account,
                                  "Expiration": cc.iso8601(cred["expires"])})

        return self.with_fault("PodIdentity", entry, rid,
                               lambda status, code, message, _rid: err(status, code, message), run)


def build(cfg):
    fake = FakeAws(cfg)
    routes = cc.common_routes(fake.store)

    def listing(table, hide):
        with fake.store.lock:
            return {k: {f: (cc.digest(v) if f in hide and v else v) for f, v in x.items()} for k, x in table.items()}

    def put_instances(body, _q):
        fake.set_instances(body or {})
        return fake.instances

    def put_credentials(body, _q):
        fake.set_credentials(body or {})
        return listing(fake.credentials, ("secret", "session_token"))

    def put_roles(body, _q):
        fake.set_roles(body or {})
        return {"roles": sorted(fake.roles)}

    def put_pod_identity(body, _q):
        fake.set_pod_identity(body or {})
        return {"path": fake.pod_identity["path"], "tokens": len(fake.pod_identity["tokens"])}

    def sts_calls(_b, query):
        with fake.store.lock:
            calls = list(fake.sts_calls)
        if query.get("kind"):
            calls = [c for c in calls if c["kind"] == query["kind"]]
        return calls

    def clear_sts_calls(_b, _q):
        with fake.store.lock:
            fake.sts_calls.clear()
        return {}

    def put_instance(iid, body, _q):
        fake.set_instances({iid: body or {}}, replace=False)
        return fake.instances[iid]

    def delete_instance(iid, _b, _q):
        with fake.store.lock:
            return {"deleted": fake.instances.pop(iid, None) is not None}

    def put_credential(key, body, _q):
        fake.set_credentials({key: body or {}}, replace=False)
        return {"ok": True}

    def patch_credential(key, body, _q):
        with fake.store.lock:
            cred = fake.credentials[key]
            for field, value in (body or {}).items():
                cred[field] = cc.parse_time(value) if field == "expires" else value
        return {"ok": True}

    def delete_credential(key, _b, _q):
        with fake.store.lock:
            return {"deleted": fake.credentials.pop(key, None) is not None}

    routes.update({
        ("GET", "/instances"): lambda _b, _q: fake.instances,
        ("PUT", "/instances"): put_instances,
        ("GET", "/credentials"): lambda _b, _q: listing(fake.credentials, ("secret", "session_token")),
        ("PUT", "/credentials"): put_credentials,
        ("GET", "/roles"): lambda _b, _q: {"roles": sorted(fake.roles)},
        ("PUT", "/roles"): put_roles,
        ("PUT", "/pod-identity"): put_pod_identity,
        ("GET", "/sts-calls"): sts_calls,
        ("DELETE", "/sts-calls"): clear_sts_calls,
    })
    prefix = {
        ("PUT", "/instances/"): put_instance,
        ("DELETE", "/instances/"): delete_instance,
        ("PUT", "/credentials/"): put_credential,
        ("PATCH", "/credentials/"): patch_credential,
        ("DELETE", "/credentials/"): delete_credential,
    }
    extra = ["pod_identity_port"] if (cfg.get("pod_identity") or {}).get("separate_port") else []
    return fake, routes, prefix, extra


# --------------------------------------------------------------------------- self-test

def self_test(vector_dir):
    """Runs the verifier over every SigV4 vector: the signed request must verify at the vector's
    time with the vector's secret, the fake's canonical request and string to sign must equal the
    published ones byte for byte, and tampering must fail."""
    vector_dir = vector_dir or cc.default_vector_dir()
    if not vector_dir:
        print("no test vector directory (pass one: --self-test DIR)")
        return 2
    root = os.path.join(vector_dir, "aws-sigv4")
    checks = cc.Checks()
    cases = []
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if os.path.isfile(os.path.join(d, "context.json")):
            with open(os.path.join(d, "context.json"), encoding="utf-8") as f:
                ctx = json.load(f)
            read = lambda fn, d=d: open(os.path.join(d, fn), "rb").read()  # noqa: E731
            cases.append((name, ctx, read("header-signed-request.txt"), read("header-canonical-request.txt"),
                          read("header-string-to-sign.txt"), read("header-signature.txt").strip()))
    legacy = os.path.join(root, "legacy-aws-sig-v4-test-suite")
    for name in sorted(os.listdir(legacy)) if os.path.isdir(legacy) else []:
        d = os.path.join(legacy, name)
        read = lambda ext, d=d, name=name: open(os.path.join(d, name + ext), "rb").read()  # noqa: E731
        ctx = {"credentials": {"access_key_id": "AKIDEXAMPLE",
                               "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
               "region": "us-east-1", "service": "service", "timestamp": "2015-08-30T12:36:00Z"}
        authz = read(".authz").strip()
        cases.append(("legacy/" + name, ctx, read(".sreq"), read(".creq"), read(".sts"), authz.rsplit(b"=", 1)[1]))
    for name, ctx, sreq, creq, sts, sig in cases:
        method, target, headers, body = cc.parse_http_message(sreq)
        path, _, query = target.partition(b"?")
        creds = ctx["credentials"]
        table = {creds["access_key_id"]: {"secret": creds["secret_access_key"]}}
        now = cc.parse_time(ctx["timestamp"])
        res = verify_sigv4(method, path, query, headers, body, table.get, now, ctx["service"])
        checks.true(name + " verifies", res["ok"], res.get("why", ""))
        checks.eq(name + " canonical request", res.get("canonical_request", "").encode("utf-8"), creq)
        checks.eq(name + " string to sign", res.get("string_to_sign", "").encode("utf-8"), sts)
        checks.eq(name + " signature", res.get("expected_signature", "").encode(), sig)
        if creds.get("token"):
            sent = [v for n, v in headers if n.lower() == "x-amz-security-token"]
            checks.eq(name + " token header", sent, [creds["token"]])
        # tampering: the body, a signed header, the secret, the clock must all matter
        tampered = verify_sigv4(method, path, query, headers, body + b"x", table.get, now, ctx["service"])
        checks.eq(name + " body tamper", tampered.get("code"), "SignatureDoesNotMatch")
        hdrs2 = [(n, v + "x") if n.lower() == "host" else (n, v) for n, v in headers]
        checks.eq(name + " host tamper", verify_sigv4(method, path, query, hdrs2, body, table.get, now,
                                                      ctx["service"]).get("code"), "SignatureDoesNotMatch")
        wrong = {creds["access_key_id"]: {"secret": creds["secret_access_key"] + "x"}}
        checks.eq(name + " wrong secret", verify_sigv4(method, path, query, headers, body, wrong.get, now,
                                                       ctx["service"]).get("code"), "SignatureDoesNotMatch")
        checks.eq(name + " stale", verify_sigv4(method, path, query, headers, body, table.get, now + 301,
                                                ctx["service"]).get("code"), "RequestExpired")
        checks.eq(name + " unknown key", verify_sigv4(method, path, query, headers, body, {}.get, now,
                                                      ctx["service"]).get("code"), "AuthFailure")
        checks.eq(name + " other service", verify_sigv4(method, path, query, headers, body, table.get, now,
                                                        "ec2").get("code"), "SignatureDoesNotMatch")
    checks.true("found vectors", len(cases) >= 15, "only %d cases" % len(cases))
    return checks.finish("fake_aws SigV4 self-test (%d vectors)" % len(cases))


if __name__ == "__main__":
    cc.run(__doc__.split("\n")[0], build, self_test)
