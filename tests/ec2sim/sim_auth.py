"""SigV4 verification with botocore, and the credentials the sim knows.

The signature is recomputed by botocore's SigV4Auth (an implementation
independent of failoverd's C signer) over exactly the headers the client
said it signed, with the client's own timestamp, and compared.
"""

import calendar
import email.utils
import hashlib
import hmac
import re
import secrets
import string
import threading
import time

from botocore.auth import SigV4Auth, SIGV4_TIMESTAMP
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from sim_model import ApiError, iso

# SigV4 ("Elements of an AWS API request signature"): a request must
# reach AWS within five minutes of its timestamp. The EC2 API's error
# page ("Error codes for the Amazon EC2 API", RequestExpired) names 15
# minutes for RequestExpired; between the two EC2 answers AuthFailure
# with a "Signature expired" / "Signature not yet current" message.
MAX_SKEW = 300
EXPIRED_SKEW = 900


class _ExactSigner(SigV4Auth):
    """SigV4Auth restricted to the headers the client listed.

    botocore's client-side signer leaves out User-Agent and friends;
    a server must instead honour whatever SignedHeaders says.
    """

    def __init__(self, creds, service, region, signed):
        super().__init__(creds, service, region)
        self._signed = signed

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                out[name] = value
        return out


def _rand(alphabet, n):
    return "".join(secrets.choice(alphabet) for _ in range(n))


class CredStore:
    """Static keys from the scenario plus rotating IMDS role credentials."""

    def __init__(self, static, lifetime, clock):
        self.static = dict(static)          # access key -> secret
        self.lifetime = lifetime
        self.clock = clock
        self.lock = threading.Lock()
        self.current = None
        self.previous = None
        # Every set handed out by a scheduled rotation stays valid until
        # its own Expiration, as AWS's role credentials do; an expired
        # one is still known for a while (RequestExpired, not
        # AuthFailure). A forced rotation revokes all but the last two.
        self.known = {}
        self.issued = 0

    def _new(self):
        now = self.clock()
        return {
            "AccessKeyId": "ASIA" + _rand(string.ascii_uppercase
                                          + string.digits, 16),
            "SecretAccessKey": _rand(string.ascii_letters + string.digits
                                     + "/+", 40),
            "Token": "IQoJec2sim" + _rand(string.ascii_letters
                                          + string.digits, 120),
            "issued": now,
            "expires": now + self.lifetime,
        }

    def _rotate_locked(self, force=False):
        now = self.clock()
        cur = self.current
        # AWS hands out new credentials well before the old ones expire
        # (at least five minutes); scale that down for short lifetimes.
        margin = min(300.0, self.lifetime / 2.0)
        if force or cur is None or now >= cur["expires"] - margin:
            self.previous = cur
            self.current = self._new()
            self.issued += 1
            if force:
                self.known = {}
                if cur:
                    self.known[cur["AccessKeyId"]] = cur
            self.known[self.current["AccessKeyId"]] = self.current
            for k, c in list(self.known.items()):
                if now > c["expires"] + 3600:
                    del self.known[k]

    def role_credentials(self, force=False):
        with self.lock:
            self._rotate_locked(force)
            c = self.current
            return {
                "Code": "Success",
                "LastUpdated": iso(c["issued"]).replace(".000", ""),
                "Type": "AWS-HMAC",
                "AccessKeyId": c["AccessKeyId"],
                "SecretAccessKey": c["SecretAccessKey"],
                "Token": c["Token"],
                "Expiration": _iso_s(c["expires"]),
            }

    def issue(self, kind, lifetime):
        """New temporary credentials of kind (STS, container), known
        until an hour past their expiry like the role's."""
        with self.lock:
            c = self._new()
            c["expires"] = c["issued"] + lifetime
            c["kind"] = kind
            self.known[c["AccessKeyId"]] = c
            self.issued += 1
            return dict(c)

    def set_lifetime(self, lifetime):
        with self.lock:
            self.lifetime = float(lifetime)

    def lookup(self, access_key):
        """-> (secret, token or None, expires or None, kind) or None."""
        if access_key in self.static:
            return self.static[access_key], None, None, "static"
        with self.lock:
            self._rotate_locked()
            c = self.known.get(access_key)
            if c:
                return (c["SecretAccessKey"], c["Token"], c["expires"],
                        c.get("kind", "role"))
        return None

    def describe(self):
        with self.lock:
            out = {"static": sorted(self.static), "lifetime": self.lifetime,
                   "rotations": self.issued}
            for k in ("current", "previous"):
                c = getattr(self, k)
                out[k] = None if c is None else {
                    "access_key": c["AccessKeyId"],
                    "expires": _iso_s(c["expires"])}
            return out


def skew_message(ts, now):
    """AWS's wording for a timestamp outside the five minutes."""
    def t(x):
        return time.strftime(SIGV4_TIMESTAMP, time.gmtime(x))
    if ts < now:
        return (f"Signature expired: {t(ts)} is now earlier than "
                f"{t(now - MAX_SKEW)} ({t(now)} - 5 min.)")
    return (f"Signature not yet current: {t(ts)} is still later than "
            f"{t(now + MAX_SKEW)} ({t(now)} + 5 min.)")


def _iso_s(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


_AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)


def parse_authorization(value):
    m = _AUTH_RE.match(value or "")
    if not m:
        return None
    fields = {}
    for part in m.group(1).split(","):
        k, _, v = part.strip().partition("=")
        fields[k.strip()] = v.strip()
    return fields


