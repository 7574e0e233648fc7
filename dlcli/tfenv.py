"""Import TensorFlow once, without its start-up noise on the user's terminal."""

from __future__ import annotations

import os
import re
import sys
import tempfile

# TensorFlow's C++ core prints these before absl logging is initialised, so
# TF_CPP_MIN_LOG_LEVEL cannot hide them; they are informational, never actionable.
_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cuda drivers on your machine|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation placer already|"
    r"This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler"
)


def import_tensorflow() -> None:
    """Import TensorFlow with fd 2 captured; replay every line that is not known noise."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        saved = os.dup(2)
    except OSError:
        import tensorflow

        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.search(line):
                    print(line, file=sys.stderr)
