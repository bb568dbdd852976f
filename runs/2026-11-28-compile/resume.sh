#!/usr/bin/env bash
# Finish the issue-7 matrix on one GPU (jobs whose record says ok are skipped), in priority order.
S=multirun/compile
M="python3 -m pmexp.train -m experiment=compile_matrix"
$M model=bert_large seq_len=2048 trainer.batch_size=4 hydra.sweep.dir=$S/bert_large_2048
$M model=bert_large seq_len=512 trainer.batch_size=16 hydra.sweep.dir=$S/bert_large_512
$M model=tinybert seq_len=512 trainer.batch_size=64 hydra.sweep.dir=$S/tinybert_512
$M model=tinybert seq_len=2048 trainer.batch_size=16 hydra.sweep.dir=$S/tinybert_2048
