"""How many students a machine holds, from what one student costs, idle and active.

The rule: a student's memory is their Jupyter server's PSS, plus their kernel-and-stack's PSS
when active, plus the shared servers' part per active student; a student's CPU is their
kernel-and-stack's cores when active plus the shared servers' part (PostgreSQL and MongoDB;
RabbitMQ's CPU cannot be told apart from the rest of the machine's traffic here). A machine holds as many as
fit in its memory less `RESERVED_GB` (the system, the hub, its proxy), and in `CPU_TARGET` of its
cores with every student active at once: the worst minute of a class, when everyone runs the
same cell, still gets answered.
"""

from __future__ import annotations

CPU_TARGET = 0.7
RESERVED_GB = 1.0


def shared_per_student(level: dict, baseline: dict) -> dict:
    """What the shared servers spend per student at this level: memory (MB) and CPU (cores).

    RabbitMQ's CPU is not counted: its VM serves everything else on the machine too, and its
    growth over the baseline (kept, as `rabbitmq_vm_cpu_growth`) is as often negative as not.
    """
    shared, before = level["shared"], baseline["shared"]
    memory = shared["postgres"]["pss_mb"] + shared["rabbitmq"]["class_memory_mb"]
    cpu = shared["postgres"]["cpu_cores"]
    if "mongo" in shared:
        memory += max(0.0, shared["mongo"]["pss_mb"] - before["mongo"]["pss_mb"])
        cpu += max(0.0, shared["mongo"]["cpu_cores"] - before["mongo"]["cpu_cores"])
    n = level["students"]
    return {"memory_mb": round(memory / n, 1), "cpu_cores": round(cpu / n, 4),
            "rabbitmq_vm_cpu_growth": round((shared["rabbitmq"]["cpu_cores"] - before["rabbitmq"]["cpu_cores"]) / n, 4)}


def capacity(idle: dict, active: dict, baseline: dict, server: dict, cores: int, memory_gb: float) -> dict:
    """Students a machine of `cores` and `memory_gb` holds, from the largest measured level of each kind."""
    busiest_idle, busiest = idle[max(idle, key=int)], active[max(active, key=int)]
    shared_idle, shared_active = shared_per_student(busiest_idle, baseline), shared_per_student(busiest, baseline)
    memory_mb = server["pss_mb"] + busiest["per_student"]["pss_mb"] + shared_active["memory_mb"]
    idle_memory_mb = server["pss_mb"] + busiest_idle["per_student"]["pss_mb"] + shared_idle["memory_mb"]
    cpu_active = busiest["per_student"]["cpu_cores"] + shared_active["cpu_cores"]
    cpu_idle = server["cpu_cores"] + busiest_idle["per_student"]["cpu_cores"] + shared_idle["cpu_cores"]
    by_memory = int((memory_gb - RESERVED_GB) * 1024 // memory_mb)
    by_cpu = int(cores * CPU_TARGET // cpu_active)
    return {
        "machine": {"cores": cores, "memory_gb": round(memory_gb, 1)},
        "per_student": {"memory_mb_active": round(memory_mb, 1), "memory_mb_idle": round(idle_memory_mb, 1),
                        "cpu_cores_active": round(cpu_active, 4), "cpu_cores_idle": round(cpu_idle, 4),
                        "shared_servers_active": shared_active, "shared_servers_idle": shared_idle},
        "students_by_memory": by_memory,
        "students_by_cpu_all_active": by_cpu,
        "students_by_cpu_all_idle": int(cores * CPU_TARGET // cpu_idle) if cpu_idle > 0 else None,
        "students_per_machine": min(by_memory, by_cpu),
        "students_per_core": round(CPU_TARGET / cpu_active, 1),
        "students_per_gb": round(1024 / memory_mb, 2),
        "rule": f"memory: (total - {RESERVED_GB:g} GB) / per-student PSS when active; "
                f"CPU: {CPU_TARGET:.0%} of the cores / per-student cores when active, every student at once",
    }
