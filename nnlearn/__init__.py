"""nnlearn: the small toolkit behind the book *How neural networks learn*.

Modules
-------
seeding   one call seeds every random number generator
data      MNIST (offline-first, checksummed) and seeded toy data sets
models    MLP with per-hidden-layer node masks and activation capture
train     full-batch / mini-batch loops, per-sample SGD with update tallies
ensemble  K independent small networks trained as one batched computation
stats     confidence intervals and correlation helpers
results   verdict rows recorded for the replication scorecard
plotting  small shared figure helpers
"""

from nnlearn.seeding import seed_everything

__all__ = ["seed_everything"]
__version__ = "0.1.0"
