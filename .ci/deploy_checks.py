#!/usr/bin/env python3
"""Offline checks of the files in deploy/ (run by .ci/deploy-checks).

Each check prints what it looked at; any failure is listed at the end and
the exit status is 1. FIREBREAK_BIN, when set to a built firebreak, adds
the checks that run it (the image's command line, the configs as each
deployment lays them out, the metrics the dashboard names).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = os.environ.get("FIREBREAK_BIN") or None
if BIN:
    BIN = str(Path(BIN).resolve())

failures = []
counts = {"passed": 0, "skipped": 0}


def fail(check, msg):
    failures.append(f"{check}: {msg}")
    print(f"  FAIL {msg}")


def ok(msg):
    counts["passed"] += 1
    print(f"  ok   {msg}")


def skip(msg):
    counts["skipped"] += 1
    print(f"  skip {msg}")


def section(name):
    print(f"\n--- {name}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# The commands `firebreak --help` lists; from the binary when there is one.
def subcommands():
    if BIN:
        out = run([BIN, "--help"]).stdout
        names, inside = [], False
        for line in out.splitlines():
            if line.startswith("Commands:"):
                inside = True
                continue
            if inside:
                if not line.strip():
                    break
                m = re.match(r"^  (\S+)\s", line)
                if m:
                    names.append(m.group(1))
        names = [n for n in names if n != "help"]
        if names:
            return set(names)
    return {"demo", "rehearse", "run", "sim", "validate", "plan", "check", "timeline", "test", "init", "completions", "man"}


SUBCOMMANDS = subcommands()


# --- .dockerignore: Docker's rules (last matching pattern wins; a pattern
# matches a path or any directory above it; `**` spans directories).
def ignore_patterns(path):
    pats = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        line = os.path.normpath(line.lstrip("/"))
        pats.append((neg, pattern_regex(line)))
    return pats


def pattern_regex(p):
    out, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif p.startswith("**", i):
            out += ".*"
            i += 2
        elif p[i] == "*":
            out += "[^/]*"
            i += 1
        elif p[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(p[i])
            i += 1
    return re.compile("^" + out + "$")


def excluded(pats, rel):
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for neg, rx in pats:
        if any(rx.match(p) for p in prefixes):
            result = not neg
    return result


def containerfile_instructions(path):
    """(instruction, argument text, stage index) with continuations joined."""
    lines, buf = [], ""
    for raw in path.read_text().splitlines():
        s = raw.rstrip()
        if not buf and (not s.strip() or s.lstrip().startswith("#")):
            continue
        if buf and s.lstrip().startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append((buf + s).strip())
        buf = ""
    stage, out = -1, []
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((word, rest.strip(), stage))
    return out


def check_container():
    section("container image: deploy/Containerfile, .dockerignore, .containerignore")
    cf = DEPLOY / "Containerfile"
    name = "container"
    hadolint = shutil.which("hadolint")
    if hadolint:
        r = run([hadolint, "--no-color", str(cf)])
        if r.returncode == 0:
            ok("hadolint finds nothing")
        else:
            fail(name, "hadolint:\n" + r.stdout + r.stderr)
    else:
        fail(name, "hadolint is not installed (.ci/deploy-checks installs it)")

    di, ci = ROOT / ".dockerignore", ROOT / ".containerignore"
    if not di.is_file():
        fail(name, ".dockerignore is missing")
        return
    if not ci.exists() or ci.read_text() != di.read_text():
        fail(name, ".containerignore is missing or differs from .dockerignore")
    else:
        ok(".containerignore says what .dockerignore says")
    pats = ignore_patterns(di)
    for rel in ["target/release/firebreak", ".git/HEAD", "firebreak.db", "runbooks/x.db", "secrets/slack_bot"]:
        if excluded(pats, rel):
            ok(f"{rel} stays out of the build context")
        else:
            fail(name, f"{rel} would be sent to the builder")

    ins = containerfile_instructions(cf)
    final = max(s for _, _, s in ins)
    copies = []
    for word, rest, stage in ins:
        if word in ("COPY", "ADD"):
            args = rest.split()
            if any(a.startswith("--from") for a in args):
                continue
            args = [a for a in args if not a.startswith("--")]
            if args and args[0].startswith("["):
                args = json.loads(rest)
            copies.append((args[:-1], args[-1], stage))
    for sources, dest, stage in copies:
        for src in sources:
            p = ROOT / src
            if not p.exists():
                fail(name, f"COPY {src}: not in the repository")
                continue
            if src in (".", "./"):
                fail(name, "COPY . copies the whole context; name what the stage needs")
                continue
            if excluded(pats, src.rstrip("/")):
                fail(name, f"COPY {src}: .dockerignore leaves it out of the context")
                continue
            files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
            kept = [f for f in files if not excluded(pats, str(f.relative_to(ROOT)))]
            if not kept:
                fail(name, f"COPY {src}: every file under it is left out by .dockerignore")
            else:
                ok(f"COPY {src} → {dest} (stage {stage}): {len(kept)} file(s) in the context")

    # What the build embeds (include_str!/include_bytes!) must be in the
    # context and copied into the build stage.
    build_copied = [s.rstrip("/") for srcs, _, st in copies if st < final for s in srcs]
    for rs in (ROOT / "src").rglob("*.rs"):
        for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)', rs.read_text()):
            target = (rs.parent / m.group(1)).resolve()
            try:
                rel = str(target.relative_to(ROOT))
            except ValueError:
                fail(name, f"{rs.relative_to(ROOT)} embeds {m.group(1)}, outside the repository")
                continue
            if excluded(pats, rel) or not any(rel == c or rel.startswith(c + "/") for c in build_copied):
                fail(name, f"{rs.relative_to(ROOT)} embeds {rel}, which the build stage does not get")
    ok("every file src/ embeds reaches the build stage")

    # The dependency layer: the manifest and lock file alone before the
    # sources, and a build of the dependencies between them.
    order = [(w, r) for w, r, s in ins if s < final and w in ("COPY", "RUN")]
    first_src = next((i for i, (w, r) in enumerate(order) if w == "COPY" and r.split()[0] == "src"), None)
    manifest = next((i for i, (w, r) in enumerate(order) if w == "COPY" and "Cargo.toml" in r and "Cargo.lock" in r), None)
    dep_build = next((i for i, (w, r) in enumerate(order) if w == "RUN" and "cargo build" in r), None)
    if None in (first_src, manifest, dep_build) or not (manifest < dep_build < first_src):
        fail(name, "no dependency layer: COPY Cargo.toml Cargo.lock, RUN cargo build on stubs, then COPY src")
    else:
        ok("dependencies build in a layer of their own, before src/ is copied")
    benches = re.findall(r'^\[\[bench\]\]\s*\nname\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    stub = order[dep_build][1]
    if benches and "[[bench]]" not in stub:
        fail(name, f"Cargo.toml declares benches {benches} but the stub build makes none")

    # The entry point is the binary, the command is a firebreak command.
    entry = [json.loads(r) for w, r, s in ins if w == "ENTRYPOINT" and s == final]
    cmd = [json.loads(r) for w, r, s in ins if w == "CMD" and s == final]
    if len(entry) != 1 or len(cmd) != 1:
        fail(name, "the final stage needs one exec-form ENTRYPOINT and one CMD")
        return
    entry, cmd = entry[0], cmd[0]
    binary_dest = [d for w, r, s in ins if w == "COPY" and s == final and "--from" in r for d in [r.split()[-1]]]
    if entry[0] not in binary_dest:
        fail(name, f"ENTRYPOINT {entry[0]} is not the binary the final stage copies ({binary_dest})")
    elif cmd[0] not in SUBCOMMANDS:
        fail(name, f"CMD starts with {cmd[0]!r}, not a firebreak command ({sorted(SUBCOMMANDS)})")
    else:
        ok(f"ENTRYPOINT {entry} + CMD {cmd}: arguments after the image name are a firebreak command line")

    # Every documented `podman run` / `docker run` gives the image a
    # firebreak command (or nothing), never `firebreak ...` again.
    tag = re.search(r"build .*-t (\S+)", cf.read_text())
    image = tag.group(1) if tag else "firebreak"
    takes_value = {"-p", "--publish", "-v", "--volume", "-e", "--env", "--env-file", "--name", "--mount",
                   "-w", "--workdir", "-u", "--user", "--network", "--entrypoint", "--secret"}
    docs = [cf, DEPLOY / "README.md", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    seen = 0
    for doc in docs:
        if not doc.exists():
            continue
        text = re.sub(r"\\\n\s*#?\s*", " ", doc.read_text())
        for m in re.finditer(r"(?:podman|docker) run ([^\n`]*)", text):
            toks = m.group(1).split()
            i, img = 0, None
            while i < len(toks):
                t = toks[i]
                if t.startswith("-"):
                    i += 2 if (t in takes_value and "=" not in t) else 1
                    continue
                if t in ("...", "…"):
                    i += 1
                    continue
                img = i
                break
            if img is None or toks[img].split(":")[0] not in (image, f"localhost/{image}"):
                continue
            seen += 1
            rest = toks[img + 1:]
            if rest and rest[0] not in SUBCOMMANDS and not rest[0].startswith("-") and rest[0] not in ("...", "…"):
                fail(name, f"{doc.relative_to(ROOT)}: `{m.group(0).strip()}` passes {rest[0]!r}, not a firebreak command")
    ok(f"{seen} documented `run` line(s) give the image a firebreak command")

    if not BIN:
        skip("running the image's command line: FIREBREAK_BIN is not set")
        return
    # The image's /etc/firebreak, as the final stage's COPYs lay it out.
    with tempfile.TemporaryDirectory() as tmp:
        for sources, dest, stage in copies:
            if stage != final or not dest.startswith("/etc/firebreak"):
                continue
            for src in sources:
                target = Path(tmp) / dest.lstrip("/")
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, target)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / src, target)

        def inside(argv):
            return [a.replace("/etc/firebreak", f"{tmp}/etc/firebreak") for a in argv]

        argv = [BIN] + entry[1:] + inside(["validate", "--offline", "--config", "/etc/firebreak/firebreak.yaml"])
        r = run(argv)
        if r.returncode == 0:
            ok("the image's `validate --offline --config /etc/firebreak/firebreak.yaml` passes: " + r.stdout.strip())
        else:
            fail(name, f"{argv}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        argv = [BIN] + entry[1:] + inside(cmd) + ["--help"]
        r = run(argv)
        if r.returncode == 0:
            ok("the image's default command line parses (ENTRYPOINT + CMD + --help)")
        else:
            fail(name, f"{argv}: exit {r.returncode}\n{r.stderr}")


def check_systemd():
    section("systemd: deploy/firebreak.service")
    name = "systemd"
    unit = DEPLOY / "firebreak.service"
    text = unit.read_text()
    sa = shutil.which("systemd-analyze")
    exec_start = re.search(r"^ExecStart=[-@:+!]*(\S+)", text, re.M)
    if not sa:
        fail(name, "systemd-analyze is not installed")
    elif not exec_start:
        fail(name, "no ExecStart=")
    else:
        # verify wants every Exec*= binary to exist and be executable, and
        # the units it orders against; a private root gives it the system's
        # units, the commands the unit runs, and a stand-in firebreak.
        with tempfile.TemporaryDirectory() as root:
            r = Path(root)
            (r / "usr/lib/systemd").mkdir(parents=True)
            shutil.copytree("/usr/lib/systemd/system", r / "usr/lib/systemd/system", symlinks=True)
            (r / "usr/bin").mkdir(parents=True, exist_ok=True)
            (r / "bin").symlink_to("usr/bin")
            (r / "lib").symlink_to("usr/lib")
            (r / "sbin").symlink_to("usr/sbin")
            (r / "usr/sbin").mkdir(parents=True, exist_ok=True)
            for m in re.finditer(r"^Exec\w+=[-@:+!]*(\S+)", text, re.M):
                path = Path(m.group(1))
                dest = r / str(path).lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if path == Path(exec_start.group(1)):
                    dest.write_text("#!/bin/sh\nexit 0\n")
                    dest.chmod(0o755)
                elif not dest.exists():
                    real = shutil.which(path.name) or str(path)
                    if Path(real).exists():
                        shutil.copy(real, dest)
                    else:
                        fail(name, f"{path} is not on this machine either")
            units = r / "etc/systemd/system"
            units.mkdir(parents=True)
            shutil.copy(unit, units / unit.name)
            res = run([sa, "verify", f"--root={root}", "--man=no", "--generators=no", unit.name])
            said = (res.stdout + res.stderr).strip()
            if res.returncode != 0 or said:
                fail(name, f"systemd-analyze verify (exit {res.returncode}):\n{said}")
            else:
                ok("systemd-analyze verify says nothing")
    loads = re.findall(r"^LoadCredential=([^:\s]+):(\S+)", text, re.M)
    sets = set(re.findall(r"^SetCredential=([^:\s]+):", text, re.M))
    for cid, path in loads:
        if cid not in sets:
            fail(name, f"LoadCredential={cid} has no SetCredential={cid}: default, so the unit fails to start without {path}")
        if not path.startswith("/etc/firebreak/secrets/"):
            fail(name, f"LoadCredential={cid} reads {path}, not /etc/firebreak/secrets/ where the install steps put secrets")
    if "install -d -m 0700 /etc/firebreak/secrets" not in text:
        fail(name, "the install steps do not create /etc/firebreak/secrets")
    cfg = yaml.safe_load((DEPLOY / "firebreak.yaml").read_text())
    ids = {c for c, _ in loads}
    for sname, src in (cfg.get("secrets") or {}).items():
        f = src.get("file", "") if isinstance(src, dict) else ""
        m = re.match(r"^/run/credentials/firebreak\.service/(.+)$", f)
        if m and m.group(1) not in ids:
            fail(name, f"deploy/firebreak.yaml reads credential {m.group(1)} (secret {sname}); the unit does not load it")
    ok(f"{len(loads)} credential(s), each with a default, covering every one deploy/firebreak.yaml reads")


# --- Kubernetes ------------------------------------------------------------
def load_docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render_kustomization(kdir):
    """The subset of kustomize that deploy/kubernetes uses: resources,
    namespace, labels (metadata only), configMapGenerator (files) and
    images. Generated ConfigMaps keep their plain names here."""
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "images"}
    extra = set(k) - known
    if extra:
        raise ValueError(f"kustomization.yaml uses {sorted(extra)}, which this check does not render")
    objs = []
    for res in k.get("resources", []):
        objs += load_docs(kdir / res)
    generated = {}
    for g in k.get("configMapGenerator", []):
        data = {}
        for f in g.get("files", []):
            key, _, path = f.rpartition("=")
            p = (kdir / (path or f)).resolve()
            data[key or p.name] = p.read_text()
        generated[g["name"]] = (data, g)
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g["name"]}, "data": data})
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for o in objs:
        md = o.setdefault("metadata", {})
        if k.get("namespace") and o["kind"] not in cluster_scoped:
            md["namespace"] = k["namespace"]
        for lab in k.get("labels", []):
            md.setdefault("labels", {}).update(lab.get("pairs", {}))
        for img in k.get("images", []):
            for c in (o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])):
                if c.get("image", "").split(":")[0] == img["name"]:
                    c["image"] = f'{img.get("newName", img["name"])}:{img.get("newTag", "latest")}'
    return k, objs, generated


def unknown_fields(model, data, path="spec"):
    """Keys of `data` that the pydantic model (generated from the CRD's
    schema) has no field for: the CRD's schema allows unknown fields to be
    pruned, and a misspelt field would silently do nothing."""
    from pydantic import BaseModel

    found = []
    if not isinstance(data, dict):
        return found
    by_alias = {}
    for fname, f in model.model_fields.items():
        by_alias[f.alias or fname] = f.annotation
    for key, value in data.items():
        if key not in by_alias:
            found.append(f"{path}.{key}")
            continue
        for t in flatten(by_alias[key]):
            if isinstance(t, type) and issubclass(t, BaseModel):
                if isinstance(value, dict):
                    found += unknown_fields(t, value, f"{path}.{key}")
                elif isinstance(value, list):
                    for i, v in enumerate(value):
                        found += unknown_fields(t, v, f"{path}.{key}[{i}]")
    return found


def flatten(t):
    import typing

    args = typing.get_args(t)
    if not args:
        return [t]
    out = []
    for a in args:
        out += flatten(a)
    return out


def check_kubernetes():
    section("Kubernetes: deploy/kubernetes/")
    name = "kubernetes"
    kdir = DEPLOY / "kubernetes"
    try:
        k, objs, generated = render_kustomization(kdir)
    except Exception as e:
        fail(name, f"kustomization.yaml: {e}")
        return
    ok(f"kustomization.yaml renders {len(objs)} object(s): " + ", ".join(f'{o["kind"]}/{o["metadata"]["name"]}' for o in objs))
    secret_tpl = load_docs(kdir / "secret.example.yaml")
    if "secret.example.yaml" in k.get("resources", []):
        fail(name, "secret.example.yaml is applied by the kustomization: an apply would blank real secrets")

    try:
        import kubernetes_validate
    except ImportError:
        fail(name, "kubernetes-validate is not installed (.ci/deploy-checks installs it)")
        return
    version = "1.30.0"
    for o in objs + secret_tpl:
        kn = f'{o["kind"]}/{o["metadata"]["name"]}'
        if o["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        try:
            kubernetes_validate.validate(o, version, strict=True)
            ok(f"{kn}: valid against Kubernetes {version}'s schema, unknown fields refused")
        except kubernetes_validate.ValidationError as e:
            fail(name, f"{kn}: {'.'.join(str(p) for p in e.path)}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            fail(name, f"{kn}: no schema for {o['apiVersion']} {o['kind']}")

    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    try:
        from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
    except ImportError:
        ServiceMonitor = None
        fail(name, "cloudcoil-models-prometheus-operator is not installed (.ci/deploy-checks installs it)")
    for m in monitors:
        kn = f'ServiceMonitor/{m["metadata"]["name"]}'
        if m["apiVersion"] != "monitoring.coreos.com/v1":
            fail(name, f"{kn}: apiVersion {m['apiVersion']}")
        if ServiceMonitor is None:
            continue
        try:
            sm = ServiceMonitor.model_validate(m)
            extra = unknown_fields(type(sm.spec), m.get("spec", {}))
            if extra:
                fail(name, f"{kn}: fields the CRD does not have: {extra}")
            else:
                ok(f"{kn}: valid against the prometheus-operator CRD's model, no unknown fields")
        except Exception as e:
            fail(name, f"{kn}: {e}")

    # The pieces must fit each other.
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    sts = (by_kind.get("StatefulSet") or by_kind.get("Deployment") or [None])[0]
    if not sts:
        fail(name, "no StatefulSet or Deployment")
        return
    pod = sts["spec"]["template"]["spec"]
    pod_labels = sts["spec"]["template"]["metadata"].get("labels", {})
    c = pod["containers"][0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}

    args = c.get("args", [])
    if not args or args[0] not in SUBCOMMANDS:
        fail(name, f"container args {args} do not start with a firebreak command (the image's entry point is firebreak)")
    cfg_path = args[args.index("--config") + 1] if "--config" in args else None
    cfg_mount = next((m for m in c.get("volumeMounts", []) if cfg_path and cfg_path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if not cfg_mount:
        fail(name, f"--config {cfg_path} is not under a mounted volume")
        return
    cfg_vol = volumes[cfg_mount["name"]]
    cfg_cm = cfg_vol.get("configMap", {}).get("name")
    cfg_key = cfg_path[len(cfg_mount["mountPath"].rstrip("/")) + 1:]
    if cfg_cm not in generated or cfg_key not in generated[cfg_cm][0]:
        fail(name, f"--config {cfg_path}: ConfigMap {cfg_cm} has no key {cfg_key}")
        return
    config = yaml.safe_load(generated[cfg_cm][0][cfg_key])
    ok(f"--config {cfg_path} is key {cfg_key} of ConfigMap {cfg_cm}")

    for vname, v in volumes.items():
        if "configMap" in v and v["configMap"]["name"] not in generated:
            fail(name, f"volume {vname}: ConfigMap {v['configMap']['name']} is not generated")
        if vname not in mounts and vname not in [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]:
            fail(name, f"volume {vname} is mounted nowhere")
    # Rules and runbooks: the config names each file of the ConfigMap.
    cfg_dir = Path(cfg_path).parent
    named = []
    for section_name in ("rules", "runbooks"):
        for p in (config.get(section_name) or {}).get("paths", []):
            named.append(os.path.normpath(str(cfg_dir / p)))
    in_volumes = []
    for vname, v in volumes.items():
        if "configMap" in v and vname != cfg_mount["name"] and vname in mounts:
            for key in generated[v["configMap"]["name"]][0]:
                in_volumes.append(os.path.normpath(f'{mounts[vname]["mountPath"]}/{key}'))
    if sorted(named) != sorted(in_volumes):
        fail(name, f"the config's rules and runbooks paths {sorted(named)} differ from the files the ConfigMaps put there {sorted(in_volumes)}")
    else:
        ok(f"the config names exactly the {len(named)} rule and runbook files the ConfigMaps hold")
    shipped = sorted(str(p.relative_to(ROOT)) for p in list((ROOT / "alerts").glob("*.rules.yml")) + list((ROOT / "runbooks").glob("*.yaml")))
    generated_from = set()
    for g in k.get("configMapGenerator", []):
        for f in g.get("files", []):
            generated_from.add(str((kdir / f.rpartition("=")[2]).resolve().relative_to(ROOT)))
    missing = [s for s in shipped if s not in generated_from]
    if missing:
        fail(name, f"shipped rules or runbooks not in the ConfigMaps: {missing}")
    else:
        ok("every shipped rule file and runbook is in the ConfigMaps")

    # Secrets: the config's files under the Secret's mount, each a key of
    # the template.
    secret_vol = next((v for v in volumes.values() if "secret" in v), None)
    if secret_vol:
        sname = secret_vol["secret"]["secretName"]
        smount = mounts[[n for n, v in volumes.items() if v is secret_vol][0]]["mountPath"].rstrip("/")
        tpl = next((s for s in secret_tpl if s["metadata"]["name"] == sname), None)
        if not tpl:
            fail(name, f"secret.example.yaml has no Secret {sname}")
        else:
            keys = set((tpl.get("stringData") or {}) | (tpl.get("data") or {}))
            for n, src in (config.get("secrets") or {}).items():
                f = src.get("file", "")
                if not f.startswith(smount + "/") or f[len(smount) + 1:] not in keys:
                    fail(name, f"secret {n} reads {f}, not a key of Secret {sname} at {smount}")
            if any(v for v in (tpl.get("stringData") or {}).values()):
                fail(name, "secret.example.yaml holds values; it is a template with blanks")
            ok(f"every secret the config reads is a key of the Secret {sname} template, left blank")

    # Ports, probes, Services, the ServiceMonitor.
    listen = str((config.get("server") or {}).get("listen", ""))
    if not listen.endswith(f':{ports.get("http")}'):
        fail(name, f"server.listen {listen} is not the container's http port {ports.get('http')}")
    probes = {p: (c.get(p) or {}).get("httpGet", {}) for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    if probes["livenessProbe"].get("path") != "/-/healthy":
        fail(name, "the liveness probe is not GET /-/healthy")
    if probes["readinessProbe"].get("path") != "/-/ready":
        fail(name, "the readiness probe is not GET /-/ready")
    for p, g in probes.items():
        if g and g.get("port") not in ports and g.get("port") not in ports.values():
            fail(name, f"{p} port {g.get('port')} is not a container port")
    ok("server.listen, container port and probes agree (/-/healthy live, /-/ready ready)")
    services = by_kind.get("Service", [])
    for s in services:
        sel = s["spec"].get("selector", {})
        if not sel or any(pod_labels.get(kk) != vv for kk, vv in sel.items()):
            fail(name, f"Service/{s['metadata']['name']} selects {sel}, not the pods ({pod_labels})")
        for p in s["spec"]["ports"]:
            if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
                fail(name, f"Service/{s['metadata']['name']} targets port {p.get('targetPort')}, not a container port")
        if not s["spec"].get("publishNotReadyAddresses"):
            fail(name, f"Service/{s['metadata']['name']} drops a blind (not ready) bot from its endpoints: it would go deaf too")
    for m in monitors:
        sel = m["spec"]["selector"].get("matchLabels", {})
        picked = [s for s in services if all(s["metadata"].get("labels", {}).get(kk) == vv for kk, vv in sel.items())]
        if len(picked) != 1:
            fail(name, f"ServiceMonitor selects {len(picked)} Services; exactly one, or the bot is scraped twice")
            continue
        names = {p.get("name") for p in picked[0]["spec"]["ports"]}
        for e in m["spec"]["endpoints"]:
            if e.get("port") not in names or e.get("path", "/metrics") != "/metrics":
                fail(name, f"ServiceMonitor endpoint {e} is not the Service's port's /metrics")
        if picked[0]["metadata"]["name"] != "firebreak" and not m["spec"].get("jobLabel"):
            fail(name, "the scrape job would not be `firebreak`, which the alerts and dashboard expect")
        ok(f"ServiceMonitor scrapes Service/{picked[0]['metadata']['name']} port http /metrics, job firebreak")

    # Pod hardening, resources, one writer on SQLite.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    wants = [
        (psc.get("runAsNonRoot") is True, "runAsNonRoot"),
        (csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem"),
        (csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false"),
        ("ALL" in (csc.get("capabilities") or {}).get("drop", []), "capabilities drop ALL"),
        ((psc.get("seccompProfile") or csc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault"),
        (bool(c.get("resources", {}).get("requests")) and bool(c.get("resources", {}).get("limits", {}).get("memory")), "resource requests and a memory limit"),
    ]
    for good, what in wants:
        if not good:
            fail(name, f"the pod lacks {what}")
    ok("non-root, read-only root, no privilege escalation, no capabilities, seccomp, resources")
    store = str((config.get("store") or {}).get("url", ""))
    if store.startswith("sqlite") and sts["spec"].get("replicas", 1) != 1:
        fail(name, "a SQLite store with more than one replica")
    if store.startswith("sqlite") and sts["kind"] != "StatefulSet":
        fail(name, "a SQLite store needs a StatefulSet: a Deployment's rolling update runs two writers")
    db = store.split("://", 1)[-1]
    if store.startswith("sqlite") and not any(db.startswith(m["mountPath"].rstrip("/") + "/") for m in c["volumeMounts"] if m["name"] not in [cfg_mount["name"]] and not m.get("readOnly")):
        fail(name, f"the SQLite file {db} is not on a writable volume")
    ok(f"store {store}: one replica, on the StatefulSet's volume")

    if not BIN:
        skip("validating the config as mounted: FIREBREAK_BIN is not set")
    else:
        # Lay the ConfigMaps out as the kubelet does: the files are
        # symlinks into `..data`, itself a link to a timestamped directory.
        with tempfile.TemporaryDirectory() as tmp:
            for vname, v in volumes.items():
                if "configMap" not in v or vname not in mounts:
                    continue
                d = Path(tmp) / mounts[vname]["mountPath"].lstrip("/")
                stamp = d / "..2026_01_01_00_00_00.000000001"
                stamp.mkdir(parents=True)
                (d / "..data").symlink_to(stamp.name)
                for key, body in generated[v["configMap"]["name"]][0].items():
                    (stamp / key).write_text(body)
                    (d / key).symlink_to(f"..data/{key}")
            r = run([BIN, "validate", "--offline", "--config", str(Path(tmp) / cfg_path.lstrip("/"))])
            if r.returncode == 0:
                ok("firebreak validate --offline passes on the config as the volumes lay it out: " + r.stdout.strip())
            else:
                fail(name, f"firebreak validate on the mounted layout: exit {r.returncode}\n{r.stdout}{r.stderr}")

    kubectl = shutil.which("kubectl")
    if kubectl:
        r = run([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(kdir)], timeout=120)
        if r.returncode != 0:
            fail(name, f"kubectl kustomize: {r.stderr.strip()}")
        else:
            rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
            bad = 0
            for o in rendered:
                if o["apiVersion"].startswith("monitoring.coreos.com/"):
                    continue
                try:
                    kubernetes_validate.validate(o, version, strict=True)
                except Exception as e:
                    bad += 1
                    fail(name, f"kubectl kustomize output, {o['kind']}/{o['metadata']['name']}: {e}")
            if not bad:
                ok(f"kubectl kustomize renders {len(rendered)} object(s), all valid")
    else:
        skip("kubectl kustomize: kubectl is not installed (the render above is this check's own)")


# --- Slack -------------------------------------------------------------------
def check_slack():
    section("Slack app manifests")
    name = "slack"
    http = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
    sock = yaml.safe_load((DEPLOY / "slack-app-manifest.socket-mode.yaml").read_text())
    routes = (ROOT / "src/inbound/slack.rs").read_text()
    for label, m in (("HTTP", http), ("Socket Mode", sock)):
        try:
            scopes = m["oauth_config"]["scopes"]["bot"]
            events = m["settings"]["event_subscriptions"]["bot_events"]
            inter = m["settings"]["interactivity"]
            cmds = m["features"]["slash_commands"]
            socket_mode = m["settings"]["socket_mode_enabled"]
            m["display_information"]["name"]
        except (KeyError, TypeError) as e:
            fail(name, f"{label}: missing {e}")
            continue
        if len(set(scopes)) != len(scopes):
            fail(name, f"{label}: a scope listed twice")
        if not inter.get("is_enabled"):
            fail(name, f"{label}: interactivity is off; the cards' buttons would do nothing")
        if [c["command"] for c in cmds] != ["/firebreak"]:
            fail(name, f"{label}: slash commands {[c['command'] for c in cmds]}")
        if label == "HTTP":
            urls = {
                "/slack/events": m["settings"]["event_subscriptions"].get("request_url"),
                "/slack/interactions": inter.get("request_url"),
                "/slack/commands": cmds[0].get("url"),
            }
            hosts = set()
            for route, url in urls.items():
                if not url or not url.startswith("https://") or not url.endswith(route):
                    fail(name, f"HTTP: the request URL for {route} is {url}")
                else:
                    hosts.add(url[len("https://"):-len(route)])
                if f'.route("{route}"' not in routes:
                    fail(name, f"the bot serves no {route}")
            if len(hosts) != 1:
                fail(name, f"HTTP: request URLs on several hosts {hosts}")
            if socket_mode is not False:
                fail(name, "HTTP: socket_mode_enabled is not false")
        else:
            if socket_mode is not True:
                fail(name, "Socket Mode: socket_mode_enabled is not true")
            if "request_url" in json.dumps(m) or any("url" in c for c in cmds):
                fail(name, "Socket Mode: request URLs in a Socket Mode manifest")
        ok(f"{label}: {len(scopes)} bot scopes, events {events}, /firebreak, interactivity on, socket mode {socket_mode}")
    if sorted(http["oauth_config"]["scopes"]["bot"]) != sorted(sock["oauth_config"]["scopes"]["bot"]) or \
            http["settings"]["event_subscriptions"]["bot_events"] != sock["settings"]["event_subscriptions"]["bot_events"]:
        fail(name, "the two manifests ask for different scopes or events")
    # Every Web API method the code calls is in the manifest's table.
    table = (DEPLOY / "slack-app-manifest.yaml").read_text()
    methods = set()
    for rs in (ROOT / "src").rglob("*.rs"):
        methods |= set(re.findall(r'"((?:chat|files|users|usergroups|conversations|apps|auth|reactions|pins|views|team|bots|dnd|emoji|reminders|search|stars|bookmarks)\.[a-zA-Z]+(?:\.[a-zA-Z]+)?)"', rs.read_text()))
    methods = {mm for mm in methods if not mm.startswith("chat.slack")}
    missing = sorted(mm for mm in methods if f"#   {mm}" not in table and f", {mm}" not in table)
    if missing:
        fail(name, f"Web API methods the code calls that the manifest's scope table does not list: {missing}")
    else:
        ok(f"the scope table lists all {len(methods)} Web API methods src/ calls: {', '.join(sorted(methods))}")


# --- Grafana dashboard ---------------------------------------------------------
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def exported_metrics():
    """`# TYPE` lines of a real firebreak's /metrics: a bare config (a
    store and a server), started and stopped here."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        (Path(tmp) / "firebreak.yaml").write_text(f"store:\n  url: sqlite://fb.db\nserver:\n  listen: 127.0.0.1:{port}\n")
        proc = subprocess.Popen([BIN, "run", "--config", "firebreak.yaml"], cwd=tmp,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise RuntimeError("firebreak did not serve /metrics: " + (proc.stderr.read().decode() if proc.poll() is not None else "timeout"))
                    time.sleep(0.2)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    types = {}
    for line in body.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
    return types


def check_dashboard():
    section("Grafana dashboard: deploy/monitoring/firebreak-dashboard.json")
    name = "dashboard"
    path = DEPLOY / "monitoring/firebreak-dashboard.json"
    try:
        dash = json.loads(path.read_text())
    except Exception as e:
        fail(name, f"not JSON: {e}")
        return
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(name, "no datasource template variable of type prometheus")
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', path.read_text()))
    stray = uids - {"${datasource}", "-- Grafana --", dash.get("uid")}
    if stray:
        fail(name, f"hard-coded datasource uids: {stray}")
    panels = dash.get("panels", [])
    ids, cells, exprs = set(), {}, []
    for p in panels:
        if p.get("id") in ids:
            fail(name, f"panel id {p.get('id')} used twice")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for yy in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, yy) in cells:
                    fail(name, f"panel {p.get('title')!r} overlaps {cells[(x, yy)]!r}")
                    break
                cells[(x, yy)] = p.get("title")
        if g.get("x", 0) + g.get("w", 0) > 24:
            fail(name, f"panel {p.get('title')!r} is wider than the grid")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(name, f"panel {p.get('title')!r} does not use the datasource variable")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                fail(name, f"panel {p.get('title')!r} query {t.get('refId')} does not use the datasource variable")
            exprs.append((p.get("title"), t["expr"]))
    ok(f"{len(panels)} panels, {len(exprs)} queries, every one on the datasource variable; no overlaps")
    # Each query parses as PromQL: promtool checks them as recording rules,
    # with Grafana's variables filled in.
    fill = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$job": "firebreak", "$instance": ".*"}
    rules = []
    for i, (title, e) in enumerate(exprs):
        for k_, v in fill.items():
            e = e.replace(k_, v)
        if "$" in e:
            fail(name, f"{title!r}: a variable this check does not know in {e}")
        rules.append({"record": f"dashboard:query_{i}", "expr": e})
    promtool = shutil.which("promtool")
    if not promtool:
        fail(name, "promtool is not installed")
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            r = run([promtool, "check", "rules", f.name])
            if r.returncode != 0:
                fail(name, "promtool check rules on the queries:\n" + r.stdout + r.stderr)
            else:
                ok(f"promtool parses all {len(rules)} queries")
    text = path.read_text()
    named = sorted(set(re.findall(r"firebreak_[a-zA-Z0-9_]+", text)))
    if not BIN:
        skip("checking metric names against a running firebreak: FIREBREAK_BIN is not set")
        return
    try:
        types = exported_metrics()
    except Exception as e:
        fail(name, str(e))
        return
    unknown = []
    for m in named:
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        if m in types or (base != m and types.get(base) == "histogram"):
            continue
        unknown.append(m)
    if unknown:
        fail(name, f"metrics the dashboard names that firebreak does not export: {unknown}")
    else:
        ok(f"all {len(named)} firebreak metric names it uses are exported by firebreak")


def main():
    only = sys.argv[1:]
    checks = {"container": check_container, "systemd": check_systemd, "kubernetes": check_kubernetes,
              "slack": check_slack, "dashboard": check_dashboard}
    for n, f in checks.items():
        if not only or n in only:
            try:
                f()
            except Exception as e:
                fail(n, f"the check itself failed: {type(e).__name__}: {e}")
    print()
    for f in failures:
        print(f"  - {f}")
    # The plain closing line CI reads for a count.
    print(f"deploy-checks: {counts['passed']} passed, {len(failures)} failed, {counts['skipped']} skipped")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
