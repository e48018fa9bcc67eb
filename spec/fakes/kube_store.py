# SPDX-License-Identifier: Apache-2.0
"""In-memory object store of the fake kube-apiserver: one resourceVersion counter for all
objects (as etcd's revision), optimistic concurrency, list paging and a change log for watch.
"""
import base64
import copy
import json
import random
import string
import threading
import time
import uuid

import kube_api as api

# resource -> (group, Kind, namespaced)
KINDS = {
    "nodes": ("", "Node", False),
    "configmaps": ("", "ConfigMap", True),
    "events": ("", "Event", True),
    "leases": ("coordination.k8s.io", "Lease", True),
}
LOG_LIMIT = 2000


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def api_version(resource):
    group = KINDS[resource][0]
    return group + "/v1" if group else "v1"


def typed(resource, obj):
    """The object as a single GET returns it (kind and apiVersion first)."""
    out = {"kind": KINDS[resource][1], "apiVersion": api_version(resource)}
    out.update({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
    return out


def generate_name(meta):
    """generateName + 5 random characters, as kube names objects before validating them."""
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(
            random.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def node_from_shorthand(item):
    """Accept a full Node or {name, labels, providerID, ready, unschedulable, addresses}."""
    if "metadata" in item:
        return copy.deepcopy(item)
    node = {"metadata": {"name": item["name"], "labels": dict(item.get("labels", {}))},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status":
                                                   "True" if item.get("ready", True) else "False"}]}}
    if item.get("annotations"):
        node["metadata"]["annotations"] = dict(item["annotations"])
    if item.get("providerID"):
        node["spec"]["providerID"] = item["providerID"]
    if item.get("unschedulable"):
        node["spec"]["unschedulable"] = True
    if item.get("addresses"):
        node["status"]["addresses"] = item["addresses"]
    node["status"]["nodeInfo"] = {"kubeletVersion": item.get("kubeletVersion", "v1.33.1")}
    return node