def credential_access_key(headers):
    """Best effort access key for the request log, even on failure."""
    f = parse_authorization(headers.get("Authorization"))
    if f and "Credential" in f:
        return f["Credential"].split("/")[0]
    return None


def verify(method, scheme, raw_path, raw_query, headers, body, creds,
           region, now, service="ec2"):
    """Check one request. headers: http.client.HTTPMessage.

    Returns (access_key, kind). Raises ApiError as AWS would.
    """
    authz = headers.get("Authorization")
    if not authz:
        raise ApiError("MissingAuthenticationToken",
                       "Request is missing Authentication Token")
    fields = parse_authorization(authz)
    if fields is None:
        raise ApiError("IncompleteSignature",
                       "Authorization header requires the "
                       "AWS4-HMAC-SHA256 algorithm.")
    for need in ("Credential", "SignedHeaders", "Signature"):
        if need not in fields:
            raise ApiError("IncompleteSignature",
                           f"Authorization header requires '{need}' "
                           f"parameter. Authorization={authz[:40]}...")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise ApiError("IncompleteSignature",
                       "Credential must have exactly 5 slash-delimited "
                       "elements, e.g. keyid/date/region/service/term")
    access_key, sdate, sregion, sservice, _ = scope
    signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";")]
    if "host" not in signed:
        raise ApiError("IncompleteSignature",
                       "'Host' must be a 'SignedHeader' in the AWS "
                       "Authorization.")

    amz_date = headers.get("X-Amz-Date")
    if amz_date:
        try:
            ts = calendar.timegm(time.strptime(amz_date, SIGV4_TIMESTAMP))
        except ValueError:
            raise ApiError("IncompleteSignature",
                           f"Invalid X-Amz-Date '{amz_date}'") from None
    elif headers.get("Date"):
        parsed = email.utils.parsedate_tz(headers.get("Date"))
        if parsed is None:
            raise ApiError("IncompleteSignature",
                           "Date header is not a valid HTTP date")
        ts = email.utils.mktime_tz(parsed)
        amz_date = time.strftime(SIGV4_TIMESTAMP, time.gmtime(ts))
    else:
        raise ApiError("IncompleteSignature",
                       "Authorization header requires existence of either "
                       "a 'X-Amz-Date' or a 'Date' header.")

    found = creds.lookup(access_key)
    if found is None:
        raise ApiError("AuthFailure",
                       "AWS was not able to validate the provided access "
                       "credentials")
    secret, token, expires, kind = found
    given_token = headers.get("X-Amz-Security-Token")
    if token is None and given_token:
        raise ApiError("AuthFailure",
                       "The security token included in the request is "
                       "invalid")
    if token is not None and not hmac.compare_digest(
            (given_token or "").encode(), token.encode()):
        raise ApiError("AuthFailure",
                       "The security token included in the request is "
                       "invalid" if given_token else
                       "AWS was not able to validate the provided access "
                       "credentials")
    if abs(now - ts) > EXPIRED_SKEW:
        raise ApiError("RequestExpired", "Request has expired.")
    if abs(now - ts) > MAX_SKEW:
        raise ApiError("AuthFailure", skew_message(ts, now))
    if expires is not None and now >= expires:
        # The same code for temporary credentials past their expiry
        # (the error page says so), with nothing about clocks.
        raise ApiError("RequestExpired", "Request has expired.")
    if sdate != amz_date[:8]:
        raise ApiError("SignatureDoesNotMatch",
                       f"Date in Credential scope does not match YYYYMMDD "
                       f"from ISO-8601 version of date from HTTP: "
                       f"'{sdate}' != '{amz_date[:8]}'")
    if sregion != region:
        raise ApiError("AuthFailure",
                       f"Credential should be scoped to a valid region, "
                       f"not '{sregion}'. ")
    if sservice != service:
        raise ApiError("SignatureDoesNotMatch",
                       f"Credential should be scoped to correct service: "
                       f"'{service}'. ")
    for h in signed:
        if headers.get(h) is None:
            raise ApiError("SignatureDoesNotMatch",
                           f"The request signature we calculated does not "
                           f"match the signature you provided: signed "
                           f"header '{h}' is missing.")
    claimed = headers.get("X-Amz-Content-SHA256")
    if claimed and claimed != hashlib.sha256(body).hexdigest():
        raise ApiError("XAmzContentSHA256Mismatch",
                       "The provided 'x-amz-content-sha256' header does "
                       "not match what was computed.")

    url = f"{scheme}://{headers.get('Host')}{raw_path}"
    if raw_query:
        url += "?" + raw_query
    req = AWSRequest(method=method, url=url, data=body)
    for name in signed:
        for value in headers.get_all(name) or []:
            req.headers[name] = value
    req.context["timestamp"] = amz_date
    signer = _ExactSigner(Credentials(access_key, secret, token), service,
                          region, signed)
    creq = signer.canonical_request(req)
    sts = signer.string_to_sign(req, creq)
    want = signer.signature(sts, req)
    if not hmac.compare_digest(want, fields["Signature"]):
        raise ApiError("SignatureDoesNotMatch",
                       "The request signature we calculated does not match "
                       "the signature you provided. Check your AWS Secret "
                       "Access Key and signing method. Consult the service "
                       "documentation for details.")
    return access_key, kind
