"""EC2 Query protocol on top of botocore's EC2 service model.

The model is the authority for action names, parameter names (as the
EC2 protocol serializes them: Filter.1.Value.2, TagSpecification.1...),
parameter types and the element names of replies.  Handlers work with
plain dicts keyed by the model's member names (InstanceIds, Filters...)
in both directions, so a misspelt reply member is caught here instead
of silently producing XML a real client cannot read.
"""

import copy
import datetime
import xml.etree.ElementTree as ET

import botocore.loaders
import botocore.model

import sim_overlay

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
API_VERSION = "2016-11-15"

# AWS's HTTP statuses for the codes we return; every other code is 400.
STATUS = {
    "AuthFailure": 401,
    "MissingAuthenticationToken": 401,
    "SignatureDoesNotMatch": 403,
    "UnauthorizedOperation": 403,
    "OptInRequired": 403,
    "DryRunOperation": 412,
    "RequestLimitExceeded": 503,
    "Unavailable": 503,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    # "Error codes for the Amazon EC2 API" lists these under "Server
    # error codes", which come "with a 500-series HTTP response code".
    "InsufficientInstanceCapacity": 500,
    "InsufficientCapacity": 500,
    "InsufficientHostCapacity": 500,
    "InsufficientReservedInstanceCapacity": 500,
    "InsufficientAddressCapacity": 500,
    "InsufficientVolumeCapacity": 500,
    "ServerInternal": 500,
}


class ApiError(Exception):
    """An EC2 error reply: code, message, HTTP status."""

    def __init__(self, code, message, status=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)


def error_xml(code, message, request_id):
    root = ET.Element("Response")
    errors = ET.SubElement(root, "Errors")
    err = ET.SubElement(errors, "Error")
    ET.SubElement(err, "Code").text = code
    ET.SubElement(err, "Message").text = message
    ET.SubElement(root, "RequestID").text = request_id
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="utf-8"))


def iso(ts):
    """Epoch seconds -> EC2's timestamp text (millisecond precision)."""
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
        dt.microsecond // 1000)


