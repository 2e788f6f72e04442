#!/usr/bin/env python3
"""Queue binding updates through dyplsq's HTTP API and follow them.

Standard library only. Usage:

    DYPLSQ_API=http://127.0.0.1:8090 DYPLSQ_TOKEN=... \\
        python3 examples/python/enqueue.py updates.json [--bulk] [--wait]

updates.json holds a JSON array of updates whose keys are the API's parameter
names (SubsId, PhoneNoX, OperateType, ...). The request carries an
Idempotency-Key made from the file's content, so running the script again
(after a timeout, say) queues nothing twice. With --wait it follows every
update until it ends and exits 1 if any ended dead.
"""
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

API = os.environ.get("DYPLSQ_API", "http://127.0.0.1:8090").rstrip("/")
TOKEN = os.environ["DYPLSQ_TOKEN"]


def call(method, path, body=None, headers=None):
    """One request; retries 429 and 503 after the time the API asks for."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(10):
        req = urllib.request.Request(API + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + TOKEN)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as e:
            answer = json.load(e)
            if e.code in (429, 503) and attempt < 9:
                time.sleep(int(e.headers.get("Retry-After") or 1))
                continue
            return e.code, answer
    raise RuntimeError("unreachable")


def main(argv):
    with open(argv[1], "rb") as f:
        raw = f.read()
    updates = json.loads(raw)
    key = "enqueue.py-" + hashlib.sha256(raw).hexdigest()
    query = "?queue=bulk" if "--bulk" in argv else ""
    status, answer = call("POST", "/v1/updates" + query, updates, {"Idempotency-Key": key})
    if status != 202:
        err = answer["error"]
        print(f"{status} {err['code']}: {err['message']}", file=sys.stderr)
        for d in err.get("details", []):
            print(f"  item {d.get('index')}: {d.get('field', '')}: {d['reason']}", file=sys.stderr)
        return 1
    print(f"batch {answer['batchId']} on {answer['queue']}")
    for item in answer["items"]:
        note = " (already queued)" if item["duplicate"] else ""
        print(f"  item {item['index']}: task {item['taskId']} version {item.get('version', '-')}{note}")
    if "--wait" not in argv:
        return 0
    dead = 0
    for item in answer["items"]:
        while True:
            _, st = call("GET", "/v1/updates/" + item["taskId"])
            if st["state"] == "ended":
                break
            time.sleep(0.2)
        dead += st["outcome"] == "dead"
        print(f"  item {item['index']}: {st['outcome']} {st.get('code', '')} {st.get('requestId', '')}".rstrip())
    return 1 if dead else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
