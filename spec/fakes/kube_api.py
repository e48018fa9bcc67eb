# SPDX-License-Identifier: Apache-2.0
"""Kubernetes API semantics for the fake kube-apiserver (Python 3 stdlib only).

metav1.Status errors worded as k8s.io/apimachinery words them, RequestInfo derivation
(k8s.io/apiserver pkg/endpoints/request/requestinfo.go), RBAC rule evaluation
(kubernetes pkg/apis/rbac/v1/evaluation_helpers.go), label/field selectors and the
Table rendering of core Nodes that kubectl asks for.
"""
import calendar
import re
import time

# ---------------------------------------------------------------------------
# metav1.Status errors (k8s.io/apimachinery/pkg/api/errors)


class ApiError(Exception):
    """An error answered as a metav1.Status with `code` and `reason`."""

    def __init__(self, code, reason, message, details=None, headers=()):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = list(headers)

    def status(self):
        """The metav1.Status document (field order as Go writes it)."""
        doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason}
        if self.details is not None:
            doc["details"] = self.details
        doc["code"] = self.code
        return doc


def qualified(resource, group):
    """schema.GroupResource.String(): `nodes`, `leases.coordination.k8s.io`."""
    return resource + "." + group if group else resource


def _details(name, group, kind, **extra):
    out = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    out.update(extra)
    return out


def not_found(resource, group, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(resource, group), name),
                    _details(name, group, resource))


def not_found_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource, group, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (qualified(resource, group), name),
                    _details(name, group, resource))


def conflict(resource, group, name, why):
    msg = 'Operation cannot be fulfilled on %s "%s": %s' % (qualified(resource, group), name, why)
    return ApiError(409, "Conflict", msg, _details(name, group, resource))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def method_not_allowed(action, resource, group):
    msg = '%s is not supported on resources of kind "%s"' % (action, qualified(resource, group))
    return ApiError(405, "MethodNotAllowed", msg, _details("", group, resource))


def invalid(kind, group, name, causes):
    """NewInvalid: causes are (field, type, value, detail) with type Required/Invalid."""
    texts, out = [], []
    for field, kind_of, value, detail in causes:
        if kind_of == "Required":
            text = "Required value" + (": " + detail if detail else "")
        else:
            text = 'Invalid value: "%s": %s' % (value, detail)
        texts.append("%s: %s" % (field, text))
        out.append({"reason": "FieldValue" + kind_of, "message": text, "field": field})
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    gk = kind + "." + group if group else kind
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (gk, name, joined),
                    _details(name, group, kind, causes=out))


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal(message):
    return ApiError(500, "InternalError", "Internal error occurred: " + message,
                    {"causes": [{"message": message}]})


def timeout(message):
    return ApiError(504, "Timeout", "Timeout: " + message, {})


def from_fault(code, message=None, retry_after=None):
    """An injected error: reason and default wording chosen by HTTP code."""
    reasons = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               409: "Conflict", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
               503: "ServiceUnavailable", 504: "Timeout"}
    defaults = {429: "Too many requests, please try again later.",
                500: "Internal error occurred: injected fault",
                503: "The server is currently unable to handle the request (injected fault)",
                504: "Timeout: request did not complete within requested timeout - injected fault"}
    details, headers = {}, []
    if retry_after is not None:
        details["retryAfterSeconds"] = int(retry_after)
        headers.append(("Retry-After", str(int(retry_after))))
    return ApiError(code, reasons.get(code, ""), message or defaults.get(code, "injected fault"),
                    details, headers)


# ---------------------------------------------------------------------------
# RequestInfo (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go)

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}


class RequestInfo:
    """The authorization attributes kube derives from method, path and query."""

    def __init__(self, **kw):
        self.resource_request = kw.get("resource_request", False)
        self.path = kw.get("path", "")
        self.verb = kw.get("verb", "")
        self.group = kw.get("group", "")
        self.version = kw.get("version", "")
        self.namespace = kw.get("namespace", "")
        self.resource = kw.get("resource", "")
        self.subresource = kw.get("subresource", "")
        self.name = kw.get("name", "")
        self.parts = kw.get("parts", [])

    def as_dict(self):
        return dict(vars(self))