class Ec2Model:
    def __init__(self):
        self._raw = botocore.loaders.Loader().load_service_model(
            "ec2", "service-2")
        self.refused = []
        self._build()

    def _build(self):
        # Debian's model plus the newer documented members
        # (sim_overlay), less those this endpoint refuses.
        data = sim_overlay.apply(copy.deepcopy(self._raw), self.refused)
        self._in_names = {}
        self.service = botocore.model.ServiceModel(data)
        self.operations = set(self.service.operation_names)

    def refuse(self, names):
        """Act as an endpoint that predates these overlay entries
        ("StopInstances.SkipOsShutdown"): they are unknown again."""
        known = sim_overlay.names()
        for n in names:
            if n not in known:
                raise ValueError(f"overlay entry {n!r} unknown; one of "
                                 f"{known}")
        self.refused = list(names)
        self._build()

    def operation(self, name):
        return self.service.operation_model(name)

    # ---------------------------------------------------------------
    # Input: flat query parameters -> nested dict of member names
    # ---------------------------------------------------------------
    @staticmethod
    def _query_name(member_name, shape):
        # Same rule as botocore's EC2Serializer._get_serialized_name.
        ser = shape.serialization
        if "queryName" in ser:
            return ser["queryName"]
        if "name" in ser:
            return ser["name"][0].upper() + ser["name"][1:]
        return member_name

    def _input_names(self, shape):
        names = self._in_names.get(id(shape))
        if names is None:
            names = {self._query_name(m, s): (m, s)
                     for m, s in shape.members.items()}
            self._in_names[id(shape)] = names
        return names

    def parse_input(self, op, flat):
        """flat: {"InstanceId.1": "i-..."} without Action/Version."""
        shape = op.input_shape
        tree = {}
        if shape is None:
            if flat:
                key = sorted(flat)[0]
                raise ApiError("UnknownParameter",
                               f"The parameter {key} is not recognized")
            return {}
        for key in sorted(flat):
            self._insert(tree, shape, key.split("."), flat[key], key)
        return self._convert(shape, tree, "")

    def _insert(self, node, shape, parts, value, key):
        unknown = ApiError("UnknownParameter",
                           f"The parameter {key} is not recognized")
        if shape.type_name == "structure":
            if not parts:
                raise unknown
            hit = self._input_names(shape).get(parts[0])
            if hit is None:
                raise unknown
            member, mshape = hit
            if mshape.type_name in ("structure", "list", "map"):
                child = node.setdefault(member, {})
                if not isinstance(child, dict):
                    raise unknown
                self._insert(child, mshape, parts[1:], value, key)
            else:
                if len(parts) != 1:
                    raise unknown
                node[member] = value
        elif shape.type_name == "list":
            if not parts or not parts[0].isdigit() or int(parts[0]) < 1:
                raise unknown
            idx = int(parts[0])
            mshape = shape.member
            if mshape.type_name in ("structure", "list", "map"):
                child = node.setdefault(idx, {})
                self._insert(child, mshape, parts[1:], value, key)
            else:
                if len(parts) != 1:
                    raise unknown
                node[idx] = value
        else:
            raise unknown

    def _convert(self, shape, node, path):
        t = shape.type_name
        if t == "structure":
            out = {}
            for member, sub in node.items():
                out[member] = self._convert(
                    shape.members[member], sub,
                    f"{path}.{member}" if path else member)
            for req in shape.required_members:
                if req not in out:
                    name = self._query_name(req, shape.members[req])
                    raise ApiError(
                        "MissingParameter",
                        f"The request must contain the parameter {name}")
            return out
        if t == "list":
            return [self._convert(shape.member, node[i], path)
                    for i in sorted(node)]
        if t == "map":
            raise ApiError("UnknownParameter",
                           f"The parameter {path} is not recognized")
        return self._scalar(shape, node, path)

    @staticmethod
    def _scalar(shape, text, path):
        t = shape.type_name
        bad = ApiError("InvalidParameterValue",
                       f"Value ({text}) for parameter {path} is invalid.")
        if t in ("integer", "long"):
            try:
                return int(text)
            except ValueError:
                raise bad from None
        if t in ("double", "float"):
            try:
                return float(text)
            except ValueError:
                raise bad from None
        if t == "boolean":
            low = text.lower()
            if low not in ("true", "false"):
                raise bad
            return low == "true"
        if t == "string" and shape.enum and text not in shape.enum:
            raise ApiError(
                "InvalidParameterValue",
                f"Value ({text}) for parameter {path} is invalid. "
                f"Valid values: {', '.join(shape.enum)}")
        return text

    # ---------------------------------------------------------------
    # Output: dict of member names -> EC2 XML
    # ---------------------------------------------------------------
    def reply_xml(self, op, result, request_id):
        root = ET.Element(f"{op.name}Response", {"xmlns": NAMESPACE})
        ET.SubElement(root, "requestId").text = request_id
        shape = op.output_shape
        if shape is None or not shape.members:
            # EC2 answers actions without an output shape with <return>.
            ET.SubElement(root, "return").text = "true"
        else:
            self._emit_members(root, shape, result, op.name)
        return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                + ET.tostring(root, encoding="utf-8"))

    def _emit_members(self, parent, shape, value, path):
        for member, sub in value.items():
            if sub is None:
                continue
            mshape = shape.members.get(member)
            if mshape is None:
                raise KeyError(f"{path}: no member {member} in "
                               f"{shape.name}")
            name = mshape.serialization.get("name", member)
            self._emit(parent, name, mshape, sub, f"{path}.{member}")

    def _emit(self, parent, name, shape, value, path):
        el = ET.SubElement(parent, name)
        t = shape.type_name
        if t == "structure":
            if not isinstance(value, dict):
                raise TypeError(f"{path}: expected dict")
            self._emit_members(el, shape, value, path)
        elif t == "list":
            item = shape.member.serialization.get("name", "item")
            for v in value:
                self._emit(el, item, shape.member, v, path + "[]")
        elif t == "boolean":
            el.text = "true" if value else "false"
        elif t == "timestamp":
            el.text = iso(value) if isinstance(value, (int, float)) \
                else str(value)
        else:
            el.text = str(value)
