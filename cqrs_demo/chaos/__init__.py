"""A chaos run: mixed commands under a seeded schedule of every fault the stack claims to survive,
then a verdict from the record of what happened (`cqrs-demo chaos`, `cqrs_demo.lab.chaos`).

- `schedule`: which fault, when, for how long, from a seed;
- `load`: products and orders commanded in the background, each answer recorded;
- `injector`: each kind of fault, done to the running stack as it happens for real;
- `evidence`: after quiet, the event log compared with the projector's record and the read model;
- `verdict`: the table, and whether the run passed;
- `run`: the whole run, start to verdict.
"""