def request_info(method, path, query):
    """Derive RequestInfo like kube-apiserver (query: dict of lists)."""
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    nonres = RequestInfo(path=path, verb=method.lower())
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonres
    info = RequestInfo(path=path, resource_request=True)
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return nonres
        info.group, rest = rest[0], rest[1:]
    info.version, rest = rest[0], rest[1:]
    if rest[0] in ("proxy", "watch") and len(rest) >= 2:
        info.verb, rest = rest[0], rest[1:]
    else:
        info.verb = _VERBS.get(method, "")
    if rest[0] == "namespaces":
        if len(rest) > 1:
            info.namespace = rest[1]
            if len(rest) > 2 and rest[2] not in ("status", "finalize"):
                rest = rest[2:]
    info.parts = rest
    if len(rest) >= 3 and info.verb not in ("proxy",):
        info.subresource = rest[2]
    if len(rest) >= 2:
        info.name = rest[1]
    info.resource = rest[0]
    if not info.name and info.verb == "get":
        watch = (query.get("watch") or [""])[0].lower()
        info.verb = "watch" if watch not in ("", "false", "0") else "list"
        for term in (query.get("fieldSelector") or [""])[0].split(","):
            m = re.match(r"^metadata\.name==?(.+)$", term.strip())
            if m and "/" not in m.group(1) and m.group(1) not in (".", ".."):
                info.name = m.group(1)
    if not info.name and info.verb == "delete":
        info.verb = "deletecollection"
    return info


def forbidden(info, username, reason=""):
    """responsewriters.Forbidden: the message kubectl prints after `Error from server (Forbidden): `."""
    if not info.resource_request:
        why = 'User "%s" cannot %s path "%s"' % (username, info.verb, info.path)
    else:
        res = info.resource + ("/" + info.subresource if info.subresource else "")
        where = ('in the namespace "%s"' % info.namespace if info.namespace else "at the cluster scope")
        why = 'User "%s" cannot %s resource "%s" in API group "%s" %s' % (
            username, info.verb, res, info.group, where)
    if reason:
        why += ": " + reason
    if not info.resource_request:
        return ApiError(403, "Forbidden", "forbidden: " + why, {})
    q = qualified(info.resource, info.group)
    msg = ('%s "%s" is forbidden: %s' % (q, info.name, why) if info.name
           else "%s is forbidden: %s" % (q, why))
    return ApiError(403, "Forbidden", msg, _details(info.name, info.group, info.resource))


# ---------------------------------------------------------------------------
# RBAC

