"""What a lab made, written down before each thing is made, so `lab down` removes exactly that,
also after an `up` that died half way."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from s3dlio_ray._internal.lab.plan import Lab, StoreKind

LABS_DIR = Path(os.environ.get("S3DLIO_RAY_LAB_DIR", "/run/s3dlio-ray-lab"))


@dataclass
class Record:
    """A lab's plan, the namespaces it created (in order), its environment, and whether `up`
    finished. Namespaces hold every link, qdisc and process of the lab; `folder` its files."""

    lab: Lab
    namespaces: list[str] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)
    up: bool = False

    @property
    def folder(self) -> Path:
        return folder(self.lab.name)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / "lab.json"
        staged = path.with_suffix(".tmp")
        fields = dataclasses.asdict(self)
        staged.write_text(json.dumps(fields, indent=1))
        staged.chmod(0o600)
        staged.replace(path)

    def made(self, namespace: str) -> None:
        self.namespaces.append(namespace)
        self.save()


def folder(name: str) -> Path:
    return LABS_DIR / name


def load(name: str) -> Record | None:
    path = folder(name) / "lab.json"
    if not path.exists():
        return None
    fields = json.loads(path.read_text())
    lab = fields.pop("lab")
    lab["store"] = StoreKind(lab["store"])
    return Record(Lab(**lab), **fields)


def others(name: str) -> list[Record]:
    """The other labs up on this machine (their subnets are in use)."""
    if not LABS_DIR.is_dir():
        return []
    found = (load(path.name) for path in sorted(LABS_DIR.iterdir()) if path.name != name)
    return [record for record in found if record is not None]
