"""What the benchmark scripts share: the repository on sys.path and the real data in ../shared."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SIGNS = REPO.parent / "shared" / "data" / "sign_language_digits" / "Dataset"


def signs_data_section(size: int) -> str:
    """The `data:` YAML of the sign-language digits at size x size RGB, 70/10/20 split."""
    if not SIGNS.is_dir():
        sys.exit(f"needs the sign-language digits in {SIGNS} (see ../shared/README.md)")
    return (
        f"data: {{type: image_folder, path: {SIGNS}, image_size: [{size}, {size}], channels: 3,\n"
        "       split: {validation: 0.1, test: 0.2}}\n"
    )
