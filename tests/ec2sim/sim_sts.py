"""STS (AssumeRole, AssumeRoleWithWebIdentity) and the ECS/EKS container
credentials endpoint, for the credential chain's tests.

Shapes: the STS API Reference (AssumeRole, AssumeRoleWithWebIdentity,
"Common Errors") and botocore's data/sts/2011-06-15/service-2.json;
the container endpoint as botocore's ContainerMetadataFetcher reads it
and the ECS task-role documentation shows it. Temporary credentials
issued here go into the CredStore with their kind, so EC2 calls signed
with them are checked like any other (token included) and refused with
EC2's RequestExpired once they have expired.
"""

import json
import re
import threading
import time
import xml.etree.ElementTree as ET

from sim_model import ApiError

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
ACTIONS = ("AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity")
_SESSION_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_ROLE_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/([\w+=,.@/-]+)$")
# The status STS answers each error with (API Reference, the errors of
# each action and Common Errors).
STATUS = {"AccessDenied": 403, "ExpiredToken": 400,
          "InvalidIdentityToken": 400, "ValidationError": 400,
          "MissingAuthenticationToken": 403, "InvalidClientTokenId": 403,
          "SignatureDoesNotMatch": 403, "IncompleteSignature": 400,
          "MissingAction": 400, "InvalidAction": 400}


