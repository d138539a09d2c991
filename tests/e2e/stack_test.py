#!/usr/bin/python3
"""Whole-stack end-to-end test: nginx -> fusebox x2 -> tfs-sim x2, scraped by Prometheus.

Every component is the real one: Debian's nginx runs deploy/nginx/fusebox.conf, Debian's
Prometheus runs deploy/prometheus/prometheus.yml with the alert rules of deploy/prometheus/rules/,
and promtool lints fusebox's /metrics. Only what cannot be used as shipped is templated: nginx's
upstream addresses, listen ports and log paths; Prometheus' target discovery, intervals and
rule file paths. Everything listens on 127.0.0.1, on free ports, under one temporary directory.

The stack is started once for the class. unittest runs the cases in name order, which puts the
rolling restart (the only case that stops processes) last.

Environment (ctest sets all of them, see CMakeLists.txt here):
  FUSEBOX_BIN, TFS_SIM_BIN   the binaries (default: <source>/build/bin/...)
  FUSEBOX_SOURCE_DIR         the repository (default: two folders above this file)
  PYTHONPATH                 must hold <build>/tests/python_stubs for tests/interop/tfs_client.py
  FUSEBOX_PYTHON             interpreter for tfs_client.py (default /usr/bin/python3)
  FUSEBOX_E2E_KEEP=1         keep the temporary directory (configurations and logs)

Run one case: /usr/bin/python3 tests/e2e/stack_test.py StackTest.test_rolling_restart_has_no_failed_requests
"""

import atexit
import glob
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

try:
    import yaml
except ImportError:
    sys.exit("stack_test.py: PyYAML is missing: install Debian's python3-yaml "
             "(scripts/install-deps.sh) and run with /usr/bin/python3")

