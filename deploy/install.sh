#!/bin/sh
# Install (or upgrade) seqcast-edge on a Debian / Raspberry Pi OS device, as root:
#
#   sh install.sh --wheel seqcast-0.1.0-py3-none-any.whl --bundle model.seqcast
#
# Puts the wheel with its edge extra in /opt/seqcast/venv, the systemd unit, sysusers and tmpfiles
# files in /usr/lib, a config in /etc/seqcast/edge.toml (the example, reading its model from the
# admins' incoming directory; kept on a re-run) and the bundle in /var/lib/seqcast-incoming. The
# new config and bundle replace the old ones only when `seqcast-edge check` passes on them; the
# unit is started (or restarted, on an upgrade) only then.
#
# --root DIR installs into a directory tree instead (DESTDIR-style, as the tests do) and never
# calls systemctl or systemd-sysusers: it prints what to run on the device. The venv made there
# names DIR in its scripts; to build a device image, run this script inside the image (chroot).
set -eu

PROG=install.sh
VENV=/opt/seqcast/venv
CONF_DIR=/etc/seqcast
INCOMING=/var/lib/seqcast-incoming
MODEL="$INCOMING/model.seqcast"
UNIT=seqcast-edge.service
CONF_NAME=seqcast-edge.conf # the sysusers.d and tmpfiles.d file name

usage() {
	cat <<EOF
usage: $PROG --wheel WHEEL --bundle BUNDLE [--config EDGE_TOML] [--root DIR] [--python PY] [--no-start]

  --wheel WHEEL     the seqcast wheel (make dist); installed with its edge extra
  --bundle BUNDLE   the model bundle, installed as $MODEL
  --config FILE     use this edge.toml (default: keep $CONF_DIR/edge.toml, or write the example)
  --root DIR        install into DIR instead of / (never starts anything)
  --python PY       the interpreter that makes the venv (default python3; 3.11 or newer)
  --no-start        install and check, but do not (re)start the unit
EOF
}

die() {
	echo "$PROG: error: $*" >&2
	exit 2
}

say() { echo "$PROG: $*"; }

need_value() {
	[ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

wheel="" bundle="" config="" root=/ python=python3 start=yes
while [ $# -gt 0 ]; do
	case $1 in
	--wheel) need_value "$1" $#; wheel=$2; shift 2 ;;
	--bundle) need_value "$1" $#; bundle=$2; shift 2 ;;
	--config) need_value "$1" $#; config=$2; shift 2 ;;
	--root) need_value "$1" $#; root=$2; shift 2 ;;
	--python) need_value "$1" $#; python=$2; shift 2 ;;
	--wheel=*) wheel=${1#*=}; shift ;;
	--bundle=*) bundle=${1#*=}; shift ;;
	--config=*) config=${1#*=}; shift ;;
	--root=*) root=${1#*=}; shift ;;
	--python=*) python=${1#*=}; shift ;;
	--no-start) start=no; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

[ -n "$wheel" ] || die "--wheel is required (build it with: make dist)"
[ -n "$bundle" ] || die "--bundle is required (a .seqcast model bundle)"
[ -f "$wheel" ] || die "wheel not found: $wheel"
case $wheel in *.whl) ;; *) die "not a wheel (*.whl): $wheel" ;; esac
[ -f "$bundle" ] || die "bundle not found: $bundle"
[ -z "$config" ] || [ -f "$config" ] || die "config not found: $config"
wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")

# R prefixes every installed path: empty for the live system.
[ -d "$root" ] || die "--root: not a directory: $root"
root=$(cd "$root" && pwd -P)
if [ "$root" = / ]; then
	R=""
	[ "$(id -u)" = 0 ] || die "run as root to install on this system (or use --root DIR)"
else
	R=$root
fi

# The systemd files: next to this script (make dist's dist/systemd) or in the source tree.
here=$(cd "$(dirname "$0")" && pwd)
units=""
for dir in "$here/systemd" "$here/../systemd"; do
	if [ -f "$dir/$UNIT" ]; then
		units=$dir
		break
	fi
done
[ -n "$units" ] || die "cannot find systemd/$UNIT next to $0"

