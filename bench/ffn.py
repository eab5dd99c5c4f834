"""Benchmark the FFN PCA on SmolLM2-135M-Instruct, all layers: ours vs a full SVD per layer (the paper's way).

Ours (`principal_components`): float64 scatter matrix (hidden × hidden, BLAS syrk) and its
eigendecomposition (LAPACK syevd), keeping R components. Reference: `torch.linalg.svd` of the
column-centred intermediate × hidden matrix in float32 with its defaults (full matrices), and for
comparison the thin variant (``full_matrices=False``). Per layer each is timed --repeats times,
alternating; the minimum CPU time (process time) is kept, which parallel jobs on a shared machine
disturb far less than wall time. Run single-threaded for a stable comparison:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        .venv/bin/python bench/ffn.py --json bench-ffn.json [--components 300] [--device cuda]

Every kept component is compared with the reference's (|cos|) and with a float64 SVD's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from shiftlens.architecture import ffn_down_rows, geometry
from shiftlens.ffn.core import principal_components
from shiftlens.models import load_model, weight_source


def _timed(device: str, fn, *args) -> tuple[float, float, object]:
    """(CPU seconds, wall seconds, result) of one call; on a GPU both are wall time after a sync."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn(*args)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return time.perf_counter() - wall, time.perf_counter() - wall, result
    return time.process_time() - cpu, time.perf_counter() - wall, result


def reference_svd(rows: torch.Tensor, full_matrices: bool = True) -> torch.Tensor:
    """The paper-style full SVD of the centred matrix (float32): all right singular vectors."""
    x = rows.float()
    return torch.linalg.svd(x - x.mean(0), full_matrices=full_matrices).Vh


def bench(components: int, repeats: int, device: str) -> dict:
    """Time both methods on every layer and compare the kept components."""
    loaded = load_model("smollm2")
    config = loaded.model.config
    source = weight_source(loaded).weights
    per_layer = []
    for layer in range(geometry(config).n_layers):
        rows = ffn_down_rows(source, config, layer).float().to(device).contiguous()
        principal_components(rows, components), reference_svd(rows)  # warm-up
        times: dict[str, list[tuple[float, float]]] = {"ours": [], "full": [], "thin": []}
        for _ in range(repeats):
            cpu, wall, ours = _timed(device, principal_components, rows, components)
            times["ours"].append((cpu, wall))
            cpu, wall, vh = _timed(device, reference_svd, rows)
            times["full"].append((cpu, wall))
            cpu, wall, _ = _timed(device, reference_svd, rows, False)
            times["thin"].append((cpu, wall))
        x64 = rows.double()
        vh64 = torch.linalg.svd(x64 - x64.mean(0), full_matrices=False).Vh[:components]
        cos_ref = (ours.components.float() * vh[:components].float()).sum(1).abs()
        cos_64 = (ours.components * vh64).sum(1).abs()
        best = {name: min(t[0] for t in values) for name, values in times.items()}
        best_wall = {name: min(t[1] for t in values) for name, values in times.items()}
        per_layer.append(
            {
                "layer": layer,
                "ours_s": best["ours"],
                "reference_s": best["full"],
                "reference_thin_s": best["thin"],
                "ours_wall_s": best_wall["ours"],
                "reference_wall_s": best_wall["full"],
                "min_abs_cos": float(cos_ref.min()),
                "min_abs_cos_float64_svd": float(cos_64.min()),
            }
        )
        row = per_layer[-1]
        print(
            f"layer {layer:2d}: ours {row['ours_s'] * 1e3:6.1f} ms, "
            f"full SVD {row['reference_s'] * 1e3:6.1f} ms "
            f"(thin {row['reference_thin_s'] * 1e3:6.1f}), min |cos| {row['min_abs_cos']:.7f} "
            f"(float64 SVD {row['min_abs_cos_float64_svd']:.7f})",
            flush=True,
        )
    total = {key: sum(r[key] for r in per_layer) for key in per_layer[0] if key.endswith("_s")}
    return {
        "model": "smollm2 (SmolLM2-135M-Instruct, 30 layers, 1536 × 576 per layer)",
        "components": components,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "threads": {
            "torch": torch.get_num_threads(),
            **{v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        **total,
        "speedup": total["reference_s"] / total["ours_s"],
        "speedup_vs_thin": total["reference_thin_s"] / total["ours_s"],
        "min_layer_speedup": min(r["reference_s"] / r["ours_s"] for r in per_layer),
        "min_abs_cos": min(r["min_abs_cos"] for r in per_layer),
        "min_abs_cos_float64_svd": min(r["min_abs_cos_float64_svd"] for r in per_layer),
        "per_layer": per_layer,
    }


def main() -> None:
    """Parse arguments, run, print the side-by-side summary and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    result = bench(args.components, args.repeats, args.device)
    print(
        f"all layers (CPU time): ours {result['ours_s']:.2f} s, full SVD {result['reference_s']:.2f} s "
        f"({result['speedup']:.2f}× faster, slowest layer {result['min_layer_speedup']:.2f}×; thin SVD "
        f"{result['reference_thin_s']:.2f} s, {result['speedup_vs_thin']:.2f}×); "
        f"min |cos| {result['min_abs_cos']:.7f} vs the float32 SVD, "
        f"{result['min_abs_cos_float64_svd']:.7f} vs a float64 SVD"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
