#!/usr/bin/env python3
"""Docker's default seccomp profile as an OCI `linux.seccomp` for a runc config.json.

    conformance/docker-seccomp.py PROFILE CAPS_JSON > seccomp.json

PROFILE is moby's profiles/seccomp/default.json (github moby/moby, also vendored there as
vendor/github.com/moby/profiles/seccomp/default.json; Apache-2.0, never committed here).
CAPS_JSON is a JSON list of the container's bounding capabilities. This does what moby's
setupSeccomp (profiles/seccomp/seccomp_linux.go) does when dockerd starts a container on this
machine: keep the architectures of the native entry of archMap, and keep each syscall rule whose
`includes` (arches, caps, minKernel) all hold and whose `excludes` do not.
"""
import json
import os
import platform
import sys

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64", "s390x": "s390x",
           "ppc64le": "ppc64le", "loongarch64": "loong64"}
SECCOMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "riscv64": "SCMP_ARCH_RISCV64",
                "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE", "loong64": "SCMP_ARCH_LOONGARCH64"}


def kernel_at_least(want):
    have = os.uname().release.split("-")[0].split(".")
    w = want.split(".")
    to_int = lambda parts: [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts[:2]]
    return to_int(have) >= to_int(w)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    profile, caps = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
    if "archMap" not in profile or "syscalls" not in profile:
        sys.exit("docker-seccomp.py: %s is not moby's default.json (no archMap/syscalls)" % sys.argv[1])
    arch = GO_ARCH.get(platform.machine(), platform.machine())
    out = {"defaultAction": profile["defaultAction"], "architectures": [], "syscalls": []}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for a in profile["archMap"]:
        if a["architecture"] == SECCOMP_ARCH.get(arch):
            out["architectures"] = [a["architecture"]] + (a.get("subArchitectures") or [])
    for rule in profile["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if arch in (exc.get("arches") or []) or any(c in caps for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and kernel_at_least(exc["minKernel"]):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if any(c not in caps for c in inc.get("caps") or []):
            continue
        if inc.get("minKernel") and not kernel_at_least(inc["minKernel"]):
            continue
        out["syscalls"].append({k: v for k, v in rule.items() if k in ("names", "action", "errnoRet", "args")})
    json.dump(out, sys.stdout)


main()