SOURCE_DIR = os.environ.get("FUSEBOX_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
FUSEBOX_BIN = os.environ.get("FUSEBOX_BIN") or os.path.join(SOURCE_DIR, "build/bin/fusebox")
TFS_SIM_BIN = os.environ.get("TFS_SIM_BIN") or os.path.join(SOURCE_DIR, "build/bin/tfs-sim")
CLIENT_PYTHON = os.environ.get("FUSEBOX_PYTHON") or "/usr/bin/python3"

NGINX_CONF = os.path.join(SOURCE_DIR, "deploy/nginx/fusebox.conf")
PROMETHEUS_YML = os.path.join(SOURCE_DIR, "deploy/prometheus/prometheus.yml")
TFS_CLIENT = os.path.join(SOURCE_DIR, "tests/interop/tfs_client.py")

PREDICT_PATH = "/v1/models/half_plus_two:predict"
PREDICT_BODY = b'{"instances":[1.0,2.0,5.0]}'
PREDICTIONS = [2.5, 3.0, 4.5]

# drain.delay and drain.timeout of both replicas (seconds).
DRAIN_DELAY = 1.0
DRAIN_TIMEOUT = 5.0
# Prometheus scrapes and evaluates this often during the test (seconds).
PROMETHEUS_INTERVAL = 1
# Above nginx's fail_timeout (10s): a replica nginx took out while it restarted is tried again
# only after that, and then only when a request is next balanced to it.
BACK_IN_ROTATION_TIMEOUT = 20.0

POLL_INTERVAL = 0.02


STARTED = time.monotonic()


def note(message):
    """A progress line on stderr with the time since start: where the time goes, and what
    happened before a failure."""
    print(f"[{time.monotonic() - STARTED:6.2f}s] {message}", file=sys.stderr, flush=True)


class DeadlineExceeded(AssertionError):
    pass


def wait_for(condition, timeout, what, interval=POLL_INTERVAL):
    """Polls condition() until it returns something truthy and returns that; fails after timeout
    seconds, saying what was awaited and the last value or exception seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = repr(value)
        except AssertionError:  # the condition's way to give up at once
            raise
        except Exception as e:  # its other errors (connection refused, ...) are retried
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"after {timeout:g}s still waiting for {what} (last: {last})")
        time.sleep(interval)


def free_ports(count):
    """Ports free on 127.0.0.1 right now. Held open together so that they differ; a process
    started soon after can bind them (another program could take one in between: the start-up
    then fails with a bind error, not a wrong result)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def find_tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        # A failure, not a skip: the stack test is part of `make test`, which installs them.
        raise AssertionError(
            f"{name} is not installed: run scripts/install-deps.sh (Debian packages "
            f"nginx-light and prometheus)")
    return path


def http_request(port, method, path, body=None, headers=None, timeout=5.0):
    """One request on a fresh connection: (status, headers as a lowercase dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        conn.close()


def predict_headers():
    return {"Content-Type": "application/json"}


def metric_sum(exposition, family):
    """Sum of every sample of a counter family in Prometheus text format."""
    total = 0.0
    for line in exposition.splitlines():
        m = re.match(rf"{re.escape(family)}(?:\{{[^}}]*\}})? (\S+)", line)
        if m:
            total += float(m.group(1))
    return total


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"<{e}>"


class Process:
    """A child process whose stdout is read line by line on a thread (so that it never blocks on
    a full pipe) and whose stderr goes to a file. Every instance is stopped at interpreter exit
    at the latest."""

    _running = []

    def __init__(self, name, argv, log_path, capture_stdout=True):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._lines = queue.Queue()
        log = open(log_path, "ab")
        # A process group of its own: nginx and its workers can be killed as one.
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else log, stderr=log,
            start_new_session=True)
        log.close()
        Process._running.append(self)
        self._reader = None
        if capture_stdout:
            self._reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._reader.start()

    def _read_stdout(self):
        for raw in self.popen.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def read_line(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            raise AssertionError(
                f"{self.name} printed no line within {timeout:g}s (exit code "
                f"{self.popen.poll()}); {self.argv}\nlog:\n{tail(self.log_path)}")
        return line

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        self.popen.send_signal(sig)

    def wait(self, timeout):
        """The exit code, or None when still running after timeout seconds."""
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reap()
        return code

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Asks the process to stop, then kills its whole group if it does not within timeout."""
        if self.alive():
            self.send_signal(sig)
            if self.wait(timeout) is None:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait()
        self._reap()
        return self.popen.returncode

    def _reap(self):
        if self in Process._running:
            Process._running.remove(self)
        if self._reader is not None:
            # The pipe ends with the process (unless a child of its own still holds it).
            self._reader.join(timeout=2)
            if not self._reader.is_alive():
                self.popen.stdout.close()

    @classmethod
    def stop_all(cls):
        for p in reversed(list(cls._running)):
            p.stop(timeout=5.0)


atexit.register(Process.stop_all)


def _exit_on_signal(_signum, _frame):
    # A SIGTERM or SIGHUP (ctest's timeout, a kill) ends the run as Ctrl-C does: unittest stops,
    # and atexit stops the children, which would otherwise outlive it (nginx, Prometheus...).
    raise KeyboardInterrupt


for _signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, _exit_on_signal)


class TfsSim:
    def __init__(self, workdir, index):
        self.process = Process(f"tfs-sim {index}",
                               [TFS_SIM_BIN, "--rest-port", "0", "--grpc-port", "0"],
                               os.path.join(workdir, f"tfs-sim-{index}.log"))
        # docs/tfs-sim.md: the REST port on the first stdout line, the gRPC port on the second.
        self.rest_port = int(self.process.read_line(10))
        self.grpc_port = int(self.process.read_line(10))