DEFAULT_RULES = [
    {"name": "system:discovery", "subjects": {"groups": ["system:authenticated"]}, "verbs": ["get"],
     "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                         "/openapi/*", "/readyz", "/version", "/version/"]},
    {"name": "system:public-info-viewer",
     "subjects": {"groups": ["system:authenticated", "system:unauthenticated"]}, "verbs": ["get"],
     "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]},
    {"name": "system:basic-user", "subjects": {"groups": ["system:authenticated"]},
     "verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
    {"name": "system:basic-user", "subjects": {"groups": ["system:authenticated"]},
     "verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
]


def _has(values, wanted):
    return "*" in values or wanted in values


def _resource_matches(rule_resources, combined, sub):
    for r in rule_resources:
        if r in ("*", combined):
            return True
        if sub and r == "*/" + sub:
            return True
    return False


def _url_matches(urls, path):
    return any(u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in urls)


def rule_allows(rule, info):
    """One PolicyRule against one RequestInfo (VerbMatches, APIGroupMatches, ...)."""
    if not _has(rule.get("verbs", []), info.verb):
        return False
    if not info.resource_request:
        return _url_matches(rule.get("nonResourceURLs", []), info.path)
    if rule.get("namespaces") and info.namespace not in rule["namespaces"]:
        return False  # a RoleBinding: only inside its namespaces
    if not _has(rule.get("apiGroups", []), info.group):
        return False
    combined = info.resource + ("/" + info.subresource if info.subresource else "")
    if not _resource_matches(rule.get("resources", []), combined, info.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or info.name in names


class Authorizer:
    """system:masters first (no reason), then the RBAC rules (reason names the binding)."""

    def __init__(self, rules, defaults=True):
        self.set_rules(rules, defaults)

    def set_rules(self, rules, defaults=True):
        self.rules = list(rules or [])
        self.defaults = defaults

    def all_rules(self):
        return (DEFAULT_RULES if self.defaults else []) + self.rules

    def authorize(self, user, groups, info):
        """Returns (allowed, reason)."""
        if "system:masters" in groups:
            return True, ""
        for i, rule in enumerate(self.all_rules()):
            subj = rule.get("subjects", {})
            who = None
            if user in subj.get("users", []):
                who = 'User "%s"' % user
                if user.startswith("system:serviceaccount:") and user.count(":") == 3:
                    ns, sa = user.split(":")[2:]
                    who = 'ServiceAccount "%s/%s"' % (sa, ns)
            else:
                for g in groups:
                    if g in subj.get("groups", []):
                        who = 'Group "%s"' % g
                        break
            if who and rule_allows(rule, info):
                name = rule.get("name") or "rule-%d" % i
                if rule.get("namespaces"):
                    return True, 'RBAC: allowed by RoleBinding "%s/%s" of Role "%s" to %s' % (
                        name, info.namespace, name, who)
                return True, 'RBAC: allowed by ClusterRoleBinding "%s" of ClusterRole "%s" to %s' % (
                    name, name, who)
        return False, ""


# ---------------------------------------------------------------------------
# Selectors

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _split_terms(text):
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms]


def _check_key(key):
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request('unable to parse requirement: invalid label key "%s"' % key)


def parse_label_selector(text):
    """Returns predicate(labels) for `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a)`."""
    reqs = []
    for term in _split_terms(text or ""):
        if not term:
            if text and text.strip():
                raise bad_request("unable to parse requirement: found '', expected: identifier")
            continue
        m = re.match(r"^(\S+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        elif term.startswith("!"):
            key, op, vals = term[1:].strip(), "!", None
        else:
            m = re.match(r"^([^=!\s]+)\s*(==|!=|=)\s*(\S*)$", term)
            if m:
                key, op, vals = m.group(1), m.group(2), m.group(3)
            elif re.match(r"^[^=!\s()]+$", term):
                key, op, vals = term, "exists", None
            else:
                raise bad_request("unable to parse requirement: %s" % term)
        _check_key(key)
        reqs.append((key, op, vals))

    def match(labels):
        for key, op, vals in reqs:
            have = key in labels
            val = labels.get(key)
            ok = {"exists": have, "!": not have, "=": have and val == vals, "==": have and val == vals,
                  "!=": not have or val != vals, "in": have and val in (vals or ()),
                  "notin": not have or val not in (vals or ())}[op]
            if not ok:
                return False
        return True
    return match


def parse_field_selector(text, fields):
    """fields: name -> getter(obj). Returns predicate(obj); unknown fields are a 400."""
    reqs = []
    for term in _split_terms(text or ""):
        if not term:
            continue
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", term)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, term))
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in fields:
            raise bad_request('field label not supported: %s' % field)
        reqs.append((fields[field], op, value))
    return lambda obj: all((get(obj) == v) == (op != "!=") for get, op, v in reqs)


# ---------------------------------------------------------------------------
# Table (kubectl get nodes asks for meta.k8s.io/v1 Table)


def wants_table(accept):
    first = (accept or "").split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 192:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    return "%dy" % (h // (24 * 365))


def _age(ts):
    try:
        created = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return "<unknown>"
    return human_duration(time.time() - created)


def _node_status(node):
    ready = "Unknown"
    for c in node.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            ready = "Ready" if c.get("status") == "True" else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    return ready


def node_table(nodes, list_meta):
    """A meta.k8s.io/v1 Table of Nodes like kube's node printer (NAME STATUS ROLES AGE VERSION)."""
    cols = [("Name", "name", 0), ("Status", "", 0), ("Roles", "", 0), ("Age", "", 0), ("Version", "", 0),
            ("Internal-IP", "", 1), ("External-IP", "", 1)]
    rows = []
    for n in nodes:
        meta = n.get("metadata", {})
        roles = sorted(k.split("/", 1)[1] for k in meta.get("labels", {})
                       if k.startswith("node-role.kubernetes.io/"))
        addrs = {a.get("type"): a.get("address") for a in n.get("status", {}).get("addresses", [])}
        cells = [meta.get("name"), _node_status(n), ",".join(roles) or "<none>",
                 _age(meta.get("creationTimestamp")),
                 n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
                 addrs.get("InternalIP", "<none>"), addrs.get("ExternalIP", "<none>")]
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata",
                                                "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": [{"name": c, "type": "string", "format": f, "description": c,
                                   "priority": p} for c, f, p in cols],
            "rows": rows}
