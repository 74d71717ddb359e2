"""The monitoring engine: the check scheduler, states derived through the model, and the server runtime."""
