"""The README's generated references match the code, so the documentation cannot drift."""
from tvbinv_support import ROOT

from tvbinv_hpc.cli.docs import render_readme


def test_readme_references_are_current():
    text = (ROOT / "README.md").read_text()
    assert render_readme(text) == text, "README is stale: run `python -m tvbinv_hpc.cli.docs`"


def test_every_config_key_is_documented():
    from tvbinv_hpc.config import SCHEMA

    text = (ROOT / "README.md").read_text()
    for section, keys in SCHEMA.items():
        assert f"**[{section}]**" in text
        for k in keys:
            assert f"| `{k}` |" in text, f"{section}.{k}"


def test_readme_has_exactly_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Set-up: two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make demo", "make test"]
