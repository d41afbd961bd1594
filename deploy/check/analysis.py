"""Runs the canary analysis of deploy/rollouts for real.

Two real app servers stand for a canary's pods: one healthy, one answering
errors (503s: controls sent to a probe that reports but has no control
socket, the answer a server gives when its probes cannot be reached). A
real Prometheus (Debian's `prometheus`) scrapes both every second, with the
label the Rollout's pods carry (`rollouts_pod_template_hash`) set to
`healthy` and `erroring` as Kubernetes service discovery would set it.
Every metric of every AnalysisTemplate is then evaluated as Argo Rollouts
evaluates it: its query, with the template's arguments filled in, through
Prometheus's HTTP API, and its `successCondition` on the result.

It must hold that every query returns a number for both servers, every
condition holds for the healthy one, and some condition (the error rate's)
fails for the erroring one, so the analysis, and the rollout, stop there.

Usage: analysis.py --bin-dir target/debug/examples
"""

import argparse
import glob
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROLLOUTS = os.path.join(os.path.dirname(HERE), "rollouts")
# How long traffic runs, scraped every second: enough for rate() over the
# templates' windows to have several samples.
TRAFFIC_SECONDS = 6


TAKEN = set()


def free_port():
    """A free port on 127.0.0.1, never one handed out before in this run
    (the kernel may offer a just-closed port again)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in TAKEN:
            TAKEN.add(port)
            return port


def wait_for(url, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url} within {timeout} s")


def templates():
    """(template name, metric) for every metric of every AnalysisTemplate."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROLLOUTS, "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d and d.get("kind") in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
                    for m in d["spec"]["metrics"]:
                        out.append((d, m))
    if not out:
        raise SystemExit(f"no AnalysisTemplate metric under {ROLLOUTS}")
    return out


def fill(text, template, args):
    """Argo's `{{args.NAME}}` substitution, with the template's defaults."""
    values = {a["name"]: a.get("value") for a in template["spec"].get("args", [])}
    values.update(args)

    def one(m):
        name = m.group(1)
        if values.get(name) is None:
            raise SystemExit(f"{template['metadata']['name']}: no value for argument `{name}`")
        return str(values[name])

    return re.sub(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}", one, text)


# The conditions this project's templates use, in Argo's expression
# language: `isNaN(result[0]) || result[0] < N` (or `<=`, `>`, `>=`). Anything
# else is refused rather than guessed at.
CONDITION = re.compile(r"^\s*(?:isNaN\(result\[0\]\)\s*\|\|\s*)?result\[0\]\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*$")


def holds(condition, value):
    m = CONDITION.match(condition)
    if not m:
        raise SystemExit(f"analysis.py cannot evaluate `{condition}`: teach it this form")
    if math.isnan(value):
        return condition.lstrip().startswith("isNaN")
    op, bound = m.group(1), float(m.group(2))
    return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[op]


def query(prometheus, promql):
    r = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    body = r.json()
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused the query ({body.get('errorType')}: {body.get('error')}):\n{promql}")
    result = body["data"]["result"]
    if body["data"]["resultType"] != "vector" or len(result) != 1:
        return None, body["data"]
    return float(result[0]["value"][1]), body["data"]


def run(bin_dir):
    procs = []
    tmp = tempfile.mkdtemp(prefix="orchestrator-analysis-")
    try:
        servers = {}
        for hash_ in ("healthy", "erroring"):
            port = free_port()
            log = open(os.path.join(tmp, f"app-{hash_}.log"), "w")
            procs.append(
                subprocess.Popen(
                    [os.path.join(bin_dir, "app-server"), "--host", "127.0.0.1", "--port", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            servers[hash_] = f"http://127.0.0.1:{port}"
        for hash_, url in servers.items():
            wait_for(f"{url}/health", f"the {hash_} app server")
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"an app server exited at start (code {p.returncode}); see its log")

        prom_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "app-server",
                    "static_configs": [
                        {"targets": [url.removeprefix("http://")], "labels": {"rollouts_pod_template_hash": h}}
                        for h, url in servers.items()
                    ],
                }
            ],
        }
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={tmp}/prometheus.yml",
                    f"--storage.tsdb.path={tmp}/tsdb",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=open(os.path.join(tmp, "prometheus.log"), "w"),
                stderr=subprocess.STDOUT,
            )
        )
        prometheus = f"http://127.0.0.1:{prom_port}"
        wait_for(f"{prometheus}/-/ready", "Prometheus")

        # The erroring server learns of one probe (a real synthetic probe
        # posting a report), which has no control socket: every control
        # sent to it is a 503.
        out = subprocess.run(
            [os.path.join(bin_dir, "synthetic-probes"), "--app", servers["erroring"], "--hosts", "1",
             "--containers", "1", "--processes", "2", "--connections", "1"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )
        if out.returncode != 0:
            raise SystemExit(f"synthetic-probes failed: {out.stderr}")
        probe = requests.get(f"{servers['erroring']}/api/v1/agents/list", timeout=5).json()["agents"][0]["agent_id"]

        # Traffic as viewers make it; the erroring server's share of it
        # fails.
        s = requests.Session()
        answers = {h: {} for h in servers}
        end = time.time() + TRAFFIC_SECONDS
        while time.time() < end:
            for h, url in servers.items():
                for path in ("/api/topology", "/api/topology/hosts", "/health"):
                    code = s.get(url + path, timeout=5).status_code
                    answers[h][code] = answers[h].get(code, 0) + 1
            code = s.post(f"{servers['erroring']}/api/control/{probe}/node/docker_stop_container", timeout=5).status_code
            answers["erroring"][code] = answers["erroring"].get(code, 0) + 1
            time.sleep(0.02)
        if not any(c >= 500 for c in answers["erroring"]):
            raise SystemExit(f"the erroring server answered no error: {answers['erroring']}")
        time.sleep(2.5)  # the last of it scraped

        errors = []
        failed_on_erroring = []
        for template, metric in templates():
            name = f"{template['metadata']['name']}/{metric['name']}"
            promql_template = metric["provider"]["prometheus"]["query"]
            condition = metric["successCondition"]
            # A canary with no traffic yet (no series at all) must answer a
            # number too: Argo counts an empty result as an error.
            for h in [*servers, "no-traffic-yet"]:
                promql = fill(promql_template, template, {"canary-hash": h})
                value, data = query(prometheus, promql)
                if value is None:
                    errors.append(f"{name} on the {h} server: not one number but {data}")
                    continue
                ok = holds(condition, value)
                print(f"analysis: {name} on the {h} server: {value:.4g} -> {'success' if ok else 'failure'}")
                if math.isnan(value) and h in servers:
                    errors.append(f"{name} on the {h} server: NaN although there was traffic")
                if h != "erroring" and not ok:
                    errors.append(f"{name}: `{condition}` fails for the {h} server ({value})")
                if h == "erroring" and not ok:
                    failed_on_erroring.append(name)
        if not failed_on_erroring:
            errors.append(f"every metric succeeds on the server answering errors (answers {answers['erroring']})")
        return errors
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    args = ap.parse_args()
    errors = run(args.bin_dir)
    for e in errors:
        print("ERROR", e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
