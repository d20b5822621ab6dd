"""The students-per-machine arithmetic, on made-up measurements whose answer is known."""

from __future__ import annotations

import pytest

from cqrs_demo.bench.capacity import CPU_TARGET, RESERVED_GB, capacity, shared_per_student


def shared(postgres_pss=0.0, postgres_cpu=0.0, mongo_pss=20.0, mongo_cpu=0.0, broker_mb=0.0, vm_cpu=0.1):
    return {"postgres": {"pss_mb": postgres_pss, "cpu_cores": postgres_cpu},
            "mongo": {"pss_mb": mongo_pss, "cpu_cores": mongo_cpu},
            "rabbitmq": {"cpu_cores": vm_cpu, "class_memory_mb": broker_mb}}


BASELINE = {"students": 0, "shared": shared()}
SERVER = {"pss_mb": 100.0, "cpu_cores": 0.0}


def level(students, pss, cpu, **servers):
    return {"students": students, "per_student": {"pss_mb": pss, "cpu_cores": cpu}, "shared": shared(**servers)}


def test_the_shared_servers_part_is_their_class_share_over_the_baseline_per_student():
    four = level(4, 300.0, 0.1, postgres_pss=20.0, postgres_cpu=0.04, mongo_pss=28.0, mongo_cpu=0.04,
                 broker_mb=4.0, vm_cpu=0.9)
    part = shared_per_student(four, BASELINE)
    assert part["memory_mb"] == pytest.approx((20.0 + 4.0 + 8.0) / 4)
    assert part["cpu_cores"] == pytest.approx((0.04 + 0.04) / 4)
    assert part["rabbitmq_vm_cpu_growth"] == pytest.approx(0.2)  # recorded, not counted


def test_a_server_that_shrank_counts_as_no_growth():
    part = shared_per_student(level(2, 300.0, 0.1, mongo_pss=10.0, mongo_cpu=0.0), BASELINE)
    assert part["memory_mb"] == 0.0


def test_the_machine_holds_what_fits_in_both_memory_and_cpu():
    idle = {"1": level(1, 290.0, 0.01), "8": level(8, 280.0, 0.01, postgres_pss=8.0)}
    active = {"1": level(1, 320.0, 0.2), "4": level(4, 300.0, 0.1, postgres_pss=8.0, postgres_cpu=0.04)}
    result = capacity(idle, active, BASELINE, SERVER, cores=4, memory_gb=17.0)
    per_student_mb = 100.0 + 300.0 + 8.0 / 4  # server + kernel-and-stack at the largest level + shared part
    assert result["per_student"]["memory_mb_active"] == pytest.approx(per_student_mb)
    assert result["students_by_memory"] == int((17.0 - RESERVED_GB) * 1024 // per_student_mb)  # 40
    cpu = 0.1 + 0.04 / 4
    assert result["students_by_cpu_all_active"] == int(4 * CPU_TARGET // cpu)  # 25
    assert result["students_per_machine"] == min(result["students_by_memory"], result["students_by_cpu_all_active"])
    assert result["students_per_machine"] == 25
    assert result["students_per_core"] == round(CPU_TARGET / cpu, 1)
    assert result["students_per_gb"] == round(1024 / per_student_mb, 2)
