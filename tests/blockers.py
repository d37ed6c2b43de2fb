"""Code run in child processes to prove that a path never imports the training stack."""

BLOCK_TORCH = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm", "lightning"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Blocker())
"""
