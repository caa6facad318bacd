"""What training and inference both run on: numeric precision, memory format and BN folding, and
the `anchordet benchmark` measurements. Imports no training engine."""
