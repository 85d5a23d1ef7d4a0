"""Access tokens: the model, the two login grants, the process cache, and the stores shared by processes."""
