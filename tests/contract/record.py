#!/usr/bin/env python3
"""Records the reference product's answers to probes.json as shapes (reference.json).

Run it when the reference product changes; CI needs no Python, because
tests/it/contract.rs compares Kura's answers against the checked-in reference.json.

    python3 -m venv /tmp/dango && /tmp/dango/bin/pip install getdango==1.0.13
    /tmp/dango/bin/python tests/contract/record.py            # rewrites reference.json

What it does: `dango init --skip-wizard` in a temporary folder, a `local_files` source
`sales` with the same generated CSV as the Kura test (contract::sales_csv), the schedule
`nightly_sales` with one generic webhook (a local receiver), `dango sync`, `dango web`;
then the callers of probes.json are signed in and every probe is made in order. Only
shapes are recorded (key paths and JSON types, no values), with the status. Metabase and
Docker are not used; the dbt profile's extension downloads are removed (no network).
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery staple 9"
USERS = {
    "editor": ("editor@example.com", "editor"),
    "viewer": ("viewer@example.com", "viewer"),
    "changer": ("changer@example.com", "viewer"),
    "twofa": ("twofa@example.com", "viewer"),
}


def sales_csv(rows=200):
    """The same file tests/it/contract.rs writes: id, region, amount, sold_at."""
    regions = ["north", "south", "east", "west"]
    lines = ["id,region,amount,sold_at"]
    for i in range(1, rows + 1):
        lines.append(
            f"{i},{regions[i % 4]},{(i * 37) % 1000}.{i % 100:02d},2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        )
    return "\n".join(lines) + "\n"


EXTRA_CSV = "id,region,amount,sold_at\n9001,north,1.50,2024-06-01\n"


def shape(value, path="$", out=None):
    """Flattens a JSON value to {path: type}; array items merge under `path[]`."""
    if out is None:
        out = {}
    if isinstance(value, dict):
        out[path] = "object"
        for k, v in value.items():
            shape(v, f"{path}.{k}", out)
    elif isinstance(value, list):
        out[path] = "array"
        for item in value:
            item_shape = shape(item, f"{path}[]", {})
            for k, t in item_shape.items():
                if out.get(k, "null") == "null":
                    out[k] = t
    elif isinstance(value, bool):
        out[path] = "boolean"
    elif isinstance(value, (int, float)):
        out[path] = "number"
    elif isinstance(value, str):
        out[path] = "string"
    else:
        out[path] = "null"
    return out


def totp(secret, step_offset=0):
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int(time.time()) // 30 + step_offset
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    o = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[o : o + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def run(cmd, cwd, env):
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


class Caller:
    def __init__(self, base, bearer=None):
        self.base = base
        self.http = requests.Session()
        if bearer:
            self.http.headers["Authorization"] = f"Bearer {bearer}"
        # What the reference's own pages send on every write.
        self.http.headers["X-Requested-With"] = "XMLHttpRequest"

    def call(self, method, path, body=None, files=None):
        return self.http.request(method, self.base + path, json=body, files=files, timeout=60)

    def login(self, email, password):
        r = self.call("POST", "/api/auth/login", {"email": email, "password": password})
        r.raise_for_status()
        return r.json()


def dango_bin():
    return str(Path(sys.executable).parent / "dango")


def setup(root, port, hook_url):
    env = dict(os.environ, DANGO_ADMIN_EMAIL="admin@localhost", NO_COLOR="1", TERM="dumb")
    out = run([dango_bin(), "init", "proj", "--skip-wizard"], root, env)
    admin_password = re.search(r"Password:\s+(\S+)", out).group(1)
    proj = root / "proj"
    src = proj / "data" / "uploads" / "sales"
    src.mkdir(parents=True, exist_ok=True)
    (src / "sales.csv").write_text(sales_csv())
    (proj / ".dango" / "sources.yml").write_text(
        "version: '1.0'\nsources:\n- name: sales\n  type: local_files\n  enabled: true\n"
        "  local_files:\n    directory: data/uploads/sales\n    file_pattern: '*.csv'\n"
    )
    (proj / ".dango" / "schedules.yml").write_text(
        "schedules:\n- name: nightly_sales\n  cron: 0 2 * * *\n  sources: [sales]\n"
        f"notifications:\n  webhooks:\n  - name: ops\n    url: {hook_url}\n    format: generic\n"
    )
    profiles = proj / "dbt" / "profiles.yml"
    text = re.sub(r"\n\s*extensions:\n(\s*- \w+\n)+", "\n", profiles.read_text())
    profiles.write_text(text)
    run([dango_bin(), "sync"], proj, env)
    for name, (email, role) in USERS.items():
        out = run([dango_bin(), "auth", "add-user", email, "--role", role, "--password"], proj, env)
        USERS[name] = (email, role, re.search(r"Password:\s+(\S+)", out).group(1))
    server = subprocess.Popen(
        [dango_bin(), "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=proj,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            requests.get(base + "/api/status", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.5)
    return proj, server, base, admin_password


def signed_in(base, email, password):
    """A session whose password was changed to PASSWORD if the server asked for it."""
    c = Caller(base)
    answer = c.login(email, password)
    if answer.get("must_change_password") and password != PASSWORD:
        r = c.call("POST", "/api/auth/change-password", {"current_password": password, "new_password": PASSWORD})
        r.raise_for_status()
        c = Caller(base)
        c.login(email, PASSWORD)
    return c


def capture(body, spec):
    expr, _, modifier = spec.partition("#")
    value = body
    for part in re.findall(r"\.(\w+)|\[(\d+)\]", expr[1:]):
        key, index = part
        value = value[key] if key else value[int(index)]
    if modifier == "last_segment":
        value = str(value).rstrip("/").rsplit("/", 1)[-1]
    return value


def substitute(value, variables):
    if isinstance(value, str):
        for k in ("totp_prev", "totp_next", "totp"):
            if "{" + k + "}" in value:
                offset = {"totp_prev": -1, "totp": 0, "totp_next": 1}[k]
                value = value.replace("{" + k + "}", totp(variables["totp_secret"], offset))
        for k, v in variables.items():
            value = value.replace("{" + k + "}", str(v))
        return value
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def settle(admin):
    for _ in range(240):
        sources = admin.call("GET", "/api/sources").json()
        if all(s.get("status") != "syncing" for s in sources):
            return
        time.sleep(0.5)


def main():
    probes = json.loads((HERE / "probes.json").read_text())["probes"]
    root = Path(tempfile.mkdtemp(prefix="dango-contract-"))
    # The reference writes .dango/logs into the working directory: keep it in the temp dir.
    os.chdir(root)
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    proj, server, base, admin_password = setup(root, port, f"http://127.0.0.1:{hook.server_port}/hook")
    try:
        admin = signed_in(base, "admin@localhost", admin_password)
        me = admin.call("GET", "/api/auth/me").json()
        spare = Caller(base)
        spare.login("admin@localhost", PASSWORD)
        spare_id = next(s["id"] for s in spare.call("GET", "/api/auth/sessions").json() if s.get("is_current"))
        callers = {"admin": admin, "anon": Caller(base), "invited": Caller(base), "twofa_pending": Caller(base)}
        callers["bad_bearer"] = Caller(base, bearer="dango_ak_not_a_real_key")
        browser = Caller(base)
        browser.http.cookies.update(admin.http.cookies)
        browser.http.headers["Origin"] = base
        callers["admin_browser"] = browser
        for name, (email, _, temp) in USERS.items():
            callers[name] = signed_in(base, email, temp)
        variables = {
            "password": PASSWORD,
            "source_dir": str(proj / "data" / "uploads" / "sales"),
            "admin_id": me["id"],
            "unknown_user_id": "00000000-0000-0000-0000-000000000000",
            "spare_session_id": spare_id,
        }
        answers = {}
        for probe in probes:
            if probe["as"] == "bearer":
                callers["bearer"] = Caller(base, bearer=variables["bearer"])
            caller = callers[probe["as"]]
            path = substitute(probe["path"], variables)
            files = None
            if "upload" in probe:
                files = {"file": (probe["upload"], EXTRA_CSV.encode(), "text/csv")}
            r = caller.call(probe["method"], path, substitute(probe.get("body"), variables), files)
            try:
                body = r.json()
            except ValueError:
                body = None
            print(f"{r.status_code} {probe['id']}", flush=True)
            answers[probe["id"]] = {"status": r.status_code, "shape": shape(body) if body is not None else {}}
            for var, spec in probe.get("capture", {}).items():
                if r.ok:
                    variables[var] = capture(body, spec)
            if probe.get("settle"):
                settle(admin)
        reference = {
            "recorded_with": "getdango==1.0.13",
            "recorded_at": time.strftime("%Y-%m-%d"),
            "answers": answers,
        }
        (HERE / "reference.json").write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    finally:
        server.terminate()
        server.wait()
        hook.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
