"""The course's exercises, one module per notebook (`nb03.py` holds notebook 03's).

Declare each exercise as a module-level `Exercise`; `cqrs_demo.course.catalog` finds them.
See `notebooks/AUTHORING.md` for the pattern, with an example of each kind.
"""
