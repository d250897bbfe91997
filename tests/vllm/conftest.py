import sys
from pathlib import Path

# The tiny-model world is shared with the hf backend's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "distill"))
