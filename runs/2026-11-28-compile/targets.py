"""Issue 7 targets per cell: python runs/2026-11-28-compile/targets.py [RUN_DIR] (job records under
RUN_DIR/*/*/metrics.json; default: this folder)."""

import glob
import json
import sys
from pathlib import Path

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
rows = {}
for f in glob.glob(str(HERE / "*" / "*" / "metrics.json")):
    d = json.load(open(f)); s = d["summary"]
    if "smoke" in f: continue
    rows[(s["model"], s["seq_len"], s["attention"], bool(s["compile"]), s["variant"])] = (d["status"], s)
print("| model | seq | attention | compiled | variant | status | peak MB | saved mask MB | seq/s | peak vs std (MB) | 0.9 x std mask (MB) | peak drop / std mask | memory target | seq/s vs std | speed target |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(rows, key=lambda k: (k[0], k[1], k[2], k[3], ["standard","packed","seeded"].index(k[4]))):
    st, s = rows[key]
    base = rows.get(key[:4] + ("standard",))
    pk, mb, tp = s.get("peak_allocated_mb"), s.get("saved_mask_bytes"), s.get("throughput_seq_s")
    cells = [key[0], key[1], key[2], "yes" if key[3] else "no", key[4], st,
             f"{pk:,.0f}" if pk else "-", f"{mb/2**20:,.1f}" if mb is not None else "-", f"{tp:.1f}" if tp else "-"]
    if key[4] != "standard" and base and base[0] == "ok" and st == "ok":
        b = base[1]; d = pk - b["peak_allocated_mb"]; need = 0.9 * b["saved_mask_bytes"] / 2**20
        r = tp / b["throughput_seq_s"]
        share = -d / (b["saved_mask_bytes"] / 2**20) if b["saved_mask_bytes"] else float("nan")
        cells += [f"{d:+,.0f}", f"{need:,.0f}", f"{share:.1%}", "PASS" if -d >= need else "FAIL", f"{r:.3f}",
                  "PASS" if r >= 0.99 else "FAIL"]
    else:
        cells += ["", "", "", "", "", ""]
    print("| " + " | ".join(map(str, cells)) + " |")
