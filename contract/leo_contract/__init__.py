"""Hand-written helpers of the public contract, shipped with its generated code."""
