#!/usr/bin/env python3
"""Rewrites the data of configmap-connectors.yaml and configmap-calendar.yaml from connectors/
and calendar/ (the same as `kubectl create configmap … --from-file=DIR/`), keeping each file's
header comment and metadata. Run from the repository root after editing a connector or adding a
year's calendar; tests/it/deploy.rs fails while they differ."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sync(configmap: str, source: str) -> None:
    path = ROOT / "deploy" / "kubernetes" / configmap
    head = path.read_text(encoding="utf-8").split("\ndata:\n", 1)[0]
    out = [head, "\ndata:\n"]
    for f in sorted((ROOT / source).glob("*.toml")):
        out.append(f"  {f.name}: |\n")
        for line in f.read_text(encoding="utf-8").splitlines():
            out.append(f"    {line}\n" if line else "\n")
    path.write_text("".join(out), encoding="utf-8")
    print(f"{path.relative_to(ROOT)} <- {source}/")


if __name__ == "__main__":
    sync("configmap-connectors.yaml", "connectors")
    sync("configmap-calendar.yaml", "calendar")
    sys.exit(0)
