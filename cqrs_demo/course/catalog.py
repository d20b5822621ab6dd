"""Every exercise of the course, found in the modules of `cqrs_demo.course.exercises`.

A notebook's exercises live in one module there (`nb03.py` for notebook 03), declared as
module-level `Exercise` objects; nothing needs registering. `exercise("03.1")` finds one.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from cqrs_demo.course import exercises as exercise_modules
from cqrs_demo.course.definition import Exercise, ExerciseDefinitionError


class UnknownExercise(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@cache
def all_exercises() -> dict[str, Exercise]:
    """Every declared exercise by id, in course order (03.1, 03.2, ..., 10.1)."""
    found: dict[str, Exercise] = {}
    for module_info in pkgutil.iter_modules(exercise_modules.__path__):
        module = importlib.import_module(f"{exercise_modules.__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, Exercise):
                if value.id in found and found[value.id] is not value:
                    raise ExerciseDefinitionError(f"two exercises are declared as {value.id}")
                found[value.id] = value
    return dict(sorted(found.items(), key=lambda item: tuple(int(part) for part in item[0].split("."))))


def exercise(exercise_id: str) -> Exercise:
    """The exercise with this id, e.g. `exercise("03.1")`."""
    try:
        return all_exercises()[exercise_id]
    except KeyError:
        known = ", ".join(all_exercises()) or "none"
        raise UnknownExercise(f"no exercise {exercise_id!r}; the course declares: {known}") from None


def of_notebook(notebook: str) -> list[Exercise]:
    """The exercises of one notebook (its file name without `.ipynb`), in order."""
    return [found for found in all_exercises().values() if found.notebook == notebook]
