"""What cloud-init makes of an instance's user data, as far as ec2sim needs
it: the cloud-config that sets the instance's SSH host keys.

User data reaches RunInstances base64-encoded and is limited to 16 KB
before encoding ("Work with instance user data", EC2 User Guide).
cloud-init reads it as its "User-data formats" page says: gzip is
decompressed first; a document with a MIME-Version header in its first
4096 bytes is a MIME message whose parts are walked (nested multiparts
too), each part's type from its Content-Type, or from its first line
when the type is text/plain or text/x-not-multipart
(cloudinit/user_data.py); a part starting "#cloud-config" is
text/cloud-config.  Cloud-config parts merge with dict(replace) by
default, so a later part's top-level key replaces an earlier one's
(cloudinit/handlers/cloud_config.py, DEF_MERGERS).  The ssh module
(cc_ssh) then writes ssh_keys' <type>_private/_public to
/etc/ssh/ssh_host_<type>_key[.pub] and generates no key when ssh_keys is
given.  Python's email and yaml packages parse, as cloud-init's do.
"""

import base64
import binascii
import email
import gzip

import yaml

from sim_model import ApiError

USER_DATA_MAX = 16384

# cloud-init's handlers.type_from_starts_with, the ones that matter here
# (everything else is some other handler's, not cloud-config).
STARTS_WITH = (("#cloud-config-jsonp", "text/cloud-config-jsonp"),
               ("#cloud-config", "text/cloud-config"),
               ("#!", "text/x-shellscript"),
               ("#include", "text/x-include-url"),
               ("#cloud-boothook", "text/cloud-boothook"),
               ("#part-handler", "text/part-handler"),
               ("## template: jinja", "text/jinja2"))
FIND_TYPE = ("text/plain", "text/x-not-multipart", "text/x-shellscript")
GZIP_TYPES = ("application/gzip", "application/x-gzip")


def decode(b64):
    """RunInstances' UserData parameter -> raw bytes, or the ApiError
    EC2 answers."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("InvalidParameterValue",
                       "Invalid BASE64 encoding of user data.")
    if len(raw) > USER_DATA_MAX:
        raise ApiError("InvalidParameterValue",
                       f"User data is limited to {USER_DATA_MAX} bytes")
    return raw


def _type_of(payload):
    text = payload.decode("utf-8", "replace").lstrip()
    for prefix, ctype in STARTS_WITH:
        if text.startswith(prefix):
            return ctype
    return "text/plain"


def _gunzip(data):
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError):
            return data
    return data


def cloud_config_parts(raw):
    """The payloads (bytes) of the cloud-config parts of raw user data,
    in order."""
    raw = _gunzip(raw)
    if b"mime-version:" not in raw[:4096].lower():
        return [raw] if _type_of(raw) == "text/cloud-config" else []
    msg = email.message_from_bytes(raw)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        payload = part.get_payload(decode=True) or b""
        if ctype in GZIP_TYPES:
            payload, ctype = _gunzip(payload), "text/plain"
        if ctype in FIND_TYPE:
            ctype = _type_of(payload)
        if ctype == "text/cloud-config":
            out.append(payload)
    return out


def cloud_config(raw):
    """The merged cloud-config of raw user data (a dict, maybe empty);
    a part that is not YAML is skipped, as cloud-init logs and skips
    it."""
    merged = {}
    for payload in cloud_config_parts(raw):
        try:
            doc = yaml.safe_load(payload)
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict):
            merged.update(doc)      # dict(replace)
    return merged


def ssh_host_key(cfg):
    """(private, public or None) for ed25519 from ssh_keys, or None.
    Only ed25519 is modelled: ec2sim's sshd has one host key."""
    keys = cfg.get("ssh_keys")
    if not isinstance(keys, dict):
        return None
    priv = keys.get("ed25519_private")
    if not isinstance(priv, str):
        return None
    pub = keys.get("ed25519_public")
    return priv, pub if isinstance(pub, str) else None
