# SPDX-License-Identifier: Apache-2.0
"""Decodes the few Kubernetes protobuf bodies kubectl sends to this fake (client-go typed
clients POST `application/vnd.kubernetes.protobuf`): the `k8s\\0` + runtime.Unknown envelope
and the review kinds (field numbers from k8s.io/api generated.proto). Returns JSON-shaped dicts.
"""
MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# message -> field number -> (json name, type, repeated); type: "string", "bytes", a message
# name, or "map:<value message>"
SCHEMAS = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", "bytes", False)},
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {1: ("name", "string", False), 2: ("generateName", "string", False),
                   3: ("namespace", "string", False)},
    "ResourceAttributes": {i + 1: (n, "string", False) for i, n in enumerate(
        ("namespace", "verb", "group", "version", "resource", "subresource", "name"))},
    "NonResourceAttributes": {1: ("path", "string", False), 2: ("verb", "string", False)},
    "ExtraValue": {1: ("items", "string", True)},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", False),
                                2: ("nonResourceAttributes", "NonResourceAttributes", False),
                                3: ("user", "string", False), 4: ("groups", "string", True),
                                5: ("extra", "map:ExtraValue", False), 6: ("uid", "string", False)},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", False),
                                    2: ("nonResourceAttributes", "NonResourceAttributes", False)},
    "SubjectAccessReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "SubjectAccessReviewSpec", False)},
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta", False),
                                2: ("spec", "SelfSubjectAccessReviewSpec", False)},
    "TokenReviewSpec": {1: ("token", "string", False), 2: ("audiences", "string", True)},
    "TokenReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "TokenReviewSpec", False)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", False)},
}


class ProtoError(ValueError):
    pass


def _varint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(buf):
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + size]), pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise ProtoError("unsupported wire type %d" % wire)
        yield num, value


def decode(buf, message):
    """One message into a dict; unknown field numbers are skipped."""
    schema, out = SCHEMAS[message], {}
    for num, value in _fields(buf):
        if num not in schema:
            continue
        name, kind, repeated = schema[num]
        if kind == "string":
            value = value.decode("utf-8")
        elif kind.startswith("map:"):
            entry = dict(_fields(value))
            items = decode(entry.get(2, b""), kind[4:]).get("items", [])
            out.setdefault(name, {})[entry.get(1, b"").decode()] = items
            continue
        elif kind != "bytes":
            value = decode(value, kind)
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def decode_object(body):
    """A `k8s\\0`-framed object as {"apiVersion", "kind", ...fields}; ProtoError if not decodable."""
    if not body.startswith(MAGIC):
        raise ProtoError("missing k8s protobuf magic")
    unknown = decode(body[len(MAGIC):], "Unknown")
    meta = unknown.get("typeMeta", {})
    kind = meta.get("kind", "")
    if kind not in SCHEMAS:
        raise ProtoError("this fake cannot decode protobuf %s" % (kind or "objects"))
    obj = {"apiVersion": meta.get("apiVersion", ""), "kind": kind}
    obj.update(decode(unknown.get("raw", b""), kind))
    return obj
