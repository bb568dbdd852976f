"""pmexp: PM-Drop bit-packed dropout (the library) and a Hydra experiment framework that measures it.

The library (`pmexp.masks`, `pmexp.dropout`, `pmexp.tempo`) imports torch alone. The framework
(`pmexp.experiment`: config, tasks, models, data, the loop, records) imports transformers, datasets,
Hydra and wandb; `pmexp.report` reads its records. Importing this package imports neither half, so
`import pmexp.dropout` stays light.
"""

__version__ = "0.1.0"