# Scratch space for the check's copy of the config; the staged config and bundle themselves live
# beside their targets (same file system: putting them in place is a rename).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/seqcast-install.XXXXXX")
staged_conf="" staged_bundle=""
cleanup() {
	rm -rf "$scratch"
	[ -z "$staged_conf" ] || rm -f "$staged_conf"
	[ -z "$staged_bundle" ] || rm -f "$staged_bundle"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The venv. A re-run upgrades it: the dependencies as needed, seqcast itself whenever the wheel
# differs from the last one installed (a rebuilt wheel keeps its version number, so pip alone would
# keep the old code); the same wheel again leaves the venv untouched.
venv="$R$VENV"
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
	"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
		die "$python is missing or older than Python 3.11 (choose one with --python)"
	say "creating $venv"
	"$python" -m venv "$venv" >"$scratch/venv.log" 2>&1 ||
		die "$python -m venv $venv failed (Debian: apt-get install python3-venv): $(tail -n 1 "$scratch/venv.log")"
fi
say "installing $(basename "$wheel") with its edge extra into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[edge]" ||
	die "pip could not install $wheel[edge] into $venv (see above)"
wheel_id="$(basename "$wheel") $(sha256sum "$wheel" | cut -d' ' -f1)"
if [ "$(cat "$venv/seqcast-wheel" 2>/dev/null)" != "$wheel_id" ]; then
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$wheel" ||
		die "pip could not reinstall $wheel into $venv (see above)"
	echo "$wheel_id" >"$venv/seqcast-wheel"
fi
edge="$venv/bin/seqcast-edge"

# 2. The unit, the system user and group, the directories.
install -D -m 0644 "$units/$UNIT" "$R/usr/lib/systemd/system/$UNIT"
# the per-partition template (deploy/README.md, "Partitioned workers"); enabled by hand, never here
if [ -f "$units/seqcast-edge@.service" ]; then
	install -D -m 0644 "$units/seqcast-edge@.service" "$R/usr/lib/systemd/system/seqcast-edge@.service"
fi
install -D -m 0644 "$units/seqcast-edge.sysusers.conf" "$R/usr/lib/sysusers.d/$CONF_NAME"
install -D -m 0644 "$units/seqcast-edge.tmpfiles.conf" "$R/usr/lib/tmpfiles.d/$CONF_NAME"
if [ -z "$R" ]; then
	systemd-sysusers "$CONF_NAME"
	systemd-tmpfiles --create "$CONF_NAME"
	# The unit runs the venv as seqcast: an interpreter under a private directory (a pyenv in
	# /root) would fail every start.
	if command -v runuser >/dev/null 2>&1; then
		runuser -u seqcast -- "$venv/bin/python" -c 'import seqcast.edge.cli' 2>/dev/null ||
			die "the seqcast user cannot run $venv/bin/python (is $python in a private directory such as /root? choose another with --python)"
	fi
else
	# Owners are set on the device by the two commands printed at the end (tmpfiles' z line
	# fixes edge.toml's group).
	install -d -m 0750 "$R$CONF_DIR"
	install -d -m 2770 "$R$INCOMING"
	[ -e "$R$CONF_DIR/mqtt-password" ] || install -m 0600 /dev/null "$R$CONF_DIR/mqtt-password"
fi

# The helper the shell cannot do: write TOML. `example` points the example's [model] path at the
# incoming directory; `checkable` writes a copy of a config whose files resolve into the root and
# whose model is the staged bundle, for `seqcast-edge check`.
HELPER=$(
	cat <<'EOF'
import json, math, re, sys, tomllib

def value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
    raise SystemExit(f"cannot write {v!r} back as TOML")

def table(data, prefix, out):
    if prefix:
        out.append("[" + ".".join(json.dumps(p) for p in prefix) + "]")
    out += [f"{json.dumps(k)} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            table(v, prefix + [k], out)

command, *args = sys.argv[1:]
if command == "example":
    (model,) = args
    text, section, done = sys.stdin.read().splitlines(keepends=True), "", False
    for i, line in enumerate(text):
        if line.startswith("["):
            section = line.strip().strip("[]")
        elif section == "model" and not done and re.match(r"path\s*=", line):
            text[i], done = f"path = {json.dumps(model)}  # required\n", True
    text = "".join(text)
    parsed = tomllib.loads(text)["model"]
    if parsed.get("path") != model or parsed.get("watch") is not True:
        raise SystemExit("the example config has no [model] path, or watch is not true")
    sys.stdout.write(text)
elif command == "checkable":
    src, dst, root, live_model, staged_model, state_dir = args
    with open(src, "rb") as f:
        cfg = tomllib.load(f)
    reroot = lambda p: root + p if root and isinstance(p, str) and p.startswith("/") else p
    model = cfg.setdefault("model", {})
    if model.get("path") == live_model:
        model["path"] = staged_model
    else:
        print(f"note: [model] path is {model.get('path')!r}, not {live_model}", file=sys.stderr)
        model["path"] = reroot(model.get("path"))
    state = cfg.setdefault("state", {})
    state["dir"] = state_dir or reroot(state.get("dir", "/var/lib/seqcast"))
    mqtt = cfg.get("mqtt", {})
    if "password_file" in mqtt:
        mqtt["password_file"] = reroot(mqtt["password_file"])
    for key in ("ca_file", "cert_file", "key_file"):
        if key in mqtt.get("tls", {}):
            mqtt["tls"][key] = reroot(mqtt["tls"][key])
    out = []
    table(cfg, [], out)
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")
EOF
)
helper() { "$venv/bin/python" -c "$HELPER" "$@"; }

# 3. Stage the config and the bundle next to their targets.
conf="$R$CONF_DIR/edge.toml"
if [ -n "$config" ]; then
	staged_conf="$R$CONF_DIR/.edge.toml.install"
	install -m 0640 "$config" "$staged_conf"
	[ ! -f "$conf" ] || say "replacing $conf with $config (the old one is kept as edge.toml.old)"
elif [ ! -f "$conf" ]; then
	staged_conf="$R$CONF_DIR/.edge.toml.install"
	"$edge" config | helper example "$MODEL" >"$scratch/edge.toml" ||
		die "cannot write the example config with $edge config"
	install -m 0640 "$scratch/edge.toml" "$staged_conf"
	say "writing $conf (the example; set [mqtt] host before the first start)"
else
	say "keeping $conf"
fi
staged_bundle="$R$INCOMING/.install.seqcast"
install -m 0644 "$bundle" "$staged_bundle"

# 4. The check the unit runs before every start, on the staged files.
checked=${staged_conf:-$conf}
if [ -z "$R" ]; then
	state_dir="" # the live state directory, which tmpfiles has made
	export CREDENTIALS_DIRECTORY="$CONF_DIR" # where LoadCredential= reads the password from
else
	state_dir="$scratch/state"
	export CREDENTIALS_DIRECTORY="$R$CONF_DIR"
fi
helper checkable "$checked" "$scratch/check.toml" "$R" "$MODEL" "$staged_bundle" "$state_dir" ||
	die "cannot read $checked as TOML"
if ! "$edge" check -c "$scratch/check.toml" >"$scratch/check.log" 2>&1; then
	why=$(grep -v '^\(INFO\|DEBUG\|WARNING\) ' "$scratch/check.log" | tail -n 1 |
		sed -e "s|$scratch/check.toml|$conf|g" -e "s|$staged_bundle|$bundle|g")
	die "seqcast-edge check failed for $bundle with ${config:-$conf}: ${why#seqcast-edge: error: }"
fi
say "$(tail -n 1 "$scratch/check.log" | sed "s|$scratch/check.toml|$conf|")"

# 5. Put them in place (renames: the daemon's watch never sees half a bundle).
if [ -n "$staged_conf" ]; then
	[ ! -f "$conf" ] || cp -p "$conf" "$conf.old"
	[ -n "$R" ] || chown root:seqcast "$staged_conf"
	mv -f "$staged_conf" "$conf"
	staged_conf=""
fi
[ -n "$R" ] || chown seqcast:seqcast-admin "$staged_bundle"
mv -f "$staged_bundle" "$R$MODEL"
staged_bundle=""
say "installed $R$MODEL"

# 6. Start, or say what would start it.
if [ -n "$R" ] || [ "$start" = no ]; then
	[ -z "$R" ] || say "not starting anything in $R; on the device run: systemd-sysusers $CONF_NAME && systemd-tmpfiles --create $CONF_NAME"
	say "then: systemctl daemon-reload && systemctl enable --now seqcast-edge"
elif [ ! -d /run/systemd/system ]; then
	say "systemd is not running here: not starting; later run: systemctl daemon-reload && systemctl enable --now seqcast-edge"
else
	systemctl daemon-reload
	if systemctl is-active --quiet seqcast-edge; then
		systemctl restart seqcast-edge
		say "restarted seqcast-edge"
	else
		systemctl enable --now seqcast-edge
		say "started seqcast-edge (journalctl -u seqcast-edge -f)"
	fi
fi
