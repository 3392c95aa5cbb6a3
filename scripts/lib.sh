# Shared by scripts/test, scripts/demo and tests/bench: what a fresh Debian
# machine needs, installed only when missing.

FOD_DEB_PACKAGES=(
	# build
	cmake gcc make pkg-config
	# the fuzz stage of scripts/test: clang with libFuzzer's runtime
	clang libclang-rt-14-dev
	libev-dev libcurl4-openssl-dev libssl-dev libssh2-1-dev
	libconfig-dev libxml2-dev libsystemd-dev libcmocka-dev
	# JSON (credential replies): a kept parser, not a hand-written one
	libjansson-dev
	# the test world: real sshd, HTTP, the emulator and its judges
	python3 python3-pytest python3-botocore
	# ec2sim reads cloud-init user data (#cloud-config is YAML)
	python3-yaml
	openssh-server openssh-client awscli curl openssl iproute2
	# the test sshds log in with a shell and home of the tests' own
	libnss-wrapper
	# systemd-analyze verify reads the man pages the unit names
	systemd man-db
	# tests/pkg/test_deb.py builds the Debian package and checks it
	debhelper dpkg-dev fakeroot lintian git
	# test_completion loads the completion as bash-completion does
	bash-completion
	# test_metrics scrapes failoverd.prom through the real textfile
	# collector
	prometheus-node-exporter
	# test_etcd runs a real 3-member etcd cluster (issue 15)
	etcd-server
)

fod_install_deps() {
	local missing=() p
	for p in "${FOD_DEB_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "==> installing missing Debian packages: ${missing[*]}"
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
	    >/dev/null
}

# scripts/test --load: the CPU hog.
fod_install_load_deps() {
	dpkg-query -W -f='${Status}' stress-ng 2>/dev/null |
	    grep -q "install ok installed" && return 0
	echo "==> installing missing Debian packages: stress-ng"
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
}

# tests/bench/run-all: monit, the side-by-side baseline of benchmark 4.
FOD_BENCH_DEB_PACKAGES=(monit)

fod_install_bench_deps() {
	local missing=() p
	for p in "${FOD_BENCH_DEB_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "==> installing missing Debian packages: ${missing[*]}"
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
	    >/dev/null
}
