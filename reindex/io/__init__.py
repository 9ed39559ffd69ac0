"""Files in and out: atomic publish, the output rule and its inputs registry, write errors, compression.

Nothing here knows what a run or a vector is; every layer above writes and classifies files through it.
"""
