#!/usr/bin/env bash
# Static checks of the deployment artifacts (docker/, deploy/), for CI: no Docker engine, no
# cluster and no network needed. Starts one tfs-sim and one fusebox on loopback (free ports,
# stopped at exit) to compare the metric names used by the dashboard and the alert rules with
# what fusebox really exports. Bounded: every external command runs under `timeout`.
#
#   scripts/check-deploy.sh
#
# Environment: FUSEBOX_BIN (default build/bin/fusebox), TFS_SIM_BIN (default build/bin/tfs-sim).
# Needs promtool (Debian package prometheus), nginx (nginx-light), python3-yaml, curl; all from
# scripts/install-deps.sh. kubectl, when installed, also renders every kustomization.
#
# Checks, in order (each prints "ok" or what is wrong; the exit status is 1 when any failed):
#   yaml         every *.yaml / *.yml under docker/ and deploy/ parses
#   compose      docker/compose*.yaml: mounted files, build contexts and depends_on exist
#   dockerfile   the runtime package list covers every shared library of fusebox and tfs-sim
#   validate     `fusebox validate` on every fusebox.yaml under docker/ and deploy/
#   prometheus   promtool check config, check rules, test rules
#   rule-tests   every alert has a firing and a not-firing test case, and the tests fail when
#                the rules are broken (every alert never firing; every alert always firing);
#                every alert's runbook annotation leads to its section of docs/deployment.md
#   nginx        nginx -t on deploy/nginx/fusebox.conf (upstreams moved to loopback)
#   kustomize    every file a kustomization.yaml names exists (+ kubectl kustomize if present)
#   drain        terminationGracePeriodSeconds > preStop sleep (if any) + drain.delay + drain.timeout
#   dashboard    the Grafana dashboard is valid JSON with unique panel ids
#   metrics      every fusebox_* metric and label in the dashboard and the rules is exported by
#                a live fusebox (or listed in PENDING_METRICS below)
#   healthcheck  the Dockerfile's HEALTHCHECK command succeeds against the live fusebox
set -euo pipefail
cd "$(dirname "$0")/.."

fusebox_bin=${FUSEBOX_BIN:-build/bin/fusebox}
sim_bin=${TFS_SIM_BIN:-build/bin/tfs-sim}
python=/usr/bin/python3

# Metrics the rules or the dashboard use before fusebox exports them, with their labels
# ("name:label,label name2:label"). None at the moment.
PENDING_METRICS=""

