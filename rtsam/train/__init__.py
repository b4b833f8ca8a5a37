"""Fine-tuning the sam3d engine: loss, manifests, crops, progressive prompting, the loop, DDP.

Entry points: ``rtsam.train.loop.train(TrainOptions(...))`` and ``rtsam train`` on the command line.
"""