class Fusebox:
    """One fusebox replica on fixed ports, so that nginx and Prometheus find it again after a
    restart."""

    def __init__(self, workdir, index, sims):
        self.name = f"fusebox {index}"
        self.workdir = workdir
        self.index = index
        self.http_port, self.admin_port, self.grpc_port = free_ports(3)
        self.config_path = os.path.join(workdir, f"fusebox-{index}.yaml")
        endpoints = "\n".join(
            f"      - {{address: 127.0.0.1, port: {s.rest_port}, grpc_port: {s.grpc_port}}}"
            for s in sims)
        with open(self.config_path, "w") as f:
            f.write(f"""drain: {{delay: {DRAIN_DELAY:g}s, timeout: {DRAIN_TIMEOUT:g}s}}
listeners:
  http: {{address: 127.0.0.1, port: {self.http_port}}}
  admin: {{address: 127.0.0.1, port: {self.admin_port}}}
  grpc: {{address: 127.0.0.1, port: {self.grpc_port}}}
pools:
  primary:
    endpoints:
{endpoints}
routes:
  - {{name: half_plus_two, match: {{model: half_plus_two}}, pool: primary}}
logging: {{level: warn, access_log: false}}
""")
        self.process = None
        self.starts = 0

    @property
    def admin_address(self):
        return f"127.0.0.1:{self.admin_port}"

    @property
    def log_path(self):
        return os.path.join(self.workdir, f"fusebox-{self.index}.log")

    def start(self):
        self.starts += 1
        self.process = Process(self.name, [FUSEBOX_BIN, "--config", self.config_path],
                               self.log_path)
        line = self.process.read_line(10)
        expected = (f"listening http=127.0.0.1:{self.http_port} admin=127.0.0.1:{self.admin_port}"
                    f" grpc=127.0.0.1:{self.grpc_port}")
        if line != expected:
            raise AssertionError(f"{self.name} (start {self.starts}) printed {line!r}, expected "
                                 f"{expected!r}\nlog:\n{tail(self.log_path)}")

    def readyz(self):
        return http_request(self.admin_port, "GET", "/readyz", timeout=2)[0]

    def metrics(self):
        status, _, body = http_request(self.admin_port, "GET", "/metrics", timeout=5)
        if status != 200:
            raise AssertionError(f"{self.name}: GET /metrics answered {status}")
        return body.decode()

    def requests_total(self):
        return metric_sum(self.metrics(), "fusebox_requests_total")


