"""The cells: the C-NMC index, subject splits, torch datasets, augmentation and image batches."""
