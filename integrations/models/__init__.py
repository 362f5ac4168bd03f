"""Model adapters: the model directory, its default models, and the local and SageMaker runtimes."""
