"""Development tools that the image does not ship: CMRxRecon-format input trees with ground truth (sample
data, the trees training and evaluation build) and the fault tree that checks predict.py on damaged inputs."""
