"""Checks everything in deploy/ with the tools that judge it for real.

1. `kubectl kustomize` renders every overlay of deploy/k8s.
2. Every rendered Kubernetes object validates, strictly (unknown fields
   are errors), against the Kubernetes schemas (`kubernetes-validate`).
3. Every Argo CD and Argo Rollouts object (from the overlays and
   deploy/argocd) validates against its CRD schema (argo.mjs, on the
   `@kubernetes-models` packages), unknown fields included (their
   TypeScript types, checked by the TypeScript compiler).
4. Every flag a manifest passes to one of our binaries is in that binary's
   `--help`.
5. The canary analysis runs for real (analysis.py): every AnalysisTemplate
   query on a real Prometheus scraping a healthy and an erroring app server.

`--self-test` plants one mistake of each kind in a copy of a rendered
overlay and fails unless each check catches its own, naming where.

Usage: check.py --bin-dir target/debug/examples [--self-test]
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

import analysis

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
KUBERNETES_VERSION = "1.32.0"
OUR_IMAGE = "ghcr.io/orchestrator/orchestrator"


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", overlay], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"kubectl kustomize {overlay} failed:\n{out.stderr}")
    return out.stdout


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def validate_kubernetes(docs, where):
    """Strict schema validation of the non-Argo objects; a list of errors."""
    errors = []
    for d in docs:
        if str(d.get("apiVersion", "")).startswith("argoproj.io/"):
            continue
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            errors.append(f"{where}: {name}: at {path or '(top)'}: {e.message}")
        except Exception as e:  # noqa: BLE001 - an unknown kind is an error too
            errors.append(f"{where}: {name}: {e}")
    return errors


def validate_argo(files):
    out = subprocess.run(["node", os.path.join(HERE, "argo.mjs"), *files], capture_output=True, text=True, cwd=HERE)
    return [line for line in out.stdout.splitlines() if line.startswith("INVALID")] + (
        [out.stderr.strip()] if out.returncode not in (0, 1) else []
    )


def flags_of_help(bin_dir, binary, cache={}):  # noqa: B006 - a deliberate memo
    if binary not in cache:
        exe = os.path.join(bin_dir, binary)
        out = subprocess.run([exe, "--help"], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{exe} --help failed: {out.stderr}")
        cache[binary] = set(re.findall(r"--[a-z0-9][a-z0-9-]*", out.stdout))
    return cache[binary]


def check_flags(docs, bin_dir, where):
    errors = []
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if not str(c.get("image", "")).startswith(OUR_IMAGE):
                continue
            binary = (c.get("command") or [None])[0]
            if binary is None:
                errors.append(f"{where}: {d['kind']}/{d['metadata']['name']}: container {c['name']} names no binary")
                continue
            known = flags_of_help(bin_dir, binary)
            for arg in c.get("args", []):
                flag = arg.split("=", 1)[0]
                if flag.startswith("--") and flag not in known:
                    errors.append(f"{where}: {d['kind']}/{d['metadata']['name']}: {binary} has no {flag}")
    return errors


def check_all(bin_dir):
    errors = []
    argo_files = sorted(glob.glob(os.path.join(DEPLOY, "argocd", "**", "*.yaml"), recursive=True))
    with tempfile.TemporaryDirectory() as tmp:
        for overlay in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "overlays", "*"))):
            env = os.path.basename(overlay)
            text = render(overlay)
            docs = docs_of(text)
            print(f"{env}: {len(docs)} objects rendered")
            errors += validate_kubernetes(docs, env)
            errors += check_flags(docs, bin_dir, env)
            rendered = os.path.join(tmp, f"{env}.yaml")
            with open(rendered, "w") as f:
                f.write(text)
            argo_files.append(rendered)
        errors += validate_argo(argo_files)
    return errors


def self_test(bin_dir):
    """Each check must catch a mistake planted for it, and say where."""
    text = render(os.path.join(DEPLOY, "k8s", "overlays", "prod"))
    plants = [
        ("an unknown field in a StatefulSet", "  podManagementPolicy: Parallel\n", "  podManagementPolicy: Parallel\n  replicaz: 3\n", "replicaz"),
        ("a wrong type in a Rollout step", "setWeight: 50", "setWeight: fifty", "setWeight"),
        ("a misspelt field in an AnalysisTemplate", "successCondition:", "successConditon:", "metrics/0/successConditon"),
        ("a flag the binary does not have", "--agent-reregister-timeout=", "--agent-reregister-timout=", "--agent-reregister-timout"),
    ]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, good, bad, named in plants:
            assert good in text, f"the plant for {what} finds nothing to change"
            planted = text.replace(good, bad, 1)
            docs = docs_of(planted)
            path = os.path.join(tmp, "planted.yaml")
            with open(path, "w") as f:
                f.write(planted)
            found = validate_kubernetes(docs, "planted") + check_flags(docs, bin_dir, "planted") + validate_argo([path])
            if not any(named in e for e in found):
                failures.append(f"{what} was not caught (found: {found})")
            else:
                print(f"self-test: {what} caught: {[e for e in found if named in e][0]}")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    errors = check_all(args.bin_dir)
    errors += analysis.run(args.bin_dir)
    if args.self_test:
        errors += self_test(args.bin_dir)
    for e in errors:
        print("ERROR", e)
    print("deploy/ checked:", "FAILED" if errors else "ok")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
