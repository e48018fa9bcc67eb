"""A fake Tencent Cloud for specs: CVM API 3.0 (RebootInstances, DescribeInstances) with
TC3-HMAC-SHA256 verification, and STS AssumeRoleWithWebIdentity (TKE OIDC), on one port.

    python3 spec/fakes/fake_tencentcloud.py --config FILE [--lifetime 900]
    python3 spec/fakes/fake_tencentcloud.py --self-test [VECTOR_DIR]   # TC3 verifier vs published vector

Prints {"port": N, "control_port": M, "pid": P} when ready.
Written from ../shared/docs/cloud-apis.md section 2, not from myapiserver's signer.
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

sys.dont_write_bytecode = True  # keep spec/fakes free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloud_common as cc  # noqa: E402

CVM_VERSION = "2017-03-12"
STS_VERSION = "2018-08-13"
CVM_ACTIONS = {"RebootInstances", "DescribeInstances"}
INSTANCE_ID = re.compile(r"^ins-[a-z0-9]{8}$")
REGION = re.compile(r"^[a-z]{2}-[a-z]+(-[a-z]+)?$")
STOP_TYPES = ("SOFT", "HARD", "SOFT_FIRST")
STATE_ERRORS = {
    "STOPPED": "UnsupportedOperation.InstanceStateStopped",
    "STOPPING": "UnsupportedOperation.InstanceStateStopping",
    "STARTING": "UnsupportedOperation.InstanceStateStarting",
    "PENDING": "UnsupportedOperation.InstanceStatePending",
    "REBOOTING": "UnsupportedOperation.InstanceStateRebooting",
    "SHUTDOWN": "UnsupportedOperation.InstanceStateShutdown",
    "TERMINATING": "UnsupportedOperation.InstanceStateTerminating",
    "LAUNCH_FAILED": "UnsupportedOperation.InstanceStateTerminated",
}

DEFAULT_SETTINGS = {
    "max_skew": 300,            # seconds X-TC-Timestamp may be off the fake's clock
    "clock_offset": 0,
    "reboot_seconds": 0,        # >0: instances show REBOOTING (and refuse another reboot) this long
    "sts_expiry_seconds": 7200,
    "expired_token_code": "AuthFailure.TokenFailure",
    "unauthorized_code": "AuthFailure.UnauthorizedOperation",
}


# --------------------------------------------------------------------------- TC3 (verifier)

def tc3_hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


AUTH_RE = re.compile(r"^(\S+)\s+(.*)$", re.S)


def verify_tc3(method, raw_query, headers, body, lookup, now, service, max_skew=300):
    """Verifies a TC3-HMAC-SHA256 request. lookup(secret_id) -> credential dict with 'secret'.
    Returns ok, code/message on failure, why, secret_id, date, service, signed_headers,
    canonical_request, string_to_sign, expected_signature, cred."""
    out = {"ok": False}

    def fail(code, message, why=None):
        out.update(code=code, message=message, why=why or message)
        return out

    hdr = {}
    for name, value in headers:
        hdr.setdefault(name.lower(), []).append(value)
    get = lambda n: ",".join(hdr[n]) if n in hdr else None  # noqa: E731
    auth = get("authorization")
    m = AUTH_RE.match(auth or "")
    if not m or m.group(1) != "TC3-HMAC-SHA256":
        return fail("AuthFailure.InvalidAuthorization", "Authorization header is missing or is not "
                    "TC3-HMAC-SHA256.", "Authorization: %r" % (auth or "")[:40])
    fields = {}
    for part in m.group(2).split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key.strip()] = val.strip()
    if not all(k in fields for k in ("Credential", "SignedHeaders", "Signature")):
        return fail("AuthFailure.InvalidAuthorization", "Authorization must contain Credential, SignedHeaders "
                    "and Signature.")
    scope = fields["Credential"].split("/")
    if len(scope) != 4:
        return fail("AuthFailure.InvalidAuthorization", "Credential must be SecretId/Date/Service/tc3_request.")
    secret_id, date, scope_service, terminator = scope
    signed = fields["SignedHeaders"].split(";")
    out.update(secret_id=secret_id, date=date, service=scope_service, signed_headers=signed)
    ts = get("x-tc-timestamp")
    if ts is None:
        return fail("MissingParameter", "The request is missing a required parameter `Timestamp`.")
    if not re.fullmatch(r"\d{1,12}", ts.strip()):
        return fail("InvalidParameterValue", "X-TC-Timestamp %r is not Unix seconds." % ts)
    ts_i = int(ts)
    if abs(now - ts_i) > max_skew:
        return fail("AuthFailure.SignatureExpire",
                    "Signature expired. Timestamp is %d, the server time is %d, the difference exceeds %d seconds."
                    % (ts_i, int(now), max_skew), "X-TC-Timestamp is %+d s from the fake's clock" % (ts_i - now))
    if terminator != "tc3_request":
        return fail("AuthFailure.InvalidAuthorization", "Credential must end with tc3_request.")
    if date != time.strftime("%Y-%m-%d", time.gmtime(ts_i)):
        return fail("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                    "Please check your signature is correct.",
                    "credential date %s is not the UTC date of X-TC-Timestamp %s" % (date, ts))
    if scope_service != service:
        return fail("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                    "Please check your signature is correct.",
                    "credential scope service %r, expected %r" % (scope_service, service))
    if "content-type" not in signed or "host" not in signed:
        return fail("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                    "Please check your signature is correct.", "content-type and host must be signed")
    cred = lookup(secret_id)
    if cred is None:
        return fail("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your SecretId "
                    "is correct.", "unknown SecretId %s" % secret_id)
    out["cred"] = cred
    canonical_headers = "".join("%s:%s\n" % (n, (get(n) or "").strip().lower()) for n in signed)
    creq = "\n".join([method, "/", raw_query.decode("latin-1"), canonical_headers, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["TC3-HMAC-SHA256", ts, "%s/%s/tc3_request" % (date, scope_service),
                     hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    key = tc3_hmac(("TC3" + cred["secret"]).encode("utf-8"), date)
    key = tc3_hmac(key, scope_service)
    key = tc3_hmac(key, "tc3_request")
    want = hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()
    out.update(canonical_request=creq, string_to_sign=sts, expected_signature=want)
    if not hmac.compare_digest(want, fields["Signature"]):
        return fail("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                    "Please check your signature is correct.", "signature mismatch (see canonical_request)")
    out["ok"] = True
    return out


# --------------------------------------------------------------------------- answers

def tc_error(code, message, rid, status=200):
    return cc.json_reply({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": rid}}, status)


def tc_ok(rid, **fields):
    fields["RequestId"] = rid
    return cc.json_reply({"Response": fields})


def random_id(prefix, n, alphabet=string.ascii_letters + string.digits):
    return prefix + "".join(random.choice(alphabet) for _ in range(n))


FAULT_MESSAGES = {
    "RequestLimitExceeded": "Your current request times equals to `11` in a second, which exceeds the frequency "
                            "limit `10` for a second. Please reduce the frequency of calls.",
    "InternalError": "An internal error has occurred. Retry your request, but if the problem persists, contact us.",
}


class FakeTencent:
    def __init__(self, cfg):
        self.store = cc.Store(cfg, DEFAULT_SETTINGS)
        self.credentials = {}
        self.instances = {}
        self.roles = {}
        self.sts_calls = []
        self.ports = {}
        self.set_credentials(cfg.get("credentials") or {})
        self.set_instances(cfg.get("instances") or {})
        self.set_roles(cfg.get("roles") or {})

    def set_credentials(self, table, replace=True):
        with self.store.lock:
            if replace:
                self.credentials = {}
            for sid, cred in table.items():
                cred = dict(cred)
                if "secret" not in cred:
                    raise ValueError("credential %s has no secret" % sid)
                cred["expires"] = cc.parse_time(cred.get("expires"))
                cred.setdefault("uin", "100000000001")
                cred.setdefault("source", "static")
                self.credentials[sid] = cred

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
                inst["state"] = inst.get("state", "RUNNING").upper()
                inst.setdefault("zone", inst["region"] + "-3")
                inst.setdefault("name", iid)
                self.instances[iid] = inst

    def set_roles(self, table):
        with self.store.lock:
            self.roles = {}
            for arn, role in table.items():
                role = dict(role)
                tokens = role.get("tokens") or []
                role["tokens"] = {t: {} for t in tokens} if isinstance(tokens, list) else dict(tokens)
                self.roles[arn] = role

    def instance_state(self, inst, now):
        if inst["state"] == "RUNNING" and inst.get("rebooting_until", 0) > now:
            return "REBOOTING"
        return inst["state"]

    # ---- entry point
    def handle(self, req):
        entry = {"port": req.port, "method": req.method, "path": req.path,
                 "query": req.raw_query.decode("latin-1"),
                 "headers": cc.redact_headers(req.headers, {"x-tc-token", "authorization"}),
                 "action": req.header("X-TC-Action"), "region": req.header("X-TC-Region"),
                 "version": req.header("X-TC-Version")}
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body.strip() else {}
        except ValueError:
            body = None
        if isinstance(body, dict):
            entry["body"] = {k: (cc.digest(v) if k == "WebIdentityToken" else v) for k, v in body.items()}
        self.store.log(entry)
        reply = self.api(req, body, entry)
        entry["status"] = None if (reply.hang or reply.reset or reply.close) else reply.status
        if reply.status == 200 and not (reply.hang or reply.reset or reply.close):
            try:
                err = json.loads(reply.body)["Response"].get("Error")
            except (ValueError, KeyError, AttributeError):
                err = None
            if err:
                entry["error"] = err.get("Code")
        return reply

    def with_fault(self, action, entry, rid, run):
        fault = self.store.take_fault(action)
        if not fault:
            return run()
        entry["fault"] = {k: v for k, v in fault.items() if k != "body"}

        def override():
            if "body" in fault:
                return cc.Reply(int(fault.get("status", 200)), fault["body"],
                                fault.get("content_type", "application/json"))
            if fault.get("code") or fault.get("status"):
                code = fault.get("code") or "InternalError"
                return tc_error(code, fault.get("message") or FAULT_MESSAGES.get(code, "Injected fault " + code),
                                rid, int(fault.get("status", 200)))
            return None

        if fault.get("record_before_delay"):
            normal = run()
            return cc.apply_transport(override() or normal, fault)
        replaced = override()
        if replaced is None:
            reply = cc.apply_transport(cc.Reply(), fault)
            if reply.delay and not (reply.hang or reply.reset or reply.close):
                time.sleep(reply.delay)
                return run()
            return reply
        return cc.apply_transport(replaced, fault)

    def api(self, req, body, entry):
        rid = cc.request_id()
        entry["request_id"] = rid
        action = req.header("X-TC-Action")
        version = req.header("X-TC-Version")
        now = self.store.now()
        s = self.store.settings
        if action == "AssumeRoleWithWebIdentity":
            return self.with_fault(action, entry, rid, lambda: self.assume_role(req, body, version, now, rid, entry))
        auth = verify_tc3(req.method, req.raw_query, req.headers, req.body, self.credentials.get, now, "cvm",
                          float(s["max_skew"]))
        entry["auth"] = {k: v for k, v in auth.items() if k not in ("cred", "expected_signature")}
        if not auth["ok"]:
            return tc_error(auth["code"], auth["message"], rid)
        cred = auth["cred"]
        entry["secret_id"] = auth["secret_id"]
        token = req.header("X-TC-Token")
        entry["auth"]["source"] = cred.get("source")
        if cred.get("token"):
            if not token or not hmac.compare_digest(token, cred["token"]):
                entry["auth"].update(ok=False, why="temporary SecretId without its token" if not token
                                     else "X-TC-Token does not belong to this SecretId")
                return tc_error("AuthFailure.TokenFailure", "The token is invalid. Please check X-TC-Token.", rid)
        elif token:
            entry["auth"].update(ok=False, why="X-TC-Token sent with a long-term SecretId")
            return tc_error("AuthFailure.TokenFailure", "The token is invalid. Please check X-TC-Token.", rid)
        if cred.get("expires") is not None and now >= cred["expires"]:
            entry["auth"].update(ok=False, why="temporary credentials expired at %s" % cc.iso8601(cred["expires"]))
            return tc_error(s.get("expired_token_code") or "AuthFailure.TokenFailure",
                            "The token has expired. Please get new temporary credentials.", rid)
        if not action or action not in CVM_ACTIONS:
            return tc_error("InvalidAction", "The requested action `%s` does not exist." % action, rid)
        if version != CVM_VERSION:
            return tc_error("NoSuchVersion", "The requested version `%s` of action `%s` does not exist."
                            % (version, action), rid)
        region = req.header("X-TC-Region")
        if not region:
            return tc_error("MissingParameter", "The request is missing a required parameter `Region`.", rid)
        if not REGION.match(region):
            return tc_error("UnsupportedRegion", "The region `%s` is not supported." % region, rid)
        if not isinstance(body, dict):
            return tc_error("InvalidParameter", "The request body is not a JSON object.", rid)
        if action == "RebootInstances":
            run = lambda: self.reboot(body, region, auth["secret_id"], cred, rid, entry)  # noqa: E731
        else:
            run = lambda: self.describe(body, region, auth["secret_id"], cred, rid)  # noqa: E731
        return self.with_fault(action, entry, rid, run)

    def denied(self, cred, action, region, ids):
        deny = cred.get("deny") or []
        if isinstance(deny, str):
            deny = [deny]
        bad = None
        if "*" in deny or action in deny or ("cvm:" + action) in deny:
            bad = ids[0] if ids else "*"
        elif cred.get("allowed_regions") and region not in cred["allowed_regions"]:
            bad = ids[0] if ids else "*"
        elif cred.get("allowed_instances") is not None:
            bad = next((i for i in ids if i not in cred["allowed_instances"]), None)
        if bad is None:
            return None
        code = cred.get("deny_code") or self.store.settings.get("unauthorized_code") or "UnauthorizedOperation"
        return code, ("you are not authorized to perform operation (cvm:%s)\nresource (qcs::cvm:%s:uin/%s:instance/%s) "
                      "has no permission\n" % (action, region, cred.get("uin"), bad))

    def validate_ids(self, ids, rid):
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return tc_error("InvalidParameterValue", "InstanceIds must be an array of strings.", rid)
        if len(ids) > 100:
            return tc_error("InvalidParameterValue.LimitExceeded", "InstanceIds may hold at most 100 ids.", rid)
        bad = [i for i in ids if not INSTANCE_ID.match(i)]
        if bad:
            return tc_error("InvalidInstanceId.Malformed", "The instance ID `%s` is malformed." % bad[0], rid)
        return None

    def reboot(self, body, region, secret_id, cred, rid, entry):
        ids = body.get("InstanceIds")
        if not ids:
            return tc_error("MissingParameter", "The request is missing a required parameter `InstanceIds`.", rid)
        err = self.validate_ids(ids, rid)
        if err:
            return err
        stop_type = body.get("StopType", "SOFT")
        if stop_type not in STOP_TYPES:
            return tc_error("InvalidParameterValue", "StopType must be one of SOFT, HARD, SOFT_FIRST, not `%s`."
                            % stop_type, rid)
        force = body.get("ForceReboot", False)
        if not isinstance(force, bool):
            return tc_error("InvalidParameterValue", "ForceReboot must be a boolean.", rid)
        unknown = sorted(set(body) - {"InstanceIds", "StopType", "ForceReboot"})
        if unknown:
            return tc_error("UnknownParameter", "The parameter `%s` is not recognized." % unknown[0], rid)
        denied = self.denied(cred, "RebootInstances", region, ids)
        if denied:
            return tc_error(denied[0], denied[1], rid)
        now = self.store.now()
        with self.store.lock:
            missing = [i for i in ids if i not in self.instances or self.instances[i]["region"] != region]
            if missing:
                return tc_error("InvalidInstanceId.NotFound", "The instance `%s` does not exist." % missing[0], rid)
            for iid in ids:
                inst = self.instances[iid]
                if inst.get("operation_in_progress"):
                    return tc_error("OperationDenied.InstanceOperationInProgress",
                                    "Another operation on instance `%s` is in progress." % iid, rid)
                state = self.instance_state(inst, now)
                if state != "RUNNING":
                    return tc_error(STATE_ERRORS.get(state, "InvalidInstanceState"),
                                    "The instance `%s` is in state %s; this operation requires RUNNING."
                                    % (iid, state), rid)
            for iid in ids:
                inst = self.instances[iid]
                self.store.reboots.append({
                    "instance": iid, "region": region, "secret_id": secret_id, "source": cred.get("source"),
                    "role_arn": cred.get("role_arn"), "stop_type": stop_type, "force_reboot": force,
                    "stop_type_given": "StopType" in body, "time": now, "time_iso": cc.iso8601(now),
                    "request_id": rid, "action": "RebootInstances"})
                inst["latest_operation"] = ("RebootInstances", rid, now)
                if float(self.store.settings.get("reboot_seconds") or 0) > 0:
                    inst["rebooting_until"] = now + float(self.store.settings["reboot_seconds"])
        return tc_ok(rid)

    def describe(self, body, region, secret_id, cred, rid):
        ids = body.get("InstanceIds")
        if ids is not None:
            err = self.validate_ids(ids, rid)
            if err:
                return err
            if body.get("Filters"):
                return tc_error("InvalidParameter",
                                "InstanceIds and Filters cannot be used at the same time.", rid)
        denied = self.denied(cred, "DescribeInstances", region, ids or [])
        if denied:
            return tc_error(denied[0], denied[1], rid)
        filters = body.get("Filters") or []
        limit = int(body.get("Limit", 20))
        offset = int(body.get("Offset", 0))
        if limit < 0 or limit > 100:
            return tc_error("InvalidParameterValue.LimitExceeded", "Limit must be between 0 and 100.", rid)
        now = self.store.now()
        with self.store.lock:
            rows = [(i, x) for i, x in sorted(self.instances.items()) if x["region"] == region]
            if ids is not None:
                rows = [(i, x) for i, x in rows if i in ids]
            for f in filters:
                name, values = f.get("Name"), f.get("Values") or []
                if name == "instance-id":
                    rows = [(i, x) for i, x in rows if i in values]
                elif name == "zone":
                    rows = [(i, x) for i, x in rows if x["zone"] in values]
                elif name == "instance-state":
                    rows = [(i, x) for i, x in rows if self.instance_state(x, now) in values]
                else:
                    return tc_error("InvalidFilter", "The filter `%s` is not supported by this fake." % name, rid)
            total = len(rows)
            out = []
            for iid, inst in rows[offset:offset + limit]:
                op = inst.get("latest_operation")
                state = self.instance_state(inst, now)
                out.append({
                    "InstanceId": iid, "InstanceName": inst["name"], "InstanceState": state,
                    "InstanceType": inst.get("type", "S5.MEDIUM2"), "CPU": 2, "Memory": 2,
                    "Placement": {"Zone": inst["zone"], "ProjectId": 0},
                    "PrivateIpAddresses": [inst.get("private_ip", "10.0.0.%d" % (sum(map(ord, iid)) % 250 + 2))],
                    "RestrictState": "NORMAL", "Uuid": inst.get("uuid", "00000000-0000-0000-0000-%s" % iid[4:].rjust(
                        12, "0")), "CreatedTime": "2024-01-01T00:00:00Z",
                    "LatestOperation": op[0] if op else None,
                    "LatestOperationState": (("OPERATING" if state == "REBOOTING" else "SUCCESS") if op else None),
                    "LatestOperationRequestId": op[1] if op else None,
                })
        return tc_ok(rid, TotalCount=total, InstanceSet=out)

    # ---- STS (TKE OIDC), unsigned: Authorization: SKIP
    def assume_role(self, req, body, version, now, rid, entry):
        body = body if isinstance(body, dict) else {}
        call = {"kind": "AssumeRoleWithWebIdentity", "time": time.time(), "request_id": rid,
                "role_arn": body.get("RoleArn"), "provider_id": body.get("ProviderId"),
                "session_name": body.get("RoleSessionName"), "duration": body.get("DurationSeconds"),
                "token_digest": cc.digest(body.get("WebIdentityToken")), "authorization": req.header("Authorization")}
        with self.store.lock:
            self.sts_calls.append(call)
        entry["sts_call"] = call

        def err(code, message):
            call["code"] = code
            return tc_error(code, message, rid)

        if version != STS_VERSION:
            return err("NoSuchVersion", "The requested version `%s` of action `AssumeRoleWithWebIdentity` does not "
                       "exist." % version)
        ts = req.header("X-TC-Timestamp")
        if ts is None or not re.fullmatch(r"\d{1,12}", ts.strip()):
            return err("MissingParameter", "The request is missing a required parameter `Timestamp`.")
        if abs(now - int(ts)) > float(self.store.settings["max_skew"]):
            return err("AuthFailure.SignatureExpire", "Signature expired. Timestamp is %s, the server time is %d."
                       % (ts, int(now)))
        for name in ("ProviderId", "WebIdentityToken", "RoleArn", "RoleSessionName"):
            if not body.get(name):
                return err("MissingParameter", "The request is missing a required parameter `%s`." % name)
        duration = body.get("DurationSeconds")
        if duration is not None and (not isinstance(duration, int) or not 0 < duration <= 43200):
            return err("InvalidParameter.ParamError", "DurationSeconds must be an integer up to 43200.")
        role = self.roles.get(body["RoleArn"])
        if role is None:
            return err("ResourceNotFound.RoleNotFound", "The role `%s` does not exist." % body["RoleArn"])
        if role.get("provider_id") and role["provider_id"] != body["ProviderId"]:
            return err("InvalidParameter.ParamError", "ProviderId `%s` is not trusted by the role."
                       % body["ProviderId"])
        token_cfg = role["tokens"].get(body["WebIdentityToken"])
        if token_cfg is None or token_cfg.get("expired"):
            return err("InvalidParameter.WebIdentityTokenError", "WebIdentityToken is invalid or expired.")
        expiry = role.get("expiry_seconds") or duration or self.store.settings["sts_expiry_seconds"]
        sid = random_id("AKID", 32)
        cred = {"secret": random_id("", 32), "token": base64.b64encode(os.urandom(96)).decode(),
                "expires": now + float(expiry), "issued": now, "source": "sts", "role_arn": body["RoleArn"],
                "uin": role.get("uin", "100000000001"), "deny": role.get("deny"),
                "allowed_regions": role.get("allowed_regions"), "allowed_instances": role.get("allowed_instances"),
                "deny_code": role.get("deny_code")}
        with self.store.lock:
            self.credentials[sid] = cred
        call.update(secret_id=sid, status=200)
        return tc_ok(rid, Credentials={"Token": cred["token"], "TmpSecretId": sid, "TmpSecretKey": cred["secret"]},
                     ExpiredTime=int(cred["expires"]), Expiration=cc.iso8601(cred["expires"]))


def build(cfg):
    fake = FakeTencent(cfg)
    routes = cc.common_routes(fake.store)

    def creds_listing():
        with fake.store.lock:
            return {k: {f: (cc.digest(v) if f in ("secret", "token") and v else v) for f, v in c.items()}
                    for k, c in fake.credentials.items()}

    def put_instances(body, _q):
        fake.set_instances(body or {})
        return fake.instances

    def put_credentials(body, _q):
        fake.set_credentials(body or {})
        return creds_listing()

    def put_roles(body, _q):
        fake.set_roles(body or {})
        return {"roles": sorted(fake.roles)}

    def sts_calls(_b, _q):
        with fake.store.lock:
            return list(fake.sts_calls)

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

    def put_credential(sid, body, _q):
        fake.set_credentials({sid: body or {}}, replace=False)
        return {"ok": True}

    def patch_credential(sid, body, _q):
        with fake.store.lock:
            cred = fake.credentials[sid]
            for field, value in (body or {}).items():
                cred[field] = cc.parse_time(value) if field == "expires" else value
        return {"ok": True}

    def delete_credential(sid, _b, _q):
        with fake.store.lock:
            return {"deleted": fake.credentials.pop(sid, None) is not None}

    routes.update({
        ("GET", "/instances"): lambda _b, _q: fake.instances,
        ("PUT", "/instances"): put_instances,
        ("GET", "/credentials"): lambda _b, _q: creds_listing(),
        ("PUT", "/credentials"): put_credentials,
        ("GET", "/roles"): lambda _b, _q: {"roles": sorted(fake.roles)},
        ("PUT", "/roles"): put_roles,
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
    return fake, routes, prefix, []


def self_test(vector_dir):
    """The published TC3 example(s): the fake's canonical request, string to sign and signature
    must equal the document's, the request must verify at its timestamp, and tampering must fail."""
    vector_dir = vector_dir or cc.default_vector_dir()
    if not vector_dir:
        print("no test vector directory (pass one: --self-test DIR)")
        return 2
    with open(os.path.join(vector_dir, "tencent-tc3.json"), encoding="utf-8") as f:
        doc = json.load(f)
    checks = cc.Checks()
    base = doc["vectors"][0]["inputs"]
    for vec in doc["vectors"]:
        name, inp, exp = vec["name"], dict(base, **vec["inputs"]), vec["expected"]
        body = inp["payload"].encode("utf-8")
        auth = exp["authorization"]
        headers = [("Authorization", auth), ("Content-Type", inp["content_type"]), ("Host", inp["host"]),
                   ("X-TC-Action", inp["action"]), ("X-TC-Timestamp", str(inp["timestamp"])),
                   ("X-TC-Version", inp["version"]), ("X-TC-Region", inp["region"])]
        table = {inp["SecretId"]: {"secret": inp["SecretKey"]}}
        now = inp["timestamp"]
        res = verify_tc3("POST", b"", headers, body, table.get, now, "cvm")
        checks.true(name + " verifies", res["ok"], res.get("why", ""))
        if "canonical_request" in exp:
            checks.eq(name + " canonical request", res.get("canonical_request"), exp["canonical_request"])
        checks.eq(name + " string to sign", res.get("string_to_sign"), exp["string_to_sign"])
        checks.eq(name + " signature", res.get("expected_signature"), exp["signature"])
        if "hashed_request_payload" in exp:
            checks.eq(name + " payload hash", hashlib.sha256(body).hexdigest(), exp["hashed_request_payload"])
        checks.eq(name + " body tamper", verify_tc3("POST", b"", headers, body + b" ", table.get, now,
                                                    "cvm").get("code"), "AuthFailure.SignatureFailure")
        hdrs2 = [(n, "cvm.ap-guangzhou.tencentcloudapi.com") if n == "Host" else (n, v) for n, v in headers]
        checks.eq(name + " host tamper", verify_tc3("POST", b"", hdrs2, body, table.get, now, "cvm").get("code"),
                  "AuthFailure.SignatureFailure")
        wrong = {inp["SecretId"]: {"secret": inp["SecretKey"] + "x"}}
        checks.eq(name + " wrong key", verify_tc3("POST", b"", headers, body, wrong.get, now, "cvm").get("code"),
                  "AuthFailure.SignatureFailure")
        checks.eq(name + " stale", verify_tc3("POST", b"", headers, body, table.get, now + 301, "cvm").get("code"),
                  "AuthFailure.SignatureExpire")
        checks.eq(name + " unknown id", verify_tc3("POST", b"", headers, body, {}.get, now, "cvm").get("code"),
                  "AuthFailure.SecretIdNotFound")
        checks.eq(name + " other service", verify_tc3("POST", b"", headers, body, table.get, now, "sts").get("code"),
                  "AuthFailure.SignatureFailure")
        # unsigned headers do not matter; signed ones do
        hdrs3 = [(n, "RebootInstances") if n == "X-TC-Action" else (n, v) for n, v in headers]
        checks.true(name + " unsigned header ignored",
                    verify_tc3("POST", b"", hdrs3, body, table.get, now, "cvm")["ok"])
    return checks.finish("fake_tencentcloud TC3 self-test (%d vectors)" % len(doc["vectors"]))


if __name__ == "__main__":
    cc.run(__doc__.split("\n")[0], build, self_test)
