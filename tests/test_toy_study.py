"""benchmarks/toy_study.py at its smallest (docs/TOY_STUDY.md): the probes of every stage's features run on a quick
start's folder and give a table a reader can trust."""

import json
import xml.etree.ElementTree as ElementTree

import pytest
import yaml

from tests.conftest import run_script
from tests.test_user_errors import expect_user_error


@pytest.fixture(scope="module")
def quickstart(mini_soccernet, tmp_path_factory):
    """A quick start's folder: the session's mini-SoccerNet, stage 1 and stage 2 for an epoch each."""
    quickstart = tmp_path_factory.mktemp("toy") / "quickstart"
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
    return quickstart


@pytest.mark.slow
def test_the_probes_train_on_every_stage_and_the_bank_and_score_the_valid_split(quickstart):
    runs = quickstart / "runs"
    printed = run_script(["benchmarks/toy_study.py", "--quickstart", str(quickstart), "--parts", "probes",
                          "--seeds", "0", "1", "--steps", "1", "300", "--bank", "baidu_soccer_embeddings.npy",
                          "--trunk", f"stage 1 again={runs / 'ssl' / 'checkpoint_last.pth'}",
                          "--projector", f"projector={runs / 'distill' / 'checkpoint_last.pth'}"]).stdout
    rows = json.loads((quickstart / "toy_study" / "probes.json").read_text())
    assert list(rows) == ["random", "stage 1 (SCE)", "stages 1 and 2 (distillation)", "stage 1 again", "projector",
                          "the feature bank (baidu_soccer_embeddings.npy), stage 2's teacher"]
    assert rows.pop("stage 1 again") == rows["stage 1 (SCE)"]  # a trunk given by --trunk: the same numbers again
    # stage 2's projector output (what its loss compares with the bank) is other features than its trunk's tokens
    projector = rows.pop("projector")
    assert projector["0"]["300"]["loss"] < projector["0"]["1"]["loss"]
    assert projector["0"]["300"] != rows["stages 1 and 2 (distillation)"]["0"]["300"]
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
    assert table in printed + "\n" and table.count("\n| ") == 7  # the header, a row per trunk, projector, bank
    # a projector asked of a checkpoint that has none: one message, before any probe
    refused = run_script(["benchmarks/toy_study.py", "--quickstart", str(quickstart), "--parts", "probes",
                          "--out", str(quickstart / "refused"),
                          "--projector", f"p={runs / 'ssl' / 'checkpoint_last.pth'}"], check=False)
    expect_user_error(refused, "expected a stage-2 checkpoint (train_distill.py)", "from stage 'ssl'")
    assert not (quickstart / "refused").exists()


@pytest.mark.slow
def test_the_event_response_compares_stage_2_with_its_bank_and_writes_the_doc(quickstart, tmp_path):
    doc = tmp_path / "study.txt"
    doc.write_text("<!-- toy_study: response -->\nold\n<!-- /toy_study: response -->\n")
    distill = quickstart / "runs" / "distill" / "checkpoint_last.pth"
    printed = run_script(["benchmarks/toy_study.py", "--quickstart", str(quickstart), "--parts", "response",
                          "--bank", "baidu_soccer_embeddings.npy", "--out", str(tmp_path / "out"), "--doc", str(doc),
                          "--projector", f"the same checkpoint={distill}"]).stdout
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in printed.splitlines() if line.startswith("| ")}
    bank = rows.pop("the feature bank (baidu_soccer_embeddings.npy), stage 2's teacher")
    # the generated bank holds each event in its second (weight 1) and the two beside it (0.5), nothing further:
    # the response peaks at the event, and every bank row is the nearest to itself
    response = [float(value) for value in bank[:5]]
    assert response[2] > 0.3 and response[2] > max(response[1], response[3]) > 2 * max(response[0], response[4])
    assert bank[5:] == ["1.00", "1.00 |"]
    # a --projector row is computed like the quick start's own stage 2: the same checkpoint gives the same row
    assert rows["stage 2's projector output, as in the quick start"] == rows["the same checkpoint"]
    assert (tmp_path / "out" / "response.txt").read_text() in printed + "\n"
    assert "| rows (one per second) | response at -2 s |" in doc.read_text() and "old" not in doc.read_text()


