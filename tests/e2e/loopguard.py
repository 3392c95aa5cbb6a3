"""The one rule every harness that starts failoverd obeys: nothing it
starts may reach AWS or an instance metadata service off this machine.

failoverd's defaults are the real ones (https://ec2.REGION.amazonaws.com,
http://169.254.169.254 for IMDS), so a daemon started with an endpoint
left out would send its first packet off loopback. check() refuses such
a start before the process exists, naming what is missing."""
import ipaddress
import re
import urllib.parse

# The settings of failoverd.conf's aws group that name an endpoint. The
# test configurations are written by the harnesses themselves, one
# setting a line; this only reads the values they wrote.
_CONF_ENDPOINT = re.compile(
    r'\b(endpoint|imds_endpoint)\s*[=:]\s*"([^"]*)"')


class OffLoopback(Exception):
    pass


def is_loopback_url(url):
    """True when url's host is in 127.0.0.0/8, ::1 or localhost."""
    host = urllib.parse.urlsplit(url).hostname
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(env, conf_text=""):
    """Raises OffLoopback unless both the EC2 API and IMDS that a
    failoverd started with env and this configuration text would use
    are on loopback (or IMDS is disabled)."""
    conf = dict((k, v) for k, v in _CONF_ENDPOINT.findall(conf_text or ""))
    ec2 = (conf.get("endpoint") or env.get("AWS_ENDPOINT_URL_EC2") or
           env.get("AWS_ENDPOINT_URL"))
    if not ec2:
        raise OffLoopback("no EC2 endpoint (aws.endpoint, "
                          "AWS_ENDPOINT_URL_EC2 or AWS_ENDPOINT_URL): "
                          "the daemon would call the real EC2")
    if not is_loopback_url(ec2):
        raise OffLoopback(f"EC2 endpoint {ec2} is not on loopback")
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return
    imds = (conf.get("imds_endpoint") or
            env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"))
    if not imds:
        raise OffLoopback("no IMDS endpoint (aws.imds_endpoint or "
                          "AWS_EC2_METADATA_SERVICE_ENDPOINT): the daemon "
                          "would ask 169.254.169.254")
    if not is_loopback_url(imds):
        raise OffLoopback(f"IMDS endpoint {imds} is not on loopback")


def check_file(env, conf_path):
    """check() on a configuration file (and what it @includes is the
    harness's own business: none of the harnesses include endpoints)."""
    try:
        with open(conf_path, errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    check(env, text)
