"""Each extension touches the files its docs name and no others, tried from the outside (docs/synthetic.md
"How many files each addition touches", docs/figures.md): a figure (its module + one entry in
paper_figs.FIGURES), a metric of the Gaussian runs (one key of synthetic.train.evaluate's dict); and one
source per default and per list of allowed values in realdata (the apps' YAMLs set no key of their schema,
every choice key is checked against its one tuple, the docs' default tables equal the dataclasses). A
Gaussian objective (its class + its YAML) is tests/test_extension_api.py's."""

from __future__ import annotations

import csv
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "realdata"

FIGURE_MODULE = """
from pathlib import Path


def make(out_dir, results_dir=None):
    out = Path(out_dir) / "my_figure.txt"
    out.write_text(f"drawn from {results_dir}")
    return [out]
"""


def test_a_new_figure_is_its_module_plus_one_registry_entry(tmp_path, monkeypatch, capsys):
    """The two documented edits, made from outside: the module file in the package's folder (here a second
    folder of the package's __path__, so no test writes into the checkout) and its name appended to
    paper_figs.FIGURES. `python -m paper_figs` then draws it, reports it and hands it --results."""
    import paper_figs
    from paper_figs import __main__ as driver

    package = tmp_path / "paper_figs"
    package.mkdir()
    (package / "my_figure.py").write_text(FIGURE_MODULE)
    monkeypatch.setattr(paper_figs, "__path__", [*paper_figs.__path__, str(package)])
    monkeypatch.delitem(sys.modules, "paper_figs.my_figure", raising=False)
    # the one registry entry (the built-in figures are left out only to keep this test fast)
    monkeypatch.setattr(paper_figs, "FIGURES", ("my_figure",))
    out = tmp_path / "out"
    assert driver.main(["--out", str(out), "--results", f"my_figure={tmp_path / 'runs'}"]) == 0
    assert (out / "my_figure.txt").read_text() == f"drawn from {tmp_path / 'runs'}"
    assert "my_figure            ok       1 files" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # an unregistered name is refused by the same registry
        driver.main(["--out", str(out), "--results", "theory_curves=DIR"])
    assert "FIGURE one of ['my_figure']" in capsys.readouterr().err
    sys.modules.pop("paper_figs.my_figure", None)


def test_a_new_metric_is_one_key_of_evaluate(tmp_path, tmp_path_factory, monkeypatch):
    """A key added to the dict synthetic.train.evaluate returns becomes metrics.<name> in results.json
    (mean, std, n, per_seed) and <name>_mean in synthetic.aggregate's table; nothing else is edited."""
    import synthetic
    from synthetic import aggregate
    from synthetic import train as T

    # run_point turns JAX's persistent compilation cache on for the rest of this process: in this
    # session's temporary folder, not the checkout's .cache/jax that a later run of the suite would read
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax_cache"))

    builtin = T.evaluate

    def evaluate(params, fixed, hp, spec):
        out = builtin(params, fixed, hp, spec)
        out["acc_gap"] = out["acc_common"] - out["acc_counter"]  # the new metric
        return out

    monkeypatch.setattr(T, "evaluate", evaluate)
    # a Spec no other test compiles (eval.n_test=37), so the program traced here holds the new key
    tiny = ["seeds=2", "train.steps=3", "data.n=32", "data.d_image=4", "data.d_text=4", "encoder.h=2"]
    doc = synthetic.run_point([*tiny, "eval.n_test=37"], out_dir=tmp_path / "sweep" / "0")
    m = doc["metrics"]
    assert doc["status"] == "ok" and set(m["acc_gap"]) >= {"mean", "std", "n", "per_seed"}
    want = np.subtract(m["acc_common"]["per_seed"], m["acc_counter"]["per_seed"])
    np.testing.assert_allclose(m["acc_gap"]["per_seed"], want, atol=1e-6)
    assert m["acc_gap"]["n"] == 2
    table = tmp_path / "aggregate.csv"
    aggregate.main([str(tmp_path / "sweep"), "-o", str(table)])
    (row,) = csv.DictReader(table.open())
    assert float(row["acc_gap_mean"]) == pytest.approx(np.mean(want), abs=1e-6)


def _schema_keys(cls) -> set[str]:
    return {f.name for f in fields(cls)}


@pytest.mark.parametrize(
    "app, schema, required",
    [
        ("realdata", "realdata.config:RealdataConfig", ["data.root=/x"]),
        ("finetune", "realdata.finetune:FinetuneConfig", ["data.manifest=x"]),
        ("curate", "realdata.curate:CurateConfig", ["images=/x"]),
    ],
)
def test_realdata_defaults_have_one_source(app, schema, required):
    """The dataclass is the one source of each default: the app's YAML sets none of its keys (only the
    defaults list and Hydra's settings), and the composed config is the dataclass's defaults (the model
    from the defaults list aside)."""
    import importlib

    module_name, cls_name = schema.split(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    yaml = OmegaConf.load(CONF / f"{app}.yaml")
    assert set(yaml) <= {"defaults", "hydra"}, (
        f"conf/realdata/{app}.yaml repeats {set(yaml) & _schema_keys(cls)}"
    )
    getattr(module, "register", lambda: None)()  # realdata.curate registers its schema on import
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = OmegaConf.to_container(compose(app, overrides=required), resolve=False)
    want = OmegaConf.to_container(
        OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.from_dotlist(required))
    )
    from_list = {"realdata": "model", "curate": "reference"}.get(app)  # a zoo entry of the defaults list
    if from_list:
        assert cfg.pop(from_list)["name"] and want.pop(from_list) is not None
    # conf/realdata/logger/none.yaml, from the defaults list, is the dataclass's {_target_: null}
    assert cfg.pop("logger", None) == want.pop("logger", None)
    assert cfg == want


