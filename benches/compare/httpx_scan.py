#!/usr/bin/env python3
"""The obvious asyncio + httpx ssh.cgi scanner, the baseline sshfleet is compared with.

Written the way a competent person would write it in an afternoon: one shared
httpx.AsyncClient with httpx.DigestAuth, a semaphore for concurrency, getSupportedVersions
then getSshInfo per camera, results as JSON Lines (address, status, ssh_enabled). Not part
of sshfleet and not run by CI; needs `pip install httpx`.

    SSHFLEET_PASSWORD=pass python3 benches/compare/httpx_scan.py fleet.csv --concurrency 256
"""

import argparse
import asyncio
import csv
import json
import os
import sys
import time

import httpx


def load_inventory(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.DictReader(f) if r.get("address") and not r["address"].startswith("#")]
    return [r["address"].strip() for r in rows]


def base_url(address):
    return address if "://" in address else f"http://{address}"


def highest_1x(versions):
    ones = []
    for v in versions:
        major, _, minor = v.partition(".")
        if major == "1" and minor.isdigit():
            ones.append((int(minor), v))
    return max(ones)[1] if ones else None


async def check(client, username, password, sem, address):
    # One retry on a broken connection, as sshfleet does (--retries 1).
    for attempt in range(2):
        result = await check_once(client, username, password, sem, address)
        if result["status"] != "transport_error" or attempt == 1:
            return result


async def check_once(client, username, password, sem, address):
    url = base_url(address) + "/axis-cgi/ssh.cgi"
    # One DigestAuth per camera: it caches the challenge, so the second request goes out
    # authenticated (3 requests per camera, like sshfleet). A shared one would replay one
    # camera's nonce to the next.
    auth = httpx.DigestAuth(username, password)
    async with sem:
        try:
            r = await client.post(url, json={"context": "py", "method": "getSupportedVersions"}, auth=auth)
            if r.status_code != 200:
                return {"address": address, "status": f"http_{r.status_code}", "ssh_enabled": None}
            body = r.json()
            if "error" in body:
                return {"address": address, "status": "api_error", "ssh_enabled": None}
            version = highest_1x(body["data"]["apiVersions"])
            if version is None:
                return {"address": address, "status": "unsupported", "ssh_enabled": None}
            r = await client.post(
                url,
                json={"apiVersion": version, "context": "py", "method": "getSshInfo"},
                auth=auth,
            )
            body = r.json()
            if r.status_code != 200 or "error" in body:
                return {"address": address, "status": "api_error", "ssh_enabled": None}
            return {"address": address, "status": "ok", "ssh_enabled": body["data"]["enabled"]}
        except httpx.TimeoutException:
            return {"address": address, "status": "timeout", "ssh_enabled": None}
        except httpx.TransportError as e:
            return {"address": address, "status": "transport_error", "ssh_enabled": None, "error": repr(e)}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            return {"address": address, "status": "error", "ssh_enabled": None, "error": repr(e)}


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inventory")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--username", default="root")
    p.add_argument("-o", "--output", default="-")
    args = p.parse_args()

    addresses = load_inventory(args.inventory)
    password = os.environ.get("SSHFLEET_PASSWORD", "")
    sem = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
        tasks = [check(client, args.username, password, sem, a) for a in addresses]
        for done in asyncio.as_completed(tasks):
            out.write(json.dumps(await done) + "\n")
    elapsed = time.perf_counter() - started
    out.flush()
    print(f"{len(addresses)} devices in {elapsed:.2f} s: {len(addresses) / elapsed:.0f} devices/s", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
