"""Train one job (a model, a dropout option, a precision ...) and leave its records in the job dir.

    python -m pmexp.train                                         # pretrained MiniLM on MRPC (offline), CPU or GPU
    python -m pmexp.train model=tinybert model.pretrained=false   # a random-init TinyBERT (memory, speed)
    python -m pmexp.train model=bert_large dropout=packed precision=bf16 seq_len=512 data=synthetic
    python -m pmexp.train -m seed=0,1,2,3,4 dropout=standard,packed
    python -m pmexp.train -m experiment=fidelity hydra.sweep.dir=multirun/fidelity   # re-run resumes
    python -m pmexp.train -m seed=0,1 hydra/launcher=joblib hydra.launcher.n_jobs=2  # jobs in parallel
    python -m pmexp.train -m trainer.fault=null,oom               # test a sweep's fault handling
    python -m pmexp.train --cfg job                               # print the composed config
    torchrun --nproc_per_node=2 -m pmexp.train trainer.strategy=ddp   # one job over 2 GPUs (or CPU processes)

The entry point only: `@hydra.main` hands the composed config to `pmexp.experiment.app.run_job`,
which calls `pmexp.experiment.job.train` (the job's record) and turns its outcome into the exit code
(0 ok, 1 a job not ok, 2 a usage error). Nothing else lives here, so nothing importable is ever
`__main__`: the joblib and submitit launchers pickle `main` by value, and with it only `run_job`,
by reference.
"""

import hydra
from omegaconf import DictConfig

from pmexp.experiment.app import cli, run_job
from pmexp.experiment.callbacks import register_resolvers

register_resolvers()  # before @hydra.main composes: conf/train.yaml names its job dirs with it


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: one job, or one job of a multirun (`-m`)."""
    run_job(cfg)


if __name__ == "__main__":
    cli(main)
