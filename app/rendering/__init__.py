"""What people look at: explanation images and result tables."""