def _bad(cfg, key: str, value):
    cfg = cfg.copy()
    OmegaConf.update(cfg, key, value)
    return cfg


def test_every_realdata_choice_is_checked_against_its_one_tuple():
    """Each enumerated key of the three realdata apps is checked by theory.runrecord.expect against the one
    tuple that defines it (the message names the key, the bad value and that tuple's values)."""
    import re

    from realdata import coloredcoco, config, curate, finetune

    cases = [
        (config.validate, config.RealdataConfig, ["data.root=/x", "model.name=m"], {
            "label_space": config.LABEL_SPACES, "prompts": config.PROMPT_SETS,
            "classnames": config.CLASSNAME_LISTS, "device": config.DEVICES, "precision": config.PRECISIONS}),
        (finetune.validate, finetune.FinetuneConfig, ["data.manifest=x"], {
            "objective": finetune.OBJECTIVES, "captions": coloredcoco.CAPTION_SETS, "device": config.DEVICES,
            "precision": config.PRECISIONS, "dist.backend": finetune.BACKENDS}),
        (curate.check, curate.CurateConfig, ["images=/x", "out=/y"], {
            "label_space": curate.CURATE_LABEL_SPACES, "prompts": config.PROMPT_SETS,
            "classnames": config.CLASSNAME_LISTS, "files": curate.FILE_MODES, "device": config.DEVICES,
            "precision": config.PRECISIONS}),
    ]  # fmt: skip
    for check, schema, given, choices in cases:
        good = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(given))
        check(good)
        for key, allowed in choices.items():
            assert OmegaConf.select(good, key) in allowed  # the default is one of them
            with pytest.raises(
                ValueError, match=re.escape(f"{key}='bogus': expected one of {list(allowed)}")
            ):
                check(_bad(good, key, "bogus"))
    with pytest.raises(
        ValueError, match=re.escape(f"captions='cls': expected one of {list(coloredcoco.CAPTION_SETS)}")
    ):
        coloredcoco.caption("cls", "dog", "gold")
    assert coloredcoco.caption("objbkg", "dog", "gold") == "a photo of dog in gold background"


def _doc_value(text: str):
    text = text.strip().strip('"')
    return {"required": "???", "null": None, "true": True, "false": False}.get(text, text)


def _default_tables(text: str) -> list[list[list[str]]]:
    """The rows (cells) of each markdown table whose header is | key | default | ... |."""
    tables, rows = [], None
    for line in text.splitlines():
        if line.startswith("| key | default |"):
            rows = []
            tables.append(rows)
        elif rows is not None and line.startswith("| `"):
            rows.append(line.split(" | "))
        elif not line.startswith("|"):
            rows = None
    return tables


def test_docs_coloredcoco_defaults_are_the_dataclass_defaults():
    """docs/coloredcoco.md's key tables repeat the build's and the fine-tuning's defaults for readers: each
    default they state equals its dataclass's (BuildConfig, FinetuneConfig; numbers compared as numbers)."""
    import re

    from realdata.coloredcoco import BuildConfig
    from realdata.finetune import FinetuneConfig

    tables = _default_tables((ROOT / "docs" / "coloredcoco.md").read_text())
    assert len(tables) == 2
    checked = 0
    for rows, schema in zip(tables, (BuildConfig, FinetuneConfig), strict=True):
        want = OmegaConf.structured(schema)
        for cells in rows:
            keys = re.findall(r"`([\w.]+)`", cells[0])
            for key, stated in zip(keys, cells[1].split(", "), strict=False):
                stated = _doc_value(stated)
                if key == "logger":  # a group: none = conf/realdata/logger/none.yaml = {_target_: null}
                    assert stated == "none" and want.logger == {"_target_": None}
                    continue
                try:
                    have = OmegaConf.select(want, key, throw_on_missing=True)
                except MissingMandatoryValue:
                    have = "???"
                if isinstance(have, float | int) and not isinstance(have, bool):
                    stated = float(stated)
                assert stated == have, f"docs/coloredcoco.md: {key} = {stated!r}, {schema.__name__}: {have!r}"
                checked += 1
    assert checked >= 35  # the tables were read


def test_figure_titles_cover_the_one_tuple_of_each_choice():
    """paper_figs titles every label space and prompt set realdata accepts, and no other."""
    from paper_figs.reference import LABEL_SPACE_TITLES, PROMPT_TITLES
    from realdata.config import LABEL_SPACES, PROMPT_SETS

    assert list(LABEL_SPACE_TITLES) == list(LABEL_SPACES) and list(PROMPT_TITLES) == list(PROMPT_SETS)