class Nginx:
    """Debian's nginx running deploy/nginx/fusebox.conf, wrapped the way scripts/check-deploy.sh
    wraps it (the file belongs inside `http {}`), in the foreground."""

    # The shipped file's ports are fusebox's own defaults: 8080 REST, 8500 gRPC.
    SHIPPED_REST_PORT, SHIPPED_GRPC_PORT = 8080, 8500

    def __init__(self, workdir, replicas):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            # Workers drop root for nginx's default user, which must still reach the temp paths.
            os.chmod(workdir, 0o755)
            os.chmod(self.dir, 0o755)
        self.http_port, self.grpc_port = free_ports(2)
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        with open(NGINX_CONF) as f:
            shipped = f.read()
        site = self.render_site(shipped, replicas)
        with open(os.path.join(self.dir, "fusebox.conf"), "w") as f:
            f.write(site)
        n = self.dir
        with open(os.path.join(n, "nginx.conf"), "w") as f:
            f.write(f"""worker_processes 1;
pid {n}/nginx.pid;
error_log {self.error_log} warn;
events {{}}
http {{
  client_body_temp_path {n}/body;
  proxy_temp_path {n}/proxy;
  fastcgi_temp_path {n}/fastcgi;
  uwsgi_temp_path {n}/uwsgi;
  scgi_temp_path {n}/scgi;
  include {n}/fusebox.conf;
}}
""")
        nginx = find_tool("nginx")
        self.process = Process("nginx", [nginx, "-p", n, "-c", f"{n}/nginx.conf", "-e",
                                         self.error_log, "-g", "daemon off;"],
                               os.path.join(n, "stderr.log"), capture_stdout=False)

    def render_site(self, text, replicas):
        """The shipped file with only the addresses changed. Each substitution must match what
        the shipped file has, so that a change there fails here instead of testing something
        else."""
        replica_ports = {self.SHIPPED_REST_PORT: [r.http_port for r in replicas],
                         self.SHIPPED_GRPC_PORT: [r.grpc_port for r in replicas]}
        upstreams_seen = []

        # One `server name:port params;` line per upstream names every replica in the shipped
        # file; here it becomes one line per replica with the same parameters (max_fails, ...).
        def upstream_server(m):
            indent, port, params = m.group(1), int(m.group(3)), m.group(4) or ""
            if port not in replica_ports:
                raise AssertionError(f"{NGINX_CONF}: upstream server {m.group(2)}:{port} is "
                                     f"neither fusebox's REST nor its gRPC port")
            upstreams_seen.append(port)
            return "\n".join(f"{indent}server 127.0.0.1:{p}{params};"
                             for p in replica_ports[port])

        def upstream_block(m):
            body, count = re.subn(r"(?m)^([ \t]*)server[ \t]+([A-Za-z0-9.-]+):(\d+)([^;]*);",
                                  upstream_server, m.group(2))
            if count != 1:
                raise AssertionError(f"{NGINX_CONF}: upstream {m.group(1)} has {count} server "
                                     f"lines, expected 1")
            return f"upstream {m.group(1)} {{{body}}}"

        text = re.sub(r"(?s)upstream[ \t]+(\S+)[ \t]*\{(.*?)\n\}", upstream_block, text)
        if sorted(upstreams_seen) != sorted(replica_ports):
            raise AssertionError(f"{NGINX_CONF}: expected one upstream for port 8080 and one for "
                                 f"8500, found {upstreams_seen}")

        listen_ports = {self.SHIPPED_REST_PORT: self.http_port,
                        self.SHIPPED_GRPC_PORT: self.grpc_port}
        listens_seen = []

        def listen(m):
            port = int(m.group(2))
            if port not in listen_ports:
                raise AssertionError(f"{NGINX_CONF}: unexpected `listen {port}`")
            listens_seen.append(port)
            return f"{m.group(1)}listen 127.0.0.1:{listen_ports[port]}{m.group(3)};"

        text = re.sub(r"(?m)^([ \t]*)listen[ \t]+(\d+)([^;]*);", listen, text)
        if sorted(listens_seen) != sorted(listen_ports):
            raise AssertionError(f"{NGINX_CONF}: expected `listen 8080` and `listen 8500`, "
                                 f"found {listens_seen}")

        text, logs = re.subn(r"(?m)^([ \t]*)access_log[ \t]+\S+", rf"\1access_log {self.access_log}",
                             text)
        if logs == 0:
            raise AssertionError(f"{NGINX_CONF}: no access_log line")
        return text

    def accepting(self):
        if not self.process.alive():
            raise AssertionError(f"nginx exited with {self.process.popen.returncode}:\n"
                                 f"{tail(self.error_log)}{tail(self.process.log_path)}")
        for port in (self.http_port, self.grpc_port):
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        return True


