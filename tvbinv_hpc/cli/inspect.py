"""Read-only views of a store for ``tvbinv-hpc status`` and ``inspect``; safe while a job is writing
(no locks taken, nothing written)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tvbinv_hpc.parallel import store


def compact_names(names: list[str]) -> list[str]:
    """``eta[0] ... eta[78]`` -> ``eta[0..78]``: a per-region vector on one short entry."""
    out: list[str] = []
    for name in names:
        m = re.fullmatch(r"(.+)\[(\d+)\]", name)
        last = re.fullmatch(r"(.+)\[(\d+)(?:\.\.(\d+))?\]", out[-1]) if out else None
        if m and last and last.group(1) == m.group(1) and int(last.group(3) or last.group(2)) + 1 == int(m.group(2)):
            out[-1] = f"{m.group(1)}[{last.group(2)}..{m.group(2)}]"
        else:
            out.append(name)
    return out


def status_text(path: str | Path) -> str:
    head = store.read_header(path, read_only=True)
    status, split = store.read_columns(path)
    n = status.size
    lines = [f"{path}: {head.get('kind', 'simulations')}, {n} rows, config {head['config_hash']}"]
    for code, name in store.STATUS_NAMES.items():
        c = int(np.sum(status == code))
        lines.append(f"  {name:<28} {c:>9}  ({100.0 * c / max(n, 1):5.1f} %)")
    for label, sp in (("train", store.TRAIN), ("test", store.TEST)):
        sel = split == sp
        lines.append(f"  {label} split: {int(sel.sum())} rows, {int(np.sum(status[sel] == store.OK))} ok")
    sess = store.sessions(path)
    lines.append(f"  sessions: {len(sess)}")
    for i, r in enumerate(sess):
        rate = r["rows_done"] / r["wall_seconds"] if r.get("wall_seconds") else 0.0
        who = f"{r['workers']} dask workers" if r.get("backend") == "dask" else f"{r['ranks']} ranks"
        lines.append(f"    #{i}: {r['start']} -> {r['end']}, {who} on {', '.join(r['hosts'])}, "
                     f"{r['rows_done']} rows ({r['rows_diverged']} diverged) in {r['wall_seconds']:.1f} s "
                     f"= {rate:.2f} rows/s, writer {r['writer']}"
                     + (f", peak memory per rank <= {max(r['peak_rss_mb']):.0f} MB" if r.get("peak_rss_mb") else "")
                     + (", stopped by signal" if r.get("stopped_by_signal") else ""))
    pending = int(np.sum(status == store.PENDING))
    lines.append("  complete" if pending == 0 else f"  {pending} rows pending: run simulate again to finish")
    return "\n".join(lines)


def inspect_text(path: str | Path, show_config: bool = True) -> str:
    head = store.read_header(path, read_only=True)
    lines = [f"{path}: {head['format']} v{head['format_version']}, kind {head.get('kind')}, "
             f"created {head.get('created')}"]
    for name, shape, dtype, units in store.layout_lines(path):
        lines.append(f"  /{name:<8} {shape:<22} {dtype:<8} {units}".rstrip() if dtype else f"  /{name} {shape}")
    params, feats = json.loads(head["param_names"]), json.loads(head["feature_names"])
    lines.append(f"  parameters ({len(params)}): {', '.join(compact_names(params))}")
    lines.append(f"  features ({len(feats)}): {', '.join(feats)}")
    lines.append(f"  regions {head['n_regions']}, BOLD samples {head['n_bold']}, TR {head['tr_ms']} ms")
    lines.append(f"  config hash {head['config_hash']}")
    versions = json.loads(head.get("versions", "{}"))
    if versions:
        lines.append("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if show_config:
        lines.append("  config:")
        lines += ["    " + line for line in head["config"].splitlines()]
    return "\n".join(lines)
