#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A fake kube-apiserver for myapiserver's end-to-end specs (Python 3 stdlib only).

    python3 spec/fakes/kube_apiserver.py --config FILE [--lifetime SECONDS]

Listens on two ports on 127.0.0.1 and prints {"api_port": N, "control_port": M, "pid": P}:
  api port (TLS): authentication (client cert / bearer token / anonymous), impersonation,
    RBAC, core Nodes, the authentication ConfigMap, Events, Leases, TokenReview,
    SubjectAccessReview, discovery, and the aggregation proxy to the configured backend.
  control port (plain HTTP): spec-only knobs (nodes, rbac, tokens, faults, backend, request log).
See spec/fakes/README.md. Exits by itself after --lifetime seconds (default 900).
"""
import argparse
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kube_api as api  # noqa: E402
import kube_proto  # noqa: E402
import kube_proxy  # noqa: E402
import kube_store  # noqa: E402
from kube_store import KINDS, typed  # noqa: E402

AUTH_CM = ("kube-system", "extension-apiserver-authentication")
CORE_RESOURCES = [("nodes", "node", False, "Node", ["get", "list", "watch"]),
                  ("configmaps", "configmap", True, "ConfigMap", ["get", "list", "watch"]),
                  ("events", "event", True, "Event", ["create", "get", "list", "watch"])]
GROUPS = {
    "coordination.k8s.io": [("leases", "lease", True, "Lease",
                             ["create", "delete", "get", "list", "update", "watch"])],
    "authentication.k8s.io": [("tokenreviews", "", False, "TokenReview", ["create"]),
                              ("selfsubjectreviews", "", False, "SelfSubjectReview", ["create"])],
    "authorization.k8s.io": [("subjectaccessreviews", "", False, "SubjectAccessReview", ["create"]),
                             ("selfsubjectaccessreviews", "", False, "SelfSubjectAccessReview", ["create"])],
}
# (group, resource) -> verbs this fake serves
SERVED = {("", "nodes"): {"get", "list", "watch"}, ("", "configmaps"): {"get", "list", "watch"},
          ("", "events"): {"create", "get", "list", "watch"},
          ("coordination.k8s.io", "leases"): {"create", "get", "list", "watch", "update", "delete"},
          ("authentication.k8s.io", "tokenreviews"): {"create"},
          ("authentication.k8s.io", "selfsubjectreviews"): {"create"},
          ("authorization.k8s.io", "subjectaccessreviews"): {"create"},
          ("authorization.k8s.io", "selfsubjectaccessreviews"): {"create"}}
DEFAULT_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def group_doc(name, version="v1"):
    gv = {"groupVersion": name + "/" + version, "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def resource_list(group_version, resources):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [{"name": n, "singularName": s, "namespaced": ns, "kind": k, "verbs": v}
                          for n, s, ns, k, v in resources]}


class Faults:
    """Injected failures keyed by "<verb> <resource>", "<resource>" (core API), a non-resource
    path, "aggregated <verb> <resource>" / "aggregated" (proxied requests) or "*"; each
    {status, message, retry_after, delay, drop, lose_answer, body, content_type, truncate, times}."""

    def __init__(self):
        self.lock = threading.Lock()
        self.table = {}

    def replace(self, table):
        with self.lock:
            self.table = dict(table or {})

    def take(self, keys):
        with self.lock:
            for key in keys:
                fault = self.table.get(key)
                if fault is None:
                    continue
                if "times" in fault:
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        del self.table[key]
                return dict(fault)
        return None


class State:
    """Everything the two ports share."""

    def __init__(self, cfg):
        pki = cfg.get("pki", ".")
        self.cfg = cfg
        self.store = kube_store.Store()
        self.authz = api.Authorizer(cfg.get("rbac", []), cfg.get("default_rbac", True))
        self.tokens = dict(cfg.get("tokens", {}))
        self.faults = Faults()
        self.faults.replace(cfg.get("faults"))
        self.requests, self.req_lock, self.req_seq = [], threading.Lock(), 0
        svc = dict(cfg.get("apiservice") or {})
        self.group = svc.pop("group", "infraops.michael.io")
        self.version = svc.pop("version", "v1")
        fp = cfg.get("front_proxy") or {}
        settings = {"url": None, "ca_file": os.path.join(pki, "serving-ca.crt"),
                    "server_name": "infraops-service.default.svc",
                    "cert": fp.get("cert", os.path.join(pki, "front-proxy-client.crt")),
                    "key": fp.get("key", os.path.join(pki, "front-proxy-client.key")),
                    "timeouts": {"discovery": 5, "default": 60}}
        settings.update(svc)
        self.proxy = kube_proxy.Proxy(settings)
        data = {"client-ca-file": read_text(os.path.join(pki, "client-ca.crt")),
                "requestheader-client-ca-file": read_text(os.path.join(pki, "front-proxy-ca.crt")),
                "requestheader-allowed-names": '["front-proxy-client"]',
                "requestheader-username-headers": '["X-Remote-User"]',
                "requestheader-group-headers": '["X-Remote-Group"]',
                "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
                "requestheader-uid-headers": "[]"}
        for k, v in (cfg.get("configmap") or {}).items():
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v
        self.set_configmap(data)
        self.store.replace_all("nodes", [kube_store.node_from_shorthand(n) for n in cfg.get("nodes", [])])
        self.version_info = cfg.get("version") or {
            "major": "1", "minor": "33", "gitVersion": "v1.33.1-fake", "gitCommit": "fake",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0",
            "compiler": "gc", "platform": "linux/amd64"}

    def set_configmap(self, data):
        self.store.put("configmaps", AUTH_CM[0], {"metadata": {"name": AUTH_CM[1]}, "data": data})

    def record(self, entry):
        with self.req_lock:
            self.req_seq += 1
            entry["id"] = self.req_seq
            self.requests.append(entry)
            del self.requests[:-5000]


class ApiHandler(BaseHTTPRequestHandler):
    """The api port: kube-apiserver's filter chain, then routes."""

    protocol_version = "HTTP/1.1"
    state = None  # set in main

    def log_message(self, *args):
        pass

    def send_response(self, code, message=None):
        """Status line only: Go adds no Server header, and Date only when the handler set none."""
        self.send_response_only(code, message)

    # -- plumbing ---------------------------------------------------------

    def _send(self, code, body, ctype="application/json", headers=()):
        if self._answer_lost(code):
            return
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        names = {n.lower() for n, _ in headers}
        if "audit-id" not in names:
            self.send_header("Audit-Id", self.audit_id)
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.entry["status"] = code

    def _answer_lost(self, code):
        """The lose_answer fault: the request was acted on, and the connection dies
        before the answer (as when a peer or proxy drops it): no byte is sent."""
        if not getattr(self, "lose_answer", False):
            return False
        self.close_connection = True
        self.entry["status"] = "answer lost (%d)" % code
        return True

    def _send_truncated(self, code, body, ctype, keep):
        if self._answer_lost(code):
            return
        self.send_response(code)
        self.send_header("Audit-Id", self.audit_id)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:keep])
        self.wfile.flush()
        self.close_connection = True
        self.entry["status"] = code

    def _json(self, code, obj, headers=()):
        self._send(code, json.dumps(obj, separators=(",", ":")) + "\n", "application/json",
                   [("Cache-Control", "no-cache, private")] + list(headers))

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _parse_json(self):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == kube_proto.CONTENT_TYPE:
            try:
                return kube_proto.decode_object(self.body)
            except ValueError as err:
                raise api.ApiError(415, "UnsupportedMediaType", str(err), {}) from None
        if ctype not in ("", "application/json", "*/*"):
            raise api.ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                               "format - accepted media types include: application/json, "
                               "application/vnd.kubernetes.protobuf", {})
        if not self.body:
            raise api.bad_request("the body of the request was in an unknown format - accepted media "
                                  "types include: application/json, application/vnd.kubernetes.protobuf")
        try:
            obj = json.loads(self.body)
        except ValueError as err:
            raise api.bad_request("json parse error: %s" % err) from None
        if not isinstance(obj, dict):
            raise api.bad_request("json parse error: expected an object")
        return obj

    def _record_headers(self):
        out = []
        for name, value in self.headers.items():
            if name.lower() == "authorization":
                parts = value.split(" ", 1)
                value = parts[0] + " " + digest(parts[1] if len(parts) > 1 else "")
            out.append([name, value])
        return out

    def _record_body(self):
        try:
            if self.body.startswith(kube_proto.MAGIC):
                body = kube_proto.decode_object(self.body)
            else:
                body = json.loads(self.body) if self.body else None
        except ValueError:
            return self.body.decode("utf-8", "replace")
        spec = body.get("spec") if isinstance(body, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("token"), str):
            spec["token"] = digest(spec["token"])
        return body

    def _dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        self.url_path, self.raw_query = url.path or "/", url.query
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self.body = self._read_body()
        self.audit_id = self.headers.get("Audit-Id") or str(uuid.uuid4())
        self.lose_answer = False
        self.entry = {"time": time.time(), "method": self.command, "path": self.url_path,
                      "query": self.raw_query, "params": self.query, "headers": self._record_headers(),
                      "body": self._record_body(), "user": None}
        try:
            self._serve()
        except api.ApiError as err:
            self._json(err.code, err.status(), err.headers)
        except kube_proxy.ProxyFailure as err:
            if err.status:
                e = api.timeout(err.status)
                self._json(e.code, e.status())
            else:
                self._send(err.code, err.text + "\n", "text/plain; charset=utf-8",
                           [("X-Content-Type-Options", "nosniff")])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # pylint: disable=broad-except  # a fake's bug: answer, and say so
            sys.stderr.write("fake kube-apiserver: %s %s: %r\n" % (self.command, self.path, err))
            e = api.internal("fake kube-apiserver: %r" % err)
            self._json(e.code, e.status())
        finally:
            self.state.record(self.entry)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    # -- filters: authentication, impersonation, authorization -------------

    def _authenticate(self):
        cert = self.connection.getpeercert()
        if cert:
            names = {}
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    names.setdefault(key, []).append(value)
            der = self.connection.getpeercert(binary_form=True)
            return {"username": (names.get("commonName") or [""])[0], "uid": "",
                    "groups": names.get("organizationName", []) + ["system:authenticated"],
                    "extra": {"authentication.kubernetes.io/credential-id":
                              ["X509SHA256=" + hashlib.sha256(der).hexdigest()]}}, "x509"
        parts = (self.headers.get("Authorization") or "").split(" ")
        if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1]:
            known = self.state.tokens.get(parts[1])
            if known is None:
                raise api.unauthorized()
            groups = list(known.get("groups", []))
            if "system:authenticated" not in groups:
                groups.append("system:authenticated")
            return {"username": known.get("username", ""), "uid": known.get("uid", ""),
                    "groups": groups, "extra": dict(known.get("extra", {}))}, "token"
        return {"username": "system:anonymous", "uid": "", "groups": ["system:unauthenticated"],
                "extra": {}}, "anonymous"

    def _check_impersonate(self, actor, info):
        allowed, _ = self.state.authz.authorize(actor["username"], actor["groups"], info)
        if not allowed:
            raise api.forbidden(info, actor["username"])

    def _impersonate(self, actor):
        user = self.headers.get("Impersonate-User")
        groups = self.headers.get_all("Impersonate-Group") or []
        uid = self.headers.get("Impersonate-Uid")
        extra = {}
        for name, value in self.headers.items():
            if name.lower().startswith("impersonate-extra-"):
                key = urllib.parse.unquote(name[len("impersonate-extra-"):].lower())
                extra.setdefault(key, []).append(value)
        if user is None:
            if groups or extra or uid:
                raise api.internal("requested %s without impersonating a user" % (groups or list(extra)))
            return actor

        def attrs(group, resource, name):
            return api.RequestInfo(resource_request=True, verb="impersonate", group=group,
                                   resource=resource.split("/")[0], subresource=resource.partition("/")[2],
                                   name=name)
        self._check_impersonate(actor, attrs("", "users", user))
        for g in groups:
            self._check_impersonate(actor, attrs("", "groups", g))
        if uid:
            self._check_impersonate(actor, attrs("authentication.k8s.io", "uids", uid))
        for key, values in extra.items():
            for v in values:
                self._check_impersonate(actor, attrs("authentication.k8s.io", "userextras/" + key, v))
        if user == "system:anonymous":
            base = "system:unauthenticated"
        else:
            base = "system:authenticated"
        if not any(g in ("system:authenticated", "system:unauthenticated") for g in groups):
            groups = groups + [base]
        return {"username": user, "uid": uid or "", "groups": groups, "extra": extra}

    def _serve(self):
        actor, method = self._authenticate()
        user = self._impersonate(actor)
        self.entry.update(user=user, authenticated_by=method)
        if user is not actor:
            self.entry["impersonated_by"] = actor["username"]
        self.user = user
        info = api.request_info(self.command, self.url_path, self.query)
        self.entry["attributes"] = info.as_dict()
        allowed, _ = self.state.authz.authorize(user["username"], user["groups"], info)
        if not allowed:
            raise api.forbidden(info, user["username"])
        aggregated = self._is_aggregated()
        res = info.resource + ("/" + info.subresource if info.subresource else "")
        if aggregated:
            keys = ["aggregated " + info.verb + " " + res, "aggregated"]
        elif info.resource_request:
            keys = [info.verb + " " + res, res]
        else:
            keys = [info.path]
        fault = self.state.faults.take(keys + ["*"])
        if fault and self._apply_fault(fault):
            return
        if aggregated:
            self._proxy()
        elif info.resource_request:
            self._resource(info)
        else:
            self._non_resource(info)

    def _apply_fault(self, fault):
        """Returns True when the fault answered (or dropped) the request."""
        self.entry["fault"] = fault
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault.get("drop"):
            self.close_connection = True
            self.entry["status"] = "dropped"
            return True
        if fault.get("lose_answer"):
            self.lose_answer = True
            return False
        if "body" in fault:
            body = fault["body"]
            ctype = fault.get("content_type") or (
                "application/json" if not isinstance(body, str) else "text/plain; charset=utf-8")
            text = body if isinstance(body, str) else json.dumps(body)
            if "truncate" in fault:  # Content-Length of the whole body, then only this many bytes
                self._send_truncated(fault.get("status", 500), text.encode(), ctype, int(fault["truncate"]))
            else:
                self._send(fault.get("status", 500), text, ctype)
            return True
        if fault.get("status"):
            raise api.from_fault(int(fault["status"]), fault.get("message"), fault.get("retry_after"))
        return False

    # -- aggregation ------------------------------------------------------

    def _is_aggregated(self):
        prefix = "/apis/%s/%s" % (self.state.group, self.state.version)
        return self.url_path == prefix or self.url_path.startswith(prefix + "/")

    def _proxy(self):
        code, headers, body, upstream = self.state.proxy.forward(
            self.command, self.url_path, self.raw_query, list(self.headers.items()), self.body,
            self.user, self.client_address[0], self.audit_id)
        self.entry["upstream"] = upstream
        ctype = next((v for n, v in headers if n.lower() == "content-type"), None)
        self._send(code, body, ctype, [(n, v) for n, v in headers if n.lower() != "content-type"])

    # -- non-resource paths -------------------------------------------------

    def _non_resource(self, info):
        path = self.url_path.rstrip("/") or "/"
        st = self.state
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", "text/plain; charset=utf-8", [("X-Content-Type-Options", "nosniff")])
        elif path == "/version":
            self._json(200, st.version_info)
        elif path == "/api":
            host = "127.0.0.1:%d" % self.server.server_address[1]
            self._json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                             [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        elif path == "/api/v1":
            self._json(200, resource_list("v1", CORE_RESOURCES))
        elif path == "/apis":
            groups = [group_doc(g) for g in GROUPS] + [group_doc(st.group, st.version)]
            self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        else:
            parts = path.split("/")[1:]  # ["apis", group] or ["apis", group, version]
            if parts[0] != "apis" or len(parts) not in (2, 3) or (parts[1] not in GROUPS and parts[1] != st.group):
                raise api.not_found_path()
            if len(parts) == 2:
                doc = group_doc(parts[1], st.version if parts[1] == st.group else "v1")
                self._json(200, dict({"kind": "APIGroup", "apiVersion": "v1"}, **doc))
            elif parts[1] in GROUPS and parts[2] == "v1":
                self._json(200, resource_list(parts[1] + "/v1", GROUPS[parts[1]]))
            else:
                raise api.not_found_path()

    # -- resources ------------------------------------------------------------

    def _resource(self, info):
        key = (info.group, info.resource)
        known_group = info.group == "" or info.group in GROUPS
        if info.version != "v1" or not known_group or key not in SERVED or info.subresource:
            raise api.not_found_path()
        namespaced = KINDS[info.resource][2] if info.resource in KINDS else False
        if info.namespace and not namespaced:
            raise api.not_found_path()
        if info.verb not in SERVED[key] or (namespaced and not info.namespace and info.verb not in ("list", "watch")):
            raise api.method_not_allowed(info.verb, info.resource, info.group)
        if info.resource in ("tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews",
                             "selfsubjectreviews"):
            return getattr(self, "_" + info.resource)(self._parse_json())
        if info.verb in ("list", "watch"):
            return self._list(info)
        if info.verb == "get":
            obj = self.state.store.get(info.resource, info.namespace, info.name)
            if info.resource == "nodes" and api.wants_table(self.headers.get("Accept")):
                return self._json(200, api.node_table([obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}))
            return self._json(200, typed(info.resource, obj))
        if info.verb == "delete":
            opts = self._parse_json() if self.body.strip() else {}
            gone = self.state.store.delete(info.resource, info.namespace, info.name, opts.get("preconditions"))
            return self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "details": {"name": info.name, "group": info.group, "kind": info.resource,
                                                "uid": gone["metadata"]["uid"]}})
        obj = self._parse_json()
        self._validate(info, obj)
        if info.verb == "create":
            return self._json(201, typed(info.resource, self.state.store.create(info.resource, info.namespace, obj)))
        return self._json(200, typed(info.resource, self.state.store.update(info.resource, info.namespace,
                                                                            info.name, obj)))

    def _validate(self, info, obj):
        meta = obj.setdefault("metadata", {})
        if info.verb == "create":
            kube_store.generate_name(meta)
        if meta.get("namespace") and meta["namespace"] != info.namespace:
            raise api.bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
        if info.resource == "events":
            inv = (obj.get("involvedObject") or {}).get("namespace", "")
            if (inv and inv != info.namespace) or (not inv and info.namespace not in ("", "default")):
                raise api.invalid("Event", "", meta.get("name", ""), [
                    ("involvedObject.namespace", "Invalid", inv, "does not match event.namespace")])
        if info.resource == "leases":
            secs = (obj.get("spec") or {}).get("leaseDurationSeconds")
            if secs is not None and (not isinstance(secs, int) or secs <= 0):
                raise api.invalid("Lease", "coordination.k8s.io", meta.get("name", ""), [
                    ("spec.leaseDurationSeconds", "Invalid", secs, "must be greater than 0")])

    def _list(self, info):
        q = lambda k: (self.query.get(k) or [""])[0]  # noqa: E731
        labels = api.parse_label_selector(q("labelSelector"))
        fields = {"metadata.name": lambda o: o["metadata"]["name"],
                  "metadata.namespace": lambda o: o["metadata"].get("namespace", "")}
        if info.resource == "nodes":
            fields["spec.unschedulable"] = lambda o: str(bool(o.get("spec", {}).get("unschedulable"))).lower()
        field_pred = api.parse_field_selector(q("fieldSelector"), fields)

        def pred(o):
            return labels(o["metadata"].get("labels") or {}) and field_pred(o)
        ns = info.namespace or None
        if info.verb == "watch":
            return self._watch(info.resource, ns, pred, q("resourceVersion"), q("timeoutSeconds"))
        try:
            limit = int(q("limit") or 0)
        except ValueError:
            raise api.bad_request("invalid limit: %s" % q("limit")) from None
        args = (info.resource, ns, pred, max(limit, 0), q("continue"), bool(q("labelSelector") or q("fieldSelector")))
        if info.resource == "nodes" and api.wants_table(self.headers.get("Accept")):
            items, meta = self.state.store.list(*args)
            return self._json(200, api.node_table(items, meta))
        encoded, meta = self.state.store.list_encoded(*args)
        head = json.dumps({"kind": KINDS[info.resource][1] + "List", "apiVersion": kube_store.api_version(info.resource),
                           "metadata": meta}, separators=(",", ":"))
        self._send(200, head[:-1] + ',"items":[' + ",".join(encoded) + "]}\n", "application/json",
                   [("Cache-Control", "no-cache, private")])

    def _watch(self, resource, ns, pred, since, timeout_s):
        """A chunked stream of watch events until timeoutSeconds (default 60) or the client leaves."""
        store = self.state.store
        deadline = time.monotonic() + float(timeout_s or 60)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Audit-Id", self.audit_id)
        self.end_headers()
        self.entry["status"] = 200

        def emit(kind, obj):
            line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
        if since in ("", "0"):
            items, meta = store.list(resource, ns, pred)
            for obj in items:
                emit("ADDED", typed(resource, obj))
            since = meta["resourceVersion"]
        since = int(since)
        while time.monotonic() < deadline:
            changes = store.changes(resource, since, min(1.0, max(0.0, deadline - time.monotonic())))
            if changes is None:
                emit("ERROR", api.ApiError(410, "Expired", "too old resource version: %d" % since).status())
                break
            for rv, _, kind, obj in changes:
                since = rv
                if (ns is None or obj["metadata"].get("namespace") == ns) and pred(obj):
                    emit(kind, typed(resource, obj))
        self.wfile.write(b"0\r\n\r\n")

    # -- reviews ---------------------------------------------------------------

    def _tokenreviews(self, review):
        spec = review.get("spec") or {}
        token = spec.get("token") or ""
        if not token:
            raise api.bad_request("token is required for TokenReview in authentication")
        known = self.state.tokens.get(token)
        if known is None:
            status = {"user": {}, "error": "invalid bearer token"}
        else:
            groups = list(known.get("groups", []))
            if "system:authenticated" not in groups:
                groups.append("system:authenticated")
            user = {"username": known.get("username", ""), "groups": groups}
            if known.get("uid"):
                user["uid"] = known["uid"]
            if known.get("extra"):
                user["extra"] = known["extra"]
            status = {"authenticated": True, "user": user,
                      "audiences": spec.get("audiences") or DEFAULT_AUDIENCES}
        self._json(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"creationTimestamp": None}, "spec": spec, "status": status})

    def _access_review(self, kind, spec, username, groups):
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if bool(ra) == bool(nra):
            raise api.invalid(kind, "authorization.k8s.io", "", [
                ("spec.resourceAttributes", "Invalid", ra, "exactly one of nonResourceAttributes or "
                 "resourceAttributes must be specified")])
        if ra:
            info = api.RequestInfo(resource_request=True, verb=ra.get("verb", ""), group=ra.get("group", ""),
                                   version=ra.get("version", ""), namespace=ra.get("namespace", ""),
                                   resource=ra.get("resource", ""), subresource=ra.get("subresource", ""),
                                   name=ra.get("name", ""))
        else:
            info = api.RequestInfo(path=nra.get("path", ""), verb=nra.get("verb", ""))
        allowed, reason = self.state.authz.authorize(username, groups, info)
        status = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        self._json(201, {"kind": kind, "apiVersion": "authorization.k8s.io/v1",
                         "metadata": {"creationTimestamp": None}, "spec": spec, "status": status})

    def _subjectaccessreviews(self, review):
        spec = review.get("spec") or {}
        if not spec.get("user") and not spec.get("groups"):
            raise api.invalid("SubjectAccessReview", "authorization.k8s.io", "", [
                ("spec.user", "Invalid", "", "at least one of user or group must be specified")])
        self._access_review("SubjectAccessReview", spec, spec.get("user", ""), spec.get("groups") or [])

    def _selfsubjectaccessreviews(self, review):
        self._access_review("SelfSubjectAccessReview", review.get("spec") or {},
                            self.user["username"], self.user["groups"])

    def _selfsubjectreviews(self, _review):
        info = {k: v for k, v in self.user.items() if v}
        self._json(201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"creationTimestamp": None}, "status": {"userInfo": info}})


