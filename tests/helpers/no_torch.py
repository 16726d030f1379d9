"""Python processes in which torch cannot be imported, as on a machine without it installed.

An import hook (first on ``sys.meta_path``) refuses ``torch`` and its submodules with the
ModuleNotFoundError a missing package gives. ``REFUSE_TORCH`` installs it in code run with
``python -c``; ``environment_without_torch`` writes it as a ``sitecustomize`` module on PYTHONPATH,
so that every process started with that environment, and every process those start, has it.
"""
import os

REFUSE_TORCH = '''
import sys


class RefuseTorch:
    """A meta-path finder for which torch is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, RefuseTorch())
'''


def environment_without_torch(directory, base=None) -> dict:
    """``base`` (default: os.environ) with ``directory``/sitecustomize.py refusing torch first on
    PYTHONPATH."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "sitecustomize.py"), "w") as f:
        f.write(REFUSE_TORCH)
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([os.fspath(directory)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env
