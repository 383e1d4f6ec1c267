"""Export the JSON Schema of every contract to `schemas/json/`, for non-Python clients.

Run `make schemas` (`python -m triage.schemas.export`) after changing a model; a unit test fails
while the files on disk differ from what the models produce.
"""

from __future__ import annotations

import json
from pathlib import Path

from triage.schemas.models import CONTRACTS

JSON_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, str]:
    """File name → JSON Schema text, exactly as it should be on disk."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in CONTRACTS.items()
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (JSON_DIR / name).write_text(text)
        print(JSON_DIR / name)


if __name__ == "__main__":
    main()