work=$(mktemp -d -t fusebox-check-deploy.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
# check NAME COMMAND...: runs one check, prints its output indented, records a failure.
check() {
  local name=$1
  shift
  local out rc=0
  # Not in a subshell: a check may start processes (pids) and set variables for later ones.
  "$@" >"$work/check.out" 2>&1 || rc=$?
  out=$(cat "$work/check.out")
  if [ "$rc" -eq 0 ]; then
    printf '%-12s ok\n' "$name"
    [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/             /'
  else
    printf '%-12s FAILED\n' "$name"
    printf '%s\n' "$out" | sed 's/^/             /'
    failed+=("$name")
  fi
}
die() { echo "check-deploy: $*" >&2; exit 1; }

# --- prerequisites -------------------------------------------------------------------------
for tool in promtool:prometheus nginx:nginx-light curl:curl timeout:coreutils; do
  command -v "${tool%%:*}" >/dev/null ||
    die "${tool%%:*} not found: install the Debian package ${tool#*:} (scripts/install-deps.sh)"
done
[ -x "$python" ] || die "$python not found (Debian package python3)"
"$python" -c 'import yaml' 2>/dev/null ||
  die "python3 cannot import yaml: install the Debian package python3-yaml"
[ -x "$fusebox_bin" ] || die "no fusebox binary at $fusebox_bin (build first, or set FUSEBOX_BIN)"
[ -x "$sim_bin" ] || die "no tfs-sim binary at $sim_bin (build first, or set TFS_SIM_BIN)"

mapfile -t yaml_files < <(find docker deploy -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
# fusebox configurations: the YAML files whose top level has both `pools` and `routes`.
mapfile -t fusebox_configs < <("$python" - "${yaml_files[@]}" <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    try:
        docs = list(yaml.safe_load_all(open(path)))
    except yaml.YAMLError:
        continue                                  # reported by the yaml check
    if len(docs) == 1 and isinstance(docs[0], dict) and {"pools", "routes"} <= docs[0].keys():
        print(path)
PY
)

# --- yaml ----------------------------------------------------------------------------------
check_yaml() {
  "$python" - "$@" <<'PY'
import sys, yaml
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f)]
        if not any(d is not None for d in docs):
            print(f"{path}: empty"); bad += 1
    except yaml.YAMLError as e:
        print(f"{path}: {e}"); bad += 1
print(f"{len(sys.argv) - 1} files parsed")
sys.exit(1 if bad else 0)
PY
}
check yaml check_yaml "${yaml_files[@]}"

# --- compose -------------------------------------------------------------------------------
check_compose() {
  "$python" - <<'PY'
import os, sys, yaml
os.chdir("docker")
problems = []
base = yaml.safe_load(open("compose.yaml"))
services = base.get("services", {})
def check_service(file, name, svc):
    for v in svc.get("volumes", []) or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if not src.startswith((".", "/")):
            continue                             # a named volume
        if src.startswith("./models/"):
            continue                             # fetched by docker/fetch-models.sh
        if not os.path.exists(src):
            problems.append(f"{file}: service {name}: volume source {src} does not exist")
    build = svc.get("build")
    if isinstance(build, dict):
        ctx = build.get("context", ".")
        df = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
        if not os.path.isdir(ctx):
            problems.append(f"{file}: service {name}: build context {ctx} does not exist")
        elif not os.path.isfile(df):
            problems.append(f"{file}: service {name}: Dockerfile {df} does not exist")
        else:
            target = build.get("target")
            stages = [l.split()[-1] for l in open(df) if l.upper().startswith("FROM ") and " AS " in l.upper()]
            if target and target not in stages:
                problems.append(f"{file}: service {name}: no stage {target} in {df} (has {stages})")
    deps = svc.get("depends_on", [])
    for dep in (deps if isinstance(deps, list) else deps.keys()):
        if dep not in services:
            problems.append(f"{file}: service {name}: depends_on unknown service {dep}")
for name, svc in services.items():
    check_service("compose.yaml", name, svc)
for file in sorted(f for f in os.listdir(".") if f.startswith("compose.") and f != "compose.yaml"
                   and f.endswith((".yaml", ".yml"))):
    over = yaml.safe_load(open(file))
    for name, svc in (over.get("services") or {}).items():
        if name not in services:
            problems.append(f"{file}: service {name} is not in compose.yaml")
        check_service(file, name, svc)
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
}
check compose check_compose

# --- dockerfile: runtime packages vs. ldd -------------------------------------------------
check_dockerfile_packages() {
  command -v dpkg >/dev/null || { echo "dpkg not found: cannot map libraries to packages"; return 1; }
  local listed needed pkg missing=()
  listed=$(sed -n '/# BEGIN RUNTIME PACKAGES/,/# END RUNTIME PACKAGES/p' docker/Dockerfile |
    grep -oE '^\s+lib[a-z0-9.+-]+|^\s+zlib1g' | tr -d ' ' | sort -u)
  [ -n "$listed" ] || { echo "no package list between the RUNTIME PACKAGES markers"; return 1; }
  local libs=() owned unowned
  mapfile -t libs < <(ldd "$fusebox_bin" "$sim_bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
    xargs -r readlink -f | sort -u)
  # One dpkg -S for all of them ("package:arch: /path" per line); a library no package owns
  # (built locally, copied in) cannot be installed in the image.
  # With merged /usr, dpkg may know a library by its /lib path: ask for both spellings.
  owned=$(dpkg -S "${libs[@]}" "${libs[@]/#\/usr\/lib\//\/lib\/}" 2>/dev/null || true)
  local paths
  paths=$(awk -F': ' '{print $NF}' <<<"$owned")
  unowned=$(for lib in "${libs[@]}"; do
      grep -qxF -e "$lib" -e "${lib/#\/usr\/lib\//\/lib\/}" <<<"$paths" || echo "$lib"
    done)
  if [ -n "$unowned" ]; then
    echo "no Debian package owns: ${unowned//$'\n'/ }"
    return 1
  fi
  needed=$(awk -F'[:,]' '{print $1}' <<<"$owned" | sort -u)
  for pkg in $needed; do
    case "$pkg" in libc6) continue ;; esac          # part of every Debian image
    grep -qx "$pkg" <<<"$listed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "docker/Dockerfile runtime packages lack: ${missing[*]} (ldd $fusebox_bin $sim_bin)"
    return 1
  fi
  echo "$(wc -w <<<"$needed") packages needed by the binaries, all listed"
}
check dockerfile check_dockerfile_packages