@pytest.mark.slow
def test_fine_tuning_gives_every_row_one_budget_writes_the_doc_and_resumes_into_the_recipe_check(quickstart, tmp_path):
    doc = tmp_path / "study.txt"  # any text file with the marks
    doc.write_text("# Study\n\nkept\n<!-- toy_study: finetune -->\nold table\n"
                   "<!-- /toy_study: finetune -->\nkept too\n<!-- toy_study: finetune_scratch_recipe -->\n"
                   "<!-- /toy_study: finetune_scratch_recipe -->\n")
    command = ["benchmarks/toy_study.py", "--quickstart", str(quickstart), "--parts", "finetune", "--seeds", "0",
               "--games", "1", "2", "--budget", "120", "--doc", str(doc)]
    printed = run_script(command).stdout
    results = json.loads((quickstart / "toy_study" / "finetune.json").read_text())
    rows = ["random", "stage 1 (SCE)", "stages 1 and 2 (distillation)"]
    assert list(results) == ["1", "2"] and all(list(results[games]) == rows for games in results)
    for games, by_row in results.items():
        for row, seeds in by_row.items():
            points = seeds["0"]
            # 10 validations, the last after the whole budget; a pretrained row's first is phase a's end (12 of 120)
            assert len(points) == 10 and points[-1][0] == 120, (games, row, points)
            assert all(0 <= value <= 100 for _, value in points)
    # one row, two runs: the 1-game and the 2-game run of stage 3 from random weights saw different games
    assert results["1"]["random"] != results["2"]["random"]
    text = doc.read_text()
    assert text.startswith("# Study\n\nkept\n<!-- toy_study: finetune -->\nStage 3 from each init")
    assert "<!-- /toy_study: finetune -->\nkept too\n" in text and "old table" not in text
    assert "| stages 1 and 2 (distillation) |" in text and "| stage 3 from | 1 game | 2 games |" in printed
    for games in (1, 2):  # a plot per game count, a mean curve per row, linked from the doc
        svg = ElementTree.parse(tmp_path / "toy_study" / f"finetune_{games}games.svg").getroot()
        assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 3
        assert f"(toy_study/finetune_{games}games.svg)" in text
    # the recipe check: only the pretrained rows' phase b trains again, at the random row's LR and warmup; the
    # finished runs (random weights, phase a) are resumed, so train_spotting.py stops at once and they are unchanged
    runs = quickstart / "toy_study" / "finetune" / "runs" / "1games" / "seed0"
    finished = {path: path.stat().st_mtime_ns for path in runs.glob("*/*/checkpoint_last.pth")}
    run_script([*command, "--games", "1", "--recipe", "scratch"])
    assert {path: path.stat().st_mtime_ns for path in finished} == finished
    checked = json.loads((quickstart / "toy_study" / "finetune_scratch_recipe.json").read_text())
    assert json.loads((quickstart / "toy_study" / "finetune.json").read_text()) == results
    assert list(checked["1"]) == rows and checked["1"]["random"] == results["1"]["random"]
    assert checked["1"]["stage 1 (SCE)"] != results["1"]["stage 1 (SCE)"]
    for row in ("stage_1_sce", "stages_1_and_2_distillation"):
        optim = yaml.safe_load((runs / row / "phase_b_scratch_recipe" / "config.yaml").read_text())["optim"]
        assert optim["lr"] == 5e-2 and optim["warmup_epochs"] > 0, optim  # phase b's own: 1e-2, no warmup
    text = doc.read_text()
    assert ("<!-- toy_study: finetune_scratch_recipe -->\nStage 3 from each init, the pretrained rows' phase b at "
            "the random row's LR and warmup, valid split") in text
    svg = ElementTree.parse(tmp_path / "toy_study" / "finetune_scratch_recipe_1games.svg").getroot()
    assert svg.find("{http://www.w3.org/2000/svg}text").text.startswith("the recipe check: stage 3 on 1 labelled game")


def test_a_budget_that_is_not_whole_epochs_of_every_column_is_refused_before_anything_runs(mini_soccernet, tmp_path):
    quickstart = tmp_path / "quickstart"
    for stage in ("ssl", "distill"):  # the checkpoints are only looked for here
        (quickstart / "runs" / stage).mkdir(parents=True)
        (quickstart / "runs" / stage / "checkpoint_last.pth").touch()
    (quickstart / "mini_soccernet").symlink_to(mini_soccernet)
    failed = run_script(["benchmarks/toy_study.py", "--quickstart", str(quickstart), "--parts", "finetune",
                         "--games", "1", "2", "--budget", "100", "--out", str(tmp_path / "out")], check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "--budget 100 windows at 1 game (6 windows per epoch" in failed.stderr and not (tmp_path / "out").exists()
