"""nnlearn: the small toolkit behind the book *How neural networks learn*.

The core (this package) is what a researcher would use for a new study; ``nnlearn.studies``
holds what exactly one chapter needs, one module per chapter (see the README's architecture map).

Core modules
------------
data         MNIST (offline-first, content-checksummed) and seeded toy data sets
models       MLP with per-hidden-layer node masks and activation capture
engine       the batched-training engine: K small networks as stacked parameters
train        one model's training loop (fit) and per-sample SGD with update tallies
ensemble     K modules stacked with torch.func and trained as one computation
attribution  backward attribution rules (gradient, LRP variants, baselines, blame-the-bias)
stats        intervals that respect their bounds (t, Fisher-z, Wilson, bootstrap)
claims       the claims protocol: declared claims, standard rules, verdicts, scorecard
config       NNLEARN_SCALE and NNLEARN_DEVICE, each read in one place
seeding      one call seeds every random number generator
checks       argument checks with clear errors
plotting     small shared figure helpers
progress     progress bars that builds switch off
booktools    executed image-free baselines, the table of contents
"""

from nnlearn.seeding import seed_everything

__all__ = ["seed_everything"]
__version__ = "0.2.0"
