"""The experiment framework: config, tasks, models, data, the training loop and the records it leaves.

    python -m pmexp.train --cfg job        # the composed config a job would run with

Importing this package imports nothing else (`pmexp.bench` reads `pmexp.experiment.envinfo` alone);
the README's Layout section lists the modules, from errors and registries up to the loop and the job.
"""