class Prometheus:
    """Debian's Prometheus with deploy/prometheus/prometheus.yml: its global section and rule
    files, and the fusebox job with static targets instead of DNS discovery."""

    def __init__(self, workdir, replicas):
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(self.dir)
        self.port = free_ports(1)[0]
        with open(PROMETHEUS_YML) as f:
            shipped = yaml.safe_load(f)
        config_dir = os.path.dirname(PROMETHEUS_YML)

        settings = dict(shipped["global"])
        # Scrape and evaluate every second, so that waits stay short; a scrape may not take
        # longer than the interval.
        interval = f"{PROMETHEUS_INTERVAL}s"
        settings.update(scrape_interval=interval, evaluation_interval=interval,
                        scrape_timeout=interval)
        # Prometheus resolves rule files relative to its configuration file: keep that meaning.
        self.rule_files = [os.path.join(config_dir, pattern) for pattern in shipped["rule_files"]]
        jobs = [j for j in shipped["scrape_configs"] if j["job_name"] == "fusebox"]
        if len(jobs) != 1:
            raise AssertionError(f"{PROMETHEUS_YML}: expected one job named fusebox")
        job = {k: v for k, v in jobs[0].items() if not k.endswith("_sd_configs")}
        job["static_configs"] = [{"targets": [r.admin_address for r in replicas]}]
        # The other jobs scrape TF Serving and Prometheus itself by compose host names; tfs-sim
        # has no metrics endpoint, so they are left out rather than left failing.
        config = {"global": settings, "rule_files": self.rule_files, "scrape_configs": [job]}
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

        prometheus = find_tool("prometheus")
        self.process = Process("prometheus", [
            prometheus, f"--config.file={self.config_path}",
            f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
            f"--web.listen-address=127.0.0.1:{self.port}"],
            os.path.join(self.dir, "prometheus.log"), capture_stdout=False)

    def api(self, path, **params):
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        status, _, body = http_request(self.port, "GET", path + query, timeout=5)
        if status != 200:
            raise AssertionError(f"Prometheus {path}{query} answered {status}: {body[:300]!r}")
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus {path}{query}: {answer}")
        return answer["data"]

    def query(self, expr):
        """The instant vector of expr: a list of (labels, value)."""
        data = self.api("/api/v1/query", query=expr)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def ready(self):
        if not self.process.alive():
            raise AssertionError(f"prometheus exited with {self.process.popen.returncode}:\n"
                                 f"{tail(self.process.log_path)}")
        return http_request(self.port, "GET", "/-/ready", timeout=2)[0] == 200


class PredictLoad:
    """Client threads sending predictions through nginx on kept-alive connections, until stopped,
    until each has sent max_per_client requests, or until max_seconds have passed. Every outcome
    is recorded: a failure is any answer but 200 with the expected predictions, or any
    connection error or timeout."""

    def __init__(self, port, clients, max_per_client, max_seconds, pace=0.002):
        self.port = port
        self.max_per_client = max_per_client
        self.deadline = time.monotonic() + max_seconds
        # A short pause between requests keeps the load steady without saturating a small
        # machine (which would slow the very processes whose timing is checked).
        self.pace = pace
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.answered = 0
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def stop(self, timeout=15.0):
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.running():
            raise AssertionError(f"load threads still running {timeout:g}s after stop")

    def counts(self):
        with self.lock:
            return self.sent, self.answered, list(self.failures)

    def _run(self, client):
        conn = None
        for _ in range(self.max_per_client):
            if self.stopping.is_set() or time.monotonic() >= self.deadline:
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            with self.lock:
                self.sent += 1
            failure = None
            try:
                conn.request("POST", PREDICT_PATH, body=PREDICT_BODY, headers=predict_headers())
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    failure = f"status {response.status}: {body[:200]!r}"
                elif json.loads(body).get("predictions") != PREDICTIONS:
                    failure = f"body {body[:200]!r}"
                if response.will_close:  # Connection: close (nginx's keepalive_requests, ...)
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as e:
                failure = f"{type(e).__name__}: {e}"
                conn.close()
                conn = None
            with self.lock:
                if failure is None:
                    self.answered += 1
                else:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} client {client}: {failure}")
            self.stopping.wait(self.pace)
        if conn is not None:
            conn.close()