# --- fusebox validate -----------------------------------------------------------------------
check_validate() {
  local f rc=0
  [ ${#fusebox_configs[@]} -gt 0 ] || { echo "no fusebox configuration found"; return 1; }
  for f in "${fusebox_configs[@]}"; do
    timeout 10 "$fusebox_bin" validate --config "$f" || rc=1
  done
  return $rc
}
check validate check_validate

# --- prometheus -----------------------------------------------------------------------------
check_prometheus() {
  timeout 30 promtool check config deploy/prometheus/prometheus.yml &&
    timeout 30 promtool check rules deploy/prometheus/rules/*.yml &&
    timeout 60 promtool test rules deploy/prometheus/tests/*.yaml
}
check prometheus check_prometheus

# --- rule tests can fail ------------------------------------------------------------------
# Copies rules and tests, breaks every rule (never firing, then always firing), and requires
# promtool to report a failing firing case, then a failing not-firing case, for every alert.
check_rule_tests() {
  local mut=$work/rules-mutated
  "$python" - deploy/prometheus "$mut" <<'PY' || return 1
import glob, os, sys, yaml
src, dst = sys.argv[1], sys.argv[2]
alerts, problems = [], []
headings = [l[4:].strip() for l in open("docs/deployment.md") if l.startswith("### ")]
for path in sorted(glob.glob(f"{src}/rules/*.yml")):
    for g in yaml.safe_load(open(path))["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            alerts.append(r["alert"])
            # Each alert's runbook link points at its own section of docs/deployment.md.
            runbook = r.get("annotations", {}).get("runbook", "")
            if runbook != f"docs/deployment.md#{r['alert'].lower()}" or r["alert"] not in headings:
                problems.append(f"{r['alert']}: runbook {runbook!r} does not lead to a "
                                f"'### {r['alert']}' section of docs/deployment.md")
firing, quiet = set(), set()
for path in sorted(glob.glob(f"{src}/tests/*.yaml")):
    for t in yaml.safe_load(open(path)).get("tests", []):
        for a in t.get("alert_rule_test", []):
            (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
problems += [f"{a}: no test case where it fires" for a in alerts if a not in firing]
problems += [f"{a}: no test case where it does not fire" for a in alerts if a not in quiet]
problems += [f"test of unknown alert {a}" for a in sorted((firing | quiet) - set(alerts))]
for mode, expr in (("never", "vector(0) > 1"), ("always", "vector(1)")):
    os.makedirs(f"{dst}/{mode}/rules"); os.makedirs(f"{dst}/{mode}/tests")
    for path in glob.glob(f"{src}/rules/*.yml"):
        d = yaml.safe_load(open(path))
        for g in d["groups"]:
            for r in g["rules"]:
                if "alert" in r:
                    r["expr"] = expr; r.pop("for", None)
        yaml.safe_dump(d, open(f"{dst}/{mode}/rules/{os.path.basename(path)}", "w"))
    for path in glob.glob(f"{src}/tests/*.yaml"):
        open(f"{dst}/{mode}/tests/{os.path.basename(path)}", "w").write(open(path).read())
open(f"{dst}/alerts", "w").write("\n".join(alerts) + "\n")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
  local mode rc
  for mode in never always; do
    rc=0
    timeout 60 promtool test rules "$mut/$mode"/tests/*.yaml >"$mut/$mode.out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
      echo "the tests pass with every alert $mode firing: they cannot fail"
      return 1
    fi
    "$python" - "$mode" "$mut/alerts" "$mut/$mode.out" <<'PY' || return 1
import re, sys
mode, alerts = sys.argv[1], open(sys.argv[2]).read().split()
text = open(sys.argv[3]).read()
# promtool prints, per failed case: "alertname: X, time: T," then "exp:[...]" and "got:[...]".
cases = re.findall(r"alertname: (\S+), time: \S+,\s*\n\s*exp:(\[\])?", text)
failed_firing = {a for a, empty in cases if not empty}
failed_quiet = {a for a, empty in cases if empty}
want = failed_firing if mode == "never" else failed_quiet
missing = [a for a in alerts if a not in want]
for a in missing:
    kind = "firing" if mode == "never" else "not-firing"
    print(f"{a}: no {kind} test case failed with the alert {mode} firing")
sys.exit(1 if missing else 0)
PY
  done
  echo "$(wc -l <"$mut/alerts") alerts: each has a firing and a not-firing case, and both can fail"
}
check rule-tests check_rule_tests

# --- nginx ----------------------------------------------------------------------------------
check_nginx() {
  local n=$work/nginx
  mkdir -p "$n"
  # Upstream servers by name (fusebox:8080) cannot be resolved here: put them on loopback.
  sed -E 's/^([[:space:]]*server[[:space:]]+)[A-Za-z][A-Za-z0-9.-]*(:[0-9]+)/\1127.0.0.1\2/' \
    deploy/nginx/fusebox.conf >"$n/fusebox.conf"
  cat >"$n/nginx.conf" <<EOF
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log;
events {}
http {
  client_body_temp_path $n/body;
  proxy_temp_path $n/proxy;
  fastcgi_temp_path $n/fastcgi;
  uwsgi_temp_path $n/uwsgi;
  scgi_temp_path $n/scgi;
  include $n/fusebox.conf;
}
EOF
  timeout 20 nginx -t -q -p "$n" -c "$n/nginx.conf" -e "$n/error.log"
}
check nginx check_nginx

# --- kustomize ------------------------------------------------------------------------------
check_kustomize() {
  "$python" - <<'PY' || return 1
import glob, os, sys, yaml
problems, n = [], 0
for kfile in sorted(glob.glob("deploy/k8s/**/kustomization.yaml", recursive=True)):
    n += 1
    d = os.path.dirname(kfile)
    k = yaml.safe_load(open(kfile))
    refs = []
    for r in k.get("resources", []) + k.get("components", []):
        refs.append(("resource", r))
    for p in k.get("patches", []) + k.get("patchesJson6902", []):
        if "path" in p:
            refs.append(("patch", p["path"]))
    for p in k.get("patchesStrategicMerge", []):
        refs.append(("patch", p))
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        for f in gen.get("files", []):
            refs.append(("generator file", f.split("=", 1)[-1]))
        for f in gen.get("envs", []):
            refs.append(("generator env", f))
    for kind, ref in refs:
        if "://" in ref:
            problems.append(f"{kfile}: remote {kind} {ref} (the checks are offline)")
            continue
        path = os.path.normpath(os.path.join(d, ref))
        if os.path.isdir(path):
            if not os.path.isfile(os.path.join(path, "kustomization.yaml")):
                problems.append(f"{kfile}: {kind} {ref}: {path} has no kustomization.yaml")
        elif not os.path.isfile(path):
            problems.append(f"{kfile}: {kind} {ref}: {path} does not exist")
    listed = {os.path.normpath(os.path.join(d, r)) for _, r in refs}
    for f in glob.glob(os.path.join(d, "*.yaml")):
        if os.path.basename(f) != "kustomization.yaml" and os.path.normpath(f) not in listed:
            problems.append(f"{kfile}: {f} is not used")
for p in problems:
    print(p)
if not problems:
    print(f"{n} kustomizations, every referenced file exists")
sys.exit(1 if problems else 0)
PY
  if command -v kubectl >/dev/null && timeout 20 kubectl kustomize --help >/dev/null 2>&1; then
    local k
    for k in $(find deploy/k8s -name kustomization.yaml -exec dirname {} \; | sort); do
      timeout 60 kubectl kustomize "$k" >"$work/rendered-$(echo "$k" | tr / -).yaml" || {
        echo "kubectl kustomize $k failed"
        return 1
      }
    done
    echo "kubectl kustomize renders every kustomization"
  else
    echo "kubectl not installed: rendering skipped"
  fi
}
check kustomize check_kustomize

# --- drain timing ---------------------------------------------------------------------------
# terminationGracePeriodSeconds must exceed any preStop sleep plus drain.delay + drain.timeout, or
# the kubelet kills fusebox while requests are still finishing. Checked on the base files, and
# on every rendered kustomization when kubectl rendered them above.
check_drain() {
  "$python" - "$work" <<'PY'
import glob, os, re, sys, yaml
def seconds(text):
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", str(text)):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total
def check(label, docs):
    deploys = [d for d in docs if d and d.get("kind") == "Deployment"]
    cms = [d for d in docs if d and d.get("kind") == "ConfigMap" and "fusebox.yaml" in d.get("data", {})]
    out = []
    for dep in deploys:
        spec = dep["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for c in spec["containers"]:
            cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command", [])
            sleep = float(cmd[-1]) if cmd and "sleep" in cmd[0] else 0.0
            cfg = yaml.safe_load(cms[0]["data"]["fusebox.yaml"]) if cms else None
            drain = (cfg or {}).get("drain") or {}
            delay = seconds(drain.get("delay", "0s"))
            timeout = seconds(drain.get("timeout", "10s"))
            ok = grace > sleep + delay + timeout
            out.append((ok, f"{label}: terminationGracePeriodSeconds {grace} "
                            f"{'>' if ok else '<='} preStop {sleep:g}s + drain.delay {delay:g}s "
                            f"+ drain.timeout {timeout:g}s"))
    return out
base = list(yaml.safe_load_all(open("deploy/k8s/base/deployment.yaml")))
base.append({"kind": "ConfigMap", "data": {"fusebox.yaml": open("deploy/k8s/base/fusebox.yaml").read()}})
results = check("deploy/k8s/base", base)
for rendered in sorted(glob.glob(os.path.join(sys.argv[1], "rendered-*.yaml"))):
    name = os.path.basename(rendered)[len("rendered-"):-len(".yaml")].replace("-", "/")
    results += check(f"{name} (rendered)", list(yaml.safe_load_all(open(rendered))))
for ok, line in results:
    print(line)
sys.exit(0 if results and all(ok for ok, _ in results) else 1)
PY
}
check drain check_drain

# --- dashboard --------------------------------------------------------------------------------
check_dashboard() {
  "$python" - deploy/grafana/dashboards/*.json <<'PY'
import json, sys
bad = 0
for path in sys.argv[1:]:
    try:
        d = json.load(open(path))
    except ValueError as e:
        print(f"{path}: {e}"); bad += 1; continue
    panels = d.get("panels", [])
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        print(f"{path}: duplicate panel ids"); bad += 1
    for p in panels:
        if p.get("type") != "row" and not p.get("targets"):
            print(f"{path}: panel {p.get('title')!r} has no query"); bad += 1
    print(f"{path}: {len(panels)} panels, uid {d.get('uid')}")
sys.exit(1 if bad else 0)
PY
}
check dashboard check_dashboard

# --- live fusebox: metrics and healthcheck ----------------------------------------------------
# wait_line FILE: waits up to 10s for FILE to have a first line.
wait_line() {
  local _
  for _ in $(seq 1 100); do
    [ -s "$1" ] && [ "$(wc -l <"$1")" -ge 1 ] && return 0
    sleep 0.1
  done
  return 1
}
admin_port=""
start_fusebox() {
  timeout 120 "$sim_bin" --rest-port 0 --grpc-port 0 --model half_plus_two \
    --model light:half_plus_three >"$work/sim.out" 2>"$work/sim.log" &
  pids+=($!)
  wait_line "$work/sim.out" || { echo "tfs-sim did not start: $(cat "$work/sim.log")"; return 1; }
  sleep 0.2
  local rest grpc
  rest=$(sed -n 1p "$work/sim.out")
  grpc=$(sed -n 2p "$work/sim.out")
  # Every feature that has metrics: gRPC listener, cache, fallbacks, load-aware degradation,
  # canary split, idempotency, a concurrency gate with an adaptive limit, load shedding.
  cat >"$work/fusebox.yaml" <<EOF
listeners:
  http: {address: 127.0.0.1, port: 0}
  admin: {address: 127.0.0.1, port: 0}
  grpc: {address: 127.0.0.1, port: 0}
pools:
  primary: {endpoints: [{address: 127.0.0.1, port: $rest, grpc_port: $grpc}]}
  light: {endpoints: [{address: 127.0.0.1, port: $rest, grpc_port: $grpc}]}
routes:
  - name: half_plus_two
    match: {model: half_plus_two}
    pool: primary
    cache: {mode: fallback}
    fallbacks: [{tier: model, pool: light, model: light, timeout: 300ms}, {tier: cache}]
    degrade_on_load: {max_inflight: 100}
    split: {canaries: [{name: canary, pool: light, model: light, weight_percent: 10}]}
    idempotency: {}
    concurrency: {limit: 64, adaptive: {dry_run: true, min_limit: 2, max_limit: 500}}
admission: {max_inflight: 100000}
logging: {level: warn, access_log: false}
EOF
  timeout 120 "$fusebox_bin" --config "$work/fusebox.yaml" >"$work/fusebox.out" 2>"$work/fusebox.log" &
  pids+=($!)
  wait_line "$work/fusebox.out" || { echo "fusebox did not start: $(cat "$work/fusebox.log")"; return 1; }
  local http
  http=$(sed -n '1s/.* http=[^ ]*:\([0-9][0-9]*\) .*/\1/p' "$work/fusebox.out")
  admin_port=$(sed -n '1s/.* admin=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/fusebox.out")
  if [ -z "$http" ] || [ -z "$admin_port" ]; then
    echo "unexpected first line: $(head -1 "$work/fusebox.out")"
    return 1
  fi
  # Traffic, so that per-request series exist; one breaker override, so that a transition does.
  local _
  for _ in 1 2 3 4 5; do
    curl -s -m 5 -XPOST "127.0.0.1:$http/v1/models/half_plus_two:predict" -d '{"instances":[1.0]}' >/dev/null
  done
  curl -s -m 5 "127.0.0.1:$http/v1/models/half_plus_two" >/dev/null
  curl -s -m 5 -XPOST "127.0.0.1:$admin_port/admin/pools/light/backends/0/breaker" -d '{"state":"forced_open"}' >/dev/null
  curl -s -m 5 -XPOST "127.0.0.1:$admin_port/admin/pools/light/backends/0/breaker" -d '{"state":"auto"}' >/dev/null
  curl -fsS -m 5 "127.0.0.1:$admin_port/metrics" >"$work/metrics.txt" ||
    { echo "GET /metrics failed"; return 1; }
  echo "fusebox on 127.0.0.1:$http (admin $admin_port): $(grep -c '^fusebox_' "$work/metrics.txt") series"
}

check_metrics() {
  "$python" - "$work/metrics.txt" "$PENDING_METRICS" deploy/prometheus/rules/*.yml \
    deploy/grafana/dashboards/*.json <<'PY'
import json, re, sys, yaml
metrics_file, pending_spec, files = sys.argv[1], sys.argv[2], sys.argv[3:]
# What the live fusebox exports: family names (# TYPE), sample names, labels per family.
types, labels = {}, {}
for line in open(metrics_file):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        types[m.group(1)] = m.group(2); labels.setdefault(m.group(1), set()); continue
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
    if m and not line.startswith("#"):
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in types else name
        labels.setdefault(family, set()).update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
# A family exported without any series yet (no gRPC call, ...) shows no labels: take them from
# the metric tables of docs/*.md (a column named "labels").
import glob
documented = {}
for doc in glob.glob("docs/*.md"):
    columns = None
    for line in open(doc):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if not cells:
            columns = None; continue
        if columns is None:
            columns = cells if "labels" in cells else []
            continue
        m = re.match(r"`(fusebox_[a-z0-9_]+)", cells[0]) if columns else None
        if m and len(cells) > columns.index("labels"):
            documented[m.group(1)] = {l.strip() for l in cells[columns.index("labels")].split(",") if l.strip()}
for family in types:
    if not labels.get(family) and documented.get(family):
        labels[family] = documented[family]
known = {}
for family, t in types.items():
    names = [family] + ([family + s for s in ("_bucket", "_sum", "_count")] if t == "histogram" else [])
    for n in names:
        known[n] = labels.get(family, set()) | ({"le"} if n.endswith("_bucket") else set())
pending = {}
for spec in pending_spec.split():
    name, _, labs = spec.partition(":")
    pending[name] = set(filter(None, labs.split(",")))
# Expressions: alert/record exprs of the rules, targets and variable queries of the dashboards.
exprs = []
for f in files:
    if f.endswith(".json"):
        d = json.load(open(f))
        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k in ("expr", "definition") and isinstance(v, str):
                        exprs.append((f, v))
                    else:
                        walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(d)
    else:
        for g in yaml.safe_load(open(f))["groups"]:
            for r in g["rules"]:
                exprs.append((f"{f} {r.get('alert') or r.get('record')}", r["expr"]))
generic = {"job", "instance", "le", "__name__"}
problems, used = [], set()
for where, e in exprs:
    names = set(re.findall(r"\bfusebox_[a-z0-9_]+\b", e))
    used |= names
    allowed = set(generic)
    for n in names:
        if n in known:
            allowed |= known[n]
        elif n in pending:
            allowed |= pending[n]
        else:
            problems.append(f"{where}: {n} is not exported by fusebox")
    # Labels in selectors of fusebox metrics.
    for n, body in re.findall(r"\b(fusebox_[a-z0-9_]+)\{([^}]*)\}", e):
        have = known.get(n, pending.get(n, set())) | generic
        for lab in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body):
            if lab not in have:
                problems.append(f"{where}: {n} has no label {lab} (has {sorted(have - generic)})")
    # Labels in by (...) / without (...) / on (...) / ignoring (...) clauses.
    if names:
        for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", e):
            for lab in filter(None, (x.strip() for x in clause.split(","))):
                if lab not in allowed:
                    problems.append(f"{where}: label {lab} is not a label of {sorted(names)}")
for p in sorted(set(problems)):
    print(p)
print(f"{len(used)} fusebox metrics used in {len(exprs)} expressions; "
      f"{len(known)} names exported; pending: {', '.join(sorted(pending)) or 'none'}")
sys.exit(1 if problems else 0)
PY
}

check_healthcheck() {
  # The HEALTHCHECK line of the Dockerfile, with the image's admin port replaced by the live one.
  local cmd
  cmd=$(sed -n '/^HEALTHCHECK/,/^[^ ]/p' docker/Dockerfile | grep -o 'CMD \[.*\]' | head -1)
  [ -n "$cmd" ] || { echo "no HEALTHCHECK CMD in docker/Dockerfile"; return 1; }
  local args
  mapfile -t args < <("$python" -c 'import json,sys; [print(a) for a in json.loads(sys.argv[1][4:])]' "$cmd")
  args[0]=$fusebox_bin
  args=("${args[@]//:9901\//:$admin_port/}")
  timeout 10 "${args[@]}"
}

if check live-fusebox start_fusebox; then
  check metrics check_metrics
  check healthcheck check_healthcheck
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "check-deploy: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check-deploy: all checks passed"
