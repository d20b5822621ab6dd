"""The instructor's notebook: the class as tables and a chart, and demo students to try it on.

    from cqrs_demo.lab.instructor import DemoClass, class_tables, plot_class
    students, stacks = class_tables()   # what `cqrs-demo class status` prints, as DataFrames
    plot_class(students)                # each student's stacks by state, and their anomaly counters
"""

from __future__ import annotations

import uuid

import matplotlib.pyplot as plt
import pandas as pd

from cqrs_demo import config
from cqrs_demo.classroom import census
from cqrs_demo.classroom.reset import ResetReport, reset
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.stack import LabStack

STATE_COLOURS = {"running": "#2e7d32", "partly running": "#f9a825", "stopped": "#90a4ae", "gone": "#c62828"}
ANOMALIES = ("not_applied", "duplicates", "gaps", "dead_lettered", "held")


def class_tables(student: str | None = None, settings=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per student, one row per stack), from the registry and the servers."""
    students, stacks = census.class_status(settings or config.from_environment(), student)
    student_frame = pd.DataFrame(students, columns=list(census.STUDENT_COLUMNS)).set_index("student")
    stack_frame = pd.DataFrame(census.stack_lines(stacks)).drop(columns=["namespace"], errors="ignore")
    return student_frame, stack_frame


def plot_class(students: pd.DataFrame):
    """Left: each student's stacks by state. Right: the events they committed, and the anomalies among them."""
    height = max(3.0, 0.5 * len(students) + 1.8)
    figure, (states, events) = plt.subplots(1, 2, figsize=(12, height), sharey=True)
    if students.empty:
        for axes in (states, events):
            axes.text(0.5, 0.5, "no class stacks on these servers", ha="center", va="center")
            axes.set_axis_off()
        return figure
    names = list(students.index)
    left = pd.Series(0, index=names)
    for state, colour in STATE_COLOURS.items():
        states.barh(names, students[state], left=left, color=colour, label=state)
        left += students[state]
    states.xaxis.get_major_locator().set_params(integer=True)
    states.set(xlabel="stacks", title="notebooks' stacks, by state")
    states.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, fontsize="small", frameon=False)
    states.invert_yaxis()
    events.barh(names, students["committed"], color="#e0e0e0", label="committed")
    left = pd.Series(0, index=names)
    for anomaly in ANOMALIES:
        events.barh(names, students[anomaly], left=left, height=0.4, label=anomaly.replace("_", " "))
        left += students[anomaly]
    if not left.any():
        events.text(0.98, 0.02, "no anomalies", transform=events.transAxes, ha="right", va="bottom")
    events.set(xlabel="events", title="events committed, and the anomalies among them")
    events.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=6, fontsize="small", frameon=False)
    figure.tight_layout()
    return figure


class DemoClass:
    """Two demo students, each with a tiny stack and a few products, so the view has rows to show.

    Their names carry a random tag, so two instructors trying this at once see only their own.
    One stack keeps running, the other is stopped: the table shows both states. `reset()` stops
    and removes everything of theirs, as `cqrs-demo class reset --student NAME` does.
    """

    def __init__(self, names: tuple[str, ...] = ("Demo Ada", "Demo Grace"), notebook: str = "nb00",
                 products: int = 3) -> None:
        tag = uuid.uuid4().hex[:4]
        self.students = [f"{name} {tag}" for name in names]
        self.notebook = notebook
        self.products = products
        self.stacks: list[LabStack] = []

    def start(self) -> "DemoClass":
        for number, student in enumerate(self.students):
            stack = LabStack(self.notebook, student=student).start()
            self.stacks.append(stack)
            client = WorkbenchClient.for_stack(stack)
            for index in range(self.products + number):  # different counts, to tell them apart
                client.create_product(f"Demo {index}", "9.99", 5, f"SKU-DEMO-{number}-{index}")
            wait_until_equal(stack.engine, stack.read_db, timeout=30)
        for stack in self.stacks[1:]:
            stack.stop()
        return self

    def reset(self) -> list[ResetReport]:
        for stack in self.stacks:
            stack.stop()
        settings = config.from_environment()
        return [reset(settings, student) for student in self.students]