class ControlHandler(BaseHTTPRequestHandler):
    """The control port: plain HTTP JSON for specs."""

    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def _reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else None
            self._reply(200, self._route(self.command, urllib.parse.urlsplit(self.path), body))
        except (ValueError, KeyError, TypeError, OSError, api.ApiError) as err:
            self._reply(400, {"error": "%s: %s" % (type(err).__name__, err)})

    do_GET = do_PUT = do_POST = do_DELETE = _dispatch

    def _route(self, method, url, body):
        st, path = self.state, url.path.rstrip("/")
        store = st.store
        if path == "/healthz":
            return {"ok": True}
        if path == "/nodes" and method == "PUT":
            store.replace_all("nodes", [kube_store.node_from_shorthand(n) for n in body])
            return {"count": len(body)}
        if path.startswith("/nodes/") and method == "PUT":
            return store.put("nodes", "", kube_store.node_from_shorthand(dict(body, name=path[7:])
                                                                          if "metadata" not in body else body))
        if path.startswith("/nodes/") and method == "DELETE":
            return store.delete("nodes", "", path[7:])
        if path == "/configmap" and method == "PUT":
            st.set_configmap(body.get("data", body) if isinstance(body.get("data"), dict) else body)
        if path in ("/nodes", "/events", "/leases", "/configmap") and method in ("GET", "PUT"):
            resource = {"/configmap": "configmaps"}.get(path, path[1:])
            if path == "/leases" and method == "PUT":
                store.replace_all("leases", body)
            items, _ = store.list(resource, None, lambda o: True)
            return items[0] if path == "/configmap" else items
        if path == "/events" and method == "DELETE":
            store.replace_all("events", [])
            return {"ok": True}
        if path == "/rbac":
            if method == "PUT":
                rules = body if isinstance(body, list) else body.get("rules", [])
                defaults = True if isinstance(body, list) else body.get("defaults", True)
                st.authz.set_rules(rules, defaults)
            return {"rules": st.authz.rules, "defaults": st.authz.defaults}
        if path == "/tokens":
            if method == "PUT":
                st.tokens = dict(body)
            return st.tokens
        if path == "/faults":
            if method == "PUT":
                st.faults.replace(body)
            return st.faults.table
        if path == "/backend":
            if method == "PUT":
                changes = dict(body)
                if "port" in changes:
                    changes["url"] = "https://127.0.0.1:%d" % int(changes.pop("port"))
                st.proxy.configure(changes)
            return st.proxy.settings
        if path == "/requests":
            if method == "DELETE":
                with st.req_lock:
                    st.requests = []
                return {"ok": True}
            since = int((urllib.parse.parse_qs(url.query).get("since") or ["0"])[0])
            with st.req_lock:
                return [r for r in st.requests if r["id"] > since]
        raise KeyError("no control route %s %s" % (method, path))


