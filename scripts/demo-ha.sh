# scripts/demo --ha, sourced by scripts/demo once ec2sim runs: the same
# story with three failoverd members sharing a 3-member etcd (Debian's
# etcd-server, on loopback, its data in the demo's directory). All
# three see the service die; the leader starts the failover and is
# killed with SIGKILL in its detach step; another member takes the lead,
# resumes the failover where the journal in etcd says it stands, and
# completes it. Exits (from scripts/demo) 0 only when the end state is
# exactly a crash-free failover's.

MEMBERS="alpha bravo charlie"
# Short enough for a demo; the takeover waits for the dead leader's
# lease to expire, so it comes within about this.
LEASE_TTL=4

# --- etcd ---------------------------------------------------------------
say "starting a 3-member etcd cluster on loopback (etcd-server)"
[ -x /usr/bin/etcd ] || fail "/usr/bin/etcd is missing: apt-get install etcd-server"
# The tests' way of starting it (tests/e2e/etcdcluster.py), run until
# scripts/demo's cleanup ends it.
"$PY" - "$work" >"$work/etcd.out" 2>"$work/etcd.err" <<'EOF' &
import json, os, signal, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "e2e"))
from etcdcluster import EtcdCluster
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with EtcdCluster(sys.argv[1], size=3) as c:
    with open(os.path.join(sys.argv[1], "etcd.json"), "w") as f:
        json.dump({"endpoints": c.endpoints}, f)
    print("etcd ready", flush=True)
    while all(p.poll() is None for p in c.procs):
        time.sleep(0.5)
    sys.exit("an etcd member exited")
EOF
etcd_pid=$!
for _ in $(seq 1 600); do
	grep -q "^etcd ready" "$work/etcd.out" 2>/dev/null && break
	kill -0 "$etcd_pid" 2>/dev/null ||
	    fail "etcd did not start: $(tail -3 "$work/etcd.err")"
	sleep 0.1
done
grep -q "^etcd ready" "$work/etcd.out" || fail "etcd not ready within 60s"
endpoints=$("$PY" -c "import json,sys; print(', '.join('\"%s\"' % e for e in json.load(open(sys.argv[1]))['endpoints']))" "$work/etcd.json")
echo "    etcd endpoints: $endpoints"

# --- three failoverd members --------------------------------------------
ha_members=$("$PY" -c 'import sys; print(", ".join("\"%s\"" % m for m in sys.argv[1:]))' $MEMBERS)
say "starting failoverd members $MEMBERS (lease_ttl $LEASE_TTL s)"
# One host-key secret, copied to every member: whichever member launches
# the replacement gives it the same SSH host key.
(umask 077 && head -c 32 /dev/urandom > "$work/host-key-secret") ||
    fail "cannot make $work/host-key-secret"
for m in $MEMBERS; do
	demo_conf "$work/$m" "cluster = {
  name = \"$m\";
  members = [ $ha_members ];
  endpoints = [ $endpoints ];
  prefix = \"/failoverd-demo\";
  lease_ttl = $LEASE_TTL;
  timeout = 1.0;
  host_key_secret = \"$work/host-key-secret\";
};"
	start_failoverd "$work/$m"
	member_pids="$member_pids $started"
	eval "pid_$m=$started"
done
mctl() { local m=$1; shift; "$bin/failoverctl" -s "$work/$m/control.sock" "$@"; }
alive() { local p; eval "p=\$pid_$1"; kill -0 "$p" 2>/dev/null; }

# first_line MEMBER PATTERN: the first line of MEMBER's log matching
# PATTERN (grep -E), or nothing.
first_line() { grep -m1 -E -- "$2" "$work/$1/failoverd.log" 2>/dev/null || true; }
# stamp LINE: the wall-clock seconds of a log line ("HH:MM:SS.mmm ...").
stamp() {
	"$PY" -c '
import sys, time
hms, ms = sys.argv[1].split()[0].split(".")
lt = time.localtime()
t = time.mktime(time.strptime(time.strftime("%Y-%m-%d ", lt) + hms, "%Y-%m-%d %H:%M:%S"))
print("%.3f" % (t + int(ms) / 1000.0))' "$1"
}
# wait_any SECS PATTERN [MEMBER...]: waits until a member's log has a
# line matching PATTERN; sets $hit_member and $hit_line.
wait_any() {
	local secs=$1 pat=$2 i m l list
	shift 2
	list=${*:-$MEMBERS}
	for i in $(seq 1 $((secs * 10))); do
		for m in $list; do
			l=$(first_line "$m" "$pat")
			if [ -n "$l" ]; then
				hit_member=$m hit_line=$l
				return 0
			fi
			alive "$m" || fail "member $m exited: $(tail -3 "$work/$m/failoverd.log")"
		done
		sleep 0.1
	done
	fail "no '$pat' within ${secs}s; logs in $work/*/failoverd.log"
}
since() { "$PY" -c "import sys; print('%6.2fs' % (float(sys.argv[1]) - float(sys.argv[2])))" "$1" "$2"; }

# Every member sees the service healthy, and one of them leads.
for m in $MEMBERS; do
	wait_any 60 "service web: healthy|event=service_recovered" "$m"
	alive "$m" || fail "member $m exited; see $work/$m/failoverd.log"
done
wait_any 60 "event=cluster_leader_gained"
leader=$hit_member
echo "    every member sees web healthy; the leader is $leader"
say "failoverctl cluster (on $leader)"
mctl "$leader" cluster || fail "failoverctl cluster failed on $leader"

