"""`mnistlab tune`: Optuna studies of a recipe's settings: the trial, the study's storage and its checks."""
