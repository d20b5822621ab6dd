"""The classroom: many students' stacks on one set of servers, and what an instructor sees of them.

- `naming`: each student's namespace for each notebook (`namespace_for(student, notebook)`).
- `lease`, `seat`: one run per namespace at a time; a stack's row in the class registry.
- `registry`: `course.stacks`, every class stack started, where, and how it ended.
- `counters`: a stack's anomaly counters.
- `census`: what the servers hold for the class, stack by stack and student by student
  (`cqrs-demo class status`).
- `reset`: clearing what a class left behind (`cqrs-demo class reset`).
"""
