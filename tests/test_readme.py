"""The README's Python quickstart runs as written and every docs page it links exists."""

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python block"
    monkeypatch.chdir(tmp_path)  # the quickstart writes out/model.lava relative to the working directory
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (4, 10)
    assert (tmp_path / "out" / "model.lava" / "graph.json").is_file()
    assert torch.equal(namespace["spikes"], namespace["spikes"].bool().float())  # 0/1 spikes


def test_readme_links_resolve():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