class Store:
    """Objects keyed by (resource, namespace, name); every write bumps the shared resourceVersion."""

    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {r: {} for r in KINDS}
        # Each stored object's JSON, made once per write: a list is then a join of these, as
        # kube-apiserver serves lists from its cache of serialized objects (a 500-node page of
        # realistic nodes costs milliseconds there, not the deepcopy and dumps of every object).
        self.encoded = {r: {} for r in KINDS}
        self.log = []  # (rv, resource, type, object)

    def _write(self, resource, key, obj, event):
        self.rv += 1
        if obj is not None:
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[resource][key] = obj
            self.encoded[resource][key] = json.dumps(obj, separators=(",", ":"))
        else:
            obj = self.objects[resource].pop(key)
            self.encoded[resource].pop(key, None)
        self.log.append((self.rv, resource, event, copy.deepcopy(obj)))
        del self.log[:-LOG_LIMIT]
        self.cond.notify_all()
        return copy.deepcopy(obj)

    @staticmethod
    def _fill(resource, ns, obj):
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        if KINDS[resource][2]:
            meta["namespace"] = ns
        for k in ("kind", "apiVersion"):
            obj.pop(k, None)
        return obj

    def replace_all(self, resource, items):
        """Control-port seeding: replace every object of a resource."""
        with self.cond:
            for key in list(self.objects[resource]):
                self._write(resource, key, None, "DELETED")
            for obj in items:
                obj = self._fill(resource, obj.get("metadata", {}).get("namespace", ""), copy.deepcopy(obj))
                key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                self._write(resource, key, obj, "ADDED")

    def put(self, resource, ns, obj):
        """Control-port upsert without preconditions."""
        with self.cond:
            key = (ns, obj["metadata"]["name"])
            old = self.objects[resource].get(key)
            obj = self._fill(resource, ns, copy.deepcopy(obj))
            if old:
                obj["metadata"]["uid"] = old["metadata"]["uid"]
            return self._write(resource, key, obj, "MODIFIED" if old else "ADDED")

    def get(self, resource, ns, name):
        with self.cond:
            obj = self.objects[resource].get((ns, name))
            if obj is None:
                raise api.not_found(resource, KINDS[resource][0], name)
            return copy.deepcopy(obj)

    def create(self, resource, ns, obj):
        group, kind, _ = KINDS[resource]
        meta = obj.setdefault("metadata", {})
        generate_name(meta)
        if not meta.get("name"):
            raise api.invalid(kind, group, "", [("metadata.name", "Required", "",
                                                 "name or generateName is required")])
        if meta.get("resourceVersion"):
            raise api.bad_request("resourceVersion should not be set on objects to be created")
        with self.cond:
            key = (ns, meta["name"])
            if key in self.objects[resource]:
                raise api.already_exists(resource, group, meta["name"])
            return self._write(resource, key, self._fill(resource, ns, obj), "ADDED")

    def update(self, resource, ns, name, obj):
        group = KINDS[resource][0]
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise api.bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (meta["name"], name))
        meta["name"] = name
        with self.cond:
            old = self.objects[resource].get((ns, name))
            if old is None:
                raise api.not_found(resource, group, name)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise api.conflict(resource, group, name, "the object has been modified; please apply "
                                   "your changes to the latest version and try again")
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            return self._write(resource, (ns, name), self._fill(resource, ns, obj), "MODIFIED")

    def delete(self, resource, ns, name, preconditions=None):
        group = KINDS[resource][0]
        with self.cond:
            old = self.objects[resource].get((ns, name))
            if old is None:
                raise api.not_found(resource, group, name)
            want = (preconditions or {}).get("resourceVersion")
            have = old["metadata"]["resourceVersion"]
            if want and want != have:
                raise api.conflict(resource, group, name, "Precondition failed: ResourceVersion in "
                                   "precondition: %s, ResourceVersion in object meta: %s" % (want, have))
            want = (preconditions or {}).get("uid")
            if want and want != old["metadata"]["uid"]:
                raise api.conflict(resource, group, name, "Precondition failed: UID in precondition: "
                                   "%s, UID in object meta: %s" % (want, old["metadata"]["uid"]))
            return self._write(resource, (ns, name), None, "DELETED")

    def list(self, resource, ns, predicate, limit=0, cont="", selective=False):
        """Items sorted by (namespace, name) like etcd keys; returns (items, list metadata)."""
        with self.cond:
            keys, meta = self._select(resource, ns, predicate, limit, cont, selective)
            return [copy.deepcopy(self.objects[resource][k]) for k in keys], meta

    def list_encoded(self, resource, ns, predicate, limit=0, cont="", selective=False):
        """As list, but each item as its stored JSON text."""
        with self.cond:
            keys, meta = self._select(resource, ns, predicate, limit, cont, selective)
            return [self.encoded[resource][k] for k in keys], meta

    def _select(self, resource, ns, predicate, limit, cont, selective):
        """Keys of one page and its list metadata; the caller holds the lock."""
        start = ""
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                start = token["start"]
            except (ValueError, KeyError, TypeError):
                raise api.bad_request("continue key is not valid: %s" % cont) from None
        keys = sorted((k for k in self.objects[resource] if ns is None or k[0] == ns), key="/".join)
        rv = str(self.rv)
        items, meta, selected = [], {"resourceVersion": rv}, 0
        for i, key in enumerate(keys):
            if start and "/".join(key) < start:
                continue
            if not predicate(self.objects[resource][key]):
                continue
            items.append(key)
            selected = i
            if limit and len(items) >= limit:
                break
        rest = keys[selected + 1:] if limit and len(items) >= limit else []
        if rest:
            token = {"v": "meta.k8s.io/v1", "rv": int(rv), "start": "/".join(keys[selected]) + "\x00"}
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")
            if not selective:
                meta["remainingItemCount"] = len(rest)
        return items, meta

    def changes(self, resource, since, timeout):
        """Log entries of `resource` newer than `since`; waits up to `timeout` for one. None: gone."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.log and since < self.log[0][0] - 1 and len(self.log) >= LOG_LIMIT:
                    return None
                out = [e for e in self.log if e[0] > since and e[1] == resource]
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self.cond.wait(left)
