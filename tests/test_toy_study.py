"""benchmarks/toy_study.py at its smallest (docs/TOY_STUDY.md): the probes of every stage's features run on a quick
start's folder and give a table a reader can trust."""

import json

import pytest

from tests.conftest import run_script


@pytest.mark.slow
def test_the_probes_train_on_every_stage_and_the_bank_and_score_the_valid_split(mini_soccernet, tmp_path):
    quickstart = tmp_path / "quickstart"
    runs = quickstart / "runs"
    quickstart.mkdir()
    (quickstart / "mini_soccernet").symlink_to(mini_soccernet)  # the layout scripts/quickstart.sh leaves
    data = [f"data.root={mini_soccernet}", "data.source=store", f"data.store={mini_soccernet / 'store'}"]
    run_script(["train_ssl.py", "--config", "configs/ssl/tiny_mini.yaml", *data, "run.epochs=1",
                f"run.output_dir={runs / 'ssl'}"])
    run_script(["train_distill.py", "--config", "configs/distill/tiny_mini.yaml", *data, "run.epochs=1",
                "run.global_batch_size=4",
                "data.bank.name=baidu_soccer_embeddings.npy", f"run.output_dir={runs / 'distill'}",
                f"model.init_checkpoint={runs / 'ssl' / 'checkpoint_last.pth'}"])
    printed = run_script(["benchmarks/toy_study.py", "--quickstart", str(quickstart), "--seeds", "0", "1",
                          "--steps", "1", "300", "--bank", "baidu_soccer_embeddings.npy",
                          "--trunk", f"stage 1 again={runs / 'ssl' / 'checkpoint_last.pth'}"]).stdout
    rows = json.loads((quickstart / "toy_study" / "probes.json").read_text())
    assert list(rows) == ["random", "stage 1 (SCE)", "stages 1 and 2 (distillation)", "stage 1 again",
                          "the feature bank (baidu_soccer_embeddings.npy), stage 2's teacher"]
    assert rows.pop("stage 1 again") == rows["stage 1 (SCE)"]  # a trunk given by --trunk: the same numbers again
    for name, seeds in rows.items():
        assert list(seeds) == ["0", "1"]
        for steps in seeds.values():
            assert steps["300"]["loss"] < steps["1"]["loss"], name  # the head trains
            assert all(0 <= steps[n][metric] <= 100 for n in ("1", "300") for metric in ("tight", "loose"))
    # the generated bank describes each second's events: a linear layer reads them off, the trunks' tokens (one
    # epoch of each stage) hold far less; and two seeds give two random trunks
    bank = rows.pop("the feature bank (baidu_soccer_embeddings.npy), stage 2's teacher")
    trunks = max(seed["300"]["tight"] for seeds in rows.values() for seed in seeds.values())
    assert min(seed["300"]["tight"] for seed in bank.values()) > 2 * trunks
    assert rows["random"]["0"]["300"] != rows["random"]["1"]["300"]
    table = (quickstart / "toy_study" / "probes.txt").read_text()
    assert table in printed + "\n" and table.count("\n| ") == 6  # the header and a row per trunk and the bank