# ec2sim's detach takes 3 s here (a real one takes seconds too), so the
# leader is surely inside its detach step when the demo kills it.
curl -s -X POST -H 'Content-Type: application/json' -d '{"detach": 3}' \
    "$control/delays" >/dev/null
curl -s -X DELETE "$control/requests" >/dev/null

say "breaking $OLD: its web server and sshd stop answering"
curl -s -X POST -H 'Content-Type: application/json' \
    -d '{"fault": "both"}' "$control/instance/$OLD" >/dev/null
t_break=$(date +%s.%N)
for m in $MEMBERS; do
	wait_any 60 "event=service_down" "$m"
	echo "  $(since "$(stamp "$hit_line")" "$t_break")  $m sees web DOWN"
done
# The member that starts it is the leader now (on a loaded machine the
# lead may have moved since it was first gained).
wait_any 60 "event=failover_started"
leader=$hit_member
echo "  $(since "$(stamp "$hit_line")" "$t_break")  $leader (the leader) starts the failover"
wait_any 60 "event=failover_step .*step=detach" "$leader"
echo "  $(since "$(stamp "$hit_line")" "$t_break")  $leader: step detach"
[ -z "$(first_line "$leader" "event=failover_completed")" ] ||
    fail "the failover completed before the demo could kill $leader"

say "SIGKILL to the leader, $leader, in the middle of its detach step"
eval "kill -KILL \$pid_$leader"
t_death=$(date +%s.%N)
# Reaped here, so that bash does not print its own "Killed" line.
eval "wait \$pid_$leader" 2>/dev/null || true
survivors=
for m in $MEMBERS; do [ "$m" = "$leader" ] || survivors="$survivors $m"; done
echo "  $(since "$t_death" "$t_break")  $leader is dead"

wait_any 60 "event=cluster_takeover|event=cluster_leader_gained" $survivors
new_leader=$hit_member
t_lead=$(stamp "$hit_line")
echo "  $(since "$t_lead" "$t_break")  $new_leader takes the lead (${hit_line#*event=})"
wait_any 60 "event=failover_step " "$new_leader"
t_step=$(stamp "$hit_line")
echo "  $(since "$t_step" "$t_break")  $new_leader resumes: ${hit_line#*event=}"
wait_any 90 "event=failover_completed" "$new_leader"
t_done=$(stamp "$hit_line")
echo "  $(since "$t_done" "$t_break")  FAILOVER COMPLETED by $new_leader"

say "failoverctl cluster (on $new_leader)"
mctl "$new_leader" cluster || fail "failoverctl cluster failed on $new_leader"

say "the site, through the same Elastic IP $eip"
after=$(curl -s --max-time 5 "http://$eip:$http_port/data")
echo "$after"

# The end state must be exactly a crash-free failover's: one
# replacement, running, the old instance stopped, each volume attached
# once (to the replacement, at its device), the EIP on it.
state=$(curl -s "$control/state")
attaches=$(curl -s "$control/requests?action=AttachVolume")
"$PY" - "$state" "$attaches" "$OLD" "$EIP_ALLOC" >"$work/new" <<'EOF' ||
import json, sys
st, reqs, old, alloc = (json.loads(sys.argv[1]), json.loads(sys.argv[2]),
                        sys.argv[3], sys.argv[4])
others = [i for i in st["instances"] if i != old]
if len(others) != 1:
    sys.exit(f"{len(others)} replacements: {others}")
new = others[0]
errs = []
if st["instances"][old]["state"] != "stopped":
    errs.append(f"{old} is {st['instances'][old]['state']}, not stopped")
if st["instances"][new]["state"] != "running":
    errs.append(f"{new} is {st['instances'][new]['state']}, not running")
if st["addresses"][alloc]["instance"] != new:
    errs.append(f"the EIP is on {st['addresses'][alloc]['instance']}")
vols = st["instances"][new]["volumes"]
for dev, vol in (("/dev/sdf", "vol-0daaaaaaaaaaaaaa1"),
                 ("/dev/sdg", "vol-0daaaaaaaaaaaaaa2")):
    if vols.get(dev) != vol:
        errs.append(f"{vol} is not at {dev} on {new}")
ok = [r["params"].get("VolumeId") for r in
      (reqs if isinstance(reqs, list) else reqs.get("requests", []))
      if r.get("status") == 200]
for v in set(ok):
    if ok.count(v) != 1:
        errs.append(f"{v} attached {ok.count(v)} times")
if errs:
    sys.exit("; ".join(errs))
print(new)
EOF
    fail "ec2sim's state is not what a failover leaves"
new=$(cat "$work/new")
echo "answered by the replacement $new (was $OLD)"

say "demo --ha passed: $leader killed mid-failover, $new_leader finished it"
printf '    leader killed -> %s takes the lead: %ss (lease_ttl %ss)\n' \
    "$new_leader" "$("$PY" -c "print('%.2f' % ($t_lead - $t_death))")" "$LEASE_TTL"
printf '    leader killed -> first step by %s:  %ss\n' \
    "$new_leader" "$("$PY" -c "print('%.2f' % ($t_step - $t_death))")"
printf '    leader killed -> failover completed: %ss\n' \
    "$("$PY" -c "print('%.2f' % ($t_done - $t_death))")"
echo "    logs in $work/{${MEMBERS// /,}}/failoverd.log"