def _iso_s(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def error_xml(code, message, rid):
    root = ET.Element("ErrorResponse", xmlns=STS_NS)
    err = ET.SubElement(root, "Error")
    ET.SubElement(err, "Type").text = "Sender"
    ET.SubElement(err, "Code").text = code
    ET.SubElement(err, "Message").text = message
    ET.SubElement(root, "RequestId").text = rid
    return ET.tostring(root, encoding="utf-8")


class Sts:
    """What tests may set: lifetime (seconds, below STS's 900 minimum so
    that expiry happens during a test), external_id (the role's trust
    policy condition sts:ExternalId), web_token (the only token the
    identity provider accepts), container_token (the Authorization the
    container agent wants)."""

    def __init__(self, sim):
        self.sim = sim
        self.lock = threading.Lock()
        self.lifetime = None
        self.external_id = None
        self.web_token = None
        self.container_token = None
        self.container_fault = None
        self.issued = []

    def control(self, body):
        with self.lock:
            for k in ("lifetime", "external_id", "web_token",
                      "container_token", "container_fault"):
                if k in body:
                    setattr(self, k, body[k])
            return {"lifetime": self.lifetime,
                    "external_id": self.external_id,
                    "web_token": self.web_token is not None,
                    "container_token": self.container_token is not None,
                    "container_fault": self.container_fault,
                    "issued": list(self.issued)}

    def _issue(self, kind, duration, info):
        with self.lock:
            life = self.lifetime if self.lifetime is not None else duration
        c = self.sim.creds.issue(kind, float(life))
        # The secrets too: tests look for them where they must not be.
        rec = {"kind": kind, "access_key": c["AccessKeyId"],
               "secret_key": c["SecretAccessKey"], "token": c["Token"],
               "expires": _iso_s(c["expires"]), **info}
        with self.lock:
            self.issued.append(rec)
        return c

    def handle(self, action, flat, signer_kind):
        """-> reply XML bytes; raises ApiError as STS would."""
        if action == "GetCallerIdentity":
            return self._reply(action, {"Account": self.sim.world.account,
                                        "Arn": "arn:aws:iam::"
                                        + self.sim.world.account
                                        + ":user/ec2sim",
                                        "UserId": "AIDAEC2SIM"})
        arn = flat.get("RoleArn")
        name = flat.get("RoleSessionName")
        for key, v in (("roleArn", arn), ("roleSessionName", name)):
            if v is None:
                raise ApiError("ValidationError", f"1 validation error "
                               f"detected: Value null at '{key}' failed "
                               f"to satisfy constraint: Member must not "
                               f"be null", 400)
        if not _SESSION_RE.match(name):
            raise ApiError("ValidationError", f"1 validation error "
                           f"detected: Value '{name}' at "
                           f"'roleSessionName' failed to satisfy "
                           f"constraint: Member must satisfy regular "
                           f"expression pattern: [\\w+=,.@-]*", 400)
        m = _ROLE_RE.match(arn)
        if not m:
            raise ApiError("ValidationError", f"{arn} is invalid", 400)
        dur = flat.get("DurationSeconds", "3600")
        if not dur.isdigit() or not 900 <= int(dur) <= 43200:
            raise ApiError("ValidationError", f"1 validation error "
                           f"detected: Value '{dur}' at 'durationSeconds'"
                           f" failed to satisfy constraint: Member must "
                           f"have value greater than or equal to 900",
                           400)
        account, role = m.group(1), m.group(2).split("/")[-1]
        if action == "AssumeRole":
            with self.lock:
                want = self.external_id
            if want is not None and flat.get("ExternalId") != want:
                raise ApiError("AccessDenied", f"User: arn:aws:iam::"
                               f"{account}:user/ec2sim is not authorized "
                               f"to perform: sts:AssumeRole on resource: "
                               f"{arn}", 403)
            kind = "assumed-role"
        else:
            tok = flat.get("WebIdentityToken") or ""
            with self.lock:
                want = self.web_token
            if len(tok) < 4 or (want is not None and tok != want):
                raise ApiError("InvalidIdentityToken", "Couldn't "
                               "retrieve verification key from your "
                               "identity provider, please reference "
                               "AssumeRoleWithWebIdentity documentation "
                               "for requirements", 400)
            kind = "web-identity"
        c = self._issue(kind, int(dur), {"role_arn": arn,
                                         "session": name,
                                         "signed_by": signer_kind})
        result = {
            "Credentials": {"AccessKeyId": c["AccessKeyId"],
                            "SecretAccessKey": c["SecretAccessKey"],
                            "SessionToken": c["Token"],
                            "Expiration": _iso_s(c["expires"])},
            "AssumedRoleUser": {
                "Arn": f"arn:aws:sts::{account}:assumed-role/{role}/{name}",
                "AssumedRoleId": f"AROAEC2SIM{role.upper()[:10]}:{name}"},
            "PackedPolicySize": "0",
        }
        if action == "AssumeRoleWithWebIdentity":
            result["SubjectFromWebIdentityToken"] = "system:serviceaccount:"\
                "ops:failoverd"
            result["Audience"] = "sts.amazonaws.com"
            result["Provider"] = "oidc.ec2sim.test"
        return self._reply(action, result)

    def _reply(self, action, result):
        root = ET.Element(action + "Response", xmlns=STS_NS)
        res = ET.SubElement(root, action + "Result")

        def put(parent, d):
            for k, v in d.items():
                e = ET.SubElement(parent, k)
                if isinstance(v, dict):
                    put(e, v)
                else:
                    e.text = v
        put(res, result)
        md = ET.SubElement(root, "ResponseMetadata")
        ET.SubElement(md, "RequestId").text = "ec2sim"
        return ET.tostring(root, encoding="utf-8")

    def container(self, path, auth):
        """-> (status, body dict) of the container credentials agent."""
        with self.lock:
            want = self.container_token
            fault = self.container_fault
        if fault == "hang":
            self.sim.stopping.wait(3600)
            return None, None
        if fault == "error500":
            return 500, {"code": "InternalServerError",
                         "message": "injected by ec2sim"}
        if want is not None and auth != want:
            return 401, {"code": "AccessDenied",
                         "message": "Authorization header is invalid"}
        if not (path.startswith("/v2/credentials/")
                or path == "/v1/credentials"):
            return 404, {"code": "NotFound", "message": "no such path"}
        role = f"arn:aws:iam::{self.sim.world.account}:role/ec2sim-task"
        c = self._issue("container", 21600, {"role_arn": role,
                                             "path": path})
        return 200, {"RoleArn": role, "AccessKeyId": c["AccessKeyId"],
                     "SecretAccessKey": c["SecretAccessKey"],
                     "Token": c["Token"],
                     "Expiration": _iso_s(c["expires"])}


def reply_json(h, status, obj):
    data = json.dumps(obj, indent=1).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
