"""Timing profiles of ec2sim: how long each delayed event takes.

The default profile is sim_world.DEFAULT_DELAYS (fractions of a second,
so that tests run fast).  `--timing aws` (fixture `timing="aws"`,
control `POST /timing`) replaces them with ranges taken from the AWS
documentation and from published measurements; each event draws its
own delay, uniformly, from its range (the sources give ranges or a few
samples, not distributions, so uniform assumes nothing more).

PROFILES[name][key] = (low, high, source).  The keys are those of
sim_world.DEFAULT_DELAYS; a key this sim does not know yet is left out
when the profile is applied (see delays()), so a profile may name keys
that a newer sim models.  tests/ec2sim/README.md, "Timing (`--timing
aws`)", is the same table with its sources in full.
"""

PERCIVAL = ("Colin Percival, \"EC2 boot time benchmarking\" (2021, "
            "daemonology.net; ec2-boot-bench on c5.xlarge)")
BREV = ("brevdev/ec2-coldboot-research (GitHub, measured cold launches "
        "of t3/m6i/m7i/c7i/r7i)")

PROFILES = {
    "aws": {
        "pending": (4.0, 20.0,
                    PERCIVAL + ": pending -> running 4.9 s; " + BREV +
                    ": pending -> running 16.4-16.6 s whatever the type"),
        "boot": (3.0, 25.0,
                 BREV + ": running -> SSH 3.2 s (Amazon Linux 2023, "
                 "cloud-init), 9.0 s without cloud-init; " + PERCIVAL +
                 ": running -> port 22 open 22.8 s"),
        "stopping": (15.0, 90.0,
                     "estimate: \"Stop and start Amazon EC2 instances\" "
                     "gives no figure, only a graceful OS shutdown; a "
                     "healthy Linux powers off in seconds to a minute"),
        "shutting_down": (15.0, 90.0,
                          "estimate, as stopping; \"Troubleshoot "
                          "instance termination (shutting down)\" calls "
                          "longer than a few minutes delayed"),
        "reboot": (20.0, 60.0,
                   "estimate: CreateImage's reboot is an OS shutdown "
                   "and a boot (see boot)"),
        "status_init": (60.0, 240.0,
                        "\"Status checks for your instances\": "
                        "'initializing' until the checks pass; "
                        "StatusCheckFailed is per minute (estimate: "
                        "1 to 4 checks)"),
        "volume_create": (2.0, 30.0,
                          "estimate: \"Create an Amazon EBS volume\": "
                          "'creating' until 'available'; blocks of a "
                          "snapshot load lazily after that"),
        "attach": (2.0, 10.0,
                   "estimate: \"Attach an Amazon EBS volume to an "
                   "instance\" gives no figure ('attaching' -> "
                   "'attached')"),
        "detach": (2.0, 15.0,
                   "estimate: \"Detach an Amazon EBS volume\" gives no "
                   "figure ('detaching' -> 'available'); clean detach "
                   "from a stopped instance"),
        "associate": (1.0, 10.0,
                      "estimate: \"Elastic IP addresses\" gives no "
                      "figure for the remap of traffic"),
        "snapshot": (60.0, 600.0,
                     "estimate: \"Create Amazon EBS snapshots\": "
                     "snapshots complete asynchronously, 'pending' "
                     "for minutes (incremental; hours for a large "
                     "first snapshot)"),
        "image": (120.0, 900.0,
                  "estimate: \"Create an Amazon EBS-backed AMI\": "
                  "'pending' until every snapshot of it completes"),
        "console_lag": (60.0, 600.0,
                        "GetConsoleOutput: buffered output \"posted "
                        "shortly after an instance transition state\"; "
                        "no figure given (estimate: one to ten "
                        "minutes, as the issue's runs saw)"),
        "graceful_stop": (90.0, 240.0,
                          "StopInstances, Force: graceful shutdown "
                          "first, forced \"within the timeout period\" "
                          "(no figure; estimate: at least systemd's "
                          "DefaultTimeoutStopSec=90s for a hung unit)"),
        "describe_lag": (0.5, 5.0,
                         "\"Eventual consistency in the Amazon EC2 "
                         "API\": retry Describe starting with \"a "
                         "couple of seconds\" (estimate: up to 5 s)"),
    },
}


def names():
    return sorted(PROFILES) + ["default"]


def delays(name, known):
    """(delays, skipped): {key: [low, high]} of the profile `name` for
    the keys in `known`, and the profile's keys this sim does not know.
    "default" gives the fixed numbers of `known` itself."""
    if name == "default":
        return dict(known), []
    if name not in PROFILES:
        raise ValueError(f"unknown timing profile {name!r}; known: "
                         f"{', '.join(names())}")
    prof = PROFILES[name]
    out = {k: [lo, hi] for k, (lo, hi, _) in prof.items() if k in known}
    return out, sorted(k for k in prof if k not in known)


def check(key, value):
    """A delay as the sim stores it: seconds (a number) or [low, high]
    (drawn per event).  Raises ValueError on anything else."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"delay {key}: [low, high], got {value!r}")
        lo, hi = float(value[0]), float(value[1])
        if not 0 <= lo <= hi:
            raise ValueError(f"delay {key}: need 0 <= low <= high")
        return [lo, hi]
    v = float(value)
    if v < 0:
        raise ValueError(f"delay {key}: negative")
    return v
