"""Test-only code: oracles, model builders and patches the suite shares (never installed).

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so a test imports these as
``from helpers.onnx_models import one_node_model``.
"""