class StackTest(unittest.TestCase):
    workdir = None
    sims = []
    replicas = []
    nginx = None
    prometheus = None

    @classmethod
    def setUpClass(cls):
        for path in (FUSEBOX_BIN, TFS_SIM_BIN):
            if not os.access(path, os.X_OK):
                raise AssertionError(f"{path} is not an executable: build first (make build) or "
                                     f"set FUSEBOX_BIN / TFS_SIM_BIN")
        for tool in ("nginx", "prometheus", "promtool"):
            find_tool(tool)
        cls.workdir = tempfile.mkdtemp(prefix="fusebox-e2e-")
        try:
            cls._start_stack()
        except BaseException:
            cls._stop_stack()
            raise

    @classmethod
    def _start_stack(cls):
        cls.sims = [TfsSim(cls.workdir, i) for i in range(2)]
        cls.replicas = [Fusebox(cls.workdir, i, cls.sims) for i in range(2)]
        for r in cls.replicas:
            r.start()
        cls.nginx = Nginx(cls.workdir, cls.replicas)
        cls.prometheus = Prometheus(cls.workdir, cls.replicas)
        # All of them start in parallel; now wait for each.
        for r in cls.replicas:
            wait_for(lambda: r.readyz() == 200, 10, f"{r.name} /readyz 200")
        wait_for(cls.nginx.accepting, 10, "nginx accepting on its REST and gRPC ports")
        wait_for(cls.prometheus.ready, 30, "Prometheus /-/ready")
        note(f"stack ready in {cls.workdir}")

    @classmethod
    def tearDownClass(cls):
        cls._stop_stack()

    @classmethod
    def _stop_stack(cls):
        Process.stop_all()
        if cls.workdir and os.environ.get("FUSEBOX_E2E_KEEP") != "1":
            shutil.rmtree(cls.workdir, ignore_errors=True)
        elif cls.workdir:
            print(f"stack_test: kept {cls.workdir}", file=sys.stderr)

    # --- shared steps ----------------------------------------------------------------------

    def logs(self):
        """The end of every log, for failure messages."""
        parts = [f"--- {r.name}\n{tail(r.log_path, 15)}" for r in self.replicas]
        parts.append(f"--- nginx error log\n{tail(self.nginx.error_log, 15)}")
        return "\n".join(parts)

    def predict_through_nginx(self, headers=None):
        return http_request(self.nginx.http_port, "POST", PREDICT_PATH, body=PREDICT_BODY,
                            headers={**predict_headers(), **(headers or {})})

    def send_predictions(self, count):
        for _ in range(count):
            status, _, body = self.predict_through_nginx()
            self.assertEqual(status, 200, f"{body!r}\n{self.logs()}")

    def tfs_client(self, *args):
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        result = subprocess.run([CLIENT_PYTHON, TFS_CLIENT, *args], env=env, capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0,
                         f"tfs_client.py {' '.join(args)} exited {result.returncode}\n"
                         f"stdout: {result.stdout}\nstderr: {result.stderr}\n"
                         f"PYTHONPATH={os.environ.get('PYTHONPATH')}\n{self.logs()}")
        return json.loads(result.stdout)

    # --- predictions through nginx ---------------------------------------------------------

    def test_grpc_prediction_through_nginx(self):
        answer = self.tfs_client("--target", f"127.0.0.1:{self.nginx.grpc_port}", "predict",
                                 "--model", "half_plus_two", "--values", "1,2,5")
        self.assertEqual(answer["outputs"]["y"]["values"], PREDICTIONS, answer)
        # fusebox's trailing metadata is relayed by grpc_pass (docs/grpc.md).
        self.assertEqual(answer["trailing_metadata"].get("x-fusebox-tier"), "primary", answer)

    def test_http_prediction_through_nginx(self):
        request_id = "e2e-" + os.urandom(8).hex()
        status, headers, body = self.predict_through_nginx({"X-Request-Id": request_id})
        self.assertEqual(status, 200, f"{body!r}\n{self.logs()}")
        self.assertEqual(json.loads(body), {"predictions": PREDICTIONS})
        self.assertEqual(headers.get("x-fusebox-tier"), "primary", headers)
        # The client's request id went through nginx to fusebox and back.
        self.assertEqual(headers.get("x-request-id"), request_id, headers)

    def test_nginx_balances_over_both_replicas(self):
        before = [r.requests_total() for r in self.replicas]
        self.send_predictions(10)
        # Every server line of the upstream is in use: each replica answered some.
        for r, b in zip(self.replicas, before):
            self.assertGreater(r.requests_total(), b, f"{r.name} got no request from nginx")

    # --- Prometheus ------------------------------------------------------------------------

    def both_targets(self):
        return {r.admin_address for r in self.replicas}

    def test_prometheus_loads_the_alert_rules(self):
        expected = set()
        for pattern in self.prometheus.rule_files:
            for path in glob.glob(pattern):
                with open(path) as f:
                    for group in yaml.safe_load(f)["groups"]:
                        expected |= {r["alert"] for r in group["rules"] if "alert" in r}
        self.assertIn("FuseboxConfigReloadFailed", expected)

        def evaluated_rules():
            rules = [r for g in self.prometheus.api("/api/v1/rules")["groups"] for r in g["rules"]]
            # A rule not evaluated yet shows the zero time; wait for one evaluation of each.
            if any(r["lastEvaluation"].startswith("0001-") for r in rules):
                return None
            return rules

        rules = wait_for(evaluated_rules, 20, "one evaluation of every rule")
        self.assertEqual({r["name"] for r in rules if r["type"] == "alerting"}, expected)
        broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        self.assertEqual(broken, [], "rules that fail to evaluate against live fusebox series")

    def test_prometheus_scrapes_both_replicas(self):
        def healthy_targets():
            targets = self.prometheus.api("/api/v1/targets", state="active")["activeTargets"]
            return {t["labels"]["instance"] for t in targets
                    if t["labels"]["job"] == "fusebox" and t["health"] == "up"}

        wait_for(lambda: healthy_targets() == self.both_targets(), 20,
                 "both fusebox targets up in /api/v1/targets")
        up = {labels["instance"]: value
              for labels, value in self.prometheus.query('up{job="fusebox"}')}
        self.assertEqual(up, {t: 1.0 for t in self.both_targets()})
        # The shipped metrics_path is kept.
        target = self.prometheus.api("/api/v1/targets", state="active")["activeTargets"][0]
        self.assertTrue(target["scrapeUrl"].endswith("/metrics"), target["scrapeUrl"])

    def test_prometheus_sees_request_counters_increase(self):
        expr = 'sum(fusebox_requests_total{job="fusebox"})'

        def total():
            result = self.prometheus.query(expr)
            return result[0][1] if result else None

        # A request to each replica directly, so that both have the series whatever ran before,
        # then a first sample of both in Prometheus, so that the sum covers both.
        for r in self.replicas:
            status, _, body = http_request(r.http_port, "POST", PREDICT_PATH, body=PREDICT_BODY,
                                           headers=predict_headers())
            self.assertEqual(status, 200, f"{r.name}: {body!r}")
        wait_for(lambda: {l["instance"] for l, _ in
                          self.prometheus.query('fusebox_requests_total{job="fusebox"}')}
                 == self.both_targets(), 20, "fusebox_requests_total from both replicas")
        before = total()
        sent = 20
        self.send_predictions(sent)
        wait_for(lambda: total() >= before + sent, 20,
                 f"{expr} to grow by {sent} from {before}")

    def test_prometheus_sees_config_reload_counters(self):
        def results_by_instance():
            found = {}
            for labels, _ in self.prometheus.query('fusebox_config_reloads_total{job="fusebox"}'):
                found.setdefault(labels["instance"], set()).add(labels.get("result"))
            return found

        found = wait_for(lambda: len(results_by_instance()) == 2 and results_by_instance(), 20,
                         "fusebox_config_reloads_total from both replicas")
        self.assertEqual(found, {t: {"success", "failure"} for t in self.both_targets()})

    # --- promtool --------------------------------------------------------------------------

    def test_promtool_check_metrics(self):
        # Traffic first, so that the per-request families have series to lint.
        self.send_predictions(4)
        promtool = find_tool("promtool")
        for r in self.replicas:
            exposition = r.metrics()
            result = subprocess.run([promtool, "check", "metrics"], input=exposition,
                                    capture_output=True, text=True, timeout=30)
            output = (result.stdout + result.stderr).strip()
            if output:
                print(f"promtool check metrics ({r.name}):\n{output}", file=sys.stderr)
            self.assertEqual(result.returncode, 0,
                             f"promtool check metrics on {r.name}'s /metrics:\n{output}")

    # --- rolling restart -------------------------------------------------------------------

    def test_rolling_restart_has_no_failed_requests(self):
        load = PredictLoad(self.nginx.http_port, clients=4, max_per_client=50_000,
                           max_seconds=120)
        try:
            wait_for(lambda: load.counts()[1] >= 100, 10, "load flowing through nginx")
            for replica in self.replicas:
                self.restart(replica, load)
            # Some traffic after the last restart as well, then stop.
            answered = load.counts()[1]
            wait_for(lambda: load.counts()[1] >= answered + 100, 10, "load after the restarts")
        finally:
            load.stop()
        sent, answered, failures = load.counts()
        print(f"rolling restart: {sent} requests, {answered} answered 200, {len(failures)} failed",
              flush=True)
        self.assertEqual(failures, [], f"{len(failures)} failed requests (first 10 shown):\n"
                         + "\n".join(failures[:10]) + f"\n{self.logs()}")
        self.assertEqual(sent, answered)

    def restart(self, replica, load):
        """Drains replica with SIGTERM while load runs, starts it again on the same ports, and
        waits until nginx sends it traffic."""
        process = replica.process
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)

        # Not ready at once, while it still answers: the admin listener answers 503 (a refused
        # connection before that would mean it stopped without turning unready first).
        def not_ready():
            try:
                return replica.readyz() == 503
            except ConnectionRefusedError:
                raise AssertionError(f"{replica.name} stopped answering before /readyz said 503")

        wait_for(not_ready, DRAIN_DELAY, f"{replica.name} /readyz 503 after SIGTERM")
        unready_after = time.monotonic() - signalled
        # And during drain.delay it still serves, asking clients to go elsewhere next time.
        status, headers, body = http_request(replica.http_port, "POST", PREDICT_PATH,
                                             body=PREDICT_BODY, headers=predict_headers())
        elapsed = time.monotonic() - signalled
        self.assertEqual(status, 200, f"{replica.name} {elapsed:.2f}s into its drain: {body!r}")
        self.assertEqual(headers.get("connection"), "close",
                         f"{replica.name} {elapsed:.2f}s into its drain: {headers}")

        budget = DRAIN_DELAY + DRAIN_TIMEOUT
        code = process.wait(budget + 5)  # beyond the budget only to report a late exit
        elapsed = time.monotonic() - signalled
        self.assertIsNotNone(code, f"{replica.name} still running {elapsed:.1f}s after SIGTERM\n"
                             f"{self.logs()}")
        self.assertEqual(code, 0, f"{replica.name} exit code\n{self.logs()}")
        self.assertLessEqual(elapsed, budget, f"{replica.name} took {elapsed:.2f}s to exit, over "
                             f"drain.delay + drain.timeout")

        exited_after = elapsed

        started = time.monotonic()
        replica.start()
        wait_for(lambda: replica.readyz() == 200, 10, f"restarted {replica.name} /readyz 200")
        ready_after = time.monotonic() - started
        # Back in nginx's rotation: its own request counter (zero at start) rises.
        wait_for(lambda: replica.requests_total() > 0 or not load.running(),
                 BACK_IN_ROTATION_TIMEOUT, f"nginx sending traffic to restarted {replica.name}",
                 interval=0.1)
        self.assertTrue(load.running(), "the load ended (count or time bound) before the "
                        f"restart of {replica.name} was over")
        note(f"{replica.name}: /readyz 503 {unready_after:.2f}s after SIGTERM, exit 0 after "
             f"{exited_after:.2f}s; restarted: ready in {ready_after:.2f}s, traffic from nginx "
             f"after {time.monotonic() - started:.2f}s")


if __name__ == "__main__":
    unittest.main(verbosity=2)
