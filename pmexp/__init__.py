"""pmexp: PM-Drop bit-packed dropout (`pmexp.masks`, `pmexp.dropout`) and a Hydra experiment framework.

The framework half (`pmexp.train`, `pmexp.models`, `pmexp.data`, `pmexp.metrics`, `pmexp.records`)
imports transformers, datasets and wandb; the library half imports torch alone. Importing this
package imports neither, so `import pmexp.dropout` stays light.
"""

__version__ = "0.1.0"
