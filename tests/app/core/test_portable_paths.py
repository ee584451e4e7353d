from app.core.portable_paths import portable_path_text


def test_paths_of_the_writing_machine_are_made_portable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    text = (
        f"fitted on {tmp_path}/runs/cv, data {tmp_path.parent}/C-NMC_Leukemia, weights "
        f"/usr/lib/x.pth; GET /api/v1/models, https://doi.org/10.7937/a, ALL/HEM, TP / (TP + FN)"
    )
    assert portable_path_text(text) == (
        "fitted on runs/cv, data …/C-NMC_Leukemia, weights …/x.pth; GET /api/v1/models, "
        "https://doi.org/10.7937/a, ALL/HEM, TP / (TP + FN)"
    )


def test_a_folder_name_with_spaces_is_shortened_whole(tmp_path, monkeypatch):
    folder = tmp_path / "Jane Doe" / "cnmc"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    text = f"--data {tmp_path}/Jane Doe/cnmc --out {tmp_path}/run --arch x"
    assert portable_path_text(text, base=tmp_path / "elsewhere") == (
        "--data …/cnmc --out …/run --arch x"
    )
