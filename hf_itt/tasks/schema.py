"""Data roles and benchmark names shared by task specs and loading.

What rows and features of each task type look like is the type's own business: see the type
modules in ``hf_itt.task_types`` (one per type; ``get_type(name).columns`` are a type's canonical
row columns, ``feature_columns(train)`` its tokenized features).
"""

# Data roles a task spec maps to source split names (``load_split(spec, role)``).
ROLES = ("train", "validation", "test")

# Benchmarks a target task can belong to (their language lists live in the task specs).
BENCHMARKS = ("xtreme", "xtreme_r")
