"""Handing the course out into a student's home: what is new arrives, what they changed stays."""

from __future__ import annotations

import pytest

from cqrs_demo.course.handout import hand_out, main


@pytest.fixture
def course(tmp_path):
    course = tmp_path / "course"
    (course / "data").mkdir(parents=True)
    (course / "01_meet.ipynb").write_text("01 as handed out")
    (course / "03_events.ipynb").write_text("03 as handed out")
    (course / "data" / "prices.csv").write_text("sku,price")
    (course / ".ipynb_checkpoints").mkdir()
    (course / ".ipynb_checkpoints" / "01_meet-checkpoint.ipynb").write_text("the author's checkpoint")
    return course


def test_a_first_start_copies_the_whole_course(course, tmp_path):
    home = tmp_path / "home" / "course"
    copied = hand_out(course, home)
    assert sorted(path.relative_to(home).as_posix() for path in copied) == [
        "01_meet.ipynb", "03_events.ipynb", "data/prices.csv"]
    assert (home / "03_events.ipynb").read_text() == "03 as handed out"
    assert not (home / ".ipynb_checkpoints").exists()


def test_a_later_start_keeps_the_students_work_and_brings_what_is_new(course, tmp_path):
    home = tmp_path / "home" / "course"
    hand_out(course, home)
    (home / "01_meet.ipynb").write_text("01 with the student's answers")
    (home / "03_events.ipynb").unlink()  # deleted on purpose: comes back, as a fresh copy
    (course / "01_meet.ipynb").write_text("01 revised by the instructor")
    (course / "04_read.ipynb").write_text("04, new this week")

    copied = hand_out(course, home)

    assert sorted(path.name for path in copied) == ["03_events.ipynb", "04_read.ipynb"]
    assert (home / "01_meet.ipynb").read_text() == "01 with the student's answers"
    assert (home / "04_read.ipynb").read_text() == "04, new this week"


def test_no_course_is_an_error_that_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        hand_out(tmp_path / "nowhere", tmp_path / "home")


def test_without_a_command_it_copies_and_returns(course, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([str(course), "mine"]) == 0
    assert (tmp_path / "mine" / "01_meet.ipynb").exists()
    assert "3 new file(s)" in capsys.readouterr().err


def test_then_it_becomes_the_command_after_the_double_dash(course, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    became = []
    monkeypatch.setattr("os.execvp", lambda file, args: became.append((file, args)))
    main([str(course), "mine", "--", "jupyterhub-singleuser", "--port=8888"])
    assert became == [("jupyterhub-singleuser", ["jupyterhub-singleuser", "--port=8888"])]


def test_a_missing_course_still_starts_the_server(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    became = []
    monkeypatch.setattr("os.execvp", lambda file, args: became.append(file))
    main([str(tmp_path / "nowhere"), "mine", "--", "jupyterhub-singleuser"])
    assert became == ["jupyterhub-singleuser"]
    assert "the course was not copied" in capsys.readouterr().err