class TLSServer(ThreadingHTTPServer):
    """Threading server whose TLS handshake runs in the connection's thread.
    Its listen backlog is Go's (SOMAXCONN): Python's default of 5 drops the
    SYNs of a burst of new connections, which then wait a 1 s retransmit."""

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN
    ssl_context = None

    def finish_request(self, request, client_address):
        # Go's net/http sets TCP_NODELAY; without it a header write followed by
        # a body write waits ~40 ms on the client's delayed ACK.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:
            return None
        with tls:
            return super().finish_request(tls, client_address)

    def handle_error(self, request, client_address):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="JSON configuration file")
    parser.add_argument("--lifetime", type=float, default=900, help="exit after this many seconds")
    args = parser.parse_args()
    cfg = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            cfg = json.load(f)
    pki = cfg.get("pki", ".")
    state = State(cfg)
    ApiHandler.state = ControlHandler.state = state

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg.get("serving_cert", os.path.join(pki, "serving.crt")),
                        cfg.get("serving_key", os.path.join(pki, "serving.key")))
    ctx.load_verify_locations(cfg.get("client_ca", os.path.join(pki, "client-ca.crt")))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    api_server = TLSServer(("127.0.0.1", 0), ApiHandler)
    api_server.ssl_context = ctx
    control = TLSServer(("127.0.0.1", 0), ControlHandler)
    for srv in (api_server, control):
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    print(json.dumps({"api_port": api_server.server_address[1], "control_port": control.server_address[1],
                      "pid": os.getpid()}), flush=True)
    time.sleep(args.lifetime)
    os._exit(0)


if __name__ == "__main__":
    main()
