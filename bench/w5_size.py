#!/usr/bin/env python3
"""Workload 5: size of each init's main binary (and of the per-service helpers it needs).

Static/dynamic is read from the ELF program headers (PT_INTERP present = dynamic); stripped from
the section headers (.symtab absent = stripped). A binary that is not stripped is also measured
after `strip` (on a copy), so it compares fairly with stripped peers. For dynamic binaries the
non-libc shared libraries they load (e.g. s6's libskarnet) are listed with their sizes.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402


def elf_info(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {"elf": False}
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 0x20)
    e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    dynamic = False
    for i in range(e_phnum):
        p_type = struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0]
        if p_type == 3:  # PT_INTERP
            dynamic = True
    stripped = True
    if e_shoff and e_shnum:
        for i in range(e_shnum):
            sh_type = struct.unpack_from("<I", data, e_shoff + i * e_shentsize + 4)[0]
            if sh_type == 2:  # SHT_SYMTAB
                stripped = False
    return {"elf": True, "dynamic": dynamic, "stripped": stripped}


def extra_libs(path):
    """Shared libraries other than the C library / loader / vdso."""
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    libs = []
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) != 2:
            continue
        name, target = parts[0].strip(), parts[1].split("(")[0].strip()
        if name.startswith(("libc.so", "ld-linux", "linux-vdso")) or not target:
            continue
        libs.append({"name": name, "path": target, "bytes": os.path.getsize(os.path.realpath(target))})
    return libs


def stripped_size(path):
    """Size of a stripped copy, or None without `strip`."""
    strip = shutil.which("strip")
    if not strip:
        return None
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "stripped")
        try:
            subprocess.run([strip, "-o", copy, path], check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        return os.path.getsize(copy)


def describe(path):
    real = os.path.realpath(path)
    d = {"path": path, "bytes": os.path.getsize(real)}
    d.update(elf_info(real))
    if d.get("elf") and not d.get("stripped"):
        d["stripped_bytes"] = stripped_size(real)
    if d.get("dynamic"):
        d["libs"] = extra_libs(real)
    return d


def main():
    out_dir = sys.argv[1]
    peers, skipped = B.selected_peers()
    res = {"skipped": skipped, "peers": {}, "peer_names": [p.name for p in peers if p.name != "baseline"]}
    for p in peers:
        if p.name == "baseline":
            continue
        # dinit-json/dinit-text (and the tozd pair) are one binary in two modes
        name = p.name[:-5] if p.name.endswith(("-json", "-text")) else p.name
        if name in res["peers"]:
            continue
        entry = {"main": describe(p.binary), "parts": [describe(x) for x in p.parts]}
        res["peers"][name] = entry
        B.log(f"[size] {name}: {entry['main']['bytes']} B {'dynamic' if entry['main'].get('dynamic') else 'static'}")
    B.save(out_dir, "size", res)


if __name__ == "__main__":
    main()
